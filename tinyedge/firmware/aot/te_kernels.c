/* int8 kernels of the AOT runtime: TFLM's reference kernels (tensorflow/lite/kernels/internal/
 * reference/integer_ops), bit for bit. See te_kernels.h. */
#include "te_kernels.h"

#include "te_fixedpoint.h"

#include <string.h>

#ifdef __AVR__
#define TE_LOAD(dst, src, n) memcpy_P((dst), (src), (n))
#else
#define TE_LOAD(dst, src, n) memcpy((dst), (src), (n))
#endif

int32_t te_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int8_t shift) {
  const int8_t left = shift > 0 ? shift : 0;
  const int8_t right = shift > 0 ? 0 : (int8_t)-shift;
  return te_rounding_divide_by_pot(te_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

static int8_t te_requantize(int32_t acc, const te_requant_t *q, int16_t channel) {
  const int16_t i = (q->per_channel & TE_REQUANT_PER_CHANNEL) ? channel : 0;
  acc = te_mul_by_quantized_multiplier(acc, TE_RD_S32(q->multiplier + i), TE_RD_S8(q->shift + i));
  acc += q->output_offset;
  if (acc < q->act_min) {
    acc = q->act_min;
  }
  if (acc > q->act_max) {
    acc = q->act_max;
  }
  return (int8_t)acc;
}

/* |filter| <= 128 and |input + offset| <= 255, so the product fits in 16 bits, as on AVR's int. */
/* The bias (when the op has one) and the requantization that end every conv / FC output. */
static int8_t te_output(int32_t acc, const int32_t *bias, int16_t channel, const te_requant_t *q) {
  if (bias) {
    acc += TE_RD_S32(bias + channel);
  }
  return te_requantize(acc, q, channel);
}

/* int_fast16_t is the native register width on 32-bit cores (no sign-extension per step) and
 * 16 bits on AVR. An input offset of 0 means the generator folded it into the bias. */
static int32_t te_dot(const int8_t *in, const int8_t *filter, int_fast16_t n, int_fast16_t input_offset) {
  int32_t acc = 0;
  int_fast16_t i;
  if (input_offset == 0) {
    for (i = 0; i < n; ++i) {
      acc += (int16_t)TE_RD_S8(filter + i) * (int16_t)in[i];
    }
    return acc;
  }
  for (i = 0; i < n; ++i) {
    acc += (int16_t)TE_RD_S8(filter + i) * (int16_t)(in[i] + input_offset);
  }
  return acc;
}

void te_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
               const te_window_t *window, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  te_dim oy, ox, oc, ky, kx;
  TE_LOAD(&w, window, sizeof w);
  TE_LOAD(&q, requant, sizeof q);
  for (oy = 0; oy < w.out_h; ++oy) {
    const int16_t iy0 = (int16_t)(oy * w.stride_h - w.pad_h);
    for (ox = 0; ox < w.out_w; ++ox) {
      const int16_t ix0 = (int16_t)(ox * w.stride_w - w.pad_w);
      for (oc = 0; oc < w.out_c; ++oc) {
        int32_t acc = 0;
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
            acc += te_dot(in + ((int32_t)iy * w.in_w + ix) * w.in_c,
                          filter + (((int32_t)oc * w.k_h + ky) * w.k_w + kx) * w.in_c,
                          w.in_c, q.input_offset);
          }
        }
        *out++ = te_output(acc, bias, oc, &q);
      }
    }
  }
}

/* One depthwise output: the k_h x k_w window at (iy0, ix0) of one channel, whose pixels are
 * `pixel_stride` bytes apart in `src`, times that channel's taps (`filter` points at the first). */
static int32_t te_depthwise_window(const int8_t *src, int16_t pixel_stride, const int8_t *filter,
                                   const te_window_t *w, int16_t iy0, int16_t ix0, int16_t input_offset) {
  int32_t acc = 0;
  te_dim ky, kx;
  for (ky = 0; ky < w->k_h; ++ky) {
    const int16_t iy = (int16_t)(iy0 + w->dil_h * ky);
    if (iy < 0 || iy >= w->in_h) {
      continue;
    }
    for (kx = 0; kx < w->k_w; ++kx) {
      const int16_t ix = (int16_t)(ix0 + w->dil_w * kx);
      if (ix < 0 || ix >= w->in_w) {
        continue;
      }
      acc += (int16_t)TE_RD_S8(filter + ((int32_t)ky * w->k_w + kx) * w->out_c) *
             (int16_t)(src[((int32_t)iy * w->in_w + ix) * pixel_stride] + input_offset);
    }
  }
  return acc;
}

