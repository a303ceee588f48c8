"""LEAKY_RELU (int8), as TFLM's leaky_relu_common.cc and reference_ops::QuantizeLeakyRelu: the identity
and alpha rescalings chosen by the input's sign. The output depends on the input byte alone: a table."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require_types
from tinyedge.aot.quant import INT8_MAX, INT8_MIN, quantize_multiplier, zero_point
from tinyedge.ops.fixedpoint import multiply_by_quantized_multiplier
from tinyedge.ops.opdata import LutData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("LEAKY_RELU", "nonlinear"),)


def prepare(model: TfliteModel, op: Operator) -> LutData:
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT8"})
    inp, out = model.tensors[src], model.tensors[dst]
    # In double from the float32 scales and alpha, as tflite-micro's interpreter (the reference) computes
    # them; the int16 variant does the same (aot/int16.py), and TFLM's seanet goldens show the difference.
    in_scale, out_scale = float(np.float32(inp.scale[0])), float(np.float32(out.scale[0]))
    alpha = float(np.float32(getattr(op.options, "alpha", 0.2)))
    alpha_m, alpha_s = quantize_multiplier(in_scale * alpha / out_scale)
    identity_m, identity_s = quantize_multiplier(in_scale / out_scale)
    table = []
    for byte in range(INT8_MIN, INT8_MAX + 1):
        x = byte - zero_point(inp)
        if x >= 0:
            scaled = multiply_by_quantized_multiplier(x, identity_m, identity_s)
        else:   # a negative alpha: its magnitude's multiplier, the product negated
            scaled = multiply_by_quantized_multiplier(x, abs(alpha_m), alpha_s) * (-1 if alpha_m < 0 else 1)
        table.append(min(max(zero_point(out) + scaled, INT8_MIN), INT8_MAX))
    return LutData(tuple(table))
