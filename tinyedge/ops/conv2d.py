"""CONV_2D (int8), as TFLM's conv.cc (ConvPerChannel): per-channel multipliers, the input offset folded into
the bias where no window reaches into padding, the pruned channels' bias tamed and the accumulators' bounds
proven for te_dsp.c, and the in-place kernel a same-size convolution may take; grouped convolutions (PyTorch's
groups > 1) on the portable te_conv2d_grouped on every core. int16 (16x8): tinyedge.aot.int16."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.aot.quant import per_channel_multipliers, same_or_valid_padding
from tinyedge.ops.conv import (
    dsp_target, int8_tensors, portable_target, streamed_fc, streamed_fc_requant, weight_rows, window,
)
from tinyedge.ops.opdata import ConvData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import PADDINGS, Operator, Tensor, TfliteModel

SUPPORTS = (OpSupport("CONV_2D", "core", ("int8", "int8 grouped (portable kernel)"), dsp="te_dsp_conv2d",
                      viper_variants=("int8", "int8 grouped")),)


def prepare(model: TfliteModel, op: Operator) -> ConvData:
    in_t, out_t = int8_tensors(model, op)
    filter_t = model.tensors[op.inputs[1]]
    require(len(in_t.shape) == 4 and in_t.shape[0] == 1, op, "has a batch other than 1")
    if filter_t.shape[3] != in_t.shape[3]:
        return _grouped(model, op, in_t, out_t, filter_t)
    o = op.options
    k_h, k_w, dil_h, dil_w = filter_t.shape[1], filter_t.shape[2], int(o.dilationHFactor), int(o.dilationWFactor)
    geometry = window(in_t, out_t, k_h, k_w, o, dil_h, dil_w)
    multipliers = tuple(per_channel_multipliers(in_t, filter_t, out_t, out_t.shape[3]))
    portable = portable_target(model, op, in_t, out_t, multipliers, geometry.inside)
    rows = weight_rows(filter_t, filter_t.shape[0])
    dsp = dsp_target(model, op, portable, rows, out_t)
    require(PADDINGS.get(o.padding) in ("SAME", "VALID"), op, "has padding other than SAME/VALID")
    inplace_kernel, scratch = inplace_kernel_of(in_t, out_t, k_h, k_w, o, dil_h, dil_w)
    fc = streamed_fc(model, op)
    return ConvData("conv2d", geometry.values(), portable, dsp, rows, inplace_kernel=inplace_kernel,
                    inplace_scratch=scratch, streamed_fc=fc, fc_requant=streamed_fc_requant(model, fc))


def _grouped(model: TfliteModel, op: Operator, in_t: Tensor, out_t: Tensor, filter_t: Tensor) -> ConvData:
    """CONV_2D with groups (PyTorch's Conv1d/Conv2d with groups > 1): te_conv2d_grouped, on every core."""
    groups = in_t.shape[3] // filter_t.shape[3]
    require(in_t.shape[3] % filter_t.shape[3] == 0 and out_t.shape[3] % groups == 0, op,
            "has channels that do not divide into its groups")
    o = op.options
    k_h, k_w, dil_h, dil_w = filter_t.shape[1], filter_t.shape[2], int(o.dilationHFactor), int(o.dilationWFactor)
    geometry = window(in_t, out_t, k_h, k_w, o, dil_h, dil_w)
    multipliers = tuple(per_channel_multipliers(in_t, filter_t, out_t, out_t.shape[3]))
    portable = portable_target(model, op, in_t, out_t, multipliers, geometry.inside)
    require(PADDINGS.get(o.padding) in ("SAME", "VALID"), op, "has padding other than SAME/VALID")
    return ConvData("conv2d_grouped", geometry.values(), portable, portable, groups=groups)


def inplace_kernel_of(in_t: Tensor, out_t: Tensor, k_h: int, k_w: int, options, dil_h: int,
                      dil_w: int) -> tuple[str, int]:
    """(in-place kernel, its scratch bytes) for a CONV_2D that can write over its input, or ("", 0).

    Both need stride 1, dilation 1 and the input's height and width: the pointwise kernel goes pixel
    by pixel (out_c <= in_c), the row kernel keeps the pad_h rows above the current one (out_c == in_c).
    """
    _, in_h, in_w, in_c = in_t.shape
    _, out_h, out_w, out_c = out_t.shape
    if (int(options.strideH), int(options.strideW), dil_h, dil_w) != (1, 1, 1, 1) or (out_h, out_w) != (in_h, in_w):
        return "", 0
    if (k_h, k_w) == (1, 1) and out_c <= in_c:
        return "te_pointwise_conv2d_inplace", out_c
    if out_c == in_c:
        pad_h = same_or_valid_padding(in_h, k_h, 1, 1, out_h)
        return "te_conv2d_inplace", (pad_h + 1) * in_w * in_c
    return "", 0
