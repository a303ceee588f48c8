"""The AOT lowerings of the convolutions and FULLY_CONNECTED (te_kernels.c and te_dsp.c), every other op's
lowering from its op module (tinyedge/ops/*.py, rendered by `tinyedge.aot.opdata`), and the check that
refuses the rest."""

from __future__ import annotations

import numpy as np

from tinyedge.aot import int16, opdata
from tinyedge.aot.dsp_layout import tamed_dead_channels
from tinyedge.aot.lowering import (
    Lowered, Lowering, PointerOf, Table, op_prefix, requant_tables, require, table, uses_dsp,
)
from tinyedge.aot.quant import activation_range, per_channel_multipliers, same_or_valid_padding
from tinyedge.errors import TinyedgeError
from tinyedge.ops import int32_ops, registry
from tinyedge.ops.conv import (
    accumulator_bounds, bias_values, fc_multipliers, fits_int32, fold_bias, has_bias, window,
)
from tinyedge.ops.cstructs import LIMITS
from tinyedge.tflite_model import PADDINGS, Operator, Tensor, TfliteModel, refuse_custom_ops

# Ops whose output is the input's bytes under another shape: no code, one buffer.
ALIAS_OPS = frozenset({"RESHAPE", "SQUEEZE"})


def _requant_tables(prefix: str, multipliers: list[tuple[int, int]], input_offset: int, output_t: Tensor,
                   activation: str, bounded: bool = False) -> list[Table]:
    """te_requant_t and its tables, with the fused activation's range on the output tensor."""
    return requant_tables(prefix, multipliers, input_offset, int(output_t.zero_point[0]),
                          activation_range(activation, output_t), bounded)


def accumulators_bounded(model: TfliteModel, op: Operator, rows: np.ndarray | None,
                         multipliers: list[tuple[int, int]], tamed: dict[int, int] | None = None) -> bool:
    """Every accumulator of the op (bias, possibly with the input offset folded in, plus weights
    times inputs with their offset: at most 255 + 128 each) times 2^left of its channel is below 2^30.
    `rows` are the weights per output channel; `tamed`, biases replaced (see _tamed_bias)."""
    if rows is None or (has_bias(op) and model.tensors[op.inputs[2]].data is None):
        return False
    bias = bias_values(model, op, rows.shape[0]).copy() if has_bias(op) else 0
    for channel, value in (tamed or {}).items():
        bias[channel] = value
    return bool(np.all(accumulator_bounds(rows, bias, 255 + 128, multipliers) < (1 << 30)))


def _folded_bias(model: TfliteModel, op: Operator, input_offset: int) -> np.ndarray | None:
    """bias + input_offset * sum(weights) per output channel, so the inner loop multiplies raw inputs.

    Exact (integer arithmetic) whenever every tap of every window reads a real input, i.e. for
    FULLY_CONNECTED and for convolutions whose windows never touch padding. None when not applicable.
    """
    if not has_bias(op):
        return None
    bias, weights = model.tensors[op.inputs[2]].data, model.tensors[op.inputs[1]].data
    if bias is None or weights is None or input_offset == 0:
        return None
    folded = fold_bias(bias, weights, input_offset)
    return folded if fits_int32(folded) else None


def _bias_and_offset(model: TfliteModel, op: Operator, ptr: PointerOf, in_t: Tensor, prefix: str,
                     foldable: bool) -> tuple[list[Table], str, int]:
    """(extra tables, bias expression, input offset for the kernel): folded when `foldable`."""
    input_offset = -int(in_t.zero_point[0])
    folded = _folded_bias(model, op, input_offset) if foldable else None
    if folded is None:
        return [], _bias(op, ptr), input_offset
    return [table("int32_t", f"{prefix}bias", folded)], f"{prefix}bias", 0


