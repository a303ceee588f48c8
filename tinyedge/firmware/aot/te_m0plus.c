/* int8 kernels of the AOT runtime for the Cortex-M0+; see te_m0plus.h. */
#include "te_m0plus.h"

#include <string.h>

/* The signed 64-bit product a*b as (hi, lo) from four 16x16 multiplies (Hacker's Delight, mulhs). */
static inline void te_m0_mul64(int32_t a, int32_t b, int32_t *hi, uint32_t *lo) {
  const uint32_t al = (uint32_t)a & 0xFFFFu, bl = (uint32_t)b & 0xFFFFu;
  const int32_t ah = a >> 16, bh = b >> 16;
  const uint32_t ll = al * bl;
  const int32_t t1 = (int32_t)al * bh + (int32_t)(ll >> 16);
  const int32_t t2 = ah * (int32_t)bl + (t1 & 0xFFFF);
  *hi = ah * bh + (t1 >> 16) + (t2 >> 16);
  *lo = ((uint32_t)t2 << 16) | (ll & 0xFFFFu);
}

/* gemmlowp's SaturatingRoundingDoublingHighMul: for both signs, floor((a*b + 2^30) / 2^31). */
static inline int32_t te_m0_srdhm(int32_t a, int32_t b) {
  int32_t hi;
  uint32_t lo, sum;
  if (a == INT32_MIN && b == INT32_MIN) {
    return INT32_MAX;
  }
  te_m0_mul64(a, b, &hi, &lo);
  sum = lo + 0x40000000u;
  hi += sum < lo;
  return (int32_t)(((uint32_t)hi << 1) | (sum >> 31));
}

/* SRDHM for a multiplier in [2^30, 2^31) (every TFLM multiplier but 0): with x = xh*2^16 + xl and
 * m = mh*2^16 + ml, floor((x*m + 2^30) / 2^31) = 2*xh*mh + floor((xh*ml + xl*mh + (xl*ml >> 16) + 2^14) / 2^15),
 * the floors nested exactly; the sum's non-negative part is added unsigned, so nothing overflows. */
static inline int32_t te_m0_srdhm_normal(int32_t x, int32_t m) {
  const int32_t xh = x >> 16, mh = m >> 16;
  const uint32_t xl = (uint32_t)x & 0xFFFFu, ml = (uint32_t)m & 0xFFFFu;
  const int32_t a = xh * (int32_t)ml;
  const uint32_t rest = xl * (uint32_t)mh + ((xl * ml) >> 16) + 0x4000u + ((uint32_t)a & 0x7FFFu);
  return 2 * xh * mh + (a >> 15) + (int32_t)(rest >> 15);
}

static inline int32_t te_m0_requantize(int32_t x, int32_t multiplier, int8_t shift) {
  const int8_t left = shift > 0 ? shift : 0;
  const int8_t right = shift > 0 ? 0 : (int8_t)-shift;
  const int32_t shifted = (int32_t)((uint32_t)x << left);
  const int32_t v = multiplier >= 0x40000000 ? te_m0_srdhm_normal(shifted, multiplier) : te_m0_srdhm(shifted, multiplier);
  const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
  const int32_t threshold = (mask >> 1) + (v < 0 ? 1 : 0);
  return (v >> right) + ((v & mask) > threshold ? 1 : 0);
}

int32_t te_m0_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int8_t shift) {
  return te_m0_requantize(x, multiplier, shift);
}

static inline __attribute__((always_inline)) int8_t te_m0_output(int32_t acc, const int32_t *bias, int32_t channel, const te_requant_t *q) {
  const int32_t i = (q->per_channel & TE_REQUANT_PER_CHANNEL) ? channel : 0;
  if (bias) {
    acc += TE_RD_S32(bias + channel);
  }
  acc = te_m0_requantize(acc, TE_RD_S32(q->multiplier + i), TE_RD_S8(q->shift + i)) +
        q->output_offset;
  if (acc < q->act_min) {
    acc = q->act_min;
  }
  if (acc > q->act_max) {
    acc = q->act_max;
  }
  return (int8_t)acc;
}

#if defined(__thumb__) && !defined(__thumb2__)
/* The inner steps of the two Thumb-1 dot-product loops below: the input value in t times byte k of the
 * weight words v0 and v1 (SXTB for byte 0, LSRS+SXTB for 1 and 2, ASRS for 3), added to s0 and s1.
 * GCC wraps Thumb-1 inline assembly in divided syntax: the loops are unified, and say so. */
#define TE_M0_MAC_BYTE0 \
  "sxtb %[u], %[v0]\n\tmuls %[u], %[t], %[u]\n\tadd %[s0], %[u]\n\t" \
  "sxtb %[u], %[v1]\n\tmuls %[u], %[t], %[u]\n\tadd %[s1], %[u]\n\t"
