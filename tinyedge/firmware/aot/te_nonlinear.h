/* AOT kernels for the nonlinear and elementwise int8 ops: SOFTMAX, LOGISTIC, TANH, MEAN, ADD, SUB, MUL,
 * MAXIMUM, MINIMUM, PRELU, QUANTIZE and DEQUANTIZE (and the lookup tables of RELU, RELU6, LEAKY_RELU),
 * bit-exact with TFLM's reference kernels.
 *
 * Every multiplier, shift and table is computed at generation time by the op modules of tinyedge/ops/,
 * exactly as TFLM's Prepare functions compute them. Arrays marked "TE_CONST" below may live in
 * program memory (AVR) and are read with the TE_RD_* macros. */
#ifndef TE_NONLINEAR_H
#define TE_NONLINEAR_H

#include <stdint.h>

#include "te_kernels.h"
#include "te_pgm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TE_NL_MAX_DIMS (te_params.h): most dimensions a broadcast (ADD, MUL) or reduction (MEAN) may have after merging. */

/* ADD/MUL operand that lives in TE_CONST memory (a constant tensor). */
#define TE_NL_A_CONST 1u
#define TE_NL_B_CONST 2u

/* out[i] = lut[in[i] + 128]: LOGISTIC and TANH, whose int8 results depend on the input byte alone.
 * lut: 256 entries, TE_CONST. */
void te_lut_s8(int8_t *out, const int8_t *in, int32_t count, const int8_t *lut);

/* SOFTMAX over the last dimension (reference_ops::Softmax, gemmlowp fixed point, int8 -> int8 with
 * output scale 1/256 and zero point -128). */
void te_softmax_s8(int8_t *out, const int8_t *in, int32_t outer, int32_t depth,
                   int32_t input_multiplier, int32_t input_left_shift, int32_t diff_min);

/* SOFTMAX int8 -> int16 (output scale 1/65536, zero point -32768), as te_softmax_s8. */
void te_softmax_s8_s16(int16_t *out, const int8_t *in, int32_t outer, int32_t depth,
                       int32_t input_multiplier, int32_t input_left_shift, int32_t diff_min);

/* MEAN (reference_ops::QuantizedMeanOrSum). geom, TE_CONST:
 *   {n_kept, n_reduced, kept_sizes[n_kept], kept_strides[n_kept],
 *    reduced_sizes[n_reduced], reduced_strides[n_reduced]}
 * with strides in input elements; outputs are produced in row-major order of the kept dims.
 * count is the number of reduced elements per output; multiplier/shift already include 1/count. */
/* REDUCE_MAX (is_max 1) and REDUCE_MIN (0) over te_mean_s8's geometry: input and output share their
 * quantization (TFLM requires it), so the extreme byte is the result. */
void te_reduce_minmax_s8(int8_t *out, const int8_t *in, const int32_t *geom, int32_t is_max);

/* ARG_MAX (is_max 1) and ARG_MIN (0) as TFLM's arg_min_max.cc: per (outer, inner), the index along
 * the axis of the first largest (smallest) value, as int32. */
void te_arg_minmax_s8(int32_t *out, const int8_t *in, int32_t outer, int32_t axis_size, int32_t inner, int32_t is_max);

void te_mean_s8(int8_t *out, const int8_t *in, const int32_t *geom, int32_t input_zero_point,
                int32_t count, int32_t multiplier, int32_t shift, int32_t output_zero_point);

/* Broadcast geometry for ADD and MUL, TE_CONST:
 *   {ndim, sizes[ndim], a_strides[ndim], b_strides[ndim]}  (stride 0 = broadcast along that dim).
 * const_mask says which operands are TE_CONST arrays (TE_NL_A_CONST | TE_NL_B_CONST). */

/* ADD (reference_integer_ops::AddFunc), params TE_CONST (te_add_params_t: te_kernels.h). */
void te_add_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom,
               const te_add_params_t *params, uint8_t const_mask);

/* MUL, params TE_CONST (te_mul_params_t: te_params.h). */
void te_mul_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom,
               const te_mul_params_t *params, uint8_t const_mask);

/* SUB (reference_integer_ops::SubElementwise): ADD's rescalings, the second input subtracted. */
void te_sub_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom,
               const te_add_params_t *params, uint8_t const_mask);

/* SQUARED_DIFFERENCE (squared_difference.cc's SquaredDifference<int8_t>): ADD's input rescalings (left
 * shift 7), the difference squared and rescaled with MultiplyByQuantizedMultiplier. */
void te_squared_difference_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom,
                              const te_add_params_t *params, uint8_t const_mask);

/* MAXIMUM (maximum 1) or MINIMUM (0) of the raw values (reference_ops::MaximumMinimumBroadcastSlow), int8
 * and int16. */
void te_maxmin_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom, uint8_t const_mask,
                  uint8_t maximum);
void te_maxmin_s16(int16_t *out, const int16_t *a, const int16_t *b, const int32_t *geom, uint8_t const_mask,
                   uint8_t maximum);

/* PRELU (reference_ops::BroadcastPrelu4DSlow): b is alpha, params TE_CONST. */
void te_prelu_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom,
                 const te_prelu_params_t *params, uint8_t const_mask);

/* QUANTIZE float32 -> int8 (reference_ops::AffineQuantize). */
void te_quantize_f32_s8(int8_t *out, const float *in, int32_t count, float scale, int32_t zero_point);

/* QUANTIZE int8 -> int8 (reference_ops::Requantize). */
void te_requantize_s8(int8_t *out, const int8_t *in, int32_t count, int32_t input_zero_point,
                      int32_t multiplier, int32_t shift, int32_t output_zero_point);

/* DEQUANTIZE int8 -> float32 (reference_ops::Dequantize). */
/* QUANTIZE between integer types of 1, 2 or 4 bytes (reference_ops::Requantize), e.g. int16 -> int8. */
void te_requantize_int(void *out, uint8_t out_bytes, const void *in, uint8_t in_bytes, int32_t count,
                       int32_t input_zero_point, int32_t multiplier, int32_t shift, int32_t output_zero_point);

void te_dequantize_s8_f32(float *out, const int8_t *in, int32_t count, float scale, int32_t zero_point);

#ifdef __cplusplus
}
#endif

#endif
