"""The broadcast walk of the binary elementwise ops (ADD, SUB, MUL, PRELU, MAXIMUM, MINIMUM, and their int16
variants): {ndim, sizes, a_strides, b_strides} as te_nonlinear.h's kernels read it."""

from __future__ import annotations

import math

from tinyedge.aot.lowering import require_types
from tinyedge.errors import TinyedgeError
from tinyedge.ops.cstructs import LIMITS
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

MAX_DIMS = LIMITS["TE_NL_MAX_DIMS"]


def broadcast_geometry(a_shape: tuple[int, ...], b_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[int]:
    """{ndim, sizes, a_strides, b_strides} for te_add_s8/te_mul_s8, with unit dims dropped and
    neighbouring dims merged wherever both operands stay contiguous across them."""
    rank = max(len(a_shape), len(b_shape), len(out_shape))
    sizes = [1] * (rank - len(out_shape)) + list(out_shape)
    operands = []
    for shape in (a_shape, b_shape):
        padded = [1] * (rank - len(shape)) + list(shape)
        strides = []
        for d in range(rank):
            if padded[d] not in (1, sizes[d]):
                raise TinyedgeError(f"shapes {a_shape} and {b_shape} do not broadcast to {out_shape}: "
                                    "fix the model's elementwise operands.")
            strides.append(0 if padded[d] == 1 else math.prod(padded[d + 1:]))
        operands.append(strides)
    dims: list[list[int]] = []  # [size, a_stride, b_stride]
    for d in range(rank):
        if sizes[d] == 1:
            continue
        a_stride, b_stride = operands[0][d], operands[1][d]
        if dims and dims[-1][1] == a_stride * sizes[d] and dims[-1][2] == b_stride * sizes[d]:
            dims[-1] = [dims[-1][0] * sizes[d], a_stride, b_stride]
        else:
            dims.append([sizes[d], a_stride, b_stride])
    if not dims:
        dims = [[1, 0, 0]]
    if len(dims) > MAX_DIMS:
        raise TinyedgeError(f"broadcasting {a_shape} with {b_shape} needs more than {MAX_DIMS} dimensions in the AOT "
                            "runtime: reshape the operands to fewer dimensions first.")
    return [len(dims), *[d[0] for d in dims], *[d[1] for d in dims], *[d[2] for d in dims]]


def int8_operands(model: TfliteModel, op: Operator) -> tuple[Tensor, Tensor, Tensor]:
    """A binary elementwise op's two inputs and output, refused unless all are int8."""
    a, b, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    require_types(model, op, {a: "INT8", b: "INT8", dst: "INT8"})
    return model.tensors[a], model.tensors[b], model.tensors[dst]


def walk(tensors: tuple[Tensor, Tensor, Tensor]) -> tuple[int, ...]:
    """The broadcast walk of the op whose inputs and output these are."""
    return tuple(broadcast_geometry(*(t.shape for t in tensors)))
