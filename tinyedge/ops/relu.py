"""RELU and RELU6 (int8), as TFLM's activations.cc: RELU requantizes (CalculateReluOpData; int16 in tinyedge.aot.int16), RELU6 clamps
the raw input between its zero point and 6.0 quantized with the input's scale (Relu6Prepare). Both
depend on the input byte alone: a 256-entry table."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require_types
from tinyedge.aot.quant import INT8_MAX, INT8_MIN, quantize_multiplier, round_half_away, zero_point
from tinyedge.ops.fixedpoint import multiply_by_quantized_multiplier
from tinyedge.ops.opdata import LutData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("RELU", "nonlinear"), OpSupport("RELU6", "nonlinear"))
BYTES = range(INT8_MIN, INT8_MAX + 1)


def _f32(x) -> np.float32:
    return np.float32(x)


def _clamp(x: int, lo: int = INT8_MIN, hi: int = INT8_MAX) -> int:
    return min(max(x, lo), hi)


def prepare(model: TfliteModel, op: Operator) -> LutData:
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT8"})
    inp, out = model.tensors[src], model.tensors[dst]
    if op.opcode == "RELU6":
        lower = zero_point(inp)
        upper = _clamp(round_half_away(float(_f32(6.0) / _f32(inp.scale[0]))) + zero_point(inp))
        return LutData(tuple(_clamp(x, lower, upper) for x in BYTES))
    # The scales' quotient in double, as tflite-micro's interpreter computes it (float32 rounds some ties the other way).
    multiplier, shift = quantize_multiplier(float(_f32(inp.scale[0])) / float(_f32(out.scale[0])))
    act_min = max(INT8_MIN, zero_point(out))
    return LutData(tuple(
        _clamp(zero_point(out) + multiply_by_quantized_multiplier(x - zero_point(inp), multiplier, shift), act_min)
        for x in BYTES))
