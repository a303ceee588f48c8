"""gemmlowp's scalar int32 fixed point (fixedpoint.h) and TFLM's MultiplyByQuantizedMultiplier, integer
for integer: the Python side of firmware/aot/te_fixedpoint.h. The AOT generator builds its tables with
it (LOGISTIC, TANH) and the viper generator its SOFTMAX exponentials; the tests model the C with it."""

from __future__ import annotations

import math

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1



def wrap32(x: int) -> int:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return trunc_div(ab + nudge, 1 << 31)


def rdbypot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def sat_shl(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT with a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << exponent


def rescale(x: int, src_integer_bits: int, dst_integer_bits: int) -> int:
    exponent = src_integer_bits - dst_integer_bits
    if exponent > 0:
        return sat_shl(x, exponent)
    if exponent < 0:
        return rdbypot(x, -exponent)
    return x


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return rdbypot(srdhm(wrap32(x << left), multiplier), right)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    constant_term, constant_1_over_3 = 1895147668, 715827883
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbypot(x4, 2)
    poly = rdbypot(wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = wrap32((a & (one_quarter - 1)) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent and remainder & (1 << (fractional_bits + exponent)):
            result = srdhm(result, multiplier)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):
        result = 0
    return INT32_MAX if a == 0 else result


def _newton_reciprocal_q2(a: int) -> int:
    """The shared Newton-Raphson part of one_over_one_plus_x / one_minus_x_over_one_plus_x, in Q2.29."""
    half_denominator = trunc_div(a + INT32_MAX + (1 if a + INT32_MAX >= 0 else -1), 2)  # RoundingHalfSum(a, One)
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = wrap32((1 << 29) - srdhm(half_denominator, x))
        x = wrap32(x + rescale(srdhm(x, one_minus), 4, 2))
    return x


def _one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    return rescale(_newton_reciprocal_q2(a), 1, 0)


def _one_minus_x_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    return rescale(wrap32(_newton_reciprocal_q2(a) - (1 << 29)), 2, 0)


def logistic(a: int, integer_bits: int) -> int:
    abs_input = a if a > 0 else wrap32(-a)
    if_positive = _one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_input), integer_bits))
    if a == 0:
        return 1 << 30
    return if_positive if a > 0 else wrap32(INT32_MAX - if_positive)


def tanh(a: int, integer_bits: int) -> int:
    n = a if a < 0 else wrap32(-a)
    t = _one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    if a == 0:
        return 0
    return wrap32(-t) if a < 0 else t


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLM's CalculateInputRadius: the largest input magnitude the rescaled fixed-point input can hold."""
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1) * (1 << (total_signed_bits - input_integer_bits))
                          / (1 << input_left_shift))
    return math.floor(max_input_rescaled)
