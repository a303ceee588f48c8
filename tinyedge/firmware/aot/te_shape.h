/* AOT kernels for the shape and matrix ops with several tensors per side or their own interpolation:
 * SPLIT, SPLIT_V, PACK and UNPACK (byte copies: TFLM copies them without requantizing, any type),
 * RESIZE_BILINEAR int8 (reference_ops::ResizeBilinearInteger) and BATCH_MATMUL int8
 * (reference_ops::BatchMatMul), bit-exact with TFLM's reference kernels. Geometry, interpolation
 * weights and rescalings are computed at generation time (tinyedge/ops/split.py, pack.py,
 * resize_bilinear.py, batch_matmul.py); arrays and structs marked TE_CONST may live in program memory. */
#ifndef TE_SHAPE_H
#define TE_SHAPE_H

#include <stdint.h>

#include "te_params.h"
#include "te_pgm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* `outer` blocks of `block` bytes from src, src_stride bytes apart, to dst, dst_stride bytes apart. */
void te_copy_strided(uint8_t *dst, const uint8_t *src, int32_t outer, int32_t block, int32_t dst_stride,
                     int32_t src_stride);

/* RESIZE_BILINEAR int8, NHWC: ys (TE_CONST) holds per output row y0, y1 and input_y - 1024 * y0 (TFLM's
 * ComputeInterpolationValuesInteger), xs the same per output column; the four taps weighted in 1/1024ths
 * each way, rounded half away from zero (TFLM without TFLITE_SINGLE_ROUNDING). */
void te_resize_bilinear_s8(int8_t *out, const int8_t *in, const te_resize_bilinear_t *params, const int16_t *ys,
                           const int16_t *xs);

/* BATCH_MATMUL int8: for each of params->batches output matrices, `offsets` (TE_CONST) holds the lhs and
 * rhs element offsets of its operands (the batch dimensions broadcast); `consts` says which operands are
 * TE_CONST arrays (TE_MATMUL_LHS_CONST, TE_MATMUL_RHS_CONST of te_params.h). The int16 variant is
 * te_int16.h's te_batch_matmul_s16. */
void te_batch_matmul_s8(int8_t *out, const int8_t *lhs, const int8_t *rhs, const te_batch_matmul_t *params,
                        const int32_t *offsets, uint8_t consts);

#ifdef __cplusplus
}
#endif

#endif
