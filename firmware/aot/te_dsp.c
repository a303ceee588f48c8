/* Fast int8 kernels for cores with the Arm DSP extension; see te_dsp.h. */
#include "te_dsp.h"

#include <string.h>

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
static inline int32_t te_sxtb16(int32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
  return r;
}
static inline int32_t te_sxtb16_ror8(int32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
static inline int32_t te_sxtab16(int32_t a, int32_t x) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(x));
  return r;
}
static inline int32_t te_sxtab16_ror8(int32_t a, int32_t x) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
  return r;
}
static inline int32_t te_smlad(int32_t x, int32_t y, int32_t acc) {
  int32_t r;
  __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
  return r;
}
#else
/* The same instructions in portable C (little-endian), for testing on the host. */
static int32_t te_lo16(int32_t x) { return (int16_t)(uint16_t)((uint32_t)x & 0xFFFFu); }
static int32_t te_hi16(int32_t x) { return (int16_t)(uint16_t)((uint32_t)x >> 16); }
static int32_t te_byte(int32_t x, int shift) { return (int8_t)(uint8_t)((uint32_t)x >> shift); }
static int32_t te_pack16(int32_t lo, int32_t hi) {
  return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}
static int32_t te_sxtb16(int32_t x) { return te_pack16(te_byte(x, 0), te_byte(x, 16)); }
static int32_t te_sxtb16_ror8(int32_t x) { return te_pack16(te_byte(x, 8), te_byte(x, 24)); }
static int32_t te_sxtab16(int32_t a, int32_t x) {
  return te_pack16(te_lo16(a) + te_byte(x, 0), te_hi16(a) + te_byte(x, 16));
}
static int32_t te_sxtab16_ror8(int32_t a, int32_t x) {
  return te_pack16(te_lo16(a) + te_byte(x, 8), te_hi16(a) + te_byte(x, 24));
}
static int32_t te_smlad(int32_t x, int32_t y, int32_t acc) {
  return acc + te_lo16(x) * te_lo16(y) + te_hi16(x) * te_hi16(y);
}
#endif