void te_depthwise_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                         const te_window_t *window, int16_t depth_multiplier, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  te_dim oy, ox, ic, m;
  TE_LOAD(&w, window, sizeof w);
  TE_LOAD(&q, requant, sizeof q);
  for (oy = 0; oy < w.out_h; ++oy) {
    const int16_t iy0 = (int16_t)(oy * w.stride_h - w.pad_h);
    for (ox = 0; ox < w.out_w; ++ox) {
      const int16_t ix0 = (int16_t)(ox * w.stride_w - w.pad_w);
      for (ic = 0; ic < w.in_c; ++ic) {
        for (m = 0; m < depth_multiplier; ++m) {
          const int16_t oc = (int16_t)(ic * depth_multiplier + m);
          int32_t acc = te_depthwise_window(in + ic, w.in_c, filter + oc, &w, iy0, ix0, q.input_offset);
          out[((int32_t)oy * w.out_w + ox) * w.out_c + oc] = te_output(acc, bias, oc, &q);
        }
      }
    }
  }
}

void te_depthwise_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                                 const te_window_t *window, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  te_dim c, oy, ox;
  int32_t p, pixels;
  TE_LOAD(&w, window, sizeof w);
  TE_LOAD(&q, requant, sizeof q);
  pixels = (int32_t)w.in_h * w.in_w;
  for (c = 0; c < w.in_c; ++c) {
    for (p = 0; p < pixels; ++p) {
      scratch[p] = data[p * w.in_c + c];
    }
    for (oy = 0; oy < w.out_h; ++oy) {
      const int16_t iy0 = (int16_t)(oy * w.stride_h - w.pad_h);
      for (ox = 0; ox < w.out_w; ++ox) {
        const int16_t ix0 = (int16_t)(ox * w.stride_w - w.pad_w);
        int32_t acc = te_depthwise_window(scratch, 1, filter + c, &w, iy0, ix0, q.input_offset);
        data[((int32_t)oy * w.out_w + ox) * w.out_c + c] = te_output(acc, bias, c, &q);
      }
    }
  }
}

void te_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                       const te_window_t *window, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  te_dim oy, ox, oc, ky, kx;
  int32_t row_bytes;
  int8_t *row_out;
  TE_LOAD(&w, window, sizeof w);
  TE_LOAD(&q, requant, sizeof q);
  row_bytes = (int32_t)w.in_w * w.in_c;
  row_out = scratch + (int32_t)w.pad_h * row_bytes;
  for (oy = 0; oy < w.out_h; ++oy) {
    int8_t *out = row_out;
    for (ox = 0; ox < w.out_w; ++ox) {
      const int16_t ix0 = (int16_t)(ox - w.pad_w);
      for (oc = 0; oc < w.out_c; ++oc) {
        int32_t acc = 0;
        for (ky = 0; ky < w.k_h; ++ky) {
          const int16_t iy = (int16_t)(oy - w.pad_h + ky);
          const int8_t *row;
          if (iy < 0 || iy >= w.in_h) {
            continue;
          }
          /* Rows above this one were overwritten: their input lives in the ring. */
          row = iy < oy ? scratch + (int32_t)(iy % w.pad_h) * row_bytes : data + (int32_t)iy * row_bytes;
          for (kx = 0; kx < w.k_w; ++kx) {
            const int16_t ix = (int16_t)(ix0 + kx);
            if (ix < 0 || ix >= w.in_w) {
              continue;
            }
            acc += te_dot(row + (int32_t)ix * w.in_c,
                          filter + (((int32_t)oc * w.k_h + ky) * w.k_w + kx) * w.in_c,
                          w.in_c, q.input_offset);
          }
        }
        *out++ = te_output(acc, bias, oc, &q);
      }
    }
    if (w.pad_h > 0) {
      memcpy(scratch + (int32_t)(oy % w.pad_h) * row_bytes, data + (int32_t)oy * row_bytes, (size_t)row_bytes);
    }
    memcpy(data + (int32_t)oy * row_bytes, row_out, (size_t)row_bytes);
  }
}

void te_pointwise_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                                 const te_window_t *window, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  te_dim oc;
  int32_t p, pixels;
  TE_LOAD(&w, window, sizeof w);
  TE_LOAD(&q, requant, sizeof q);
  pixels = (int32_t)w.in_h * w.in_w;
  for (p = 0; p < pixels; ++p) {
    const int8_t *in = data + p * w.in_c;
    for (oc = 0; oc < w.out_c; ++oc) {
      int32_t acc = te_dot(in, filter + (int32_t)oc * w.in_c, w.in_c, q.input_offset);
      scratch[oc] = te_output(acc, bias, oc, &q);
    }
    memcpy(data + p * w.out_c, scratch, (size_t)w.out_c);
  }
}

