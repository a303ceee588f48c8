/* See te_elementwise.h. tinyedge/ops/rsqrt.py's inv_sqrt_quantized_multiplier_exp is te_el_inv_sqrt in
 * Python, integer for integer. */
#include "te_elementwise.h"

#include "te_fixedpoint.h"

/* gemmlowp's SaturatingRoundingMultiplyByPOT with a positive exponent. */
static int32_t te_el_sat_shl(int32_t x, int32_t exponent) {
  const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
  if (x > threshold) {
    return INT32_MAX;
  }
  if (x < -threshold) {
    return INT32_MIN;
  }
  return (int32_t)((uint32_t)x << exponent);
}

static int32_t te_el_leading_zeros(uint32_t x) {
  int32_t n = 0;
  while (n < 32 && !(x & 0x80000000UL)) {
    x <<= 1;
    n++;
  }
  return n;
}

/* GetInvSqrtQuantizedMultiplierExp(input, kReverseShift, ...): 1/sqrt(input) as a Q31 multiplier and a
 * MultiplyByQuantizedMultiplier shift, by five Newton-Raphson steps in gemmlowp's F3 fixed point. */
static void te_el_inv_sqrt(int32_t input, int32_t *multiplier, int32_t *shift) {
  const int32_t half_three = ((int32_t)1 << 28) + ((int32_t)1 << 27);   /* 1.5 in F3 */
  int32_t x = (int32_t)1 << 28;                                         /* 1.0 in F3 */
  int32_t half_input, pairs, i, s = 11;
  if (input <= 1) {
    *multiplier = INT32_MAX;
    *shift = 0;
    return;
  }
  while (input >= ((int32_t)1 << 29)) {
    input /= 4;
    s++;
  }
  pairs = (te_el_leading_zeros((uint32_t)input) - 1) / 2 - 1;
  s -= pairs;
  input = (int32_t)((uint32_t)input << (2 * pairs));
  half_input = te_rounding_divide_by_pot(input >> 1, 1);
  for (i = 0; i < 5; i++) {
    const int32_t x3 = te_el_sat_shl(te_srdhm(te_srdhm(x, x), x), 6);
    x = te_el_sat_shl((int32_t)((uint32_t)te_srdhm(half_three, x) - (uint32_t)te_srdhm(half_input, x3)), 3);
  }
  x = te_srdhm(x, 1518500250);   /* sqrt(2) / 2 in F0 */
  if (s < 0) {
    x = (int32_t)((uint32_t)x << -s);
    s = 0;
  }
  *multiplier = x;
  *shift = -s;
}

void te_l2_normalization_s8(int8_t *out, const int8_t *in, int32_t outer, int32_t depth, int32_t input_zero_point) {
  int32_t row, c;
  for (row = 0; row < outer; row++) {
    const int8_t *x = in + row * depth;
    int8_t *y = out + row * depth;
    int32_t acc = 0, multiplier, shift;
    for (c = 0; c < depth; c++) {
      const int32_t v = (int32_t)x[c] - input_zero_point;
      acc += v * v;
    }
    te_el_inv_sqrt(acc, &multiplier, &shift);
    for (c = 0; c < depth; c++) {
      int32_t q = te_mbqm_positive((int32_t)x[c] - input_zero_point, multiplier, shift + 7);
      y[c] = (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
    }
  }
}
