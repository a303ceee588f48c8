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
from typing import Mapping, Sequence

import numpy as np

from tinyedge import __version__
from tinyedge.aot.compiler import compile_model, state_tensors
from tinyedge.aot.int16 import INT16_ADD_LEFT_SHIFT, INT16_LIMITS, activation_input, leaky_relu_parameters
from tinyedge.aot.quant import activation_range, per_channel_multipliers, quantize_multiplier, zero_point
from tinyedge.errors import TinyedgeError
from tinyedge.ops.conv import Window, accumulator_bounds, bias_values, fc_multipliers, fold_bias, window
from tinyedge.ops.fixedpoint import exp_on_negative_values, srdhm, wrap32
from tinyedge.ops.add import add_parameters
from tinyedge.ops.broadcast import broadcast_geometry
from tinyedge.ops.logistic import logistic_table
from tinyedge.ops.lstm import (
    LSTM_CELL, LSTM_HIDDEN, LSTM_INPUT, LSTM_INPUT_WEIGHTS, LSTM_RECURRENT_WEIGHTS, folded_gate_biases, lstm_parameters,
    sigmoid_table,
)
from tinyedge.ops.mean import mean_geometry, mean_multiplier
from tinyedge.ops.mul import mul_parameters
from tinyedge.ops.opdata import (
    ArgData, BatchMatMulData, BlockCopyData, GatherData, LutData, PadData, ReduceData, ResizeBilinearData,
    RowGatherData, RowNormData, TransposeConvData,
)
from tinyedge.ops.softmax import softmax_parameters
from tinyedge.ops.svdf import SVDF_INPUT, SVDF_INT16_STATE, SVDF_STATE, svdf_multipliers
from tinyedge.ops.tanh import tanh_table
from tinyedge.ops import pad, strided_slice, transpose_conv
from tinyedge.ops.registry import PREPARED, viper_ops, viper_refusal
from tinyedge.ops.transpose_conv import BIAS as TRANSPOSE_CONV_BIAS
from tinyedge.ops.transpose_conv import INPUT as TRANSPOSE_CONV_INPUT
from tinyedge.ops.transpose_conv import WEIGHTS as TRANSPOSE_CONV_WEIGHTS
from tinyedge.protocol import DeviceInfo, PROTOCOL_VERSION, TensorInfo, encode_info
from tinyedge.templating import hash_comment
from tinyedge.tflite_model import PADDINGS, Operator, Tensor, TfliteModel
from tinyedge.viper.kernels import KERNEL_MODULE, call_text, packed_params

MODEL_MODULE = "te_model"
INT32_LIMIT = 1 << 31
SOFTMAX_MAX_DEPTH = 511   # above this the sum of exps can need a right shift past 31 (TFLM asserts)
INT16 = "INT16"
IO_TYPES = ("INT8", INT16)
OUTPUT_TYPES = (*IO_TYPES, "INT32")   # an int32 output comes from QUANTIZE (TFLM's keyword model)
ELEMENT_BYTES = {"INT8": 1, INT16: 2, "INT32": 4}
ELEMENT_DTYPES = {"INT8": "<i1", INT16: "<i2"}
HALF_RANGE = {"INT8": 128, INT16: 32768}     # the largest magnitude of an element
LIMITS = {"INT8": (-128, 127), INT16: INT16_LIMITS}
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
    for t, types in [(t, IO_TYPES) for t in model.input_tensors] + [(t, OUTPUT_TYPES) for t in model.output_tensors]:
        if t.type_name not in types:
            raise TinyedgeError(f"model I/O tensor '{t.name}' is {t.type_name.lower()}, but the viper runtime "
                                "serves int8 and int16 inputs and int8, int16 and int32 outputs only: quantize the "
                                "model to full int8 (or 16x8).")


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

    def at(self, index: int, type_name: str = "INT8") -> int:
        """The arena offset of an activation tensor of the type the op's kernel computes in."""
        t = self.model.tensors[index]
        if t.is_constant:
            raise TinyedgeError(f"tensor '{t.name}' is a constant where the viper runtime expects an activation: "
                                "use a C board with `--runtime aot` for this model.")
        if t.type_name != type_name:
            raise TinyedgeError(f"tensor '{t.name}' is {t.type_name.lower()} where the viper runtime computes "
                                f"{type_name.lower()}: quantize the model to full int8 (or 16x8).")
        return self.offsets[index]


def _kernel(e: _Emitter, op: Operator, kernel: str, buffers: Mapping[str, str],
            params: Mapping[str, int] | None = None, table: str = "") -> str:
    """The call of a viper kernel, its arguments and P fields given by name and put in the order the kernel
    declares them (tinyedge.viper.kernels checks the names: a mismatch is a bug, caught here); P becomes
    the constant `table` (P<op index> by default)."""
    args = dict(buffers)
    if params is not None:
        args["P"] = e.const(table or f"P{op.index}", i32_bytes(packed_params(kernel, params)))
    return call_text(kernel, args)


def _halves(prefix: str, multiplier: int) -> dict[str, int]:
    """A Q31 multiplier as the kernels' (high, low) 16-bit halves, named prefix + "h" and prefix + "l"."""
    return {f"{prefix}h": multiplier >> 16, f"{prefix}l": multiplier & 0xFFFF}


