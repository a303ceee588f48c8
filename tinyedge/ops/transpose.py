"""TRANSPOSE (8-bit; int16 in tinyedge.aot.int16), as TFLM's transpose.cc (e.g. NHWC back to NCHW before an ONNX model's Flatten): the
output walked in order, the input with its strides permuted (a gather, te_transpose)."""

from __future__ import annotations

import math

import numpy as np

from tinyedge.aot.lowering import require
from tinyedge.ops.cstructs import TE_DIM_MAX
from tinyedge.ops.opdata import GatherData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("TRANSPOSE", "core", ("int8", "uint8")),)


def simplified(shape: list[int], axes: list[int], largest: int = TE_DIM_MAX) -> tuple[list[int], list[int]]:
    """The same permutation over fewer dimensions: size-1 dimensions dropped and input dimensions that stay
    neighbours in the output merged (ShuffleNet's 5-D channel shuffle is a 3-D transpose), while a merged
    dimension stays within `largest` (the kernels' te_dim)."""
    order = [a for a in axes if shape[a] != 1]
    if not order:
        return [1], [0]
    runs: list[list[int]] = []
    for axis in order:
        if runs and axis == runs[-1][-1] + 1 and math.prod(shape[a] for a in runs[-1]) * shape[axis] <= largest:
            runs[-1].append(axis)
        else:
            runs.append([axis])
    by_input = sorted(runs, key=lambda run: run[0])
    sizes = [math.prod(shape[a] for a in run) for run in by_input]
    position = {run[0]: index for index, run in enumerate(by_input)}
    return sizes, [position[run[0]] for run in runs]


def prepare(model: TfliteModel, op: Operator) -> GatherData:
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    perm = model.tensors[op.inputs[1]].data
    require(perm is not None and in_t.dtype.itemsize in (1, 2) and not in_t.is_constant, op,
            "has a computed permutation, is wider than 16-bit or reads constant data")
    rank = len(in_t.shape)
    axes = [int(p) % rank for p in np.asarray(perm).ravel()]
    require([int(in_t.shape[p]) for p in axes] == [int(d) for d in out_t.shape], op,
            "has an output shape that is not its permuted input")
    shape, axes = simplified([int(d) for d in in_t.shape], axes)
    require(len(shape) <= 4 and max(shape) <= TE_DIM_MAX, op,
            f"permutes {len(shape)} dimensions (largest {max(shape):,}) that cannot be merged into 4 of at most "
            f"{TE_DIM_MAX:,}")
    rank, lead = len(shape), 4 - len(shape)
    in_strides = [math.prod(shape[k + 1:]) for k in range(rank)]
    out_dims = [shape[p] for p in axes]
    return GatherData(tuple([1] * lead + out_dims), tuple([0] * lead + [in_strides[p] for p in axes]), 0)
