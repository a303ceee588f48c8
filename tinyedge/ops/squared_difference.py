"""SQUARED_DIFFERENCE (int8), as TFLM's squared_difference.cc: PrepareQuantized (left shift 7, both inputs
on twice the larger scale, the output multiplier from its square) and SquaredDifference<int8_t>, over a
broadcast walk (te_nonlinear.c's te_squared_difference_s8, with ADD's parameter struct)."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require_types
from tinyedge.ops.add import quantize_multiplier_smaller_than_one
from tinyedge.ops.broadcast import broadcast_geometry
from tinyedge.aot.quant import INT8_MAX, INT8_MIN, quantize_multiplier, zero_point
from tinyedge.ops.opdata import BroadcastData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SQUARED_DIFFERENCE", "nonlinear"),)
LEFT_SHIFT = 7


def parameters(model: TfliteModel, op: Operator, left_shift: int = LEFT_SHIFT,
               limits: tuple[int, int] = (INT8_MIN, INT8_MAX)) -> tuple[int, ...]:
    """PrepareQuantized's rescalings in te_add_params_t's order (int16: left shift 0, the int16 limits)."""
    tensors = [model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0])]
    a_scale, b_scale, out_scale = (np.float32(t.scale[0]) for t in tensors)
    twice_max_input_scale = 2.0 * float(max(a_scale, b_scale))
    a_multiplier, a_shift = quantize_multiplier_smaller_than_one(float(a_scale) / twice_max_input_scale)
    b_multiplier, b_shift = quantize_multiplier_smaller_than_one(float(b_scale) / twice_max_input_scale)
    out_multiplier, out_shift = quantize_multiplier(
        twice_max_input_scale * twice_max_input_scale / float(np.float32(1 << (2 * left_shift)) * out_scale))
    return (-zero_point(tensors[0]), a_multiplier, a_shift, -zero_point(tensors[1]), b_multiplier, b_shift,
            left_shift, out_multiplier, out_shift, zero_point(tensors[2]), *limits)


def prepare(model: TfliteModel, op: Operator) -> BroadcastData:
    a, b, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    require_types(model, op, {a: "INT8", b: "INT8", dst: "INT8"})
    shapes = [model.tensors[i].shape for i in (a, b, dst)]
    return BroadcastData("squared_difference_s8", tuple(broadcast_geometry(*shapes)), "te_add_params_t",
                         parameters(model, op))
