"""FULLY_CONNECTED (int8), as TFLM's fully_connected.cc: one multiplier (per-tensor weights) or one per output
row, the input offset folded into the bias, the accumulators' bounds proven for te_dsp.c; on DSP cores the
conv before it may compute it as its outputs come (te_dsp_conv2d_fc). int16 (16x8): tinyedge.aot.int16."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.ops.conv import (
    dsp_target, fc_multipliers, int8_tensors, portable_target, producer, streamed_fc, weight_rows,
)
from tinyedge.ops.opdata import FullyConnectedData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("FULLY_CONNECTED", "core", dsp="te_dsp_fully_connected"),)


def prepare(model: TfliteModel, op: Operator) -> FullyConnectedData:
    in_t, out_t = int8_tensors(model, op)
    filter_t = model.tensors[op.inputs[1]]
    require(filter_t.type_name == "INT8" and len(filter_t.shape) == 2, op, "has no 2-D int8 weights")
    out_depth, accum_depth = filter_t.shape
    conv = producer(model, op.inputs[0])
    streamed_by = conv.index if conv is not None and streamed_fc(model, conv) is op else None
    multipliers = tuple(fc_multipliers(in_t, filter_t, out_t))
    portable = portable_target(model, op, in_t, out_t, multipliers, foldable=True)
    rows = weight_rows(filter_t, out_depth)
    return FullyConnectedData(in_t.size // accum_depth, accum_depth, out_depth, portable,
                              dsp_target(model, op, portable, rows, out_t, tame=False), rows, streamed_by)
