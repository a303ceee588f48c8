/* Recurrent int8 kernels of the AOT runtime (see te_recurrent.h). */
#include "te_recurrent.h"

#include "te_kernels.h"

static int32_t te_clamp32(int32_t x, int32_t lo, int32_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

void te_svdf_s8(const int8_t *in, int8_t *out, int8_t *state, const int8_t *weights_feature,
                const int8_t *weights_time, const int32_t *bias, const int32_t *params) {
  const int32_t n_input = TE_RD_S32(params + 0), n_filter = TE_RD_S32(params + 1);
  const int32_t n_memory = TE_RD_S32(params + 2), rank = TE_RD_S32(params + 3);
  const int32_t input_zp = TE_RD_S32(params + 4), state_zp = TE_RD_S32(params + 5);
  const int32_t output_zp = TE_RD_S32(params + 6);
  const int32_t multiplier_1 = TE_RD_S32(params + 7), multiplier_2 = TE_RD_S32(params + 9);
  const int8_t shift_1 = (int8_t)TE_RD_S32(params + 8), shift_2 = (int8_t)TE_RD_S32(params + 10);
  int32_t filter = 0, unit, r, i;
  /* One filter at a time: shift its row of the state left by one, append the feature dot product,
   * then take the time dot product. TFLM does each step over all filters; the rows are independent. */
  for (unit = 0; unit * rank < n_filter; ++unit) {
    int32_t acc = bias ? TE_RD_S32(bias + unit) : 0;
    for (r = 0; r < rank; ++r, ++filter) {
      int8_t *row = state + filter * n_memory;
      const int8_t *w = weights_feature + filter * n_input;
      const int8_t *wt = weights_time + filter * n_memory;
      int32_t dot = 0, time = 0;
      for (i = 0; i + 1 < n_memory; ++i) {
        row[i] = row[i + 1];
      }
      for (i = 0; i < n_input; ++i) {
        dot += (int32_t)TE_RD_S8(w + i) * ((int32_t)in[i] - input_zp);
      }
      dot = te_clamp32(te_mul_by_quantized_multiplier(dot, multiplier_1, shift_1), -128, 127);
      row[n_memory - 1] = (int8_t)(state_zp + dot);
      for (i = 0; i < n_memory; ++i) {
        time += (int32_t)TE_RD_S8(wt + i) * ((int32_t)row[i] - state_zp);
      }
      acc += time;
    }
    out[unit] = (int8_t)te_clamp32(te_mul_by_quantized_multiplier(acc, multiplier_2, shift_2) + output_zp, -128, 127);
  }
}
