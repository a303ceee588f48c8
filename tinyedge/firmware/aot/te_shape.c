/* Shape and matrix kernels of the AOT runtime (see te_shape.h). */
#include "te_shape.h"

#include <string.h>

#include "te_kernels.h"

#ifdef __AVR__
#define TE_LOAD(dst, src, n) memcpy_P((dst), (src), (n))
#else
#define TE_LOAD(dst, src, n) memcpy((dst), (src), (n))
#endif

#define TE_HALF_2_20 ((int32_t)1 << 19)

void te_copy_strided(uint8_t *dst, const uint8_t *src, int32_t outer, int32_t block, int32_t dst_stride,
                     int32_t src_stride) {
  int32_t o;
  for (o = 0; o < outer; ++o) {
    memcpy(dst + o * dst_stride, src + o * src_stride, (size_t)block);
  }
}

void te_resize_bilinear_s8(int8_t *out, const int8_t *in, const te_resize_bilinear_t *params, const int16_t *ys,
                           const int16_t *xs) {
  te_resize_bilinear_t p;
  te_dim b, y, x, c;
  TE_LOAD(&p, params, sizeof p);
  for (b = 0; b < p.batches; ++b) {
    const int8_t *image = in + (int32_t)b * p.in_h * p.in_w * p.channels;
    for (y = 0; y < p.out_h; ++y) {
      const int16_t *yp = ys + (int32_t)3 * y;
      const int32_t y0 = TE_RD_S16(yp), y1 = TE_RD_S16(yp + 1), dy = TE_RD_S16(yp + 2);
      for (x = 0; x < p.out_w; ++x) {
        const int16_t *xp = xs + (int32_t)3 * x;
        const int32_t x0 = TE_RD_S16(xp), x1 = TE_RD_S16(xp + 1), dx = TE_RD_S16(xp + 2);
        const int32_t w00 = (1024 - dy) * (1024 - dx), w10 = dy * (1024 - dx);
        const int32_t w01 = (1024 - dy) * dx, w11 = dy * dx;
        const int8_t *p00 = image + (y0 * p.in_w + x0) * p.channels, *p10 = image + (y1 * p.in_w + x0) * p.channels;
        const int8_t *p01 = image + (y0 * p.in_w + x1) * p.channels, *p11 = image + (y1 * p.in_w + x1) * p.channels;
        for (c = 0; c < p.channels; ++c) {
          /* |sum| < 2^29: the weights' magnitudes add up to at most 1536^2. */
          const int32_t sum = p00[c] * w00 + p10[c] * w10 + p01[c] * w01 + p11[c] * w11;
          *out++ = (int8_t)((sum + (sum > 0 ? TE_HALF_2_20 : -TE_HALF_2_20)) / (2 * TE_HALF_2_20));
        }
      }
    }
  }
}

static int32_t te_matmul_load(const int8_t *p, uint8_t is_const) {
  return is_const ? TE_RD_S8(p) : *p;
}

void te_batch_matmul_s8(int8_t *out, const int8_t *lhs, const int8_t *rhs, const te_batch_matmul_t *params,
                        const int32_t *offsets, uint8_t consts) {
  te_batch_matmul_t p;
  int32_t b, m, n, k;
  const uint8_t lhs_const = (consts & TE_MATMUL_LHS_CONST) != 0, rhs_const = (consts & TE_MATMUL_RHS_CONST) != 0;
  TE_LOAD(&p, params, sizeof p);
  for (b = 0; b < p.batches; ++b) {
    const int8_t *l = lhs + TE_RD_S32(offsets + 2 * b), *r = rhs + TE_RD_S32(offsets + 2 * b + 1);
    for (m = 0; m < p.rows; ++m) {
      for (n = 0; n < p.cols; ++n) {
        int32_t acc = 0;
        for (k = 0; k < p.depth; ++k) {
          acc += (te_matmul_load(l + m * p.lhs_row_stride + k * p.lhs_depth_stride, lhs_const) + p.lhs_offset)
                 * (te_matmul_load(r + k * p.rhs_depth_stride + n * p.rhs_col_stride, rhs_const) + p.rhs_offset);
        }
        acc = te_mul_by_quantized_multiplier(acc, p.multiplier, (int8_t)p.shift) + p.out_offset;
        *out++ = (int8_t)(acc < -128 ? -128 : (acc > 127 ? 127 : acc));
      }
    }
  }
}
