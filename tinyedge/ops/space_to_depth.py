"""SPACE_TO_DEPTH (8-bit, NHWC, batch 1), as TFLM's space_to_depth.cc: output pixel (h, w) is the b*b
input pixels (h*b + by, w*b + bx), in that order, each its in_c channels."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import RowGatherData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SPACE_TO_DEPTH", "core", ("int8", "uint8")),)


def block_shapes(model: TfliteModel, op: Operator) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(block size, input NHWC, output NHWC) of SPACE_TO_DEPTH or DEPTH_TO_SPACE."""
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    require(len(in_t.shape) == 4 and in_t.shape[0] == 1 and in_t.dtype.itemsize == 1, op,
            "is not an 8-bit NHWC tensor of batch 1")
    return int(op.options.blockSize), tuple(int(d) for d in in_t.shape), tuple(int(d) for d in out_t.shape)


def prepare(model: TfliteModel, op: Operator) -> RowGatherData:
    b, (_, _, in_w, in_c), (_, out_h, out_w, _) = block_shapes(model, op)
    rows = tuple((h * b + by) * in_w + w * b + bx
                 for h in range(out_h) for w in range(out_w) for by in range(b) for bx in range(b))
    return RowGatherData(rows, in_c)
