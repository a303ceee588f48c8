/* AOT kernels for the recurrent int8 ops: SVDF and UNIDIRECTIONAL_SEQUENCE_LSTM, bit-exact with TFLM's
 * reference kernels (svdf_common.cc, lstm_eval.cc). Their state tensors (TFLM's variable tensors)
 * live in the arena for the whole program, so they persist across invocations as in TFLM.
 * Multipliers and shifts are computed at generation time by tinyedge/ops/svdf.py and lstm.py; arrays
 * marked TE_CONST may live in program memory (AVR). */
#ifndef TE_RECURRENT_H
#define TE_RECURRENT_H

#include <stdint.h>

#include "te_params.h"
#include "te_pgm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* te_svdf_params_t, te_lstm_gate_t and te_lstm_params_t: te_params.h. */

/* SVDF, int8 input, int8 weights and state (EvalIntegerSvdfReference<int8_t>), batch 1.
 * params: TE_CONST. bias (TE_CONST) may be 0. folds (TE_CONST), per filter: -input_zp * its feature weights' sum and
 * -state_zp * its time weights' sum, so the dot products run on raw values.
 * state: n_filter rows of n_memory, updated in place. */
void te_svdf_s8(int8_t *out, const int8_t *in, int8_t *state, const int8_t *weights_feature,
                const int8_t *weights_time, const int32_t *bias, const int32_t *folds, const te_svdf_params_t *params);

/* SVDF, int8 input and feature weights, int16 time weights and state (EvalIntegerSvdfReference<int16_t>,
 * TFLM's keyword model), batch 1: params and bias as te_svdf_s8's; the int32 sums wrap as TFLM's do. */
void te_svdf_s16(int8_t *out, const int8_t *in, int16_t *state, const int8_t *weights_feature,
                 const int16_t *weights_time, const int32_t *bias, const te_svdf_params_t *params);

/* UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations and weights, int16 cell state, int32 biases
 * (EvalLstm<int8_t, int8_t, int16_t, int32_t>), batch 1, no peepholes, projection or layer norm.
 * weights: {input->input, input->forget, input->cell, input->output,
 *           recurrent->input, recurrent->forget, recurrent->cell, recurrent->output} (TE_CONST data);
 * wide: 0, or (cores with the Arm DSP extension, n_input and n_state multiples of 4) the same weights
 *   re-laid for SMLAD, which then replace `weights` and `biases` (0): per unit, its four input biases,
 *   its input rows, its four recurrent biases, its recurrent rows; the rows per four columns and per
 *   gate the int16 pairs (w0, w2) and (w1, w3);
 * biases (TE_CONST data): per gate (input, forget, cell, output) the input FC's bias plus its input
 *   offset times the weights' row sums, then per gate the recurrent FC's hidden offset times its row sums;
 * params: TE_CONST;
 * lut: TFLM's 256-entry sigmoid table (sigmoid(i/24) in 0.16), TE_CONST.
 * hidden (int8) and cell (int16): the state, n_state each, updated in place; out: steps x n_state. */
void te_lstm_s8(int8_t *out, const int8_t *in, int8_t *hidden, int16_t *cell,
                const int8_t *const *weights, const int32_t *wide, const int32_t *const *biases,
                const te_lstm_params_t *params, const uint16_t *lut);

#ifdef __cplusplus
}
#endif

#endif