def _tamed_bias(model: TfliteModel, op: Operator, ptr: PointerOf, prefix: str, rows: np.ndarray | None,
                multipliers: list[tuple[int, int]], out_t: Tensor, bias_tables: list[Table], bias: str,
                input_offset: int) -> tuple[list[Table], str, dict[int, int]]:
    """On te_dsp.c, the op's bias with its pruned channels' ±2^30 replaced (dsp_layout), so that it
    keeps the short exact requantization: (bias tables, bias expression, the replaced channels)."""
    if not uses_dsp(ptr) or rows is None or not has_bias(op) or model.tensors[op.inputs[2]].data is None:
        return bias_tables, bias, {}
    original = bias_values(model, op, rows.shape[0])
    act_range = activation_range(op.activation, out_t)
    tamed = tamed_dead_channels(original, rows, multipliers, int(out_t.zero_point[0]), act_range)
    if not tamed:
        return bias_tables, bias, {}
    values = (fold_bias(original, rows, -int(model.tensors[op.inputs[0]].zero_point[0]))
              if bias_tables and input_offset == 0 else original.copy())
    for channel, value in tamed.items():
        values[channel] = value
    return [table("int32_t", f"{prefix}bias", values)], f"{prefix}bias", tamed


def _window(op: Operator, in_t: Tensor, out_t: Tensor, k_h: int, k_w: int, options, dil_h: int = 1,
            dil_w: int = 1) -> Table:
    geometry = window(in_t, out_t, k_h, k_w, options, dil_h, dil_w)
    require(PADDINGS.get(options.padding) in ("SAME", "VALID"), op, "has padding other than SAME/VALID")
    return Table("te_window_t", f"{op_prefix(op)}win", geometry.values(), struct=True)


def _bias(op: Operator, ptr: PointerOf) -> str:
    return ptr(op.inputs[2]) if has_bias(op) else "0"


def _int8_tensors(model: TfliteModel, op: Operator) -> list[Tensor]:
    tensors = [model.tensors[i] for i in (op.inputs[0], op.outputs[0])]
    require(all(t.type_name == "INT8" for t in tensors), op, "has non-int8 tensors")
    return tensors


