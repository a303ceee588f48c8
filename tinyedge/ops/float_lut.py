"""TFLite's LUTPopulate<int8_t> (kernels/internal/common.h): an int8 op's 256-entry table built at Prepare
from its float formula. Every step is float32 as the C++ computes it, and the C library's float functions
(erfcf, tanhf, expf) are called through ctypes, so the table is the one TFLite's kernel builds."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from typing import Callable

import numpy as np

from tinyedge.aot.quant import INT8_MAX, INT8_MIN
from tinyedge.errors import TinyedgeError
from tinyedge.tflite_model import Operator, TfliteModel

F32 = np.float32
_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")


def _libm_float(name: str) -> Callable[[np.float32], np.float32]:
    function = getattr(_LIBM, name)
    function.restype, function.argtypes = ctypes.c_float, [ctypes.c_float]
    return lambda x: F32(function(float(x)))


erfcf, tanhf, expf = (_libm_float(name) for name in ("erfcf", "tanhf", "expf"))


def require_int8(model: TfliteModel, op: Operator) -> None:
    """Refuse an op only TFLite runs (no tflite-micro kernel: the tflm runtime is no way out) unless int8."""
    for t in (model.tensors[i] for i in (op.inputs[0], op.outputs[0])):
        if t.type_name != "INT8":
            raise TinyedgeError(f"{op.opcode} (operator {op.index}) has a {t.type_name.lower()} tensor '{t.name}', and "
                                f"the AOT runtime runs TFLite's int8 {op.opcode} only (tflite-micro has no int8 kernel "
                                "for it, so the tflm runtime cannot run it either): quantize the model to full int8.")


def lut_populate(input_scale: float, input_zero_point: int, output_scale: float, output_zero_point: int,
                 transform: Callable[[np.float32], np.float32]) -> tuple[int, ...]:
    """out = table[in + 128], as LUTPopulateInt8 fills it (std::round of the float result, then clamped)."""
    inverse_scale = F32(1) / F32(output_scale)
    table = []
    for value in range(INT8_MIN, INT8_MAX + 1):
        dequantized = F32(input_scale) * F32(value - input_zero_point)
        rescaled = F32(transform(dequantized)) * inverse_scale
        quantized = round_half_away_f32(rescaled) + output_zero_point
        table.append(min(max(quantized, INT8_MIN), INT8_MAX))
    return tuple(table)


def round_half_away_f32(x: np.float32) -> int:
    """TfLiteRound on a float (std::round), as an int; infinities saturate as the later clamp would."""
    if not math.isfinite(float(x)):
        return INT8_MIN - 1 if x < 0 or math.isnan(float(x)) else INT8_MAX + 1
    return int(math.copysign(math.floor(abs(float(x)) + 0.5), float(x)))
