"""MAXIMUM and MINIMUM (int8 and int16), as TFLM's maximum_minimum.cc: the raw values compared (no rescaling:
the converter gives inputs and output one quantization), over a broadcast walk (te_maxmin_s8, te_maxmin_s16)."""

from __future__ import annotations

from tinyedge.aot.lowering import require_types
from tinyedge.ops.broadcast import broadcast_geometry
from tinyedge.ops.opdata import BroadcastData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("MAXIMUM", "nonlinear"), OpSupport("MINIMUM", "nonlinear"))


def prepare(model: TfliteModel, op: Operator) -> BroadcastData:
    a, b, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    kind = "INT16" if model.tensors[a].type_name == "INT16" else "INT8"
    require_types(model, op, {a: kind, b: kind, dst: kind})
    geometry = broadcast_geometry(*(model.tensors[i].shape for i in (a, b, dst)))
    kernel = "maxmin_s16" if kind == "INT16" else "maxmin_s8"
    return BroadcastData(kernel, tuple(geometry), flag=int(op.opcode == "MAXIMUM"))