static inline int32_t te_read_s8x4(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline int32_t te_read_s16x2(const int16_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline int32_t te_pair(int32_t lo, int32_t hi) {
  return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}

/* TFLM's MultiplyByQuantizedMultiplier for a multiplier in [0, 2^31): the saturating case of
 * SaturatingRoundingDoublingHighMul cannot occur, and its rounding is (ab + 2^30) >> 31. Then the
 * output offset and the activation clamp. */
static inline int8_t te_dsp_requantize(int32_t acc, int32_t multiplier, int32_t shift, const te_requant_t *q) {
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  const int32_t mask = (int32_t)((1u << right) - 1u);
  int32_t x = (int32_t)(((int64_t)(int32_t)((uint32_t)acc << left) * multiplier + ((int64_t)1 << 30)) >> 31);
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  x = (x >> right) + ((x & mask) > threshold ? 1 : 0);
  x += q->output_offset;
  if (x < q->act_min) {
    x = q->act_min;
  }
  if (x > q->act_max) {
    x = q->act_max;
  }
  return (int8_t)x;
}

/* Position of element j of an im2col column: x0 x2 x1 x3 within each whole group of four. */
static inline int32_t te_col_index(int32_t j, int32_t whole) {
  static const uint8_t order[4] = {0, 2, 1, 3};
  return j < whole ? (j & ~3) | order[j & 3] : j;
}

/* One im2col column: the window whose rows are `rows[ky]` (0 outside the input) starting at input
 * column ix0, widened with the input offset; taps outside the input are 0. */
static void te_dsp_im2col(int16_t *col, const int8_t *const *rows, int16_t ix0, const te_window_t *w,
                          int16_t input_offset) {
  const int32_t in_c = w->in_c;
  const int32_t size = (int32_t)w->k_h * w->k_w * in_c;
  const int32_t whole = size & ~3;
  const int32_t offsets = te_pair(input_offset, input_offset);
  int32_t j = 0;
  te_dim ky, kx;
  for (ky = 0; ky < w->k_h; ++ky) {
    for (kx = 0; kx < w->k_w; ++kx) {
      const int16_t ix = (int16_t)(ix0 + w->dil_w * kx);
      const int8_t *src = rows[ky] != 0 && ix >= 0 && ix < w->in_w ? rows[ky] + (int32_t)ix * in_c : 0;
      int32_t c;
      if ((in_c & 3) == 0) {
        int32_t *dst = (int32_t *)(void *)(col + j);
        if (src != 0) {
          for (c = 0; c < in_c; c += 4) {
            const int32_t v = te_read_s8x4(src + c);
            dst[0] = te_sxtab16(offsets, v);
            dst[1] = te_sxtab16_ror8(offsets, v);
            dst += 2;
          }
        } else {
          memset(dst, 0, (size_t)in_c * sizeof(int16_t));
        }
      } else {
        for (c = 0; c < in_c; ++c) {
          col[te_col_index(j + c, whole)] = (int16_t)(src != 0 ? src[c] + input_offset : 0);
        }
      }
      j += in_c;
    }
  }
}

/* Two columns (pixels) times two filter rows: acc[pixel * 2 + row]. */
static inline void te_dsp_dot2x2(const int16_t *c0, const int16_t *c1, const int8_t *f0, const int8_t *f1,
                                 int32_t size, int32_t *acc) {
  const int32_t whole = size & ~3;
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
  int32_t j;
  for (j = 0; j < whole; j += 4) {
    const int32_t w0 = te_read_s8x4(f0 + j);
    const int32_t w1 = te_read_s8x4(f1 + j);
    const int32_t w0e = te_sxtb16(w0), w0o = te_sxtb16_ror8(w0);
    const int32_t w1e = te_sxtb16(w1), w1o = te_sxtb16_ror8(w1);
    const int32_t x0e = te_read_s16x2(c0 + j), x0o = te_read_s16x2(c0 + j + 2);
    const int32_t x1e = te_read_s16x2(c1 + j), x1o = te_read_s16x2(c1 + j + 2);
    a00 = te_smlad(x0e, w0e, a00);
    a00 = te_smlad(x0o, w0o, a00);
    a01 = te_smlad(x0e, w1e, a01);
    a01 = te_smlad(x0o, w1o, a01);
    a10 = te_smlad(x1e, w0e, a10);
    a10 = te_smlad(x1o, w0o, a10);
    a11 = te_smlad(x1e, w1e, a11);
    a11 = te_smlad(x1o, w1o, a11);
  }
  for (; j < size; ++j) {
    a00 += c0[j] * f0[j];
    a01 += c0[j] * f1[j];
    a10 += c1[j] * f0[j];
    a11 += c1[j] * f1[j];
  }
  acc[0] = a00;
  acc[1] = a01;
  acc[2] = a10;
  acc[3] = a11;
}

/* Every output channel of one or two pixels from their im2col columns (out1 0: one pixel). */
static void te_dsp_conv_pixels(int8_t *out0, int8_t *out1, const int16_t *c0, const int16_t *c1,
                               const int8_t *filter, const int32_t *bias, int32_t size, te_dim out_c,
                               const te_requant_t *q) {
  te_dim oc;
  if (out1 == 0) {
    c1 = c0;
  }
  for (oc = 0; oc < out_c; oc += 2) {
    const uint8_t second = oc + 1 < out_c;
    const int8_t *f0 = filter + (int32_t)oc * size;
    const int8_t *f1 = second ? f0 + size : f0;
    const int32_t b0 = bias != 0 ? TE_RD_S32(bias + oc) : 0;
    const int32_t b1 = bias != 0 && second ? TE_RD_S32(bias + oc + 1) : 0;
    const int16_t i0 = q->per_channel ? oc : 0;
    const int16_t i1 = q->per_channel && second ? (int16_t)(oc + 1) : i0;
    int32_t acc[4];
    acc[0] = b0;
    acc[1] = b1;
    acc[2] = b0;
    acc[3] = b1;
    te_dsp_dot2x2(c0, c1, f0, f1, size, acc);
    {
      const int32_t m0 = TE_RD_S32(q->multiplier + i0), s0 = TE_RD_S8(q->shift + i0);
      out0[oc] = te_dsp_requantize(acc[0], m0, s0, q);
      if (out1 != 0) {
        out1[oc] = te_dsp_requantize(acc[2], m0, s0, q);
      }
    }
    if (second) {
      const int32_t m1 = TE_RD_S32(q->multiplier + i1), s1 = TE_RD_S8(q->shift + i1);
      out0[oc + 1] = te_dsp_requantize(acc[1], m1, s1, q);
      if (out1 != 0) {
        out1[oc + 1] = te_dsp_requantize(acc[3], m1, s1, q);
      }
    }
  }
}

#define TE_DSP_MAX_K_H 16

static void te_dsp_rows(const int8_t **rows, const int8_t *in, te_dim oy, const te_window_t *w) {
  const int32_t row_bytes = (int32_t)w->in_w * w->in_c;
  const int16_t iy0 = (int16_t)(oy * w->stride_h - w->pad_h);
  te_dim ky;
  for (ky = 0; ky < w->k_h; ++ky) {
    const int16_t iy = (int16_t)(iy0 + w->dil_h * ky);
    rows[ky] = iy >= 0 && iy < w->in_h ? in + (int32_t)iy * row_bytes : 0;
  }
}

void te_dsp_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                   const te_window_t *w, const te_requant_t *q, int16_t *col) {
  const int32_t size = (int32_t)w->k_h * w->k_w * w->in_c;
  const int32_t pixels = (int32_t)w->out_h * w->out_w;
  int16_t *col1 = col + ((size + 3) & ~3);
  const int8_t *rows[TE_DSP_MAX_K_H];
  int32_t p;
  for (p = 0; p < pixels; p += 2) {
    const uint8_t pair = p + 1 < pixels;
    te_dim oy = (te_dim)(p / w->out_w), ox = (te_dim)(p % w->out_w);
    te_dsp_rows(rows, in, oy, w);
    te_dsp_im2col(col, rows, (int16_t)(ox * w->stride_w - w->pad_w), w, q->input_offset);
    if (pair) {
      if (++ox == w->out_w) {
        ox = 0;
        te_dsp_rows(rows, in, ++oy, w);
      }
      te_dsp_im2col(col1, rows, (int16_t)(ox * w->stride_w - w->pad_w), w, q->input_offset);
    }
    te_dsp_conv_pixels(out + p * w->out_c, pair ? out + (p + 1) * w->out_c : 0, col, col1, filter, bias, size,
                       w->out_c, q);
  }
}

void te_dsp_pointwise_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                             const te_window_t *w, const te_requant_t *q, int16_t *col) {
  const int32_t in_c = w->in_c, out_c = w->out_c;
  const int32_t pixels = (int32_t)w->in_h * w->in_w;
  int16_t *col1 = col + ((in_c + 3) & ~3);
  const int8_t *row;
  int32_t p;
  if (out_c <= in_c) {
    for (p = 0; p < pixels; p += 2) {
      const uint8_t pair = p + 1 < pixels;
      row = in + p * in_c;
      te_dsp_im2col(col, &row, 0, w, q->input_offset);
      if (pair) {
        row += in_c;
        te_dsp_im2col(col1, &row, 0, w, q->input_offset);
      }
      te_dsp_conv_pixels(out + p * out_c, pair ? out + (p + 1) * out_c : 0, col, col1, filter, bias, in_c, w->out_c, q);
    }
    return;
  }
  /* A larger output over its own input: from the last pixel back, so no unread input is overwritten. */
  p = pixels;
  if (p & 1) {
    --p;
    row = in + p * in_c;
    te_dsp_im2col(col, &row, 0, w, q->input_offset);
    te_dsp_conv_pixels(out + p * out_c, 0, col, col, filter, bias, in_c, w->out_c, q);
  }
  while (p > 0) {
    p -= 2;
    row = in + p * in_c;
    te_dsp_im2col(col, &row, 0, w, q->input_offset);
    row += in_c;
    te_dsp_im2col(col1, &row, 0, w, q->input_offset);
    te_dsp_conv_pixels(out + p * out_c, out + (p + 1) * out_c, col, col1, filter, bias, in_c, w->out_c, q);
  }
}

