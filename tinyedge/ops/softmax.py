"""SOFTMAX (int8 -> int8, int8 -> int16), as TFLM's softmax_common.cc: PreprocessSoftmaxScaling and
CalculateInputRadius at Prepare, gemmlowp's exp and reciprocal in the kernel (te_nonlinear.c's te_softmax_s8
and te_softmax_s8_s16)."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require_types
from tinyedge.aot.quant import quantize_multiplier, tensor_scale, zero_point
from tinyedge.errors import TinyedgeError
from tinyedge.ops.fixedpoint import calculate_input_radius
from tinyedge.ops.opdata import SoftmaxData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SOFTMAX", "nonlinear", ("int8", "int8->int16")),)
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


def prepare(model: TfliteModel, op: Operator) -> SoftmaxData:
    src, dst = op.inputs[0], op.outputs[0]
    output_type = "int16" if model.tensors[dst].type_name == "INT16" else "int8"
    require_types(model, op, {src: "INT8", dst: output_type.upper()})
    (_check_int16_output if output_type == "int16" else _check_int8_output)(model, op)
    inp = model.tensors[src]
    if not inp.shape:
        raise TinyedgeError(f"SOFTMAX (operator {op.index}) has a scalar input: give it at least one dimension.")
    multiplier, left_shift, diff_min = softmax_parameters(float(getattr(op.options, "beta", 1.0)), tensor_scale(inp))
    depth = inp.shape[-1]
    return SoftmaxData(inp.size // depth if depth else 0, depth, multiplier, left_shift, diff_min, output_type)
