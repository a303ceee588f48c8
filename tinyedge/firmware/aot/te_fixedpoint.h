/* gemmlowp's scalar int32 fixed point and TFLM's MultiplyByQuantizedMultiplier (double rounding), once
 * for every AOT kernel file (te_dsp.c keeps its own DSP-instruction requantization); tinyedge/ops/fixedpoint.py is the same arithmetic in Python. Fixed-width
 * types only, so it holds where int is 16 bits (AVR). */
#ifndef TE_FIXEDPOINT_H
#define TE_FIXEDPOINT_H

#include <stdint.h>

/* Plain static functions (the compiler inlines them as it judges best); unused ones raise no warning. */
#if defined(__GNUC__)
#define TE_FP_STATIC static __attribute__((unused))
#else
#define TE_FP_STATIC static
#endif

/* gemmlowp's SaturatingRoundingDoublingHighMul; the division by 2^31 truncates toward zero. */
TE_FP_STATIC int32_t te_srdhm(int32_t a, int32_t b) {
  int64_t ab;
  if (a == INT32_MIN && b == INT32_MIN) {
    return INT32_MAX;
  }
  ab = (int64_t)a * (int64_t)b;
  if (ab >= 0) {
    ab += (int64_t)1 << 30;
  } else {
    ab += (int64_t)1 - ((int64_t)1 << 30);
    ab += ((int64_t)1 << 31) - 1;
  }
  return (int32_t)(ab >> 31);
}

/* CountLeadingZeros of a uint32 (32 for 0), without a 32-bit builtin (int is 16 bits on AVR). */
TE_FP_STATIC int32_t te_clz32(uint32_t x) {
  int32_t n = 0;
  if (x == 0u) {
    return 32;
  }
  while ((x & 0x80000000UL) == 0u) {
    x <<= 1;
    n++;
  }
  return n;
}

/* gemmlowp's RoundingDivideByPOT: round half away from zero, exponent in [0, 31]. */
TE_FP_STATIC int32_t te_rounding_divide_by_pot(int32_t x, int32_t exponent) {
  const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLM's MultiplyByQuantizedMultiplier is te_mul_by_quantized_multiplier (te_kernels.c, declared in
 * te_kernels.h): te_srdhm then te_rounding_divide_by_pot. This is the same arithmetic fused into one
 * inline expression, for the recurrent kernels' many calls: for multipliers from QuantizeMultiplier of
 * positive scales, never INT32_MIN, so te_srdhm's saturating case never occurs. */
static inline int32_t te_mbqm_positive(int32_t x, int32_t multiplier, int32_t shift) {
  const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  const int32_t a = (int32_t)((uint32_t)x << left);
  int64_t ab = (int64_t)a * multiplier;
  int32_t high, mask, remainder, threshold;
  ab += ab >= 0 ? ((int64_t)1 << 30) : ((int64_t)1 - ((int64_t)1 << 30)) + (((int64_t)1 << 31) - 1);
  high = (int32_t)(ab >> 31);
  mask = (int32_t)(((uint32_t)1 << right) - 1u);
  remainder = high & mask;
  threshold = (mask >> 1) + (high < 0 ? 1 : 0);
  return (high >> right) + (remainder > threshold ? 1 : 0);
}

/* TfLiteRound (std::round: halves away from zero) of a float, as an int32 saturated to +-limit (and NaN to
 * -limit) where TFLM's float->int32 cast would be undefined; r - trunc(r) is exact in float. */
TE_FP_STATIC int32_t te_round_f32(float r, int32_t limit) {
  float frac;
  int32_t q;
  if (r != r || r <= -(float)limit) {
    return -limit;
  }
  if (r >= (float)limit) {
    return limit;
  }
  frac = r - (float)(int32_t)r;
  q = (int32_t)r;
  if (frac >= 0.5f) {
    q++;
  } else if (frac <= -0.5f) {
    q--;
  }
  return q;
}

#endif
