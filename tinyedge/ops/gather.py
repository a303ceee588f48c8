"""GATHER (8-bit data, constant indices), as TFLM's gather.cc: along `axis`, the slices the indices name,
each a row of the dimensions after the axis."""

from __future__ import annotations

import math

import numpy as np

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import RowGatherData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("GATHER", "core", ("int8", "uint8 (constant indices)")),)


def prepare(model: TfliteModel, op: Operator) -> RowGatherData:
    data_t, indices_t = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]]
    require(indices_t.data is not None and data_t.dtype.itemsize == 1, op,
            "takes its indices at run time or gathers data wider than 8-bit")
    require(int(getattr(op.options, "batchDims", 0)) == 0, op, "has batch dimensions")
    shape = [int(d) for d in data_t.shape]
    axis = int(op.options.axis) % len(shape)
    indices = [int(i) for i in np.asarray(indices_t.data).ravel()]
    require(all(0 <= i < shape[axis] for i in indices), op, "has indices outside its data")
    outer = math.prod(shape[:axis])
    return RowGatherData(tuple(o * shape[axis] + i for o in range(outer) for i in indices),
                         math.prod(shape[axis + 1:]))
