"""AOT lowerings for the nonlinear and elementwise ops: SOFTMAX, LOGISTIC, TANH, MEAN, ADD, MUL,
QUANTIZE and DEQUANTIZE, bit-exact with TFLM's reference kernels (firmware/aot/te_nonlinear.c).

Every multiplier, shift and table is computed here, at generation time, exactly as TFLM's Prepare
functions compute them: scales are float32 in the flatbuffer and widened to double, rounding is
std::round (halves away from zero). LOGISTIC and TANH become 256-entry tables, because an int8
result depends only on the input byte; the table entries run gemmlowp's fixed-point logistic and
tanh, ported below integer for integer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyedge.aot.lowering import (
    Lowered, Lowering, PointerOf, Table, c_int, op_prefix, require_types, table, uses_dsp,
)
from tinyedge.aot.quant import activation_range, quantize_multiplier, round_half_away, zero_point
from tinyedge.errors import TinyedgeError
from tinyedge.ops.cstructs import LIMITS
from tinyedge.ops.fixedpoint import (
    INT32_MAX, INT32_MIN, logistic, multiply_by_quantized_multiplier, rdbypot, tanh, wrap32,
)
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

INT8_MIN, INT8_MAX = -128, 127
MAX_DIMS = LIMITS["TE_NL_MAX_DIMS"]

SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5
LOGISTIC_TANH_INPUT_INTEGER_BITS = 4
ADD_LEFT_SHIFT = 20


# ---------------------------------------------------------------------------------------------
# TFLM's Prepare-time arithmetic (quantization_util.cc, kernel_util.cc)

def quantize_multiplier_smaller_than_one(real: float) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: TFLM refuses multipliers outside (0, 1)."""
    if not 0.0 < real < 1.0:
        raise TinyedgeError(f"a rescaling factor of {real} is outside (0, 1), which TFLM's int8 ADD cannot handle: "
                            "re-quantize the model with a representative calibration set.")
    return quantize_multiplier(real)


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1) * (1 << (total_signed_bits - input_integer_bits))
                          / (1 << input_left_shift))
    return math.floor(max_input_rescaled)


