"""Lower an int8 .tflite to a MicroPython model module (te_model.py) over the viper kernels.

The memory plan and every quantization constant come from the AOT compiler (tinyedge.aot): its
arena plan (run out of place, so elementwise ops may still share their input's bytes), TFLM's
multiplier, padding and activation arithmetic, and the SOFTMAX/LOGISTIC/TANH/ADD parameters.
Weights become `bytes`, per-op tables packed int32 `bytes`, the arena one `bytearray`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tinyedge import __version__
from tinyedge.aot.compiler import compile_model, state_tensors
from tinyedge.aot.nonlinear import (
    add_parameters, broadcast_geometry, logistic_table, mean_geometry, mean_multiplier, mul_parameters, softmax_parameters,
    tanh_table,
)
from tinyedge.aot.quant import activation_range, per_channel_multipliers, quantize_multiplier, zero_point
from tinyedge.aot.recurrent import (
    LSTM_CELL, LSTM_HIDDEN, LSTM_INPUT, LSTM_INPUT_WEIGHTS, LSTM_RECURRENT_WEIGHTS, SVDF_INPUT, SVDF_STATE,
    folded_gate_biases, lstm_parameters, sigmoid_table, svdf_multipliers,
)
from tinyedge.errors import TinyedgeError
from tinyedge.ops.conv import accumulator_bounds, bias_values, fc_multipliers, fold_bias, window
from tinyedge.ops.fixedpoint import exp_on_negative_values, srdhm, wrap32
from tinyedge.ops.opdata import GatherData, LutData, PadData, RowGatherData, RowNormData, TransposeConvData
from tinyedge.ops.registry import PREPARED, viper_ops, viper_refusal
from tinyedge.ops.transpose_conv import BIAS as TRANSPOSE_CONV_BIAS
from tinyedge.ops.transpose_conv import INPUT as TRANSPOSE_CONV_INPUT
from tinyedge.ops.transpose_conv import WEIGHTS as TRANSPOSE_CONV_WEIGHTS
from tinyedge.protocol import DeviceInfo, PROTOCOL_VERSION, TensorInfo, encode_info
from tinyedge.templating import hash_comment
from tinyedge.tflite_model import PADDINGS, Operator, Tensor, TfliteModel
from tinyedge.viper.kernels import KERNEL_MODULE

MODEL_MODULE = "te_model"
INT32_LIMIT = 1 << 31
SOFTMAX_MAX_DEPTH = 511   # above this the sum of exps can need a right shift past 31 (TFLM asserts)
DTYPE_NAMES = {"INT8": "int8", "UINT8": "uint8", "INT16": "int16", "INT32": "int32", "FLOAT32": "float32"}


@dataclass
class ViperStats:
    arena_bytes: int
    constant_bytes: int       # weights and packed tables, all `bytes` in RAM on stock firmware
    macs: int                 # multiply-accumulates of one inference (convolutions and FC)
    op_count: int


@dataclass
class ViperProgram:
    model_source: str         # te_model.py
    stats: ViperStats
    input_offsets: list[int] = field(default_factory=list)
    output_offsets: list[int] = field(default_factory=list)


def unsupported_ops(model: TfliteModel) -> list[str]:
    return sorted({op.opcode for op in model.operators} - set(viper_ops()))


def check_supported(model: TfliteModel) -> None:
    missing = unsupported_ops(model)
    if missing:
        name = model.path.name if model.path else "the model"
        verb = "is" if len(missing) == 1 else "are"
        reasons = "; ".join(f"{op}: {viper_refusal(op)}" for op in missing)
        raise TinyedgeError(f"{name} uses {', '.join(missing)}, which {verb} not supported by the viper runtime "
                            f"({reasons}; it runs {', '.join(viper_ops())}): use a C board with `--runtime aot` or "
                            "`--runtime tflm` for this model.")
    for t in model.input_tensors + model.output_tensors:
        if t.type_name != "INT8":
            raise TinyedgeError(f"model I/O tensor '{t.name}' is {t.type_name.lower()}, but the viper runtime "
                                "serves int8 inputs and outputs only: quantize the model to full int8.")


def i32_bytes(values) -> bytes:
    return struct.pack(f"<{len(values)}i", *[int(v) for v in values])


class _Emitter:
    def __init__(self, model: TfliteModel, offsets: dict[int, int]):
        self.model, self.offsets = model, offsets
        self.constants: list[str] = []
        self.calls: list[str] = []
        self.constant_bytes = 0
        self.macs = 0

    def const(self, name: str, data: bytes) -> str:
        self.constants.append(f"{name} = {bytes(data)!r}")
        self.constant_bytes += len(data)
        return name

    def at(self, index: int) -> int:
        t = self.model.tensors[index]
        if t.is_constant:
            raise TinyedgeError(f"tensor '{t.name}' is a constant where the viper runtime expects an activation: "
                                "use a C board with `--runtime aot` for this model.")
        if t.type_name != "INT8":
            raise TinyedgeError(f"tensor '{t.name}' is {t.type_name.lower()}, but the viper runtime computes int8 "
                                "only: quantize the model to full int8.")
        return self.offsets[index]


def _refuse(op: Operator, what: str) -> TinyedgeError:
    return TinyedgeError(f"{op.opcode} (operator {op.index}) {what}, which the viper runtime cannot run exactly: "
                         "use a C board with `--runtime aot` or `--runtime tflm` for this model.")


def _requant_table(multipliers: list[tuple[int, int]]) -> bytes:
    return i32_bytes([v for m, s in multipliers for v in (m >> 16, m & 0xFFFF, s)])


def _check_accumulator(op: Operator, weights: np.ndarray, bias: np.ndarray, input_span: int,
                       multipliers: list[tuple[int, int]], offset_binary: bool = False) -> None:
    """Refuse a layer whose accumulator (or its left-shifted value) could leave int32 on a 32-bit MCU.
    `offset_binary`: the kernel also sums x_u * w_u (both 0..255) and subtracts 128 * sum(x_u)."""
    rows = weights.astype(np.int64).reshape(weights.shape[0], -1)
    worst = int(accumulator_bounds(rows, bias, input_span, multipliers).max())
    if offset_binary:
        taps = rows.shape[1]
        worst = max(worst, int((rows + 128).sum(axis=1).max()) * 255,
                    128 * 255 * taps + int(np.abs(bias).max(initial=0)))
    if worst >= INT32_LIMIT:
        raise _refuse(op, f"could accumulate {worst:,}, beyond int32")


def _folded(op: Operator, bias: np.ndarray, weights: np.ndarray, input_offset: int) -> np.ndarray:
    """bias + (off - 128) * sum(w) per output channel: what the offset-binary kernels add at the end."""
    folded = fold_bias(bias, weights, input_offset - 128)
    if np.abs(folded).max(initial=0) >= INT32_LIMIT:
        raise _refuse(op, "has a bias that leaves int32 once the input offset is folded in")
    return folded


def offset_binary(weights: np.ndarray) -> bytes:
    """int8 weights stored as w + 128 (0..255), so the kernels multiply plain byte loads."""
    return (np.asarray(weights, dtype=np.int8).view(np.uint8) ^ 0x80).tobytes()


def _require_4d(op: Operator, model: TfliteModel) -> tuple[Tensor, Tensor]:
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if len(in_t.shape) != 4 or in_t.shape[0] != 1 or len(out_t.shape) != 4:
        raise _refuse(op, "has a batch other than 1")
    if PADDINGS.get(op.options.padding) not in ("SAME", "VALID"):
        raise _refuse(op, "uses padding other than SAME/VALID")
    return in_t, out_t


def _emit_conv(e: _Emitter, op: Operator, depthwise: bool) -> None:
    model = e.model
    in_t, out_t = _require_4d(op, model)
    filter_t = model.tensors[op.inputs[1]]
    weights = np.asarray(filter_t.data, dtype=np.int8)
    o = op.options
    k_h, k_w, dil_h, dil_w = filter_t.shape[1], filter_t.shape[2], int(o.dilationHFactor), int(o.dilationWFactor)
    out_c = out_t.shape[3]
    multipliers = per_channel_multipliers(in_t, filter_t, out_t, out_c)
    bias = bias_values(model, op, out_c)
    input_offset = -int(in_t.zero_point[0])
    per_channel_weights = weights.reshape(-1, out_c).T if depthwise else weights
    geometry = window(in_t, out_t, k_h, k_w, o, dil_h, dil_w)
    pointwise = (k_h, k_w, geometry.stride_h, geometry.stride_w, geometry.pad_h, geometry.pad_w) == (1, 1, 1, 1, 0, 0)
    if not depthwise and pointwise and filter_t.shape[3] == in_t.shape[3] and out_t.shape[1:3] == in_t.shape[1:3]:
        _emit_dense(e, op, weights.reshape(out_c, -1), multipliers, in_t.shape[1] * in_t.shape[2])
        return
    if not depthwise and filter_t.shape[3] != in_t.shape[3]:
        groups = in_t.shape[3] // filter_t.shape[3]
        if in_t.shape[3] % filter_t.shape[3] or out_c % groups:
            raise _refuse(op, "has channels that do not divide into its groups")
        offsets = (input_offset, int(out_t.zero_point[0]), activation_range(op.activation, out_t))
        _emit_signed_conv(e, op, "conv2d_grouped", weights.reshape(out_c, -1), bias, multipliers, geometry.values(),
                          offsets, [filter_t.shape[3], out_c // groups])
        e.macs += out_t.size * k_h * k_w * filter_t.shape[3]
        return
    span = 128 + abs(input_offset)
    depth_multiplier = out_c // in_t.shape[3]
    _check_accumulator(op, per_channel_weights, bias, span, multipliers)
    if depthwise and depth_multiplier != 1:
        k = input_offset - 128
    else:
        bias = _folded(op, bias, per_channel_weights, input_offset)
        k = 128 - input_offset          # the input zero point in offset binary
        _check_accumulator(op, per_channel_weights, bias, span, multipliers, offset_binary=not depthwise)
    act_min, act_max = activation_range(op.activation, out_t)
    params = [e.at(op.inputs[0]), e.at(op.outputs[0]), *geometry.values(), k, int(out_t.zero_point[0]), act_min, act_max,
              int(len(multipliers) > 1)]
    if depthwise and depth_multiplier != 1:
        params.append(depth_multiplier)
    n = op.index
    w = e.const(f"W{n}", weights.tobytes() if depthwise else offset_binary(weights))
    b = e.const(f"B{n}", i32_bytes(bias))
    q = e.const(f"Q{n}", _requant_table(multipliers))
    p = e.const(f"P{n}", i32_bytes(params))
    if depthwise and depth_multiplier != 1:
        call = f"k.depthwise_multiplier(A, {w}, {b}, {q}, {p})"
    else:
        call = f"k.{'depthwise_conv2d' if depthwise else 'conv2d'}(0, 0, A, {w}, {b}, {q}, {p})"
    e.calls.append(call)
    taps = k_h * k_w * (1 if depthwise else in_t.shape[3])
    e.macs += out_t.size * taps


def _emit_signed_conv(e: _Emitter, op: Operator, kernel: str, weights: np.ndarray, bias: np.ndarray,
                      multipliers: Sequence[tuple[int, int]], geometry: Sequence[int],
                      offsets: tuple[int, int, tuple[int, int]], extra: Sequence[int] = ()) -> None:
    """A convolution kernel that sums (x + input offset) * w over the taps inside the input, with signed
    weights (one row per output channel) and the raw bias: grouped CONV_2D and TRANSPOSE_CONV.
    `offsets`: the input offset, the output zero point and the activation range."""
    multipliers = list(multipliers)
    input_offset, output_offset, (act_min, act_max) = offsets
    _check_accumulator(op, weights, bias, 128 + abs(input_offset), multipliers)
    src = op.inputs[TRANSPOSE_CONV_INPUT] if op.opcode == "TRANSPOSE_CONV" else op.inputs[0]
    params = [e.at(src), e.at(op.outputs[0]), *geometry, input_offset, output_offset, act_min, act_max,
              int(len(multipliers) > 1), *extra]
    n = op.index
    w, b = e.const(f"W{n}", np.asarray(weights, dtype=np.int8).tobytes()), e.const(f"B{n}", i32_bytes(bias))
    q, p = e.const(f"Q{n}", _requant_table(multipliers)), e.const(f"P{n}", i32_bytes(params))
    e.calls.append(f"k.{kernel}(A, {w}, {b}, {q}, {p})")


def _emit_transpose_conv(e: _Emitter, op: Operator, data: TransposeConvData) -> None:
    """TRANSPOSE_CONV from the AOT's OpData (tinyedge.ops.transpose_conv): weights [out_c, k_h, k_w, in_c]."""
    in_h, in_w, in_c, _, _, out_c, k_h, k_w = data.window[:8]
    weights = np.asarray(e.model.tensors[op.inputs[TRANSPOSE_CONV_WEIGHTS]].data, dtype=np.int8).reshape(out_c, -1)
    has_bias = len(op.inputs) > TRANSPOSE_CONV_BIAS and op.inputs[TRANSPOSE_CONV_BIAS] >= 0
    bias = (np.asarray(e.model.tensors[op.inputs[TRANSPOSE_CONV_BIAS]].data, dtype=np.int64).reshape(-1) if has_bias
            else np.zeros(out_c, dtype=np.int64))
    _emit_signed_conv(e, op, "transpose_conv", weights, bias, data.multipliers, data.window,
                      (data.input_offset, data.output_offset, data.activation_range))
    e.macs += in_h * in_w * in_c * k_h * k_w * out_c