#define TE_M0_MAC_BYTE(shift) \
  "lsrs %[u], %[v0], #" shift "\n\tsxtb %[u], %[u]\n\tmuls %[u], %[t], %[u]\n\tadd %[s0], %[u]\n\t" \
  "lsrs %[u], %[v1], #" shift "\n\tsxtb %[u], %[u]\n\tmuls %[u], %[t], %[u]\n\tadd %[s1], %[u]\n\t"
#define TE_M0_MAC_BYTE3 \
  "asrs %[u], %[v0], #24\n\tmuls %[u], %[t], %[u]\n\tadd %[s0], %[u]\n\t" \
  "asrs %[u], %[v1], #24\n\tmuls %[u], %[t], %[u]\n\tadd %[s1], %[u]\n\t"
#define TE_M0_DOT_OPERANDS                                                                                  \
  : [x] "+l"(x), [f0] "+l"(f0), [f1] "+l"(f1), [s0] "+h"(s0), [s1] "+h"(s1), [xv] "=&l"(xv), [v0] "=&l"(v0), \
    [v1] "=&l"(v1), [t] "=&l"(t), [u] "=&l"(u)                                                             \
  : [end] "h"(end)                                                                                         \
  : "cc", "memory"

/* `words` words of four int8 inputs against two rows of weights, all word-aligned: per word three LDMs
 * and one MUL and ADD per product (43 cycles for 8 products). Accumulators and the end pointer live in
 * high registers. */
static void te_m0_dot2_words(const uint32_t *x, const uint32_t *f0, const uint32_t *f1, int32_t words,
                             int32_t *a0, int32_t *a1) {
  const uint32_t *end = x + words;
  int32_t s0 = *a0, s1 = *a1;
  uint32_t xv, v0, v1, t, u;
  if (words <= 0) {
    return;
  }
  __asm__ volatile(".syntax unified\n"
                   "1:\n\t"
                   "ldm %[x]!, {%[xv]}\n\tldm %[f0]!, {%[v0]}\n\tldm %[f1]!, {%[v1]}\n\t"
                   "sxtb %[t], %[xv]\n\t" TE_M0_MAC_BYTE0
                   "lsrs %[t], %[xv], #8\n\tsxtb %[t], %[t]\n\t" TE_M0_MAC_BYTE("8")
                   "lsrs %[t], %[xv], #16\n\tsxtb %[t], %[t]\n\t" TE_M0_MAC_BYTE("16")
                   "asrs %[t], %[xv], #24\n\t" TE_M0_MAC_BYTE3
                   "cmp %[x], %[end]\n\tbne 1b\n\t"
                   ".syntax divided\n" TE_M0_DOT_OPERANDS);
  *a0 = s0;
  *a1 = s1;
}
#else
/* The same in C, for the host tests (and any core that is not an armv6-m Thumb core). */
static void te_m0_dot2_words(const uint32_t *x, const uint32_t *f0, const uint32_t *f1, int32_t words,
                             int32_t *a0, int32_t *a1) {
  int32_t i, k;
  for (i = 0; i < words; ++i) {
    for (k = 0; k < 32; k += 8) {
      const int32_t v = (int8_t)(x[i] >> k);
      *a0 += (int8_t)(f0[i] >> k) * v;
      *a1 += (int8_t)(f1[i] >> k) * v;
    }
  }
}
#endif

/* Two rows of int8 weights (f0, f1) against n int8 inputs, each input loaded once for both rows;
 * word-aligned data goes a word (four values) per load. */
static void te_m0_dot2_s8(const int8_t *x, const int8_t *f0, const int8_t *f1, int32_t n, int32_t *s0,
                          int32_t *s1) {
  int32_t a0 = 0, a1 = 0;
  const int8_t *end = x + n;
  if ((((uintptr_t)x | (uintptr_t)f0 | (uintptr_t)f1) & 3u) == 0 && n >= 4) {
    const int32_t words = n >> 2;
    te_m0_dot2_words((const uint32_t *)x, (const uint32_t *)f0, (const uint32_t *)f1, words, &a0, &a1);
    x += 4 * words;
    f0 += 4 * words;
    f1 += 4 * words;
  }
  while (x < end) {
    const int32_t v = *x++;
    a0 += *f0++ * v;
    a1 += *f1++ * v;
  }
  *s0 = a0;
  *s1 = a1;
}

#if defined(__thumb__) && !defined(__thumb2__)
/* Pairs of int16 inputs (two per word: SXTH, ASRS) against two rows of int8 weights (a word of four per
 * LDM), `quads` groups of four, all word-aligned: 43 cycles for 8 products. */
