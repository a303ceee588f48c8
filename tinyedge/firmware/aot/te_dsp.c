/* Fast int8 kernels for cores with the Arm DSP extension; see te_dsp.h. */
#include "te_dsp.h"

#include <string.h>

#include "te_dsp_insn.h"

#if TE_DSP_INSN
#define TE_DSP_NOINLINE __attribute__((noinline))
#else
#define TE_DSP_NOINLINE
#endif

#define TE_DSP_STR_(x) #x
#define TE_DSP_STR(x) TE_DSP_STR_(x)

static inline int32_t te_read_s16x2(const int16_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline int32_t te_pair(int32_t lo, int32_t hi) {
  return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}

/* The per-op part of the requantization, read once per kernel call. */
typedef struct {
  int32_t output_offset, act_min, act_max;
} te_dsp_clamp_t;

/* The per-channel part: TFLM's multiplier, its shift split into left and right shifts, and for a
 * right shift the rounding constant of the one-step form below. */
typedef struct {
  int32_t multiplier, left, right;
  uint32_t round_lo;
  int32_t round_hi;
} te_dsp_scale_t;

static inline te_dsp_clamp_t te_dsp_clamp(const te_requant_t *q) {
  te_dsp_clamp_t c;
  c.output_offset = q->output_offset;
  c.act_min = q->act_min;
  c.act_max = q->act_max;
  return c;
}

static inline te_dsp_scale_t te_dsp_scale(const te_requant_t *q, int32_t channel) {
  te_dsp_scale_t s;
  const int32_t i = (q->per_channel & TE_REQUANT_PER_CHANNEL) ? channel : 0;
  const int32_t shift = TE_RD_S8(q->shift + i);
  s.multiplier = TE_RD_S32(q->multiplier + i);
  s.left = shift > 0 ? shift : 0;
  s.right = shift > 0 ? 0 : -shift;
  /* 2^30 + 2^(30 + right) (right > 0) as two words. */
  s.round_lo = s.right == 1 ? 0xC0000000u : 0x40000000u;
  s.round_hi = s.right >= 2 ? (int32_t)1 << (s.right - 2) : 0;
  return s;
}

/* TFLM's MultiplyByQuantizedMultiplier is RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
 * x, m), r) with x = acc << left. For a multiplier m in [0, 2^31) the saturating case cannot occur
 * and the first step is y = floor((x*m + 2^30) / 2^31); rounding half away from zero is then
 * floor((y + 2^(r-1) - [y < 0]) / 2^r), and the two floors merge into one:
 *   floor((x*m + 2^30 + 2^(30+r) - [x < 0] * 2^31) / 2^(31+r))
 * ([x < 0] may stand for [y < 0]: they differ only where y = 0, and there both give 0). */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
static inline int32_t te_dsp_scale_value(int32_t x, te_dsp_scale_t s) {
  uint32_t lo = s.round_lo;
  int32_t hi = s.round_hi;
  __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(x), "r"(s.multiplier));
  if (s.right == 0) {
    return (int32_t)(((uint32_t)hi << 1) | (lo >> 31));
  }
  __asm__("adds %0, %0, %2, lsl #31\n\tadc %1, %1, %2" : "+r"(lo), "+r"(hi) : "r"(x >> 31) : "cc");
  return hi >> (s.right - 1);
}
#else
static inline int32_t te_dsp_scale_value(int32_t x, te_dsp_scale_t s) {
  int64_t n = (int64_t)x * s.multiplier + (int64_t)(((uint64_t)(uint32_t)s.round_hi << 32) | s.round_lo);
  if (s.right == 0) {
    return (int32_t)(n >> 31);
  }
  n -= x < 0 ? (int64_t)1 << 31 : 0;
  return (int32_t)(n >> (31 + s.right));
}
#endif

/* The requantization of one output: scale, output offset, activation clamp. */
static inline int8_t te_dsp_requantize(int32_t acc, te_dsp_scale_t s, te_dsp_clamp_t c) {
  int32_t x = te_dsp_scale_value((int32_t)((uint32_t)acc << s.left), s) + c.output_offset;
  x = x < c.act_min ? c.act_min : x;
  x = x > c.act_max ? c.act_max : x;
  return (int8_t)x;
}

/* With TE_REQUANT_BOUNDED (|acc * 2^left| < 2^30, checked by the generator) and a right shift r >= 1
 * there is a shorter exact form: x = acc * 2^(left+1) fits in 32 bits, so y = SMMULR(x, m) =
 * floor((x*m + 2^31) / 2^32) is SaturatingRoundingDoublingHighMul, |y| < 2^30, and
 * RoundingDivideByPOT(y, r) = (y - [y < 0] + 2^(r-1)) >> r without overflow. */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