def _window_fields(geometry: Window) -> dict[str, int]:
    """te_window_t's fields under the kernels' names."""
    g = geometry
    return {"in_h": g.in_h, "in_w": g.in_w, "in_c": g.in_c, "out_h": g.out_h, "out_w": g.out_w, "out_c": g.out_c,
            "k_h": g.k_h, "k_w": g.k_w, "s_h": g.stride_h, "s_w": g.stride_w, "d_h": g.dil_h, "d_w": g.dil_w,
            "pad_h": g.pad_h, "pad_w": g.pad_w}


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
        _emit_signed_conv(e, op, "conv2d_grouped", weights.reshape(out_c, -1), bias, multipliers, geometry,
                          offsets, {"fd": filter_t.shape[3], "fpg": out_c // groups})
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
    params = {"src": e.at(op.inputs[0]), "dst": e.at(op.outputs[0]), **_window_fields(geometry),
              "ozp": int(out_t.zero_point[0]), "lo": act_min, "hi": act_max, "pc": int(len(multipliers) > 1)}
    if depthwise and depth_multiplier != 1:
        kernel = "depthwise_multiplier"
        params.update(k=k, dm=depth_multiplier)
    else:
        kernel = "depthwise_conv2d" if depthwise else "conv2d"
        params["zpu"] = k
    n = op.index
    w = e.const(f"W{n}", weights.tobytes() if depthwise else offset_binary(weights))
    b = e.const(f"B{n}", i32_bytes(bias))
    q = e.const(f"Q{n}", _requant_table(multipliers))
    e.calls.append(_kernel(e, op, kernel, {"A": "A", "W": w, "B": b, "Q": q}, params))
    taps = k_h * k_w * (1 if depthwise else in_t.shape[3])
    e.macs += out_t.size * taps


def _emit_signed_conv(e: _Emitter, op: Operator, kernel: str, weights: np.ndarray, bias: np.ndarray,
                      multipliers: Sequence[tuple[int, int]], geometry: Window,
                      offsets: tuple[int, int, tuple[int, int]], extra: Mapping[str, int] | None = None) -> None:
    """A convolution kernel that sums (x + input offset) * w over the taps inside the input, with signed
    weights (one row per output channel) and the raw bias: grouped CONV_2D and TRANSPOSE_CONV.
    `offsets`: the input offset, the output zero point and the activation range."""
    multipliers = list(multipliers)
    input_offset, output_offset, (act_min, act_max) = offsets
    _check_accumulator(op, weights, bias, 128 + abs(input_offset), multipliers)
    src = op.inputs[TRANSPOSE_CONV_INPUT] if op.opcode == "TRANSPOSE_CONV" else op.inputs[0]
    params = {"src": e.at(src), "dst": e.at(op.outputs[0]), **_window_fields(geometry), "ioff": input_offset,
              "ozp": output_offset, "lo": act_min, "hi": act_max, "pc": int(len(multipliers) > 1), **(extra or {})}
    n = op.index
    w, b = e.const(f"W{n}", np.asarray(weights, dtype=np.int8).tobytes()), e.const(f"B{n}", i32_bytes(bias))
    q = e.const(f"Q{n}", _requant_table(multipliers))
    e.calls.append(_kernel(e, op, kernel, {"A": "A", "W": w, "B": b, "Q": q}, params))


def _emit_transpose_conv(e: _Emitter, op: Operator, data: TransposeConvData) -> None:
    """TRANSPOSE_CONV from the AOT's OpData (tinyedge.ops.transpose_conv): weights [out_c, k_h, k_w, in_c]."""
    in_h, in_w, in_c, _, _, out_c, k_h, k_w = data.window[:8]
    weights = np.asarray(e.model.tensors[op.inputs[TRANSPOSE_CONV_WEIGHTS]].data, dtype=np.int8).reshape(out_c, -1)
    has_bias = len(op.inputs) > TRANSPOSE_CONV_BIAS and op.inputs[TRANSPOSE_CONV_BIAS] >= 0
    bias = (np.asarray(e.model.tensors[op.inputs[TRANSPOSE_CONV_BIAS]].data, dtype=np.int64).reshape(-1) if has_bias
            else np.zeros(out_c, dtype=np.int64))
    _emit_signed_conv(e, op, "transpose_conv", weights, bias, data.multipliers, Window(*data.window),
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
    params = {"src": e.at(op.inputs[0]), "dst": e.at(op.outputs[0]), "batches": batches, "depth": depth,
              "n_out": n_out, "zpu": k, "ozp": int(out_t.zero_point[0]), "lo": act_min, "hi": act_max,
              "pc": int(len(multipliers) > 1)}
    n = op.index
    w, b = e.const(f"W{n}", offset_binary(weights)), e.const(f"B{n}", i32_bytes(bias))
    q = e.const(f"Q{n}", _requant_table(multipliers))
    e.calls.append(_kernel(e, op, "fully_connected", {"A": "A", "W": w, "B": b, "Q": q}, params))
    e.macs += batches * depth * n_out


def _emit_pool(e: _Emitter, op: Operator, kernel: str) -> None:
    in_t, out_t = _require_4d(op, e.model)
    o = op.options
    act_min, act_max = activation_range(op.activation, out_t)
    geometry = window(in_t, out_t, int(o.filterHeight), int(o.filterWidth), o)
    params = {"src": e.at(op.inputs[0]), "dst": e.at(op.outputs[0]), **_window_fields(geometry), "ozp": 0,
              "lo": act_min, "hi": act_max}
    e.calls.append(_kernel(e, op, kernel, {"A": "A"}, params))


def _source(e: _Emitter, op: Operator, index: int, type_name: str = "INT8") -> tuple[str, int]:
    """(buffer, byte offset) of an operand: the arena, or a constant's own bytes (little-endian)."""
    t = e.model.tensors[index]
    if t.is_constant:
        return e.const(f"X{op.index}_{index}", np.asarray(t.data).astype(ELEMENT_DTYPES[type_name]).tobytes()), 0
    return "A", e.at(index, type_name)


def _binary_operands(e: _Emitter, op: Operator, type_name: str = "INT8") -> tuple[dict[str, str], dict[str, int]]:
    """A binary elementwise op's operand buffers (X, Y) and its broadcast walk padded to 4 dims (the
    kernels' xa, ya, dst, sizes n0..n3 and each operand's strides xs0..xs3, ys0..ys3, in bytes)."""
    tensors = [e.model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0])]
    if any(t.type_name != type_name for t in tensors):
        raise _refuse(op, f"is not {type_name.lower()} throughout")
    size = ELEMENT_BYTES[type_name]
    geometry = broadcast_geometry(*(t.shape for t in tensors))
    ndim = geometry[0]
    if ndim > 4:
        raise _refuse(op, "broadcasts over more than 4 dimensions")
    pad = 4 - ndim
    sizes, x_strides, y_strides = ([fill] * pad + geometry[1 + k * ndim:1 + (k + 1) * ndim]
                                   for k, fill in enumerate((1, 0, 0)))
    (x, xa), (y, ya) = (_source(e, op, op.inputs[k], type_name) for k in (0, 1))
    walk = {"xa": xa, "ya": ya, "dst": e.at(op.outputs[0], type_name), **_numbered("n", sizes),
            **_numbered("xs", [size * v for v in x_strides]), **_numbered("ys", [size * v for v in y_strides])}
    return {"A": "A", "X": x, "Y": y}, walk


def _emit_add(e: _Emitter, op: Operator, kernel: str = "add", rescaling: Sequence[int] = (),
              type_name: str = "INT8") -> None:
    """ADD, or SUB (kernel "sub") with its prepared rescalings (te_add_params_t's fields); int16: add16, sub16."""
    buffers, walk = _binary_operands(e, op, type_name)
    (a_off, a_mult, a_shift, b_off, b_mult, b_shift, left, o_mult, o_shift, o_zp, act_min, act_max) = rescaling or \
        add_parameters(*(e.model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0])), op.activation)
    _check_shifted(op, HALF_RANGE[type_name] + max(abs(a_off), abs(b_off)), left)
    params = {**walk, "aoff": a_off, **_halves("am", a_mult), "ash": a_shift, "boff": b_off, **_halves("bm", b_mult),
              "bsh": b_shift, "lsh": left, **_halves("om", o_mult), "osh": o_shift, "ozp": o_zp, "lo": act_min,
              "hi": act_max}
    e.calls.append(_kernel(e, op, kernel, buffers, params))


