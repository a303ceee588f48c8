"""LOGISTIC (int8), as TFLM's logistic_common.cc and reference_integer_ops::Logistic: an int8 result
depends on the input byte alone, so the op is a 256-entry table of gemmlowp's fixed-point logistic, run at
generation time integer for integer (te_lut_s8). `q4_table` is TANH's too."""

from __future__ import annotations

import math
from typing import Callable

from tinyedge.aot.lowering import require_types
from tinyedge.aot.quant import INT8_MAX, INT8_MIN, round_half_away, tensor_scale, zero_point
from tinyedge.errors import TinyedgeError
from tinyedge.ops.fixedpoint import calculate_input_radius, logistic, multiply_by_quantized_multiplier, rdbypot, wrap32
from tinyedge.ops.opdata import LutData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("LOGISTIC", "nonlinear"),)
LOGISTIC_TANH_INPUT_INTEGER_BITS = 4


def frexp_multiplier(real: float) -> tuple[int, int]:
    """The frexp-based multiplier of LOGISTIC/TANH Prepare, cast to int32 as the C++ does (no renormalising)."""
    significand, shift = math.frexp(real)
    multiplier = round_half_away(significand * (1 << 31))
    return wrap32(multiplier), shift


def q4_table(input_scale: float, input_zero_point: int, function: Callable[[int], int], output_shift: int,
             output_offset: int) -> list[int]:
    """An int8 LOGISTIC or TANH for every input byte -128..127: the input rescaled to Q4.27, `function`,
    the result shifted to the output's scale."""
    real = input_scale * float(1 << (31 - LOGISTIC_TANH_INPUT_INTEGER_BITS))
    multiplier, left_shift = frexp_multiplier(real)
    radius = calculate_input_radius(LOGISTIC_TANH_INPUT_INTEGER_BITS, left_shift, 31)
    table = []
    for byte in range(INT8_MIN, INT8_MAX + 1):
        value = byte - input_zero_point
        if value <= -radius:
            table.append(INT8_MIN)
        elif value >= radius:
            table.append(INT8_MAX)
        else:
            q4 = multiply_by_quantized_multiplier(value, multiplier, left_shift)
            out = rdbypot(function(q4), output_shift) + output_offset
            table.append(min(max(out, INT8_MIN), INT8_MAX))
    return table


def logistic_table(input_scale: float, input_zero_point: int) -> list[int]:
    """reference_integer_ops::Logistic (int8) for every input byte -128..127."""
    return q4_table(input_scale, input_zero_point, lambda q4: logistic(q4, LOGISTIC_TANH_INPUT_INTEGER_BITS),
                    output_shift=31 - 8, output_offset=-128)


def prepare(model: TfliteModel, op: Operator) -> LutData:
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT8"})
    if zero_point(model.tensors[dst]) != -128:
        raise TinyedgeError(f"LOGISTIC (operator {op.index}) output zero point is not -128, which TFLM's int8 logistic "
                            "requires: convert the model with the standard TFLite converter.")
    inp = model.tensors[src]
    return LutData(tuple(logistic_table(tensor_scale(inp), zero_point(inp))))
