"""The generation-time preparation shared by CONV_2D, DEPTHWISE_CONV_2D, the pools and FULLY_CONNECTED (their
op modules: conv2d, depthwise_conv2d, pool, fully_connected), as TFLM's Prepare computes it: the window
(te_window_t's fields), the multipliers, the bias with the input offset folded in and the accumulators' proven
bounds. The AOT C emitter (tinyedge.aot.convolutions) and the viper emitter (tinyedge.viper.generator) both
render these; each applies its own kernel's limits to the bounds.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np

from tinyedge.aot.dsp_layout import tamed_dead_channels
from tinyedge.aot.lowering import require
from tinyedge.aot.quant import activation_range, per_channel_multipliers, per_tensor_fc_multiplier, same_or_valid_padding
from tinyedge.ops.cstructs import LIMITS
from tinyedge.ops.opdata import ConvTarget, Requant
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

DSP_MAX_K_H = LIMITS["TE_DSP_MAX_K_H"]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


@dataclass(frozen=True)
class Window:
    """te_window_t (tinyedge.ops.cstructs), field for field."""
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    dil_h: int
    dil_w: int
    pad_h: int
    pad_w: int

    def values(self) -> tuple[int, ...]:
        return astuple(self)

    @property
    def inside(self) -> bool:
        """No window reaches into padding: every tap of every window reads a real input."""
        return (self.pad_h == 0 and self.pad_w == 0
                and (self.out_h - 1) * self.stride_h + self.dil_h * (self.k_h - 1) < self.in_h
                and (self.out_w - 1) * self.stride_w + self.dil_w * (self.k_w - 1) < self.in_w)


def window(in_t: Tensor, out_t: Tensor, k_h: int, k_w: int, options, dil_h: int = 1, dil_w: int = 1) -> Window:
    """The geometry of a convolution or pool (NHWC, batch 1), with TFLM's SAME/VALID leading padding."""
    _, in_h, in_w, in_c = in_t.shape
    _, out_h, out_w, out_c = out_t.shape
    s_h, s_w = int(options.strideH), int(options.strideW)
    # With one output row (column) the stride is never used: a pool as large as its input may have a stride
    # te_window_t's int8_t cannot hold, which then stands as 1.
    s_h, s_w = (1 if out_h == 1 and s_h > 127 else s_h), (1 if out_w == 1 and s_w > 127 else s_w)
    pad_h = same_or_valid_padding(in_h, k_h, s_h, dil_h, out_h)
    pad_w = same_or_valid_padding(in_w, k_w, s_w, dil_w, out_w)
    return Window(*(int(v) for v in (in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, s_h, s_w, dil_h, dil_w,
                                     pad_h, pad_w)))


def fc_multipliers(in_t: Tensor, filter_t: Tensor, out_t: Tensor) -> list[tuple[int, int]]:
    """FULLY_CONNECTED's multipliers: per output row for per-channel weights, else one."""
    if filter_t.per_channel:
        return per_channel_multipliers(in_t, filter_t, out_t, filter_t.shape[0])
    return [per_tensor_fc_multiplier(in_t, filter_t, out_t)]


def has_bias(op: Operator) -> bool:
    return len(op.inputs) > 2 and op.inputs[2] >= 0


def bias_values(model: TfliteModel, op: Operator, channels: int) -> np.ndarray:
    """The op's bias per output channel (zeros when it has none)."""
    if has_bias(op):
        return np.asarray(model.tensors[op.inputs[2]].data, dtype=np.int64).reshape(-1)
    return np.zeros(channels, dtype=np.int64)


def fold_bias(bias: np.ndarray, rows: np.ndarray, offset: int) -> np.ndarray:
    """bias + offset * sum(weights) per output channel (`rows`: the weights per output channel), in int64:
    the kernel then multiplies raw inputs. Exact where every tap reads a real input."""
    sums = rows.astype(np.int64).reshape(rows.shape[0], -1).sum(axis=1)
    return np.asarray(bias, dtype=np.int64) + offset * sums


def fits_int32(values: np.ndarray) -> bool:
    return values.size == 0 or (int(values.min()) >= INT32_MIN and int(values.max()) <= INT32_MAX)


def accumulator_bounds(rows: np.ndarray, bias: np.ndarray | int, input_span: int,
                       multipliers: list[tuple[int, int]]) -> np.ndarray:
    """Per output channel, the largest magnitude the accumulator reaches once shifted left by its
    channel's left shift: |bias| + input_span * sum(|weights|), input_span bounding |input (+ offset)|."""
    weights = np.abs(rows.astype(np.int64).reshape(rows.shape[0], -1)).sum(axis=1)
    lefts = np.array([max(shift, 0) for _, shift in multipliers], dtype=np.int64)
    return (np.abs(np.asarray(bias, dtype=np.int64)) + input_span * weights) << lefts


