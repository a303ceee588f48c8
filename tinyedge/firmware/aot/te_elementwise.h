/* AOT kernels for elementwise int8 ops whose arithmetic is computed per row at run time: L2_NORMALIZATION,
 * bit-exact with TFLM's reference kernel (reference_integer_ops::L2Normalization). The table-driven ones
 * (RSQRT, EXP, GELU, RELU_N1_TO_1) run te_nonlinear.c's te_lut_s8 with tables tinyedge/ops/ builds. */
#ifndef TE_ELEMENTWISE_H
#define TE_ELEMENTWISE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* L2_NORMALIZATION over the last dimension (depth) of `outer` rows: each value minus the zero point times
 * the row's inverse L2 norm (GetInvSqrtQuantizedMultiplierExp), on the fixed output scale 1/128. */
void te_l2_normalization_s8(int8_t *out, const int8_t *in, int32_t outer, int32_t depth, int32_t input_zero_point);

#ifdef __cplusplus
}
#endif

#endif