void te_dsp_conv2d_inplace(int8_t *data, int8_t *ring, const int8_t *filter, const int32_t *bias,
                           const te_window_t *w, const te_requant_t *q, int16_t *col) {
  const int32_t size = (int32_t)w->k_h * w->k_w * w->in_c;
  const int32_t row_bytes = (int32_t)w->in_w * w->in_c;
  int8_t *row_out = ring + (int32_t)w->pad_h * row_bytes;
  int16_t *col1 = col + ((size + 3) & ~3);
  const int8_t *rows[TE_DSP_MAX_K_H];
  te_dim oy, ox, ky;
  for (oy = 0; oy < w->out_h; ++oy) {
    for (ky = 0; ky < w->k_h; ++ky) {
      const int16_t iy = (int16_t)(oy - w->pad_h + ky);
      /* Rows above this one were overwritten: their input lives in the ring. */
      rows[ky] = iy < 0 || iy >= w->in_h ? 0
                 : iy < oy               ? ring + (int32_t)(iy % w->pad_h) * row_bytes
                                         : data + (int32_t)iy * row_bytes;
    }
    for (ox = 0; ox < w->out_w; ox += 2) {
      const uint8_t pair = ox + 1 < w->out_w;
      te_dsp_im2col(col, rows, (int16_t)(ox - w->pad_w), w, q->input_offset);
      if (pair) {
        te_dsp_im2col(col1, rows, (int16_t)(ox + 1 - w->pad_w), w, q->input_offset);
      }
      te_dsp_conv_pixels(row_out + (int32_t)ox * w->out_c, pair ? row_out + (int32_t)(ox + 1) * w->out_c : 0, col,
                         col1, filter, bias, size, w->out_c, q);
    }
    if (w->pad_h > 0) {
      memcpy(ring + (int32_t)(oy % w->pad_h) * row_bytes, data + (int32_t)oy * row_bytes, (size_t)row_bytes);
    }
    memcpy(data + (int32_t)oy * row_bytes, row_out, (size_t)row_bytes);
  }
}

