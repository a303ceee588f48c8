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

int32_t te_m0_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int8_t shift) {
  const int8_t left = shift > 0 ? shift : 0;
  const int8_t right = shift > 0 ? 0 : (int8_t)-shift;
  const int32_t v = te_m0_srdhm((int32_t)((uint32_t)x << left), multiplier);
  const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
  const int32_t threshold = (mask >> 1) + (v < 0 ? 1 : 0);
  return (v >> right) + ((v & mask) > threshold ? 1 : 0);
}

static inline int8_t te_m0_output(int32_t acc, const int32_t *bias, int32_t channel, const te_requant_t *q) {
  const int32_t i = (q->per_channel & TE_REQUANT_PER_CHANNEL) ? channel : 0;
  if (bias) {
    acc += TE_RD_S32(bias + channel);
  }
  acc = te_m0_mul_by_quantized_multiplier(acc, TE_RD_S32(q->multiplier + i), TE_RD_S8(q->shift + i)) +
        q->output_offset;
  if (acc < q->act_min) {
    acc = q->act_min;
  }
  if (acc > q->act_max) {
    acc = q->act_max;
  }
  return (int8_t)acc;
}

/* Two rows of int8 weights (f0, f1) against n int8 inputs, each loaded once; four at a time. */
static void te_m0_dot2_s8(const int8_t *x, const int8_t *f0, const int8_t *f1, int32_t n, int32_t *s0,
                          int32_t *s1) {
  int32_t a0 = 0, a1 = 0;
  const int8_t *end4 = x + (n & ~3);
  const int8_t *end = x + n;
  while (x < end4) {
    int32_t v = x[0];
    a0 += f0[0] * v;
    a1 += f1[0] * v;
    v = x[1];
    a0 += f0[1] * v;
    a1 += f1[1] * v;
    v = x[2];
    a0 += f0[2] * v;
    a1 += f1[2] * v;
    v = x[3];
    a0 += f0[3] * v;
    a1 += f1[3] * v;
    x += 4;
    f0 += 4;
    f1 += 4;
  }
  while (x < end) {
    const int32_t v = *x++;
    a0 += *f0++ * v;
    a1 += *f1++ * v;
  }
  *s0 = a0;
  *s1 = a1;
}

/* The same with int16 inputs (the offset already added): gathered windows. */
static void te_m0_dot2_s16(const int16_t *x, const int8_t *f0, const int8_t *f1, int32_t n, int32_t *s0,
                           int32_t *s1) {
  int32_t a0 = 0, a1 = 0;
  const int16_t *end4 = x + (n & ~3);
  const int16_t *end = x + n;
  while (x < end4) {
    int32_t v = x[0];
    a0 += f0[0] * v;
    a1 += f1[0] * v;
    v = x[1];
    a0 += f0[1] * v;
    a1 += f1[1] * v;
    v = x[2];
    a0 += f0[2] * v;
    a1 += f1[2] * v;
    v = x[3];
    a0 += f0[3] * v;
    a1 += f1[3] * v;
    x += 4;
    f0 += 4;
    f1 += 4;
  }
  while (x < end) {
    const int32_t v = *x++;
    a0 += *f0++ * v;
    a1 += *f1++ * v;
  }
  *s0 = a0;
  *s1 = a1;
}

/* out[oc] for every output channel of one input vector `x` (int8, input offset folded into the bias
 * when 0) against filter rows of n weights; `wide` holds n int16 values when the offset is not 0. */
static void te_m0_rows(int8_t *out, int32_t out_step, const int8_t *x, int16_t *wide, const int8_t *filter,
                       int32_t n, int32_t out_c, const int32_t *bias, const te_requant_t *q) {
  int32_t oc, i, s0, s1;
  if (q->input_offset != 0) {
    for (i = 0; i < n; ++i) {
      wide[i] = (int16_t)(x[i] + q->input_offset);
    }
  }
  for (oc = 0; oc + 1 < out_c; oc += 2) {
    const int8_t *f0 = filter + oc * n;
    if (q->input_offset != 0) {
      te_m0_dot2_s16(wide, f0, f0 + n, n, &s0, &s1);
    } else {
      te_m0_dot2_s8(x, f0, f0 + n, n, &s0, &s1);
    }
    out[oc * out_step] = te_m0_output(s0, bias, oc, q);
    out[(oc + 1) * out_step] = te_m0_output(s1, bias, oc + 1, q);
  }
  if (oc < out_c) {
    const int8_t *f0 = filter + oc * n;
    if (q->input_offset != 0) {
      te_m0_dot2_s16(wide, f0, f0, n, &s0, &s1);
    } else {
      te_m0_dot2_s8(x, f0, f0, n, &s0, &s1);
    }
    out[oc * out_step] = te_m0_output(s0, bias, oc, q);
  }
}