def _emit_fully_connected(e: _Emitter, op: Operator) -> None:
    model = e.model
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    filter_t = model.tensors[op.inputs[1]]
    if filter_t.type_name != "INT8" or len(filter_t.shape) != 2 or filter_t.data is None:
        raise _refuse(op, "has no constant 2-D int8 weights")
    depth = filter_t.shape[1]
    _emit_dense(e, op, np.asarray(filter_t.data, dtype=np.int8), fc_multipliers(in_t, filter_t, out_t), in_t.size // depth)


def _emit_dense(e: _Emitter, op: Operator, weights: np.ndarray, multipliers: list[tuple[int, int]],
                batches: int) -> None:
    """out[b][o] from in[b][:] . weights[o][:]: FULLY_CONNECTED, and 1x1 stride-1 unpadded CONV_2D
    (pixels as batches), whose weights have the same layout."""
    model = e.model
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    n_out, depth = weights.shape
    input_offset = -int(in_t.zero_point[0])
    bias = bias_values(model, op, n_out)
    _check_accumulator(op, weights, bias, 128 + abs(input_offset), multipliers)
    bias = _folded(op, bias, weights, input_offset)
    _check_accumulator(op, weights, bias, 128 + abs(input_offset), multipliers, offset_binary=True)
    k = 128 - input_offset
    act_min, act_max = activation_range(op.activation, out_t)
    params = [e.at(op.inputs[0]), e.at(op.outputs[0]), batches, depth, n_out, k, int(out_t.zero_point[0]),
              act_min, act_max, int(len(multipliers) > 1)]
    n = op.index
    w, b = e.const(f"W{n}", offset_binary(weights)), e.const(f"B{n}", i32_bytes(bias))
    q, p = e.const(f"Q{n}", _requant_table(multipliers)), e.const(f"P{n}", i32_bytes(params))
    e.calls.append(f"k.fully_connected(0, 0, A, {w}, {b}, {q}, {p})")
    e.macs += batches * depth * n_out


def _emit_pool(e: _Emitter, op: Operator, kernel: str) -> None:
    in_t, out_t = _require_4d(op, e.model)
    o = op.options
    act_min, act_max = activation_range(op.activation, out_t)
    geometry = window(in_t, out_t, int(o.filterHeight), int(o.filterWidth), o)
    params = [e.at(op.inputs[0]), e.at(op.outputs[0]), *geometry.values(), 0, act_min, act_max]
    e.calls.append(f"k.{kernel}(A, {e.const(f'P{op.index}', i32_bytes(params))})")


def _source(e: _Emitter, op: Operator, index: int) -> tuple[str, int]:
    """(buffer, byte offset) of an operand: the arena, or a constant's own bytes."""
    t = e.model.tensors[index]
    if t.is_constant:
        return e.const(f"X{op.index}_{index}", np.asarray(t.data, dtype=np.int8).tobytes()), 0
    return "A", e.at(index)


def _binary_operands(e: _Emitter, op: Operator) -> tuple[list[tuple[str, int]], list[int]]:
    """ADD's and MUL's operands and their broadcast walk padded to 4 dims: sizes, then each operand's strides."""
    tensors = [e.model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0])]
    if any(t.type_name != "INT8" for t in tensors):
        raise _refuse(op, "is not int8")
    geometry = broadcast_geometry(*(t.shape for t in tensors))
    ndim = geometry[0]
    if ndim > 4:
        raise _refuse(op, "broadcasts over more than 4 dimensions")
    pad = 4 - ndim
    walk = ([1] * pad + geometry[1:1 + ndim] + [0] * pad + geometry[1 + ndim:1 + 2 * ndim]
            + [0] * pad + geometry[1 + 2 * ndim:1 + 3 * ndim])
    return [_source(e, op, op.inputs[0]), _source(e, op, op.inputs[1])], walk