static void te_m0_dot2_halves(const uint32_t *x, const uint32_t *f0, const uint32_t *f1, int32_t quads,
                              int32_t *a0, int32_t *a1) {
  const uint32_t *end = x + 2 * quads;
  int32_t s0 = *a0, s1 = *a1;
  uint32_t xv, v0, v1, t, u;
  if (quads <= 0) {
    return;
  }
  __asm__ volatile(".syntax unified\n"
                   "1:\n\t"
                   "ldm %[f0]!, {%[v0]}\n\tldm %[f1]!, {%[v1]}\n\tldm %[x]!, {%[xv]}\n\t"
                   "sxth %[t], %[xv]\n\t" TE_M0_MAC_BYTE0
                   "asrs %[t], %[xv], #16\n\t" TE_M0_MAC_BYTE("8")
                   "ldm %[x]!, {%[xv]}\n\t"
                   "sxth %[t], %[xv]\n\t" TE_M0_MAC_BYTE("16")
                   "asrs %[t], %[xv], #16\n\t" TE_M0_MAC_BYTE3
                   "cmp %[x], %[end]\n\tbne 1b\n\t"
                   ".syntax divided\n" TE_M0_DOT_OPERANDS);
  *a0 = s0;
  *a1 = s1;
}
#else
static void te_m0_dot2_halves(const uint32_t *x, const uint32_t *f0, const uint32_t *f1, int32_t quads,
                              int32_t *a0, int32_t *a1) {
  const int16_t *h = (const int16_t *)x;
  int32_t i, k;
  for (i = 0; i < quads; ++i) {
    for (k = 0; k < 4; ++k) {
      const int32_t v = h[4 * i + k];
      *a0 += (int8_t)(f0[i] >> (8 * k)) * v;
      *a1 += (int8_t)(f1[i] >> (8 * k)) * v;
    }
  }
}
#endif

/* The same with int16 inputs (the offset already added): gathered windows. */
static void te_m0_dot2_s16(const int16_t *x, const int8_t *f0, const int8_t *f1, int32_t n, int32_t *s0,
                           int32_t *s1) {
  int32_t a0 = 0, a1 = 0;
  const int16_t *end = x + n;
  if ((((uintptr_t)x | (uintptr_t)f0 | (uintptr_t)f1) & 3u) == 0 && n >= 4) {
    const int32_t quads = n >> 2;
    te_m0_dot2_halves((const uint32_t *)x, (const uint32_t *)f0, (const uint32_t *)f1, quads, &a0, &a1);
    x += 4 * quads;
    f0 += 4 * quads;
    f1 += 4 * quads;
  }
  while (x < end) {
    const int32_t v = *x++;
    a0 += *f0++ * v;
    a1 += *f1++ * v;
  }
  *s0 = a0;
  *s1 = a1;
}

/* The sum of a row of n weights: with it, sum(f * (x + offset)) = sum(f * x) + offset * sum(f). */
static int32_t te_m0_row_sum(const int8_t *f, int32_t n) {
  int32_t sum = 0;
  while (n-- > 0) {
    sum += *f++;
  }
  return sum;
}

/* out[oc] (`out_step` bytes apart) for every output channel of one int8 input vector `x` against filter
 * rows of n weights, two rows per pass; a nonzero input offset is applied through the rows' sums. */
static void te_m0_rows(int8_t *out, int32_t out_step, const int8_t *x, const int8_t *filter, int32_t n,
                       int32_t out_c, const int32_t *bias, const te_requant_t *q) {
  int32_t oc, s0, s1;
  for (oc = 0; oc < out_c; oc += 2) {
    const int8_t *f0 = filter + oc * n;
    const int8_t *f1 = oc + 1 < out_c ? f0 + n : f0;
    te_m0_dot2_s8(x, f0, f1, n, &s0, &s1);
    if (q->input_offset != 0) {
      s0 += q->input_offset * te_m0_row_sum(f0, n);
      s1 += q->input_offset * te_m0_row_sum(f1, n);
    }
    out[oc * out_step] = te_m0_output(s0, bias, oc, q);
    if (oc + 1 < out_c) {
      out[(oc + 1) * out_step] = te_m0_output(s1, bias, oc + 1, q);
    }
  }
}

void te_m0_pointwise_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                                    const te_window_t *window, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  int32_t p, pixels;
  memcpy(&w, window, sizeof w);
  memcpy(&q, requant, sizeof q);
  pixels = (int32_t)w.in_h * w.in_w;
  for (p = 0; p < pixels; ++p) {
    te_m0_rows(scratch, 1, data + p * w.in_c, filter, w.in_c, w.out_c, bias, &q);
    memcpy(data + p * w.out_c, scratch, (size_t)w.out_c);
  }
}

void te_m0_fully_connected(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                           int16_t batches, int16_t accum_depth, int16_t out_depth, const te_requant_t *requant) {
  te_requant_t q;
  int16_t b;
  memcpy(&q, requant, sizeof q);
  for (b = 0; b < batches; ++b) {
    te_m0_rows(out, 1, in, filter, accum_depth, out_depth, bias, &q);
    out += out_depth;
    in += accum_depth;
  }
}

#define TE_M0_ROWS_PER_WINDOW 32

