"""RELU_N1_TO_1 (int8), as TFLite's activations.cc (tflite-micro has no kernel for it: TFLite's interpreter
is this op's stated reference): ReluPrepare's rescaling (QuantizeMultiplier of the double scale ratio) and
QuantizedReluX's clamp to [-1, 1] quantized with the output's scale (roundf). A 256-entry table."""

from __future__ import annotations

from tinyedge.aot.quant import INT8_MAX, INT8_MIN, quantize_multiplier, zero_point
from tinyedge.ops.fixedpoint import multiply_by_quantized_multiplier
from tinyedge.ops.float_lut import F32, require_int8, round_half_away_f32
from tinyedge.ops.opdata import LutData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("RELU_N1_TO_1", "nonlinear", reference="tflite"),)


def prepare(model: TfliteModel, op: Operator) -> LutData:
    src, dst = op.inputs[0], op.outputs[0]
    require_int8(model, op)
    inp, out = model.tensors[src], model.tensors[dst]
    multiplier, shift = quantize_multiplier(float(F32(inp.scale[0])) / float(F32(out.scale[0])))
    lower = max(INT8_MIN, zero_point(out) + round_half_away_f32(F32(-1) / F32(out.scale[0])))
    upper = min(INT8_MAX, zero_point(out) + round_half_away_f32(F32(1) / F32(out.scale[0])))
    return LutData(tuple(
        min(max(zero_point(out) + multiply_by_quantized_multiplier(x - zero_point(inp), multiplier, shift), lower), upper)
        for x in range(INT8_MIN, INT8_MAX + 1)))