def _split(multiplier: int) -> list[int]:
    """A Q31 multiplier as the kernels' (high, low) 16-bit halves."""
    return [multiplier >> 16, multiplier & 0xFFFF]


def _emit_add(e: _Emitter, op: Operator, kernel: str = "add", rescaling: Sequence[int] = ()) -> None:
    """ADD, or SUB (kernel "sub") with its prepared rescalings (te_add_params_t's fields)."""
    sources, walk = _binary_operands(e, op)
    (a_off, a_mult, a_shift, b_off, b_mult, b_shift, left, o_mult, o_shift, o_zp, act_min, act_max) = rescaling or \
        add_parameters(*(e.model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0])), op.activation)
    params = [sources[0][1], sources[1][1], e.at(op.outputs[0]), *walk,
              a_off, *_split(a_mult), a_shift, b_off, *_split(b_mult), b_shift, left,
              *_split(o_mult), o_shift, o_zp, act_min, act_max]
    p = e.const(f"P{op.index}", i32_bytes(params))
    e.calls.append(f"k.{kernel}(A, {sources[0][0]}, {sources[1][0]}, {p})")


def _emit_prelu(e: _Emitter, op: Operator, rescaling: Sequence[int]) -> None:
    sources, walk = _binary_operands(e, op)
    a_off, b_off, o_zp, m1, s1, m2, s2 = rescaling
    _check_shifted(op, 128 + abs(a_off), s1)
    _check_shifted(op, (128 + abs(a_off)) * (128 + abs(b_off)), s2)
    params = [sources[0][1], sources[1][1], e.at(op.outputs[0]), *walk, a_off, b_off, o_zp, *_split(m1), s1,
              *_split(m2), s2]
    e.calls.append(f"k.prelu(A, {sources[0][0]}, {sources[1][0]}, {e.const(f'P{op.index}', i32_bytes(params))})")