/* One output's window gathered as int16 in TFLM's filter order (ky, kx, ic), the input offset added,
 * zero where the window leaves the input (a padded tap adds nothing). rows[ky] is the input row the
 * window's row ky reads, or 0 above or below the input; ix0 the window's first column. */
static void te_m0_gather(int16_t *col, const int8_t *const *rows, const te_window_t *w, int16_t ix0,
                         int16_t input_offset) {
  /* The window's fields in locals: the int16 stores to col could otherwise alias them. */
  const int32_t k_h = w->k_h, k_w = w->k_w, dil_w = w->dil_w, in_w = w->in_w, in_c = w->in_c;
  const int32_t offset = input_offset;
  const int inside = ix0 >= 0 && ix0 + dil_w * (k_w - 1) < in_w;   /* no column leaves the input */
  int32_t ky, kx, c;
  if (in_c == 1 && dil_w == 1) {   /* one value per tap: the row's taps inside the input, zeros around */
    const int32_t first = ix0 >= 0 ? 0 : -ix0 < k_w ? -ix0 : k_w;
    const int32_t last = in_w - ix0 < k_w ? in_w - ix0 : k_w;   /* taps [first, last) are inside */
    for (ky = 0; ky < k_h; ++ky) {
      const int8_t *row = rows[ky];
      if (row && inside) {
        const int8_t *src = row + ix0;
        const int8_t *pairs_end = src + (k_w & ~1);
        while (src < pairs_end) {
          const int32_t a = src[0] + offset, b = src[1] + offset;
          col[0] = (int16_t)a;
          col[1] = (int16_t)b;
          col += 2;
          src += 2;
        }
        if (k_w & 1) {
          *col++ = (int16_t)(*src + offset);
        }
        continue;
      }
      if (!row) {
        memset(col, 0, (size_t)k_w * sizeof *col);
        col += k_w;
        continue;
      }
      for (kx = 0; kx < first; ++kx) {
        *col++ = 0;
      }
      for (; kx < last; ++kx) {
        *col++ = (int16_t)(row[ix0 + kx] + offset);
      }
      for (; kx < k_w; ++kx) {
        *col++ = 0;
      }
    }
    return;
  }
  for (ky = 0; ky < k_h; ++ky) {
    const int8_t *row = rows[ky];
    for (kx = 0; kx < k_w; ++kx) {
      const int32_t ix = ix0 + dil_w * kx;
      if (!row || ix < 0 || ix >= in_w) {
        for (c = 0; c < in_c; ++c) {
          *col++ = 0;
        }
      } else {
        const int8_t *src = row + ix * in_c;
        for (c = 0; c < in_c; ++c) {
          *col++ = (int16_t)(src[c] + offset);
        }
      }
    }
  }
}

/* The output channels of one pixel from its gathered window: two filter rows of n weights per pass. */
static void te_m0_pixel(int8_t *out, const int16_t *col, const int8_t *filter, int32_t n, const int32_t *bias,
                        int32_t out_c, const te_requant_t *requant) {
  te_requant_t local;   /* a copy the int8 stores to out cannot alias: its fields stay in registers */
  const te_requant_t *q = &local;
  int32_t oc, s0, s1;
  memcpy(&local, requant, sizeof local);
  for (oc = 0; oc < out_c; oc += 2) {
    const int8_t *f0 = filter + oc * n;
    const int8_t *f1 = oc + 1 < out_c ? f0 + n : f0;
    te_m0_dot2_s16(col, f0, f1, n, &s0, &s1);
    out[oc] = te_m0_output(s0, bias, oc, q);
    if (oc + 1 < out_c) {
      out[oc + 1] = te_m0_output(s1, bias, oc + 1, q);
    }
  }
}

#define TE_M0_CHANNELS_MAX 32

/* One output channel's bias and requantization, resolved once per layer. */
typedef struct {
  int32_t bias;
  int32_t multiplier;
  int32_t left;    /* the left shift before the multiply */
  int32_t right;   /* the rounding right shift after it */
} te_m0_channel_t;

typedef struct {
  te_m0_channel_t channel[TE_M0_CHANNELS_MAX];
  int32_t output_offset, act_min, act_max;
} te_m0_channels_t;

/* The layer's per-channel figures; 0 when it has more output channels than the table holds. */
static int te_m0_resolve_channels(te_m0_channels_t *t, const int32_t *bias, int32_t out_c, const te_requant_t *q) {
  int32_t oc;
  if (out_c > TE_M0_CHANNELS_MAX) {
    return 0;
  }
  for (oc = 0; oc < out_c; ++oc) {
    const int32_t i = (q->per_channel & TE_REQUANT_PER_CHANNEL) ? oc : 0;
    const int32_t shift = TE_RD_S8(q->shift + i);
    t->channel[oc].bias = bias ? TE_RD_S32(bias + oc) : 0;
    t->channel[oc].multiplier = TE_RD_S32(q->multiplier + i);
    t->channel[oc].left = shift > 0 ? shift : 0;
    t->channel[oc].right = shift > 0 ? 0 : -shift;
  }
  t->output_offset = q->output_offset;
  t->act_min = q->act_min;
  t->act_max = q->act_max;
  return 1;
}

