"""The generation-time preparation of CONV_2D, DEPTHWISE_CONV_2D, the pools and FULLY_CONNECTED, as
TFLM's Prepare computes it: the window (te_window_t's fields), the multipliers, the bias with the input
offset folded in and the accumulators' proven bounds. The AOT C emitter (tinyedge.aot.ops) and the viper
emitter (tinyedge.viper.generator) both render these; each applies its own kernel's limits to the bounds.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np

from tinyedge.aot.quant import per_channel_multipliers, per_tensor_fc_multiplier, same_or_valid_padding
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

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
