/* int16 (16x8) kernels of the AOT runtime: TFLM's reference kernels for int16 activations, bit for bit.
 * See te_int16.h. */
#include "te_int16.h"

#include "te_fixedpoint.h"
#include "te_kernels.h"

#include <string.h>

#ifdef __AVR__
#define TE_S16_LOAD(dst, src, n) memcpy_P((dst), (src), (n))
#define TE_RD_S64(p) ((int64_t)(((uint64_t)pgm_read_dword((const uint8_t *)(p) + 4) << 32) | pgm_read_dword(p)))
#else
#define TE_S16_LOAD(dst, src, n) memcpy((dst), (src), (n))
#define TE_RD_S64(p) (*(const int64_t *)(p))
#endif

#define TE_S16_LOAD_ELEM(p, is_const) ((is_const) ? TE_RD_S16(p) : *(p))

static int32_t te_s16_clamp(int32_t x, int32_t lo, int32_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

/* TFLM's MultiplyByQuantizedMultiplier (int32, double rounding). */
static int32_t te_s16_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
  const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  return te_rounding_divide_by_pot(te_srdhm((int32_t)((uint32_t)x << left), multiplier), (int8_t)right);
}

/* TFLM's MultiplyByQuantizedMultiplier(int64_t x, ...): the multiplier reduced to 16 bits, one rounding. */
static int32_t te_s16_mbqm64(int64_t x, int32_t multiplier, int32_t shift) {
  const int32_t reduced = multiplier < 0x7FFF0000L ? (int32_t)((multiplier + ((int32_t)1 << 15)) >> 16) : 0x7FFF;
  const int32_t total_shift = 15 - shift;
  x = x * (int64_t)reduced + ((int64_t)1 << (total_shift - 1));
  return (int32_t)(x >> total_shift);
}

/* MultiplyByQuantizedMultiplierSmallerThanOneExp. */
static int32_t te_s16_mbqm_lt1(int32_t x, int32_t multiplier, int32_t left_shift) {
  return te_rounding_divide_by_pot(te_srdhm(x, multiplier), (int8_t)-left_shift);
}

/* The broadcast walk of a {ndim, sizes, a_strides, b_strides} geometry (te_nonlinear.c's, for int16). */
typedef struct {
  int32_t ndim;
  int32_t sizes[TE_NL_MAX_DIMS], strides_a[TE_NL_MAX_DIMS], strides_b[TE_NL_MAX_DIMS], index[TE_NL_MAX_DIMS];
  int32_t offset_a, offset_b;
} te_s16_walk;

static int32_t te_s16_walk_begin(te_s16_walk *w, const int32_t *geom) {
  int32_t d, total = 1;
  w->ndim = TE_RD_S32(geom);
  for (d = 0; d < w->ndim; d++) {
    w->sizes[d] = TE_RD_S32(geom + 1 + d);
    w->strides_a[d] = TE_RD_S32(geom + 1 + w->ndim + d);
    w->strides_b[d] = TE_RD_S32(geom + 1 + 2 * w->ndim + d);
    w->index[d] = 0;
    total *= w->sizes[d];
  }
  w->offset_a = 0;
  w->offset_b = 0;
  return total;
}

static void te_s16_walk_next(te_s16_walk *w) {
  int32_t d;
  for (d = w->ndim - 1; d >= 0; d--) {
    w->offset_a += w->strides_a[d];
    w->offset_b += w->strides_b[d];
    if (++w->index[d] < w->sizes[d]) {
      return;
    }
    w->offset_a -= w->strides_a[d] * w->sizes[d];
    w->offset_b -= w->strides_b[d] * w->sizes[d];
    w->index[d] = 0;
  }
}

/* Runs `body` once per output element i of a broadcast ADD, SUB or MUL, with `p` (a local of the params'
 * type) read from TE_CONST and a_val, b_val the two operands plus their offsets. */
#define TE_S16_BROADCAST(p, params, geom, const_mask, a, b, body)                                 \
  do {                                                                                            \
    te_s16_walk w;                                                                                \
    const int32_t total = te_s16_walk_begin(&w, (geom));                                          \
    const uint8_t a_const = (const_mask) & TE_S16_A_CONST, b_const = (const_mask) & TE_S16_B_CONST; \
    int32_t i;                                                                                    \
    TE_S16_LOAD(&(p), (params), sizeof(p));                                                       \
    for (i = 0; i < total; i++) {                                                                 \
      const int32_t a_val = (p).a_offset + TE_S16_LOAD_ELEM((a) + w.offset_a, a_const);          \
      const int32_t b_val = (p).b_offset + TE_S16_LOAD_ELEM((b) + w.offset_b, b_const);          \
      body                                                                                        \
      te_s16_walk_next(&w);                                                                       \
    }                                                                                             \
  } while (0)