void te_m0_pointwise_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                                    const te_window_t *window, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  int16_t wide[TE_M0_WINDOW_MAX];
  int32_t p, pixels;
  memcpy(&w, window, sizeof w);
  memcpy(&q, requant, sizeof q);
  if (w.in_c > TE_M0_WINDOW_MAX) {
    te_pointwise_conv2d_inplace(data, scratch, filter, bias, window, requant);
    return;
  }
  pixels = (int32_t)w.in_h * w.in_w;
  for (p = 0; p < pixels; ++p) {
    te_m0_rows(scratch, 1, data + p * w.in_c, wide, filter, w.in_c, w.out_c, bias, &q);
    memcpy(data + p * w.out_c, scratch, (size_t)w.out_c);
  }
}

void te_m0_fully_connected(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                           int16_t batches, int16_t accum_depth, int16_t out_depth, const te_requant_t *requant) {
  te_requant_t q;
  int16_t wide[TE_M0_WINDOW_MAX];
  int16_t b;
  memcpy(&q, requant, sizeof q);
  if (accum_depth > TE_M0_WINDOW_MAX && q.input_offset != 0) {
    te_fully_connected(out, in, filter, bias, batches, accum_depth, out_depth, requant);
    return;
  }
  for (b = 0; b < batches; ++b) {
    te_m0_rows(out, 1, in, wide, filter, accum_depth, out_depth, bias, &q);
    out += out_depth;
    in += accum_depth;
  }
}

/* The window of output (oy, ox) gathered as int16 in TFLM's filter order (ky, kx, ic), the input
 * offset added, zero where the window leaves the input (a padded tap adds nothing). */
static void te_m0_gather(int16_t *col, const int8_t *in, const te_window_t *w, int16_t oy, int16_t ox,
                         int16_t input_offset) {
  const int16_t iy0 = (int16_t)(oy * w->stride_h - w->pad_h);
  const int16_t ix0 = (int16_t)(ox * w->stride_w - w->pad_w);
  int16_t ky, kx, c;
  for (ky = 0; ky < w->k_h; ++ky) {
    const int16_t iy = (int16_t)(iy0 + w->dil_h * ky);
    for (kx = 0; kx < w->k_w; ++kx) {
      const int16_t ix = (int16_t)(ix0 + w->dil_w * kx);
      if (iy < 0 || iy >= w->in_h || ix < 0 || ix >= w->in_w) {
        memset(col, 0, (size_t)w->in_c * sizeof *col);
      } else {
        const int8_t *src = in + ((int32_t)iy * w->in_w + ix) * w->in_c;
        for (c = 0; c < w->in_c; ++c) {
          col[c] = (int16_t)(src[c] + input_offset);
        }
      }
      col += w->in_c;
    }
  }
}

void te_m0_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                  const te_window_t *window, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  int16_t col[TE_M0_WINDOW_MAX];
  int32_t n, oc, s0, s1;
  int16_t oy, ox;
  memcpy(&w, window, sizeof w);
  memcpy(&q, requant, sizeof q);
  n = (int32_t)w.k_h * w.k_w * w.in_c;
  if (n > TE_M0_WINDOW_MAX) {
    te_conv2d(out, in, filter, bias, window, requant);
    return;
  }
  for (oy = 0; oy < w.out_h; ++oy) {
    for (ox = 0; ox < w.out_w; ++ox) {
      te_m0_gather(col, in, &w, oy, ox, q.input_offset);
      for (oc = 0; oc + 1 < w.out_c; oc += 2) {
        te_m0_dot2_s16(col, filter + oc * n, filter + (oc + 1) * n, n, &s0, &s1);
        out[oc] = te_m0_output(s0, bias, oc, &q);
        out[oc + 1] = te_m0_output(s1, bias, oc + 1, &q);
      }
      if (oc < w.out_c) {
        te_m0_dot2_s16(col, filter + oc * n, filter + oc * n, n, &s0, &s1);
        out[oc] = te_m0_output(s0, bias, oc, &q);
      }
      out += w.out_c;
    }
  }
}

/* One depthwise output of one channel: the valid part of the window (bounds found once per row and
 * column, not per tap) of `src`, whose pixels are `pixel_stride` bytes apart, against `taps` (k_h*k_w
 * int32, the channel's weights). */