def lower_conv2d(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    in_t, out_t = _int8_tensors(model, op)
    filter_t = model.tensors[op.inputs[1]]
    require(len(in_t.shape) == 4 and in_t.shape[0] == 1, op, "has a batch other than 1")
    if filter_t.shape[3] != in_t.shape[3]:
        return _grouped_conv2d(model, op, ptr, in_t, out_t, filter_t)
    prefix, o = op_prefix(op), op.options
    k_h, k_w, dil_h, dil_w = filter_t.shape[1], filter_t.shape[2], int(o.dilationHFactor), int(o.dilationWFactor)
    inside = window(in_t, out_t, k_h, k_w, o, dil_h, dil_w).inside
    bias_tables, bias, input_offset = _bias_and_offset(model, op, ptr, in_t, prefix, inside)
    multipliers = per_channel_multipliers(in_t, filter_t, out_t, out_t.shape[3])
    rows = None if filter_t.data is None else np.asarray(filter_t.data).reshape(filter_t.shape[0], -1)
    bias_tables, bias, tamed = _tamed_bias(model, op, ptr, prefix, rows, multipliers, out_t, bias_tables, bias,
                                           input_offset)
    tables = [_window(op, in_t, out_t, k_h, k_w, o, dil_h, dil_w), *bias_tables]
    bounded = uses_dsp(ptr) and accumulators_bounded(model, op, rows, multipliers, tamed)
    tables += _requant_tables(prefix, multipliers, input_offset, out_t, op.activation, bounded)
    inplace_kernel, scratch = _conv_inplace_kernel(in_t, out_t, k_h, k_w, o, dil_h, dil_w)
    if uses_dsp(ptr) and k_h <= DSP_MAX_K_H and rows is not None:
        return _dsp_conv2d(model, op, ptr, [*tables, _packed_filter(prefix, rows)], bias, in_t, out_t, k_h, k_w,
                           inplace_kernel, scratch)
    if inplace_kernel and ptr(op.outputs[0]) == ptr(op.inputs[0]):
        call = (f"{inplace_kernel}({ptr(op.outputs[0])}, te_scratch, {ptr(op.inputs[1])}, {bias}, "
                f"&{prefix}win, &{prefix}q);")
        return Lowered(tables, call, inplace_ok=True, scratch_bytes=scratch)
    call = (f"te_conv2d({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {ptr(op.inputs[1])}, {bias}, "
            f"&{prefix}win, &{prefix}q);")
    return Lowered(tables, call, inplace_ok=bool(inplace_kernel))


def _grouped_conv2d(model: TfliteModel, op: Operator, ptr: PointerOf, in_t: Tensor, out_t: Tensor,
                    filter_t: Tensor) -> Lowered:
    """CONV_2D with groups (PyTorch's Conv1d/Conv2d with groups > 1): te_conv2d_grouped, on every core."""
    groups = in_t.shape[3] // filter_t.shape[3]
    require(in_t.shape[3] % filter_t.shape[3] == 0 and out_t.shape[3] % groups == 0, op,
            "has channels that do not divide into its groups")
    prefix, o = op_prefix(op), op.options
    k_h, k_w, dil_h, dil_w = filter_t.shape[1], filter_t.shape[2], int(o.dilationHFactor), int(o.dilationWFactor)
    inside = window(in_t, out_t, k_h, k_w, o, dil_h, dil_w).inside
    bias_tables, bias, input_offset = _bias_and_offset(model, op, ptr, in_t, prefix, inside)
    multipliers = per_channel_multipliers(in_t, filter_t, out_t, out_t.shape[3])
    tables = [_window(op, in_t, out_t, k_h, k_w, o, dil_h, dil_w), *bias_tables,
              *_requant_tables(prefix, multipliers, input_offset, out_t, op.activation)]
    call = (f"te_conv2d_grouped({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {ptr(op.inputs[1])}, {bias}, "
            f"&{prefix}win, {groups}, &{prefix}q);")
    return Lowered(tables, call)


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


def _packed_rows(prefix: str, rows: np.ndarray, interleave: int) -> Table:
    """Weight rows as te_dsp.h's `packed` words: rows padded with zeros to whole groups of four and
    to a multiple of `interleave`, then each `interleave` consecutive rows interleaved a word at a time."""
    out_c, size = rows.shape
    padded = np.zeros((-(-out_c // interleave) * interleave, _align4(size)), dtype=np.int8)
    padded[:out_c, :size] = rows
    words = (padded.reshape(-1, interleave, padded.shape[1] // 4, 4).transpose(0, 2, 1, 3).copy()
             .view("<i4").ravel())
    return table("int32_t", f"{prefix}packed", words, per_line=8)


def _packed_filter(prefix: str, rows: np.ndarray) -> Table:
    """A conv filter's rows (out_c x k_h*k_w*in_c), two rows interleaved (te_dsp.h's `packed`)."""
    return _packed_rows(prefix, rows, 2)


def _dsp_conv2d(model: TfliteModel, op: Operator, ptr: PointerOf, tables: list[Table], bias: str, in_t: Tensor, out_t: Tensor,
                k_h: int, k_w: int, inplace_kernel: str, ring_bytes: int) -> Lowered:
    """CONV_2D on te_dsp.c (filter in `{prefix}packed`): im2col into two int16 columns in the
    scratch (after the in-place ring)."""
    prefix = op_prefix(op)
    fc = streamed_fc(model, op)
    if fc is not None:
        return _dsp_conv2d_fc(model, op, fc, ptr, tables, bias, in_t, k_h, k_w)
    size = _align4(k_h * k_w * in_t.shape[3])
    col_bytes = (5 if in_t.shape[3] % 4 else 4) * size   # TE_DSP_CONV_COL_BYTES
    args = f"{prefix}packed, {bias}, &{prefix}win, &{prefix}q"
    out, source = ptr(op.outputs[0]), ptr(op.inputs[0])
    o = op.options
    if ((k_h, k_w) == (1, 1) and (int(o.strideH), int(o.strideW)) == (1, 1)
            and in_t.shape[1:3] == out_t.shape[1:3]):
        # Always two pixels at a time, whatever in_c: its col is two columns, never a solo one.
        call = f"te_dsp_pointwise_conv2d({out}, {source}, {args}, (int16_t *)te_scratch);"
        return Lowered(tables, call, inplace_ok=True, scratch_bytes=col_bytes, grows_in_place=True)
    solo = col_bytes > DSP_TWO_COLUMNS_MAX_BYTES
    if solo:
        col_bytes = (3 if in_t.shape[3] % 4 else 2) * size   # TE_DSP_CONV_SOLO_BYTES
    if inplace_kernel and out == source:
        ring = _align4(ring_bytes)
        call = f"te_dsp_conv2d_inplace({out}, te_scratch, {args}, (int16_t *)(te_scratch + {ring}), {int(solo)});"
        return Lowered(tables, call, inplace_ok=True, scratch_bytes=ring + col_bytes)
    call = f"te_dsp_conv2d({out}, {source}, {args}, (int16_t *)te_scratch, {int(solo)});"
    return Lowered(tables, call, inplace_ok=bool(inplace_kernel), scratch_bytes=col_bytes)


def _conv_inplace_kernel(in_t: Tensor, out_t: Tensor, k_h: int, k_w: int, options, dil_h: int,
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


def lower_depthwise_conv2d(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    in_t, out_t = _int8_tensors(model, op)
    filter_t = model.tensors[op.inputs[1]]
    require(len(in_t.shape) == 4 and in_t.shape[0] == 1, op, "has a batch other than 1")
    depth_multiplier = out_t.shape[3] // in_t.shape[3]
    prefix, o = op_prefix(op), op.options
    tables = [_window(op, in_t, out_t, filter_t.shape[1], filter_t.shape[2], o,
                      int(o.dilationHFactor), int(o.dilationWFactor))]
    multipliers = per_channel_multipliers(in_t, filter_t, out_t, out_t.shape[3])
    rows = None if filter_t.data is None else np.asarray(filter_t.data).reshape(-1, out_t.shape[3]).T
    bounded = uses_dsp(ptr) and accumulators_bounded(model, op, rows, multipliers)
    tables += _requant_tables(prefix, multipliers, -int(in_t.zero_point[0]), out_t, op.activation, bounded)
    if uses_dsp(ptr):
        dsp = _dsp_depthwise_conv2d(model, op, ptr, tables, in_t, out_t, filter_t, depth_multiplier)
        if dsp is not None:
            return dsp
    # One channel's plane in the scratch at a time: any stride, padding or dilation.
    inplace = depth_multiplier == 1 and out_t.nbytes <= in_t.nbytes
    if inplace and ptr(op.outputs[0]) == ptr(op.inputs[0]):
        call = (f"te_depthwise_conv2d_inplace({ptr(op.outputs[0])}, te_scratch, {ptr(op.inputs[1])}, "
                f"{_bias(op, ptr)}, &{prefix}win, &{prefix}q);")
        return Lowered(tables, call, inplace_ok=True, scratch_bytes=in_t.shape[1] * in_t.shape[2])
    call = (f"te_depthwise_conv2d({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {ptr(op.inputs[1])}, "
            f"{_bias(op, ptr)}, &{prefix}win, {depth_multiplier}, &{prefix}q);")
    return Lowered(tables, call, inplace_ok=inplace)


def _dsp_depthwise_conv2d(model: TfliteModel, op: Operator, ptr: PointerOf, tables: list[Table], in_t: Tensor,
                          out_t: Tensor, filter_t: Tensor, depth_multiplier: int) -> Lowered | None:
    """DEPTHWISE_CONV_2D on te_dsp.c, or None where its kernel does not apply. One input channel is a
    CONV_2D whose filter is the depthwise one transposed ([1,kh,kw,M] -> [M,kh,kw,1]); depth multiplier
    1 runs channel by channel over a ring of k_h widened rows in the scratch."""
    prefix, o = op_prefix(op), op.options
    _, k_h, k_w, _ = filter_t.shape
    dil_h, dil_w = int(o.dilationHFactor), int(o.dilationWFactor)
    bias = _bias(op, ptr)
    if in_t.shape[3] == 1 and filter_t.data is not None and k_h <= DSP_MAX_K_H:
        rows = np.transpose(np.asarray(filter_t.data).reshape(k_h * k_w, -1))
        return _dsp_conv2d(model, op, ptr, [*tables, _packed_filter(prefix, rows)], bias, in_t, out_t, k_h, k_w, "", 0)
    pad_h = same_or_valid_padding(in_t.shape[1], k_h, int(o.strideH), dil_h, out_t.shape[1])
    if (depth_multiplier != 1 or (dil_h, dil_w) != (1, 1) or k_h > DSP_MAX_K_H or pad_h >= k_h
            or k_h * ((k_w + 1) // 2) > DSP_MAX_TAP_PAIRS):
        return None
    args = (f"{ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {ptr(op.inputs[1])}, {bias}, &{prefix}win, "
            f"&{prefix}q, (int16_t *)te_scratch")
    inplace_ok = out_t.nbytes <= in_t.nbytes
    out_h, out_w = out_t.shape[1], out_t.shape[2]
    padded_h = (out_h - 1) * int(o.strideH) + k_h
    padded_w = (out_w - 1) * int(o.strideW) + k_w
    transposed = out_w < out_h and k_w <= DSP_MAX_K_H and k_w * ((k_h + 1) // 2) <= DSP_MAX_TAP_PAIRS
    plane_bytes = 2 * (padded_w * (padded_h + 2) if transposed else padded_h * (padded_w + 2))
    if plane_bytes <= DSP_DEPTHWISE_PLANE_BYTES:
        return Lowered(tables, f"te_dsp_depthwise_conv2d_plane({args}, {int(transposed)});", inplace_ok=inplace_ok,
                       scratch_bytes=plane_bytes)
    rows_bytes = 2 * k_h * (padded_w + 2)
    return Lowered(tables, f"te_dsp_depthwise_conv2d({args});", inplace_ok=inplace_ok, scratch_bytes=rows_bytes)


def streamed_fc(model: TfliteModel, op: Operator) -> Operator | None:
    """The FULLY_CONNECTED that a CONV_2D or single-channel DEPTHWISE_CONV_2D `op` feeds on DSP targets,
    when it is that output's only reader (batch 1, constant int8 weights): te_dsp_conv2d_fc then
    accumulates the FC as the conv's outputs come, and the conv's output tensor takes no memory."""
    if op.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D") or not op.outputs:
        return None
    in_t, filter_t = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]]
    if op.opcode == "DEPTHWISE_CONV_2D" and (len(in_t.shape) != 4 or in_t.shape[3] != 1):
        return None
    if filter_t.data is None or len(filter_t.shape) != 4 or filter_t.shape[1] > DSP_MAX_K_H:
        return None
    if op.opcode == "CONV_2D" and (len(in_t.shape) != 4 or filter_t.shape[3] != in_t.shape[3]):   # grouped
        return None
    out = op.outputs[0]
    readers = [o for o in model.operators if out in o.inputs]
    if out in model.outputs or len(readers) != 1:
        return None
    fc = readers[0]
    fc_filter = model.tensors[fc.inputs[1]] if len(fc.inputs) > 1 else None
    if (fc.opcode != "FULLY_CONNECTED" or fc.inputs[0] != out or fc_filter is None or fc_filter.data is None
            or fc_filter.type_name != "INT8" or len(fc_filter.shape) != 2 or fc_filter.shape[1] != model.tensors[out].size
            or model.tensors[fc.outputs[0]].type_name != "INT8" or model.tensors[out].type_name != "INT8"):
        return None
    return fc


def _producer(model: TfliteModel, tensor: int) -> Operator | None:
    return next((o for o in model.operators if tensor in o.outputs), None)


def _dsp_conv2d_fc(model: TfliteModel, op: Operator, fc: Operator, ptr: PointerOf, tables: list[Table], bias: str,
                   in_t: Tensor, k_h: int, k_w: int) -> Lowered:
    """A conv streamed into the FULLY_CONNECTED after it (see streamed_fc)."""
    prefix, fc_prefix = op_prefix(op), op_prefix(fc)
    fc_in, fc_out = model.tensors[fc.inputs[0]], model.tensors[fc.outputs[0]]
    fc_filter = model.tensors[fc.inputs[1]]
    tables = tables + _requant_tables(fc_prefix, fc_multipliers(fc_in, fc_filter, fc_out), -int(fc_in.zero_point[0]),
                                      fc_out, fc.activation)
    col_bytes = _align4((5 if in_t.shape[3] % 4 else 4) * _align4(k_h * k_w * in_t.shape[3]))
    depth = fc_filter.shape[0]
    values = col_bytes + 4 * depth
    call = (f"te_dsp_conv2d_fc({ptr(fc.outputs[0])}, {ptr(op.inputs[0])}, {prefix}packed, {bias}, &{prefix}win, "
            f"&{prefix}q, (int16_t *)te_scratch, {ptr(fc.inputs[1])}, {_bias(fc, ptr)}, {depth}, "
            f"&{fc_prefix}q, (int32_t *)(te_scratch + {col_bytes}), te_scratch + {values});")
    return Lowered(tables, call, scratch_bytes=values + 2 * model.tensors[op.outputs[0]].shape[-1],
                   streams_output=True)


def lower_fully_connected(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    in_t, out_t = _int8_tensors(model, op)
    filter_t = model.tensors[op.inputs[1]]
    require(filter_t.type_name == "INT8" and len(filter_t.shape) == 2, op, "has no 2-D int8 weights")
    out_depth, accum_depth = filter_t.shape
    producer = _producer(model, op.inputs[0])
    if uses_dsp(ptr) and producer is not None and streamed_fc(model, producer) is op:
        return Lowered([], f"/* computed by op {producer.index}'s te_dsp_conv2d_fc */")
    multipliers = fc_multipliers(in_t, filter_t, out_t)
    prefix = op_prefix(op)
    bias_tables, bias, input_offset = _bias_and_offset(model, op, ptr, in_t, prefix, foldable=True)
    rows = None if filter_t.data is None else np.asarray(filter_t.data).reshape(out_depth, -1)
    bounded = uses_dsp(ptr) and accumulators_bounded(model, op, rows, multipliers)
    tables = bias_tables + _requant_tables(prefix, multipliers, input_offset, out_t, op.activation, bounded)
    if uses_dsp(ptr) and rows is not None and accum_depth % 4 == 0:
        tables.append(_packed_rows(prefix, rows, 4))
        call = (f"te_dsp_fully_connected_packed({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {prefix}packed, {bias}, "
                f"{in_t.size // accum_depth}, {accum_depth}, {out_depth}, &{prefix}q);")
        return Lowered(tables, call)
    kernel = "te_dsp_fully_connected" if uses_dsp(ptr) else "te_fully_connected"
    call = (f"{kernel}({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {ptr(op.inputs[1])}, {bias}, "
            f"{in_t.size // accum_depth}, {accum_depth}, {out_depth}, &{prefix}q);")
    return Lowered(tables, call)


CORE_LOWERINGS: dict[str, Lowering] = {
    "CONV_2D": lower_conv2d,
    "DEPTHWISE_CONV_2D": lower_depthwise_conv2d,
    "FULLY_CONNECTED": lower_fully_connected,
}


# The ops this module lowers, by family (te_kernels.c and te_dsp.c's); tinyedge.ops.registry's LOWERED_OPS
# says the same per op (its family, C files, DSP kernel and which other runtimes run it); a test keeps the
# two in step.
LOWERINGS_BY_FAMILY: dict[str, dict[str, Lowering]] = {"core": CORE_LOWERINGS}


def lowerings() -> dict[str, Lowering]:
    """Every op's lowering: the convolutions' above and the op modules' (tinyedge/ops/*.py) prepare steps."""
    modules = {name: opdata.lowering(module.prepare) for name, module in registry.PREPARED.items()}
    every = {**modules, **{op: lower for family in LOWERINGS_BY_FAMILY.values() for op, lower in family.items()}}
    return {name: _int32_dispatch(name, int16.dispatch(name, lower)) for name, lower in every.items()}


def _int32_dispatch(name: str, other: Lowering) -> Lowering:
    """The op's lowering: its plain int32 variant (tinyedge.ops.int32_ops) on int32 tensors, else `other`."""
    if name not in int32_ops.INT32_OPS:
        return other
    int32 = opdata.lowering(int32_ops.prepare_int32)

    def lower(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
        return (int32 if int32_ops.is_int32_variant(model, op) else other)(model, op, ptr)
    return lower


def supported_ops() -> list[str]:
    return registry.aot_ops()


def unsupported_ops(model: TfliteModel) -> list[str]:
    return sorted({op.kind for op in model.operators} - set(registry.OPS))


def check_supported(model: TfliteModel) -> None:
    """Refuse, naming the ops, a model the AOT compiler cannot compile."""
    refuse_custom_ops(model, {name for name in registry.OPS if name.startswith("Signal")})
    missing = unsupported_ops(model)
    if missing:
        name = model.path.name if model.path else "the model"
        verb = "is" if len(missing) == 1 else "are"
        raise TinyedgeError(
            f"{name} uses {', '.join(missing)}, which {verb} not supported by the AOT runtime "
            f"(it compiles {', '.join(supported_ops())}): build it with `--runtime tflm` instead."
        )
    if model.subgraph_count != 1:
        raise TinyedgeError("the model has more than one subgraph, which the AOT runtime cannot compile: "
                            "build it with `--runtime tflm` instead.")
