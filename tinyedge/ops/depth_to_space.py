"""DEPTH_TO_SPACE (8-bit, NHWC, batch 1), as TFLM's depth_to_space.cc: output pixel (h*b + by, w*b + bx)
is the run of out_c channels at (by*b + bx)*out_c in input pixel (h, w)."""

from __future__ import annotations

from tinyedge.ops.opdata import RowGatherData
from tinyedge.ops.space_to_depth import block_shapes
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("DEPTH_TO_SPACE", "core", ("int8", "uint8")),)


def prepare(model: TfliteModel, op: Operator) -> RowGatherData:
    b, (_, _, in_w, _), (_, out_h, out_w, out_c) = block_shapes(model, op)
    # Rows of out_c bytes: input pixel (h, w) holds b*b of them, (by, bx) at by*b + bx.
    rows = tuple(((y // b) * in_w + x // b) * b * b + (y % b) * b + x % b for y in range(out_h) for x in range(out_w))
    return RowGatherData(rows, out_c)
