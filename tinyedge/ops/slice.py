"""SLICE (8-bit), as TFLM's slice.cc: `size` elements (-1: to the end) from `begin` along each axis,
a gather from an offset (te_transpose walks it)."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import GatherData
from tinyedge.ops.strided_slice import gather
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SLICE", "core", ("int8", "uint8")),)


def prepare(model: TfliteModel, op: Operator) -> GatherData:
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    begin_t, size_t = model.tensors[op.inputs[1]], model.tensors[op.inputs[2]]
    require(begin_t.data is not None and size_t.data is not None, op, "has a begin or size computed at run time")
    begin = [int(v) for v in np.asarray(begin_t.data).ravel()]
    sizes = [int(v) for v in np.asarray(size_t.data).ravel()]
    counts = [dim - start if size == -1 else size for dim, start, size in zip(in_t.shape, begin, sizes)]
    return gather(op, tuple(in_t.shape), begin, counts, [1] * len(counts), out_t.size)
