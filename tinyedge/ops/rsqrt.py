"""RSQRT (int8), as TFLM's elementwise.cc: PrepareAbsRsqrt's multiplier (1 / (sqrtf(input scale) x output
scale), in double) and RsqrtEvalQuantized: gemmlowp's Newton-Raphson inverse square root of the offset
input (GetInvSqrtQuantizedMultiplierExp), scaled by 2^20 and back. The output depends on the input byte
alone: a 256-entry table. An input below the zero point, where TFLM stops the inference ("Rsqrt is only
defined for positive values"), gives 127, as zero does."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require_types
from tinyedge.aot.quant import INT8_MAX, INT8_MIN, quantize_multiplier, zero_point
from tinyedge.ops.fixedpoint import INT32_MAX, multiply_by_quantized_multiplier, rdbypot, sat_shl, srdhm, wrap32
from tinyedge.ops.opdata import LutData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("RSQRT", "nonlinear"),)
SHIFT = 20                       # RsqrtEvalQuantized's kShift
_HALF_THREE_Q3 = (1 << 28) + (1 << 27)
_HALF_SQRT_2_Q0 = 1518500250


def inv_sqrt_quantized_multiplier_exp(value: int, reverse_shift: int = -1) -> tuple[int, int]:
    """GetInvSqrtQuantizedMultiplierExp (kernels/internal/common.h) of a positive int32: 1/sqrt(value) as
    (Q31 multiplier, shift), in gemmlowp's F3 fixed point (te_elementwise.c's te_inv_sqrt is the C)."""
    if value <= 1:
        return INT32_MAX, 0
    shift = 11
    while value >= 1 << 29:
        value //= 4
        shift += 1
    left_shift_bit_pairs = (32 - value.bit_length() - 1) // 2 - 1
    shift -= left_shift_bit_pairs
    value <<= 2 * left_shift_bit_pairs
    half_input = rdbypot(value >> 1, 1)
    x = 1 << 28                   # F3 one
    for _ in range(5):
        x3 = sat_shl(srdhm(srdhm(x, x), x), 6)
        x = sat_shl(wrap32(srdhm(_HALF_THREE_Q3, x) - srdhm(half_input, x3)), 3)
    x = srdhm(x, _HALF_SQRT_2_Q0)
    if shift < 0:
        x, shift = wrap32(x << -shift), 0
    return x, shift * reverse_shift


def prepare(model: TfliteModel, op: Operator) -> LutData:
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT8"})
    inp, out = model.tensors[src], model.tensors[dst]
    root = np.sqrt(np.float32(inp.scale[0])) * np.float32(out.scale[0])
    multiplier, shift = quantize_multiplier(1.0 / float(root))
    table = []
    for byte in range(INT8_MIN, INT8_MAX + 1):
        value = byte - zero_point(inp)
        if value <= 0:
            table.append(INT8_MAX)
            continue
        inv_multiplier, inv_shift = inv_sqrt_quantized_multiplier_exp(value)
        scaled = multiply_by_quantized_multiplier(1, inv_multiplier, inv_shift + SHIFT)
        result = multiply_by_quantized_multiplier(scaled, multiplier, shift - SHIFT) + zero_point(out)
        table.append(min(max(result, INT8_MIN), INT8_MAX))
    return LutData(tuple(table))
