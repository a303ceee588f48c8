"""CONCATENATION (any type), as TFLM's concatenation.cc: each input's block of every outer step copied into
its column of the output row (te_kernels.c's te_copy_blocks, te_copy_blocks_const for a constant input)."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import ConcatData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("CONCATENATION", "core", ("int8", "uint8", "int16", "int32")),)


def prepare(model: TfliteModel, op: Operator) -> ConcatData:
    out_t = model.tensors[op.outputs[0]]
    require(op.activation == "NONE", op, "has a fused activation")
    axis = int(op.options.axis) % len(out_t.shape)
    outer = int(np.prod(out_t.shape[:axis], dtype=np.int64))
    row = int(np.prod(out_t.shape[axis:], dtype=np.int64)) * out_t.dtype.itemsize
    blocks = tuple(int(np.prod(model.tensors[i].shape[axis:], dtype=np.int64)) * model.tensors[i].dtype.itemsize
                   for i in op.inputs)
    return ConcatData(outer, row, blocks)
