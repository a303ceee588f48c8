"""ADD (int8), as TFLM's add_common.cc (CalculateOpDataAdd): both inputs rescaled onto twice the larger
scale after a left shift of 20, summed, rescaled to the output, over a broadcast walk (te_nonlinear.c's
te_add_s8; on DSP cores te_dsp.c's te_dsp_add_s8 where the shapes are equal)."""

from __future__ import annotations

from tinyedge.aot.quant import INT8_MAX, INT8_MIN, activation_range, quantize_multiplier, tensor_scale, zero_point
from tinyedge.errors import TinyedgeError
from tinyedge.ops.broadcast import int8_operands, walk
from tinyedge.ops.opdata import BroadcastData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

SUPPORTS = (OpSupport("ADD", "nonlinear", dsp="te_dsp_add_s8"),)   # int16: tinyedge.aot.int16
ADD_LEFT_SHIFT = 20


def quantize_multiplier_smaller_than_one(real: float) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: TFLM refuses multipliers outside (0, 1)."""
    if not 0.0 < real < 1.0:
        raise TinyedgeError(f"a rescaling factor of {real} is outside (0, 1), which TFLM's int8 ADD cannot handle: "
                            "re-quantize the model with a representative calibration set.")
    return quantize_multiplier(real)


def add_parameters(a: Tensor, b: Tensor, out: Tensor, activation: str, left_shift: int = ADD_LEFT_SHIFT,
                   limits: tuple[int, int] = (INT8_MIN, INT8_MAX)) -> list[int]:
    """CalculateOpDataAdd for int8 (int16: left shift 15, the int16 limits): te_add_params_t's fields."""
    a_scale, b_scale, out_scale = tensor_scale(a), tensor_scale(b), tensor_scale(out)
    twice_max_input_scale = 2 * max(a_scale, b_scale)
    a_multiplier, a_shift = quantize_multiplier_smaller_than_one(a_scale / twice_max_input_scale)
    b_multiplier, b_shift = quantize_multiplier_smaller_than_one(b_scale / twice_max_input_scale)
    out_multiplier, out_shift = quantize_multiplier_smaller_than_one(
        twice_max_input_scale / ((1 << left_shift) * out_scale))
    act_min, act_max = activation_range(activation, out, limits)
    return [-zero_point(a), a_multiplier, a_shift, -zero_point(b), b_multiplier, b_shift, left_shift,
            out_multiplier, out_shift, zero_point(out), act_min, act_max]


def prepare(model: TfliteModel, op: Operator) -> BroadcastData:
    tensors = int8_operands(model, op)
    params = add_parameters(*tensors, op.activation)
    same_shapes = len({t.shape for t in tensors}) == 1 and not any(t.is_constant for t in tensors)
    dsp = "dsp_add_s8" if same_shapes and (255 << (params[6] + 1)) < (1 << 31) else ""
    return BroadcastData("add_s8", walk(tensors), "te_add_params_t", tuple(params), dsp_kernel=dsp)