/* te_m0_output's result from a resolved channel. */
static inline __attribute__((always_inline)) int8_t te_m0_channel_output(int32_t acc, const te_m0_channel_t *c,
                                                                         int32_t output_offset, int32_t act_min,
                                                                         int32_t act_max) {
  const int32_t x = (int32_t)((uint32_t)(acc + c->bias) << c->left);
  const int32_t m = c->multiplier;
  const int32_t v = m >= 0x40000000 ? te_m0_srdhm_normal(x, m) : te_m0_srdhm(x, m);
  const int32_t right = c->right;
  const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
  const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)v >> 31);
  int32_t r = (v >> right) + ((v & mask) > threshold ? 1 : 0) + output_offset;
  if (r < act_min) {
    r = act_min;
  }
  if (r > act_max) {
    r = act_max;
  }
  return (int8_t)r;
}

/* te_m0_pixel with the layer's channels resolved. */
static void te_m0_pixel_resolved(int8_t *out, const int16_t *col, const int8_t *filter, int32_t n, int32_t out_c,
                                 const te_m0_channels_t *t) {
  const int32_t output_offset = t->output_offset, act_min = t->act_min, act_max = t->act_max;
  const te_m0_channel_t *c = t->channel;
  /* Whole aligned quads (col is word-aligned): the assembly loop without te_m0_dot2_s16's checks. */
  const int quads_only = (n & 3) == 0 && ((uintptr_t)filter & 3u) == 0;
  int32_t oc, s0, s1;
  for (oc = 0; oc < out_c; oc += 2) {
    const int8_t *f0 = filter + oc * n;
    const int8_t *f1 = oc + 1 < out_c ? f0 + n : f0;
    if (quads_only) {
      s0 = 0;
      s1 = 0;
      te_m0_dot2_halves((const uint32_t *)col, (const uint32_t *)f0, (const uint32_t *)f1, n >> 2, &s0, &s1);
    } else {
      te_m0_dot2_s16(col, f0, f1, n, &s0, &s1);
    }
    out[oc] = te_m0_channel_output(s0, c + oc, output_offset, act_min, act_max);
    if (oc + 1 < out_c) {
      out[oc + 1] = te_m0_channel_output(s1, c + oc + 1, output_offset, act_min, act_max);
    }
  }
}

#define TE_M0_BAND_MAX 512

/* For a one-channel input with dilation 1: the k_h input rows one output row's windows read, as int16
 * with the input offset added and 0 for padding, `cols` values per row (band column c is input column
 * c - pad_w). Each window is then k_h runs of k_w values, copied word by word. */
static void te_m0_fill_band(int16_t *band, int32_t cols, const int8_t *const *rows, const te_window_t *w,
                            int32_t offset) {
  const int32_t k_h = w->k_h, pad_w = w->pad_w, in_w = w->in_w;
  const int32_t first = pad_w < cols ? pad_w : cols;                          /* columns before the input */
  const int32_t last = pad_w + in_w < cols ? pad_w + in_w : cols;           /* end of the input's columns */
  int32_t ky, c;
  for (ky = 0; ky < k_h; ++ky) {
    int16_t *dst = band + ky * cols;
    const int8_t *row = rows[ky];
    if (!row) {
      memset(dst, 0, (size_t)cols * sizeof *dst);
      continue;
    }
    for (c = 0; c < first; ++c) {
      dst[c] = 0;
    }
    for (; c < last; ++c) {
      dst[c] = (int16_t)(row[c - pad_w] + offset);
    }
    for (; c < cols; ++c) {
      dst[c] = 0;
    }
  }
}

/* `words` words from src to dst, both word-aligned: four per LDM/STM pair on Thumb-1. */
static inline __attribute__((always_inline)) void te_m0_copy_words(uint32_t *dst, const uint32_t *src, int32_t words) {
#if defined(__thumb__) && !defined(__thumb2__)
  while (words >= 4) {
    uint32_t a, b, c, d;
    __asm__ volatile(".syntax unified\n\tldm %[s]!, {%[a], %[b], %[c], %[d]}\n\t"
                     "stm %[o]!, {%[a], %[b], %[c], %[d]}\n\t.syntax divided\n"
                     : [s] "+l"(src), [o] "+l"(dst), [a] "=&l"(a), [b] "=&l"(b), [c] "=&l"(c), [d] "=&l"(d)
                     :
                     : "memory");
    words -= 4;
  }
#endif
  while (words-- > 0) {
    *dst++ = *src++;
  }
}