def _emit_prelu(e: _Emitter, op: Operator, rescaling: Sequence[int]) -> None:
    buffers, walk = _binary_operands(e, op)
    a_off, b_off, o_zp, m1, s1, m2, s2 = rescaling
    _check_shifted(op, 128 + abs(a_off), s1)
    _check_shifted(op, (128 + abs(a_off)) * (128 + abs(b_off)), s2)
    params = {**walk, "aoff": a_off, "boff": b_off, "ozp": o_zp, **_halves("m1", m1), "s1": s1, **_halves("m2", m2),
              "s2": s2}
    e.calls.append(_kernel(e, op, "prelu", buffers, params))


def _emit_prepared(e: _Emitter, op: Operator) -> None:
    """An op module's OpData (tinyedge.ops.opdata), as viper calls."""
    data = PREPARED[op.opcode].prepare(e.model, op)
    if isinstance(data, LutData):
        _emit_table(e, op, list(data.table))
    elif isinstance(data, PadData):
        params = {"src": e.at(op.inputs[0]), "dst": e.at(op.outputs[0]), **_numbered("i", data.in_dims),
                  **_numbered("o", data.out_dims), **_numbered("b", data.before), "value": data.value}
        e.calls.append(_kernel(e, op, "pad", {"A": "A"}, params))
    elif isinstance(data, RowGatherData):
        rows = e.const(f"R{op.index}", i32_bytes(data.rows))
        params = {"src": e.at(op.inputs[0]), "dst": e.at(op.outputs[0]), "count": len(data.rows), "row": data.row_bytes}
        e.calls.append(_kernel(e, op, "gather_rows", {"A": "A", "R": rows}, params))
    elif isinstance(data, TransposeConvData):
        _emit_transpose_conv(e, op, data)
    elif isinstance(data, BlockCopyData):
        _emit_block_copies(e, op, data)
    elif isinstance(data, ResizeBilinearData):
        params = [e.at(op.inputs[0]), e.at(op.outputs[0]), *data.geometry]
        ys, xs = e.const(f"Y{op.index}", i32_bytes(data.ys)), e.const(f"X{op.index}", i32_bytes(data.xs))
        e.calls.append(f"k.resize_bilinear(A, {ys}, {xs}, {e.const(f'P{op.index}', i32_bytes(params))})")
    elif isinstance(data, BatchMatMulData):
        _emit_batch_matmul(e, op, data)
    elif isinstance(data, ReduceData):
        _emit_reduce(e, op, data)
    elif isinstance(data, ArgData):
        _emit_arg(e, op, data)
    elif isinstance(data, RowNormData):
        e.calls.append(f"k.{data.kernel.removesuffix('_s8')}(A, {data.outer}, {e.at(op.inputs[0])}, "
                       f"{e.at(op.outputs[0])}, {data.depth}, {data.input_zero_point})")
    elif isinstance(data, GatherData):
        params = {"src": e.at(op.inputs[0]) + data.in_offset, "dst": e.at(op.outputs[0]),
                  **_numbered("o", data.out_dims), **_numbered("s", data.in_strides)}
        e.calls.append(_kernel(e, op, "transpose", {"A": "A"}, params))
    elif data.kernel == "sub_s8":
        _emit_add(e, op, "sub", data.params)
    elif data.kernel == "squared_difference_s8":
        _emit_add(e, op, "squared_difference", data.params)
    elif data.kernel == "prelu_s8":
        _emit_prelu(e, op, data.params)
    else:
        buffers, walk = _binary_operands(e, op)
        e.calls.append(_kernel(e, op, "maxmin", buffers, {**walk, "mx": data.flag}))


def _numbered(prefix: str, values: Sequence[int]) -> dict[str, int]:
    """values as the kernel fields prefix0, prefix1, ..."""
    return {f"{prefix}{i}": v for i, v in enumerate(values)}


