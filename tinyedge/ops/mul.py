"""MUL (int8), as TFLM's mul_common.cc (CalculateOpDataMul): the product of the offset inputs rescaled by
in1 * in2 / out, over a broadcast walk (te_nonlinear.c's te_mul_s8)."""

from __future__ import annotations

from tinyedge.aot.quant import INT8_MAX, INT8_MIN, activation_range, quantize_multiplier, tensor_scale, zero_point
from tinyedge.ops.broadcast import int8_operands, walk
from tinyedge.ops.opdata import BroadcastData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

SUPPORTS = (OpSupport("MUL", "nonlinear"),)   # int16: tinyedge.aot.int16


def mul_parameters(a: Tensor, b: Tensor, out: Tensor, activation: str,
                   limits: tuple[int, int] = (INT8_MIN, INT8_MAX)) -> list[int]:
    """CalculateOpDataMul for int8 (or int16, with its limits): te_mul_params_t's fields."""
    multiplier, shift = quantize_multiplier(tensor_scale(a) * tensor_scale(b) / tensor_scale(out))
    act_min, act_max = activation_range(activation, out, limits)
    return [-zero_point(a), -zero_point(b), multiplier, shift, zero_point(out), act_min, act_max]


def prepare(model: TfliteModel, op: Operator) -> BroadcastData:
    tensors = int8_operands(model, op)
    return BroadcastData("mul_s8", walk(tensors), "te_mul_params_t", tuple(mul_parameters(*tensors, op.activation)))