def int8_tensors(model: TfliteModel, op: Operator) -> list[Tensor]:
    """The op's input and output, refused unless both are int8."""
    tensors = [model.tensors[i] for i in (op.inputs[0], op.outputs[0])]
    require(all(t.type_name == "INT8" for t in tensors), op, "has non-int8 tensors")
    return tensors


def weight_rows(filter_t: Tensor, rows: int) -> np.ndarray | None:
    """The constant weights as `rows` rows (one per output channel), or None when computed at run time."""
    return None if filter_t.data is None else np.asarray(filter_t.data).reshape(rows, -1)


def accumulators_bounded(model: TfliteModel, op: Operator, rows: np.ndarray | None,
                         multipliers: tuple[tuple[int, int], ...], tamed: dict[int, int] | None = None) -> bool:
    """Every accumulator of the op (bias, possibly with the input offset folded in, plus weights
    times inputs with their offset: at most 255 + 128 each) times 2^left of its channel is below 2^30.
    `rows` are the weights per output channel; `tamed`, biases replaced (see dsp_target)."""
    if rows is None or (has_bias(op) and model.tensors[op.inputs[2]].data is None):
        return False
    bias = bias_values(model, op, rows.shape[0]).copy() if has_bias(op) else 0
    for channel, value in (tamed or {}).items():
        bias[channel] = value
    return bool(np.all(accumulator_bounds(rows, bias, 255 + 128, multipliers) < (1 << 30)))


def folded_bias(model: TfliteModel, op: Operator, input_offset: int) -> np.ndarray | None:
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


def requant(op: Operator, multipliers: tuple[tuple[int, int], ...], input_offset: int, out_t: Tensor,
            bounded: bool = False) -> Requant:
    """The requantization onto the output, with its fused activation's range."""
    return Requant(multipliers, input_offset, int(out_t.zero_point[0]), activation_range(op.activation, out_t), bounded)


def portable_target(model: TfliteModel, op: Operator, in_t: Tensor, out_t: Tensor,
                    multipliers: tuple[tuple[int, int], ...], foldable: bool) -> ConvTarget:
    """The portable kernels' bias and requantization: the input offset folded into the bias when `foldable`."""
    input_offset = -int(in_t.zero_point[0])
    folded = folded_bias(model, op, input_offset) if foldable else None
    if folded is None:
        return ConvTarget(requant(op, multipliers, input_offset, out_t))
    return ConvTarget(requant(op, multipliers, 0, out_t), tuple(int(v) for v in folded))


def dsp_target(model: TfliteModel, op: Operator, portable: ConvTarget, rows: np.ndarray | None, out_t: Tensor,
               tame: bool = True) -> ConvTarget:
    """te_dsp.c's: the portable bias but, with `tame`, its pruned channels' ±2^30 replaced (aot.dsp_layout), so
    that the op keeps the short exact requantization, which it takes when its accumulators are bounded."""
    multipliers, tamed = portable.requant.multipliers, {}
    bias = portable.bias
    if tame and rows is not None and has_bias(op) and model.tensors[op.inputs[2]].data is not None:
        original = bias_values(model, op, rows.shape[0])
        tamed = tamed_dead_channels(original, rows, list(multipliers), int(out_t.zero_point[0]),
                                    portable.requant.activation_range)
        if tamed:
            values = (fold_bias(original, rows, -int(model.tensors[op.inputs[0]].zero_point[0]))
                      if portable.bias is not None and portable.requant.input_offset == 0 else original.copy())
            for channel, value in tamed.items():
                values[channel] = value
            bias = tuple(int(v) for v in values)
    bounded = accumulators_bounded(model, op, rows, multipliers, tamed)
    return ConvTarget(Requant(multipliers, portable.requant.input_offset, portable.requant.output_offset,
                              portable.requant.activation_range, bounded), bias)


def producer(model: TfliteModel, tensor: int) -> Operator | None:
    return next((o for o in model.operators if tensor in o.outputs), None)


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


def streamed_fc_requant(model: TfliteModel, fc: Operator | None) -> Requant | None:
    """The requantization of the FULLY_CONNECTED a conv streams into (its input offset not folded)."""
    if fc is None:
        return None
    fc_in, fc_filter, fc_out = (model.tensors[i] for i in (fc.inputs[0], fc.inputs[1], fc.outputs[0]))
    return requant(fc, tuple(fc_multipliers(fc_in, fc_filter, fc_out)), -int(fc_in.zero_point[0]), fc_out)