def _emit_prepared(e: _Emitter, op: Operator) -> None:
    """An op module's OpData (tinyedge.ops.opdata), as viper calls."""
    data = PREPARED[op.opcode].prepare(e.model, op)
    if isinstance(data, LutData):
        _emit_table(e, op, list(data.table))
    elif isinstance(data, PadData):
        params = [e.at(op.inputs[0]), e.at(op.outputs[0]), *data.in_dims, *data.out_dims, *data.before, data.value]
        e.calls.append(f"k.pad(A, {e.const(f'P{op.index}', i32_bytes(params))})")
    elif isinstance(data, RowGatherData):
        rows = e.const(f"R{op.index}", i32_bytes(data.rows))
        params = [e.at(op.inputs[0]), e.at(op.outputs[0]), len(data.rows), data.row_bytes]
        e.calls.append(f"k.gather_rows(A, {rows}, {e.const(f'P{op.index}', i32_bytes(params))})")
    elif isinstance(data, TransposeConvData):
        _emit_transpose_conv(e, op, data)
    elif isinstance(data, RowNormData):
        e.calls.append(f"k.{data.kernel.removesuffix('_s8')}(A, {data.outer}, {e.at(op.inputs[0])}, "
                       f"{e.at(op.outputs[0])}, {data.depth}, {data.input_zero_point})")
    elif isinstance(data, GatherData):
        params = [e.at(op.inputs[0]) + data.in_offset, e.at(op.outputs[0]), *data.out_dims, *data.in_strides]
        e.calls.append(f"k.transpose(A, {e.const(f'P{op.index}', i32_bytes(params))})")
    elif data.kernel == "sub_s8":
        _emit_add(e, op, "sub", data.params)
    elif data.kernel == "squared_difference_s8":
        _emit_add(e, op, "squared_difference", data.params)
    elif data.kernel == "prelu_s8":
        _emit_prelu(e, op, data.params)
    else:
        sources, walk = _binary_operands(e, op)
        params = [sources[0][1], sources[1][1], e.at(op.outputs[0]), *walk, data.flag]
        e.calls.append(f"k.maxmin(A, {sources[0][0]}, {sources[1][0]}, {e.const(f'P{op.index}', i32_bytes(params))})")