void te_add_s16(int16_t *out, const int16_t *a, const int16_t *b, const int32_t *geom,
                const te_add_params_t *params, uint8_t const_mask, int8_t sign) {
  te_add_params_t p;
  TE_S16_BROADCAST(p, params, geom, const_mask, a, b, {
    const int32_t scaled_a = te_s16_mbqm_lt1(a_val * ((int32_t)1 << p.left_shift), p.a_multiplier, p.a_shift);
    const int32_t scaled_b = te_s16_mbqm_lt1(b_val * ((int32_t)1 << p.left_shift), p.b_multiplier, p.b_shift);
    const int32_t combined = sign > 0 ? scaled_a + scaled_b : scaled_a - scaled_b;
    const int32_t raw = te_s16_mbqm_lt1(combined, p.out_multiplier, p.out_shift) + p.out_offset;
    out[i] = (int16_t)te_s16_clamp(raw, p.act_min, p.act_max);
  });
}

void te_squared_difference_s16(int16_t *out, const int16_t *a, const int16_t *b, const int32_t *geom,
                               const te_add_params_t *params, uint8_t const_mask) {
  te_add_params_t p;
  TE_S16_BROADCAST(p, params, geom, const_mask, a, b, {
    const int32_t diff = te_s16_mbqm_lt1(a_val * ((int32_t)1 << p.left_shift), p.a_multiplier, p.a_shift) -
                         te_s16_mbqm_lt1(b_val * ((int32_t)1 << p.left_shift), p.b_multiplier, p.b_shift);
    const int32_t raw = te_s16_mbqm(diff * diff, p.out_multiplier, p.out_shift) + p.out_offset;
    out[i] = (int16_t)te_s16_clamp(raw, p.act_min, p.act_max);
  });
}

void te_mul_s16(int16_t *out, const int16_t *a, const int16_t *b, const int32_t *geom,
                const te_mul_params_t *params, uint8_t const_mask) {
  te_mul_params_t p;
  TE_S16_BROADCAST(p, params, geom, const_mask, a, b, {
    const int32_t raw = p.out_offset + te_s16_mbqm(a_val * b_val, p.out_multiplier, p.out_shift);
    out[i] = (int16_t)te_s16_clamp(raw, p.act_min, p.act_max);
  });
}

void te_leaky_relu_s16(int16_t *out, const int16_t *in, int32_t count, const int32_t *params) {
  const int32_t in_zp = TE_RD_S32(params), out_zp = TE_RD_S32(params + 1);
  const int32_t id_m = TE_RD_S32(params + 2), id_s = TE_RD_S32(params + 3);
  const int32_t alpha_m = TE_RD_S32(params + 4), alpha_s = TE_RD_S32(params + 5);
  int32_t i;
  for (i = 0; i < count; i++) {
    const int32_t x = (int32_t)in[i] - in_zp;
    int32_t y;
    if (x >= 0) {
      y = te_s16_mbqm(x, id_m, id_s);
    } else {
      y = te_s16_mbqm(x, alpha_m < 0 ? -alpha_m : alpha_m, alpha_s);
      y = alpha_m < 0 ? -y : y;
    }
    out[i] = (int16_t)te_s16_clamp(out_zp + y, -32768, 32767);
  }
}

void te_relu_s16(int16_t *out, const int16_t *in, int32_t count, int32_t multiplier, int32_t shift, int16_t act_min,
                 int16_t act_max) {
  int32_t i;
  for (i = 0; i < count; i++) {
    const int32_t y = multiplier ? te_s16_mbqm(in[i], multiplier, shift) : in[i];
    out[i] = (int16_t)te_s16_clamp(y, act_min, act_max);
  }
}

