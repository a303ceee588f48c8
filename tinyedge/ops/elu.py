"""ELU (int8), as TFLM's elu.cc: a 256-entry table built at Prepare in float32 (PopulateLookupTable:
dequantize, x < 0 ? exp(x) - 1 : x, multiply by the output's inverse scale, round half away, add the
zero point, clamp). exp is the C library's expf, the function tflite-micro's interpreter calls."""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from tinyedge.aot.lowering import require_types
from tinyedge.aot.quant import INT8_MAX, INT8_MIN, zero_point
from tinyedge.ops.opdata import LutData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("ELU", "nonlinear"),)

_libm = ctypes.CDLL(ctypes.util.find_library("m"))
_libm.expf.argtypes, _libm.expf.restype = [ctypes.c_float], ctypes.c_float


def _elu(x: np.float32) -> np.float32:
    return np.float32(_libm.expf(x)) - np.float32(1.0) if x < 0 else x


def _round_half_away(x: np.float32) -> np.float32:
    return np.float32(np.sign(x) * np.floor(np.abs(x) + np.float32(0.5)))


def elu_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> tuple[int, ...]:
    inverse_scale = np.float32(1) / np.float32(out_scale)
    table = []
    for value in range(INT8_MIN, INT8_MAX + 1):
        dequantized = np.float32(in_scale) * np.float32(value - in_zero)
        rescaled = _round_half_away(_elu(dequantized) * inverse_scale)
        quantized = int(rescaled + np.float32(out_zero))
        table.append(min(max(quantized, INT8_MIN), INT8_MAX))
    return tuple(table)


def prepare(model: TfliteModel, op: Operator) -> LutData:
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT8"})
    inp, out = model.tensors[src], model.tensors[dst]
    return LutData(elu_table(inp.scale[0], zero_point(inp), out.scale[0], zero_point(out)))
