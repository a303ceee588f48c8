"""REDUCE_MAX and REDUCE_MIN (int8), as TFLM's reduce_common.cc (EvalMinMaxHelper): the input and the
output share scale and zero point (TFLM refuses the op otherwise), so the result is the largest or
smallest input byte over the reduced axes, keep_dims or not (the same bytes either way)."""

from __future__ import annotations

import math

import numpy as np

from tinyedge.aot.lowering import require, require_types
from tinyedge.ops.mean import mean_geometry
from tinyedge.ops.opdata import ReduceData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("REDUCE_MAX", "nonlinear"),
            OpSupport("REDUCE_MIN", "nonlinear"))


def prepare(model: TfliteModel, op: Operator) -> ReduceData:
    src, axes_index, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT8"})
    inp, out, axes = model.tensors[src], model.tensors[dst], model.tensors[axes_index]
    require(axes.data is not None, op, "takes its axes at run time")
    require((float(inp.scale[0]), int(inp.zero_point[0])) == (float(out.scale[0]), int(out.zero_point[0])), op,
            "has an output quantized unlike its input")
    geometry = mean_geometry(inp.shape, [int(a) for a in np.asarray(axes.data).reshape(-1)])
    require(math.prod(geometry.kept_sizes) == out.size, op, "has an output shape its axes do not give")
    table = (len(geometry.kept_sizes), len(geometry.reduced_sizes), *geometry.kept_sizes, *geometry.kept_strides,
             *geometry.reduced_sizes, *geometry.reduced_strides)
    return ReduceData(table, op.opcode == "REDUCE_MAX")