void te_pad_s16(int16_t *out, const int16_t *in, const te_dim *in_dims, const te_dim *out_dims,
                const te_dim *pad_before, int16_t pad_value) {
  te_dim id[4], od[4], pb[4];
  te_dim a, b, c, d;
  uint8_t k;
  for (k = 0; k < 4; ++k) {
    id[k] = TE_RD_S16(in_dims + k);
    od[k] = TE_RD_S16(out_dims + k);
    pb[k] = TE_RD_S16(pad_before + k);
  }
  for (a = 0; a < od[0]; ++a) {
    const int16_t ia = (int16_t)(a - pb[0]);
    for (b = 0; b < od[1]; ++b) {
      const int16_t ib = (int16_t)(b - pb[1]);
      for (c = 0; c < od[2]; ++c) {
        const int16_t ic = (int16_t)(c - pb[2]);
        const uint8_t row_inside = ia >= 0 && ia < id[0] && ib >= 0 && ib < id[1] && ic >= 0 && ic < id[2];
        for (d = 0; d < od[3]; ++d) {
          const int16_t idd = (int16_t)(d - pb[3]);
          *out++ = row_inside && idd >= 0 && idd < id[3] ? in[(((int32_t)ia * id[1] + ib) * id[2] + ic) * id[3] + idd]
                                                         : pad_value;
        }
      }
    }
  }
}

void te_transpose_s16(int16_t *out, const int16_t *in, const te_dim *out_dims, const int32_t *in_strides) {
  te_dim od[4], a, b, c, d;
  int32_t st[4];
  uint8_t k;
  for (k = 0; k < 4; ++k) {
    od[k] = TE_RD_S16(out_dims + k);
    st[k] = TE_RD_S32(in_strides + k);
  }
  for (a = 0; a < od[0]; ++a) {
    for (b = 0; b < od[1]; ++b) {
      for (c = 0; c < od[2]; ++c) {
        const int16_t *row = in + a * st[0] + b * st[1] + c * st[2];
        for (d = 0; d < od[3]; ++d) {
          *out++ = row[d * st[3]];
        }
      }
    }
  }
}

/* One channel's requantization: the int64 or the int32 MultiplyByQuantizedMultiplier, then the clamp. */
static int16_t te_s16_output(int64_t acc, uint8_t wide, const te_requant_t *q, int16_t channel, int16_t act_min,
                             int16_t act_max) {
  const int16_t i = (q->per_channel & TE_REQUANT_PER_CHANNEL) ? channel : 0;
  const int32_t m = TE_RD_S32(q->multiplier + i), s = TE_RD_S8(q->shift + i);
  const int32_t scaled = wide ? te_s16_mbqm64(acc, m, s) : te_s16_mbqm((int32_t)acc, m, s);
  return (int16_t)te_s16_clamp(scaled + q->output_offset, act_min, act_max);
}

void te_conv2d_s16(int16_t *out, const int16_t *in, const int8_t *filter, const int64_t *bias64,
                   const int32_t *bias32, const te_window_t *window, int16_t groups, const te_requant_t *requant,
                   int16_t act_min, int16_t act_max) {
  te_window_t w;
  te_requant_t q;
  te_dim oy, ox, oc, ky, kx, ic;
  int16_t depth, per_group;
  const uint8_t wide = bias32 == 0;
  TE_S16_LOAD(&w, window, sizeof w);
  TE_S16_LOAD(&q, requant, sizeof q);
  depth = (int16_t)(w.in_c / groups);
  per_group = (int16_t)(w.out_c / groups);
  for (oy = 0; oy < w.out_h; ++oy) {
    const int16_t iy0 = (int16_t)(oy * w.stride_h - w.pad_h);
    for (ox = 0; ox < w.out_w; ++ox) {
      const int16_t ix0 = (int16_t)(ox * w.stride_w - w.pad_w);
      for (oc = 0; oc < w.out_c; ++oc) {
        const int16_t channel0 = (int16_t)(oc / per_group * depth);
        int64_t acc = 0;
        int32_t acc32 = 0;
        for (ky = 0; ky < w.k_h; ++ky) {
          const int16_t iy = (int16_t)(iy0 + w.dil_h * ky);
          if (iy < 0 || iy >= w.in_h) {
            continue;
          }
          for (kx = 0; kx < w.k_w; ++kx) {
            const int16_t ix = (int16_t)(ix0 + w.dil_w * kx);
            const int16_t *x = in + ((int32_t)iy * w.in_w + ix) * w.in_c + channel0;
            const int8_t *f = filter + (((int32_t)oc * w.k_h + ky) * w.k_w + kx) * depth;
            if (ix < 0 || ix >= w.in_w) {
              continue;
            }
            for (ic = 0; ic < depth; ++ic) {
              const int32_t product = (int32_t)TE_RD_S8(f + ic) * (int32_t)x[ic];
              if (wide) {
                acc += product;
              } else {
                acc32 = (int32_t)((uint32_t)acc32 + (uint32_t)product);
              }
            }
          }
        }
        if (wide) {
          acc += bias64 ? TE_RD_S64(bias64 + oc) : 0;
        } else {
          acc = (int32_t)((uint32_t)acc32 + (uint32_t)TE_RD_S32(bias32 + oc));
        }
        *out++ = te_s16_output(acc, wide, &q, oc, act_min, act_max);
      }
    }
  }
}

