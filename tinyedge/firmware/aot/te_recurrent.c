/* Recurrent int8 kernels of the AOT runtime (see te_recurrent.h). */
#include "te_recurrent.h"

#include "te_dsp_insn.h"
#include "te_fixedpoint.h"
#include "te_kernels.h"

static int32_t te_clamp32(int32_t x, int32_t lo, int32_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

static int16_t te_clamp16(int32_t x) {
  return (int16_t)te_clamp32(x, -32768, 32767);
}

/* reference_integer_ops::Logistic on int16 with TFLM's power-of-two input (multiplier 3, no shift). */
static int16_t te_sigmoid16(int16_t x, const uint16_t *lut) {
  const int32_t input = (int32_t)x * 3;
  const uint32_t magnitude = (uint32_t)(input < 0 ? -input : input);
  const uint32_t uh = magnitude >> 9;
  uint32_t result;
  if (uh >= 255) {
    result = 0x7FFFUL << 10;
  } else {
    const uint32_t ua = TE_RD_U16(lut + uh), ub = TE_RD_U16(lut + uh + 1);
    result = (ua << 9) + (magnitude & 0x1ff) * (ub - ua);
  }
  result = input >= 0 ? result + (1UL << 9) : (1UL << 25) - result + (1UL << 9) - 1;
  return (int16_t)(result >> 10);
}

/* reference_integer_ops::Tanh on int16: input scaled by multiplier then right shift, rounded. */
static inline int16_t te_tanh16(int16_t x, int32_t multiplier, int32_t right_shift, const uint16_t *lut) {
  const int32_t round = right_shift > 0 ? (int32_t)1 << (right_shift - 1) : 0;
  const int32_t input = ((int32_t)x * multiplier + round) >> right_shift;
  const uint32_t magnitude = (uint32_t)(input < 0 ? -input : input);
  const uint32_t uh = magnitude >> 8;
  int32_t result;
  if (uh >= 255) {
    result = (int32_t)(0xFFFFUL << 8);
  } else {
    const uint32_t ua = TE_RD_U16(lut + uh), ub = TE_RD_U16(lut + uh + 1);
    result = (int32_t)((ua << 8) + (magnitude & 0xff) * (ub - ua));
  }
  result = input >= 0 ? result - (1L << 23) + (1L << 7) : -result + (1L << 23) + (1L << 7) - 1;
  return (int16_t)(result >> 8);
}

#if TE_DSP_INSN
#define TE_RECURRENT_DSP 1
/* Cortex-M4/M7: four bytes at a time, widened in pairs (SXTB16) and multiplied-accumulated two
 * 16-bit products per instruction (SMLAD); the same integer sum. */
/* acc + the four byte products of x and w, with x already widened into its even and odd halves */
static inline int32_t te_rec_smlad_widened(int32_t x_even, int32_t x_odd, int32_t w, int32_t acc) {
  return te_smlad(x_odd, te_sxtb16_ror8(w), te_smlad(x_even, te_sxtb16(w), acc));
}
/* acc[g] = the four gates' rows of one unit times x, plus their biases (n a multiple of 4, > 0), the
 * rows re-laid at generation time as int16 pairs: first the four gates' folded biases, then per four
 * bytes of x, per gate, the weights of x's bytes 0 and 2, then 1 and 3. Returns the next rows. The
 * loop as assembly, priced with the Cortex-M4 TRM: x's word and four weights in five pipelined LDRs,
 * the other four in four, a down-counter's SUBS for the branch: 25 cycles per 16 MACs (mid), where
 * the compiler's loop, each LDR next to the SMLAD that used it, took 31. */
static inline const int32_t *te_lstm_wide4(const int8_t *x, const int32_t *w, int32_t n, int32_t *acc) {
  int32_t a0 = w[0], a1 = w[1], a2 = w[2], a3 = w[3], xe, xo, p, q, r, s;
  w += 4;
  n >>= 2;
  __asm__ volatile("1:\n\t"
                   "ldr %[xe], [%[x]], #4\n\t"
                   "ldr %[p], [%[w]], #32\n\t"
                   "ldr %[q], [%[w], #-28]\n\t"
                   "ldr %[r], [%[w], #-24]\n\t"
                   "ldr %[s], [%[w], #-20]\n\t"
                   "sxtb16 %[xo], %[xe], ror #8\n\t"
                   "sxtb16 %[xe], %[xe]\n\t"
                   "smlad %[a0], %[xe], %[p], %[a0]\n\t"
                   "smlad %[a0], %[xo], %[q], %[a0]\n\t"
                   "smlad %[a1], %[xe], %[r], %[a1]\n\t"
                   "smlad %[a1], %[xo], %[s], %[a1]\n\t"
                   "ldr %[p], [%[w], #-16]\n\t"
                   "ldr %[q], [%[w], #-12]\n\t"
                   "ldr %[r], [%[w], #-8]\n\t"
                   "ldr %[s], [%[w], #-4]\n\t"
                   "smlad %[a2], %[xe], %[p], %[a2]\n\t"
                   "smlad %[a2], %[xo], %[q], %[a2]\n\t"
                   "smlad %[a3], %[xe], %[r], %[a3]\n\t"
                   "smlad %[a3], %[xo], %[s], %[a3]\n\t"
                   "subs %[n], %[n], #1\n\t"
                   "bne 1b\n\t"
                   : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [w] "+r"(w),
                     [n] "+r"(n), [xe] "=&r"(xe), [xo] "=&r"(xo), [p] "=&r"(p), [q] "=&r"(q), [r] "=&r"(r),
                     [s] "=&r"(s)
                   :
                   : "cc", "memory");
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  return w;
}
static inline int32_t te_rec_smlad_bytes(int32_t x, int32_t w, int32_t acc) {
  return te_rec_smlad_widened(te_sxtb16(x), te_sxtb16_ror8(x), w, acc);
}
#endif

/* sum of w[i] * x[i]: the input offsets are folded into the gates' bias tables at generation time. */
static int32_t te_dot_s8(const int8_t *x, const int8_t *w, int32_t n) {
  int32_t acc = 0, i = 0;
#ifdef TE_RECURRENT_DSP
  for (; i + 4 <= n; i += 4) {
    acc = te_rec_smlad_bytes(te_read_s8x4(x + i), te_read_s8x4(w + i), acc);
  }
#endif
  for (; i + 4 <= n; i += 4) {
    acc += (int32_t)TE_RD_S8(w + i) * x[i] + (int32_t)TE_RD_S8(w + i + 1) * x[i + 1]
         + (int32_t)TE_RD_S8(w + i + 2) * x[i + 2] + (int32_t)TE_RD_S8(w + i + 3) * x[i + 3];
  }
  for (; i < n; ++i) {
    acc += (int32_t)TE_RD_S8(w + i) * x[i];
  }
  return acc;
}

#ifdef TE_RECURRENT_DSP
/* te_dot4_s8's assembly: the word in p (one row's four weights) widened in place and into q, times x's
 * widened halves into accumulator A. */
#define TE_REC_ROW(A)                                           \
  "sxtb16 %[q], %[p], ror #8\n\t"                              \
  "sxtb16 %[p], %[p]\n\t"                                      \
  "smlad %[" A "], %[xe], %[p], %[" A "]\n\t"                  \
  "smlad %[" A "], %[xo], %[q], %[" A "]\n\t"
#endif

/* acc[r] += sum of w_r[i] * x[i] for the four gates' rows of one unit: x is read (and widened) once. */
static void te_dot4_s8(const int8_t *x, const int8_t *w0, const int8_t *w1, const int8_t *w2, const int8_t *w3,
                       int32_t n, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], i = 0;
#ifdef TE_RECURRENT_DSP
  for (; i + 4 <= n; i += 4) {
    const int32_t xw = te_read_s8x4(x + i), x_even = te_sxtb16(xw), x_odd = te_sxtb16_ror8(xw);
    a0 = te_rec_smlad_widened(x_even, x_odd, te_read_s8x4(w0 + i), a0);
    a1 = te_rec_smlad_widened(x_even, x_odd, te_read_s8x4(w1 + i), a1);
    a2 = te_rec_smlad_widened(x_even, x_odd, te_read_s8x4(w2 + i), a2);
    a3 = te_rec_smlad_widened(x_even, x_odd, te_read_s8x4(w3 + i), a3);
  }
#endif
  for (; i < n; ++i) {
    const int32_t v = x[i];
    a0 += (int32_t)TE_RD_S8(w0 + i) * v;
    a1 += (int32_t)TE_RD_S8(w1 + i) * v;
    a2 += (int32_t)TE_RD_S8(w2 + i) * v;
    a3 += (int32_t)TE_RD_S8(w3 + i) * v;
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

#ifdef TE_RECURRENT_DSP
/* acc[r] = sum of w[r * n + i] * x[i] for four consecutive rows of n (a multiple of 4, > 0), as
 * assembly: the compiler's loop spilled x's pointer and an accumulator (36.7 cycles per 16 MACs, mid);
 * this one keeps them all in 13 registers (rows 1 and 3 by a register offset from rows 0 and 2), each
 * row's word widened in place (31). */
static void te_svdf_dot4(const int8_t *x, const int8_t *w, int32_t n, int32_t *acc) {
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, count = n >> 2, xe, xo, p, q;
  const int8_t *w2 = w + 2 * n;
  __asm__ volatile("1:\n\t"
                   "ldr %[xe], [%[x]], #4\n\t"
                   "ldr %[p], [%[w]], #4\n\t"
                   "sxtb16 %[xo], %[xe], ror #8\n\t"
                   "sxtb16 %[xe], %[xe]\n\t"
                   TE_REC_ROW("a0")
                   "ldr %[p], [%[w], %[n]]\n\t"
                   TE_REC_ROW("a1")
                   "ldr %[p], [%[w2]], #4\n\t"
                   TE_REC_ROW("a2")
                   "ldr %[p], [%[w2], %[n]]\n\t"
                   TE_REC_ROW("a3")
                   "subs %[count], %[count], #1\n\t"
                   "bne 1b\n\t"
                   : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [w] "+r"(w),
                     [w2] "+r"(w2), [count] "+r"(count), [xe] "=&r"(xe), [xo] "=&r"(xo), [p] "=&r"(p), [q] "=&r"(q)
                   : [n] "r"(n - 4)
                   : "cc", "memory");
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}
#endif

/* Shifts one filter's state row left by one, appends newest, and returns the row's dot product with
 * its time weights. On Cortex-M4 a row of whole words moves a word at a time (each word takes the
 * next one's low byte as its top byte) and is multiplied as it is stored. */
static int32_t te_svdf_shift_dot(int8_t *row, int8_t newest, const int8_t *weights_time, int32_t n_memory) {
  int32_t i;
#ifdef TE_RECURRENT_DSP
  if ((n_memory & 3) == 0) {
    /* the last word outside the loop, so the loop tests nothing but its end */
    int32_t acc = 0, shifted;
    int8_t *const last = row + n_memory - 4;
    uint32_t word = (uint32_t)te_read_s8x4(row);
    for (; row < last; row += 4, weights_time += 4) {
      const uint32_t next = (uint32_t)te_read_s8x4(row + 4);
      shifted = (int32_t)((word >> 8) | (next << 24));
      memcpy(row, &shifted, 4);
      acc = te_rec_smlad_bytes(shifted, te_read_s8x4(weights_time), acc);
      word = next;
    }
    shifted = (int32_t)((word >> 8) | ((uint32_t)(uint8_t)newest << 24));
    memcpy(row, &shifted, 4);
    return te_rec_smlad_bytes(shifted, te_read_s8x4(weights_time), acc);
  }
#endif
  for (i = 0; i + 1 < n_memory; ++i) {
    row[i] = row[i + 1];
  }
  row[n_memory - 1] = newest;
  return te_dot_s8(row, weights_time, n_memory);
}

void te_svdf_s8(int8_t *out, const int8_t *in, int8_t *state, const int8_t *weights_feature,
                const int8_t *weights_time, const int32_t *bias, const int32_t *folds, const te_svdf_params_t *params) {
  const int32_t n_input = TE_RD_S32(&params->n_input), n_filter = TE_RD_S32(&params->n_filter);
  const int32_t n_memory = TE_RD_S32(&params->n_memory), rank = TE_RD_S32(&params->rank);
  const int32_t state_zp = TE_RD_S32(&params->state_zp), output_zp = TE_RD_S32(&params->output_zp);
  const int32_t multiplier_1 = TE_RD_S32(&params->multiplier_1), multiplier_2 = TE_RD_S32(&params->multiplier_2);
  const int32_t shift_1 = TE_RD_S32(&params->shift_1), shift_2 = TE_RD_S32(&params->shift_2);
  int32_t filter = 0, acc = 0, unit = 0, left = rank;
  /* Four filters' feature dot products at a time (the input is read once for the four), then per
   * filter: shift its state row, append the requantized feature product and take the time dot
   * product. TFLM does each step over all filters; the rows are independent. `left` counts the
   * filters of the current unit still to come (no division by the rank). */
  while (filter < n_filter) {
    int32_t dots[4] = {0, 0, 0, 0}, block, k;
    const int8_t *wf = weights_feature + filter * n_input;
    if (filter + 4 <= n_filter) {
      block = 4;
#ifdef TE_RECURRENT_DSP
      if ((n_input & 3) == 0) {
        te_svdf_dot4(in, wf, n_input, dots);
      } else
#endif
      {
        te_dot4_s8(in, wf, wf + n_input, wf + 2 * n_input, wf + 3 * n_input, n_input, dots);
      }
    } else {
      block = 1;
      dots[0] = te_dot_s8(in, wf, n_input);
    }
    for (k = 0; k < block; ++k, ++filter) {
      const int32_t dot = te_clamp32(
          te_mbqm_positive(TE_RD_S32(folds + 2 * filter) + dots[k], multiplier_1, shift_1), -128, 127);
      if (left == rank) {
        acc = bias ? TE_RD_S32(bias + unit) : 0;
      }
      acc += TE_RD_S32(folds + 2 * filter + 1)
           + te_svdf_shift_dot(state + filter * n_memory, (int8_t)(state_zp + dot), weights_time + filter * n_memory,
                               n_memory);
      if (--left == 0) {
        out[unit++] = (int8_t)te_clamp32(te_mbqm_positive(acc, multiplier_2, shift_2) + output_zp, -128, 127);
        left = rank;
      }
    }
  }
}

#ifdef TE_RECURRENT_DSP
/* sum of w[i] * (x[i] + offset), n a multiple of 4: x widened with its offset added (SXTAB16; the
 * int16 halves hold x + offset exactly), two products per SMLAD, the sum wrapping as TFLM's. */
static int32_t te_dot_s8_offset(const int8_t *x, const int8_t *w, int32_t n, int32_t offset) {
  const int32_t offsets = (int32_t)(((uint32_t)offset & 0xFFFFu) * 0x10001u);
  int32_t acc = 0, i;
  for (i = 0; i < n; i += 4) {
    const int32_t xw = te_read_s8x4(x + i), ww = te_read_s8x4(w + i);
    acc = te_smlad(te_sxtab16(offsets, xw), te_sxtb16(ww), acc);
    acc = te_smlad(te_sxtab16_ror8(offsets, xw), te_sxtb16_ror8(ww), acc);
  }
  return acc;
}

/* te_svdf_shift_dot for an int16 row (n even) whose zero point is 0: a word (two values) at a time,
 * each word taking the next one's low half as its top half, multiplied with the time weights' pair
 * as it is stored. */
static int32_t te_svdf_shift_dot16(int16_t *row, int16_t newest, const int16_t *weights_time, int32_t n) {
  int32_t acc = 0, shifted;
  int16_t *const last = row + n - 2;
  uint32_t word, next;
  memcpy(&word, row, 4);
  for (; row < last; row += 2, weights_time += 2) {
    int32_t weights;
    memcpy(&next, row + 2, 4);
    memcpy(&weights, weights_time, 4);
    shifted = (int32_t)((word >> 16) | (next << 16));
    memcpy(row, &shifted, 4);
    acc = te_smlad(shifted, weights, acc);
    word = next;
  }
  shifted = (int32_t)((word >> 16) | ((uint32_t)(uint16_t)newest << 16));
  memcpy(row, &shifted, 4);
  memcpy(&next, weights_time, 4);
  return te_smlad(shifted, (int32_t)next, acc);
}
#endif

void te_svdf_s16(int8_t *out, const int8_t *in, int16_t *state, const int8_t *weights_feature,
                 const int16_t *weights_time, const int32_t *bias, const te_svdf_params_t *params) {
  const int32_t n_input = TE_RD_S32(&params->n_input), n_filter = TE_RD_S32(&params->n_filter);
  const int32_t n_memory = TE_RD_S32(&params->n_memory), rank = TE_RD_S32(&params->rank);
  const int32_t input_zp = TE_RD_S32(&params->input_zp), state_zp = TE_RD_S32(&params->state_zp);
  const int32_t output_zp = TE_RD_S32(&params->output_zp);
  const int32_t multiplier_1 = TE_RD_S32(&params->multiplier_1), multiplier_2 = TE_RD_S32(&params->multiplier_2);
  const int32_t shift_1 = TE_RD_S32(&params->shift_1), shift_2 = TE_RD_S32(&params->shift_2);
  uint32_t acc = 0;
  int32_t filter, j, unit = 0, left = rank;
#ifdef TE_RECURRENT_DSP
  const int fast = state_zp == 0 && (n_memory & 1) == 0 && (n_input & 3) == 0;
#endif
  /* Per filter (TFLM does each step over all filters; the rows are independent): the feature dot
   * product requantized into the newest state slot of its row, the row shifted, the time dot product.
   * `left` counts the filters of the current unit still to come (no division by the rank). */
  for (filter = 0; filter < n_filter; ++filter) {
    const int8_t *wf = weights_feature + filter * n_input;
    const int16_t *wt = weights_time + filter * n_memory;
    int16_t *row = state + filter * n_memory;
    uint32_t dot = 0, time = 0;
#ifdef TE_RECURRENT_DSP
    if (fast) {
      dot = (uint32_t)te_dot_s8_offset(in, wf, n_input, -input_zp);
      time = (uint32_t)te_svdf_shift_dot16(row, te_clamp16(te_mbqm_positive((int32_t)dot, multiplier_1, shift_1)),
                                           wt, n_memory);
    } else
#endif
    {
      for (j = 0; j < n_input; ++j) {
        dot += (uint32_t)((int32_t)TE_RD_S8(wf + j) * ((int32_t)in[j] - input_zp));
      }
      for (j = 0; j + 1 < n_memory; ++j) {
        row[j] = row[j + 1];
      }
      row[n_memory - 1] = (int16_t)(state_zp + te_clamp16(te_mbqm_positive((int32_t)dot, multiplier_1, shift_1)));
      for (j = 0; j < n_memory; ++j) {
        time += (uint32_t)((int32_t)TE_RD_S16(wt + j) * ((int32_t)row[j] - state_zp));
      }
    }
    if (left == rank) {
      acc = bias ? (uint32_t)TE_RD_S32(bias + unit) : 0u;
    }
    acc += time;
    if (--left == 0) {
      out[unit++] = (int8_t)te_clamp32(te_mbqm_positive((int32_t)acc, multiplier_2, shift_2) + output_zp, -128, 127);
      left = rank;
    }
  }
}

static int32_t te_mul16(int32_t a, int32_t b, int32_t multiplier, int32_t shift) {
  return te_mbqm_positive(a * b, multiplier, shift);
}

/* One gate's pre-activation: its input and recurrent FC outputs, each requantized to int16, summed. */
static inline int16_t te_lstm_gate(const int32_t *from_x, const int32_t *from_h, const int32_t *multiplier,
                                   const int32_t *shift, int32_t g) {
  const int32_t from_input = te_clamp16(te_mbqm_positive(from_x[g], multiplier[g], shift[g]));
  const int32_t from_hidden = te_clamp16(te_mbqm_positive(from_h[g], multiplier[4 + g], shift[4 + g]));
  return te_clamp16(from_input + from_hidden);
}

void te_lstm_s8(int8_t *out, const int8_t *in, int8_t *hidden, int16_t *cell,
                const int8_t *const *weights, const int32_t *wide, const int32_t *const *biases,
                const te_lstm_params_t *params, const uint16_t *lut) {
  const int32_t steps = TE_RD_S32(&params->steps), n_input = TE_RD_S32(&params->n_input);
  const int32_t n_state = TE_RD_S32(&params->n_state);
  const int32_t hidden_zp = TE_RD_S32(&params->hidden_zero_point), cell_clip = TE_RD_S32(&params->quantized_cell_clip);
  const int32_t tanh_multiplier = TE_RD_S32(&params->cell_tanh_multiplier);
  const int32_t tanh_shift = TE_RD_S32(&params->cell_tanh_right_shift);
  const int32_t cell_sigmoid = TE_RD_S32(&params->cell_gate_is_sigmoid);
  const int32_t forget_m = TE_RD_S32(&params->forget_mul_multiplier), forget_s = TE_RD_S32(&params->forget_mul_shift);
  const int32_t input_m = TE_RD_S32(&params->input_mul_multiplier), input_s = TE_RD_S32(&params->input_mul_shift);
  const int32_t output_m = TE_RD_S32(&params->output_mul_multiplier), output_s = TE_RD_S32(&params->output_mul_shift);
  int32_t multiplier[8], shift[8];
  int32_t t, u, g;
  for (g = 0; g < 4; ++g) {
    multiplier[g] = TE_RD_S32(&params->gate[g].input_multiplier);
    shift[g] = TE_RD_S32(&params->gate[g].input_shift);
    multiplier[4 + g] = TE_RD_S32(&params->gate[g].recurrent_multiplier);
    shift[4 + g] = TE_RD_S32(&params->gate[g].recurrent_shift);
  }
  for (t = 0; t < steps; ++t) {
    const int8_t *x = in + t * n_input;
    int8_t *h_new = out + t * n_state;
#ifdef TE_RECURRENT_DSP
    const int32_t *rows = wide;
#else
    (void)wide;
#endif
    /* Unit by unit: every gate reads the previous hidden state, so the new one is written to the
     * output row first and copied into the state once the step is done. */
    for (u = 0; u < n_state; ++u) {
      int16_t gate[4];
      int32_t from_x[4], from_h[4], c;
#ifdef TE_RECURRENT_DSP
      if (rows) {
        rows = te_lstm_wide4(hidden, te_lstm_wide4(x, rows, n_input, from_x), n_state, from_h);
      } else
#endif
      {
        const int32_t row_x = u * n_input, row_h = u * n_state;
        for (g = 0; g < 4; ++g) {
          from_x[g] = TE_RD_S32(biases[g] + u);
          from_h[g] = TE_RD_S32(biases[4 + g] + u);
        }
        te_dot4_s8(x, weights[0] + row_x, weights[1] + row_x, weights[2] + row_x, weights[3] + row_x, n_input, from_x);
        te_dot4_s8(hidden, weights[4] + row_h, weights[5] + row_h, weights[6] + row_h, weights[7] + row_h, n_state,
                   from_h);
      }
      gate[0] = te_sigmoid16(te_lstm_gate(from_x, from_h, multiplier, shift, 0), lut);
      gate[1] = te_sigmoid16(te_lstm_gate(from_x, from_h, multiplier, shift, 1), lut);
      gate[2] = cell_sigmoid ? te_sigmoid16(te_lstm_gate(from_x, from_h, multiplier, shift, 2), lut)
                             : te_tanh16(te_lstm_gate(from_x, from_h, multiplier, shift, 2), 3, 0, lut);
      gate[3] = te_sigmoid16(te_lstm_gate(from_x, from_h, multiplier, shift, 3), lut);
      c = te_clamp16(te_mul16(gate[1], cell[u], forget_m, forget_s));
      c = te_clamp16(c + te_clamp16(te_mul16(gate[0], gate[2], input_m, input_s)));
      if (cell_clip > 0) {
        c = te_clamp32(c, -cell_clip, cell_clip);
      }
      cell[u] = (int16_t)c;
      h_new[u] = (int8_t)te_clamp32(
          te_mul16(te_tanh16((int16_t)c, tanh_multiplier, tanh_shift, lut), gate[3], output_m, output_s) + hidden_zp,
          -128, 127);
    }
    for (u = 0; u < n_state; ++u) {
      hidden[u] = h_new[u];
    }
  }
}