def softmax_parameters(beta: float, input_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius: (input_multiplier, input_left_shift, diff_min)."""
    real = min(beta * input_scale * (1 << (31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise TinyedgeError(f"SOFTMAX's input scale times beta ({beta * input_scale:g}) is too small for TFLM's int8 "
                            "softmax: re-quantize the model with a representative calibration set.")
    diff_min = -calculate_input_radius(SOFTMAX_SCALED_DIFF_INTEGER_BITS, left_shift)
    return multiplier, left_shift, diff_min


def frexp_multiplier(real: float) -> tuple[int, int]:
    """The frexp-based multiplier of LOGISTIC/TANH Prepare, cast to int32 as the C++ does (no renormalising)."""
    significand, shift = math.frexp(real)
    multiplier = round_half_away(significand * (1 << 31))
    return wrap32(multiplier), shift


def logistic_table(input_scale: float, input_zero_point: int) -> list[int]:
    """reference_integer_ops::Logistic (int8) for every input byte -128..127."""
    return _q4_table(input_scale, input_zero_point, lambda q4: logistic(q4, LOGISTIC_TANH_INPUT_INTEGER_BITS),
                     output_shift=31 - 8, output_offset=-128)


def tanh_table(input_scale: float, input_zero_point: int) -> list[int]:
    """reference_integer_ops::Tanh (int8) for every input byte -128..127."""
    return _q4_table(input_scale, input_zero_point, lambda q4: tanh(q4, LOGISTIC_TANH_INPUT_INTEGER_BITS),
                     output_shift=31 - 7, output_offset=0)


def _q4_table(input_scale: float, input_zero_point: int, function, output_shift: int, output_offset: int) -> list[int]:
    real = input_scale * float(1 << (31 - LOGISTIC_TANH_INPUT_INTEGER_BITS))
    multiplier, left_shift = frexp_multiplier(real)
    radius = calculate_input_radius(LOGISTIC_TANH_INPUT_INTEGER_BITS, left_shift, 31)
    table = []
    for byte in range(INT8_MIN, INT8_MAX + 1):
        value = byte - input_zero_point
        if value <= -radius:
            table.append(INT8_MIN)
        elif value >= radius:
            table.append(INT8_MAX)
        else:
            q4 = multiply_by_quantized_multiplier(value, multiplier, left_shift)
            out = rdbypot(function(q4), output_shift) + output_offset
            table.append(min(max(out, INT8_MIN), INT8_MAX))
    return table


# ---------------------------------------------------------------------------------------------
# C emission helpers

def c_float(value: float) -> str:
    """An exact C99 hexadecimal literal for a float32 value, e.g. 0x1.813d8ap-6f."""
    mantissa, exponent = float(np.float32(value)).hex().split("p")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{mantissa}p{exponent}f"


def _scale(t: Tensor) -> float:
    """The tensor's float32 scale, widened to double as static_cast<double>(params.scale) does."""
    if t.scale.size == 0:
        raise TinyedgeError(f"tensor '{t.name}' has no quantization parameters: quantize the model to full int8 first.")
    return float(np.float32(t.scale[0]))


# ---------------------------------------------------------------------------------------------
# Lowerings

def lower_softmax(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    src, dst = op.inputs[0], op.outputs[0]
    if model.tensors[dst].type_name == "INT16":
        return _lower_softmax_s16(model, op, ptr)
    require_types(model, op, {src: "INT8", dst: "INT8"})
    inp, out = model.tensors[src], model.tensors[dst]
    if zero_point(out) != -128 or np.float32(out.scale[0]) != np.float32(1.0 / 256):
        raise TinyedgeError(f"SOFTMAX (operator {op.index}) output is not quantized with scale 1/256 and zero point -128, "
                            "which TFLM's int8 softmax requires: convert the model with the standard TFLite converter.")
    if not inp.shape:
        raise TinyedgeError(f"SOFTMAX (operator {op.index}) has a scalar input: give it at least one dimension.")
    beta = float(getattr(op.options, "beta", 1.0))
    multiplier, left_shift, diff_min = softmax_parameters(beta, _scale(inp))
    depth = inp.shape[-1]
    outer = inp.size // depth if depth else 0
    call = (f"te_softmax_s8({ptr(dst)}, {ptr(src)}, {c_int(outer)}, {c_int(depth)}, "
            f"{c_int(multiplier)}, {c_int(left_shift)}, {c_int(diff_min)});")
    return Lowered(call=call, inplace_ok=True)


def _lower_softmax_s16(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """SOFTMAX int8 -> int16, which TFLM allows with output scale 1/65536 and zero point -32768."""
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT16"})
    inp, out = model.tensors[src], model.tensors[dst]
    if zero_point(out) != -32768 or abs(_scale(out) - 1.0 / 65536) > 0.001 / 65536:
        raise TinyedgeError(f"SOFTMAX (operator {op.index}) has an int16 output not quantized with scale 1/65536 and "
                            "zero point -32768, which TFLM's int8 softmax requires: convert the model with the "
                            "standard TFLite converter.")
    if not inp.shape:
        raise TinyedgeError(f"SOFTMAX (operator {op.index}) has a scalar input: give it at least one dimension.")
    multiplier, left_shift, diff_min = softmax_parameters(float(getattr(op.options, "beta", 1.0)), _scale(inp))
    depth = inp.shape[-1]
    outer = inp.size // depth if depth else 0
    call = (f"te_softmax_s8_s16({ptr(dst)}, {ptr(src)}, {c_int(outer)}, {c_int(depth)}, "
            f"{c_int(multiplier)}, {c_int(left_shift)}, {c_int(diff_min)});")
    return Lowered(call=call)


def _lower_table(model: TfliteModel, op: Operator, ptr: PointerOf, lut: list[int]) -> Lowered:
    src, dst = op.inputs[0], op.outputs[0]
    name = f"{op_prefix(op)}lut"
    call = f"te_lut_s8({ptr(dst)}, {ptr(src)}, {c_int(model.tensors[src].size)}, {name});"
    return Lowered([table("int8_t", name, lut)], call, inplace_ok=True)


def lower_logistic(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT8"})
    if zero_point(model.tensors[dst]) != -128:
        raise TinyedgeError(f"LOGISTIC (operator {op.index}) output zero point is not -128, which TFLM's int8 logistic "
                            "requires: convert the model with the standard TFLite converter.")
    inp = model.tensors[src]
    return _lower_table(model, op, ptr, logistic_table(_scale(inp), zero_point(inp)))


def lower_tanh(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT8"})
    inp = model.tensors[src]
    return _lower_table(model, op, ptr, tanh_table(_scale(inp), zero_point(inp)))


@dataclass(frozen=True)
class MeanGeometry:
    kept_sizes: list[int]
    kept_strides: list[int]
    reduced_sizes: list[int]
    reduced_strides: list[int]
    count: int  # elements averaged into each output

    def as_array(self) -> list[int]:
        return [len(self.kept_sizes), len(self.reduced_sizes), *self.kept_sizes, *self.kept_strides,
                *self.reduced_sizes, *self.reduced_strides]


def mean_geometry(shape: tuple[int, ...], axes: list[int]) -> MeanGeometry:
    """Resolve the axes as TFLM's ResolveAxis does, then merge neighbouring dims of the same kind."""
    rank = len(shape)
    resolved: list[int] = []
    for axis in axes:
        current = axis + rank if axis < 0 else axis
        if not 0 <= current < rank:
            raise TinyedgeError(f"MEAN axis {axis} is out of range for a {rank}-D input: fix the model's reduction axes.")
        if current not in resolved:
            resolved.append(current)
    count = math.prod(shape[a] for a in resolved)
    strides = [math.prod(shape[d + 1:]) for d in range(rank)]
    groups: list[list[int]] = []  # [size, stride, reduced]
    for d in range(rank):
        if shape[d] == 1:
            continue
        reduced = int(d in resolved)
        if groups and groups[-1][2] == reduced and groups[-1][1] == strides[d] * shape[d]:
            groups[-1][0] *= shape[d]
            groups[-1][1] = strides[d]
        else:
            groups.append([shape[d], strides[d], reduced])
    kept = [g for g in groups if not g[2]]
    red = [g for g in groups if g[2]]
    if len(kept) > MAX_DIMS or len(red) > MAX_DIMS:
        raise TinyedgeError(f"MEAN over a {rank}-D input with axes {axes} has too many separate dimensions for the AOT "
                            "runtime: reshape the input to fewer dimensions first.")
    return MeanGeometry([g[0] for g in kept], [g[1] for g in kept], [g[0] for g in red], [g[1] for g in red], count)


def mean_multiplier(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """PrepareMeanOrSumHelper's QuantizeMultiplier, then QuantizedMeanOrSum's folding of 1/count."""
    multiplier, shift = quantize_multiplier(input_scale / output_scale)
    if count > 0:
        fold = min(count.bit_length() - 1, 32, 31 + shift)
        multiplier = wrap32((multiplier << fold) // count)
        shift -= fold
    return multiplier, shift


def lower_mean(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    src, axis_index, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "INT8"})
    inp, out, axis_t = model.tensors[src], model.tensors[dst], model.tensors[axis_index]
    if axis_t.data is None:
        raise TinyedgeError(f"MEAN (operator {op.index}) takes its axes at run time, which the AOT runtime cannot "
                            "compile: make the reduction axes a constant.")
    geometry = mean_geometry(inp.shape, [int(a) for a in np.asarray(axis_t.data).reshape(-1)])
    if math.prod(geometry.kept_sizes) != out.size:
        raise TinyedgeError(f"MEAN (operator {op.index}) output has {out.size} elements but its axes leave "
                            f"{math.prod(geometry.kept_sizes)}: the model is inconsistent, convert it again.")
    multiplier, shift = mean_multiplier(_scale(inp), _scale(out), geometry.count)
    name = f"{op_prefix(op)}geom"
    call = (f"te_mean_s8({ptr(dst)}, {ptr(src)}, {name}, {c_int(zero_point(inp))}, {c_int(geometry.count)}, "
            f"{c_int(multiplier)}, {c_int(shift)}, {c_int(zero_point(out))});")
    return Lowered([table("int32_t", name, geometry.as_array())], call)


def broadcast_geometry(a_shape: tuple[int, ...], b_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[int]:
    """{ndim, sizes, a_strides, b_strides} for te_add_s8/te_mul_s8, with unit dims dropped and
    neighbouring dims merged wherever both operands stay contiguous across them."""
    rank = max(len(a_shape), len(b_shape), len(out_shape))
    sizes = [1] * (rank - len(out_shape)) + list(out_shape)
    operands = []
    for shape in (a_shape, b_shape):
        padded = [1] * (rank - len(shape)) + list(shape)
        strides = []
        for d in range(rank):
            if padded[d] not in (1, sizes[d]):
                raise TinyedgeError(f"shapes {a_shape} and {b_shape} do not broadcast to {out_shape}: "
                                    "fix the model's elementwise operands.")
            strides.append(0 if padded[d] == 1 else math.prod(padded[d + 1:]))
        operands.append(strides)
    dims: list[list[int]] = []  # [size, a_stride, b_stride]
    for d in range(rank):
        if sizes[d] == 1:
            continue
        a_stride, b_stride = operands[0][d], operands[1][d]
        if dims and dims[-1][1] == a_stride * sizes[d] and dims[-1][2] == b_stride * sizes[d]:
            dims[-1] = [dims[-1][0] * sizes[d], a_stride, b_stride]
        else:
            dims.append([sizes[d], a_stride, b_stride])
    if not dims:
        dims = [[1, 0, 0]]
    if len(dims) > MAX_DIMS:
        raise TinyedgeError(f"broadcasting {a_shape} with {b_shape} needs more than {MAX_DIMS} dimensions in the AOT "
                            "runtime: reshape the operands to fewer dimensions first.")
    return [len(dims), *[d[0] for d in dims], *[d[1] for d in dims], *[d[2] for d in dims]]


def add_parameters(a: Tensor, b: Tensor, out: Tensor, activation: str, left_shift: int = ADD_LEFT_SHIFT,
                   limits: tuple[int, int] = (INT8_MIN, INT8_MAX)) -> list[int]:
    """CalculateOpDataAdd for int8 (int16: left shift 15, the int16 limits): the order te_add_s8 reads them in."""
    a_scale, b_scale, out_scale = _scale(a), _scale(b), _scale(out)
    twice_max_input_scale = 2 * max(a_scale, b_scale)
    a_multiplier, a_shift = quantize_multiplier_smaller_than_one(a_scale / twice_max_input_scale)
    b_multiplier, b_shift = quantize_multiplier_smaller_than_one(b_scale / twice_max_input_scale)
    out_multiplier, out_shift = quantize_multiplier_smaller_than_one(
        twice_max_input_scale / ((1 << left_shift) * out_scale))
    act_min, act_max = activation_range(activation, out, limits)
    return [-zero_point(a), a_multiplier, a_shift, -zero_point(b), b_multiplier, b_shift, left_shift,
            out_multiplier, out_shift, zero_point(out), act_min, act_max]


def mul_parameters(a: Tensor, b: Tensor, out: Tensor, activation: str,
                   limits: tuple[int, int] = (INT8_MIN, INT8_MAX)) -> list[int]:
    """CalculateOpDataMul for int8 (or int16, with its limits): the order te_mul_s8 reads them in."""
    multiplier, shift = quantize_multiplier(_scale(a) * _scale(b) / _scale(out))
    act_min, act_max = activation_range(activation, out, limits)
    return [-zero_point(a), -zero_point(b), multiplier, shift, zero_point(out), act_min, act_max]


def _lower_binary(model: TfliteModel, op: Operator, ptr: PointerOf, kernel: str, params_type: str,
                  params: list[int]) -> Lowered:
    a, b, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    shapes = [model.tensors[i].shape for i in (a, b, dst)]
    geometry = broadcast_geometry(*shapes)
    prefix = op_prefix(op)
    tables = [table("int32_t", f"{prefix}geom", geometry),
              Table(params_type, f"{prefix}params", tuple(params), struct=True)]
    flags = [flag for index, flag in ((a, "TE_NL_A_CONST"), (b, "TE_NL_B_CONST")) if model.tensors[index].is_constant]
    const_mask = " | ".join(flags) if flags else "0u"
    call = f"{kernel}({ptr(dst)}, {ptr(a)}, {ptr(b)}, {prefix}geom, &{prefix}params, {const_mask});"
    a_t = model.tensors[a]
    inplace = not a_t.is_constant and a_t.size == model.tensors[dst].size
    return Lowered(tables, call, inplace_ok=inplace)


def lower_add(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    a, b, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    require_types(model, op, {a: "INT8", b: "INT8", dst: "INT8"})
    params = add_parameters(model.tensors[a], model.tensors[b], model.tensors[dst], op.activation)
    lowered = _lower_binary(model, op, ptr, "te_add_s8", "te_add_params_t", params)
    tensors = [model.tensors[i] for i in (a, b, dst)]
    if (uses_dsp(ptr) and len({t.shape for t in tensors}) == 1 and not any(t.is_constant for t in tensors)
            and (255 << (params[6] + 1)) < (1 << 31)):
        # te_dsp.c's short form (the Arm DSP extension's targets): same shapes, no broadcast.
        prefix = op_prefix(op)
        lowered.tables = [Table("te_add_params_t", f"{prefix}params", tuple(params), struct=True)]
        lowered.call = (f"te_dsp_add_s8({ptr(dst)}, {ptr(a)}, {ptr(b)}, {c_int(tensors[2].size)}, "
                        f"&{prefix}params);")
    return lowered


def lower_mul(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    a, b, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    require_types(model, op, {a: "INT8", b: "INT8", dst: "INT8"})
    params = mul_parameters(model.tensors[a], model.tensors[b], model.tensors[dst], op.activation)
    return _lower_binary(model, op, ptr, "te_mul_s8", "te_mul_params_t", params)


def lower_quantize(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    src, dst = op.inputs[0], op.outputs[0]
    inp, out = model.tensors[src], model.tensors[dst]
    if (inp.type_name, out.type_name) in _INTEGER_REQUANTIZE:
        return _lower_requantize_int(model, op, ptr)
    require_types(model, op, {dst: "INT8"})
    if out.per_channel:
        raise TinyedgeError(f"QUANTIZE (operator {op.index}) has a per-channel output, which TFLM does not support: "
                            "quantize the model per tensor.")
    count = c_int(inp.size)
    if inp.type_name == "FLOAT32":
        call = (f"te_quantize_f32_s8({ptr(dst)}, {ptr(src)}, {count}, {c_float(_scale(out))}, "
                f"{c_int(zero_point(out))});")
        return Lowered(call=call, inplace_ok=True)
    require_types(model, op, {src: "INT8"})
    multiplier, shift = quantize_multiplier(_scale(inp) / _scale(out))
    call = (f"te_requantize_s8({ptr(dst)}, {ptr(src)}, {count}, {c_int(zero_point(inp))}, {c_int(multiplier)}, "
            f"{c_int(shift)}, {c_int(zero_point(out))});")
    return Lowered(call=call, inplace_ok=True)


_INTEGER_BYTES = {"INT8": 1, "INT16": 2, "INT32": 4}
# The integer pairs TFLM's QUANTIZE requantizes, besides int8 -> int8.
_INTEGER_REQUANTIZE = {("INT16", "INT8"), ("INT8", "INT16"), ("INT8", "INT32"), ("INT16", "INT16"),
                       ("INT16", "INT32"), ("INT32", "INT8"), ("INT32", "INT16")}


def _lower_requantize_int(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """QUANTIZE between integer types (int16 -> int8 at a model's input, int16 -> int32 at its output...)."""
    src, dst = op.inputs[0], op.outputs[0]
    inp, out = model.tensors[src], model.tensors[dst]
    if out.per_channel:
        raise TinyedgeError(f"QUANTIZE (operator {op.index}) has a per-channel output, which TFLM does not support: "
                            "quantize the model per tensor.")
    multiplier, shift = quantize_multiplier(_scale(inp) / _scale(out))
    call = (f"te_requantize_int({ptr(dst)}, {_INTEGER_BYTES[out.type_name]}, {ptr(src)}, {_INTEGER_BYTES[inp.type_name]}, "
            f"{c_int(inp.size)}, {c_int(zero_point(inp))}, {c_int(multiplier)}, {c_int(shift)}, "
            f"{c_int(zero_point(out))});")
    return Lowered(call=call)


def lower_dequantize(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    src, dst = op.inputs[0], op.outputs[0]
    require_types(model, op, {src: "INT8", dst: "FLOAT32"})
    inp = model.tensors[src]
    call = (f"te_dequantize_s8_f32({ptr(dst)}, {ptr(src)}, {c_int(inp.size)}, {c_float(_scale(inp))}, "
            f"{c_int(zero_point(inp))});")
    return Lowered(call=call)


LOWERINGS: dict[str, Lowering] = {
    "SOFTMAX": lower_softmax,
    "LOGISTIC": lower_logistic,
    "TANH": lower_tanh,
    "MEAN": lower_mean,
    "ADD": lower_add,
    "MUL": lower_mul,
    "QUANTIZE": lower_quantize,
    "DEQUANTIZE": lower_dequantize,
}
