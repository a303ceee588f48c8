"""The AOT C rendering of the OpData an op module prepares (tinyedge.ops.opdata): the tables and the call."""

from __future__ import annotations

from typing import Callable

from tinyedge.aot.lowering import Lowered, Lowering, PointerOf, StateArray, Table, c_int, op_prefix, requant_tables, require, table
from tinyedge.ops.opdata import BroadcastData, CallData, GatherData, LutData, OpData, PadData, RowGatherData, TransposeConvData
from tinyedge.tflite_model import Operator, TfliteModel

Prepare = Callable[[TfliteModel, Operator], OpData]


def lowering(prepare: Prepare) -> Lowering:
    """The AOT lowering of an op module: its prepare step, rendered."""
    def lower(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
        return render(prepare(model, op), model, op, ptr)
    return lower


def render(data: OpData, model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    if isinstance(data, LutData):
        return _lut(data, model, op, ptr)
    if isinstance(data, BroadcastData):
        return _broadcast(data, model, op, ptr)
    if isinstance(data, PadData):
        return _pad(data, op, ptr)
    if isinstance(data, RowGatherData):
        return _row_gather(data, model, op, ptr)
    if isinstance(data, TransposeConvData):
        return _transpose_conv(data, model, op, ptr)
    if isinstance(data, CallData):
        return _call(data, op, ptr)
    return _gather(data, model, op, ptr)


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
    return Lowered(tables, f"te_{data.kernel}({', '.join(args)});", inplace_ok=inplace)


def _pad(data: PadData, op: Operator, ptr: PointerOf) -> Lowered:
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


def _call(data: CallData, op: Operator, ptr: PointerOf) -> Lowered:
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
