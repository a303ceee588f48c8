"""BATCH_MATMUL (int8, and int16 with zero points 0), as TFLM's batch_matmul.cc: reference_ops::BatchMatMul
with per-tensor scales, any operand an activation or a constant, adj_x/adj_y, the batch dimensions (up to 3
before the matrices) broadcast. The transposes TFLM makes are strides here; each output matrix's operand
offsets are a table."""

from __future__ import annotations

import itertools
import math

from tinyedge.aot.lowering import require
from tinyedge.aot.quant import per_tensor_fc_multiplier, zero_point
from tinyedge.ops.opdata import BatchMatMulData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

SUPPORTS = (OpSupport("BATCH_MATMUL", "shape", ("int8", "int16")),)


def _batch_offsets(shape: list[int], batch: tuple[int, ...]) -> int:
    """The element offset of batch index `batch` in an operand of `shape` (size-1 batch dimensions broadcast)."""
    return sum(i * math.prod(shape[k + 1:]) for k, i in enumerate(batch) if shape[k] != 1)


def _extended(t: Tensor, rank: int) -> list[int]:
    return [1] * (rank - len(t.shape)) + [int(d) for d in t.shape]


def prepare(model: TfliteModel, op: Operator) -> BatchMatMulData:
    lhs_t, rhs_t, out_t = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    require(lhs_t.type_name == rhs_t.type_name == out_t.type_name in ("INT8", "INT16"), op,
            "is not int8 or int16 throughout")
    require(lhs_t.type_name == "INT8" or not any(zero_point(t) for t in (lhs_t, rhs_t, out_t)), op,
            "has an int16 tensor with a non-zero zero point")
    require(lhs_t.scale.size == 1 and rhs_t.scale.size == 1, op, "has per-channel scales")
    rank = max(len(lhs_t.shape), len(rhs_t.shape))
    require(2 <= min(len(lhs_t.shape), len(rhs_t.shape)) and rank <= 5, op, "has operands of rank outside 2..5")
    lhs, rhs = _extended(lhs_t, rank), _extended(rhs_t, rank)
    require(all(a == b or 1 in (a, b) for a, b in zip(lhs[:-2], rhs[:-2])), op, "has batch dimensions that do not broadcast")
    adj_x, adj_y = bool(op.options.adjX), bool(op.options.adjY)
    rows, depth = (lhs[-1], lhs[-2]) if adj_x else (lhs[-2], lhs[-1])
    cols, rhs_depth = (rhs[-2], rhs[-1]) if adj_y else (rhs[-1], rhs[-2])
    batch = [max(a, b) for a, b in zip(lhs[:-2], rhs[:-2])]
    require(depth == rhs_depth and list(out_t.shape)[-2:] == [rows, cols] and out_t.size == math.prod(batch) * rows * cols,
            op, "has operands whose shapes do not multiply")
    lhs_strides = (1, rows) if adj_x else (depth, 1)     # per row, per depth step
    rhs_strides = (1, depth) if adj_y else (cols, 1)     # per depth step, per column
    multiplier, shift = per_tensor_fc_multiplier(lhs_t, rhs_t, out_t)
    offsets = tuple(v for index in itertools.product(*(range(b) for b in batch))
                    for v in (_batch_offsets(lhs, index), _batch_offsets(rhs, index)))
    return BatchMatMulData((math.prod(batch), rows, cols, depth, *lhs_strides, *rhs_strides, -zero_point(lhs_t),
                            -zero_point(rhs_t), zero_point(out_t), multiplier, shift), offsets)
