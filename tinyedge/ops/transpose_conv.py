"""TRANSPOSE_CONV (int8, NHWC, batch 1), as TFLM's transpose_conv.cc: the padding ComputePaddingHeightWidth
gives with the output as the "input" (dilation 1), PopulateConvolutionQuantizationParams' per-channel
multipliers, an int32 accumulator per output element (the scratch buffer), then requantization."""

from __future__ import annotations

from tinyedge.aot.lowering import require, require_types
from tinyedge.aot.quant import activation_range, per_channel_multipliers, same_or_valid_padding, zero_point
from tinyedge.ops.opdata import TransposeConvData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import PADDINGS, Operator, TfliteModel

SUPPORTS = (OpSupport("TRANSPOSE_CONV", "core"),)
OUTPUT_SHAPE, WEIGHTS, INPUT, BIAS = range(4)


def conv_out_size(padding: str, size: int, filter_size: int, stride: int) -> int:
    """ComputeOutSize (dilation 1)."""
    return (size + stride - 1) // stride if padding == "SAME" else (size + stride - filter_size) // stride


def prepare(model: TfliteModel, op: Operator) -> TransposeConvData:
    require_types(model, op, {op.inputs[INPUT]: "INT8", op.inputs[WEIGHTS]: "INT8", op.outputs[0]: "INT8"})
    return prepare_geometry(model, op)


def prepare_geometry(model: TfliteModel, op: Operator) -> TransposeConvData:
    """The geometry and multipliers of any activation type (the 16x8 variant's too: tinyedge.aot.int16)."""
    in_t, filter_t, out_t = (model.tensors[i] for i in (op.inputs[INPUT], op.inputs[WEIGHTS], op.outputs[0]))
    require(len(in_t.shape) == 4 and in_t.shape[0] == 1 and filter_t.data is not None, op,
            "has a batch other than 1 or weights computed at run time")
    padding = PADDINGS.get(op.options.padding)
    require(padding in ("SAME", "VALID"), op, "has padding other than SAME/VALID")
    _, in_h, in_w, in_c = (int(d) for d in in_t.shape)
    _, out_h, out_w, out_c = (int(d) for d in out_t.shape)
    _, k_h, k_w, _ = (int(d) for d in filter_t.shape)
    s_h, s_w = int(op.options.strideH), int(op.options.strideW)
    pad_h = same_or_valid_padding(out_h, k_h, s_h, 1, conv_out_size(padding, out_h, k_h, s_h))
    pad_w = same_or_valid_padding(out_w, k_w, s_w, 1, conv_out_size(padding, out_w, k_w, s_w))
    window = (in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, s_h, s_w, 1, 1, pad_h, pad_w)
    return TransposeConvData(window, tuple(per_channel_multipliers(in_t, filter_t, out_t, out_c)), -zero_point(in_t),
                             zero_point(out_t), activation_range(op.activation, out_t))
