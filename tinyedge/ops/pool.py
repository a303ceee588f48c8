"""AVERAGE_POOL_2D and MAX_POOL_2D (int8), as TFLM's pooling.cc: a window over each channel, the fused
activation's range on the output (te_kernels.c's te_average_pool / te_max_pool)."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.aot.quant import activation_range
from tinyedge.ops.conv import window
from tinyedge.ops.opdata import PoolData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import PADDINGS, Operator, TfliteModel

SUPPORTS = (OpSupport("AVERAGE_POOL_2D", "core"), OpSupport("MAX_POOL_2D", "core"))   # int16: tinyedge.aot.int16
KERNELS = {"AVERAGE_POOL_2D": "average_pool", "MAX_POOL_2D": "max_pool"}


def prepare(model: TfliteModel, op: Operator) -> PoolData:
    in_t, out_t = (model.tensors[i] for i in (op.inputs[0], op.outputs[0]))
    require(in_t.type_name == "INT8" and out_t.type_name == "INT8", op, "has non-int8 tensors")
    o = op.options
    geometry = window(in_t, out_t, int(o.filterHeight), int(o.filterWidth), o)
    require(PADDINGS.get(o.padding) in ("SAME", "VALID"), op, "has padding other than SAME/VALID")
    return PoolData(KERNELS[op.opcode], tuple(geometry.values()), activation_range(op.activation, out_t))
