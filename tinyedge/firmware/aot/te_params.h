/* Generated from tinyedge/ops/cstructs.py (python -m tinyedge.ops.cstructs): do not edit.
 * The AOT kernels' parameter structs and limits: the generator fills these structs with designated
 * initializers and counts their bytes from the same spec (tests/test_aot_params.py compiles them). */
#ifndef TE_PARAMS_H
#define TE_PARAMS_H

#include <stdint.h>

typedef int16_t te_dim;

#define TE_DSP_MAX_K_H 16
#define TE_DSP_MAX_TAP_PAIRS 16
#define TE_NL_MAX_DIMS 6
#define TE_REQUANT_PER_CHANNEL 1
#define TE_REQUANT_BOUNDED 2
#define TE_MATMUL_LHS_CONST 1
#define TE_MATMUL_RHS_CONST 2

/* The geometry shared by convolutions and pools (NHWC, batch 1). */
typedef struct {
  te_dim in_h;
  te_dim in_w;
  te_dim in_c;
  te_dim out_h;
  te_dim out_w;
  te_dim out_c;
  te_dim k_h;
  te_dim k_w;
  int8_t stride_h;
  int8_t stride_w;
  int8_t dil_h;
  int8_t dil_w;
  int8_t pad_h;
  int8_t pad_w;
} te_window_t;

/* Requantization of one op: per-channel tables (or one entry when bit 0 of `per_channel`
 * is 0). Bit 1 (TE_REQUANT_BOUNDED, set only for te_dsp.c's kernels) says every accumulator
 * times 2^left of its channel is below 2^30 in magnitude. input_offset: -input zero point. */
typedef struct {
  const int32_t *multiplier;  /* TE_CONST */
  const int8_t *shift;  /* TE_CONST */
  uint8_t per_channel;
  int16_t input_offset;
  int16_t output_offset;
  int8_t act_min;
  int8_t act_max;
} te_requant_t;

/* ADD's rescalings (reference_integer_ops::AddFunc; te_nonlinear.c's te_add_s8, te_dsp.c's te_dsp_add_s8). */
typedef struct {
  int32_t a_offset;
  int32_t a_multiplier;
  int32_t a_shift;
  int32_t b_offset;
  int32_t b_multiplier;
  int32_t b_shift;
  int32_t left_shift;
  int32_t out_multiplier;
  int32_t out_shift;
  int32_t out_offset;
  int32_t act_min;
  int32_t act_max;
} te_add_params_t;

/* MUL's rescaling (reference_integer_ops::MulElementwise). */
typedef struct {
  int32_t a_offset;
  int32_t b_offset;
  int32_t out_multiplier;
  int32_t out_shift;
  int32_t out_offset;
  int32_t act_min;
  int32_t act_max;
} te_mul_params_t;

/* PRELU's rescalings (reference_ops::BroadcastPrelu4DSlow): a is the input, b alpha. */
typedef struct {
  int32_t a_offset;
  int32_t b_offset;
  int32_t out_offset;
  int32_t multiplier_1;
  int32_t shift_1;
  int32_t multiplier_2;
  int32_t shift_2;
} te_prelu_params_t;

/* RESIZE_BILINEAR's geometry (reference_ops::ResizeBilinearInteger; te_shape.c). */
typedef struct {
  te_dim batches;
  te_dim in_h;
  te_dim in_w;
  te_dim out_h;
  te_dim out_w;
  te_dim channels;
} te_resize_bilinear_t;

/* BATCH_MATMUL's geometry and rescaling (reference_ops::BatchMatMul; te_shape.c): out[b][m][n]
 * = sum over k of (lhs[m*lhs_row_stride + k*lhs_depth_stride] + lhs_offset) *
 * (rhs[k*rhs_depth_stride + n*rhs_col_stride] + rhs_offset), requantized. */
typedef struct {
  int32_t batches;
  int32_t rows;
  int32_t cols;
  int32_t depth;
  int32_t lhs_row_stride;
  int32_t lhs_depth_stride;
  int32_t rhs_depth_stride;
  int32_t rhs_col_stride;
  int32_t lhs_offset;
  int32_t rhs_offset;
  int32_t out_offset;
  int32_t multiplier;
  int32_t shift;
} te_batch_matmul_t;

/* SVDF's geometry and rescalings (PrepareSvdf). */
typedef struct {
  int32_t n_input;
  int32_t n_filter;
  int32_t n_memory;
  int32_t rank;
  int32_t input_zp;
  int32_t state_zp;
  int32_t output_zp;
  int32_t multiplier_1;
  int32_t shift_1;
  int32_t multiplier_2;
  int32_t shift_2;
} te_svdf_params_t;

/* One LSTM gate's two FCs' rescalings: from the input and from the hidden state. */
typedef struct {
  int32_t input_multiplier;
  int32_t input_shift;
  int32_t recurrent_multiplier;
  int32_t recurrent_shift;
} te_lstm_gate_t;

/* UNIDIRECTIONAL_SEQUENCE_LSTM's geometry and rescalings (PrepareGateParametersInteger):
 * offsets folded into the biases, gates input, forget, cell, output; cell clip 0: none. */
typedef struct {
  int32_t steps;
  int32_t n_input;
  int32_t n_state;
  int32_t input_offset;
  int32_t hidden_offset;
  te_lstm_gate_t gate[4];
  int32_t forget_mul_multiplier;
  int32_t forget_mul_shift;
  int32_t input_mul_multiplier;
  int32_t input_mul_shift;
  int32_t output_mul_multiplier;
  int32_t output_mul_shift;
  int32_t hidden_zero_point;
  int32_t quantized_cell_clip;
  int32_t cell_tanh_multiplier;
  int32_t cell_tanh_right_shift;
  int32_t cell_gate_is_sigmoid;
} te_lstm_params_t;

/* SignalRfft's geometry (te_signal.c): frames of input_length samples, zero-padded to
 * fft_length, each to output_bins complex bins. */
typedef struct {
  int32_t fft_length;
  int32_t input_length;
  int32_t frames;
  int32_t output_bins;
} te_rfft_params_t;

/* SignalIrfft's geometry (te_signal.c): frames of input_bins complex bins to
 * output_length samples each. */
typedef struct {
  int32_t fft_length;
  int32_t input_bins;
  int32_t frames;
  int32_t output_length;
} te_irfft_params_t;

/* SignalFilterBankSpectralSubtraction's options (its flexbuffer, read at generation time). */
typedef struct {
  int32_t num_channels;
  int32_t smoothing;
  int32_t one_minus_smoothing;
  int32_t min_signal_remaining;
  int32_t alternate_smoothing;
  int32_t alternate_one_minus_smoothing;
  int32_t smoothing_bits;
  int32_t spectral_subtraction_bits;
  int32_t clamping;
} te_spectral_subtraction_params_t;

#endif
