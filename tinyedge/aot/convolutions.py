"""The AOT C rendering of CONV_2D's, DEPTHWISE_CONV_2D's (ConvData) and FULLY_CONNECTED's (FullyConnectedData)
preparation (tinyedge/ops/conv2d.py, depthwise_conv2d.py, fully_connected.py): te_kernels.c's portable kernels,
and on cores with the Arm DSP extension te_dsp.c's, whose limits and weight layout (`packed`) are applied here."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import Lowered, PointerOf, Table, op_prefix, requant_tables, table, uses_dsp
from tinyedge.ops.conv import Window, has_bias
from tinyedge.ops.cstructs import LIMITS
from tinyedge.ops.opdata import ConvData, ConvTarget, FullyConnectedData, Requant
from tinyedge.tflite_model import Operator, TfliteModel

DSP_MAX_K_H = LIMITS["TE_DSP_MAX_K_H"]
DSP_MAX_TAP_PAIRS = LIMITS["TE_DSP_MAX_TAP_PAIRS"]
# Depthwise planes up to this size are widened whole (lines computed whole); larger ones a ring of rows.
DSP_DEPTHWISE_PLANE_BYTES = 1024
# Convolutions whose two im2col columns would take more scratch than this run one pixel at a time.
# 4096: ResNet-8's 3x3x64 windows (2,304 B) take the two-pixel loop, 1.25 cycles a MAC (mid) where the
# one-pixel loop takes 1.75: 1.3 M estimated cycles less for 1,152 B more scratch.
DSP_TWO_COLUMNS_MAX_BYTES = 4096


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def _requant(prefix: str, r: Requant) -> list[Table]:
    return requant_tables(prefix, r.multipliers, r.input_offset, r.output_offset, r.activation_range, r.bounded)


def _bias(op: Operator, ptr: PointerOf) -> str:
    return ptr(op.inputs[2]) if has_bias(op) else "0"


def _bias_and_requant(target: ConvTarget, op: Operator, ptr: PointerOf) -> tuple[list[Table], str]:
    """(the bias table, if the op has its own, then te_requant_t's tables; the bias expression)."""
    prefix = op_prefix(op)
    if target.bias is None:
        return _requant(prefix, target.requant), _bias(op, ptr)
    return [table("int32_t", f"{prefix}bias", target.bias), *_requant(prefix, target.requant)], f"{prefix}bias"


def _packed_rows(prefix: str, rows: np.ndarray, interleave: int) -> Table:
    """Weight rows as te_dsp.h's `packed` words: rows padded with zeros to whole groups of four and
    to a multiple of `interleave`, then each `interleave` consecutive rows interleaved a word at a time."""
    out_c, size = rows.shape
    padded = np.zeros((-(-out_c // interleave) * interleave, _align4(size)), dtype=np.int8)
    padded[:out_c, :size] = rows
    words = (padded.reshape(-1, interleave, padded.shape[1] // 4, 4).transpose(0, 2, 1, 3).copy()
             .view("<i4").ravel())
    return table("int32_t", f"{prefix}packed", words, per_line=8)


def render_conv(data: ConvData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    prefix, win = op_prefix(op), Window(*data.window)
    target = data.dsp if uses_dsp(ptr) else data.portable
    if target.bias is not None and data.portable.bias is None:
        _bias(op, ptr)   # the bias tensor stays declared where te_dsp.c reads its tamed copy (the C compiler drops it)
    bias_tables, bias = _bias_and_requant(target, op, ptr)
    tables = [Table("te_window_t", f"{prefix}win", data.window, struct=True), *bias_tables]
    if data.kind == "depthwise_conv2d":
        return _depthwise(data, win, tables, bias, model, op, ptr)
    if uses_dsp(ptr) and data.kind == "conv2d" and win.k_h <= DSP_MAX_K_H and data.weights is not None:
        return _dsp_conv2d(data, win, [*tables, _packed_rows(prefix, data.weights, 2)], bias, model, op, ptr)
    out, source, weights = ptr(op.outputs[0]), ptr(op.inputs[0]), ptr(op.inputs[1])
    if data.kind == "conv2d_grouped":
        call = f"te_conv2d_grouped({out}, {source}, {weights}, {bias}, &{prefix}win, {data.groups}, &{prefix}q);"
        return Lowered(tables, call)
    if data.inplace_kernel and out == source:
        call = f"{data.inplace_kernel}({out}, te_scratch, {weights}, {bias}, &{prefix}win, &{prefix}q);"
        return Lowered(tables, call, inplace_ok=True, scratch_bytes=data.inplace_scratch)
    call = f"te_conv2d({out}, {source}, {weights}, {bias}, &{prefix}win, &{prefix}q);"
    return Lowered(tables, call, inplace_ok=bool(data.inplace_kernel))


def _depthwise(data: ConvData, win: Window, tables: list[Table], bias: str, model: TfliteModel, op: Operator,
               ptr: PointerOf) -> Lowered:
    prefix = op_prefix(op)
    if uses_dsp(ptr):
        dsp = _dsp_depthwise_conv2d(data, win, tables, bias, model, op, ptr)
        if dsp is not None:
            return dsp
    # One channel's plane in the scratch at a time: any stride, padding or dilation.
    in_bytes, out_bytes = win.in_h * win.in_w * win.in_c, win.out_h * win.out_w * win.out_c
    inplace = data.depth_multiplier == 1 and out_bytes <= in_bytes
    out, source, weights = ptr(op.outputs[0]), ptr(op.inputs[0]), ptr(op.inputs[1])
    if inplace and out == source:
        call = f"te_depthwise_conv2d_inplace({out}, te_scratch, {weights}, {bias}, &{prefix}win, &{prefix}q);"
        return Lowered(tables, call, inplace_ok=True, scratch_bytes=win.in_h * win.in_w)
    call = (f"te_depthwise_conv2d({out}, {source}, {weights}, {bias}, &{prefix}win, {data.depth_multiplier}, "
            f"&{prefix}q);")
    return Lowered(tables, call, inplace_ok=inplace)


def _dsp_conv2d(data: ConvData, win: Window, tables: list[Table], bias: str, model: TfliteModel, op: Operator,
                ptr: PointerOf) -> Lowered:
    """A convolution on te_dsp.c (filter in `{prefix}packed`): im2col into two int16 columns in the
    scratch (after the in-place ring)."""
    prefix = op_prefix(op)
    if data.streamed_fc is not None:
        return _dsp_conv2d_fc(data, win, tables, bias, model, op, ptr)
    size = _align4(win.k_h * win.k_w * win.in_c)
    col_bytes = (5 if win.in_c % 4 else 4) * size   # TE_DSP_CONV_COL_BYTES
    args = f"{prefix}packed, {bias}, &{prefix}win, &{prefix}q"
    out, source = ptr(op.outputs[0]), ptr(op.inputs[0])
    if ((win.k_h, win.k_w) == (1, 1) and (win.stride_h, win.stride_w) == (1, 1)
            and (win.in_h, win.in_w) == (win.out_h, win.out_w)):
        # Always two pixels at a time, whatever in_c: its col is two columns, never a solo one.
        call = f"te_dsp_pointwise_conv2d({out}, {source}, {args}, (int16_t *)te_scratch);"
        return Lowered(tables, call, inplace_ok=True, scratch_bytes=col_bytes, grows_in_place=True)
    solo = col_bytes > DSP_TWO_COLUMNS_MAX_BYTES
    if solo:
        col_bytes = (3 if win.in_c % 4 else 2) * size   # TE_DSP_CONV_SOLO_BYTES
    if data.inplace_kernel and out == source:
        ring = _align4(data.inplace_scratch)
        call = f"te_dsp_conv2d_inplace({out}, te_scratch, {args}, (int16_t *)(te_scratch + {ring}), {int(solo)});"
        return Lowered(tables, call, inplace_ok=True, scratch_bytes=ring + col_bytes)
    call = f"te_dsp_conv2d({out}, {source}, {args}, (int16_t *)te_scratch, {int(solo)});"
    return Lowered(tables, call, inplace_ok=bool(data.inplace_kernel), scratch_bytes=col_bytes)


def _dsp_conv2d_fc(data: ConvData, win: Window, tables: list[Table], bias: str, model: TfliteModel, op: Operator,
                   ptr: PointerOf) -> Lowered:
    """A conv streamed into the FULLY_CONNECTED after it (tinyedge.ops.conv.streamed_fc)."""
    fc = data.streamed_fc
    prefix, fc_prefix = op_prefix(op), op_prefix(fc)
    tables = tables + _requant(fc_prefix, data.fc_requant)
    col_bytes = _align4((5 if win.in_c % 4 else 4) * _align4(win.k_h * win.k_w * win.in_c))
    depth = model.tensors[fc.inputs[1]].shape[0]
    values = col_bytes + 4 * depth
    call = (f"te_dsp_conv2d_fc({ptr(fc.outputs[0])}, {ptr(op.inputs[0])}, {prefix}packed, {bias}, &{prefix}win, "
            f"&{prefix}q, (int16_t *)te_scratch, {ptr(fc.inputs[1])}, {_bias(fc, ptr)}, {depth}, "
            f"&{fc_prefix}q, (int32_t *)(te_scratch + {col_bytes}), te_scratch + {values});")
    return Lowered(tables, call, scratch_bytes=values + 2 * model.tensors[op.outputs[0]].shape[-1],
                   streams_output=True)


def _dsp_depthwise_conv2d(data: ConvData, win: Window, tables: list[Table], bias: str, model: TfliteModel,
                          op: Operator, ptr: PointerOf) -> Lowered | None:
    """DEPTHWISE_CONV_2D on te_dsp.c, or None where its kernel does not apply. One input channel is a
    CONV_2D whose filter is the depthwise one transposed ([1,kh,kw,M] -> [M,kh,kw,1]); depth multiplier
    1 runs channel by channel over a ring of k_h widened rows in the scratch."""
    prefix, k_h, k_w = op_prefix(op), win.k_h, win.k_w
    if win.in_c == 1 and data.weights is not None and k_h <= DSP_MAX_K_H:
        return _dsp_conv2d(data, win, [*tables, _packed_rows(prefix, data.weights, 2)], bias, model, op, ptr)
    if (data.depth_multiplier != 1 or (win.dil_h, win.dil_w) != (1, 1) or k_h > DSP_MAX_K_H or win.pad_h >= k_h
            or k_h * ((k_w + 1) // 2) > DSP_MAX_TAP_PAIRS):
        return None
    args = (f"{ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {ptr(op.inputs[1])}, {bias}, &{prefix}win, "
            f"&{prefix}q, (int16_t *)te_scratch")
    inplace_ok = win.out_h * win.out_w * win.out_c <= win.in_h * win.in_w * win.in_c
    padded_h = (win.out_h - 1) * win.stride_h + k_h
    padded_w = (win.out_w - 1) * win.stride_w + k_w
    transposed = win.out_w < win.out_h and k_w <= DSP_MAX_K_H and k_w * ((k_h + 1) // 2) <= DSP_MAX_TAP_PAIRS
    plane_bytes = 2 * (padded_w * (padded_h + 2) if transposed else padded_h * (padded_w + 2))
    if plane_bytes <= DSP_DEPTHWISE_PLANE_BYTES:
        return Lowered(tables, f"te_dsp_depthwise_conv2d_plane({args}, {int(transposed)});", inplace_ok=inplace_ok,
                       scratch_bytes=plane_bytes)
    rows_bytes = 2 * k_h * (padded_w + 2)
    return Lowered(tables, f"te_dsp_depthwise_conv2d({args});", inplace_ok=inplace_ok, scratch_bytes=rows_bytes)


def render_fully_connected(data: FullyConnectedData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    if uses_dsp(ptr) and data.streamed_by is not None:
        return Lowered([], f"/* computed by op {data.streamed_by}'s te_dsp_conv2d_fc */")
    prefix = op_prefix(op)
    tables, bias = _bias_and_requant(data.dsp if uses_dsp(ptr) else data.portable, op, ptr)
    shape = f"{data.batches}, {data.accum_depth}, {data.out_depth}, &{prefix}q"
    if uses_dsp(ptr) and data.weights is not None and data.accum_depth % 4 == 0:
        tables.append(_packed_rows(prefix, data.weights, 4))
        call = f"te_dsp_fully_connected_packed({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {prefix}packed, {bias}, {shape});"
        return Lowered(tables, call)
    kernel = "te_dsp_fully_connected" if uses_dsp(ptr) else "te_fully_connected"
    return Lowered(tables, f"{kernel}({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {ptr(op.inputs[1])}, {bias}, {shape});")