void te_depthwise_conv2d_s16(int16_t *out, const int16_t *in, const int8_t *filter, const int64_t *bias,
                             const te_window_t *window, const te_requant_t *requant, int16_t act_min,
                             int16_t act_max) {
  te_window_t w;
  te_requant_t q;
  te_dim oy, ox, oc, ky, kx;
  int16_t multiplier;
  TE_S16_LOAD(&w, window, sizeof w);
  TE_S16_LOAD(&q, requant, sizeof q);
  multiplier = (int16_t)(w.out_c / w.in_c);
  for (oy = 0; oy < w.out_h; ++oy) {
    const int16_t iy0 = (int16_t)(oy * w.stride_h - w.pad_h);
    for (ox = 0; ox < w.out_w; ++ox) {
      const int16_t ix0 = (int16_t)(ox * w.stride_w - w.pad_w);
      for (oc = 0; oc < w.out_c; ++oc) {
        const int16_t channel = (int16_t)(oc / multiplier);
        int64_t acc = 0;
        for (ky = 0; ky < w.k_h; ++ky) {
          const int16_t iy = (int16_t)(iy0 + w.dil_h * ky);
          if (iy < 0 || iy >= w.in_h) {
            continue;
          }
          for (kx = 0; kx < w.k_w; ++kx) {
            const int16_t ix = (int16_t)(ix0 + w.dil_w * kx);
            if (ix < 0 || ix >= w.in_w) {
              continue;
            }
            acc += (int32_t)TE_RD_S8(filter + ((int32_t)ky * w.k_w + kx) * w.out_c + oc) *
                   (int32_t)in[((int32_t)iy * w.in_w + ix) * w.in_c + channel];
          }
        }
        acc += bias ? TE_RD_S64(bias + oc) : 0;
        *out++ = te_s16_output(acc, 1, &q, oc, act_min, act_max);
      }
    }
  }
}

void te_fully_connected_s16(int16_t *out, const int16_t *in, const int8_t *filter, const int64_t *bias,
                            int32_t batches, int32_t accum_depth, int32_t out_depth, const te_requant_t *requant,
                            int16_t act_min, int16_t act_max) {
  te_requant_t q;
  int32_t b, oc, d;
  TE_S16_LOAD(&q, requant, sizeof q);
  for (b = 0; b < batches; ++b) {
    for (oc = 0; oc < out_depth; ++oc) {
      const int8_t *row = filter + oc * accum_depth;
      int64_t acc = 0;
      for (d = 0; d < accum_depth; ++d) {
        acc += (int32_t)TE_RD_S8(row + d) * (int32_t)in[d];
      }
      acc += bias ? TE_RD_S64(bias + oc) : 0;
      *out++ = te_s16_output(acc, 1, &q, (int16_t)oc, act_min, act_max);
    }
    in += accum_depth;
  }
}

void te_transpose_conv_s16(int16_t *out, const int16_t *in, const int8_t *filter, const int64_t *bias,
                           const te_window_t *window, const te_requant_t *requant, int16_t act_min,
                           int16_t act_max, int64_t *scratch) {
  te_window_t w;
  te_requant_t q;
  te_dim iy, ix, ky, kx, oc, ic;
  int32_t i, n;
  TE_S16_LOAD(&w, window, sizeof w);
  TE_S16_LOAD(&q, requant, sizeof q);
  n = (int32_t)w.out_h * w.out_w * w.out_c;
  for (i = 0; i < n; ++i) {
    scratch[i] = 0;
  }
  for (iy = 0; iy < w.in_h; ++iy) {
    const int16_t oy0 = (int16_t)(iy * w.stride_h - w.pad_h);
    for (ix = 0; ix < w.in_w; ++ix) {
      const int16_t ox0 = (int16_t)(ix * w.stride_w - w.pad_w);
      const int16_t *x = in + ((int32_t)iy * w.in_w + ix) * w.in_c;
      for (ky = 0; ky < w.k_h; ++ky) {
        const int16_t oy = (int16_t)(oy0 + ky);
        if (oy < 0 || oy >= w.out_h) {
          continue;
        }
        for (kx = 0; kx < w.k_w; ++kx) {
          const int16_t ox = (int16_t)(ox0 + kx);
          int64_t *acc = scratch + ((int32_t)oy * w.out_w + ox) * w.out_c;
          if (ox < 0 || ox >= w.out_w) {
            continue;
          }
          for (oc = 0; oc < w.out_c; ++oc) {
            const int8_t *f = filter + (((int32_t)oc * w.k_h + ky) * w.k_w + kx) * w.in_c;
            for (ic = 0; ic < w.in_c; ++ic) {
              acc[oc] += (int32_t)TE_RD_S8(f + ic) * (int32_t)x[ic];
            }
          }
        }
      }
    }
  }
  for (i = 0; i < n; ++i) {
    const int16_t oc_i = (int16_t)(i % w.out_c);
    out[i] = te_s16_output(scratch[i] + (bias ? TE_RD_S64(bias + oc_i) : 0), 1, &q, oc_i, act_min, act_max);
  }
}

