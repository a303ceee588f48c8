"""The AOT C rendering of the OpData an op module prepares (tinyedge.ops.opdata): the tables and the call."""

from __future__ import annotations

from typing import Callable

from tinyedge.aot.convolutions import render_conv, render_fully_connected
from tinyedge.aot.lowering import (
    Lowered, Lowering, PointerOf, StateArray, Table, c_float, c_int, op_prefix, requant_tables, require, table, uses_dsp,
    viewed,
)
from tinyedge.ops.opdata import (
    AliasData, ArgData, BatchMatMulData, BlockCopyData, BroadcastData, CallData, ConcatData, ConvData, FloatQuantizeData,
    FullyConnectedData, GatherData,
    LstmData, LutData, MeanData, OpData, PadData, PoolData, ReduceData, RequantizeData, ResizeBilinearData,
    RowGatherData, RowNormData, SigmoidTableData, Softmax16Data, SoftmaxData, SvdfData, TransposeConvData,
)
from tinyedge.tflite_model import Operator, TfliteModel

Prepare = Callable[[TfliteModel, Operator], OpData]


def lowering(prepare: Prepare) -> Lowering:
    """The AOT lowering of an op module: its prepare step, rendered."""
    def lower(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
        return render(prepare(model, op), model, op, ptr)
    return lower


def render(data: OpData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    return RENDERINGS[type(data)](data, model, op, ptr)


def _lut(data: LutData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    src, dst, name = op.inputs[0], op.outputs[0], f"{op_prefix(op)}lut"
    call = f"te_lut_s8({ptr(dst)}, {ptr(src)}, {c_int(model.tensors[src].size)}, {name});"
    return Lowered([table("int8_t", name, data.table)], call, inplace_ok=True)


def _broadcast(data: BroadcastData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """te_<kernel>(out, a, b, geom[, &params], const_mask[, flag]) of te_nonlinear.h."""
    a, b, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    prefix = op_prefix(op)
    tables = [table("int32_t", f"{prefix}geom", data.geometry)]
    args = [ptr(dst), ptr(a), ptr(b), f"{prefix}geom"]
    if data.params_type:
        tables.append(Table(data.params_type, f"{prefix}params", data.params, struct=True))
        args.append(f"&{prefix}params")
    flags = [flag for index, flag in ((a, "TE_NL_A_CONST"), (b, "TE_NL_B_CONST")) if model.tensors[index].is_constant]
    args.append(" | ".join(flags) if flags else "0u")
    if not data.params_type:
        args.append(str(data.flag))
    a_t = model.tensors[a]
    inplace = not a_t.is_constant and a_t.size == model.tensors[dst].size
    if data.dsp_kernel and uses_dsp(ptr):
        # te_dsp.c's short form (the Arm DSP extension's targets): same shapes, no broadcast.
        call = f"te_{data.dsp_kernel}({ptr(dst)}, {ptr(a)}, {ptr(b)}, {c_int(model.tensors[dst].size)}, &{prefix}params);"
        return Lowered(tables[1:], call, inplace_ok=inplace)
    return Lowered(tables, f"te_{data.kernel}({', '.join(args)});", inplace_ok=inplace)


def _row_norm(data: RowNormData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    call = (f"te_{data.kernel}({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {data.outer}, {data.depth}, "
            f"{data.input_zero_point});")
    return Lowered([], call, inplace_ok=True)


def _pad(data: PadData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    prefix = op_prefix(op)
    tables = [table("te_dim", f"{prefix}in_dims", data.in_dims), table("te_dim", f"{prefix}out_dims", data.out_dims),
              table("te_dim", f"{prefix}before", data.before)]
    call = (f"te_pad({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {prefix}in_dims, {prefix}out_dims, "
            f"{prefix}before, {data.value});")
    return Lowered(tables, call)


def _row_gather(data: RowGatherData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """te_gather_rows: output row i is input row rows[i], row_bytes each."""
    require(not model.tensors[op.inputs[0]].is_constant, op, "reads constant data")
    name = f"{op_prefix(op)}rows"
    call = (f"te_gather_rows((uint8_t *){ptr(op.outputs[0])}, (const uint8_t *){ptr(op.inputs[0])}, {name}, "
            f"{len(data.rows)}, {data.row_bytes});")
    return Lowered([table("int32_t", name, data.rows)], call)


def _transpose_conv(data: TransposeConvData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """te_transpose_conv over an int32 accumulator per output element in the scratch buffer."""
    prefix = op_prefix(op)
    tables = [Table("te_window_t", f"{prefix}win", data.window, struct=True),
              *requant_tables(prefix, data.multipliers, data.input_offset, data.output_offset, data.activation_range)]
    bias = ptr(op.inputs[3]) if len(op.inputs) > 3 and op.inputs[3] >= 0 else "0"
    call = (f"te_transpose_conv({ptr(op.outputs[0])}, {ptr(op.inputs[2])}, {ptr(op.inputs[1])}, {bias}, "
            f"&{prefix}win, &{prefix}q, (int32_t *)te_scratch);")
    return Lowered(tables, call, scratch_bytes=4 * model.tensors[op.outputs[0]].size)


def _gather(data: GatherData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """te_transpose over the input from its offset: out[a][b][c][d] = in[offset + a*s0 + b*s1 + c*s2 + d*s3]."""
    in_t = model.tensors[op.inputs[0]]
    require(in_t.dtype.itemsize == 1 and not in_t.is_constant, op, "is wider than 8-bit or reads constant data")
    prefix = op_prefix(op)
    tables = [table("te_dim", f"{prefix}out_dims", data.out_dims), table("int32_t", f"{prefix}in_strides", data.in_strides)]
    source = f"({ptr(op.inputs[0])} + {data.in_offset})" if data.in_offset else ptr(op.inputs[0])
    call = f"te_transpose({ptr(op.outputs[0])}, {source}, {prefix}out_dims, {prefix}in_strides);"
    return Lowered(tables, call)


def _pool(data: PoolData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    prefix = op_prefix(op)
    act_min, act_max = data.activation_range
    return Lowered([Table("te_window_t", f"{prefix}win", data.window, struct=True)],
                   f"te_{data.kernel}({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, &{prefix}win, {act_min}, {act_max});")


def _concat(data: ConcatData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """One te_copy_blocks per input, into its column of each output row."""
    calls, column = [], 0
    for index, block in zip(op.inputs, data.block_bytes):
        kernel = "te_copy_blocks_const" if model.tensors[index].is_constant else "te_copy_blocks"
        calls.append(f"{kernel}((uint8_t *){ptr(op.outputs[0])} + {column}, (const uint8_t *){ptr(index)}, "
                     f"{data.outer}, {block}, {data.row_bytes});")
        column += block
    return Lowered([], " ".join(calls))


def _alias(data: AliasData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """No code (the output shares its input's buffer), or a copy of a constant input."""
    if not data.copy_bytes:
        return Lowered()
    return Lowered([], f"te_copy_blocks_const((uint8_t *){ptr(op.outputs[0])}, (const uint8_t *){ptr(op.inputs[0])}, "
                       f"1, {data.copy_bytes}, {data.copy_bytes});")


def _mean(data: MeanData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    name = f"{op_prefix(op)}geom"
    kernel = "te_mean_s16" if data.element_type == "int16" else "te_mean_s8"
    call = (f"{kernel}({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {name}, {c_int(data.input_zero_point)}, "
            f"{c_int(data.count)}, {c_int(data.multiplier)}, {c_int(data.shift)}, {c_int(data.output_zero_point)});")
    return Lowered([table("int32_t", name, data.geometry)], call)


def _softmax(data: SoftmaxData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    kernel = "te_softmax_s8_s16" if data.output_type == "int16" else "te_softmax_s8"
    call = (f"{kernel}({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {c_int(data.outer)}, {c_int(data.depth)}, "
            f"{c_int(data.multiplier)}, {c_int(data.left_shift)}, {c_int(data.diff_min)});")
    return Lowered(call=call, inplace_ok=data.output_type == "int8")


def _softmax16(data: Softmax16Data, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    prefix = op_prefix(op)
    tables = [table("int16_t", f"{prefix}exp_lut", data.exp_lut),
              table("int16_t", f"{prefix}recip_lut", data.one_over_one_plus_x_lut)]
    call = (f"te_softmax_s16({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {c_int(data.outer)}, {c_int(data.depth)}, "
            f"{c_int(data.input_multiplier)}, {c_int(data.input_left_shift)}, {prefix}exp_lut, {prefix}recip_lut);")
    return Lowered(tables, call)


def _sigmoid_table(data: SigmoidTableData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    name = f"{op_prefix(op)}sigmoid"
    call = (f"te_{data.kernel}({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {c_int(model.tensors[op.inputs[0]].size)}, "
            f"{c_int(data.input_multiplier)}, {c_int(data.input_left_shift)}, {name});")
    return Lowered([table("uint16_t", name, data.table)], call, inplace_ok=True)


def _requantize(data: RequantizeData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """te_requantize_s8 between int8 tensors (in place), te_requantize_int between other integer types."""
    dst, src = ptr(op.outputs[0]), ptr(op.inputs[0])
    rescale = f"{c_int(data.multiplier)}, {c_int(data.shift)}, {c_int(data.output_zero_point)}"
    if (data.input_bytes, data.output_bytes) == (1, 1):
        call = f"te_requantize_s8({dst}, {src}, {c_int(data.count)}, {c_int(data.input_zero_point)}, {rescale});"
        return Lowered(call=call, inplace_ok=True)
    call = (f"te_requantize_int({dst}, {data.output_bytes}, {src}, {data.input_bytes}, {c_int(data.count)}, "
            f"{c_int(data.input_zero_point)}, {rescale});")
    return Lowered(call=call)


def _float_quantize(data: FloatQuantizeData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    call = (f"te_{data.kernel}({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {c_int(data.count)}, {c_float(data.scale)}, "
            f"{c_int(data.zero_point)});")
    return Lowered(call=call, inplace_ok=data.kernel == "quantize_f32_s8")


SVDF_INPUT, SVDF_WEIGHTS_FEATURE, SVDF_WEIGHTS_TIME, SVDF_BIAS, SVDF_STATE = range(5)


def _svdf(data: SvdfData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """te_svdf_s8 (with the folded offsets) or te_svdf_s16 (int16 time weights and state)."""
    prefix = op_prefix(op)
    has_bias = len(op.inputs) > SVDF_BIAS and op.inputs[SVDF_BIAS] >= 0
    bias = ptr(op.inputs[SVDF_BIAS]) if has_bias else "0"
    operands = (f"{ptr(op.outputs[0])}, {ptr(op.inputs[SVDF_INPUT])}, {ptr(op.inputs[SVDF_STATE])}, "
                f"{ptr(op.inputs[SVDF_WEIGHTS_FEATURE])}, {ptr(op.inputs[SVDF_WEIGHTS_TIME])}, {bias}")
    params = Table("te_svdf_params_t", f"{prefix}params", data.params, struct=True)
    if data.int16_state:
        return Lowered([params], f"te_svdf_s16({operands}, &{prefix}params);")
    return Lowered([params, table("int32_t", f"{prefix}folds", data.folds)],
                   f"te_svdf_s8({operands}, {prefix}folds, &{prefix}params);")


LSTM_INPUT, LSTM_HIDDEN, LSTM_CELL = 0, 18, 19
LSTM_WEIGHTS = (1, 2, 3, 4, 5, 6, 7, 8)   # the input then the recurrent weights of the four gates


def _lstm(data: LstmData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """te_lstm_s8 over its parameters (the four gates' rescalings grouped), folded biases and sigmoid table;
    on DSP cores its weights as SMLAD pairs (`wide`) where every row is a multiple of 4 long."""
    prefix = op_prefix(op)
    if data.activations == "int16":
        return _lstm_16x8(data, op, ptr)
    params = data.params
    gates = tuple(tuple(params[5 + 4 * g:9 + 4 * g]) for g in range(4))
    tables = [Table("te_lstm_params_t", f"{prefix}params", (*params[:5], gates, *params[21:]), struct=True),
              table("uint16_t", f"{prefix}sigmoid", data.sigmoid)]
    if data.wide is None or not uses_dsp(ptr):
        biases = [table("int32_t", f"{prefix}bias{i}", values) for i, values in enumerate(data.biases)]
        tables += [*biases, Table("int8_t *const", f"{prefix}weights", tuple(ptr(op.inputs[i]) for i in LSTM_WEIGHTS),
                                  in_flash=False),
                   Table("int32_t *const", f"{prefix}biases", tuple(b.name for b in biases), in_flash=False)]
        operands = f"{prefix}weights, 0, {prefix}biases"
    else:   # the biases live in `wide`, at the head of each unit's rows
        tables.append(table("int32_t", f"{prefix}wide", data.wide))
        operands = f"0, {prefix}wide, 0"
    call = (f"te_lstm_s8({ptr(op.outputs[0])}, {ptr(op.inputs[LSTM_INPUT])}, {ptr(op.inputs[LSTM_HIDDEN])}, "
            f"{ptr(op.inputs[LSTM_CELL])}, {operands}, &{prefix}params, {prefix}sigmoid);")
    return Lowered(tables, call)


def _lstm_16x8(data: LstmData, op: Operator, ptr: PointerOf) -> Lowered:
    """te_lstm_s16 (te_int16.c): the same parameters, int64 input biases, the weights as they are."""
    prefix = op_prefix(op)
    params = data.params
    gates = tuple(tuple(params[5 + 4 * g:9 + 4 * g]) for g in range(4))
    biases = [table("int64_t", f"{prefix}bias{i}", values) for i, values in enumerate(data.biases)]
    tables = [Table("te_lstm_params_t", f"{prefix}params", (*params[:5], gates, *params[21:]), struct=True), *biases,
              Table("int8_t *const", f"{prefix}weights", tuple(ptr(op.inputs[i]) for i in LSTM_WEIGHTS), in_flash=False),
              Table("int64_t *const", f"{prefix}biases", tuple(b.name for b in biases), in_flash=False),
              table("uint16_t", f"{prefix}sigmoid", data.sigmoid)]
    call = (f"te_lstm_s16({ptr(op.outputs[0])}, {ptr(op.inputs[LSTM_INPUT])}, {ptr(op.inputs[LSTM_HIDDEN])}, "
            f"{ptr(op.inputs[LSTM_CELL])}, {prefix}weights, {prefix}biases, &{prefix}params, {prefix}sigmoid);")
    return Lowered(tables, call)


def _reduce(data: ReduceData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """te_reduce_minmax_s8 over MEAN's kept/reduced geometry."""
    name = f"{op_prefix(op)}geom"
    call = f"te_reduce_minmax_s8({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {name}, {int(data.is_max)});"
    return Lowered([table("int32_t", name, data.geometry)], call)


def _arg(data: ArgData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    call = (f"te_arg_minmax_s8({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {c_int(data.outer)}, {c_int(data.axis_size)}, "
            f"{c_int(data.inner)}, {int(data.is_max)});")
    return Lowered([], call)


def _block_copies(data: BlockCopyData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """te_copy_strided once per (input, output) pair, but for an output that is one run of its input's bytes
    (a split along its outermost axis), which the plan may make a view of them."""
    def at(pointer: str, offset: int) -> str:
        return f"(uint8_t *){pointer} + {offset}" if offset else f"(uint8_t *){pointer}"

    views = tuple((c.dst, c.src, c.src_offset) for c in data.copies
                  if c.dst_offset == 0 and (c.outer == 1 or c.src_stride == c.block)
                  and c.outer * c.block == model.tensors[op.outputs[c.dst]].nbytes)
    calls = [f"te_copy_strided({at(ptr(op.outputs[c.dst]), c.dst_offset)}, {at(ptr(op.inputs[c.src]), c.src_offset)}, "
             f"{c.outer}, {c.block}, {c.dst_stride}, {c.src_stride});" for c in data.copies
             if not viewed(ptr, op.outputs[c.dst], op.inputs[c.src], c.src_offset)]
    return Lowered([], "\n  ".join(calls), views=views)


def _resize_bilinear(data: ResizeBilinearData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    prefix = op_prefix(op)
    tables = [Table("te_resize_bilinear_t", f"{prefix}geom", data.geometry, struct=True),
              table("int16_t", f"{prefix}ys", data.ys, per_line=15), table("int16_t", f"{prefix}xs", data.xs, per_line=15)]
    call = (f"te_resize_bilinear_s8({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, &{prefix}geom, {prefix}ys, "
            f"{prefix}xs);")
    return Lowered(tables, call)


def _batch_matmul(data: BatchMatMulData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    prefix = op_prefix(op)
    tables = [Table("te_batch_matmul_t", f"{prefix}params", data.params, struct=True),
              table("int32_t", f"{prefix}offsets", data.offsets)]
    consts = [flag for index, flag in ((op.inputs[0], "TE_MATMUL_LHS_CONST"), (op.inputs[1], "TE_MATMUL_RHS_CONST"))
              if model.tensors[index].is_constant]
    kernel = "te_batch_matmul_s16" if model.tensors[op.outputs[0]].type_name == "INT16" else "te_batch_matmul_s8"
    call = (f"{kernel}({ptr(op.outputs[0])}, {ptr(op.inputs[0])}, {ptr(op.inputs[1])}, &{prefix}params, "
            f"{prefix}offsets, {' | '.join(consts) if consts else '0u'});")
    return Lowered(tables, call)


class _CallNames(dict):
    """The names a CallData argument may use, computed when used: in0.., out0.. (tensor pointers), p (prefix)."""

    def __init__(self, op: Operator, ptr: PointerOf):
        super().__init__(p=op_prefix(op))
        self.op, self.ptr = op, ptr

    def __missing__(self, key: str) -> str:
        if key.startswith("in"):
            return self.ptr(self.op.inputs[int(key[2:])])
        if key.startswith("out"):
            return self.ptr(self.op.outputs[int(key[3:])])
        raise KeyError(key)


def _call(data: CallData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    """One kernel call with the op's arrays and options struct; kept outputs persist across invocations."""
    prefix = op_prefix(op)
    tables = [table(a.c_type, f"{prefix}{a.name}", a.values) for a in data.arrays]
    if data.params_type:
        tables.append(Table(data.params_type, f"{prefix}{data.params_name}", data.params, struct=True))
    names = _CallNames(op, ptr)
    args = [c_int(a) if isinstance(a, int) else a.format_map(names) for a in data.args]
    call = f"{data.kernel}({', '.join(args)});"
    state = StateArray(data.state[0], f"{prefix}state", data.state[1]) if data.state[1] else None
    return Lowered(tables, call, inplace_ok=data.inplace_ok, scratch_bytes=data.scratch_bytes,
                   kept_tensors=tuple(op.outputs[k] for k in data.kept_outputs), state=state)


# Each kind of OpData, and its rendering as C.
RENDERINGS: dict[type, Callable[[OpData, TfliteModel, Operator, PointerOf], Lowered]] = {
    LutData: _lut, BroadcastData: _broadcast, PadData: _pad, RowGatherData: _row_gather,
    TransposeConvData: _transpose_conv, GatherData: _gather, PoolData: _pool, ConcatData: _concat, AliasData: _alias,
    MeanData: _mean, SoftmaxData: _softmax, Softmax16Data: _softmax16, SigmoidTableData: _sigmoid_table,
    RequantizeData: _requantize, FloatQuantizeData: _float_quantize,
    SvdfData: _svdf, LstmData: _lstm, ReduceData: _reduce, ArgData: _arg, BlockCopyData: _block_copies,
    ResizeBilinearData: _resize_bilinear, BatchMatMulData: _batch_matmul, RowNormData: _row_norm,
    CallData: _call, ConvData: render_conv, FullyConnectedData: render_fully_connected,
}
