"""HARD_SWISH (int8), as TFLM's hard_swish_common.cc (HardSwishPrepare) and reference_ops::HardSwish:
int16 fixed point on a 2^7 finer input scale, the "reluish" ramp and the product rescaled. The output
depends on the input byte alone: a 256-entry table, every intermediate wrapped to int16 as the C++ is."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require, require_types
from tinyedge.aot.quant import INT8_MAX, INT8_MIN, quantize_multiplier, zero_point
from tinyedge.ops.opdata import LutData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("HARD_SWISH", "nonlinear"),)
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
INT32_MAX_LESS_OFFSET = (1 << 31) - 1 - (1 << 15)   # DownScaleInt32ToInt16Multiplier's saturation point


def _wrap16(x: int) -> int:
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def _trunc_div(a: int, b: int) -> int:
    return abs(a) // b * (1 if a >= 0 else -1)


def _srdhm16(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul for int16."""
    if a == b == INT16_MIN:
        return INT16_MAX
    ab = a * b
    return _wrap16(_trunc_div(ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14)), 1 << 15))


def _doubling_high_mul16(a: int, b: int) -> int:
    """reference_ops::SaturatingDoublingHighMul: the same without rounding."""
    return INT16_MAX if a == b == INT16_MIN else _wrap16(_trunc_div(a * b, 1 << 15))


def _rdbypot16(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    return _wrap16((x >> exponent) + (1 if (x & mask) > (mask >> 1) + (1 if x < 0 else 0) else 0))


def _saturating_left_shift16(x: int, amount: int) -> int:
    return min(max(x * (1 << amount), INT16_MIN), INT16_MAX)


def _int16_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier then DownScaleInt32ToInt16Multiplier: (Q15 multiplier, exponent)."""
    multiplier, exponent = quantize_multiplier(real)
    if multiplier >= INT32_MAX_LESS_OFFSET:
        return INT16_MAX, exponent
    return (multiplier + (1 << 15)) >> 16, exponent


def prepare(model: TfliteModel, op: Operator) -> LutData:
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT8"})
    inp, out = model.tensors[src], model.tensors[dst]
    hires_input_scale = np.float32(1.0 / 128.0) * np.float32(inp.scale[0])
    out_multiplier, out_exponent = _int16_multiplier(float(hires_input_scale / np.float32(out.scale[0])))
    require(out_exponent <= 0, op, "has an output scale too small for TFLM's int8 HARD_SWISH")
    reluish_multiplier, reluish_exponent = _int16_multiplier(
        float(hires_input_scale / (np.float32(3.0) / np.float32(32768.0))))
    table = []
    for byte in range(INT8_MIN, INT8_MAX + 1):
        hires = _wrap16(_wrap16(byte - zero_point(inp)) * (1 << 7))
        preshift = _srdhm16(hires, out_multiplier)
        reluish = hires
        if reluish_exponent > 0:
            reluish = _saturating_left_shift16(reluish, reluish_exponent - 1)
        reluish = _srdhm16(reluish, reluish_multiplier)
        if reluish_exponent > 0:
            reluish = _saturating_left_shift16(reluish, 1)
        if reluish_exponent < 0:
            reluish = _rdbypot16(reluish, -reluish_exponent)
        reluish = _wrap16((reluish + (1 << 15)) >> 1)
        value = _wrap16(_rdbypot16(_doubling_high_mul16(reluish, preshift), -out_exponent) + zero_point(out))
        table.append(min(max(value, INT8_MIN), INT8_MAX))
    return LutData(tuple(table))
