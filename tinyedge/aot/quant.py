"""Quantization arithmetic done at generation time, exactly as TFLM does it when it prepares a kernel.

Every float here follows TFLM's C++ types: scales are float32 in the flatbuffer, multipliers are
computed in double (or float first, where TFLM multiplies two floats), rounding is std::round.
"""

from __future__ import annotations

import math

import numpy as np

from tinyedge.errors import TinyedgeError
from tinyedge.ops.fixedpoint import multiply_by_quantized_multiplier  # noqa: F401  (the tests' model of the C)
from tinyedge.tflite_model import Tensor

INT8_MIN, INT8_MAX = -128, 127


def round_half_away(x: float) -> int:
    """TfLiteRound / std::round: halves go away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM's QuantizeMultiplier (double-rounding build): (Q31 significand, power-of-two exponent)."""
    if real == 0.0:
        return 0, 0
    significand, shift = math.frexp(real)
    q_fixed = round_half_away(significand * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def zero_point(t: Tensor) -> int:
    """The tensor's (first) zero point; 0 when it has none."""
    return int(t.zero_point[0]) if t.zero_point.size else 0


def checked_log2(x: float) -> tuple[int, bool]:
    """tflite::CheckedLog2: logf(x) * (1 / logf(2)) in float rounded half away, and whether x is a power of
    two (the log within 1e-3 of that integer)."""
    value = np.float32(np.log(np.float32(x))) * (np.float32(1.0) / np.float32(np.log(np.float32(2.0))))
    rounded = np.float32(math.copysign(math.floor(abs(float(value)) + 0.5), float(value)))
    return int(rounded), abs(float(np.float32(value - rounded))) < float(np.float32(1e-3))


def tensor_scale(t: Tensor) -> float:
    """The tensor's float32 scale, widened to double as static_cast<double>(params.scale) does."""
    if t.scale.size == 0:
        raise TinyedgeError(f"tensor '{t.name}' has no quantization parameters: quantize the model to full int8 first.")
    return float(np.float32(t.scale[0]))


def _f32(x: float | np.floating) -> float:
    return float(np.float32(x))


def per_channel_multipliers(input_t: Tensor, filter_t: Tensor, output_t: Tensor, channels: int) -> list[tuple[int, int]]:
    """PopulateConvolutionQuantizationParams (conv, depthwise, per-channel FC): double(in) * double(f) / double(out)."""
    in_scale, out_scale = _f32(input_t.scale[0]), _f32(output_t.scale[0])
    scales = filter_t.scale if filter_t.per_channel else np.repeat(filter_t.scale[:1], channels)
    return [quantize_multiplier(in_scale * _f32(s) / out_scale) for s in scales]


def per_tensor_fc_multiplier(input_t: Tensor, filter_t: Tensor, output_t: Tensor) -> tuple[int, int]:
    """GetQuantizedConvolutionMultipler: the two scales are multiplied as floats, then divided in double."""
    product = float(np.float32(input_t.scale[0]) * np.float32(filter_t.scale[0]))
    return quantize_multiplier(product / _f32(output_t.scale[0]))


def _quantize_f32(value: float, scale: float, zero_point: int) -> int:
    return zero_point + round_half_away(float(np.float32(value) / np.float32(scale)))


def activation_range(activation: str, output_t: Tensor, limits: tuple[int, int] = (INT8_MIN, INT8_MAX)) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output (or, with `limits`, an int16 one)."""
    scale, zero_point = _f32(output_t.scale[0]), int(output_t.zero_point[0])
    low, high = limits
    if activation == "RELU":
        return max(low, _quantize_f32(0.0, scale, zero_point)), high
    if activation == "RELU6":
        return (max(low, _quantize_f32(0.0, scale, zero_point)),
                min(high, _quantize_f32(6.0, scale, zero_point)))
    if activation == "RELU_N1_TO_1":
        return (max(low, _quantize_f32(-1.0, scale, zero_point)),
                min(high, _quantize_f32(1.0, scale, zero_point)))
    if activation == "NONE":
        return low, high
    raise TinyedgeError(f"the fused activation {activation} has no int8 kernel in TFLM: "
                        "apply it as a separate layer instead.")


def same_or_valid_padding(in_size: int, filter_size: int, stride: int, dilation: int, out_size: int) -> int:
    """ComputePaddingWithOffset: the leading padding (VALID comes out as 0 from the same formula)."""
    effective = (filter_size - 1) * dilation + 1
    total = (out_size - 1) * stride + effective - in_size
    return max(total, 0) // 2
