"""SUB (int8), as TFLM's sub_common.cc: ADD's rescalings (left shift 20, both inputs on twice the larger
scale) with the second scaled input subtracted, over a broadcast walk (te_nonlinear.c's te_sub_s8)."""

from __future__ import annotations

from tinyedge.ops.add import add_parameters
from tinyedge.ops.broadcast import int8_operands, walk
from tinyedge.ops.opdata import BroadcastData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SUB", "nonlinear"),)


def prepare(model: TfliteModel, op: Operator) -> BroadcastData:
    tensors = int8_operands(model, op)
    return BroadcastData("sub_s8", walk(tensors), "te_add_params_t", tuple(add_parameters(*tensors, op.activation)))
