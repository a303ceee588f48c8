"""RESIZE_NEAREST_NEIGHBOR (8-bit and int16, NHWC, batch 1), as TFLM's resize_nearest_neighbor.cc: each output
pixel copies the input pixel GetNearestNeighbor picks (float32 scale, align_corners, half_pixel_centers),
its channels as one row of bytes."""

from __future__ import annotations

import math

import numpy as np

from tinyedge.aot.lowering import require
from tinyedge.aot.quant import round_half_away
from tinyedge.ops.opdata import RowGatherData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("RESIZE_NEAREST_NEIGHBOR", "core", ("int8", "uint8")),)


def nearest(value: int, in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> int:
    """GetNearestNeighbor, in float32 as the C++ computes it."""
    f32 = np.float32
    scale = f32(in_size - 1) / f32(out_size - 1) if align_corners and out_size > 1 else f32(in_size) / f32(out_size)
    position = (f32(value) + f32(0.5 if half_pixel_centers else 0.0)) * scale
    picked = min(round_half_away(float(position)) if align_corners else math.floor(float(position)), in_size - 1)
    return max(picked, 0) if half_pixel_centers else picked


def prepare(model: TfliteModel, op: Operator) -> RowGatherData:
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    require(len(in_t.shape) == 4 and in_t.shape[0] == 1 and in_t.dtype.itemsize in (1, 2), op,
            "is not an 8-bit or int16 NHWC image of batch 1")
    _, in_h, in_w, channels = (int(d) for d in in_t.shape)
    _, out_h, out_w, _ = (int(d) for d in out_t.shape)
    corners, half = bool(op.options.alignCorners), bool(op.options.halfPixelCenters)
    rows = tuple(nearest(y, in_h, out_h, corners, half) * in_w + nearest(x, in_w, out_w, corners, half)
                 for y in range(out_h) for x in range(out_w))
    return RowGatherData(rows, channels * in_t.dtype.itemsize)