def _check_shifted(op: Operator, magnitude: int, shift: int) -> None:
    """Refuse an op whose largest value, shifted left by its multiplier's exponent, could leave int32."""
    if magnitude << max(shift, 0) >= INT32_LIMIT:
        raise _refuse(op, f"could reach {magnitude << max(shift, 0):,} before its rescaling, beyond int32")


def _emit_mul(e: _Emitter, op: Operator) -> None:
    sources, walk = _binary_operands(e, op)
    a_off, b_off, multiplier, shift, o_zp, act_min, act_max = mul_parameters(
        *(e.model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0])), op.activation)
    _check_shifted(op, (128 + abs(a_off)) * (128 + abs(b_off)), shift)
    params = [sources[0][1], sources[1][1], e.at(op.outputs[0]), *walk, a_off, b_off, *_split(multiplier), shift,
              o_zp, act_min, act_max]
    e.calls.append(f"k.mul(A, {sources[0][0]}, {sources[1][0]}, {e.const(f'P{op.index}', i32_bytes(params))})")


def _emit_concatenation(e: _Emitter, op: Operator) -> None:
    """One block copy per input, as the AOT's te_copy_blocks."""
    out_t = e.model.tensors[op.outputs[0]]
    if op.activation != "NONE":
        raise _refuse(op, "has a fused activation")
    axis = int(op.options.axis) % len(out_t.shape)
    outer, row = math.prod(out_t.shape[:axis]), math.prod(out_t.shape[axis:])
    dst, column, calls = e.at(op.outputs[0]), 0, []
    for index in op.inputs:
        block = math.prod(e.model.tensors[index].shape[axis:])
        buffer, offset = _source(e, op, index)
        p = e.const(f"P{op.index}_{index}", i32_bytes([dst + column, offset, outer, block, row]))
        calls.append(f"k.copy_blocks(A, {buffer}, {p})")
        column += block
    e.calls.append("; ".join(calls))


