"""STRIDED_SLICE (8-bit), as TFLM's strided_slice.cc with TensorFlow's begin/end/stride semantics (the
begin, end and shrink masks; Python's slicing clamps the same way): a gather from an offset with the
strides scaled (te_transpose walks it)."""

from __future__ import annotations

import math

import numpy as np

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import GatherData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("STRIDED_SLICE", "core", ("int8", "uint8")),)


def gather(op: Operator, shape: tuple[int, ...], starts: list[int], counts: list[int], steps: list[int],
           out_size: int) -> GatherData:
    """The 4-D gather that reads counts[k] elements from starts[k], steps[k] apart, along each axis."""
    require(len(shape) <= 4, op, "has more than 4 dimensions")
    require(math.prod(counts) == out_size and out_size > 0, op, "has an output that is empty or not its slice")
    strides = [math.prod(shape[k + 1:]) for k in range(len(shape))]
    lead = 4 - len(shape)
    return GatherData(tuple([1] * lead + counts), tuple([0] * lead + [steps[k] * strides[k] for k in range(len(shape))]),
                      sum(starts[k] * strides[k] for k in range(len(shape))))


def _constant(model: TfliteModel, op: Operator, position: int) -> list[int]:
    data = model.tensors[op.inputs[position]].data
    require(data is not None, op, "has a begin, end or stride computed at run time")
    return [int(v) for v in np.asarray(data).ravel()]


def prepare(model: TfliteModel, op: Operator) -> GatherData:
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    o = op.options
    require(not (int(o.ellipsisMask) or int(o.newAxisMask) or bool(getattr(o, "offset", False))), op,
            "has an ellipsis or new-axis mask or offsets")
    begin, end, stride = (_constant(model, op, k) for k in (1, 2, 3))
    starts, counts, steps = [], [], []
    for axis, size in enumerate(in_t.shape):
        if axis >= len(begin):
            starts, counts, steps = starts + [0], counts + [size], steps + [1]
            continue
        if int(o.shrinkAxisMask) >> axis & 1:
            index = begin[axis] + size if begin[axis] < 0 else begin[axis]
            starts, counts, steps = starts + [index], counts + [1], steps + [1]
            continue
        start = None if int(o.beginMask) >> axis & 1 else begin[axis]
        stop = None if int(o.endMask) >> axis & 1 else end[axis]
        picked = range(size)[slice(start, stop, stride[axis])]
        starts.append(picked.start if len(picked) else 0)
        counts.append(len(picked))
        steps.append(stride[axis])
    return gather(op, tuple(in_t.shape), starts, counts, steps, out_t.size)
