"""L2_NORMALIZATION (int8), as TFLM's l2norm.cc and reference_integer_ops::L2Normalization: per row of the
last dimension, the sum of squares of the offset inputs, its inverse square root by gemmlowp's
Newton-Raphson (GetInvSqrtQuantizedMultiplierExp) and each offset input rescaled by it onto the fixed output
scale 1/128 (te_elementwise.c's te_l2_normalization_s8: the arithmetic depends on the row, so at run time)."""

from __future__ import annotations

import math

from tinyedge.aot.lowering import require, require_types
from tinyedge.aot.quant import zero_point
from tinyedge.ops.opdata import RowNormData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("L2_NORMALIZATION", "elementwise"),)


def prepare(model: TfliteModel, op: Operator) -> RowNormData:
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT8"})
    require(op.activation == "NONE", op, "has a fused activation, which TFLM's L2_NORMALIZATION refuses")
    shape = model.tensors[src].shape
    require(1 <= len(shape) <= 4, op, "has more than 4 dimensions, which TFLM's L2_NORMALIZATION refuses")
    depth = int(shape[-1])
    return RowNormData("l2_normalization_s8", math.prod(shape) // depth, depth, zero_point(model.tensors[src]))
