"""RESIZE_BILINEAR (int8, NHWC), as TFLM's resize_bilinear.cc: reference_ops::ResizeBilinearInteger, whose
integer interpolation points (1/1024ths of an input pixel, align_corners and half_pixel_centers) are
computed here once per output row and column; the four-tap sums run in te_resize_bilinear_s8."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.errors import TinyedgeError
from tinyedge.ops.opdata import ResizeBilinearData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("RESIZE_BILINEAR", "shape", ("int8",)),)

ONE = 1 << 10   # the interpolation's unit: 1/1024th of an input pixel


def _c_div(a: int, b: int) -> int:
    """C's integer division (truncates towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def scale_10(in_size: int, out_size: int, align_corners: bool) -> int:
    if align_corners and out_size > 1:
        return (ONE * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    return (ONE * in_size + out_size // 2) // out_size


def interpolation_points(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> tuple[int, ...]:
    """ComputeInterpolationValuesInteger for every output index: (lower, upper, scaled - 1024 * lower) each."""
    scale = scale_10(in_size, out_size, align_corners)
    points: list[int] = []
    for value in range(out_size):
        scaled = value * scale + scale // 2 - (1 << 9) if half_pixel_centers else value * scale
        lower = max(_c_div(scaled, ONE), 0)
        upper = min(_c_div(scaled + ONE - 1, ONE), in_size - 1)
        points += [lower, upper, scaled - ONE * lower]
    return tuple(points)


def prepare(model: TfliteModel, op: Operator) -> ResizeBilinearData:
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if in_t.type_name != "INT8" and in_t.type_name != "FLOAT32":
        raise TinyedgeError(f"RESIZE_BILINEAR (operator {op.index}) is {in_t.type_name.lower()}, which no runtime runs "
                            "(TFLM's kernel takes float32 and int8 only): quantize the model to int8 activations.")
    require(len(in_t.shape) == 4 and in_t.type_name == out_t.type_name == "INT8", op, "is not an int8 NHWC image")
    require(not in_t.is_constant, op, "resizes constant data")
    corners, half = bool(op.options.alignCorners), bool(op.options.halfPixelCenters)
    require(not (corners and half), op, "has both align_corners and half_pixel_centers")
    batches, in_h, in_w, channels = (int(d) for d in in_t.shape)
    _, out_h, out_w, _ = (int(d) for d in out_t.shape)
    return ResizeBilinearData((batches, in_h, in_w, out_h, out_w, channels),
                              interpolation_points(in_h, out_h, corners, half),
                              interpolation_points(in_w, out_w, corners, half))