def _emit_block_copies(e: _Emitter, op: Operator, data: BlockCopyData) -> None:
    """SPLIT, SPLIT_V, UNPACK (blocks read strided, written in order: a 2-D `transpose` walk) and PACK (blocks
    read in order, written strided: `copy_blocks`), one call per (input, output) pair."""
    calls = []
    for k, c in enumerate(data.copies):
        dst, src = e.at(op.outputs[c.dst]) + c.dst_offset, e.at(op.inputs[c.src]) + c.src_offset
        if dst == src:   # the plan made this output a view of the input's bytes
            continue
        if c.dst_stride == c.block:
            p = e.const(f"P{op.index}_{k}", i32_bytes([src, dst, 1, 1, c.outer, c.block, 0, 0, c.src_stride, 1]))
            calls.append(f"k.transpose(A, {p})")
        else:
            p = e.const(f"P{op.index}_{k}", i32_bytes([dst, src, c.outer, c.block, c.dst_stride]))
            calls.append(f"k.copy_blocks(A, A, {p})")
    e.calls.append("; ".join(calls) or "pass")


def _emit_batch_matmul(e: _Emitter, op: Operator, data: BatchMatMulData) -> None:
    batches, rows, cols, depth, *strides, lhs_offset, rhs_offset, out_offset, multiplier, shift = data.params
    dst = e.at(op.outputs[0])   # refuses an int16 variant
    _check_shifted(op, depth * (128 + abs(lhs_offset)) * (128 + abs(rhs_offset)), shift)
    (lhs, lhs_at), (rhs, rhs_at) = _source(e, op, op.inputs[0]), _source(e, op, op.inputs[1])
    params = [lhs_at, rhs_at, dst, batches, rows, cols, depth, *strides, lhs_offset, rhs_offset,
              out_offset, multiplier >> 16, multiplier & 0xFFFF, shift]   # the Q31 multiplier in 16-bit halves
    offsets = e.const(f"O{op.index}", i32_bytes(data.offsets))
    e.calls.append(f"k.batch_matmul(A, {lhs}, {rhs}, {offsets}, {e.const(f'P{op.index}', i32_bytes(params))})")
    e.macs += batches * rows * cols * depth


def _check_shifted(op: Operator, magnitude: int, shift: int) -> None:
    """Refuse an op whose largest value, shifted left by its multiplier's exponent, could leave int32."""
    if magnitude << max(shift, 0) >= INT32_LIMIT:
        raise _refuse(op, f"could reach {magnitude << max(shift, 0):,} before its rescaling, beyond int32")


def _emit_mul(e: _Emitter, op: Operator, type_name: str = "INT8") -> None:
    buffers, walk = _binary_operands(e, op, type_name)
    a_off, b_off, multiplier, shift, o_zp, act_min, act_max = mul_parameters(
        *(e.model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0])), op.activation,
        LIMITS[type_name])
    half = HALF_RANGE[type_name]
    _check_shifted(op, (half + abs(a_off)) * (half + abs(b_off)), shift)
    params = {**walk, "aoff": a_off, "boff": b_off, **_halves("m", multiplier), "sh": shift, "ozp": o_zp,
              "lo": act_min, "hi": act_max}
    e.calls.append(_kernel(e, op, "mul" if type_name == "INT8" else "mul16", buffers, params))


def _emit_concatenation(e: _Emitter, op: Operator, type_name: str = "INT8") -> None:
    """One block copy per input, as the AOT's te_copy_blocks (int16: blocks of twice the bytes)."""
    out_t = e.model.tensors[op.outputs[0]]
    if op.activation != "NONE":
        raise _refuse(op, "has a fused activation")
    axis = int(op.options.axis) % len(out_t.shape)
    size = ELEMENT_BYTES[type_name]
    outer, row = math.prod(out_t.shape[:axis]), size * math.prod(out_t.shape[axis:])
    dst, column, calls = e.at(op.outputs[0], type_name), 0, []
    for index in op.inputs:
        block = size * math.prod(e.model.tensors[index].shape[axis:])
        buffer, offset = _source(e, op, index, type_name)
        params = {"dst": dst + column, "src": offset, "outer": outer, "block": block, "stride": row}
        calls.append(_kernel(e, op, "copy_blocks", {"A": "A", "X": buffer}, params, f"P{op.index}_{index}"))
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
    params = {"src": e.at(op.inputs[0]), "dst": e.at(op.outputs[0]),
              **_numbered("k", [1] * kept + geometry.kept_sizes), **_numbered("ks", [0] * kept + geometry.kept_strides),
              **_numbered("r", [1] * reduced + geometry.reduced_sizes),
              **_numbered("rs", [0] * reduced + geometry.reduced_strides),
              "izc": int(inp.zero_point[0]) * geometry.count, **_halves("m", multiplier), "sh": shift,
              "ozp": int(out.zero_point[0])}
    e.calls.append(_kernel(e, op, "mean", {"A": "A"}, params))


def _emit_reduce(e: _Emitter, op: Operator, data: ReduceData) -> None:
    """REDUCE_MAX/MIN on MEAN's walk, its geometry padded to 3 kept and 3 reduced dims."""
    n_kept, n_red = data.geometry[0], data.geometry[1]
    if n_kept > 3 or n_red > 3:
        raise _refuse(op, "keeps or reduces more than 3 separate dimensions")
    kept_sizes, kept_strides = data.geometry[2:2 + n_kept], data.geometry[2 + n_kept:2 + 2 * n_kept]
    red_sizes = data.geometry[2 + 2 * n_kept:2 + 2 * n_kept + n_red]
    red_strides = data.geometry[2 + 2 * n_kept + n_red:]
    kept, reduced = 3 - n_kept, 3 - n_red
    params = {"src": e.at(op.inputs[0]), "dst": e.at(op.outputs[0]),
              **_numbered("k", [1] * kept + list(kept_sizes)), **_numbered("ks", [0] * kept + list(kept_strides)),
              **_numbered("r", [1] * reduced + list(red_sizes)), **_numbered("rs", [0] * reduced + list(red_strides)),
              "mx": int(data.is_max)}
    e.calls.append(_kernel(e, op, "reduce_minmax", {"A": "A"}, params))


