"""ARG_MAX and ARG_MIN (int8 in, int32 out), as TFLM's arg_min_max.cc: along one constant axis, the index
of the first largest (smallest) value (a strict comparison: ties keep the first). A model exported with
its argmax (a classifier's label, a segmentation map) ends this way."""

from __future__ import annotations

import math

import numpy as np

from tinyedge.aot.lowering import require, require_types
from tinyedge.ops.opdata import ArgData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("ARG_MAX", "nonlinear", ("int8->int32",), viper_variants=("int8->int32",)),
            OpSupport("ARG_MIN", "nonlinear", ("int8->int32",), viper_variants=("int8->int32",)))


def prepare(model: TfliteModel, op: Operator) -> ArgData:
    src, axis_index, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT32"})
    axis_t = model.tensors[axis_index]
    require(axis_t.data is not None and np.asarray(axis_t.data).size == 1, op, "takes its axis at run time")
    shape = [int(d) for d in model.tensors[src].shape]
    axis = int(np.asarray(axis_t.data).ravel()[0]) % len(shape)
    outer, inner = math.prod(shape[:axis]), math.prod(shape[axis + 1:])
    require(outer * inner == model.tensors[dst].size, op, "has an output shape its axis does not give")
    return ArgData(outer, shape[axis], inner, op.opcode == "ARG_MAX")
