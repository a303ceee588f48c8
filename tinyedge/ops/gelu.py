"""GELU (int8), as TFLite's gelu.cc (tflite-micro has no GELU kernel: TFLite's interpreter is this op's
stated reference): a 256-entry table from reference_ops::GeluTransform (0.5 x erfc(-x/sqrt 2)) or, with
`approximate`, GeluTransformApproximate (the tanh form), built as LUTPopulate<int8_t> builds it."""

from __future__ import annotations

import math

from tinyedge.aot.quant import zero_point
from tinyedge.ops.float_lut import F32, erfcf, lut_populate, require_int8, tanhf
from tinyedge.ops.opdata import LutData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("GELU", "nonlinear", reference="tflite"),)
_MINUS_SQRT1_2 = F32(-math.sqrt(0.5))
_SQRT_2_OVER_PI = F32(2 / math.sqrt(math.pi) * math.sqrt(0.5))


def gelu(x: F32) -> F32:
    return F32(0.5) * x * erfcf(x * _MINUS_SQRT1_2)


def gelu_approximate(x: F32) -> F32:
    return F32(0.5) * x * (F32(1) + tanhf(_SQRT_2_OVER_PI * (x + F32(0.044715) * x * x * x)))


def prepare(model: TfliteModel, op: Operator) -> LutData:
    src, dst = op.inputs[0], op.outputs[0]
    require_int8(model, op)
    inp, out = model.tensors[src], model.tensors[dst]
    approximate = bool(getattr(op.options, "approximate", False))
    return LutData(lut_populate(inp.scale[0], zero_point(inp), out.scale[0], zero_point(out),
                                gelu_approximate if approximate else gelu))
