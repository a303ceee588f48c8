"""QUANTIZE and DEQUANTIZE, as TFLM's quantize_common.cc and dequantize.cc: float32 -> int8 with the output's
scale, requantization between int8/int16/int32 (QuantizeMultiplier of in/out), int8 -> float32
(te_nonlinear.c's te_quantize_f32_s8, te_requantize_s8, te_requantize_int, te_dequantize_s8_f32)."""

from __future__ import annotations

from tinyedge.aot.lowering import require_types
from tinyedge.aot.quant import quantize_multiplier, tensor_scale, zero_point
from tinyedge.errors import TinyedgeError
from tinyedge.ops.opdata import FloatQuantizeData, RequantizeData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

NO_FLOAT_IN_VIPER = "MicroPython's viper code has no float32 arithmetic on the arena's bytes, and its model I/O is int8"
SUPPORTS = (
    OpSupport("QUANTIZE", "nonlinear", ("float32->int8", "int8->int8", "int16->int8", "int8->int16", "int8->int32",
                                        "int16->int16", "int16->int32", "int32->int8", "int32->int16"),
              viper_variants=("int8->int8",)),
    OpSupport("DEQUANTIZE", "nonlinear", ("int8->float32",), viper=NO_FLOAT_IN_VIPER),
)   # float32 -> int16 and int16 -> float32: tinyedge.aot.int16

INTEGER_BYTES = {"INT8": 1, "INT16": 2, "INT32": 4}
# The integer pairs TFLM's QUANTIZE requantizes, besides int8 -> int8.
INTEGER_REQUANTIZE = {("INT16", "INT8"), ("INT8", "INT16"), ("INT8", "INT32"), ("INT16", "INT16"),
                      ("INT16", "INT32"), ("INT32", "INT8"), ("INT32", "INT16")}


def _refuse_per_channel(op: Operator, out: Tensor) -> None:
    if out.per_channel:
        raise TinyedgeError(f"QUANTIZE (operator {op.index}) has a per-channel output, which TFLM does not support: "
                            "quantize the model per tensor.")


def _requantize(inp: Tensor, out: Tensor) -> RequantizeData:
    multiplier, shift = quantize_multiplier(tensor_scale(inp) / tensor_scale(out))
    return RequantizeData(inp.size, zero_point(inp), multiplier, shift, zero_point(out),
                          INTEGER_BYTES[inp.type_name], INTEGER_BYTES[out.type_name])


def prepare(model: TfliteModel, op: Operator) -> RequantizeData | FloatQuantizeData:
    src, dst = op.inputs[0], op.outputs[0]
    inp, out = model.tensors[src], model.tensors[dst]
    if op.opcode == "DEQUANTIZE":
        require_types(model, op, {src: "INT8", dst: "FLOAT32"})
        return FloatQuantizeData("dequantize_s8_f32", inp.size, tensor_scale(inp), zero_point(inp))
    if (inp.type_name, out.type_name) in INTEGER_REQUANTIZE:
        _refuse_per_channel(op, out)
        return _requantize(inp, out)
    require_types(model, op, {dst: "INT8"})
    _refuse_per_channel(op, out)
    if inp.type_name == "FLOAT32":
        return FloatQuantizeData("quantize_f32_s8", inp.size, tensor_scale(out), zero_point(out))
    require_types(model, op, {src: "INT8"})
    return _requantize(inp, out)
