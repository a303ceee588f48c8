/* AOT kernels for the recurrent int8 ops: SVDF and UNIDIRECTIONAL_SEQUENCE_LSTM, bit-exact with TFLM's
 * reference kernels (svdf_common.cc, lstm_eval.cc). Their state tensors (TFLM's variable tensors)
 * live in the arena for the whole program, so they persist across invocations as in TFLM.
 * Multipliers and shifts are computed at generation time by tinyedge/aot/recurrent.py; arrays
 * marked TE_CONST may live in program memory (AVR). */
#ifndef TE_RECURRENT_H
#define TE_RECURRENT_H

#include <stdint.h>

#include "te_pgm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SVDF, int8 input, int8 weights and state (EvalIntegerSvdfReference<int8_t>), batch 1.
 * params, TE_CONST: {n_input, n_filter, n_memory, rank, input_zp, state_zp, output_zp,
 *                    multiplier_1, shift_1, multiplier_2, shift_2}
 * bias (TE_CONST) may be 0. state: n_filter rows of n_memory, updated in place. */
void te_svdf_s8(const int8_t *in, int8_t *out, int8_t *state, const int8_t *weights_feature,
                const int8_t *weights_time, const int32_t *bias, const int32_t *params);

#ifdef __cplusplus
}
#endif

#endif