static inline int32_t te_dsp_smmulr(int32_t a, int32_t b) {
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
#else
static inline int32_t te_dsp_smmulr(int32_t a, int32_t b) {
  return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
}
#endif

typedef struct {
  int32_t multiplier, left, right, half;
} te_dsp_fast_t;

/* The short form's constants for scale i (its shift is negative). */
static inline void te_dsp_fast_fill(const te_requant_t *q, int32_t i, te_dsp_fast_t *f) {
  f->multiplier = TE_RD_S32(q->multiplier + i);
  f->left = 1;
  f->right = -TE_RD_S8(q->shift + i);
  f->half = (int32_t)1 << (f->right - 1);
}

/* The short form's constants for channel i, or 0 where it does not apply. */
static inline uint8_t te_dsp_fast_scale(const te_requant_t *q, int32_t channel, te_dsp_fast_t *f) {
  const int32_t i = (q->per_channel & TE_REQUANT_PER_CHANNEL) ? channel : 0;
  if (!(q->per_channel & TE_REQUANT_BOUNDED) || TE_RD_S8(q->shift + i) >= 0) {
    return 0;
  }
  te_dsp_fast_fill(q, i, f);
  return 1;
}

/* The short form when act_max is 127 (no activation, or RELU): SSAT does the upper clamp. */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
static inline int32_t te_dsp_requantize_fast127(int32_t acc, int32_t multiplier, int32_t right, int32_t half,
                                                int32_t offset, int32_t lo) {
  int32_t y;
  __asm__("lsl %0, %1, #1\n\t"
          "smmulr %0, %0, %2\n\t"
          "sub %0, %0, %0, lsr #31\n\t"
          "add %0, %0, %3\n\t"
          "asr %0, %0, %4\n\t"
          "add %0, %0, %5\n\t"
          "ssat %0, #8, %0\n\t"
          "cmp %0, %6\n\t"
          "it lt\n\t"
          "movlt %0, %6"
          : "=&r"(y)
          : "r"(acc), "r"(multiplier), "r"(half), "r"(right), "r"(offset), "r"(lo)
          : "cc");
  return y;
}
#else
static inline int32_t te_dsp_requantize_fast127(int32_t acc, int32_t multiplier, int32_t right, int32_t half,
                                                int32_t offset, int32_t lo) {
  int32_t y = te_dsp_smmulr((int32_t)((uint32_t)acc << 1), multiplier);
  y = ((y - (int32_t)((uint32_t)y >> 31) + half) >> right) + offset;
  y = y < -128 ? -128 : y > 127 ? 127 : y;
  return y < lo ? lo : y;
}
#endif

static inline int8_t te_dsp_requantize_fast(int32_t acc, te_dsp_fast_t f, int32_t offset, int32_t lo, int32_t hi) {
  int32_t y = te_dsp_smmulr((int32_t)((uint32_t)acc << f.left), f.multiplier);
  y = ((y - (int32_t)((uint32_t)y >> 31) + f.half) >> f.right) + offset;
  y = y < lo ? lo : y;
  return (int8_t)(y > hi ? hi : y);
}

/* `slot` TE_DSP_SOLO: a column of its own (words x0e x0o per group), for windows too large to
 * hold two columns of in the scratch. */
#define TE_DSP_SOLO 2

/* The im2col buffer holds two columns (pixels), interleaved per group of four elements: words
 * x0e x0o x1e x1o, where x0e holds elements 0 and 2 of pixel 0's group and x0o elements 1 and 3 --
 * the halves SXTB16 and SXTB16 ROR 8 unpack from a word of four int8 weights. Columns are padded
 * with zeros to whole groups, as the filter rows are (te_dsp.h). */
static inline void te_dsp_widen_group(int32_t *dst, int32_t v, int32_t offsets) {
  dst[0] = te_sxtab16(offsets, v);
  dst[1] = te_sxtab16_ror8(offsets, v);
}

/* memcpy for the few bytes of a window row (ResNet-8's first 3x3x3 window: 9): a word at a time
 * with unaligned word accesses, then the tail, where newlib's memcpy call went byte by byte. */
static inline void te_dsp_copy_short(int8_t *dst, const int8_t *src, int32_t n) {
  for (; n >= 4; n -= 4, dst += 4, src += 4) {
    const int32_t v = te_read_s8x4(src);
    memcpy(dst, &v, 4);
  }
  for (; n > 0; --n) {
    *dst++ = *src++;
  }
}

/* Channel counts that are not a multiple of four: the window is first copied as bytes (taps
 * outside the input hold the input zero point, which widens to 0) into the bytes after the two
 * columns, then widened a word at a time. */
static void te_dsp_im2col_bytes(int16_t *col, uint8_t slot, const int8_t *const *rows, int16_t ix0,
                                const te_window_t *w, int16_t input_offset) {
  const int32_t in_c = w->in_c;
  const int32_t size = (int32_t)w->k_h * w->k_w * in_c;
  const int32_t whole = (size + 3) & ~3;
  const int32_t offsets = te_pair(input_offset, input_offset);
  const int8_t zero_point = (int8_t)-input_offset;
  const int32_t span = (int32_t)w->k_w * in_c;
  const int32_t lanes = slot == TE_DSP_SOLO ? 1 : 2;
  int8_t *bytes = (int8_t *)(void *)(col + lanes * whole);
  int8_t *dst = bytes;
  int32_t *words = (int32_t *)(void *)col + (slot == TE_DSP_SOLO ? 0 : slot * 2);
  int32_t g;
  te_dim ky, kx;
  for (ky = 0; ky < w->k_h; ++ky) {
    if (rows[ky] == 0) {
      memset(dst, zero_point, (size_t)span);
    } else if (w->dil_w == 1 && ix0 >= 0 && ix0 + w->k_w <= w->in_w) {
      te_dsp_copy_short(dst, rows[ky] + (int32_t)ix0 * in_c, span);
    } else {
      for (kx = 0; kx < w->k_w; ++kx) {
        const int16_t ix = (int16_t)(ix0 + w->dil_w * kx);
        if (ix >= 0 && ix < w->in_w) {
          memcpy(dst + (int32_t)kx * in_c, rows[ky] + (int32_t)ix * in_c, (size_t)in_c);
        } else {
          memset(dst + (int32_t)kx * in_c, zero_point, (size_t)in_c);
        }
      }
    }
    dst += span;
  }
  for (; dst < bytes + whole; ++dst) {
    *dst = zero_point;
  }
  for (g = 0; g < whole; g += 4) {
    te_dsp_widen_group(words, te_read_s8x4(bytes + g), offsets);
    words += 2 * lanes;
  }
}

/* `groups` groups of four int8 values from src widened into dst, a group's two words every `step`
 * words (4: a two-pixel column, 2: a solo one). In assembly two groups a pass with post-increment
 * loads: 8 cycles a group (mid) where the compiler's loop took 10.5. */
#if TE_DSP_INSN
#define TE_DSP_WIDEN_LOOP(STEP)                                                                     \
  __asm__ volatile("1:\n\t"                                                                         \
                   "ldr %[a], [%[src]], #8\n\t"                                                    \
                   "ldr %[b], [%[src], #-4]\n\t"                                                   \
                   "sxtab16 %[t], %[off], %[a]\n\t"                                                \
                   "sxtab16 %[a], %[off], %[a], ror #8\n\t"                                        \
                   "str %[t], [%[dst]]\n\t"                                                        \
                   "str %[a], [%[dst], #4]\n\t"                                                    \
                   "sxtab16 %[t], %[off], %[b]\n\t"                                                \
                   "sxtab16 %[b], %[off], %[b], ror #8\n\t"                                        \
                   "str %[t], [%[dst], #" #STEP "]\n\t"                                            \
                   "str %[b], [%[dst], #" #STEP " + 4]\n\t"                                        \
                   "add %[dst], %[dst], #2 * " #STEP "\n\t"                                        \
                   "subs %[n], %[n], #1\n\t"                                                       \
                   "bne 1b\n\t"                                                                    \
                   : [src] "+r"(src), [dst] "+r"(dst), [n] "+r"(n), [a] "=&r"(a), [b] "=&r"(b),     \
                     [t] "=&r"(t)                                                                  \
                   : [off] "r"(offsets)                                                            \
                   : "cc", "memory")
#endif
static inline int32_t *te_dsp_widen_run(int32_t *dst, const int8_t *src, int32_t groups, int32_t step,
                                        int32_t offsets) {
#if TE_DSP_INSN
  int32_t n = groups >> 1, a, b, t;
  if (n > 0) {
    if (step == 4) {
      TE_DSP_WIDEN_LOOP(16);
    } else {
      TE_DSP_WIDEN_LOOP(8);
    }
  }
  if (groups & 1) {
    te_dsp_widen_group(dst, te_read_s8x4(src), offsets);
    dst += step;
  }
#else
  int32_t g;
  for (g = 0; g < groups; ++g) {
    te_dsp_widen_group(dst, te_read_s8x4(src + 4 * g), offsets);
    dst += step;
  }
#endif
  return dst;
}

/* Channel counts that are not a multiple of four but window rows that are (k_w * in_c, e.g. micro_speech's
 * 10x8 window over one channel): each row widened as a run of whole groups straight from the input
 * (through `row` only where it leaves the input), not copied byte by byte with memcpy calls first. */
#define TE_DSP_ROW_SPAN_MAX 64
static void te_dsp_im2col_rows(int32_t *dst, int32_t step, const int8_t *const *rows, int16_t ix0,
                               const te_window_t *w, int32_t offsets, int8_t zero_point) {
  const int32_t in_c = w->in_c, span = (int32_t)w->k_w * in_c, groups = span >> 2;
  int8_t row[TE_DSP_ROW_SPAN_MAX];
  int32_t g;
  te_dim ky, kx;
  for (ky = 0; ky < w->k_h; ++ky) {
    if (rows[ky] == 0) {
      for (g = 0; g < groups; ++g) {
        dst[0] = 0;
        dst[1] = 0;
        dst += step;
      }
    } else if (w->dil_w == 1 && ix0 >= 0 && ix0 + w->k_w <= w->in_w) {
      dst = te_dsp_widen_run(dst, rows[ky] + (int32_t)ix0 * in_c, groups, step, offsets);
    } else {
      int8_t *out = row;
      for (kx = 0; kx < w->k_w; ++kx) {
        const int16_t ix = (int16_t)(ix0 + w->dil_w * kx);
        const int8_t *src = rows[ky] + (int32_t)ix * in_c;
        const uint8_t inside = ix >= 0 && ix < w->in_w;
        int32_t c;
        for (c = 0; c < in_c; ++c) {   /* a few bytes: no memcpy call */
          *out++ = inside ? src[c] : zero_point;
        }
      }
      dst = te_dsp_widen_run(dst, row, groups, step, offsets);
    }
  }
}

/* Pixel `slot`'s column: the window whose rows are `rows[ky]` (0 outside the input) starting at
 * input column ix0, widened with the input offset; taps outside the input are 0. */
static void te_dsp_im2col(int16_t *col, uint8_t slot, const int8_t *const *rows, int16_t ix0,
                          const te_window_t *w, int16_t input_offset) {
  const int32_t in_c = w->in_c;
  const int32_t offsets = te_pair(input_offset, input_offset);
  const int32_t step = slot == TE_DSP_SOLO ? 2 : 4;
  int32_t *dst = (int32_t *)(void *)col + (slot == TE_DSP_SOLO ? 0 : slot * 2);
  te_dim ky, kx;
  if ((in_c & 3) != 0) {
    if ((((int32_t)w->k_w * in_c) & 3) == 0 && (int32_t)w->k_w * in_c <= TE_DSP_ROW_SPAN_MAX) {
      te_dsp_im2col_rows(dst, step, rows, ix0, w, offsets, (int8_t)-input_offset);
    } else {
      te_dsp_im2col_bytes(col, slot, rows, ix0, w, input_offset);
    }
    return;
  }
  for (ky = 0; ky < w->k_h; ++ky) {
    if (rows[ky] != 0 && w->dil_w == 1 && ix0 >= 0 && ix0 + w->k_w <= w->in_w) {
      /* The window's row lies inside the input: its k_w taps are one contiguous run. */
      dst = te_dsp_widen_run(dst, rows[ky] + (int32_t)ix0 * in_c, ((int32_t)w->k_w * in_c) >> 2, step, offsets);
      continue;
    }
    for (kx = 0; kx < w->k_w; ++kx) {
      const int16_t ix = (int16_t)(ix0 + w->dil_w * kx);
      const int8_t *src = rows[ky] != 0 && ix >= 0 && ix < w->in_w ? rows[ky] + (int32_t)ix * in_c : 0;
      int32_t c;
      if (src != 0) {
        for (c = 0; c < in_c; c += 4) {
          te_dsp_widen_group(dst, te_read_s8x4(src + c), offsets);
          dst += step;
        }
      } else {
        for (c = 0; c < in_c; c += 4) {
          dst[0] = 0;
          dst[1] = 0;
          dst += step;
        }
      }
    }
  }
}

/* Output channels are computed a chunk at a time: accumulators first, then their requantization,
 * each loop in its own function so that it keeps its values in registers. */
#define TE_DSP_OC_CHUNK 32

#if TE_DSP_INSN
/* One group at byte offsets X and F: four column words (pixels 0 and 1, even and odd elements) and
 * two filter words (channels 0 and 1) into the four accumulators, the same SMLADs as the C loop
 * below. Six LDRs in a row pipeline (the TRM: one cycle each after the first); LDM cannot be used,
 * it fills registers in register-number order and the compiler picks the registers. */
/* One group at byte offsets X and F from x and f: four column words (pixels 0 and 1, even and odd
 * elements) and two filter words (channels 0 and 1) into the four accumulators, the same SMLADs as
 * the C loop below. Six LDRs in a row pipeline (the TRM: one cycle each after the first); LDM cannot
 * be used, it fills registers in register-number order and the compiler picks the registers. The
 * first group of a pass loads with post-increment (TE_DSP_DOT_LOADS_POST: x and f step past the
 * pass's groups), the others at negative offsets from there, so no ADD moves the pointers. */
#define TE_DSP_DOT_LOADS_POST(XSTEP, FSTEP)          \
  "ldr %[x0e], [%[x]], #" #XSTEP "\n\t"             \
  "ldr %[x0o], [%[x], #4-" #XSTEP "]\n\t"           \
  "ldr %[x1e], [%[x], #8-" #XSTEP "]\n\t"           \
  "ldr %[x1o], [%[x], #12-" #XSTEP "]\n\t"          \
  "ldr %[w0], [%[f]], #" #FSTEP "\n\t"              \
  "ldr %[w1], [%[f], #4-" #FSTEP "]\n\t"
#define TE_DSP_DOT_LOADS(X, F)                       \
  "ldr %[x0e], [%[x], #" #X "]\n\t"                 \
  "ldr %[x0o], [%[x], #" #X "+4]\n\t"               \
  "ldr %[x1e], [%[x], #" #X "+8]\n\t"               \
  "ldr %[x1o], [%[x], #" #X "+12]\n\t"              \
  "ldr %[w0], [%[f], #" #F "]\n\t"                  \
  "ldr %[w1], [%[f], #" #F "+4]\n\t"
#define TE_DSP_DOT_MACS                              \
  "sxtb16 %[v], %[w0]\n\t"                          \
  "smlad %[a00], %[x0e], %[v], %[a00]\n\t"          \
  "smlad %[a10], %[x1e], %[v], %[a10]\n\t"          \
  "sxtb16 %[w0], %[w0], ror #8\n\t"                 \
  "smlad %[a00], %[x0o], %[w0], %[a00]\n\t"         \
  "smlad %[a10], %[x1o], %[w0], %[a10]\n\t"         \
  "sxtb16 %[v], %[w1]\n\t"                          \
  "smlad %[a01], %[x0e], %[v], %[a01]\n\t"          \
  "smlad %[a11], %[x1e], %[v], %[a11]\n\t"          \
  "sxtb16 %[w1], %[w1], ror #8\n\t"                 \
  "smlad %[a01], %[x0o], %[w1], %[a01]\n\t"         \
  "smlad %[a11], %[x1o], %[w1], %[a11]\n\t"

#define TE_DSP_DOT_OPERANDS                                                                       \
  : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [x] "+r"(x), [f] "+r"(f), \
    [n] "+r"(n), [x0e] "=&r"(x0e), [x0o] "=&r"(x0o), [x1e] "=&r"(x1e), [x1o] "=&r"(x1o),          \
    [w0] "=&r"(w0), [w1] "=&r"(w1), [v] "=&r"(v)                                                  \
  :                                                                                               \
  : "cc", "memory"

/* The dot chunk's inner loop, priced with the Cortex-M4 TRM: the six words of a group in six
 * pipelined LDRs (7 cycles) where the compiler's three LDRDs took 9 plus two pointer ADDs, a
 * down-counter's SUBS sets the flags the loop branch needs, four groups a pass and post-increment
 * loads: 20 cycles per 16 MACs (mid), was 27 with the compiler's loop and 22 with two groups a pass
 * and pointer ADDs. The remaining groups (groups % 4) one a pass. Returns f past the groups. */
static inline const int32_t *te_dsp_dot_groups(int32_t *p00, int32_t *p01, int32_t *p10, int32_t *p11,
                                               const int32_t *x, const int32_t *f, int32_t groups) {
  int32_t a00 = *p00, a01 = *p01, a10 = *p10, a11 = *p11;
  int32_t x0e, x0o, x1e, x1o, w0, w1, v;
  int32_t n = groups >> 2;
  if (n > 0) {
    __asm__ volatile("1:\n\t" TE_DSP_DOT_LOADS_POST(64, 32) TE_DSP_DOT_MACS TE_DSP_DOT_LOADS(-48, -24)
                     TE_DSP_DOT_MACS TE_DSP_DOT_LOADS(-32, -16) TE_DSP_DOT_MACS TE_DSP_DOT_LOADS(-16, -8)
                     TE_DSP_DOT_MACS
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t" TE_DSP_DOT_OPERANDS);
  }
  n = groups & 3;
  if (n > 0) {
    __asm__ volatile("1:\n\t" TE_DSP_DOT_LOADS_POST(16, 8) TE_DSP_DOT_MACS
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t" TE_DSP_DOT_OPERANDS);
  }
  *p00 = a00;
  *p01 = a01;
  *p10 = a10;
  *p11 = a11;
  return f;
}
#endif

#if TE_DSP_INSN
/* te_dsp_dot_chunk's loop over channel pairs as one assembly function, so that the pair's bias
 * loads, its four stores and the loop's bookkeeping stay out of the registers the dot loop needs
 * (all 14: a00 a01 a10 a11 = r0-r3, the six loaded words and a temporary = r4-r10, x, f, n = r11,
 * r12, lr); the caller's arguments live in a 20-byte frame. Per pair ~22 cycles (mid) around the dot
 * loop where the compiler's loop, spilling and reloading its variables, took ~40.
 *   void te_dsp_dot_pairs(int32_t *acc, const int16_t *col, const int32_t *f, const int32_t *bias,
 *                         int32_t groups, int32_t pairs)   -- groups > 0, pairs > 0, bias != 0 */
#define TE_DSP_PAIRS_LOADS_POST(XS, FS)                                                              \
  "ldr r4, [r11], #" #XS "\n\tldr r5, [r11, #4-" #XS "]\n\tldr r6, [r11, #8-" #XS "]\n\t"            \
  "ldr r7, [r11, #12-" #XS "]\n\tldr r8, [r12], #" #FS "\n\tldr r9, [r12, #4-" #FS "]\n\t"
#define TE_DSP_PAIRS_LOADS(X, F)                                                                     \
  "ldr r4, [r11, #" #X "]\n\tldr r5, [r11, #" #X "+4]\n\tldr r6, [r11, #" #X "+8]\n\t"               \
  "ldr r7, [r11, #" #X "+12]\n\tldr r8, [r12, #" #F "]\n\tldr r9, [r12, #" #F "+4]\n\t"
#define TE_DSP_PAIRS_MACS                                                                            \
  "sxtb16 r10, r8\n\tsmlad r0, r4, r10, r0\n\tsmlad r2, r6, r10, r2\n\t"                             \
  "sxtb16 r8, r8, ror #8\n\tsmlad r0, r5, r8, r0\n\tsmlad r2, r7, r8, r2\n\t"                        \
  "sxtb16 r10, r9\n\tsmlad r1, r4, r10, r1\n\tsmlad r3, r6, r10, r3\n\t"                             \
  "sxtb16 r9, r9, ror #8\n\tsmlad r1, r5, r9, r1\n\tsmlad r3, r7, r9, r3\n\t"
/* The last three groups of a pass of four or eight, at negative offsets from the stepped pointers. */
#define TE_DSP_PAIRS_LAST3                                                                           \
  TE_DSP_PAIRS_LOADS(-48, -24) TE_DSP_PAIRS_MACS TE_DSP_PAIRS_LOADS(-32, -16) TE_DSP_PAIRS_MACS        \
  TE_DSP_PAIRS_LOADS(-16, -8) TE_DSP_PAIRS_MACS
void te_dsp_dot_pairs(int32_t *acc, const int16_t *col, const int32_t *f, const int32_t *bias, int32_t groups,
                      int32_t pairs);
__asm__(".text\n\t.syntax unified\n\t.thumb\n\t.align 2\n\t"
        ".global te_dsp_dot_pairs\n\t.thumb_func\n\t.type te_dsp_dot_pairs, %function\n"
        "te_dsp_dot_pairs:\n\t"
        "push {r4-r11, lr}\n\t"
        "sub sp, sp, #20\n\t"
        "ldr r4, [sp, #56]\n\t"
        "ldr r5, [sp, #60]\n\t"
        "str r0, [sp, #0]\n\t"
        "str r1, [sp, #4]\n\t"
        "str r3, [sp, #8]\n\t"
        "str r4, [sp, #12]\n\t"
        "str r5, [sp, #16]\n\t"
        "mov r12, r2\n"
        "1:\n\t"
        "ldr r4, [sp, #8]\n\t"
        "ldr r0, [r4], #8\n\t"
        "ldr r1, [r4, #-4]\n\t"
        "ldr r11, [sp, #4]\n\t"
        "ldr lr, [sp, #12]\n\t"
        "str r4, [sp, #8]\n\t"
        "mov r2, r0\n\t"
        "mov r3, r1\n\t"
        "lsrs lr, lr, #3\n\t"
        "beq 6f\n"
        "2:\n\t" TE_DSP_PAIRS_LOADS_POST(128, 64) TE_DSP_PAIRS_MACS TE_DSP_PAIRS_LOADS(-112, -56) TE_DSP_PAIRS_MACS
        TE_DSP_PAIRS_LOADS(-96, -48) TE_DSP_PAIRS_MACS TE_DSP_PAIRS_LOADS(-80, -40) TE_DSP_PAIRS_MACS
        TE_DSP_PAIRS_LOADS(-64, -32) TE_DSP_PAIRS_MACS TE_DSP_PAIRS_LAST3
        "subs lr, lr, #1\n\t"
        "bne 2b\n"
        "6:\n\t"
        "ldr lr, [sp, #12]\n\t"
        "tst lr, #4\n\t"
        "beq 3f\n\t" TE_DSP_PAIRS_LOADS_POST(64, 32) TE_DSP_PAIRS_MACS TE_DSP_PAIRS_LAST3
        "3:\n\t"
        "ldr lr, [sp, #12]\n\t"
        "ands lr, lr, #3\n\t"
        "beq 5f\n"
        "4:\n\t" TE_DSP_PAIRS_LOADS_POST(16, 8) TE_DSP_PAIRS_MACS
        "subs lr, lr, #1\n\t"
        "bne 4b\n"
        "5:\n\t"
        "ldr r4, [sp, #0]\n\t"
        "str r1, [r4, #4]\n\t"
        "str r2, [r4, #4 * " TE_DSP_STR(TE_DSP_OC_CHUNK) "]\n\t"
        "str r3, [r4, #4 * " TE_DSP_STR(TE_DSP_OC_CHUNK) " + 4]\n\t"
        "str r0, [r4], #8\n\t"
        "ldr r5, [sp, #16]\n\t"
        "str r4, [sp, #0]\n\t"
        "subs r5, r5, #1\n\t"
        "str r5, [sp, #16]\n\t"
        "bne 1b\n\t"
        "add sp, sp, #20\n\t"
        "pop {r4-r11, pc}\n\t"
        ".size te_dsp_dot_pairs, .-te_dsp_dot_pairs\n");
#endif

/* acc[i] and acc[TE_DSP_OC_CHUNK + i]: channel oc0 + i of pixels 0 and 1, for i < n (n even or
 * reaching out_c). */
#if TE_DSP_INSN
TE_DSP_NOINLINE static void te_dsp_dot_chunk(int32_t *acc, const int16_t *col, const int32_t *filter,
                                             const int32_t *bias, int32_t groups, te_dim oc0, te_dim n) {
  /* Each pair's filter rows follow the previous pair's, so f carries on from the inner loop. */
  const int32_t *f = filter + (int32_t)oc0 * groups;
  const int32_t *b = bias != 0 ? bias + oc0 : 0;
  int32_t *const end = acc + n;
  if (b != 0 && groups > 0 && n >= 2) {
    const int32_t pairs = n >> 1;
    te_dsp_dot_pairs(acc, col, f, b, groups, pairs);
    acc += 2 * pairs;
    f += 2 * pairs * groups;
    b += 2 * pairs;
  }
  for (; acc < end; acc += 2) {
    int32_t a00 = b != 0 ? TE_RD_S32(b) : 0;
    int32_t a01 = b != 0 && acc + 1 < end ? TE_RD_S32(b + 1) : 0;
    int32_t a10 = a00, a11 = a01;
    f = te_dsp_dot_groups(&a00, &a01, &a10, &a11, (const int32_t *)(const void *)col, f, groups);
    acc[0] = a00;
    acc[1] = a01;
    acc[TE_DSP_OC_CHUNK] = a10;
    acc[TE_DSP_OC_CHUNK + 1] = a11;
    if (b != 0) {
      b += 2;
    }
  }
}
#else
TE_DSP_NOINLINE static void te_dsp_dot_chunk(int32_t *acc, const int16_t *col, const int32_t *filter,
                                             const int32_t *bias, int32_t groups, te_dim oc0, te_dim n) {
  te_dim i;
  for (i = 0; i < n; i += 2) {
    const te_dim oc = (te_dim)(oc0 + i);
    const int32_t *x = (const int32_t *)(const void *)col;
    const int32_t *f = filter + (int32_t)oc * groups;
    int32_t a00 = bias != 0 ? TE_RD_S32(bias + oc) : 0;
    int32_t a01 = bias != 0 && i + 1 < n ? TE_RD_S32(bias + oc + 1) : 0;
    int32_t a10 = a00, a11 = a01;
    int32_t g;
    for (g = 0; g < groups; ++g) {
      const int32_t x0e = x[0], x0o = x[1], x1e = x[2], x1o = x[3];
      const int32_t w0 = f[0], w1 = f[1];
      int32_t v = te_sxtb16(w0);
      a00 = te_smlad(x0e, v, a00);
      a10 = te_smlad(x1e, v, a10);
      v = te_sxtb16_ror8(w0);
      a00 = te_smlad(x0o, v, a00);
      a10 = te_smlad(x1o, v, a10);
      v = te_sxtb16(w1);
      a01 = te_smlad(x0e, v, a01);
      a11 = te_smlad(x1e, v, a11);
      v = te_sxtb16_ror8(w1);
      a01 = te_smlad(x0o, v, a01);
      a11 = te_smlad(x1o, v, a11);
      x += 4;
      f += 2;
    }
    acc[i] = a00;
    acc[i + 1] = a01;
    acc[TE_DSP_OC_CHUNK + i] = a10;
    acc[TE_DSP_OC_CHUNK + i + 1] = a11;
  }
}
#endif

#if TE_DSP_INSN
/* One group of a TE_DSP_SOLO column at byte offsets X and F: two column words (even and odd
 * elements) and two filter words (channels 0 and 1), the same SMLADs as the C loop in
 * te_dsp_dot_chunk_solo. */
#define TE_DSP_DOT_SOLO_LOADS_POST(STEP)             \
  "ldr %[xe], [%[x]], #" #STEP "\n\t"              \
  "ldr %[xo], [%[x], #4-" #STEP "]\n\t"            \
  "ldr %[w0], [%[f]], #" #STEP "\n\t"              \
  "ldr %[w1], [%[f], #4-" #STEP "]\n\t"
#define TE_DSP_DOT_SOLO_LOADS(X, F)                  \
  "ldr %[xe], [%[x], #" #X "]\n\t"                  \
  "ldr %[xo], [%[x], #" #X "+4]\n\t"                \
  "ldr %[w0], [%[f], #" #F "]\n\t"                  \
  "ldr %[w1], [%[f], #" #F "+4]\n\t"
#define TE_DSP_DOT_SOLO_MACS                         \
  "sxtb16 %[v], %[w0]\n\t"                          \
  "smlad %[a0], %[xe], %[v], %[a0]\n\t"             \
  "sxtb16 %[w0], %[w0], ror #8\n\t"                 \
  "smlad %[a0], %[xo], %[w0], %[a0]\n\t"            \
  "sxtb16 %[v], %[w1]\n\t"                          \
  "smlad %[a1], %[xe], %[v], %[a1]\n\t"             \
  "sxtb16 %[w1], %[w1], ror #8\n\t"                 \
  "smlad %[a1], %[xo], %[w1], %[a1]\n\t"

#define TE_DSP_DOT_SOLO_OPERANDS                                                                   \
  : [a0] "+r"(a0), [a1] "+r"(a1), [x] "+r"(x), [f] "+r"(f), [n] "+r"(n), [xe] "=&r"(xe),          \
    [xo] "=&r"(xo), [w0] "=&r"(w0), [w1] "=&r"(w1), [v] "=&r"(v)                                  \
  :                                                                                                \
  : "cc", "memory"

/* te_dsp_dot_chunk_solo's inner loop, as te_dsp_dot_groups: four pipelined LDRs (5 cycles) where
 * two LDRDs (6) and two pointer ADDs were, SUBS for the CMP, four groups a pass with post-increment
 * loads: 14 cycles per 8 MACs (mid), was 20 with the compiler's loop and 16 with two groups a pass
 * and pointer ADDs. */
static inline void te_dsp_dot_groups_solo(int32_t *p0, int32_t *p1, const int32_t *x, const int32_t *f,
                                          int32_t groups) {
  int32_t a0 = *p0, a1 = *p1;
  int32_t xe, xo, w0, w1, v;
  int32_t n = groups >> 2;
  if (n > 0) {
    __asm__ volatile("1:\n\t" TE_DSP_DOT_SOLO_LOADS_POST(32) TE_DSP_DOT_SOLO_MACS TE_DSP_DOT_SOLO_LOADS(-24, -24)
                     TE_DSP_DOT_SOLO_MACS TE_DSP_DOT_SOLO_LOADS(-16, -16) TE_DSP_DOT_SOLO_MACS
                     TE_DSP_DOT_SOLO_LOADS(-8, -8) TE_DSP_DOT_SOLO_MACS
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t" TE_DSP_DOT_SOLO_OPERANDS);
  }
  n = groups & 3;
  if (n > 0) {
    __asm__ volatile("1:\n\t" TE_DSP_DOT_SOLO_LOADS_POST(8) TE_DSP_DOT_SOLO_MACS
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t" TE_DSP_DOT_SOLO_OPERANDS);
  }
  *p0 = a0;
  *p1 = a1;
}
#endif

/* acc[i]: channel oc0 + i of the one pixel of a TE_DSP_SOLO column. */
TE_DSP_NOINLINE static void te_dsp_dot_chunk_solo(int32_t *acc, const int16_t *col, const int32_t *filter,
                                                  const int32_t *bias, int32_t groups, te_dim oc0, te_dim n) {
  te_dim i;
  for (i = 0; i < n; i += 2) {
    const te_dim oc = (te_dim)(oc0 + i);
    const int32_t *x = (const int32_t *)(const void *)col;
    const int32_t *f = filter + (int32_t)oc * groups;
    int32_t a0 = bias != 0 ? TE_RD_S32(bias + oc) : 0;
    int32_t a1 = bias != 0 && i + 1 < n ? TE_RD_S32(bias + oc + 1) : 0;
#if TE_DSP_INSN
    te_dsp_dot_groups_solo(&a0, &a1, x, f, groups);
#else
    const int32_t *end = x + 2 * groups;
    for (; x < end; x += 2) {
      const int32_t xe = x[0], xo = x[1], w0 = f[0], w1 = f[1];
      a0 = te_smlad(xe, te_sxtb16(w0), a0);
      a0 = te_smlad(xo, te_sxtb16_ror8(w0), a0);
      a1 = te_smlad(xe, te_sxtb16(w1), a1);
      a1 = te_smlad(xo, te_sxtb16_ror8(w1), a1);
      f += 2;
    }
#endif
    acc[i] = a0;
    acc[i + 1] = a1;
  }
}

#if TE_DSP_INSN
/* One output of te_dsp_requantize_fast127 on register A (multiplier m, right shift s, half h). */
#define TE_DSP_RQ128(A)                            \
  "lsl %[" A "], %[" A "], #1\n\t"                \
  "smmulr %[" A "], %[" A "], %[m]\n\t"           \
  "sub %[" A "], %[" A "], %[" A "], lsr #31\n\t" \
  "add %[" A "], %[" A "], %[h]\n\t"              \
  "asr %[" A "], %[" A "], %[s]\n\t"              \
  "add %[" A "], %[" A "], %[off]\n\t"            \
  "ssat %[" A "], #8, %[" A "]\n\t"
/* The same with act_min above -128 (the lower clamp SSAT does not do). TE_DSP_RQ128 alone is the
 * usual case, act_min -128: two cycles an output fewer. */
#define TE_DSP_RQ127(A)                            \
  TE_DSP_RQ128(A)                                  \
  "cmp %[" A "], %[lo]\n\t"                       \
  "it lt\n\t"                                     \
  "movlt %[" A "], %[lo]\n\t"

/* The two-pixel chunk loop of te_dsp_requantize_chunk for per-channel tables (STEP 1) or one
 * per-tensor entry (STEP 0): per channel, its two accumulators, multiplier and shift in four
 * pipelined post-increment LDRs, half = 2^(right-1) in three instructions, and the short exact form
 * on each: 36 cycles a channel (mid) where the compiler's loop, reloading its end and steps from
 * the stack, took 46. Stops at the first channel without a right shift (leaving `a` one past it). */
#define TE_DSP_RQ_PAIR_LOOP(STEP, RQ)                                                                  \
  __asm__ volatile("1:\n\t"                                                                           \
                   "ldr %[a0], [%[a]], #4\n\t"                                                        \
                   "ldr %[a1], [%[a], #4 * " TE_DSP_STR(TE_DSP_OC_CHUNK) " - 4]\n\t"                  \
                   "ldr %[m], [%[mult]], #4 * " #STEP "\n\t"                                          \
                   "ldrsb %[s], [%[shift]], #" #STEP "\n\t"                                           \
                   "rsbs %[s], %[s], #0\n\t"                                                          \
                   "ble 2f\n\t"                                                                       \
                   "mov %[h], #1\n\t"                                                                 \
                   "lsl %[h], %[h], %[s]\n\t"                                                         \
                   "lsr %[h], %[h], #1\n\t" RQ("a0") "strb %[a0], [%[o0]], #1\n\t"                    \
                   RQ("a1") "strb %[a1], [%[o1]], #1\n\t"                                             \
                   "cmp %[a], %[end]\n\t"                                                             \
                   "bne 1b\n\t"                                                                       \
                   "2:\n\t"                                                                           \
                   : [a] "+r"(a), [mult] "+r"(multipliers), [shift] "+r"(shifts), [o0] "+r"(o0),      \
                     [o1] "+r"(o1), [a0] "=&r"(a0), [a1] "=&r"(a1), [m] "=&r"(m), [s] "=&r"(sh),      \
                     [h] "=&r"(h)                                                                     \
                   : [end] "r"(end), [off] "r"(c.output_offset), [lo] "r"(c.act_min)                 \
                   : "cc", "memory")
#endif

TE_DSP_NOINLINE static void te_dsp_requantize_chunk(int8_t *out0, int8_t *out1, const int32_t *acc, te_dim oc0,
                                                    te_dim n, const te_requant_t *q, const te_dsp_clamp_t *clamp) {
  const te_dsp_clamp_t c = *clamp;
  te_dim i = 0;
  if (c.act_max == 127 && (q->per_channel & TE_REQUANT_BOUNDED) && out1 != 0) {
    /* Two pixels, every channel with a right shift (the usual case), in a loop of its own: the
     * per-channel tables walked by pointer and the output pointers in registers. */
    const int32_t step = (q->per_channel & TE_REQUANT_PER_CHANNEL) ? 1 : 0;
    const int8_t *shifts = q->shift + step * oc0;
    const int32_t *multipliers = q->multiplier + step * oc0;
    int8_t *o0 = out0 + oc0, *o1 = out1 + oc0;
    const int32_t *a = acc;
    const int32_t *const end = acc + n;
#if TE_DSP_INSN
    int32_t a0, a1, m, sh, h;
    for (;;) {
      te_dsp_scale_t general;
      if (c.act_min <= -128) {
        if (step) {
          TE_DSP_RQ_PAIR_LOOP(1, TE_DSP_RQ128);
        } else {
          TE_DSP_RQ_PAIR_LOOP(0, TE_DSP_RQ128);
        }
      } else if (step) {
        TE_DSP_RQ_PAIR_LOOP(1, TE_DSP_RQ127);
      } else {
        TE_DSP_RQ_PAIR_LOOP(0, TE_DSP_RQ127);
      }
      if (sh > 0) {
        return;
      }
      /* Channel a - 1 has no right shift: the general form, then the loop goes on after it. */
      general = te_dsp_scale(q, (int32_t)oc0 + (int32_t)(a - 1 - acc));
      *o0++ = te_dsp_requantize(a[-1], general, c);
      *o1++ = te_dsp_requantize(a[TE_DSP_OC_CHUNK - 1], general, c);
      if (a == end) {
        return;
      }
    }
#else
    for (; a < end; ++a, shifts += step, multipliers += step) {
      const int32_t shift = TE_RD_S8(shifts);
      const int32_t multiplier = TE_RD_S32(multipliers), right = -shift;
      if (shift >= 0) {
        break;
      }
      *o0++ = (int8_t)te_dsp_requantize_fast127(a[0], multiplier, right, (int32_t)1 << (right - 1), c.output_offset,
                                                c.act_min);
      *o1++ = (int8_t)te_dsp_requantize_fast127(a[TE_DSP_OC_CHUNK], multiplier, right, (int32_t)1 << (right - 1),
                                                c.output_offset, c.act_min);
    }
    if (a == end) {
      return;
    }
    i = (te_dim)(a - acc);   /* a channel without a right shift: the general loop goes on from it */
#endif
  }
  if (c.act_max == 127 && (q->per_channel & TE_REQUANT_BOUNDED)) {
    const uint8_t per_channel = q->per_channel & TE_REQUANT_PER_CHANNEL;
    for (; i < n; ++i) {
      const int32_t k = per_channel ? oc0 + i : 0;
      const int32_t shift = TE_RD_S8(q->shift + k);
      if (shift < 0) {
        const int32_t multiplier = TE_RD_S32(q->multiplier + k), right = -shift;
        const int32_t half = (int32_t)1 << (right - 1);
        out0[oc0 + i] = (int8_t)te_dsp_requantize_fast127(acc[i], multiplier, right, half, c.output_offset, c.act_min);
        if (out1 != 0) {
          out1[oc0 + i] = (int8_t)te_dsp_requantize_fast127(acc[TE_DSP_OC_CHUNK + i], multiplier, right, half,
                                                            c.output_offset, c.act_min);
        }
      } else {
        const te_dsp_scale_t s = te_dsp_scale(q, oc0 + i);
        out0[oc0 + i] = te_dsp_requantize(acc[i], s, c);
        if (out1 != 0) {
          out1[oc0 + i] = te_dsp_requantize(acc[TE_DSP_OC_CHUNK + i], s, c);
        }
      }
    }
    return;
  }
  for (i = 0; i < n; ++i) {
    te_dsp_fast_t f;
    if (te_dsp_fast_scale(q, oc0 + i, &f)) {
      out0[oc0 + i] = te_dsp_requantize_fast(acc[i], f, c.output_offset, c.act_min, c.act_max);
      if (out1 != 0) {
        out1[oc0 + i] = te_dsp_requantize_fast(acc[TE_DSP_OC_CHUNK + i], f, c.output_offset, c.act_min, c.act_max);
      }
      continue;
    }
    {
    const te_dsp_scale_t s = te_dsp_scale(q, oc0 + i);
    out0[oc0 + i] = te_dsp_requantize(acc[i], s, c);
    if (out1 != 0) {
      out1[oc0 + i] = te_dsp_requantize(acc[TE_DSP_OC_CHUNK + i], s, c);
    }
    }
  }
}

/* Every output channel of one or two pixels (out1 0: one) from the interleaved columns. */
static void te_dsp_conv_pixels_any(int8_t *out0, int8_t *out1, const int16_t *col, const int32_t *filter,
                                   const int32_t *bias, int32_t groups, te_dim out_c, const te_requant_t *q,
                                   te_dsp_clamp_t clamp, uint8_t solo) {
  int32_t acc[2 * TE_DSP_OC_CHUNK];
  te_dim oc;
  for (oc = 0; oc < out_c; oc += TE_DSP_OC_CHUNK) {
    const te_dim n = out_c - oc < TE_DSP_OC_CHUNK ? (te_dim)(out_c - oc) : TE_DSP_OC_CHUNK;
    if (solo) {
      te_dsp_dot_chunk_solo(acc, col, filter, bias, groups, oc, n);
    } else {
      te_dsp_dot_chunk(acc, col, filter, bias, groups, oc, n);
    }
    te_dsp_requantize_chunk(out0, out1, acc, oc, n, q, &clamp);
  }
}

static void te_dsp_conv_pixels(int8_t *out0, int8_t *out1, const int16_t *col, const int32_t *filter,
                               const int32_t *bias, int32_t groups, te_dim out_c, const te_requant_t *q,
                               te_dsp_clamp_t clamp) {
  te_dsp_conv_pixels_any(out0, out1, col, filter, bias, groups, out_c, q, clamp, 0);
}

static void te_dsp_rows(const int8_t **rows, const int8_t *in, te_dim oy, const te_window_t *w) {
  const int32_t row_bytes = (int32_t)w->in_w * w->in_c;
  const int16_t iy0 = (int16_t)(oy * w->stride_h - w->pad_h);
  te_dim ky;
  for (ky = 0; ky < w->k_h; ++ky) {
    const int16_t iy = (int16_t)(iy0 + w->dil_h * ky);
    rows[ky] = iy >= 0 && iy < w->in_h ? in + (int32_t)iy * row_bytes : 0;
  }
}

/* im2col of output pixel p and, when there is one, pixel p + 1 into col's two slots; returns whether
 * the second pixel exists. */
static inline uint8_t te_dsp_im2col_pixels(int16_t *col, const int8_t **rows, const int8_t *in, int32_t p,
                                           int32_t pixels, const te_window_t *w, int32_t input_offset) {
  const uint8_t pair = p + 1 < pixels;
  te_dim oy = (te_dim)(p / w->out_w), ox = (te_dim)(p % w->out_w);
  te_dsp_rows(rows, in, oy, w);
  te_dsp_im2col(col, 0, rows, (int16_t)(ox * w->stride_w - w->pad_w), w, input_offset);
  if (pair) {
    if (++ox == w->out_w) {
      ox = 0;
      te_dsp_rows(rows, in, ++oy, w);
    }
    te_dsp_im2col(col, 1, rows, (int16_t)(ox * w->stride_w - w->pad_w), w, input_offset);
  }
  return pair;
}

static int32_t te_dsp_groups(const te_window_t *w) {
  return ((int32_t)w->k_h * w->k_w * w->in_c + 3) >> 2;
}

void te_dsp_conv2d(int8_t *out, const int8_t *in, const int32_t *filter, const int32_t *bias,
                   const te_window_t *w, const te_requant_t *q, int16_t *col, uint8_t solo) {
  const int32_t groups = te_dsp_groups(w);
  const int32_t pixels = (int32_t)w->out_h * w->out_w;
  const te_dsp_clamp_t clamp = te_dsp_clamp(q);
  const int8_t *rows[TE_DSP_MAX_K_H];
  int32_t p;
  if (solo) {
    for (p = 0; p < pixels; ++p) {
      const te_dim oy = (te_dim)(p / w->out_w), ox = (te_dim)(p % w->out_w);
      te_dsp_rows(rows, in, oy, w);
      te_dsp_im2col(col, TE_DSP_SOLO, rows, (int16_t)(ox * w->stride_w - w->pad_w), w, q->input_offset);
      te_dsp_conv_pixels_any(out + p * w->out_c, 0, col, filter, bias, groups, w->out_c, q, clamp, 1);
    }
    return;
  }
  for (p = 0; p < pixels; p += 2) {
    const uint8_t pair = te_dsp_im2col_pixels(col, rows, in, p, pixels, w, q->input_offset);
    te_dsp_conv_pixels(out + p * w->out_c, pair ? out + (p + 1) * w->out_c : 0, col, filter, bias, groups,
                       w->out_c, q, clamp);
  }
}

/* Pixel p's input widened into the column slot (the 1x1 window of a pointwise conv). */
static void te_dsp_widen_pixel(int16_t *col, uint8_t slot, const int8_t *in, int32_t p, const te_window_t *w,
                               int16_t input_offset) {
  const int8_t *row = in + p * w->in_c;
  if ((w->in_c & 3) == 0 && slot != TE_DSP_SOLO) {   /* the pixel's channels are the column: one run */
    te_dsp_widen_run((int32_t *)(void *)col + slot * 2, row, w->in_c >> 2, 4, te_pair(input_offset, input_offset));
    return;
  }
  te_dsp_im2col(col, slot, &row, 0, w, input_offset);
}

void te_dsp_pointwise_conv2d(int8_t *out, const int8_t *in, const int32_t *filter, const int32_t *bias,
                             const te_window_t *w, const te_requant_t *q, int16_t *col) {
  const int32_t out_c = w->out_c;
  const int32_t pixels = (int32_t)w->in_h * w->in_w;
  const int32_t groups = te_dsp_groups(w);
  const te_dsp_clamp_t clamp = te_dsp_clamp(q);
  int32_t p;
  if (out_c <= w->in_c) {
    for (p = 0; p < pixels; p += 2) {
      const uint8_t pair = p + 1 < pixels;
      te_dsp_widen_pixel(col, 0, in, p, w, q->input_offset);
      if (pair) {
        te_dsp_widen_pixel(col, 1, in, p + 1, w, q->input_offset);
      }
      te_dsp_conv_pixels(out + p * out_c, pair ? out + (p + 1) * out_c : 0, col, filter, bias, groups, w->out_c,
                         q, clamp);
    }
    return;
  }
  /* A larger output over its own input: from the last pixel back, so no unread input is overwritten. */
  p = pixels;
  if (p & 1) {
    --p;
    te_dsp_widen_pixel(col, 0, in, p, w, q->input_offset);
    te_dsp_conv_pixels(out + p * out_c, 0, col, filter, bias, groups, w->out_c, q, clamp);
  }
  while (p > 0) {
    p -= 2;
    te_dsp_widen_pixel(col, 0, in, p, w, q->input_offset);
    te_dsp_widen_pixel(col, 1, in, p + 1, w, q->input_offset);
    te_dsp_conv_pixels(out + p * out_c, out + (p + 1) * out_c, col, filter, bias, groups, w->out_c, q, clamp);
  }
}

/* One output row from the k_h input rows its windows read (rows[ky], 0 for a padding row). */
static void te_dsp_conv_row(int8_t *row_out, const int8_t *const *rows, const int32_t *filter, const int32_t *bias,
                            const te_window_t *w, const te_requant_t *q, int16_t *col, uint8_t solo,
                            int32_t groups, te_dsp_clamp_t clamp) {
  const int16_t stride_w = w->stride_w;
  te_dim ox;
  for (ox = 0; solo && ox < w->out_w; ++ox) {
    te_dsp_im2col(col, TE_DSP_SOLO, rows, (int16_t)(ox * stride_w - w->pad_w), w, q->input_offset);
    te_dsp_conv_pixels_any(row_out + (int32_t)ox * w->out_c, 0, col, filter, bias, groups, w->out_c, q, clamp, 1);
  }
  for (ox = 0; !solo && ox < w->out_w; ox += 2) {
    const uint8_t pair = ox + 1 < w->out_w;
    te_dsp_im2col(col, 0, rows, (int16_t)(ox * stride_w - w->pad_w), w, q->input_offset);
    if (pair) {
      te_dsp_im2col(col, 1, rows, (int16_t)((ox + 1) * stride_w - w->pad_w), w, q->input_offset);
    }
    te_dsp_conv_pixels(row_out + (int32_t)ox * w->out_c, pair ? row_out + (int32_t)(ox + 1) * w->out_c : 0, col,
                       filter, bias, groups, w->out_c, q, clamp);
  }
}

void te_dsp_conv2d_row(int8_t *out, const int8_t *const *rows, const int32_t *packed, const int32_t *bias,
                       const te_window_t *w, const te_requant_t *q, int16_t *col, uint8_t solo) {
  te_dsp_conv_row(out, rows, packed, bias, w, q, col, solo, te_dsp_groups(w), te_dsp_clamp(q));
}

void te_dsp_conv2d_inplace(int8_t *data, int8_t *ring, const int32_t *filter, const int32_t *bias,
                           const te_window_t *w, const te_requant_t *q, int16_t *col, uint8_t solo) {
  const int32_t groups = te_dsp_groups(w);
  const int32_t row_bytes = (int32_t)w->in_w * w->in_c;
  const te_dsp_clamp_t clamp = te_dsp_clamp(q);
  int8_t *row_out = ring + (int32_t)w->pad_h * row_bytes;
  const int8_t *rows[TE_DSP_MAX_K_H];
  te_dim oy, ky;
  for (oy = 0; oy < w->out_h; ++oy) {
    for (ky = 0; ky < w->k_h; ++ky) {
      const int16_t iy = (int16_t)(oy - w->pad_h + ky);
      /* Rows above this one were overwritten: their input lives in the ring. */
      rows[ky] = iy < 0 || iy >= w->in_h ? 0
                 : iy < oy               ? ring + (int32_t)(iy % w->pad_h) * row_bytes
                                         : data + (int32_t)iy * row_bytes;
    }
    te_dsp_conv_row(row_out, rows, filter, bias, w, q, col, solo, groups, clamp);
    if (w->pad_h > 0) {
      memcpy(ring + (int32_t)(oy % w->pad_h) * row_bytes, data + (int32_t)oy * row_bytes, (size_t)row_bytes);
    }
    memcpy(data + (int32_t)oy * row_bytes, row_out, (size_t)row_bytes);
  }
}

/* Virtual row `vr` (input row vr - pad_h) of channel c, widened with the offset and zero-padded. */
/* dst[i] = src[i * stride] + offset for i < n: one channel's values gathered from an NHWC tensor
 * and widened. In assembly two values a pass (two pipelined LDRSBs, PKHBT, one STR): ~5.5 cycles a
 * value (mid) where the C loop took 8.7. Returns dst past the values. */
static inline int16_t *te_dsp_gather_widen(int16_t *dst, const int8_t *src, int32_t stride, int32_t n,
                                           int16_t offset) {
#if TE_DSP_INSN
  int32_t pairs = n >> 1, a, b;
  const int32_t off = offset;
  if (pairs > 0) {
    __asm__ volatile("1:\n\t"
                     "ldrsb %[a], [%[src]]\n\t"
                     "ldrsb %[b], [%[src], %[stride]]\n\t"
                     "add %[src], %[src], %[stride], lsl #1\n\t"
                     "add %[a], %[a], %[off]\n\t"
                     "add %[b], %[b], %[off]\n\t"
                     "pkhbt %[a], %[a], %[b], lsl #16\n\t"
                     "str %[a], [%[dst]], #4\n\t"
                     "subs %[pairs], %[pairs], #1\n\t"
                     "bne 1b\n\t"
                     : [src] "+r"(src), [dst] "+r"(dst), [pairs] "+r"(pairs), [a] "=&r"(a), [b] "=&r"(b)
                     : [stride] "r"(stride), [off] "r"(off)
                     : "cc", "memory");
  }
  if (n & 1) {
    *dst++ = (int16_t)(*src + offset);
  }
  return dst;
#else
  int32_t i;
  for (i = 0; i < n; ++i) {
    *dst++ = (int16_t)(src[i * stride] + offset);
  }
  return dst;
#endif
}

static void te_dsp_depthwise_row(int16_t *dst, int32_t row_len, const int8_t *in, int16_t vr, te_dim c,
                                 const te_window_t *w, int16_t input_offset) {
  const int16_t iy = (int16_t)(vr - w->pad_h);
  int32_t x = 0, end;
  const int8_t *src;
  if (iy < 0 || iy >= w->in_h) {
    memset(dst, 0, (size_t)row_len * sizeof(int16_t));
    return;
  }
  for (; x < w->pad_w && x < row_len; ++x) {
    dst[x] = 0;
  }
  end = w->pad_w + w->in_w < row_len ? w->pad_w + w->in_w : row_len;
  src = in + ((int32_t)iy * w->in_w + (x - w->pad_w)) * w->in_c + c;
  if (x < end) {
    te_dsp_gather_widen(dst + x, src, w->in_c, end - x, input_offset);
    x = end;
  }
  for (; x < row_len; ++x) {
    dst[x] = 0;
  }
}

/* Outputs are accumulated a chunk at a time, then requantized in a second loop, so neither loop
 * runs out of registers. */
#define TE_DSP_CHUNK 16

#if TE_DSP_INSN
/* One row's two tap pairs: the word at +4 first, then the one at 0 with the row pointer stepped by
 * S bytes, so that the two LDRs pipeline. */
#define TE_DSP_DW3_ROW(R, TA, TB, S)                 \
  "ldr %[b], [%[" R "], #4]\n\t"                    \
  "ldr %[a], [%[" R "]], #" #S "\n\t"
#define TE_DSP_DW3_MACS(TA, TB)                      \
  "smlad %[s], %[a], %[" TA "], %[s]\n\t"           \
  "smlad %[s], %[b], %[" TB "], %[s]\n\t"
/* The 3x3 accumulate loop for a column step of S bytes: the six row words in three pipelined
 * pairs, the bias from memory in the first pair's wake, post-indexed row pointers and a SUBS
 * counter: 21 cycles an output instead of 29 (mid), where the compiler interleaved every load with
 * its SMLAD and reloaded the bias from the stack. */
#define TE_DSP_DW3_LOOP(S)                                                                         \
  __asm__ volatile("1:\n\t" TE_DSP_DW3_ROW("r0", "t0", "t1", S) "ldr %[s], %[bias]\n\t"           \
                   TE_DSP_DW3_MACS("t0", "t1") TE_DSP_DW3_ROW("r1", "t2", "t3", S)                 \
                   TE_DSP_DW3_MACS("t2", "t3") TE_DSP_DW3_ROW("r2", "t4", "t5", S)                 \
                   TE_DSP_DW3_MACS("t4", "t5")                                                     \
                   "str %[s], [%[acc]], #4\n\t"                                                   \
                   "subs %[n], %[n], #1\n\t"                                                      \
                   "bne 1b\n\t"                                                                   \
                   : [r0] "+r"(r0), [r1] "+r"(r1), [r2] "+r"(r2), [acc] "+r"(acc), [n] "+r"(n),      \
                     [a] "=&r"(a), [b] "=&r"(b), [s] "=&r"(sum)                                    \
                   : [t0] "r"(t0), [t1] "r"(t1), [t2] "r"(t2), [t3] "r"(t3), [t4] "r"(t4),          \
                     [t5] "r"(t5), [bias] "m"(bias)                                                \
                   : "cc", "memory")
#endif

/* Accumulators of `count` outputs of one channel for a 3x3 window: six tap pairs in registers. */
TE_DSP_NOINLINE static void te_dsp_depthwise_acc_3x3(int32_t *acc, const int16_t *const *window, int32_t x, const int32_t *taps,
                                     int32_t bias, int32_t count, int32_t stride_w) {
  const int32_t t0 = taps[0], t1 = taps[1], t2 = taps[2], t3 = taps[3], t4 = taps[4], t5 = taps[5];
  const int16_t *r0 = window[0] + x, *r1 = window[1] + x, *r2 = window[2] + x;
  int32_t i;
#if TE_DSP_INSN
  if (count > 0 && (stride_w == 1 || stride_w == 2)) {
    int32_t n = count, a, b, sum;
    if (stride_w == 1) {
      TE_DSP_DW3_LOOP(2);
    } else {
      TE_DSP_DW3_LOOP(4);
    }
    return;
  }
#endif
  for (i = 0; i < count; ++i) {
    int32_t a = te_smlad(te_read_s16x2(r0), t0, bias);
    a = te_smlad(te_read_s16x2(r0 + 2), t1, a);
    a = te_smlad(te_read_s16x2(r1), t2, a);
    a = te_smlad(te_read_s16x2(r1 + 2), t3, a);
    a = te_smlad(te_read_s16x2(r2), t4, a);
    acc[i] = te_smlad(te_read_s16x2(r2 + 2), t5, a);
    r0 += stride_w;
    r1 += stride_w;
    r2 += stride_w;
  }
}

/* The same for any window: k_h rows of tap_pairs pairs. */
TE_DSP_NOINLINE static void te_dsp_depthwise_acc_any(int32_t *acc, const int16_t *const *window, int32_t x, const int32_t *taps,
                                     int32_t bias, int32_t count, int32_t stride_w, te_dim k_h, te_dim tap_pairs) {
  int32_t i;
  te_dim ky, kp;
#if TE_DSP_INSN
  if (k_h == 1 && tap_pairs >= 2) {
    /* One line of taps (str_ww's k x 1 windows, laid out transposed): two tap pairs a pass in
     * assembly, four pipelined LDRs and two SMLADs, ~5.5 cycles a pair (mid) where the C loops took
     * ~20. */
    const int16_t *line = window[0] + x;
    for (i = 0; i < count; ++i) {
      const int16_t *r = line;
      const int32_t *t = taps;
      int32_t a = bias, n = tap_pairs >> 1, p, q, u, v;
      __asm__ volatile("1:\n\t"
                       "ldr %[p], [%[r]], #8\n\t"
                       "ldr %[q], [%[r], #-4]\n\t"
                       "ldr %[u], [%[t]], #8\n\t"
                       "ldr %[v], [%[t], #-4]\n\t"
                       "smlad %[a], %[p], %[u], %[a]\n\t"
                       "smlad %[a], %[q], %[v], %[a]\n\t"
                       "subs %[n], %[n], #1\n\t"
                       "bne 1b\n\t"
                       : [a] "+r"(a), [r] "+r"(r), [t] "+r"(t), [n] "+r"(n), [p] "=&r"(p), [q] "=&r"(q),
                         [u] "=&r"(u), [v] "=&r"(v)
                       :
                       : "cc", "memory");
      if (tap_pairs & 1) {
        a = te_smlad(te_read_s16x2(r), *t, a);
      }
      acc[i] = a;
      line += stride_w;
    }
    return;
  }
#endif
  for (i = 0; i < count; ++i) {
    const int32_t *t = taps;
    int32_t a = bias;
    for (ky = 0; ky < k_h; ++ky) {
      const int16_t *r = window[ky] + x;
      for (kp = 0; kp < tap_pairs; ++kp) {
        a = te_smlad(te_read_s16x2(r + 2 * kp), *t++, a);
      }
    }
    acc[i] = a;
    x += stride_w;
  }
}

/* Requantize `count` accumulators of one channel into dst, `stride` bytes apart. The loops are
 * split by the kind of shift and of clamp so that each keeps its constants in registers. */
TE_DSP_NOINLINE static void te_dsp_requantize_run_fast(int8_t *dst, int32_t stride, const int32_t *acc,
                                                       int32_t count, const te_dsp_fast_t *fast,
                                                       const te_dsp_clamp_t *clamp) {
  const te_dsp_fast_t f = *fast;
  const int32_t offset = clamp->output_offset, lo = clamp->act_min, hi = clamp->act_max;
  const int32_t *end = acc + count;
  if (hi == 127) {
#if TE_DSP_INSN
    /* Two outputs a pass: both accumulators in one pipelined pair of post-increment LDRs, the second
     * store at a register offset: 28 cycles per two outputs (mid) where the C loop took 34. */
    int32_t n = count >> 1, a0, a1;
    const int32_t m = f.multiplier, h = f.half, sh = f.right;
#define TE_DSP_RQ_RUN_LOOP(RQ)                                                                      \
  __asm__ volatile("1:\n\t"                                                                           \
                   "ldr %[a0], [%[acc]], #8\n\t"                                                    \
                   "ldr %[a1], [%[acc], #-4]\n\t" RQ("a0") RQ("a1")                                 \
                   "strb %[a0], [%[dst]]\n\t"                                                        \
                   "strb %[a1], [%[dst], %[stride]]\n\t"                                             \
                   "add %[dst], %[dst], %[stride], lsl #1\n\t"                                       \
                   "subs %[n], %[n], #1\n\t"                                                         \
                   "bne 1b\n\t"                                                                      \
                   : [acc] "+r"(acc), [dst] "+r"(dst), [n] "+r"(n), [a0] "=&r"(a0), [a1] "=&r"(a1)      \
                   : [m] "r"(m), [h] "r"(h), [s] "r"(sh), [off] "r"(offset), [lo] "r"(lo),               \
                     [stride] "r"(stride)                                                           \
                   : "cc", "memory")
    if (n > 0 && lo <= -128) {
      TE_DSP_RQ_RUN_LOOP(TE_DSP_RQ128);
    } else if (n > 0) {
      TE_DSP_RQ_RUN_LOOP(TE_DSP_RQ127);
    }
#endif
    for (; acc < end; ++acc) {
      *dst = (int8_t)te_dsp_requantize_fast127(*acc, f.multiplier, f.right, f.half, offset, lo);
      dst += stride;
    }
    return;
  }
  for (; acc < end; ++acc) {
    *dst = te_dsp_requantize_fast(*acc, f, offset, lo, hi);
    dst += stride;
  }
}

TE_DSP_NOINLINE static void te_dsp_requantize_run(int8_t *dst, int32_t stride, const int32_t *acc, int32_t count,
                                                  const te_dsp_scale_t *scale, const te_dsp_clamp_t *clamp) {
  const te_dsp_scale_t s = *scale;
  const int32_t offset = clamp->output_offset, lo = clamp->act_min, hi = clamp->act_max;
  const int32_t *end = acc + count;
  if (s.right == 0) {
    for (; acc < end; ++acc) {
      *dst = te_dsp_requantize(*acc, s, *clamp);
      dst += stride;
    }
    return;
  }
  if (hi == 127) {
    for (; acc < end; ++acc) {
      int32_t x = te_dsp_scale_value((int32_t)((uint32_t)*acc << s.left), s) + offset;
      x = x < lo ? lo : x;
      *dst = (int8_t)(x > 127 ? 127 : x);
      dst += stride;
    }
    return;
  }
  for (; acc < end; ++acc) {
    int32_t x = te_dsp_scale_value((int32_t)((uint32_t)*acc << s.left), s) + offset;
    x = x < lo ? lo : x;
    *dst = (int8_t)(x > hi ? hi : x);
    dst += stride;
  }
}

void te_dsp_depthwise_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                             const te_window_t *window_geometry, const te_requant_t *q, int16_t *rows) {
  const te_window_t geometry = *window_geometry;
  const te_window_t *w = &geometry;
  const int32_t row_len = ((int32_t)w->out_w - 1) * w->stride_w + w->k_w + 2;
  const te_dim tap_pairs = (te_dim)((w->k_w + 1) / 2);
  const uint8_t is_3x3 = w->k_h == 3 && w->k_w == 3;
  const int16_t input_offset = q->input_offset;
  int32_t taps[TE_DSP_MAX_TAP_PAIRS];
  int32_t acc[TE_DSP_CHUNK];
  const int16_t *window[TE_DSP_MAX_K_H];
  const te_dsp_clamp_t clamp = te_dsp_clamp(q);
  te_dim c, oy, ox, ky, kp;
  for (c = 0; c < w->out_c; ++c) {
    const int32_t b = bias != 0 ? TE_RD_S32(bias + c) : 0;
    const te_dsp_scale_t scale = te_dsp_scale(q, c);
    te_dsp_fast_t fast;
    const uint8_t use_fast = te_dsp_fast_scale(q, c, &fast);
    int16_t next = 0;
    for (ky = 0; ky < w->k_h; ++ky) {
      for (kp = 0; kp < tap_pairs; ++kp) {
        const int32_t tap = (int32_t)ky * w->k_w + 2 * kp;
        const int32_t lo = TE_RD_S8(filter + tap * w->out_c + c);
        const int32_t hi = 2 * kp + 1 < w->k_w ? TE_RD_S8(filter + (tap + 1) * w->out_c + c) : 0;
        taps[ky * tap_pairs + kp] = te_pair(lo, hi);
      }
    }
    for (oy = 0; oy < w->out_h; ++oy) {
      const int16_t vr0 = (int16_t)(oy * w->stride_h);
      int8_t *dst = out + (int32_t)oy * w->out_w * w->out_c + c;
      for (; next < vr0 + w->k_h; ++next) {
        te_dsp_depthwise_row(rows + (int32_t)(next % w->k_h) * row_len, row_len, in, next, c, w, input_offset);
      }
      for (ky = 0; ky < w->k_h; ++ky) {
        window[ky] = rows + (int32_t)((vr0 + ky) % w->k_h) * row_len;
      }
      for (ox = 0; ox < w->out_w; ox += TE_DSP_CHUNK) {
        const int32_t count = w->out_w - ox < TE_DSP_CHUNK ? w->out_w - ox : TE_DSP_CHUNK;
        const int32_t x = (int32_t)ox * w->stride_w;
        if (is_3x3) {
          te_dsp_depthwise_acc_3x3(acc, window, x, taps, b, count, w->stride_w);
        } else {
          te_dsp_depthwise_acc_any(acc, window, x, taps, b, count, w->stride_w, w->k_h, tap_pairs);
        }
        if (use_fast) {
          te_dsp_requantize_run_fast(dst + (int32_t)ox * w->out_c, w->out_c, acc, count, &fast, &clamp);
        } else {
          te_dsp_requantize_run(dst + (int32_t)ox * w->out_c, w->out_c, acc, count, &scale, &clamp);
        }
      }
    }
  }
}

void te_dsp_depthwise_conv2d_plane(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                                   const te_window_t *window_geometry, const te_requant_t *q, int16_t *plane,
                                   uint8_t transposed) {
  const te_window_t geometry = *window_geometry;
  const te_window_t *w = &geometry;
  const int32_t padded_h = ((int32_t)w->out_h - 1) * w->stride_h + w->k_h;
  const int32_t padded_w = ((int32_t)w->out_w - 1) * w->stride_w + w->k_w;
  /* The plane's lines: image rows, or image columns when transposed. */
  const int32_t lines = transposed ? padded_w : padded_h;
  const int32_t line_len = (transposed ? padded_h : padded_w) + 2;
  const te_dim out_lines = transposed ? w->out_w : w->out_h;
  const te_dim out_len = transposed ? w->out_h : w->out_w;
  const te_dim k_lines = transposed ? w->k_w : w->k_h;
  const te_dim k_len = transposed ? w->k_h : w->k_w;
  const int32_t line_stride = transposed ? w->stride_w : w->stride_h;
  const int32_t step = transposed ? w->stride_h : w->stride_w;
  const int32_t out_c = w->out_c;
  const int32_t line_step = transposed ? out_c : (int32_t)w->out_w * out_c;
  const int32_t out_step = transposed ? (int32_t)w->out_w * out_c : out_c;
  const int32_t rows_in = w->in_h < padded_h - w->pad_h ? w->in_h : padded_h - w->pad_h;
  const int32_t cols_in = w->in_w < padded_w - w->pad_w ? w->in_w : padded_w - w->pad_w;
  const te_dim tap_pairs = (te_dim)((k_len + 1) / 2);
  const uint8_t is_3x3 = k_lines == 3 && k_len == 3;
  const int16_t input_offset = q->input_offset;
  const te_dsp_clamp_t clamp = te_dsp_clamp(q);
  int32_t taps[TE_DSP_MAX_TAP_PAIRS];
  int32_t acc[TE_DSP_CHUNK];
  const int16_t *window[TE_DSP_MAX_K_H];
  te_dim c, line, col, a, kp;
  int32_t iy, ix;
  memset(plane, 0, (size_t)lines * line_len * sizeof(int16_t));
  for (c = 0; c < out_c; ++c) {
    const int32_t b = bias != 0 ? TE_RD_S32(bias + c) : 0;
    const te_dsp_scale_t scale = te_dsp_scale(q, c);
    te_dsp_fast_t fast;
    const uint8_t use_fast = te_dsp_fast_scale(q, c, &fast);
    for (a = 0; a < k_lines; ++a) {
      for (kp = 0; kp < tap_pairs; ++kp) {
        const int32_t b0 = 2 * kp, b1 = 2 * kp + 1;
        const int32_t t0 = transposed ? b0 * w->k_w + a : (int32_t)a * w->k_w + b0;
        const int32_t t1 = transposed ? b1 * w->k_w + a : (int32_t)a * w->k_w + b1;
        const int32_t lo = TE_RD_S8(filter + t0 * out_c + c);
        const int32_t hi = b1 < k_len ? TE_RD_S8(filter + t1 * out_c + c) : 0;
        taps[a * tap_pairs + kp] = te_pair(lo, hi);
      }
    }
    if (transposed) {   /* along each image column: the plane's line */
      for (ix = 0; ix < cols_in; ++ix) {
        te_dsp_gather_widen(plane + (ix + w->pad_w) * line_len + w->pad_h, in + ix * out_c + c,
                            (int32_t)w->in_w * out_c, rows_in, input_offset);
      }
    } else {
      for (iy = 0; iy < rows_in; ++iy) {
        te_dsp_gather_widen(plane + (iy + w->pad_h) * line_len + w->pad_w, in + (iy * w->in_w) * out_c + c, out_c,
                            cols_in, input_offset);
      }
    }
    for (line = 0; line < out_lines; ++line) {
      for (a = 0; a < k_lines; ++a) {
        window[a] = plane + ((int32_t)line * line_stride + a) * line_len;
      }
      for (col = 0; col < out_len; col += TE_DSP_CHUNK) {
        const int32_t count = out_len - col < TE_DSP_CHUNK ? out_len - col : TE_DSP_CHUNK;
        if (is_3x3) {
          te_dsp_depthwise_acc_3x3(acc, window, (int32_t)col * step, taps, b, count, step);
        } else {
          te_dsp_depthwise_acc_any(acc, window, (int32_t)col * step, taps, b, count, step, k_lines, tap_pairs);
        }
        int8_t *dst = out + line * line_step + (int32_t)col * out_step + c;
        if (use_fast) {
          te_dsp_requantize_run_fast(dst, out_step, acc, count, &fast, &clamp);
        } else {
          te_dsp_requantize_run(dst, out_step, acc, count, &scale, &clamp);
        }
      }
    }
  }
}

/* Requantize the (up to) four accumulators of output channels oc..oc+3 into out. */
static inline void te_dsp_store_block4(int8_t *out, const int32_t *acc, int16_t oc, int16_t out_depth,
                                       const te_requant_t *q, te_dsp_clamp_t clamp) {
  int16_t r;
  for (r = 0; r < 4 && oc + r < out_depth; ++r) {
    te_dsp_fast_t fast;
    if (te_dsp_fast_scale(q, oc + r, &fast)) {
      out[oc + r] = te_dsp_requantize_fast(acc[r], fast, clamp.output_offset, clamp.act_min, clamp.act_max);
    } else {
      out[oc + r] = te_dsp_requantize(acc[r], te_dsp_scale(q, oc + r), clamp);
    }
  }
}

void te_dsp_fully_connected(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                            int16_t batches, int16_t accum_depth, int16_t out_depth, const te_requant_t *q) {
  const int32_t size = accum_depth, whole = size & ~3;
  const int32_t offsets = te_pair(q->input_offset, q->input_offset);
  const te_dsp_clamp_t clamp = te_dsp_clamp(q);
  int16_t b, oc, r;
  for (b = 0; b < batches; ++b) {
    for (oc = 0; oc < out_depth; oc += 4) {
      const int8_t *f[4];
      int32_t acc[4];
      int32_t j;
      for (r = 0; r < 4; ++r) {
        const int16_t row = oc + r < out_depth ? (int16_t)(oc + r) : oc;
        f[r] = filter + (int32_t)row * size;
        acc[r] = bias != 0 ? TE_RD_S32(bias + row) : 0;
      }
      {
        const int8_t *f0 = f[0], *f1 = f[1], *f2 = f[2], *f3 = f[3];
        int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
        for (j = 0; j < whole; j += 4) {
          const int32_t x = te_read_s8x4(in + j);
          const int32_t xe = te_sxtab16(offsets, x), xo = te_sxtab16_ror8(offsets, x);
          int32_t v = te_read_s8x4(f0 + j);
          a0 = te_smlad(xe, te_sxtb16(v), a0);
          a0 = te_smlad(xo, te_sxtb16_ror8(v), a0);
          v = te_read_s8x4(f1 + j);
          a1 = te_smlad(xe, te_sxtb16(v), a1);
          a1 = te_smlad(xo, te_sxtb16_ror8(v), a1);
          v = te_read_s8x4(f2 + j);
          a2 = te_smlad(xe, te_sxtb16(v), a2);
          a2 = te_smlad(xo, te_sxtb16_ror8(v), a2);
          v = te_read_s8x4(f3 + j);
          a3 = te_smlad(xe, te_sxtb16(v), a3);
          a3 = te_smlad(xo, te_sxtb16_ror8(v), a3);
        }
        for (; j < size; ++j) {
          const int32_t x = in[j] + q->input_offset;
          a0 += x * f0[j];
          a1 += x * f1[j];
          a2 += x * f2[j];
          a3 += x * f3[j];
        }
        acc[0] = a0;
        acc[1] = a1;
        acc[2] = a2;
        acc[3] = a3;
      }
      te_dsp_store_block4(out, acc, oc, out_depth, q, clamp);
    }
    in += accum_depth;
    out += out_depth;
  }
}

#if TE_DSP_INSN
/* One group of four inputs (no input offset: the generator folded it into the bias) against the
 * four interleaved rows' words, with post-increment loads: five pipelined LDRs (6 cycles), 10
 * SXTB16, 8 SMLAD and CMP+BNE (4): 28 cycles per 16 MACs (mid) where the compiler's loop, with an
 * LDRD, an unpipelined LDR, a stack reload of its end and a pointer ADD, took 33. */
static inline const int32_t *te_dsp_fc_rows4(int32_t *acc, const int8_t *x, const int32_t *f, int32_t groups) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  const int8_t *const end = x + 4 * groups;
  int32_t v, xe, t, w0, w1, w2, w3;
  __asm__ volatile(
      "1:\n\t"
      "ldr %[v], [%[x]], #4\n\t"
      "ldr %[w0], [%[f]], #16\n\t"
      "ldr %[w1], [%[f], #-12]\n\t"
      "ldr %[w2], [%[f], #-8]\n\t"
      "ldr %[w3], [%[f], #-4]\n\t"
      "sxtb16 %[xe], %[v]\n\t"
      "sxtb16 %[v], %[v], ror #8\n\t"
      "sxtb16 %[t], %[w0]\n\t"
      "smlad %[a0], %[xe], %[t], %[a0]\n\t"
      "sxtb16 %[w0], %[w0], ror #8\n\t"
      "smlad %[a0], %[v], %[w0], %[a0]\n\t"
      "sxtb16 %[t], %[w1]\n\t"
      "smlad %[a1], %[xe], %[t], %[a1]\n\t"
      "sxtb16 %[w1], %[w1], ror #8\n\t"
      "smlad %[a1], %[v], %[w1], %[a1]\n\t"
      "sxtb16 %[t], %[w2]\n\t"
      "smlad %[a2], %[xe], %[t], %[a2]\n\t"
      "sxtb16 %[w2], %[w2], ror #8\n\t"
      "smlad %[a2], %[v], %[w2], %[a2]\n\t"
      "sxtb16 %[t], %[w3]\n\t"
      "smlad %[a3], %[xe], %[t], %[a3]\n\t"
      "sxtb16 %[w3], %[w3], ror #8\n\t"
      "smlad %[a3], %[v], %[w3], %[a3]\n\t"
      "cmp %[x], %[end]\n\t"
      "bne 1b\n\t"
      : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [f] "+r"(f), [v] "=&r"(v),
        [xe] "=&r"(xe), [t] "=&r"(t), [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3)
      : [end] "r"(end)
      : "cc", "memory");
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  return f;
}

/* te_dsp_fully_connected_packed's usual case: no input offset (folded into the bias), one
 * per-tensor scale with the short exact form. The scale's constants are read once per call and
 * each output is requantized as its row block leaves the loop: ~12 cycles an output where the
 * per-channel lookups of te_dsp_store_block4 took ~80. */
void te_dsp_fc_packed_per_tensor(int8_t *out, const int8_t *in, const int32_t *packed, const int32_t *bias,
                                 int32_t batches, int32_t groups, int32_t out_depth, const te_requant_t *q) {
  const int32_t offset = q->output_offset, lo = q->act_min, hi = q->act_max;
  te_dsp_fast_t f;
  int32_t b, oc, r;
  te_dsp_fast_fill(q, 0, &f);   /* te_dsp_fully_connected_packed checked that the short form applies */
  for (b = 0; b < batches; ++b) {
    const int32_t *w = packed;
    for (oc = 0; oc < out_depth; oc += 4) {
      const int32_t rows = out_depth - oc < 4 ? out_depth - oc : 4;
      int32_t acc[4] = {0, 0, 0, 0};
      for (r = 0; bias != 0 && r < rows; ++r) {
        acc[r] = TE_RD_S32(bias + oc + r);
      }
      w = te_dsp_fc_rows4(acc, in, w, groups);
      for (r = 0; r < rows; ++r) {
        out[oc + r] = te_dsp_requantize_fast(acc[r], f, offset, lo, hi);
      }
    }
    in += 4 * groups;
    out += out_depth;
  }
}
#endif

void te_dsp_fc_packed_general(int8_t *out, const int8_t *in, const int32_t *packed, const int32_t *bias,
                              int32_t batches, int32_t accum_depth, int32_t out_depth, const te_requant_t *q) {
  const int32_t groups = accum_depth >> 2;
  const int32_t offsets = te_pair(q->input_offset, q->input_offset);
  const te_dsp_clamp_t clamp = te_dsp_clamp(q);
  int16_t b, oc;
  int32_t r;
  for (b = 0; b < batches; ++b) {
    for (oc = 0; oc < out_depth; oc += 4) {
      const int32_t *f = packed + (int32_t)oc * groups;
      const int8_t *x = in;
      const int8_t *end = in + 4 * groups;
      int32_t acc[4];
      for (r = 0; r < 4; ++r) {
        acc[r] = bias != 0 && oc + r < out_depth ? TE_RD_S32(bias + oc + r) : 0;
      }
#if TE_DSP_INSN
      if (offsets == 0 && groups > 0) {
        te_dsp_fc_rows4(acc, x, f, groups);
        te_dsp_store_block4(out, acc, oc, out_depth, q, clamp);
        continue;
      }
#endif
      {
        int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
        for (; x < end; x += 4) {
          const int32_t v = te_read_s8x4(x);
          const int32_t xe = te_sxtab16(offsets, v), xo = te_sxtab16_ror8(offsets, v);
          const int32_t w0 = f[0], w1 = f[1], w2 = f[2], w3 = f[3];
          a0 = te_smlad(xe, te_sxtb16(w0), a0);
          a0 = te_smlad(xo, te_sxtb16_ror8(w0), a0);
          a1 = te_smlad(xe, te_sxtb16(w1), a1);
          a1 = te_smlad(xo, te_sxtb16_ror8(w1), a1);
          a2 = te_smlad(xe, te_sxtb16(w2), a2);
          a2 = te_smlad(xo, te_sxtb16_ror8(w2), a2);
          a3 = te_smlad(xe, te_sxtb16(w3), a3);
          a3 = te_smlad(xo, te_sxtb16_ror8(w3), a3);
          f += 4;
        }
        acc[0] = a0;
        acc[1] = a1;
        acc[2] = a2;
        acc[3] = a3;
      }
      te_dsp_store_block4(out, acc, oc, out_depth, q, clamp);
    }
    in += accum_depth;
    out += out_depth;
  }
}

void te_dsp_conv2d_fc(int8_t *fc_out, const int8_t *in, const int32_t *packed, const int32_t *bias,
                      const te_window_t *w, const te_requant_t *q, int16_t *col, const int8_t *fc_filter,
                      const int32_t *fc_bias, int16_t fc_depth, const te_requant_t *fc_q, int32_t *fc_acc,
                      int8_t *values) {
  const int32_t groups = te_dsp_groups(w);
  const int32_t pixels = (int32_t)w->out_h * w->out_w;
  const int32_t fc_size = pixels * w->out_c;
  const int32_t fc_offset = fc_q->input_offset;
  const te_dsp_clamp_t clamp = te_dsp_clamp(q);
  const int8_t *rows[TE_DSP_MAX_K_H];
  int32_t p, j;
  int16_t o;
  for (o = 0; o < fc_depth; ++o) {
    fc_acc[o] = fc_bias != 0 ? TE_RD_S32(fc_bias + o) : 0;
  }
  for (p = 0; p < pixels; p += 2) {
    const uint8_t pair = te_dsp_im2col_pixels(col, rows, in, p, pixels, w, q->input_offset);
    const int32_t n = (pair ? 2 : 1) * w->out_c;
    te_dsp_conv_pixels(values, pair ? values + w->out_c : 0, col, packed, bias, groups, w->out_c, q, clamp);
    for (o = 0; o < fc_depth; ++o) {
      const int8_t *f = fc_filter + (int32_t)o * fc_size + p * w->out_c;
      int32_t acc = fc_acc[o];
      for (j = 0; j < n; ++j) {
        acc += (values[j] + fc_offset) * TE_RD_S8(f + j);
      }
      fc_acc[o] = acc;
    }
  }
  {
    const te_dsp_clamp_t fc_clamp = te_dsp_clamp(fc_q);
    for (o = 0; o < fc_depth; ++o) {
      fc_out[o] = te_dsp_requantize(fc_acc[o], te_dsp_scale(fc_q, o), fc_clamp);
    }
  }
}

/* RoundingDivideByPOT for |y| < 2^30 (no overflow) given r, 2^(r-1) (0 when r is 0) and [r > 0]. */
static inline int32_t te_dsp_rdbp_short(int32_t y, int32_t r, int32_t half, uint32_t rounds) {
  return (y - (int32_t)(((uint32_t)y >> 31) & rounds) + half) >> r;
}

void te_dsp_add_s8(int8_t *out, const int8_t *a, const int8_t *b, int32_t count, const te_add_params_t *params) {
  const int32_t a_offset = TE_RD_S32(&params->a_offset), a_mult = TE_RD_S32(&params->a_multiplier);
  const int32_t a_r = -TE_RD_S32(&params->a_shift);
  const int32_t b_offset = TE_RD_S32(&params->b_offset), b_mult = TE_RD_S32(&params->b_multiplier);
  const int32_t b_r = -TE_RD_S32(&params->b_shift);
  const int32_t left = TE_RD_S32(&params->left_shift) + 1;
  const int32_t out_mult = TE_RD_S32(&params->out_multiplier), out_r = -TE_RD_S32(&params->out_shift);
  const int32_t out_offset = TE_RD_S32(&params->out_offset);
  const int32_t lo = TE_RD_S32(&params->act_min), hi = TE_RD_S32(&params->act_max);
  const int32_t a_half = a_r > 0 ? (int32_t)1 << (a_r - 1) : 0, b_half = b_r > 0 ? (int32_t)1 << (b_r - 1) : 0;
  const int32_t out_half = out_r > 0 ? (int32_t)1 << (out_r - 1) : 0;
  const uint32_t a_rounds = a_r > 0, b_rounds = b_r > 0, out_rounds = out_r > 0;
  int32_t i = 0;
#if TE_DSP_INSN
  if (a_r >= 0 && b_r >= 0 && out_r > 0 && hi == 127 && left < 32 && count > 0) {
    /* The usual case (no left shift on the inputs, a right shift on the output, no upper clamp
     * below 127) in assembly: the six constants used first in registers, the other ten read from
     * `k` as they are needed, (x + offset) << left as one MLA: ~47 cycles an element (mid) where the
     * compiler's loop, spilling its 15 constants, took 59. */
    const int32_t k[10] = {a_half, a_r, b_half, b_r, out_half, out_r, out_offset, lo, (int32_t)a_rounds,
                           (int32_t)b_rounds};
    const int32_t scale = (int32_t)((uint32_t)1 << left);
    const int32_t a_base = (int32_t)((uint32_t)a_offset << left), b_base = (int32_t)((uint32_t)b_offset << left);
    const int8_t *const end = a + count;
    int32_t t, u, v;
#define TE_DSP_ADD_LOOP(BROUND, CLAMP)                                                                \
  __asm__ volatile("1:\n\t" \
                     "ldrsb %[t], [%[a]], #1\n\t" \
                     "ldrsb %[u], [%[b]], #1\n\t" \
                     "mla %[t], %[t], %[scale], %[abase]\n\t" \
                     "mla %[u], %[u], %[scale], %[bbase]\n\t" \
                     "smmulr %[t], %[t], %[am]\n\t" \
                     "smmulr %[u], %[u], %[bm]\n\t" \
                     "ldr %[v], [%[k], #32]\n\t" \
                     "and %[v], %[v], %[t], lsr #31\n\t" \
                     "sub %[t], %[t], %[v]\n\t" \
                     "ldr %[v], [%[k]]\n\t" \
                     "add %[t], %[t], %[v]\n\t" \
                     "ldr %[v], [%[k], #4]\n\t" \
                     "asr %[t], %[t], %[v]\n\t" \
                     BROUND \
                     "add %[t], %[t], %[u]\n\t" \
                     "lsl %[t], %[t], #1\n\t" \
                     "smmulr %[t], %[t], %[om]\n\t" \
                     "sub %[t], %[t], %[t], lsr #31\n\t" \
                     "ldr %[v], [%[k], #16]\n\t" \
                     "add %[t], %[t], %[v]\n\t" \
                     "ldr %[v], [%[k], #20]\n\t" \
                     "asr %[t], %[t], %[v]\n\t" \
                     "ldr %[v], [%[k], #24]\n\t" \
                     "add %[t], %[t], %[v]\n\t" \
                     "ssat %[t], #8, %[t]\n\t" \
                     CLAMP \
                     "strb %[t], [%[out]], #1\n\t" \
                     "cmp %[a], %[end]\n\t" \
                     "bne 1b\n\t" \
                     : [a] "+r"(a), [b] "+r"(b), [out] "+r"(out), [t] "=&r"(t), [u] "=&r"(u), [v] "=&r"(v) \
                     : [end] "r"(end), [k] "r"(k), [scale] "r"(scale), [abase] "r"(a_base), [bbase] "r"(b_base), \
                       [am] "r"(a_mult), [bm] "r"(b_mult), [om] "r"(out_mult) \
                     : "cc", "memory")
#define TE_DSP_ADD_B_ROUND                                                                          \
  "ldr %[v], [%[k], #36]\n\tand %[v], %[v], %[u], lsr #31\n\tsub %[u], %[u], %[v]\n\t"                  \
  "ldr %[v], [%[k], #8]\n\tadd %[u], %[u], %[v]\n\tldr %[v], [%[k], #12]\n\tasr %[u], %[u], %[v]\n\t"
#define TE_DSP_ADD_CLAMP "ldr %[v], [%[k], #28]\n\tcmp %[t], %[v]\n\tit lt\n\tmovlt %[t], %[v]\n\t"
    /* b's rescaling without a right shift (TFLite gives the input of the larger scale shift 0) is
     * its SMMULR alone; act_min -128 needs no clamp beyond SSAT. */
    if (b_r == 0 && lo <= -128) {
      TE_DSP_ADD_LOOP("", "");
    } else if (b_r == 0) {
      TE_DSP_ADD_LOOP("", TE_DSP_ADD_CLAMP);
    } else if (lo <= -128) {
      TE_DSP_ADD_LOOP(TE_DSP_ADD_B_ROUND, "");
    } else {
      TE_DSP_ADD_LOOP(TE_DSP_ADD_B_ROUND, TE_DSP_ADD_CLAMP);
    }
    return;
  }
#endif
  for (; i < count; ++i) {
    const int32_t sa = te_dsp_rdbp_short(te_dsp_smmulr((int32_t)((uint32_t)(a[i] + a_offset) << left), a_mult), a_r, a_half, a_rounds);
    const int32_t sb = te_dsp_rdbp_short(te_dsp_smmulr((int32_t)((uint32_t)(b[i] + b_offset) << left), b_mult), b_r, b_half, b_rounds);
    int32_t y = te_dsp_rdbp_short(te_dsp_smmulr((int32_t)((uint32_t)(sa + sb) << 1), out_mult), out_r, out_half, out_rounds) + out_offset;
    y = y < lo ? lo : y;
    out[i] = (int8_t)(y > hi ? hi : y);
  }
}