static int32_t te_m0_depthwise_window(const int8_t *src, int32_t pixel_stride, const int32_t *taps,
                                      const te_window_t *w, int16_t iy0, int16_t ix0, int32_t input_offset) {
  int16_t ky0 = 0, ky1 = w->k_h, kx0 = 0, kx1 = w->k_w, ky, kx;
  int32_t acc = 0;
  while (ky0 < ky1 && iy0 + w->dil_h * ky0 < 0) ++ky0;
  while (ky1 > ky0 && iy0 + w->dil_h * (ky1 - 1) >= w->in_h) --ky1;
  while (kx0 < kx1 && ix0 + w->dil_w * kx0 < 0) ++kx0;
  while (kx1 > kx0 && ix0 + w->dil_w * (kx1 - 1) >= w->in_w) --kx1;
  for (ky = ky0; ky < ky1; ++ky) {
    const int8_t *row = src + ((int32_t)(iy0 + w->dil_h * ky) * w->in_w + ix0) * pixel_stride;
    const int32_t *tap = taps + (int32_t)ky * w->k_w;
    const int32_t step = w->dil_w * pixel_stride;
    for (kx = kx0; kx < kx1; ++kx) {
      acc += tap[kx] * (row[kx * step] + input_offset);
    }
  }
  return acc;
}

/* Channel `oc`'s k_h*k_w weights (filter is [k_h][k_w][out_c]) as int32, for te_m0_depthwise_window. */
static void te_m0_taps(int32_t *taps, const int8_t *filter, const te_window_t *w, int32_t oc) {
  int32_t t, count = (int32_t)w->k_h * w->k_w;
  for (t = 0; t < count; ++t) {
    taps[t] = TE_RD_S8(filter + t * w->out_c + oc);
  }
}

#define TE_M0_TAPS_MAX 64

void te_m0_depthwise_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                            const te_window_t *window, int16_t depth_multiplier, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  int32_t taps[TE_M0_TAPS_MAX];
  int16_t oy, ox, ic, m;
  memcpy(&w, window, sizeof w);
  memcpy(&q, requant, sizeof q);
  if ((int32_t)w.k_h * w.k_w > TE_M0_TAPS_MAX) {
    te_depthwise_conv2d(out, in, filter, bias, window, depth_multiplier, requant);
    return;
  }
  for (ic = 0; ic < w.in_c; ++ic) {
    for (m = 0; m < depth_multiplier; ++m) {
      const int16_t oc = (int16_t)(ic * depth_multiplier + m);
      te_m0_taps(taps, filter, &w, oc);
      for (oy = 0; oy < w.out_h; ++oy) {
        const int16_t iy0 = (int16_t)(oy * w.stride_h - w.pad_h);
        for (ox = 0; ox < w.out_w; ++ox) {
          const int16_t ix0 = (int16_t)(ox * w.stride_w - w.pad_w);
          const int32_t acc = te_m0_depthwise_window(in + ic, w.in_c, taps, &w, iy0, ix0, q.input_offset);
          out[((int32_t)oy * w.out_w + ox) * w.out_c + oc] = te_m0_output(acc, bias, oc, &q);
        }
      }
    }
  }
}

void te_m0_depthwise_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                                    const te_window_t *window, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  int32_t taps[TE_M0_TAPS_MAX];
  int32_t p, pixels;
  int16_t c, oy, ox;
  memcpy(&w, window, sizeof w);
  memcpy(&q, requant, sizeof q);
  if ((int32_t)w.k_h * w.k_w > TE_M0_TAPS_MAX) {
    te_depthwise_conv2d_inplace(data, scratch, filter, bias, window, requant);
    return;
  }
  pixels = (int32_t)w.in_h * w.in_w;
  for (c = 0; c < w.in_c; ++c) {
    for (p = 0; p < pixels; ++p) {
      scratch[p] = data[p * w.in_c + c];
    }
    te_m0_taps(taps, filter, &w, c);
    for (oy = 0; oy < w.out_h; ++oy) {
      const int16_t iy0 = (int16_t)(oy * w.stride_h - w.pad_h);
      for (ox = 0; ox < w.out_w; ++ox) {
        const int16_t ix0 = (int16_t)(ox * w.stride_w - w.pad_w);
        const int32_t acc = te_m0_depthwise_window(scratch, 1, taps, &w, iy0, ix0, q.input_offset);
        data[((int32_t)oy * w.out_w + ox) * w.out_c + c] = te_m0_output(acc, bias, c, &q);
      }
    }
  }
}