void te_fully_connected(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                        int16_t batches, int16_t accum_depth, int16_t out_depth, const te_requant_t *requant) {
  te_requant_t q;
  int16_t b, oc;
  TE_LOAD(&q, requant, sizeof q);
  for (b = 0; b < batches; ++b) {
    for (oc = 0; oc < out_depth; ++oc) {
      int32_t acc = te_dot(in, filter + (int32_t)oc * accum_depth, accum_depth, q.input_offset);
      *out++ = te_output(acc, bias, oc, &q);
    }
    in += accum_depth;
  }
}

/* The window of one pool output, clamped to the input as TFLM does. */
typedef struct {
  int16_t y0, y1, x0, x1, iy0, ix0;
} te_span_t;

static te_span_t te_pool_span(const te_window_t *w, te_dim oy, te_dim ox) {
  te_span_t s;
  s.iy0 = (int16_t)(oy * w->stride_h - w->pad_h);
  s.ix0 = (int16_t)(ox * w->stride_w - w->pad_w);
  s.y0 = s.iy0 < 0 ? (int16_t)-s.iy0 : 0;
  s.x0 = s.ix0 < 0 ? (int16_t)-s.ix0 : 0;
  s.y1 = w->k_h < w->in_h - s.iy0 ? w->k_h : (int16_t)(w->in_h - s.iy0);
  s.x1 = w->k_w < w->in_w - s.ix0 ? w->k_w : (int16_t)(w->in_w - s.ix0);
  return s;
}

static int8_t te_clamp8(int32_t v, int8_t lo, int8_t hi) {
  return (int8_t)(v < lo ? lo : v > hi ? hi : v);
}

void te_average_pool(int8_t *out, const int8_t *in, const te_window_t *window, int8_t act_min, int8_t act_max) {
  te_window_t w;
  te_dim oy, ox, c, fy, fx;
  TE_LOAD(&w, window, sizeof w);
  for (oy = 0; oy < w.out_h; ++oy) {
    for (ox = 0; ox < w.out_w; ++ox) {
      const te_span_t s = te_pool_span(&w, oy, ox);
      for (c = 0; c < w.in_c; ++c) {
        int32_t acc = 0;
        int32_t count = 0;
        for (fy = s.y0; fy < s.y1; ++fy) {
          for (fx = s.x0; fx < s.x1; ++fx) {
            acc += in[((int32_t)(s.iy0 + fy) * w.in_w + (s.ix0 + fx)) * w.in_c + c];
            ++count;
          }
        }
        if (count > 0) {
          acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        }
        *out++ = te_clamp8(acc, act_min, act_max);
      }
    }
  }
}

void te_max_pool(int8_t *out, const int8_t *in, const te_window_t *window, int8_t act_min, int8_t act_max) {
  te_window_t w;
  te_dim oy, ox, c, fy, fx;
  TE_LOAD(&w, window, sizeof w);
  for (oy = 0; oy < w.out_h; ++oy) {
    for (ox = 0; ox < w.out_w; ++ox) {
      const te_span_t s = te_pool_span(&w, oy, ox);
      for (c = 0; c < w.in_c; ++c) {
        int8_t max = INT8_MIN;
        for (fy = s.y0; fy < s.y1; ++fy) {
          for (fx = s.x0; fx < s.x1; ++fx) {
            const int8_t v = in[((int32_t)(s.iy0 + fy) * w.in_w + (s.ix0 + fx)) * w.in_c + c];
            if (v > max) {
              max = v;
            }
          }
        }
        *out++ = te_clamp8(max, act_min, act_max);
      }
    }
  }
}

void te_pad(int8_t *out, const int8_t *in, const te_dim *in_dims, const te_dim *out_dims,
            const te_dim *pad_before, int8_t pad_value) {
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
          if (row_inside && idd >= 0 && idd < id[3]) {
            *out++ = in[(((int32_t)ia * id[1] + ib) * id[2] + ic) * id[3] + idd];
          } else {
            *out++ = pad_value;
          }
        }
      }
    }
  }
}

void te_copy_blocks(uint8_t *dst, const uint8_t *src, int32_t outer, int32_t block, int32_t dst_stride) {
  int32_t o;
  if (dst == src && block == dst_stride) {
    return;
  }
  for (o = 0; o < outer; ++o) {
    memmove(dst + o * dst_stride, src + o * block, (size_t)block);
  }
}

