"""SPLIT and SPLIT_V (any type), as TFLM's split.cc and split_v.cc: the input cut along `axis` into the
outputs' sizes, in order; byte copies (TFLM neither requantizes nor checks the outputs' quantization)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import BlockCopy, BlockCopyData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

# Every type TFLM's copies take is a byte copy here; the registry names the variants the tests run.
COPY_VARIANTS = ("int8", "int16")

SUPPORTS = (OpSupport("SPLIT", "shape", COPY_VARIANTS, viper_variants=("int8",)),
            OpSupport("SPLIT_V", "shape", COPY_VARIANTS, viper_variants=("int8",)))


def require_copyable(model: TfliteModel, op: Operator, data: Sequence[int]) -> None:
    """The op's data tensors (inputs `data` and every output) are activations of one type."""
    tensors = [model.tensors[i] for i in list(data) + list(op.outputs)]
    require(len({t.type_name for t in tensors}) == 1, op, "mixes tensor types")
    require(not any(t.is_constant for t in tensors), op, "copies constant data")


def axis_of(model: TfliteModel, op: Operator, position: int, rank: int) -> int:
    axis_t = model.tensors[op.inputs[position]]
    require(axis_t.data is not None, op, "takes its axis at run time")
    return int(np.asarray(axis_t.data).ravel()[0]) % rank


def split_along(model: TfliteModel, op: Operator, source: int, axis: int, sizes: Sequence[int]) -> BlockCopyData:
    """Output k takes sizes[k] consecutive slices along `axis` of input `source` (a position in op.inputs)."""
    in_t = model.tensors[op.inputs[source]]
    require_copyable(model, op, [op.inputs[source]])
    shape = [int(d) for d in in_t.shape]
    require(sum(sizes) == shape[axis] and len(sizes) == len(op.outputs), op, "has outputs that do not tile its input")
    outer, inner = math.prod(shape[:axis]), math.prod(shape[axis + 1:]) * in_t.dtype.itemsize
    copies, start = [], 0
    for position, size in enumerate(sizes):
        copies.append(BlockCopy(position, source, outer, size * inner, 0, size * inner, start * inner,
                                shape[axis] * inner))
        start += size
    return BlockCopyData(tuple(copies))


def prepare(model: TfliteModel, op: Operator) -> BlockCopyData:
    source = 1 if op.opcode == "SPLIT" else 0
    rank = len(model.tensors[op.inputs[source]].shape)
    axis = axis_of(model, op, 0 if op.opcode == "SPLIT" else 2, rank)
    return split_along(model, op, source, axis, [int(model.tensors[i].shape[axis]) for i in op.outputs])
