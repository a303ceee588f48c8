"""AOT lowerings of the int16 variants: TFLite's 16x8 ops (int16 activations, int8 weights) and the int16
elementwise and layout ops, bit-exact with TFLM's reference kernels (firmware/aot/te_int16.c).

An op whose activation input is int16 lowers here instead of to its int8 lowering (`dispatch`); the op
registry lists these variants ("int16", "16x8") beside the int8 ones. TFLM requires int16 activations to
be symmetric (zero point 0); its 16x8 convolutions accumulate in int64 (int32 where the bias is int32) and
requantize with the int64 MultiplyByQuantizedMultiplier. Multipliers and geometry are prepared once here
(and by the op modules, whose geometry is the same for every type).
"""

from __future__ import annotations

import numpy as np

from tinyedge.aot import opdata
from tinyedge.aot.lowering import (
    Lowered, Lowering, PointerOf, Table, c_float, c_int, op_prefix, requant_tables, require, table,
)
from tinyedge.aot.quant import (
    activation_range, per_channel_multipliers, quantize_multiplier, round_half_away, zero_point,
)
from tinyedge.ops import pad, squared_difference, strided_slice, transpose, transpose_conv
from tinyedge.ops import slice as slice_op
from tinyedge.ops.add import add_parameters
from tinyedge.ops.broadcast import broadcast_geometry
from tinyedge.ops.conv import fc_multipliers, window
from tinyedge.ops.mul import mul_parameters
from tinyedge.ops.opdata import GatherData
from tinyedge.tflite_model import PADDINGS, Operator, Tensor, TfliteModel

INT16_LIMITS = (-32768, 32767)
INT16_ADD_LEFT_SHIFT = 15   # add_common.cc / sub_common.cc: 15 for int16 outputs (20 for int8)
TENSOR_TYPE_INT32 = 2       # TensorType.INT32: a 16x8 op's quantized_bias_type when its bias would be int32


def _require_int16(model: TfliteModel, op: Operator, indices: list[int]) -> list[Tensor]:
    """The tensors, each int16 and symmetric (TFLM's 16x8 kernels assume zero point 0)."""
    tensors = [model.tensors[i] for i in indices]
    require(all(t.type_name == "INT16" for t in tensors), op, "mixes int16 with other activation types")
    require(all(zero_point(t) == 0 for t in tensors), op, "has an int16 tensor with a non-zero zero point")
    return tensors


def _binary(model: TfliteModel, op: Operator, ptr: PointerOf, kernel: str, params_type: str, params: list[int],
            extra: str = "") -> Lowered:
    a, b, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    prefix = op_prefix(op)
    tables = [table("int32_t", f"{prefix}geom", broadcast_geometry(*(model.tensors[i].shape for i in (a, b, dst)))),
              Table(params_type, f"{prefix}params", tuple(params), struct=True)]
    flags = [flag for index, flag in ((a, "TE_S16_A_CONST"), (b, "TE_S16_B_CONST")) if model.tensors[index].is_constant]
    args = [ptr(dst), ptr(a), ptr(b), f"{prefix}geom", f"&{prefix}params", " | ".join(flags) if flags else "0u"]
    a_t = model.tensors[a]
    inplace = not a_t.is_constant and a_t.size == model.tensors[dst].size
    return Lowered(tables, f"{kernel}({', '.join(args + ([extra] if extra else []))});", inplace_ok=inplace)


def _add_or_sub(sign: int) -> Lowering:
    """ADD and SUB int16: CalculateOpDataAdd/Sub with left shift 15, then AddElementwise / SubElementwise."""
    def lower(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
        tensors = [model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0])]
        require(all(t.type_name == "INT16" for t in tensors), op, "mixes int16 with other types")
        params = add_parameters(*tensors, op.activation, INT16_ADD_LEFT_SHIFT, INT16_LIMITS)
        return _binary(model, op, ptr, "te_add_s16", "te_add_params_t", params, str(sign))
    return lower


