/* AOT kernels for TFLite's 16x8 ops (int16 activations, int8 weights) and the int16 variants of the
 * elementwise and layout ops, bit-exact with TFLM's reference kernels (reference_ops for int16 ADD/SUB,
 * QuantizeLeakyRelu<int16_t>, reference_integer_ops::ConvPerChannel and TransposeConv for int16 input).
 *
 * int16 activations are symmetric (zero point 0), as TFLM requires for 16x8. Multipliers, shifts and
 * geometry come from tinyedge/aot/int16.py and the op modules of tinyedge/ops/ (LOGISTIC, TANH, SOFTMAX, MEAN,
 * UNIDIRECTIONAL_SEQUENCE_LSTM). Arrays marked TE_CONST may live in program memory (AVR). */
#ifndef TE_INT16_H
#define TE_INT16_H

#include <stdint.h>

#include "te_params.h"
#include "te_pgm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Operands of an int16 ADD/SUB that live in TE_CONST memory (te_nonlinear.h's TE_NL_A_CONST/B_CONST). */
#define TE_S16_A_CONST 1u
#define TE_S16_B_CONST 2u

/* ADD (sign +1) or SUB (sign -1) of two int16 tensors over a broadcast walk: geom is {ndim, sizes,
 * a_strides, b_strides} (TE_CONST); params as te_nonlinear.c's te_add_s8 (left shift 15). */
void te_add_s16(int16_t *out, const int16_t *a, const int16_t *b, const int32_t *geom,
                const te_add_params_t *params, uint8_t const_mask, int8_t sign);

/* LEAKY_RELU int16: params {input zero point, output zero point, identity multiplier, identity shift,
 * alpha multiplier, alpha shift} (TE_CONST). */
void te_leaky_relu_s16(int16_t *out, const int16_t *in, int32_t count, const int32_t *params);

/* RELU int16 (ReluQuantized<int16_t>, zero points 0): each value times multiplier >> shift (TFLM's
 * int32 MultiplyByQuantizedMultiplier), clamped to [act_min, act_max]; RELU6 (Relu6Quantized) passes
 * multiplier 0: the raw value clamped. */
void te_relu_s16(int16_t *out, const int16_t *in, int32_t count, int32_t multiplier, int32_t shift, int16_t act_min,
                 int16_t act_max);

/* PAD/PADV2 of 2-byte elements over 4 dimensions (te_kernels.c's te_pad). */
void te_pad_s16(int16_t *out, const int16_t *in, const te_dim *in_dims, const te_dim *out_dims,
                const te_dim *pad_before, int16_t pad_value);

/* out[a][b][c][d] = in[a*s0 + b*s1 + c*s2 + d*s3] for 2-byte elements (te_kernels.c's te_transpose). */
void te_transpose_s16(int16_t *out, const int16_t *in, const te_dim *out_dims, const int32_t *in_strides);

/* CONV_2D 16x8 (with `groups`; 1 for an ordinary convolution): an int64 accumulator and
 * MultiplyByQuantizedMultiplier on int64 when bias64 is given or neither bias is (TFLM's default),
 * an int32 accumulator and the int32 multiply when bias32 is (int32 bias). requant's input and output
 * offsets are 0; act_min/act_max the int16 activation range. */
void te_conv2d_s16(int16_t *out, const int16_t *in, const int8_t *filter, const int64_t *bias64,
                   const int32_t *bias32, const te_window_t *window, int16_t groups, const te_requant_t *requant,
                   int16_t act_min, int16_t act_max);

/* DEPTHWISE_CONV_2D 16x8 (int64 accumulator and bias; depth multiplier from the window's channels). */
void te_depthwise_conv2d_s16(int16_t *out, const int16_t *in, const int8_t *filter, const int64_t *bias,
                             const te_window_t *window, const te_requant_t *requant, int16_t act_min,
                             int16_t act_max);

/* FULLY_CONNECTED 16x8: rows of accum_depth inputs, int64 accumulator and bias, one multiplier
 * (or one per channel). */
void te_fully_connected_s16(int16_t *out, const int16_t *in, const int8_t *filter, const int64_t *bias,
                            int32_t batches, int32_t accum_depth, int32_t out_depth, const te_requant_t *requant,
                            int16_t act_min, int16_t act_max);

/* TRANSPOSE_CONV 16x8: an int64 accumulator per output element in `scratch`, int64 bias. */
void te_transpose_conv_s16(int16_t *out, const int16_t *in, const int8_t *filter, const int64_t *bias,
                           const te_window_t *window, const te_requant_t *requant, int16_t act_min,
                           int16_t act_max, int64_t *scratch);

