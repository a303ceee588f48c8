"""TANH (int8, int16), as TFLM's tanh.cc and reference_integer_ops::Tanh: a 256-entry table of gemmlowp's
fixed-point tanh, run at generation time integer for integer (te_lut_s8); int16 interpolates TFLM's
sigmoid table (tanh(x) = 2 sigmoid(2x) - 1; te_int16.c's te_tanh_s16)."""

from __future__ import annotations

from tinyedge.aot.lowering import require_types
from tinyedge.aot.quant import tensor_scale, zero_point
from tinyedge.ops.fixedpoint import tanh
from tinyedge.ops.logistic import LOGISTIC_TANH_INPUT_INTEGER_BITS, q4_table, sigmoid_scaling
from tinyedge.ops.lstm import sigmoid_table
from tinyedge.ops.opdata import LutData, SigmoidTableData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("TANH", "nonlinear", ("int8", "int16")),)


def tanh_table(input_scale: float, input_zero_point: int) -> list[int]:
    """reference_integer_ops::Tanh (int8) for every input byte -128..127."""
    return q4_table(input_scale, input_zero_point, lambda q4: tanh(q4, LOGISTIC_TANH_INPUT_INTEGER_BITS),
                    output_shift=31 - 7, output_offset=0)


def prepare(model: TfliteModel, op: Operator) -> LutData | SigmoidTableData:
    src, dst = op.inputs[0], op.outputs[0]
    if model.tensors[src].type_name == "INT16":
        return SigmoidTableData("tanh_s16", *sigmoid_scaling(model, op, (0, 1)), sigmoid_table())
    require_types(model, op, {src: "INT8", dst: "INT8"})
    inp = model.tensors[src]
    return LutData(tuple(tanh_table(tensor_scale(inp), zero_point(inp))))