def _emit_mean(e: _Emitter, op: Operator) -> None:
    inp, out, axes = (e.model.tensors[i] for i in (op.inputs[0], op.outputs[0], op.inputs[1]))
    if axes.data is None:
        raise _refuse(op, "takes its axes at run time")
    geometry = mean_geometry(inp.shape, [int(a) for a in np.asarray(axes.data).reshape(-1)])
    if len(geometry.kept_sizes) > 3 or len(geometry.reduced_sizes) > 3:
        raise _refuse(op, "keeps or reduces more than 3 separate dimensions")
    multiplier, shift = mean_multiplier(float(np.float32(inp.scale[0])), float(np.float32(out.scale[0])), geometry.count)
    _check_shifted(op, 256 * geometry.count, shift)
    kept, reduced = 3 - len(geometry.kept_sizes), 3 - len(geometry.reduced_sizes)
    params = [e.at(op.inputs[0]), e.at(op.outputs[0]), *[1] * kept, *geometry.kept_sizes, *[0] * kept,
              *geometry.kept_strides, *[1] * reduced, *geometry.reduced_sizes, *[0] * reduced, *geometry.reduced_strides,
              int(inp.zero_point[0]) * geometry.count, *_split(multiplier), shift, int(out.zero_point[0])]
    e.calls.append(f"k.mean(A, {e.const(f'P{op.index}', i32_bytes(params))})")


def _emit_quantize(e: _Emitter, op: Operator) -> None:
    """QUANTIZE int8 -> int8 (a requantization); other types never reach here (`at` refuses them)."""
    inp, out = e.model.tensors[op.inputs[0]], e.model.tensors[op.outputs[0]]
    src, dst = e.at(op.inputs[0]), e.at(op.outputs[0])
    multiplier, shift = quantize_multiplier(float(np.float32(inp.scale[0])) / float(np.float32(out.scale[0])))
    _check_shifted(op, 256, shift)
    params = [src, dst, inp.size, int(inp.zero_point[0]), *_split(multiplier), shift, int(out.zero_point[0])]
    e.calls.append(f"k.requantize(A, {e.const(f'P{op.index}', i32_bytes(params))})")


def softmax_exp_table(multiplier: int, left_shift: int, diff_min: int) -> list[int]:
    """exp_on_negative_values of every int8 diff 0, -1, ..., -255 rescaled as TFLM does (0 below diff_min)."""
    table = []
    for d in range(256):
        diff = -d
        if diff < diff_min:
            table.append(0)
            continue
        scaled = srdhm(wrap32(diff << left_shift), multiplier)
        table.append(exp_on_negative_values(scaled, 5))
    return table


def _emit_softmax(e: _Emitter, op: Operator) -> None:
    inp, out = e.model.tensors[op.inputs[0]], e.model.tensors[op.outputs[0]]
    if int(out.zero_point[0]) != -128 or np.float32(out.scale[0]) != np.float32(1.0 / 256):
        raise _refuse(op, "has an output not quantized with scale 1/256 and zero point -128")
    depth = inp.shape[-1]
    if depth > SOFTMAX_MAX_DEPTH:
        raise _refuse(op, f"has {depth} classes (more than {SOFTMAX_MAX_DEPTH})")
    beta = float(getattr(op.options, "beta", 1.0))
    table = softmax_exp_table(*softmax_parameters(beta, float(np.float32(inp.scale[0]))))
    t = e.const(f"E{op.index}", i32_bytes(table))
    e.calls.append(f"k.softmax(A, {t}, {inp.size // depth}, {e.at(op.inputs[0])}, {e.at(op.outputs[0])}, {depth})")


def _emit_table(e: _Emitter, op: Operator, table: list[int]) -> None:
    t = e.const(f"T{op.index}", bytes(v & 0xFF for v in table))
    params = [e.at(op.inputs[0]), e.at(op.outputs[0]), e.model.tensors[op.inputs[0]].size]
    e.calls.append(f"k.lut(A, {t}, {e.const(f'P{op.index}', i32_bytes(params))})")


