/* int16 (16x8) kernels of the AOT runtime: TFLM's reference kernels for int16 activations, bit for bit.
 * See te_int16.h. */
#include "te_int16.h"

#include "te_fixedpoint.h"

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