def _emit_arg(e: _Emitter, op: Operator, data: ArgData) -> None:
    params = {"src": e.at(op.inputs[0]), "dst": e.at(op.outputs[0], "INT32"), "outer": data.outer,
              "axis": data.axis_size, "inner": data.inner, "mx": int(data.is_max)}
    e.calls.append(_kernel(e, op, "arg_minmax", {"A": "A"}, params))


def _emit_quantize(e: _Emitter, op: Operator) -> None:
    """QUANTIZE int8 -> int8 (a requantization), or between int8 and int16 (requantize_int); other types
    never reach here (`at` refuses them)."""
    inp, out = e.model.tensors[op.inputs[0]], e.model.tensors[op.outputs[0]]
    if (inp.type_name, out.type_name) != ("INT8", "INT8"):
        _emit_requantize_int(e, op)
        return
    src, dst = e.at(op.inputs[0]), e.at(op.outputs[0])
    multiplier, shift = quantize_multiplier(float(np.float32(inp.scale[0])) / float(np.float32(out.scale[0])))
    _check_shifted(op, 256, shift)
    params = {"src": src, "dst": dst, "n": inp.size, "izp": int(inp.zero_point[0]), **_halves("m", multiplier),
              "sh": shift, "ozp": int(out.zero_point[0])}
    e.calls.append(_kernel(e, op, "requantize", {"A": "A"}, params))


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
    wide = out.type_name == INT16
    if wide and (zero_point(out) != -32768 or abs(float(np.float32(out.scale[0])) - 1 / 65536) > 0.001 / 65536):
        raise _refuse(op, "has an int16 output not quantized with scale 1/65536 and zero point -32768")
    if not wide and (int(out.zero_point[0]) != -128 or np.float32(out.scale[0]) != np.float32(1.0 / 256)):
        raise _refuse(op, "has an output not quantized with scale 1/256 and zero point -128")
    depth = inp.shape[-1]
    if depth > SOFTMAX_MAX_DEPTH:
        raise _refuse(op, f"has {depth} classes (more than {SOFTMAX_MAX_DEPTH})")
    beta = float(getattr(op.options, "beta", 1.0))
    table = softmax_exp_table(*softmax_parameters(beta, float(np.float32(inp.scale[0]))))
    args = {"A": "A", "E": e.const(f"E{op.index}", i32_bytes(table)), "outer": inp.size // depth,
            "src": e.at(op.inputs[0]), "dst": e.at(op.outputs[0], out.type_name), "depth": depth}
    e.calls.append(_kernel(e, op, "softmax16" if wide else "softmax", {name: str(v) for name, v in args.items()}))


def _emit_table(e: _Emitter, op: Operator, table: list[int]) -> None:
    t = e.const(f"T{op.index}", bytes(v & 0xFF for v in table))
    params = {"src": e.at(op.inputs[0]), "dst": e.at(op.outputs[0]), "n": e.model.tensors[op.inputs[0]].size}
    e.calls.append(_kernel(e, op, "lut", {"A": "A", "T": t}, params))


def _emit(e: _Emitter, op: Operator) -> None:
    model = e.model
    code = op.opcode
    if _runs_int16(model, op):
        _emit_int16(e, op)
    elif code in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _emit_conv(e, op, depthwise=code == "DEPTHWISE_CONV_2D")
    elif code == "FULLY_CONNECTED":
        _emit_fully_connected(e, op)
    elif code in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        _emit_pool(e, op, "average_pool" if code == "AVERAGE_POOL_2D" else "max_pool")
    elif code in SIMPLE_EMITTERS:
        SIMPLE_EMITTERS[code](e, op)
    elif code == "SOFTMAX":
        _emit_softmax(e, op)
    elif code in ("LOGISTIC", "TANH"):
        inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
        if code == "LOGISTIC" and int(out.zero_point[0]) != -128:
            raise _refuse(op, "has an output zero point other than -128")
        make = logistic_table if code == "LOGISTIC" else tanh_table
        _emit_table(e, op, make(float(np.float32(inp.scale[0])), int(inp.zero_point[0])))
    elif code in ("RESHAPE", "SQUEEZE"):   # shares its input's bytes; a constant input is refused there
        e.at(op.inputs[0], INT16 if model.tensors[op.inputs[0]].type_name == INT16 else "INT8")
    elif code in PREPARED:   # the op modules viper has no emitter of its own for
        _emit_prepared(e, op)
    if code not in ("RESHAPE", "SQUEEZE"):
        e.calls[-1] += f"  # {op.index}: {code}"