/* The window of one pool output, clamped to the input as TFLM does (te_kernels.c's te_pool_span). */
static void te_s16_pool_span(const te_window_t *w, te_dim oy, te_dim ox, int16_t *iy0, int16_t *ix0, int16_t span[4]) {
  *iy0 = (int16_t)(oy * w->stride_h - w->pad_h);
  *ix0 = (int16_t)(ox * w->stride_w - w->pad_w);
  span[0] = *iy0 < 0 ? (int16_t)-*iy0 : 0;
  span[1] = w->k_h < w->in_h - *iy0 ? w->k_h : (int16_t)(w->in_h - *iy0);
  span[2] = *ix0 < 0 ? (int16_t)-*ix0 : 0;
  span[3] = w->k_w < w->in_w - *ix0 ? w->k_w : (int16_t)(w->in_w - *ix0);
}

static void te_s16_pool(int16_t *out, const int16_t *in, const te_window_t *window, int16_t act_min, int16_t act_max,
                        uint8_t average) {
  te_window_t w;
  te_dim oy, ox, c, fy, fx;
  TE_S16_LOAD(&w, window, sizeof w);
  for (oy = 0; oy < w.out_h; ++oy) {
    for (ox = 0; ox < w.out_w; ++ox) {
      int16_t iy0, ix0, span[4];
      te_s16_pool_span(&w, oy, ox, &iy0, &ix0, span);
      for (c = 0; c < w.in_c; ++c) {
        int32_t acc = average ? 0 : -32768, count = 0;
        for (fy = span[0]; fy < span[1]; ++fy) {
          for (fx = span[2]; fx < span[3]; ++fx) {
            const int16_t v = in[((int32_t)(iy0 + fy) * w.in_w + (ix0 + fx)) * w.in_c + c];
            acc = average ? acc + v : (v > acc ? v : acc);
            ++count;
          }
        }
        if (average && count > 0) {
          acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        }
        *out++ = (int16_t)te_s16_clamp(acc, act_min, act_max);
      }
    }
  }
}

void te_average_pool_s16(int16_t *out, const int16_t *in, const te_window_t *window, int16_t act_min,
                         int16_t act_max) {
  te_s16_pool(out, in, window, act_min, act_max, 1);
}

void te_max_pool_s16(int16_t *out, const int16_t *in, const te_window_t *window, int16_t act_min, int16_t act_max) {
  te_s16_pool(out, in, window, act_min, act_max, 0);
}

void te_quantize_f32_s16(int16_t *out, const float *in, int32_t count, float scale, int32_t zero_point) {
  int32_t i;
  for (i = 0; i < count; i++) {
    /* far outside int16 (or NaN): saturated */
    out[i] = (int16_t)te_s16_clamp(te_round_f32(in[i] / scale, 262144L) + zero_point, -32768, 32767);
  }
}

void te_dequantize_s16_f32(float *out, const int16_t *in, int32_t count, float scale, int32_t zero_point) {
  int32_t i;
  /* TFLM multiplies in double then rounds to float; the exact product of a float scale and a 17-bit
   * integer fits a double, so one float multiply rounds to the same value. */
  for (i = 0; i < count; i++) {
    out[i] = scale * (float)((int32_t)in[i] - zero_point);
  }
}