/* One window (k_h runs of k_w values) from the band, starting at band column `start`. */
static void te_m0_window_from_band(int16_t *col, const int16_t *band, int32_t cols, int32_t start,
                                   int32_t k_h, int32_t k_w) {
  const int16_t *src = band + start;
  int32_t ky, kx;
  if (((start | cols) & 1) == 0 && k_w == 8) {   /* four words a row: one LDM/STM pair */
    const uint32_t *from = (const uint32_t *)src;
    uint32_t *to = (uint32_t *)col;
    const int32_t skip = (cols - 8) >> 1;   /* words between two window rows */
    for (ky = 0; ky < k_h; ++ky) {
      te_m0_copy_words(to, from, 4);
      to += 4;
      from += 4 + skip;
    }
    return;
  }
  if (((start | cols | k_w) & 1) == 0) {
    for (ky = 0; ky < k_h; ++ky) {
      te_m0_copy_words((uint32_t *)col, (const uint32_t *)src, k_w >> 1);
      col += k_w;
      src += cols;
    }
    return;
  }
  for (ky = 0; ky < k_h; ++ky) {
    for (kx = 0; kx < k_w; ++kx) {
      *col++ = src[kx];
    }
    src += cols;
  }
}

/* The convolution with filter rows of k_h*k_w*in_c weights (TFLM's order): each output pixel's window
 * gathered once, then two output channels per pass. 0 (nothing done) when the window passes the buffers. */
static int te_m0_convolve(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                          const te_window_t *w, const te_requant_t *q) {
  int16_t col[TE_M0_WINDOW_MAX] __attribute__((aligned(4)));
  const int8_t *rows[TE_M0_ROWS_PER_WINDOW];
  const int32_t n = (int32_t)w->k_h * w->k_w * w->in_c;
  const int32_t row_bytes = (int32_t)w->in_w * w->in_c;
  int16_t band[TE_M0_BAND_MAX] __attribute__((aligned(4)));
  te_m0_channels_t channels;
  int resolved, banded;
  int32_t band_cols;
  int16_t oy, ox, ky;
  if (n > TE_M0_WINDOW_MAX || w->k_h > TE_M0_ROWS_PER_WINDOW) {
    return 0;
  }
  resolved = te_m0_resolve_channels(&channels, bias, w->out_c, q);
  band_cols = (int32_t)(w->out_w - 1) * w->stride_w + w->k_w;
  banded = w->in_c == 1 && w->dil_w == 1 && (int32_t)w->k_h * band_cols <= TE_M0_BAND_MAX;
  for (oy = 0; oy < w->out_h; ++oy) {
    for (ky = 0; ky < w->k_h; ++ky) {
      const int16_t iy = (int16_t)(oy * w->stride_h - w->pad_h + w->dil_h * ky);
      rows[ky] = iy >= 0 && iy < w->in_h ? in + (int32_t)iy * row_bytes : 0;
    }
    if (banded) {
      te_m0_fill_band(band, band_cols, rows, w, q->input_offset);
    }
    for (ox = 0; ox < w->out_w; ++ox) {
      if (banded) {
        te_m0_window_from_band(col, band, band_cols, (int32_t)ox * w->stride_w, w->k_h, w->k_w);
      } else {
        te_m0_gather(col, rows, w, (int16_t)(ox * w->stride_w - w->pad_w), q->input_offset);
      }
      if (resolved) {
        te_m0_pixel_resolved(out, col, filter, n, w->out_c, &channels);
      } else {
        te_m0_pixel(out, col, filter, n, bias, w->out_c, q);
      }
      out += w->out_c;
    }
  }
  return 1;
}

/* te_conv2d_inplace's contract (stride 1, same height and width, out_c == in_c; `scratch` holds the
 * pad_h input rows above the current one as a ring, then one output row), windows gathered as above. */
void te_m0_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                          const te_window_t *window, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  int16_t col[TE_M0_WINDOW_MAX] __attribute__((aligned(4)));
  const int8_t *rows[TE_M0_ROWS_PER_WINDOW];
  int32_t n, row_bytes;
  int8_t *row_out;
  int16_t oy, ox, ky;
  memcpy(&w, window, sizeof w);
  memcpy(&q, requant, sizeof q);
  n = (int32_t)w.k_h * w.k_w * w.in_c;
  if (n > TE_M0_WINDOW_MAX || w.k_h > TE_M0_ROWS_PER_WINDOW) {
    te_conv2d_inplace(data, scratch, filter, bias, window, requant);
    return;
  }
  row_bytes = (int32_t)w.in_w * w.in_c;
  row_out = scratch + (int32_t)w.pad_h * row_bytes;
  for (oy = 0; oy < w.out_h; ++oy) {
    for (ky = 0; ky < w.k_h; ++ky) {
      const int16_t iy = (int16_t)(oy - w.pad_h + ky);
      /* Rows above this one were overwritten: their input lives in the ring. */
      rows[ky] = iy < 0 || iy >= w.in_h ? 0
                 : iy < oy ? scratch + (int32_t)(iy % w.pad_h) * row_bytes : data + (int32_t)iy * row_bytes;
    }
    for (ox = 0; ox < w.out_w; ++ox) {
      te_m0_gather(col, rows, &w, (int16_t)(ox - w.pad_w), q.input_offset);
      te_m0_pixel(row_out + (int32_t)ox * w.out_c, col, filter, n, bias, w.out_c, &q);
    }
    if (w.pad_h > 0) {
      memcpy(scratch + (int32_t)(oy % w.pad_h) * row_bytes, data + (int32_t)oy * row_bytes, (size_t)row_bytes);
    }
    memcpy(data + (int32_t)oy * row_bytes, row_out, (size_t)row_bytes);
  }
}

