"""CAST between integer types (TFLM's cast.cc: a C++ static_cast per element: sign or zero extension,
truncation to the low bytes). The signal library's graphs cast between uint32, int32, int16 and int8."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import CallData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

# TFLite type name -> (bytes, signed) of the integer types CAST takes here.
INTEGER_TYPES = {"INT8": (1, 1), "UINT8": (1, 0), "INT16": (2, 1), "UINT16": (2, 0), "INT32": (4, 1), "UINT32": (4, 0)}

SUPPORTS = (OpSupport("CAST", "signal", ("int8/int16/int32/uint8/uint16/uint32 to each other",),
                      viper="the viper runtime's tensors are int8 only (the AOT and tflm runtimes run it)",
                      viper_variants=()),)


def prepare(model: TfliteModel, op: Operator) -> CallData:
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    require(in_t.type_name in INTEGER_TYPES and out_t.type_name in INTEGER_TYPES, op,
            f"casts {in_t.type_name.lower()} to {out_t.type_name.lower()} (the AOT casts integers only)")
    require(in_t.size == out_t.size, op, "has an output of another size")
    out_bytes, out_signed = INTEGER_TYPES[out_t.type_name]
    in_bytes, in_signed = INTEGER_TYPES[in_t.type_name]
    return CallData("te_cast", ("{out0}", "{in0}", in_t.size, out_bytes, out_signed, in_bytes, in_signed),
                    inplace_ok=out_bytes <= in_bytes)