/* The input of reference_integer_ops::Logistic / Tanh for int16, rescaled (the power-of-two case folded in). */
static void te_s16_sigmoid_scale(int32_t *multiplier, int32_t *left_shift, int32_t *round) {
  if (*multiplier == 0) {
    *multiplier = (int32_t)3 << *left_shift;
    *left_shift = 0;
  }
  *round = *left_shift > 0 ? (int32_t)1 << (*left_shift - 1) : 0;
}

/* sigmoid_table_uint16 between entries uh and uh + 1, `ut` of 2^frac_bits of the way: (ua << frac_bits) + ut * (ub - ua). */
static uint32_t te_s16_sigmoid_at(const uint16_t *table, uint32_t uh, uint32_t ut, int32_t frac_bits) {
  const uint32_t ua = TE_RD_U16(table + uh), ub = TE_RD_U16(table + uh + 1);
  return (ua << frac_bits) + ut * (ub - ua);
}

/* One reference_integer_ops::Logistic output, the input already rescaled. */
static int16_t te_s16_logistic(int32_t x, const uint16_t *table) {
  const uint32_t ax = (uint32_t)(x < 0 ? -x : x);
  const uint32_t uh = ax >> 9;
  uint32_t result = uh >= 255u ? (uint32_t)0x7FFF << 10 : te_s16_sigmoid_at(table, uh, ax & 0x1FFu, 9);
  result = x >= 0 ? result + (1u << 9) : ((uint32_t)1 << 25) - result + (1u << 9) - 1u;
  return (int16_t)(result >> 10);
}

/* One reference_integer_ops::Tanh output, the input already rescaled. */
static int16_t te_s16_tanh(int32_t x, const uint16_t *table) {
  const uint32_t ax = (uint32_t)(x < 0 ? -x : x);
  const uint32_t uh = ax >> 8;
  int32_t result = uh >= 255u ? (int32_t)0xFFFF << 8 : (int32_t)te_s16_sigmoid_at(table, uh, ax & 0xFFu, 8);
  result = x >= 0 ? result - ((int32_t)1 << 23) + (1 << 7) : -result + ((int32_t)1 << 23) + (1 << 7) - 1;
  return (int16_t)(result >> 8);
}

void te_logistic_s16(int16_t *out, const int16_t *in, int32_t count, int32_t input_multiplier,
                     int32_t input_left_shift, const uint16_t *table) {
  int32_t i, round;
  te_s16_sigmoid_scale(&input_multiplier, &input_left_shift, &round);
  for (i = 0; i < count; i++) {
    out[i] = te_s16_logistic(((int32_t)in[i] * input_multiplier + round) >> input_left_shift, table);
  }
}

void te_tanh_s16(int16_t *out, const int16_t *in, int32_t count, int32_t input_multiplier, int32_t input_left_shift,
                 const uint16_t *table) {
  int32_t i, round;
  te_s16_sigmoid_scale(&input_multiplier, &input_left_shift, &round);
  for (i = 0; i < count; i++) {
    out[i] = te_s16_tanh(((int32_t)in[i] * input_multiplier + round) >> input_left_shift, table);
  }
}

/* TFLM's LUTLookup for int16: 512 intervals, lut[index + 1] only for the slope. */
static int16_t te_s16_lut(int16_t value, const int16_t *lut) {
  const uint16_t index = (uint16_t)(256 + (value >> 7));
  const int16_t offset = (int16_t)(value & 0x7F);
  const int16_t base = TE_RD_S16(lut + index);
  const int16_t slope = (int16_t)(TE_RD_S16(lut + index + 1) - base);
  const int32_t delta = ((int32_t)slope * offset + 64) >> 7;
  return (int16_t)(base + delta);
}

void te_softmax_s16(int16_t *out, const int16_t *in, int32_t outer, int32_t depth, int32_t input_multiplier,
                    int32_t input_left_shift, const int16_t *exp_lut, const int16_t *one_over_one_plus_x_lut) {
  int32_t i, c;
  for (i = 0; i < outer; i++) {
    const int16_t *row = in + (int32_t)i * depth;
    int16_t *exps = out + (int32_t)i * depth;
    int16_t max_in_row = -32768, reciprocal;
    int32_t sum_of_exps = 0, shifted_sum, headroom_plus_one, right_shift;
    for (c = 0; c < depth; c++) {
      max_in_row = row[c] > max_in_row ? row[c] : max_in_row;
    }
    for (c = 0; c < depth; c++) {
      const int32_t scaled = te_mul_by_quantized_multiplier(row[c] - max_in_row, input_multiplier,
                                                            (int8_t)input_left_shift);
      exps[c] = te_s16_lut((int16_t)te_s16_clamp(scaled + 32767, -32768, 32767), exp_lut);
      sum_of_exps += exps[c];
    }
    headroom_plus_one = te_clz32((uint32_t)sum_of_exps);
    shifted_sum = (int32_t)((((int64_t)sum_of_exps << (headroom_plus_one - 1)) + ((int64_t)1 << 13)) >> 14);
    reciprocal = te_s16_lut((int16_t)te_s16_clamp(shifted_sum - (((int32_t)1 << 15) + ((int32_t)1 << 16)), -32768, 32767),
                            one_over_one_plus_x_lut);
    right_shift = 31 - headroom_plus_one;
    for (c = 0; c < depth; c++) {
      const int64_t round = (int64_t)1 << (right_shift - 1);
      const int32_t result = (int32_t)(((int64_t)exps[c] * reciprocal + round) >> right_shift);
      exps[c] = (int16_t)te_s16_clamp(result, 0, 32767);
    }
  }
}