void te_m0_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                  const te_window_t *window, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  memcpy(&w, window, sizeof w);
  memcpy(&q, requant, sizeof q);
  if (!te_m0_convolve(out, in, filter, bias, &w, &q)) {
    te_conv2d(out, in, filter, bias, window, requant);
  }
}

/* A depthwise convolution of a one-channel input (micro_speech's first layer) is a convolution whose
 * filter rows are the depthwise filter ([k_h][k_w][out_c]) transposed: done so when that fits. */
#define TE_M0_ROWS_MAX 2048
static int te_m0_single_channel_depthwise(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                                          const te_window_t *w, const te_requant_t *q) {
  int8_t rows[TE_M0_ROWS_MAX] __attribute__((aligned(4)));
  const int32_t taps = (int32_t)w->k_h * w->k_w;
  int32_t t, oc;
  if (w->in_c != 1 || taps * w->out_c > TE_M0_ROWS_MAX) {
    return 0;
  }
  for (oc = 0; oc < w->out_c; ++oc) {
    for (t = 0; t < taps; ++t) {
      rows[oc * taps + t] = TE_RD_S8(filter + t * w->out_c + oc);
    }
  }
  return te_m0_convolve(out, in, rows, bias, w, q);
}

/* A channel's input plane with its padding, for the depthwise kernels: every window lies inside it. */
typedef struct {
  int8_t *cells;
  int32_t width;   /* bytes per row */
} te_m0_plane_t;

/* Rows and columns of the padded plane: all the rows and columns any output window reads. */
static int32_t te_m0_plane_rows(const te_window_t *w) {
  return (int32_t)(w->out_h - 1) * w->stride_h + (int32_t)(w->k_h - 1) * w->dil_h + 1;
}

static int32_t te_m0_plane_cols(const te_window_t *w) {
  return (int32_t)(w->out_w - 1) * w->stride_w + (int32_t)(w->k_w - 1) * w->dil_w + 1;
}

/* Channel `c` of `src` (pixels `pixel_stride` bytes apart) into the plane, outside the input filled
 * with the input's zero point (-input_offset), which adds nothing once the offset is added. */
static void te_m0_fill_plane(te_m0_plane_t *plane, int32_t rows, const int8_t *src, int32_t pixel_stride,
                             const te_window_t *w, int16_t input_offset) {
  int32_t y, x;
  memset(plane->cells, (int8_t)-input_offset, (size_t)(rows * plane->width));
  for (y = 0; y < w->in_h; ++y) {
    const int32_t py = y + w->pad_h;
    int8_t *row;
    const int8_t *in_row = src + (int32_t)y * w->in_w * pixel_stride;
    if (py < 0 || py >= rows) {
      continue;
    }
    row = plane->cells + py * plane->width;
    for (x = 0; x < w->in_w; ++x) {
      const int32_t px = x + w->pad_w;
      if (px >= 0 && px < plane->width) {
        row[px] = in_row[x * pixel_stride];
      }
    }
  }
}

/* Channel `oc`'s k_h*k_w weights (filter is [k_h][k_w][out_c]) as int32, and their sum. */
static int32_t te_m0_taps(int32_t *taps, const int8_t *filter, const te_window_t *w, int32_t oc) {
  int32_t t, sum = 0, count = (int32_t)w->k_h * w->k_w;
  for (t = 0; t < count; ++t) {
    taps[t] = TE_RD_S8(filter + t * w->out_c + oc);
    sum += taps[t];
  }
  return sum;
}

/* 3x3 windows with dilation 1 (the depthwise layers of DS-CNNs and MobileNets): the nine taps in
 * locals, three row pointers walking the plane. */
static void te_m0_depthwise_3x3(int8_t *out, int32_t out_stride, const te_m0_plane_t *plane, const int32_t *taps,
                                int32_t base, const te_window_t *w, const int32_t *bias, int32_t oc,
                                const te_requant_t *q) {
  const int32_t t0 = taps[0], t1 = taps[1], t2 = taps[2], t3 = taps[3], t4 = taps[4], t5 = taps[5];
  const int32_t t6 = taps[6], t7 = taps[7], t8 = taps[8];
  const int32_t step = w->stride_w;
  const int32_t row_step = (int32_t)w->dil_h * plane->width;
  int16_t oy, ox;
  for (oy = 0; oy < w->out_h; ++oy) {
    const int8_t *r0 = plane->cells + (int32_t)oy * w->stride_h * plane->width;
    const int8_t *r1 = r0 + row_step;
    const int8_t *r2 = r1 + row_step;
    for (ox = 0; ox < w->out_w; ++ox) {
      int32_t acc = base + t0 * r0[0] + t1 * r0[1] + t2 * r0[2];
      acc += t3 * r1[0] + t4 * r1[1] + t5 * r1[2];
      acc += t6 * r2[0] + t7 * r2[1] + t8 * r2[2];
      *out = te_m0_output(acc, bias, oc, q);
      out += out_stride;
      r0 += step;
      r1 += step;
      r2 += step;
    }
  }
}

