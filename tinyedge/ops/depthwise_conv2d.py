"""DEPTHWISE_CONV_2D (int8), as TFLM's depthwise_conv.cc (DepthwiseConvPerChannel): per-channel multipliers
and the accumulators' bounds proven for te_dsp.c; a single input channel runs there as a CONV_2D (and may
stream into the FULLY_CONNECTED after it). int16 (16x8): tinyedge.aot.int16."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import require
from tinyedge.aot.quant import per_channel_multipliers
from tinyedge.ops.conv import (
    dsp_target, int8_tensors, portable_target, streamed_fc, streamed_fc_requant, window,
)
from tinyedge.ops.opdata import ConvData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import PADDINGS, Operator, TfliteModel

SUPPORTS = (OpSupport("DEPTHWISE_CONV_2D", "core", dsp="te_dsp_depthwise_conv2d"),)


def prepare(model: TfliteModel, op: Operator) -> ConvData:
    in_t, out_t = int8_tensors(model, op)
    filter_t = model.tensors[op.inputs[1]]
    require(len(in_t.shape) == 4 and in_t.shape[0] == 1, op, "has a batch other than 1")
    o = op.options
    geometry = window(in_t, out_t, filter_t.shape[1], filter_t.shape[2], o, int(o.dilationHFactor),
                      int(o.dilationWFactor))
    require(PADDINGS.get(o.padding) in ("SAME", "VALID"), op, "has padding other than SAME/VALID")
    multipliers = tuple(per_channel_multipliers(in_t, filter_t, out_t, out_t.shape[3]))
    # [1, k_h, k_w, out_c] as one row per output channel (one input channel: the filter of a CONV_2D).
    rows = None if filter_t.data is None else np.asarray(filter_t.data).reshape(-1, out_t.shape[3]).T
    portable = portable_target(model, op, in_t, out_t, multipliers, foldable=False)
    fc = streamed_fc(model, op)
    return ConvData("depthwise_conv2d", geometry.values(), portable, dsp_target(model, op, portable, rows, out_t, tame=False),
                    rows, depth_multiplier=out_t.shape[3] // in_t.shape[3], streamed_fc=fc,
                    fc_requant=streamed_fc_requant(model, fc))
