"""AOT lowerings for the recurrent ops: SVDF (and UNIDIRECTIONAL_SEQUENCE_LSTM), with TFLM's int8
semantics (svdf_common.cc, lstm_eval.cc), run by firmware/aot/te_recurrent.c.

Their state is a variable tensor: the compiler keeps it in the arena for the whole program, zeroed at
start, so it persists across invocations exactly as TFLM's variable tensors do.
"""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import Lowered, Lowering, PointerOf
from tinyedge.aot.nonlinear import c_int32
from tinyedge.aot.quant import quantize_multiplier
from tinyedge.errors import TinyedgeError
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

SVDF_INPUT, SVDF_WEIGHTS_FEATURE, SVDF_WEIGHTS_TIME, SVDF_BIAS, SVDF_STATE = range(5)


def _f32(x: float | np.floating) -> np.float32:
    return np.float32(x)


def _zero_point(t: Tensor) -> int:
    return int(t.zero_point[0]) if t.zero_point.size else 0


def _refuse(op: Operator, what: str) -> TinyedgeError:
    return TinyedgeError(f"{op.opcode} (operator {op.index}) {what}, which the AOT runtime does not compile: "
                         "build the model with `--runtime tflm` instead.")


def _int32_params(name: str, values: list[int]) -> str:
    return f"static const int32_t {name}[{len(values)}] TE_CONST = {{{', '.join(c_int32(v) for v in values)}}};\n"


def svdf_multipliers(inp: Tensor, weights_feature: Tensor, weights_time: Tensor, state: Tensor,
                     out: Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
    """PrepareSvdf's effective scales: products and quotients of float32 scales in float, then double."""
    scale_1 = float(_f32(inp.scale[0]) * _f32(weights_feature.scale[0]) / _f32(state.scale[0]))
    scale_2 = float(_f32(state.scale[0]) * _f32(weights_time.scale[0]) / _f32(out.scale[0]))
    return quantize_multiplier(scale_1), quantize_multiplier(scale_2)


def lower_svdf(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
    tensors = [model.tensors[i] if i >= 0 else None for i in op.inputs]
    inp, weights_feature, weights_time, bias, state = (tensors + [None] * 5)[:5]
    out = model.tensors[op.outputs[0]]
    if inp is None or weights_feature is None or weights_time is None or state is None:
        raise _refuse(op, "lacks one of its input, weights or state tensors")
    kinds = (inp.type_name, weights_feature.type_name, weights_time.type_name, state.type_name, out.type_name)
    if kinds != ("INT8",) * 5:
        raise _refuse(op, f"is not int8 throughout (input, weights, state, output: {', '.join(k.lower() for k in kinds)})")
    if len(inp.shape) != 2 or inp.shape[0] != 1:
        raise _refuse(op, f"has an input of shape {list(inp.shape)} rather than one batch [1, n]")
    if not state.is_variable:
        raise _refuse(op, "has a state tensor that is not a variable")
    rank = int(getattr(op.options, "rank", 1))
    n_filter, n_input = weights_feature.shape
    n_memory = weights_time.shape[1]
    (m1, s1), (m2, s2) = svdf_multipliers(inp, weights_feature, weights_time, state, out)
    prefix = f"op{op.index}_"
    params = [n_input, n_filter, n_memory, rank, _zero_point(inp), _zero_point(state), _zero_point(out), m1, s1, m2, s2]
    bias_ptr = ptr(op.inputs[SVDF_BIAS]) if bias is not None else "0"
    call = (f"te_svdf_s8({ptr(op.inputs[SVDF_INPUT])}, {ptr(op.outputs[0])}, {ptr(op.inputs[SVDF_STATE])}, "
            f"{ptr(op.inputs[SVDF_WEIGHTS_FEATURE])}, {ptr(op.inputs[SVDF_WEIGHTS_TIME])}, {bias_ptr}, {prefix}params);")
    return Lowered(decls=_int32_params(f"{prefix}params", params), call=call)


LOWERINGS: dict[str, Lowering] = {
    "SVDF": lower_svdf,
}