void te_copy_blocks_const(uint8_t *dst, const uint8_t *src, int32_t outer, int32_t block, int32_t dst_stride) {
  int32_t o;
  for (o = 0; o < outer; ++o) {
    TE_LOAD(dst + o * dst_stride, src + o * block, (size_t)block);
  }
}

void te_transpose(int8_t *out, const int8_t *in, const te_dim *out_dims, const int32_t *in_strides) {
  te_dim od[4], a, b, c, d;
  int32_t st[4];
  uint8_t k;
  for (k = 0; k < 4; ++k) {
    od[k] = TE_RD_S16(out_dims + k);
    st[k] = TE_RD_S32(in_strides + k);
  }
  for (a = 0; a < od[0]; ++a) {
    const int8_t *pa = in + a * st[0];
    for (b = 0; b < od[1]; ++b) {
      const int8_t *pb = pa + b * st[1];
      for (c = 0; c < od[2]; ++c) {
        const int8_t *pc = pb + c * st[2];
        for (d = 0; d < od[3]; ++d) {
          *out++ = pc[d * st[3]];
        }
      }
    }
  }
}

void te_conv2d_grouped(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                       const te_window_t *window, int16_t groups, const te_requant_t *requant) {
  te_window_t w;
  te_requant_t q;
  te_dim oy, ox, oc, ky, kx;
  int16_t depth, per_group;
  TE_LOAD(&w, window, sizeof w);
  TE_LOAD(&q, requant, sizeof q);
  depth = (int16_t)(w.in_c / groups);
  per_group = (int16_t)(w.out_c / groups);
  for (oy = 0; oy < w.out_h; ++oy) {
    const int16_t iy0 = (int16_t)(oy * w.stride_h - w.pad_h);
    for (ox = 0; ox < w.out_w; ++ox) {
      const int16_t ix0 = (int16_t)(ox * w.stride_w - w.pad_w);
      for (oc = 0; oc < w.out_c; ++oc) {
        const int16_t channel0 = (int16_t)(oc / per_group * depth);
        int32_t acc = 0;
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
            acc += te_dot(in + ((int32_t)iy * w.in_w + ix) * w.in_c + channel0,
                          filter + (((int32_t)oc * w.k_h + ky) * w.k_w + kx) * depth, depth, q.input_offset);
          }
        }
        *out++ = te_output(acc, bias, oc, &q);
      }
    }
  }
}

void te_gather_rows(uint8_t *out, const uint8_t *in, const int32_t *rows, int32_t count, int32_t row_bytes) {
  int32_t i;
  for (i = 0; i < count; ++i) {
    memcpy(out + i * row_bytes, in + TE_RD_S32(rows + i) * row_bytes, (size_t)row_bytes);
  }
}

void te_transpose_conv(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                       const te_window_t *window, const te_requant_t *requant, int32_t *scratch) {
  te_window_t w;
  te_requant_t q;
  te_dim iy, ix, ky, kx, oc;
  int32_t i, n;
  TE_LOAD(&w, window, sizeof w);
  TE_LOAD(&q, requant, sizeof q);
  n = (int32_t)w.out_h * w.out_w * w.out_c;
  for (i = 0; i < n; ++i) {
    scratch[i] = 0;
  }
  for (iy = 0; iy < w.in_h; ++iy) {
    const int16_t oy0 = (int16_t)(iy * w.stride_h - w.pad_h);
    for (ix = 0; ix < w.in_w; ++ix) {
      const int16_t ox0 = (int16_t)(ix * w.stride_w - w.pad_w);
      const int8_t *x = in + ((int32_t)iy * w.in_w + ix) * w.in_c;
      for (ky = 0; ky < w.k_h; ++ky) {
        const int16_t oy = (int16_t)(oy0 + ky);
        if (oy < 0 || oy >= w.out_h) {
          continue;
        }
        for (kx = 0; kx < w.k_w; ++kx) {
          const int16_t ox = (int16_t)(ox0 + kx);
          int32_t *acc = scratch + ((int32_t)oy * w.out_w + ox) * w.out_c;
          if (ox < 0 || ox >= w.out_w) {
            continue;
          }
          for (oc = 0; oc < w.out_c; ++oc) {
            acc[oc] += te_dot(x, filter + (((int32_t)oc * w.k_h + ky) * w.k_w + kx) * w.in_c, w.in_c, q.input_offset);
          }
        }
      }
    }
  }
  for (i = 0; i < n; ++i) {
    out[i] = te_output(scratch[i], bias, (int16_t)(i % w.out_c), &q);
  }
}
