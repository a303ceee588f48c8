"""EXP (int8), as TFLite's exp.cc (tflite-micro's EXP is float32 only: TFLite's interpreter is the int8
variant's stated reference): a 256-entry table of expf, built as LUTPopulate<int8_t> builds it."""

from __future__ import annotations

from tinyedge.aot.quant import zero_point
from tinyedge.ops.float_lut import expf, lut_populate, require_int8
from tinyedge.ops.opdata import LutData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("EXP", "nonlinear", reference="tflite"),)


def prepare(model: TfliteModel, op: Operator) -> LutData:
    src, dst = op.inputs[0], op.outputs[0]
    require_int8(model, op)
    inp, out = model.tensors[src], model.tensors[dst]
    return LutData(lut_populate(inp.scale[0], zero_point(inp), out.scale[0], zero_point(out), expf))
