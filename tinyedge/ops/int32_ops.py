"""The plain int32 (unquantized) variants of ADD, MUL, DIV, MINIMUM, MAXIMUM and STRIDED_SLICE, as
TFLM's reference_ops compute them: integer arithmetic clamped to the fused activation's range (DIV
truncates toward zero). The signal library's graphs use them to map log features to int8. The second
operand is a tensor of the same size or a single value; a slice is one contiguous run."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require
from tinyedge.ops import strided_slice
from tinyedge.ops.opdata import CallData
from tinyedge.ops.support import INT32_VARIANT, OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("DIV", "signal", (INT32_VARIANT,),
                      viper="the viper runtime's tensors are int8 only (the AOT and tflm runtimes run int32 DIV)",
                      viper_variants=()),)

KINDS = {"ADD": 0, "MUL": 1, "DIV": 2, "MINIMUM": 3, "MAXIMUM": 4}   # te_signal.h's TE_I32_*
INT32_RANGE = (-(1 << 31), (1 << 31) - 1)
# The ops that have this int32 variant (the op registry lists it beside their int8 ones).
INT32_OPS = frozenset(KINDS) | {"STRIDED_SLICE"}


def is_int32_variant(model: TfliteModel, op: Operator) -> bool:
    return op.kind in INT32_OPS and bool(op.inputs) and model.tensors[op.inputs[0]].type_name == "INT32"


def _activation_range(op: Operator) -> tuple[int, int]:
    ranges = {"NONE": INT32_RANGE, "RELU": (0, INT32_RANGE[1]), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}
    require(op.activation in ranges, op, f"has the fused activation {op.activation}")
    return ranges[op.activation]


def _elementwise(model: TfliteModel, op: Operator) -> CallData:
    a, b, out = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    require(all(t.type_name == "INT32" and not t.is_quantized for t in (a, b, out)), op,
            "mixes int32 with other or quantized types")
    require(a.size == out.size and b.size in (1, out.size), op, "broadcasts other than a single value")
    if op.kind == "DIV":
        require(b.is_constant and not np.any(np.asarray(b.data) == 0), op, "divides by a tensor that is not a "
                                                                           "non-zero constant")
    act_min, act_max = _activation_range(op)
    return CallData("te_elementwise_s32", ("{out0}", "{in0}", "{in1}", out.size, int(b.size == out.size),
                                           int(b.is_constant), KINDS[op.kind], act_min, act_max),
                    inplace_ok=not a.is_constant)


def _slice(model: TfliteModel, op: Operator) -> CallData:
    gather = strided_slice.prepare(model, op)
    out = model.tensors[op.outputs[0]]
    require(gather.in_strides[3] == 1 and int(np.prod(gather.out_dims[:3])) == 1, op,
            "is an int32 slice that is not one contiguous run")
    nbytes = 4 * out.size
    return CallData("te_copy_blocks", ("(uint8_t *){out0}", f"(const uint8_t *)({{in0}} + {gather.in_offset})", 1,
                                       nbytes, nbytes))


def prepare_int32(model: TfliteModel, op: Operator) -> CallData:
    return _slice(model, op) if op.kind == "STRIDED_SLICE" else _elementwise(model, op)


def prepare(model: TfliteModel, op: Operator) -> CallData:
    require(is_int32_variant(model, op), op, "is not int32 (the AOT runs DIV on int32 tensors only)")
    return prepare_int32(model, op)