#define TE_DSP_MAX_TAP_PAIRS 32

/* Virtual row `vr` (input row vr - pad_h) of channel c, widened with the offset and zero-padded. */
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
  for (; x < end; ++x) {
    dst[x] = (int16_t)(*src + input_offset);
    src += w->in_c;
  }
  for (; x < row_len; ++x) {
    dst[x] = 0;
  }
}

void te_dsp_depthwise_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                             const te_window_t *w, const te_requant_t *q, int16_t *rows) {
  const int32_t row_len = ((int32_t)w->out_w - 1) * w->stride_w + w->k_w + 2;
  const int16_t tap_pairs = (int16_t)((w->k_w + 1) / 2);
  int32_t taps[TE_DSP_MAX_TAP_PAIRS];
  const int16_t *window[TE_DSP_MAX_K_H];
  te_dim c, oy, ox, ky, kp;
  for (c = 0; c < w->out_c; ++c) {
    const int32_t b = bias != 0 ? TE_RD_S32(bias + c) : 0;
    const int16_t i = q->per_channel ? c : 0;
    const int32_t multiplier = TE_RD_S32(q->multiplier + i), shift = TE_RD_S8(q->shift + i);
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
        te_dsp_depthwise_row(rows + (int32_t)(next % w->k_h) * row_len, row_len, in, next, c, w, q->input_offset);
      }
      for (ky = 0; ky < w->k_h; ++ky) {
        window[ky] = rows + (int32_t)((vr0 + ky) % w->k_h) * row_len;
      }
      for (ox = 0; ox < w->out_w; ++ox) {
        const int32_t x = (int32_t)ox * w->stride_w;
        int32_t acc = b;
        const int32_t *t = taps;
        for (ky = 0; ky < w->k_h; ++ky) {
          const int16_t *r = window[ky] + x;
          for (kp = 0; kp < tap_pairs; ++kp) {
            acc = te_smlad(te_read_s16x2(r + 2 * kp), *t++, acc);
          }
        }
        *dst = te_dsp_requantize(acc, multiplier, shift, q);
        dst += w->out_c;
      }
    }
  }
}

void te_dsp_fully_connected(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                            int16_t batches, int16_t accum_depth, int16_t out_depth, const te_requant_t *q) {
  const int32_t size = accum_depth, whole = size & ~3;
  const int32_t offsets = te_pair(q->input_offset, q->input_offset);
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
      for (r = 0; r < 4 && oc + r < out_depth; ++r) {
        const int16_t i = q->per_channel ? (int16_t)(oc + r) : 0;
        out[oc + r] = te_dsp_requantize(acc[r], TE_RD_S32(q->multiplier + i), TE_RD_S8(q->shift + i), q);
      }
    }
    in += accum_depth;
    out += out_depth;
  }
}