def lower_squared_difference(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """SQUARED_DIFFERENCE int16: PrepareQuantized with left shift 0 (ops/squared_difference.py)."""
    _require_int16(model, op, [op.inputs[0], op.inputs[1], op.outputs[0]])
    params = squared_difference.parameters(model, op, left_shift=0, limits=INT16_LIMITS)
    return _binary(model, op, ptr, "te_squared_difference_s16", "te_add_params_t", list(params))


def lower_mul(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """MUL int16 -> int16 (MulElementwise; TFLM requires every zero point 0)."""
    tensors = _require_int16(model, op, [op.inputs[0], op.inputs[1], op.outputs[0]])
    return _binary(model, op, ptr, "te_mul_s16", "te_mul_params_t", mul_parameters(*tensors, op.activation, INT16_LIMITS))


def lower_leaky_relu(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """QuantizeLeakyRelu<int16_t>: the identity and alpha rescalings, computed in double from the float32
    scales and alpha (as tflite-micro's interpreter does; TFLM's seanet goldens for 4 of its 20 LEAKY_RELU
    models come from float products instead and differ by one LSB on a few elements)."""
    src, dst = op.inputs[0], op.outputs[0]
    name = f"{op_prefix(op)}params"
    call = f"te_leaky_relu_s16({ptr(dst)}, {ptr(src)}, {c_int(model.tensors[src].size)}, {name});"
    return Lowered([table("int32_t", name, leaky_relu_parameters(model, op))], call, inplace_ok=True)


def leaky_relu_parameters(model: TfliteModel, op: Operator) -> tuple[int, ...]:
    """LEAKY_RELU int16's (input zero point, output zero point, identity multiplier and shift, alpha
    multiplier and shift), in te_leaky_relu_s16's order (the viper runtime's kernel takes them too)."""
    inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    require(out.type_name == "INT16", op, "mixes int16 with other types")
    in_scale, out_scale = float(np.float32(inp.scale[0])), float(np.float32(out.scale[0]))
    alpha = float(np.float32(getattr(op.options, "alpha", 0.2)))
    alpha_m, alpha_s = quantize_multiplier(in_scale * alpha / out_scale)
    identity_m, identity_s = quantize_multiplier(in_scale / out_scale)
    return zero_point(inp), zero_point(out), identity_m, identity_s, alpha_m, alpha_s


def lower_relu(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """RELU int16 (CalculateReluOpData<int16_t>: the multiplier from the scales' quotient taken in double, as
    tflite-micro's interpreter computes it (a float32 quotient rounds ties the other way), output clamped at 0) and RELU6 int16 (Relu6Prepare: the raw input clamped to [0, 6.0 quantized])."""
    inp, out = _require_int16(model, op, [op.inputs[0], op.outputs[0]])
    in_scale = np.float32(inp.scale[0])
    if op.opcode == "RELU6":
        multiplier, shift = 0, 0
        act_max = min(max(round_half_away(float(np.float32(6.0) / in_scale)), INT16_LIMITS[0]), INT16_LIMITS[1])
    else:
        multiplier, shift = quantize_multiplier(float(in_scale) / float(np.float32(out.scale[0])))
        act_max = INT16_LIMITS[1]
    call = (f"te_relu_s16({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {c_int(inp.size)}, {c_int(multiplier)}, {shift}, "
            f"0, {act_max});")
    return Lowered(call=call, inplace_ok=True)


def lower_pad(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """PAD/PADV2 of int16 data: the int8 op module's geometry and rendering, the 2-byte kernel."""
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    require(out_t.type_name == "INT16", op, "mixes int16 with other types")
    lowered = opdata.render(pad.geometry(model, op, in_t, out_t), model, op, ptr)
    lowered.call = lowered.call.replace("te_pad(", "te_pad_s16(", 1)
    return lowered


def _gather_op(prepare) -> Lowering:
    """STRIDED_SLICE, SLICE and TRANSPOSE of int16 data: the op module's gather, 2-byte elements."""
    def lower(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
        require(model.tensors[op.outputs[0]].type_name == "INT16", op, "mixes int16 with other types")
        return _gather(prepare(model, op), model, op, ptr)
    return lower


def _gather(data: GatherData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    require(not model.tensors[op.inputs[0]].is_constant, op, "reads constant data")
    prefix = op_prefix(op)
    tables = [table("te_dim", f"{prefix}out_dims", data.out_dims), table("int32_t", f"{prefix}in_strides", data.in_strides)]
    source = f"({ptr(op.inputs[0])} + {data.in_offset})" if data.in_offset else ptr(op.inputs[0])
    return Lowered(tables, f"te_transpose_s16({ptr(op.outputs[0])}, {source}, {prefix}out_dims, {prefix}in_strides);")


def _weights_16x8(model: TfliteModel, op: Operator) -> tuple[Tensor, Tensor, Tensor]:
    """(input, filter, output) of a 16x8 op: int16 activations with zero point 0, constant int8 weights."""
    in_t, out_t = _require_int16(model, op, [op.inputs[0], op.outputs[0]])
    filter_t = model.tensors[op.inputs[1]]
    require(filter_t.type_name == "INT8" and filter_t.data is not None, op, "has weights that are not constant int8")
    return in_t, filter_t, out_t


def _bias_64(model: TfliteModel, op: Operator, ptr: PointerOf, position: int = 2) -> str:
    """The op's int64 bias (int16 converted to int64, as TFLM's TRANSPOSE_CONV does), or 0 without one."""
    if len(op.inputs) <= position or op.inputs[position] < 0:
        return "0"
    bias_t = model.tensors[op.inputs[position]]
    require(bias_t.type_name in ("INT64", "INT16") and bias_t.data is not None, op,
            "has a 16x8 bias that is not a constant int64")
    if bias_t.type_name == "INT64":
        return ptr(op.inputs[position])
    return f"{op_prefix(op)}bias64"


def _int16_bias_table(model: TfliteModel, op: Operator, position: int) -> list[Table]:
    if len(op.inputs) <= position or op.inputs[position] < 0 or model.tensors[op.inputs[position]].type_name != "INT16":
        return []
    return [table("int64_t", f"{op_prefix(op)}bias64", np.asarray(model.tensors[op.inputs[position]].data))]


def _requant(op: Operator, multipliers: list[tuple[int, int]], out_t: Tensor) -> tuple[list[Table], str]:
    """te_requant_t (offsets 0) and the int16 activation range as the call's last two arguments."""
    act_min, act_max = activation_range(op.activation, out_t, INT16_LIMITS)
    return requant_tables(op_prefix(op), multipliers, 0, 0, (-128, 127)), f"{act_min}, {act_max}"


def lower_conv2d(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """CONV_2D 16x8 (grouped too): ConvPerChannel for int16 input, the int64 path unless the bias is int32."""
    in_t, filter_t, out_t = _weights_16x8(model, op)
    require(len(in_t.shape) == 4 and in_t.shape[0] == 1, op, "has a batch other than 1")
    o, prefix = op.options, op_prefix(op)
    require(PADDINGS.get(o.padding) in ("SAME", "VALID"), op, "has padding other than SAME/VALID")
    groups = in_t.shape[3] // filter_t.shape[3]
    require(in_t.shape[3] % filter_t.shape[3] == 0 and out_t.shape[3] % groups == 0, op,
            "has channels that do not divide into its groups")
    geometry = window(in_t, out_t, filter_t.shape[1], filter_t.shape[2], o, int(o.dilationHFactor), int(o.dilationWFactor))
    tables, activation = _requant(op, per_channel_multipliers(in_t, filter_t, out_t, out_t.shape[3]), out_t)
    tables.append(Table("te_window_t", f"{prefix}win", geometry.values(), struct=True))
    has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
    int32_bias = (model.tensors[op.inputs[2]].type_name == "INT32" if has_bias
                  else int(getattr(o, "quantizedBiasType", 0) or 0) == TENSOR_TYPE_INT32)
    if int32_bias:
        require(has_bias, op, "has no bias but an int32 accumulator")
        biases = f"0, {ptr(op.inputs[2])}"
    else:
        biases = f"{_bias_64(model, op, ptr)}, 0"
    call = (f"te_conv2d_s16({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {ptr(op.inputs[1])}, {biases}, &{prefix}win, "
            f"{groups}, &{prefix}q, {activation});")
    return Lowered(tables, call)


def lower_depthwise_conv2d(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """DEPTHWISE_CONV_2D 16x8: DepthwiseConvPerChannel for int16 input (int64 accumulator and bias)."""
    in_t, filter_t, out_t = _weights_16x8(model, op)
    require(len(in_t.shape) == 4 and in_t.shape[0] == 1, op, "has a batch other than 1")
    o, prefix = op.options, op_prefix(op)
    require(PADDINGS.get(o.padding) in ("SAME", "VALID"), op, "has padding other than SAME/VALID")
    geometry = window(in_t, out_t, filter_t.shape[1], filter_t.shape[2], o, int(o.dilationHFactor), int(o.dilationWFactor))
    tables, activation = _requant(op, per_channel_multipliers(in_t, filter_t, out_t, out_t.shape[3]), out_t)
    tables.append(Table("te_window_t", f"{prefix}win", geometry.values(), struct=True))
    call = (f"te_depthwise_conv2d_s16({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {ptr(op.inputs[1])}, "
            f"{_bias_64(model, op, ptr)}, &{prefix}win, &{prefix}q, {activation});")
    return Lowered(tables, call)


def lower_fully_connected(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """FULLY_CONNECTED 16x8: int64 accumulator and bias."""
    in_t, filter_t, out_t = _weights_16x8(model, op)
    require(len(filter_t.shape) == 2, op, "has no 2-D weights")
    out_depth, accum_depth = filter_t.shape
    tables, activation = _requant(op, fc_multipliers(in_t, filter_t, out_t), out_t)
    call = (f"te_fully_connected_s16({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {ptr(op.inputs[1])}, "
            f"{_bias_64(model, op, ptr)}, {in_t.size // accum_depth}, {accum_depth}, {out_depth}, "
            f"&{op_prefix(op)}q, {activation});")
    return Lowered(tables, call)


def lower_transpose_conv(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """TRANSPOSE_CONV 16x8: the int8 op module's geometry and multipliers, int64 accumulators in the scratch."""
    _require_int16(model, op, [op.inputs[transpose_conv.INPUT], op.outputs[0]])
    data = transpose_conv.prepare_geometry(model, op)
    out_t = model.tensors[op.outputs[0]]
    prefix = op_prefix(op)
    tables, activation = _requant(op, list(data.multipliers), out_t)
    tables += [Table("te_window_t", f"{prefix}win", data.window, struct=True),
               *_int16_bias_table(model, op, transpose_conv.BIAS)]
    call = (f"te_transpose_conv_s16({ptr(op.outputs[0])}, {ptr(op.inputs[transpose_conv.INPUT])}, "
            f"{ptr(op.inputs[transpose_conv.WEIGHTS])}, {_bias_64(model, op, ptr, transpose_conv.BIAS)}, "
            f"&{prefix}win, &{prefix}q, {activation}, (int64_t *)te_scratch);")
    return Lowered(tables, call, scratch_bytes=8 * out_t.size)


def _pool(kernel: str) -> Lowering:
    def lower(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
        in_t, out_t = _require_int16(model, op, [op.inputs[0], op.outputs[0]])
        o, prefix = op.options, op_prefix(op)
        require(PADDINGS.get(o.padding) in ("SAME", "VALID"), op, "has padding other than SAME/VALID")
        geometry = window(in_t, out_t, int(o.filterHeight), int(o.filterWidth), o)
        act_min, act_max = activation_range(op.activation, out_t, INT16_LIMITS)
        return Lowered([Table("te_window_t", f"{prefix}win", geometry.values(), struct=True)],
                       f"{kernel}({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, &{prefix}win, {act_min}, {act_max});")
    return lower


def lower_quantize(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """QUANTIZE float32 -> int16 (a 16x8 model that kept float I/O)."""
    src, dst = op.inputs[0], op.outputs[0]
    out = model.tensors[dst]
    require(not out.per_channel, op, "has a per-channel output")
    call = (f"te_quantize_f32_s16({ptr(dst)}, {ptr(src)}, {c_int(out.size)}, {c_float(float(np.float32(out.scale[0])))}, "
            f"{c_int(zero_point(out))});")
    return Lowered(call=call)


def lower_dequantize(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """DEQUANTIZE int16 -> float32."""
    src, dst = op.inputs[0], op.outputs[0]
    inp = model.tensors[src]
    require(model.tensors[dst].type_name == "FLOAT32", op, "has an output that is not float32")
    call = (f"te_dequantize_s16_f32({ptr(dst)}, {ptr(src)}, {c_int(inp.size)}, {c_float(float(np.float32(inp.scale[0])))}, "
            f"{c_int(zero_point(inp))});")
    return Lowered(call=call)


# op -> its int16 lowering, taken when the op's activation input is int16 (QUANTIZE: float32 -> int16).
LOWERINGS: dict[str, Lowering] = {
    "ADD": _add_or_sub(1),
    "SUB": _add_or_sub(-1),
    "MUL": lower_mul,
    "SQUARED_DIFFERENCE": lower_squared_difference,
    "LEAKY_RELU": lower_leaky_relu,
    "RELU": lower_relu,
    "RELU6": lower_relu,
    "PAD": lower_pad,
    "PADV2": lower_pad,
    "STRIDED_SLICE": _gather_op(strided_slice.prepare),
    "SLICE": _gather_op(slice_op.prepare),
    "TRANSPOSE": _gather_op(transpose.prepare),
    "CONV_2D": lower_conv2d,
    "DEPTHWISE_CONV_2D": lower_depthwise_conv2d,
    "FULLY_CONNECTED": lower_fully_connected,
    "TRANSPOSE_CONV": lower_transpose_conv,
    "AVERAGE_POOL_2D": _pool("te_average_pool_s16"),
    "MAX_POOL_2D": _pool("te_max_pool_s16"),
    "QUANTIZE": lower_quantize,
    "DEQUANTIZE": lower_dequantize,
}

# The variant each op gains here, as the op registry lists it.
VARIANTS: dict[str, str] = {
    **{name: "int16" for name in ("ADD", "SUB", "MUL", "LEAKY_RELU", "PAD", "PADV2", "STRIDED_SLICE",
                                  "SLICE", "TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR", "MAXIMUM", "MINIMUM",
                                  "RELU", "RELU6", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SQUARED_DIFFERENCE")},
    **{name: "16x8 (int16 activations, int8 weights)" for name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                                                                   "TRANSPOSE_CONV")},
    "QUANTIZE": "float32->int16",
    "DEQUANTIZE": "int16->float32",
}


def activation_input(op: Operator) -> int:
    """The op's activation input (TRANSPOSE_CONV's is its third)."""
    return op.inputs[transpose_conv.INPUT] if op.opcode == "TRANSPOSE_CONV" else op.inputs[0]


def is_int16_variant(model: TfliteModel, op: Operator) -> bool:
    """The op runs its int16 variant: its activation input is int16 (QUANTIZE: float32 in, int16 out;
    QUANTIZE from int16 requantizes in tinyedge.ops.quantize)."""
    in_type, out_type = model.tensors[activation_input(op)].type_name, model.tensors[op.outputs[0]].type_name
    if op.opcode == "QUANTIZE":
        return (in_type, out_type) == ("FLOAT32", "INT16")
    return in_type == "INT16"


def dispatch(name: str, int8: Lowering) -> Lowering:
    """The op's lowering: its int16 one when it runs its int16 variant, else `int8`."""
    int16 = LOWERINGS.get(name)
    if int16 is None:
        return int8

    def lower(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
        if is_int16_variant(model, op):
            return int16(model, op, ptr)
        return int8(model, op, ptr)
    return lower