def _emit_svdf(e: _Emitter, op: Operator) -> None:
    """SVDF with the AOT's multipliers (tinyedge.ops.svdf), its state a variable tensor in the arena."""
    tensors = [e.model.tensors[i] if i >= 0 else None for i in list(op.inputs) + [-1] * 5]
    inp, weights_feature, weights_time, bias, state = tensors[:5]
    out = e.model.tensors[op.outputs[0]]
    if inp is None or weights_feature is None or weights_time is None or state is None or not state.is_variable:
        raise _refuse(op, "lacks one of its input, weights or variable state tensors")
    kinds = tuple(t.type_name for t in (inp, weights_feature, weights_time, state, out))
    if kinds not in (("INT8",) * 5, SVDF_INT16_STATE):
        raise _refuse(op, "is neither int8 throughout nor int8 with int16 time weights and state")
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
    wide = kinds == SVDF_INT16_STATE
    if wide:
        # te_svdf_s16 sums in wrapping int32, as the kernel does: each product must fit, and no left shift
        _check_shifted(op, int(np.abs(time).max(initial=0)) * (32768 + abs(zero_point(state))), 0)
        if s2 > 0:
            raise _refuse(op, "rescales its wrapping int32 sum up (a positive shift)")
    else:
        unit_time = np.abs(time).sum(axis=1).reshape(-1, rank).sum(axis=1) * 255
        _check_shifted(op, int((np.abs(biases) + unit_time).max()), s2)
    params = {"src": e.at(op.inputs[SVDF_INPUT]), "state": e.offsets[op.inputs[SVDF_STATE]], "dst": e.at(op.outputs[0]),
              "n_input": n_input, "n_filter": n_filter, "n_memory": n_memory, "rank": rank, "izp": zero_point(inp),
              "szp": zero_point(state), "ozp": zero_point(out), **_halves("m1", m1), "s1": s1, **_halves("m2", m2),
              "s2": s2}
    n = op.index
    wf = e.const(f"W{n}", feature.astype(np.int8).tobytes())
    wt = e.const(f"T{n}", time.astype("<i2" if wide else np.int8).tobytes())
    b = e.const(f"B{n}", i32_bytes(biases))
    e.calls.append(_kernel(e, op, "svdf_s16" if wide else "svdf", {"A": "A", "WF": wf, "WT": wt, "B": b}, params))
    e.macs += n_filter * (n_input + n_memory)


def _emit_lstm(e: _Emitter, op: Operator) -> None:
    """UNIDIRECTIONAL_SEQUENCE_LSTM as the AOT lowers it (tinyedge.ops.lstm, whose checks compile_model
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
    gate_fields = {}
    for g in range(4):
        for kind, (m, s) in (("x", gates[4 * g:4 * g + 2]), ("r", gates[4 * g + 2:4 * g + 4])):
            gate_fields.update({**_halves(f"{kind}{g}", m), f"{kind}{g}s": s})
    params = {"src": e.at(op.inputs[LSTM_INPUT]), "hid": e.offsets[op.inputs[LSTM_HIDDEN]],
              "cell": e.offsets[op.inputs[LSTM_CELL]], "dst": e.at(op.outputs[0]), "steps": steps, "n_input": n_input,
              "n_state": n_state, **gate_fields, **_halves("fm", fm), "fsh": fs, **_halves("im", im), "ish": is_,
              **_halves("om", om), "osh": os_, "hzp": hzp, "clip": clip, "tm": tanh_m, "ts": tanh_s, "sig": sigmoid}
    n = op.index
    w = e.const(f"W{n}", b"".join(rows.astype(np.int8).tobytes() for rows in weights))
    g_table = e.const(f"G{n}", i32_bytes(np.concatenate(biases)))
    lut = e.const(f"L{n}", struct.pack(f"<{len(sigmoid_table())}H", *sigmoid_table()))
    e.calls.append(_kernel(e, op, "lstm", {"A": "A", "W": w, "G": g_table, "L": lut}, params))
    e.macs += steps * 4 * n_state * (n_input + n_state)


# ---------------------------------------------------------------------------------------------
# int16 activations (TFLite's 16x8): the op's activation input is int16 (tinyedge.aot.int16's rule)

def _runs_int16(model: TfliteModel, op: Operator) -> bool:
    """The op runs its int16 variant (QUANTIZE, RESHAPE and SQUEEZE handle int16 themselves)."""
    return (op.opcode not in ("QUANTIZE", "RESHAPE", "SQUEEZE")
            and model.tensors[activation_input(op)].type_name == INT16)


def _require_symmetric(op: Operator, tensors: Sequence[Tensor]) -> None:
    """TFLM's 16x8 kernels assume int16 zero points of 0."""
    if any(t.type_name == INT16 and zero_point(t) != 0 for t in tensors):
        raise _refuse(op, "has an int16 tensor with a non-zero zero point")


def _bias_16x8(e: _Emitter, op: Operator, channels: int, int32_allowed: bool) -> tuple[np.ndarray, bool]:
    """The op's bias per channel and whether TFLM takes its int64 path (`wide`): int64 biases (TRANSPOSE_CONV's
    int16 ones widened) and none; an int32 bias (CONV_2D only) runs the int32 path."""
    position = TRANSPOSE_CONV_BIAS if op.opcode == "TRANSPOSE_CONV" else 2
    if not (len(op.inputs) > position and op.inputs[position] >= 0):
        return np.zeros(channels, dtype=np.int64), True
    bias_t = e.model.tensors[op.inputs[position]]
    allowed = ("INT64", "INT32" if int32_allowed else "INT16" if op.opcode == "TRANSPOSE_CONV" else "INT64")
    if bias_t.data is None or bias_t.type_name not in allowed:
        raise _refuse(op, f"has a {bias_t.type_name.lower()} bias")
    return np.asarray(bias_t.data, dtype=np.int64).reshape(-1), bias_t.type_name != "INT32"


def _requant_16x8(op: Operator, rows: np.ndarray, bias: np.ndarray, multipliers: list[tuple[int, int]],
                  wide: bool) -> bytes:
    """The Q table of a 16x8 kernel, per channel (reduced, ts, 0) for TFLM's int64 path or (mh, ml, shift),
    after proving the accumulator (and the int64 path's rescaled value) stays inside int32."""
    bounds = accumulator_bounds(rows, bias, 32768, [(m, 0 if wide else s) for m, s in multipliers])
    worst = int(bounds.max(initial=0))
    if worst >= INT32_LIMIT:
        raise _refuse(op, f"could accumulate {worst:,}, beyond int32")
    if not wide:
        return _requant_table(multipliers)
    values = []
    for multiplier, shift in multipliers:
        reduced = (multiplier + (1 << 15)) >> 16 if multiplier < 0x7FFF0000 else 0x7FFF
        total_shift = 15 - shift
        if not 1 <= total_shift <= 46 or (total_shift <= 15 and worst * reduced >= 1 << (30 + total_shift)):
            raise _refuse(op, "rescales beyond what its int32 arithmetic can hold")
        values += [reduced, total_shift, 0]
    return i32_bytes(values)


