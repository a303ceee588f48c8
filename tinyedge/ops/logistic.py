"""LOGISTIC (int8, int16), as TFLM's logistic_common.cc and reference_integer_ops::Logistic: an int8 result
depends on the input byte alone, so the op is a 256-entry table of gemmlowp's fixed-point logistic, run at
generation time integer for integer (te_lut_s8); int16 interpolates TFLM's sigmoid table after rescaling
the input to 1/(3*4096) (te_int16.c's te_logistic_s16). `q4_table` and `sigmoid_scaling` are TANH's too."""

from __future__ import annotations

import math
from typing import Callable

from tinyedge.aot.lowering import require_types
from tinyedge.aot.quant import INT8_MAX, INT8_MIN, checked_log2, round_half_away, tensor_scale, zero_point
from tinyedge.errors import TinyedgeError
from tinyedge.ops.fixedpoint import calculate_input_radius, logistic, multiply_by_quantized_multiplier, rdbypot, wrap32
from tinyedge.ops.lstm import sigmoid_table
from tinyedge.ops.opdata import LutData, SigmoidTableData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("LOGISTIC", "nonlinear", ("int8", "int16")),)
LOGISTIC_TANH_INPUT_INTEGER_BITS = 4
INT16_INPUT_INTEGER_BITS = 3
INT16_OUTPUT_FRACTIONAL_BITS = 15


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


def sigmoid_scaling(model: TfliteModel, op: Operator, power_of_two_shifts: tuple[int, ...]) -> tuple[int, int]:
    """LOGISTIC/TANH int16 Prepare: (input_multiplier, input_left_shift); multiplier 0 when the input scale
    is a power of two whose left shift is one of `power_of_two_shifts`."""
    inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    require_types(model, op, {op.inputs[0]: "INT16", op.outputs[0]: "INT16"})
    out_log2, out_power_of_two = checked_log2(tensor_scale(out))
    if zero_point(inp) or zero_point(out) or not out_power_of_two or out_log2 != -INT16_OUTPUT_FRACTIONAL_BITS:
        raise TinyedgeError(f"{op.opcode} (operator {op.index}) has int16 tensors with a zero point or an output scale "
                            "other than 0 and 2^-15, which TFLM's int16 kernel requires: convert the model with the "
                            "standard TFLite converter.")
    log2, power_of_two = checked_log2(tensor_scale(inp))
    left_shift = (15 - INT16_INPUT_INTEGER_BITS) + log2
    if power_of_two and left_shift in power_of_two_shifts:
        return 0, left_shift
    multiplier, left_shift = tensor_scale(inp) * 4096.0 * 3.0, 0
    while multiplier <= 32767.0 / 2.0 and left_shift <= 30:
        left_shift += 1
        multiplier *= 2.0
    return int(multiplier), left_shift


def prepare(model: TfliteModel, op: Operator) -> LutData | SigmoidTableData:
    src, dst = op.inputs[0], op.outputs[0]
    if model.tensors[src].type_name == "INT16":
        return SigmoidTableData("logistic_s16", *sigmoid_scaling(model, op, (0,)), sigmoid_table())
    require_types(model, op, {src: "INT8", dst: "INT8"})
    if zero_point(model.tensors[dst]) != -128:
        raise TinyedgeError(f"LOGISTIC (operator {op.index}) output zero point is not -128, which TFLM's int8 logistic "
                            "requires: convert the model with the standard TFLite converter.")
    inp = model.tensors[src]
    return LutData(tuple(logistic_table(tensor_scale(inp), zero_point(inp))))
