"""PACK (any type), as TFLM's pack.cc: the inputs stacked along a new `axis`; byte copies, input k into
every `len(inputs)`-th block of the output."""

from __future__ import annotations

import math

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import BlockCopy, BlockCopyData
from tinyedge.ops.split import COPY_VARIANTS, require_copyable
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("PACK", "shape", COPY_VARIANTS, viper_variants=("int8",)),)


def prepare(model: TfliteModel, op: Operator) -> BlockCopyData:
    require_copyable(model, op, op.inputs)
    out_t = model.tensors[op.outputs[0]]
    axis = int(op.options.axis) % len(out_t.shape)
    shape = [int(d) for d in model.tensors[op.inputs[0]].shape]
    require(all(list(model.tensors[i].shape) == shape for i in op.inputs), op, "stacks inputs of different shapes")
    outer, block = math.prod(shape[:axis]), math.prod(shape[axis:]) * out_t.dtype.itemsize
    count = len(op.inputs)
    return BlockCopyData(tuple(BlockCopy(0, k, outer, block, k * block, count * block, 0, block) for k in range(count)))