def _emit_mac_16x8(e: _Emitter, op: Operator, kernel: str, rows: np.ndarray, multipliers: list[tuple[int, int]],
                   fields: Mapping[str, int], int32_bias: bool = False) -> None:
    """A 16x8 multiply-accumulate kernel: int8 weights W (as stored), bias B as int32, Q, P."""
    out_t = e.model.tensors[op.outputs[0]]
    bias, wide = _bias_16x8(e, op, rows.shape[0], int32_bias)
    q_table = _requant_16x8(op, rows, bias, multipliers, wide)
    act_min, act_max = activation_range(op.activation, out_t, INT16_LIMITS)
    params = {"src": e.at(activation_input(op), INT16), "dst": e.at(op.outputs[0], INT16), **fields, "ozp": 0,
              "lo": act_min, "hi": act_max, "pc": int(len(multipliers) > 1), "wide": int(wide)}
    n = op.index
    w = e.const(f"W{n}", np.asarray(e.model.tensors[op.inputs[1]].data, dtype=np.int8).tobytes())
    b, q = e.const(f"B{n}", i32_bytes(bias)), e.const(f"Q{n}", q_table)
    e.calls.append(_kernel(e, op, kernel, {"A": "A", "W": w, "B": b, "Q": q}, params))


def _emit_conv_16x8(e: _Emitter, op: Operator) -> None:
    """CONV_2D (grouped too) and DEPTHWISE_CONV_2D with int16 activations and int8 weights."""
    in_t, out_t = _require_4d(op, e.model)
    filter_t = e.model.tensors[op.inputs[1]]
    _require_symmetric(op, (in_t, out_t))
    if filter_t.type_name != "INT8" or filter_t.data is None:
        raise _refuse(op, "has weights that are not constant int8")
    o, out_c = op.options, out_t.shape[3]
    k_h, k_w = filter_t.shape[1], filter_t.shape[2]
    geometry = window(in_t, out_t, k_h, k_w, o, int(o.dilationHFactor), int(o.dilationWFactor))
    weights = np.asarray(filter_t.data, dtype=np.int8)
    multipliers = per_channel_multipliers(in_t, filter_t, out_t, out_c)
    if op.opcode == "DEPTHWISE_CONV_2D":
        fields = {**_window_fields(geometry), "dm": out_c // in_t.shape[3]}
        _emit_mac_16x8(e, op, "depthwise_conv2d_s16", weights.reshape(-1, out_c).T, multipliers, fields)
        e.macs += out_t.size * k_h * k_w
        return
    depth = filter_t.shape[3]
    groups = in_t.shape[3] // depth
    if in_t.shape[3] % depth or out_c % groups:
        raise _refuse(op, "has channels that do not divide into its groups")
    fields = {**_window_fields(geometry), "fd": depth, "fpg": out_c // groups}
    _emit_mac_16x8(e, op, "conv2d_s16", weights.reshape(out_c, -1), multipliers, fields, int32_bias=True)
    e.macs += out_t.size * k_h * k_w * depth


def _emit_transpose_conv_16x8(e: _Emitter, op: Operator) -> None:
    """TRANSPOSE_CONV 16x8 from the op module's geometry and multipliers (as the AOT's int16 lowering)."""
    _require_symmetric(op, [e.model.tensors[i] for i in (op.inputs[TRANSPOSE_CONV_INPUT], op.outputs[0])])
    data = transpose_conv.prepare_geometry(e.model, op)
    geometry = Window(*data.window)
    weights = np.asarray(e.model.tensors[op.inputs[TRANSPOSE_CONV_WEIGHTS]].data, dtype=np.int8)
    _emit_mac_16x8(e, op, "transpose_conv_s16", weights.reshape(geometry.out_c, -1), list(data.multipliers),
                   _window_fields(geometry))
    e.macs += geometry.in_h * geometry.in_w * geometry.in_c * geometry.k_h * geometry.k_w * geometry.out_c


def _emit_fully_connected_16x8(e: _Emitter, op: Operator) -> None:
    in_t, out_t = e.model.tensors[op.inputs[0]], e.model.tensors[op.outputs[0]]
    filter_t = e.model.tensors[op.inputs[1]]
    _require_symmetric(op, (in_t, out_t))
    if filter_t.type_name != "INT8" or len(filter_t.shape) != 2 or filter_t.data is None:
        raise _refuse(op, "has no constant 2-D int8 weights")
    n_out, depth = filter_t.shape
    fields = {"batches": in_t.size // depth, "depth": depth, "n_out": n_out}
    _emit_mac_16x8(e, op, "fully_connected_s16", np.asarray(filter_t.data, dtype=np.int8),
                   fc_multipliers(in_t, filter_t, out_t), fields)
    e.macs += in_t.size * n_out


def _emit_pool_16x8(e: _Emitter, op: Operator) -> None:
    in_t, out_t = _require_4d(op, e.model)
    _require_symmetric(op, (in_t, out_t))
    o = op.options
    act_min, act_max = activation_range(op.activation, out_t, INT16_LIMITS)
    geometry = window(in_t, out_t, int(o.filterHeight), int(o.filterWidth), o)
    params = {"src": e.at(op.inputs[0], INT16), "dst": e.at(op.outputs[0], INT16), **_window_fields(geometry),
              "ozp": 0, "lo": act_min, "hi": act_max}
    kernel = "average_pool16" if op.opcode == "AVERAGE_POOL_2D" else "max_pool16"
    e.calls.append(_kernel(e, op, kernel, {"A": "A"}, params))


def _emit_pad_16x8(e: _Emitter, op: Operator) -> None:
    """PAD/PADV2 of int16 data as the byte kernel over pairs of bytes (the pad value's two bytes equal)."""
    in_t, out_t = e.model.tensors[op.inputs[0]], e.model.tensors[op.outputs[0]]
    data = pad.geometry(e.model, op, in_t, out_t)
    low, high = data.value & 0xFF, (data.value >> 8) & 0xFF
    if low != high:
        raise _refuse(op, f"pads with {data.value}, whose two bytes differ")
    params = {"src": e.at(op.inputs[0], INT16), "dst": e.at(op.outputs[0], INT16),
              **_numbered("i", [*data.in_dims[:3], 2 * data.in_dims[3]]),
              **_numbered("o", [*data.out_dims[:3], 2 * data.out_dims[3]]),
              **_numbered("b", [*data.before[:3], 2 * data.before[3]]), "value": low}
    e.calls.append(_kernel(e, op, "pad", {"A": "A"}, params))


def _emit_strided_slice_16x8(e: _Emitter, op: Operator) -> None:
    data = strided_slice.prepare(e.model, op)
    params = {"src": e.at(op.inputs[0], INT16) + 2 * data.in_offset, "dst": e.at(op.outputs[0], INT16),
              **_numbered("o", data.out_dims), **_numbered("s", data.in_strides)}
    e.calls.append(_kernel(e, op, "transpose16", {"A": "A"}, params))


def _emit_requantize_int(e: _Emitter, op: Operator) -> None:
    """QUANTIZE int16 -> int8, int8 -> int16, int16 -> int16, or int8/int16 -> int32 (te_requantize_int)."""
    inp, out = e.model.tensors[op.inputs[0]], e.model.tensors[op.outputs[0]]
    if inp.type_name not in IO_TYPES or out.type_name not in OUTPUT_TYPES or out.per_channel:
        raise _refuse(op, f"quantizes {inp.type_name.lower()} to {out.type_name.lower()}")
    multiplier, shift = quantize_multiplier(float(np.float32(inp.scale[0])) / float(np.float32(out.scale[0])))
    magnitude = HALF_RANGE[inp.type_name] + abs(zero_point(inp))
    _check_shifted(op, magnitude, shift)
    _check_shifted(op, (magnitude << max(shift, 0)) + abs(zero_point(out)), 0)   # int32: stored as computed
    lo, hi = LIMITS.get(out.type_name, (0, 0))
    params = {"src": e.at(op.inputs[0], inp.type_name), "dst": e.at(op.outputs[0], out.type_name), "n": inp.size,
              "isz": ELEMENT_BYTES[inp.type_name], "osz": ELEMENT_BYTES[out.type_name], "izp": zero_point(inp),
              **_halves("m", multiplier), "sh": shift, "ozp": zero_point(out), "lo": lo, "hi": hi}
    e.calls.append(_kernel(e, op, "requantize_int", {"A": "A"}, params))


def _emit_leaky_relu_16x8(e: _Emitter, op: Operator) -> None:
    """LEAKY_RELU int16 with the AOT's parameters (te_leaky_relu_s16's), |alpha| rescaled then negated."""
    izp, ozp, identity_m, identity_s, alpha_m, alpha_s = leaky_relu_parameters(e.model, op)
    for shift in (identity_s, alpha_s):
        _check_shifted(op, 32768 + abs(izp), shift)
    params = {"src": e.at(op.inputs[0], INT16), "dst": e.at(op.outputs[0], INT16),
              "n": e.model.tensors[op.inputs[0]].size, "izp": izp, "ozp": ozp, **_halves("im", identity_m),
              "ish": identity_s, **_halves("am", abs(alpha_m)), "ash": alpha_s, "neg": int(alpha_m < 0)}
    e.calls.append(_kernel(e, op, "leaky_relu_s16", {"A": "A"}, params))


def _emit_add_16x8(e: _Emitter, op: Operator) -> None:
    tensors = [e.model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0])]
    rescaling = add_parameters(*tensors, op.activation, INT16_ADD_LEFT_SHIFT, INT16_LIMITS)
    _emit_add(e, op, "add16" if op.opcode == "ADD" else "sub16", rescaling, INT16)


INT16_EMITTERS = {
    "ADD": _emit_add_16x8, "SUB": _emit_add_16x8, "MUL": lambda e, op: _emit_mul(e, op, INT16),
    "CONV_2D": _emit_conv_16x8, "DEPTHWISE_CONV_2D": _emit_conv_16x8, "FULLY_CONNECTED": _emit_fully_connected_16x8,
    "AVERAGE_POOL_2D": _emit_pool_16x8, "MAX_POOL_2D": _emit_pool_16x8, "PAD": _emit_pad_16x8,
    "PADV2": _emit_pad_16x8, "STRIDED_SLICE": _emit_strided_slice_16x8, "LEAKY_RELU": _emit_leaky_relu_16x8,
    "TRANSPOSE_CONV": _emit_transpose_conv_16x8, "CONCATENATION": lambda e, op: _emit_concatenation(e, op, INT16),
}


def _emit_int16(e: _Emitter, op: Operator) -> None:
    emit = INT16_EMITTERS.get(op.opcode)
    if emit is None:
        raise _refuse(op, f"has int16 activations (viper's int16 ops: {', '.join(sorted(INT16_EMITTERS))}, QUANTIZE, "
                          "RESHAPE, SQUEEZE)")
    emit(e, op)


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
    inputs = [emitter.at(i, model.tensors[i].type_name) for i in model.inputs]
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
        *(["    reset()"] if model.resets_state_each_inference else []),
        *[f"    {call}" for call in emitter.calls],
        "    return 0" if not emitter.calls else "",
    ]) + "\n"
    stats = ViperStats(arena, emitter.constant_bytes, emitter.macs, len(model.operators))
    return ViperProgram(source, stats, inputs, outputs)
