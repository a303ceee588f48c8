"""SOFTMAX (int8 -> int8, int8 -> int16, int16 -> int16), as TFLM's softmax_common.cc: PreprocessSoftmaxScaling
and CalculateInputRadius at Prepare, gemmlowp's exp and reciprocal in the kernel (te_nonlinear.c's
te_softmax_s8 and te_softmax_s8_s16); int16 rescales the differences onto [-10, 0] and reads the exp and
1/(1+x) LUTs TFLM's Prepare fills with LUTPopulate<int16_t> (te_int16.c's te_softmax_s16)."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Callable

import numpy as np

from tinyedge.aot.lowering import require_types
from tinyedge.aot.quant import quantize_multiplier, tensor_scale, zero_point
from tinyedge.errors import TinyedgeError
from tinyedge.ops.fixedpoint import calculate_input_radius
from tinyedge.ops.opdata import Softmax16Data, SoftmaxData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SOFTMAX", "nonlinear", ("int8", "int8->int16", "int16")),)
SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5


def softmax_parameters(beta: float, input_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius: (input_multiplier, input_left_shift, diff_min)."""
    real = min(beta * input_scale * (1 << (31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise TinyedgeError(f"SOFTMAX's input scale times beta ({beta * input_scale:g}) is too small for TFLM's int8 "
                            "softmax: re-quantize the model with a representative calibration set.")
    diff_min = -calculate_input_radius(SOFTMAX_SCALED_DIFF_INTEGER_BITS, left_shift)
    return multiplier, left_shift, diff_min


def _check_int8_output(model: TfliteModel, op: Operator) -> None:
    out = model.tensors[op.outputs[0]]
    if zero_point(out) != -128 or np.float32(out.scale[0]) != np.float32(1.0 / 256):
        raise TinyedgeError(f"SOFTMAX (operator {op.index}) output is not quantized with scale 1/256 and zero point -128, "
                            "which TFLM's int8 softmax requires: convert the model with the standard TFLite converter.")


def _check_int16_output(model: TfliteModel, op: Operator) -> None:
    out = model.tensors[op.outputs[0]]
    if zero_point(out) != -32768 or abs(tensor_scale(out) - 1.0 / 65536) > 0.001 / 65536:
        raise TinyedgeError(f"SOFTMAX (operator {op.index}) has an int16 output not quantized with scale 1/65536 and "
                            "zero point -32768, which TFLM's int8 softmax requires: convert the model with the "
                            "standard TFLite converter.")


@lru_cache(maxsize=1)
def _expf() -> Callable[[float], float]:
    """The C library's expf, which TFLM's LUTPopulate calls through std::exp(float)."""
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    libm.expf.restype, libm.expf.argtypes = ctypes.c_float, [ctypes.c_float]
    return libm.expf


def _roundf(x: np.float32) -> np.float32:
    """TfLiteRound on a float: halves away from zero (exact in double)."""
    return np.float32(np.copysign(np.floor(abs(float(x)) + 0.5), float(x)))


def lut_int16(input_scale: np.float32, input_zero_point: int, output_scale: np.float32,
              transform: Callable[[np.float32], np.float32]) -> tuple[int, ...]:
    """LUTPopulateInt16<float> (output zero point 0): 512 interpolation steps plus the last value, float32 throughout."""
    f = np.float32
    input_min, input_max = input_scale * f(-32768 - input_zero_point), input_scale * f(32767 - input_zero_point)
    output_min, output_max = output_scale * f(-32768), output_scale * f(32767)
    step = (input_max - input_min) / f(512)
    half_step = step / f(2)
    scaling = f(65536) / (output_max - output_min)
    lut = []
    for i in range(512):
        value = transform(input_min + f(i) * step)
        midpoint = transform(input_min + f(i) * step + half_step)
        following = transform(input_min + f(i + 1) * step)
        sample = _roundf(value * scaling)
        midpoint_interpolated = _roundf((following * scaling + _roundf(value * scaling)) / f(2))
        bias = _roundf((midpoint_interpolated - _roundf(midpoint * scaling)) / f(2))
        lut.append(int(min(max(sample - bias, f(-32768)), f(32767))))
    lut.append(int(min(max(_roundf(transform(input_max) * scaling), f(-32768)), f(32767))))
    return tuple(lut)


@lru_cache(maxsize=1)
def softmax_luts() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """InitializeLutForInt16: exp on [-10, 0] and 1/(1+x) on [0, 1], as int16 over int16 inputs."""
    f, span = np.float32, np.float32(65535)
    exp_lut = lut_int16(f(10) / span, 32767, f(2) / span, lambda v: f(_expf()(float(v))))
    reciprocal = lut_int16(f(1) / span, -32768, f(2) / span, lambda v: f(1) / (f(1) + v))
    return exp_lut, reciprocal


def _prepare_int16(model: TfliteModel, op: Operator) -> Softmax16Data:
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT16", dst: "INT16"})
    inp, out = model.tensors[src], model.tensors[dst]
    if zero_point(inp) or zero_point(out) or abs(tensor_scale(out) - 1.0 / 32768) > 0.001 / 32768:
        raise TinyedgeError(f"SOFTMAX (operator {op.index}) has int16 tensors with a zero point or an output scale other "
                            "than 0 and 1/32768, which TFLM's int16 softmax requires: convert the model with the "
                            "standard TFLite converter.")
    if not inp.shape:
        raise TinyedgeError(f"SOFTMAX (operator {op.index}) has a scalar input: give it at least one dimension.")
    beta = float(np.float32(getattr(op.options, "beta", 1.0)))
    multiplier, left_shift = quantize_multiplier(tensor_scale(inp) * beta / (10.0 / 65535.0))
    depth = inp.shape[-1]
    return Softmax16Data(inp.size // depth if depth else 0, depth, multiplier, left_shift, *softmax_luts())


def prepare(model: TfliteModel, op: Operator) -> SoftmaxData | Softmax16Data:
    src, dst = op.inputs[0], op.outputs[0]
    if model.tensors[src].type_name == "INT16":
        return _prepare_int16(model, op)
    output_type = "int16" if model.tensors[dst].type_name == "INT16" else "int8"
    require_types(model, op, {src: "INT8", dst: output_type.upper()})
    (_check_int16_output if output_type == "int16" else _check_int8_output)(model, op)
    inp = model.tensors[src]
    if not inp.shape:
        raise TinyedgeError(f"SOFTMAX (operator {op.index}) has a scalar input: give it at least one dimension.")
    multiplier, left_shift, diff_min = softmax_parameters(float(getattr(op.options, "beta", 1.0)), tensor_scale(inp))
    depth = inp.shape[-1]
    return SoftmaxData(inp.size // depth if depth else 0, depth, multiplier, left_shift, diff_min, output_type)