/* Every output of one channel: sum(tap * (x + offset)) = sum(tap * x) + offset * sum(taps), the
 * window always whole in the padded plane; written `out_stride` bytes apart from `out`. */
static void te_m0_depthwise_channel(int8_t *out, int32_t out_stride, const te_m0_plane_t *plane,
                                    const int32_t *taps, int32_t tap_sum, const te_window_t *w,
                                    const int32_t *bias, int32_t oc, const te_requant_t *q) {
  const int32_t base = tap_sum * q->input_offset;
  const int32_t row_step = (int32_t)w->dil_h * plane->width;
  int16_t oy, ox, ky, kx;
  if (w->k_h == 3 && w->k_w == 3 && w->dil_w == 1) {
    te_m0_depthwise_3x3(out, out_stride, plane, taps, base, w, bias, oc, q);
    return;
  }
  for (oy = 0; oy < w->out_h; ++oy) {
    const int8_t *window_row = plane->cells + (int32_t)oy * w->stride_h * plane->width;
    for (ox = 0; ox < w->out_w; ++ox) {
      const int8_t *row = window_row + (int32_t)ox * w->stride_w;
      const int32_t *tap = taps;
      int32_t acc = base;
      for (ky = 0; ky < w->k_h; ++ky) {
        if (w->dil_w == 1) {
          for (kx = 0; kx < w->k_w; ++kx) {
            acc += tap[kx] * row[kx];
          }
        } else {
          for (kx = 0; kx < w->k_w; ++kx) {
            acc += tap[kx] * row[kx * w->dil_w];
          }
        }
        tap += w->k_w;
        row += row_step;
      }
      *out = te_m0_output(acc, bias, oc, q);
      out += out_stride;
    }
  }
}

#define TE_M0_TAPS_MAX 128
#define TE_M0_PLANE_MAX 3072

/* The depthwise convolution, channel by channel through a padded plane; 0 (nothing done) when the
 * window or the plane is larger than the stack buffers. `out` may be `in` when depth_multiplier is 1:
 * a channel's plane is copied out before its outputs overwrite its slots, and out_c == in_c, so no other
 * channel's input is touched. */
static int te_m0_depthwise(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                           const te_window_t *window, int16_t depth_multiplier, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  int32_t taps[TE_M0_TAPS_MAX];
  int8_t cells[TE_M0_PLANE_MAX];
  te_m0_plane_t plane;
  int32_t rows;
  int16_t ic, m;
  memcpy(&w, window, sizeof w);
  memcpy(&q, requant, sizeof q);
  if ((int32_t)w.k_h * w.k_w > TE_M0_TAPS_MAX || te_m0_plane_rows(&w) * te_m0_plane_cols(&w) > TE_M0_PLANE_MAX) {
    return 0;
  }
  plane.cells = cells;
  plane.width = te_m0_plane_cols(&w);
  rows = te_m0_plane_rows(&w);
  for (ic = 0; ic < w.in_c; ++ic) {
    te_m0_fill_plane(&plane, rows, in + ic, w.in_c, &w, q.input_offset);
    for (m = 0; m < depth_multiplier; ++m) {
      const int16_t oc = (int16_t)(ic * depth_multiplier + m);
      const int32_t sum = te_m0_taps(taps, filter, &w, oc);
      te_m0_depthwise_channel(out + oc, w.out_c, &plane, taps, sum, &w, bias, oc, &q);
    }
  }
  return 1;
}

void te_m0_depthwise_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                            const te_window_t *window, int16_t depth_multiplier, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  memcpy(&w, window, sizeof w);
  memcpy(&q, requant, sizeof q);
  if (te_m0_single_channel_depthwise(out, in, filter, bias, &w, &q)) {
    return;
  }
  if (!te_m0_depthwise(out, in, filter, bias, window, depth_multiplier, requant)) {
    te_depthwise_conv2d(out, in, filter, bias, window, depth_multiplier, requant);
  }
}

/* The plane replaces the portable kernel's scratch. */
void te_m0_depthwise_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                                    const te_window_t *window, const te_requant_t *requant) {
  if (!te_m0_depthwise(data, data, filter, bias, window, 1, requant)) {
    te_depthwise_conv2d_inplace(data, scratch, filter, bias, window, requant);
  }
}