def _emit(e: _Emitter, op: Operator) -> None:
    model = e.model
    code = op.opcode
    if code in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _emit_conv(e, op, depthwise=code == "DEPTHWISE_CONV_2D")
    elif code == "FULLY_CONNECTED":
        _emit_fully_connected(e, op)
    elif code in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        _emit_pool(e, op, "average_pool" if code == "AVERAGE_POOL_2D" else "max_pool")
    elif code in SIMPLE_EMITTERS:
        SIMPLE_EMITTERS[code](e, op)
    elif code in PREPARED:
        _emit_prepared(e, op)
    elif code == "SOFTMAX":
        _emit_softmax(e, op)
    elif code in ("LOGISTIC", "TANH"):
        inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
        if code == "LOGISTIC" and int(out.zero_point[0]) != -128:
            raise _refuse(op, "has an output zero point other than -128")
        make = logistic_table if code == "LOGISTIC" else tanh_table
        _emit_table(e, op, make(float(np.float32(inp.scale[0])), int(inp.zero_point[0])))
    elif code in ("RESHAPE", "SQUEEZE"):
        e.at(op.inputs[0])   # shares its input's bytes; a constant input is refused there
    if code not in ("RESHAPE", "SQUEEZE"):
        e.calls[-1] += f"  # {op.index}: {code}"