/* One step of an n-dimensional walk (te_nonlinear.c's te_nl_step over one stride set): 0 when done. */
static int32_t te_s16_step(int32_t *index, const int32_t *sizes, const int32_t *strides, int32_t *offset, int32_t n) {
  int32_t d;
  for (d = n - 1; d >= 0; d--) {
    if (++index[d] < sizes[d]) {
      *offset += strides[d];
      return 1;
    }
    index[d] = 0;
    *offset -= (sizes[d] - 1) * strides[d];
  }
  return 0;
}

void te_mean_s16(int16_t *out, const int16_t *in, const int32_t *geom, int32_t input_zero_point, int32_t count,
                 int32_t multiplier, int32_t shift, int32_t output_zero_point) {
  int32_t kept_sizes[TE_NL_MAX_DIMS], kept_strides[TE_NL_MAX_DIMS], kept_index[TE_NL_MAX_DIMS];
  int32_t red_sizes[TE_NL_MAX_DIMS], red_strides[TE_NL_MAX_DIMS], red_index[TE_NL_MAX_DIMS];
  const int32_t n_kept = TE_RD_S32(geom), n_red = TE_RD_S32(geom + 1);
  int32_t base = 0, o = 0, d;
  for (d = 0; d < n_kept; d++) {
    kept_sizes[d] = TE_RD_S32(geom + 2 + d);
    kept_strides[d] = TE_RD_S32(geom + 2 + n_kept + d);
    kept_index[d] = 0;
  }
  for (d = 0; d < n_red; d++) {
    red_sizes[d] = TE_RD_S32(geom + 2 + 2 * n_kept + d);
    red_strides[d] = TE_RD_S32(geom + 2 + 2 * n_kept + n_red + d);
  }
  do {
    int32_t sum = 0, offset = base;
    for (d = 0; d < n_red; d++) {
      red_index[d] = 0;
    }
    do {
      sum += in[offset];
    } while (te_s16_step(red_index, red_sizes, red_strides, &offset, n_red));
    sum -= input_zero_point * count;
    out[o++] = (int16_t)te_s16_clamp(te_mul_by_quantized_multiplier(sum, multiplier, (int8_t)shift) + output_zero_point,
                                     -32768, 32767);
  } while (te_s16_step(kept_index, kept_sizes, kept_strides, &base, n_kept));
}

/* One LSTM gate's pre-activation (CalculateLstmGate for int16 input): the input FC (int64 bias) and the
 * recurrent FC (no bias), each requantized with the int64 MultiplyByQuantizedMultiplier to int16, summed. */
static int16_t te_s16_lstm_gate(const int16_t *x, const int16_t *h, const int8_t *w_x, const int8_t *w_h,
                                const int64_t *bias, int32_t n_input, int32_t n_state, const te_lstm_gate_t *q) {
  int64_t acc_x = TE_RD_S64(bias), acc_h = 0;
  int32_t i;
  for (i = 0; i < n_input; i++) {
    acc_x += (int32_t)x[i] * TE_RD_S8(w_x + i);
  }
  for (i = 0; i < n_state; i++) {
    acc_h += (int32_t)h[i] * TE_RD_S8(w_h + i);
  }
  return (int16_t)te_s16_clamp(
      te_s16_clamp(te_s16_mbqm64(acc_x, TE_RD_S32(&q->input_multiplier), TE_RD_S32(&q->input_shift)), -32768, 32767)
          + te_s16_clamp(te_s16_mbqm64(acc_h, TE_RD_S32(&q->recurrent_multiplier), TE_RD_S32(&q->recurrent_shift)),
                         -32768, 32767),
      -32768, 32767);
}