/* SQUARED_DIFFERENCE int16 over a broadcast walk (squared_difference.cc, left shift 0): params as
 * te_nonlinear.c's te_squared_difference_s8. */
void te_squared_difference_s16(int16_t *out, const int16_t *a, const int16_t *b, const int32_t *geom,
                               const te_add_params_t *params, uint8_t const_mask);

/* MUL int16 over a broadcast walk: params as te_nonlinear.c's te_mul_s8. */
void te_mul_s16(int16_t *out, const int16_t *a, const int16_t *b, const int32_t *geom,
                const te_mul_params_t *params, uint8_t const_mask);

/* AVERAGE_POOL_2D / MAX_POOL_2D int16 (reference_integer_ops::AveragePool / MaxPool for int16). */
void te_average_pool_s16(int16_t *out, const int16_t *in, const te_window_t *window, int16_t act_min,
                         int16_t act_max);
void te_max_pool_s16(int16_t *out, const int16_t *in, const te_window_t *window, int16_t act_min, int16_t act_max);

/* QUANTIZE float32 -> int16 (AffineQuantize: val / scale in float, rounded half away, plus the zero point)
 * and DEQUANTIZE int16 -> float32 (scale * (val - zero point)). */
void te_quantize_f32_s16(int16_t *out, const float *in, int32_t count, float scale, int32_t zero_point);
void te_dequantize_s16_f32(float *out, const int16_t *in, int32_t count, float scale, int32_t zero_point);

/* LOGISTIC and TANH int16 (reference_integer_ops::Logistic / Tanh for int16): the input rescaled by
 * input_multiplier >> input_left_shift (multiplier 0: a power-of-two input scale, 3 << left shift), then
 * TFLM's sigmoid_table_uint16 (`table`, 256 entries, TE_CONST) interpolated; output scale 2^-15. */
void te_logistic_s16(int16_t *out, const int16_t *in, int32_t count, int32_t input_multiplier,
                     int32_t input_left_shift, const uint16_t *table);
void te_tanh_s16(int16_t *out, const int16_t *in, int32_t count, int32_t input_multiplier, int32_t input_left_shift,
                 const uint16_t *table);

/* SOFTMAX int16 -> int16 (reference_ops::SoftmaxInt16): exp of the rescaled differences from the row's
 * maximum and the reciprocal of their sum through the two 513-entry LUTs TFLM's Prepare computes
 * (exp_lut, one_over_one_plus_x_lut; TE_CONST), output scale 2^-15. */
void te_softmax_s16(int16_t *out, const int16_t *in, int32_t outer, int32_t depth, int32_t input_multiplier,
                    int32_t input_left_shift, const int16_t *exp_lut, const int16_t *one_over_one_plus_x_lut);

/* MEAN int16 (QuantizedMeanOrSum<int16_t>): geom and parameters as te_nonlinear.c's te_mean_s8. */
void te_mean_s16(int16_t *out, const int16_t *in, const int32_t *geom, int32_t input_zero_point, int32_t count,
                 int32_t multiplier, int32_t shift, int32_t output_zero_point);

/* UNIDIRECTIONAL_SEQUENCE_LSTM 16x8 (EvalLstm<int16_t, int8_t, int16_t, int64_t>): int16 input, hidden state
 * and output (zero point 0), int8 weights (`weights`: the input then the recurrent weights of the input,
 * forget, cell and output gates), int64 input biases (`biases`, four), int16 cell state; batch 1, no
 * peepholes, projection or layer norm. params as te_recurrent.h's te_lstm_s8; lut: TFLM's sigmoid table. */
void te_lstm_s16(int16_t *out, const int16_t *in, int16_t *hidden, int16_t *cell, const int8_t *const *weights,
                 const int64_t *const *biases, const te_lstm_params_t *params, const uint16_t *lut);
/* BATCH_MATMUL int16 (reference_ops::BatchMatMul<int16_t, int64_t>): te_shape.h's te_batch_matmul_s8 with an
 * int64 accumulator, the int64 MultiplyByQuantizedMultiplier and every zero point 0 (TFLM requires it). */
void te_batch_matmul_s16(int16_t *out, const int16_t *lhs, const int16_t *rhs, const te_batch_matmul_t *params,
                         const int32_t *offsets, uint8_t consts);

#ifdef __cplusplus
}
#endif

#endif
