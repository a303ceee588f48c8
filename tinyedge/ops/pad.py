"""PAD and PADV2 (int8), as TFLM's pad.cc: a 4-D pad with constant paddings and the pad value (PADV2's
constant, else the output's zero point)."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require, require_types
from tinyedge.ops.opdata import PadData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

SUPPORTS = (OpSupport("PAD", "core"), OpSupport("PADV2", "core"))   # int16: tinyedge.aot.int16


def prepare(model: TfliteModel, op: Operator) -> PadData:
    require_types(model, op, {op.inputs[0]: "INT8", op.outputs[0]: "INT8"})
    return geometry(model, op, model.tensors[op.inputs[0]], model.tensors[op.outputs[0]])


def geometry(model: TfliteModel, op: Operator, in_t: Tensor, out_t: Tensor) -> PadData:
    """The pad of any element type (the int16 variant's too: tinyedge.aot.int16)."""
    paddings = model.tensors[op.inputs[1]].data
    require(paddings is not None and len(in_t.shape) <= 4, op, "has computed paddings or more than 4 dimensions")
    lead = 4 - len(in_t.shape)
    value = int(out_t.zero_point[0])
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        constant = model.tensors[op.inputs[2]].data
        require(constant is not None, op, "has a computed pad value")
        value = int(np.asarray(constant).ravel()[0])
    return PadData(tuple([1] * lead + [int(d) for d in in_t.shape]), tuple([1] * lead + [int(d) for d in out_t.shape]),
                   tuple([0] * lead + [int(p[0]) for p in np.asarray(paddings).reshape(-1, 2)]), value)
