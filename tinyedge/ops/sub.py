"""SUB (int8), as TFLM's sub_common.cc: ADD's rescalings (left shift 20, both inputs on twice the larger
scale) with the second scaled input subtracted, over a broadcast walk (te_nonlinear.c's te_sub_s8)."""

from __future__ import annotations

from tinyedge.aot.lowering import require_types
from tinyedge.ops.add import add_parameters
from tinyedge.ops.broadcast import broadcast_geometry
from tinyedge.ops.opdata import BroadcastData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SUB", "nonlinear"),)


def prepare(model: TfliteModel, op: Operator) -> BroadcastData:
    a, b, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    require_types(model, op, {a: "INT8", b: "INT8", dst: "INT8"})
    tensors = [model.tensors[i] for i in (a, b, dst)]
    return BroadcastData("sub_s8", tuple(broadcast_geometry(*(t.shape for t in tensors))), "te_add_params_t",
                         tuple(add_parameters(*tensors, op.activation)))
