"""TRANSPOSE (8-bit), as TFLM's transpose.cc (e.g. NHWC back to NCHW before an ONNX model's Flatten): the
output walked in order, the input with its strides permuted (a gather, te_transpose)."""

from __future__ import annotations

import math

import numpy as np

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import GatherData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("TRANSPOSE", "core", ("int8", "uint8")),)


def prepare(model: TfliteModel, op: Operator) -> GatherData:
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    perm = model.tensors[op.inputs[1]].data
    require(perm is not None and len(in_t.shape) <= 4 and in_t.dtype.itemsize == 1 and not in_t.is_constant, op,
            "has a computed permutation, more than 4 dimensions, wider than 8-bit or constant data")
    rank, lead = len(in_t.shape), 4 - len(in_t.shape)
    axes = [int(p) % rank for p in np.asarray(perm).ravel()]
    in_strides = [math.prod(in_t.shape[k + 1:]) for k in range(rank)]
    out_dims = [int(in_t.shape[p]) for p in axes]
    require(out_dims == [int(d) for d in out_t.shape], op, "has an output shape that is not its permuted input")
    return GatherData(tuple([1] * lead + out_dims), tuple([0] * lead + [in_strides[p] for p in axes]), 0)