def _emit_svdf(e: _Emitter, op: Operator) -> None:
    """SVDF with the AOT's multipliers (tinyedge.aot.recurrent), its state a variable tensor in the arena."""
    tensors = [e.model.tensors[i] if i >= 0 else None for i in list(op.inputs) + [-1] * 5]
    inp, weights_feature, weights_time, bias, state = tensors[:5]
    out = e.model.tensors[op.outputs[0]]
    if inp is None or weights_feature is None or weights_time is None or state is None or not state.is_variable:
        raise _refuse(op, "lacks one of its input, weights or variable state tensors")
    if any(t.type_name != "INT8" for t in (inp, weights_feature, weights_time, state, out)):
        raise _refuse(op, "is not int8 throughout (the int16-state variant has no viper kernel yet)")
    if len(inp.shape) != 2 or inp.shape[0] != 1:
        raise _refuse(op, "has an input other than one batch [1, n]")
    rank = int(getattr(op.options, "rank", 1))
    n_filter, n_input = weights_feature.shape
    n_memory = weights_time.shape[1]
    (m1, s1), (m2, s2) = svdf_multipliers(inp, weights_feature, weights_time, state, out)
    feature = np.asarray(weights_feature.data, dtype=np.int64)
    time = np.asarray(weights_time.data, dtype=np.int64).reshape(n_filter, -1)
    biases = (np.asarray(bias.data, dtype=np.int64).reshape(-1) if bias is not None
              else np.zeros(n_filter // rank, dtype=np.int64))
    _check_shifted(op, int(np.abs(feature).sum(axis=1).max()) * 255, s1)
    unit_time = np.abs(time).sum(axis=1).reshape(-1, rank).sum(axis=1) * 255
    _check_shifted(op, int((np.abs(biases) + unit_time).max()), s2)
    params = [e.at(op.inputs[SVDF_INPUT]), e.offsets[op.inputs[SVDF_STATE]], e.at(op.outputs[0]), n_input, n_filter,
              n_memory, rank, zero_point(inp), zero_point(state), zero_point(out), *_split(m1), s1, *_split(m2), s2]
    n = op.index
    wf = e.const(f"W{n}", feature.astype(np.int8).tobytes())
    wt = e.const(f"T{n}", time.astype(np.int8).tobytes())
    b, p = e.const(f"B{n}", i32_bytes(biases)), e.const(f"P{n}", i32_bytes(params))
    e.calls.append(f"k.svdf(A, {wf}, {wt}, {b}, {p})")
    e.macs += n_filter * (n_input + n_memory)


def _emit_lstm(e: _Emitter, op: Operator) -> None:
    """UNIDIRECTIONAL_SEQUENCE_LSTM as the AOT lowers it (tinyedge.aot.recurrent, whose checks compile_model
    has already applied): its parameters, folded gate biases and TFLM's sigmoid table; hidden and cell
    states are variable tensors in the arena."""
    params = lstm_parameters(e.model, op)
    steps, n_input, n_state = params[:3]
    gates, (fm, fs, im, is_, om, os_, hzp, clip, tanh_m, tanh_s, sigmoid) = params[5:21], params[21:]
    biases = folded_gate_biases(e.model, op)
    weights = [np.asarray(e.model.tensors[op.inputs[i]].data, dtype=np.int64)
               for i in LSTM_INPUT_WEIGHTS + LSTM_RECURRENT_WEIGHTS]
    for g in range(4):
        for bias, rows, (_, shift) in ((biases[g], weights[g], gates[4 * g:4 * g + 2]),
                                       (biases[4 + g], weights[4 + g], gates[4 * g + 2:4 * g + 4])):
            _check_shifted(op, int((np.abs(bias) + 128 * np.abs(rows).sum(axis=1)).max()), shift)
    for shift in (fs, is_, os_):
        _check_shifted(op, 1 << 30, shift)
    _check_shifted(op, 32768 * tanh_m + (1 << max(tanh_s - 1, 0)), 0)
    split_gates = [v for g in range(4) for m, s in (gates[4 * g:4 * g + 2], gates[4 * g + 2:4 * g + 4])
                   for v in (*_split(m), s)]
    p_values = [e.at(op.inputs[LSTM_INPUT]), e.offsets[op.inputs[LSTM_HIDDEN]], e.offsets[op.inputs[LSTM_CELL]],
                e.at(op.outputs[0]), steps, n_input, n_state, *split_gates, *_split(fm), fs, *_split(im), is_,
                *_split(om), os_, hzp, clip, tanh_m, tanh_s, sigmoid]
    n = op.index
    w = e.const(f"W{n}", b"".join(rows.astype(np.int8).tobytes() for rows in weights))
    g_table = e.const(f"G{n}", i32_bytes(np.concatenate(biases)))
    lut = e.const(f"L{n}", struct.pack(f"<{len(sigmoid_table())}H", *sigmoid_table()))
    e.calls.append(f"k.lstm(A, {w}, {g_table}, {lut}, {e.const(f'P{n}', i32_bytes(p_values))})")
    e.macs += steps * 4 * n_state * (n_input + n_state)


SIMPLE_EMITTERS = {"ADD": _emit_add, "MUL": _emit_mul, "CONCATENATION": _emit_concatenation, "MEAN": _emit_mean,
                   "QUANTIZE": _emit_quantize, "SVDF": _emit_svdf,
                   "UNIDIRECTIONAL_SEQUENCE_LSTM": _emit_lstm}


def tensor_infos(tensors: list[Tensor]) -> list[TensorInfo]:
    return [TensorInfo(DTYPE_NAMES[t.type_name], tuple(int(d) for d in t.shape),
                       float(t.scale[0]) if t.is_quantized else 0.0,
                       int(t.zero_point[0]) if t.zero_point.size else 0, t.nbytes) for t in tensors]


def info_body(model: TfliteModel, board_id: str, clock_hz: int, max_chunk: int, arena_bytes: int) -> bytes:
    """The INFO reply body (after its status byte) the board sends: fixed at generation time."""
    return encode_info(DeviceInfo(
        protocol_version=PROTOCOL_VERSION, board_id=board_id, runtime="viper", runtime_version=__version__,
        model_sha256=model.sha256, inputs=tensor_infos(model.input_tensors),
        outputs=tensor_infos(model.output_tensors), arena_used=arena_bytes, arena_size=arena_bytes,
        clock_hz=clock_hz, cycle_hz=1_000_000, max_chunk=max_chunk))


def generate_program(model: TfliteModel, board_id: str = "micropython-unix", clock_hz: int = 0,
                     max_chunk: int = 256) -> ViperProgram:
    check_supported(model)
    plan = compile_model(model, inplace_with_scratch=False)
    emitter = _Emitter(model, plan.tensor_offsets)
    for op in model.operators:
        _emit(emitter, op)
    arena = max(plan.plan.arena_bytes, 1)
    inputs = [emitter.at(i) for i in model.inputs]
    outputs = [plan.tensor_offsets[i] for i in model.outputs]
    info = info_body(model, board_id, clock_hz, max_chunk, arena)
    name = model.path.name if model.path else "model"
    source = "\n".join([
        f"# Generated by tinyedge {__version__} from {hash_comment(name)} (sha256 {model.sha256[:16]}): the model for the "
        "viper runtime. Do not edit.",
        f"import {KERNEL_MODULE} as k",
        "",
        f"A = bytearray({arena})",
        f"INPUTS = {tuple((o, model.tensors[i].nbytes) for o, i in zip(inputs, model.inputs))!r}",
        f"OUTPUTS = {tuple((o, model.tensors[i].nbytes) for o, i in zip(outputs, model.outputs))!r}",
        f"INFO = {info!r}",
        *emitter.constants,
        "",
        "",
        f"STATES = {tuple((s.offset, s.value, s.nbytes) for s in state_tensors(model, plan.tensor_offsets))!r}",
        "",
        "",
        "def reset():",
        '    """The state tensors to their first values (TFLM\'s ResetVariableTensors)."""',
        "    for offset, value, size in STATES:",
        "        A[offset:offset + size] = bytes((value,)) * size",
        "",
        "",
        "reset()",
        "",
        "",
        "def invoke():",
        *[f"    {call}" for call in emitter.calls],
        "    return 0" if not emitter.calls else "",
    ]) + "\n"
    stats = ViperStats(arena, emitter.constant_bytes, emitter.macs, len(model.operators))
    return ViperProgram(source, stats, inputs, outputs)
