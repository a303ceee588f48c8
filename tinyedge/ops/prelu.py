"""PRELU (int8), as TFLM's prelu_common.cc (CalculatePreluParams, double scales) and
reference_ops::BroadcastPrelu4DSlow: the identity rescaling for x >= 0, else x * alpha rescaled, over a
broadcast walk of the input and alpha (te_prelu_s8)."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require_types
from tinyedge.ops.broadcast import broadcast_geometry
from tinyedge.aot.quant import quantize_multiplier, zero_point
from tinyedge.ops.opdata import BroadcastData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("PRELU", "nonlinear"),)


def prepare(model: TfliteModel, op: Operator) -> BroadcastData:
    x, alpha, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    require_types(model, op, {x: "INT8", alpha: "INT8", dst: "INT8"})
    inp, alpha_t, out = (model.tensors[i] for i in (x, alpha, dst))
    in_scale, alpha_scale, out_scale = (float(np.float32(t.scale[0])) for t in (inp, alpha_t, out))
    m1, s1 = quantize_multiplier(in_scale / out_scale)
    m2, s2 = quantize_multiplier(in_scale * alpha_scale / out_scale)
    geometry = broadcast_geometry(*(t.shape for t in (inp, alpha_t, out)))
    return BroadcastData("prelu_s8", tuple(geometry), "te_prelu_params_t",
                         (-zero_point(inp), -zero_point(alpha_t), zero_point(out), m1, s1, m2, s2))