void te_lstm_s16(int16_t *out, const int16_t *in, int16_t *hidden, int16_t *cell, const int8_t *const *weights,
                 const int64_t *const *biases, const te_lstm_params_t *params, const uint16_t *lut) {
  const int32_t steps = TE_RD_S32(&params->steps), n_input = TE_RD_S32(&params->n_input);
  const int32_t n_state = TE_RD_S32(&params->n_state), cell_clip = TE_RD_S32(&params->quantized_cell_clip);
  const int32_t tanh_multiplier = TE_RD_S32(&params->cell_tanh_multiplier);
  const int32_t tanh_shift = TE_RD_S32(&params->cell_tanh_right_shift);
  const int32_t tanh_round = tanh_shift > 0 ? (int32_t)1 << (tanh_shift - 1) : 0;
  const int32_t cell_sigmoid = TE_RD_S32(&params->cell_gate_is_sigmoid);
  const int32_t hidden_zp = TE_RD_S32(&params->hidden_zero_point);
  int32_t t, u, g;
  for (t = 0; t < steps; ++t) {
    const int16_t *x = in + t * n_input;
    int16_t *h_new = out + t * n_state;
    /* Every gate reads the previous hidden state: the new one goes to the output row first. */
    for (u = 0; u < n_state; ++u) {
      int16_t gate[4];
      int32_t c;
      for (g = 0; g < 4; ++g) {
        const int16_t pre = te_s16_lstm_gate(x, hidden, weights[g] + u * n_input, weights[4 + g] + u * n_state,
                                             biases[g] + u, n_input, n_state, &params->gate[g]);
        gate[g] = g == 2 && !cell_sigmoid ? te_s16_tanh((int32_t)pre * 3, lut) : te_s16_logistic((int32_t)pre * 3, lut);
      }
      c = te_s16_clamp(te_mbqm_positive((int32_t)gate[1] * cell[u], TE_RD_S32(&params->forget_mul_multiplier),
                                        TE_RD_S32(&params->forget_mul_shift)), -32768, 32767);
      c = te_s16_clamp(c + te_s16_clamp(te_mbqm_positive((int32_t)gate[0] * gate[2],
                                                         TE_RD_S32(&params->input_mul_multiplier),
                                                         TE_RD_S32(&params->input_mul_shift)), -32768, 32767),
                       -32768, 32767);
      if (cell_clip > 0) {
        c = te_s16_clamp(c, -cell_clip, cell_clip);
      }
      cell[u] = (int16_t)c;
      h_new[u] = (int16_t)te_s16_clamp(
          te_mbqm_positive((int32_t)te_s16_tanh(((int32_t)c * tanh_multiplier + tanh_round) >> tanh_shift, lut) * gate[3],
                           TE_RD_S32(&params->output_mul_multiplier), TE_RD_S32(&params->output_mul_shift)) + hidden_zp,
          -32768, 32767);
    }
    for (u = 0; u < n_state; ++u) {
      hidden[u] = h_new[u];
    }
  }
}

void te_batch_matmul_s16(int16_t *out, const int16_t *lhs, const int16_t *rhs, const te_batch_matmul_t *params,
                         const int32_t *offsets, uint8_t consts) {
  te_batch_matmul_t p;
  int32_t b, m, n, k;
  const uint8_t lhs_const = (consts & TE_MATMUL_LHS_CONST) != 0, rhs_const = (consts & TE_MATMUL_RHS_CONST) != 0;
  TE_S16_LOAD(&p, params, sizeof p);
  for (b = 0; b < p.batches; ++b) {
    const int16_t *l = lhs + TE_RD_S32(offsets + 2 * b), *r = rhs + TE_RD_S32(offsets + 2 * b + 1);
    for (m = 0; m < p.rows; ++m) {
      for (n = 0; n < p.cols; ++n) {
        int64_t acc = 0;
        for (k = 0; k < p.depth; ++k) {
          acc += (int32_t)TE_S16_LOAD_ELEM(l + m * p.lhs_row_stride + k * p.lhs_depth_stride, lhs_const)
                 * (int32_t)TE_S16_LOAD_ELEM(r + k * p.rhs_depth_stride + n * p.rhs_col_stride, rhs_const);
        }
        *out++ = (int16_t)te_s16_clamp(te_s16_mbqm64(acc, p.multiplier, p.shift), -32768, 32767);
      }
    }
  }
}
