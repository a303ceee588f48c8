"""SVDF (int8, and int8 with int16 time weights and state as TFLM's keyword model has), as TFLM's
svdf_common.cc (PrepareSvdf's two effective scales; EvalIntegerSvdfReference), run by te_recurrent.c's
te_svdf_s8 / te_svdf_s16. The state is a variable tensor the compiler keeps in the arena for the whole
program, so it persists across invocations as TFLM's variable tensors do."""

from __future__ import annotations

import numpy as np

from tinyedge.aot.lowering import unsupported
from tinyedge.aot.quant import quantize_multiplier, zero_point
from tinyedge.ops.opdata import SvdfData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

SUPPORTS = (OpSupport("SVDF", "recurrent", ("int8", "int8 (int16 time weights and state)"), viper_variants=("int8",)),)
SVDF_INPUT, SVDF_WEIGHTS_FEATURE, SVDF_WEIGHTS_TIME, SVDF_BIAS, SVDF_STATE = range(5)
# input, feature weights, time weights, state, output: TFLM's keyword model (EvalIntegerSvdfReference<int16_t>).
SVDF_INT16_STATE = ("INT8", "INT8", "INT16", "INT16", "INT8")


def _f32(x: float | np.floating) -> np.float32:
    return np.float32(x)


def svdf_multipliers(inp: Tensor, weights_feature: Tensor, weights_time: Tensor, state: Tensor,
                     out: Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
    """PrepareSvdf's effective scales: products and quotients of float32 scales in float, then double."""
    scale_1 = float(_f32(inp.scale[0]) * _f32(weights_feature.scale[0]) / _f32(state.scale[0]))
    scale_2 = float(_f32(state.scale[0]) * _f32(weights_time.scale[0]) / _f32(out.scale[0]))
    return quantize_multiplier(scale_1), quantize_multiplier(scale_2)


def _params(op: Operator, inp: Tensor, weights_feature: Tensor, weights_time: Tensor, state: Tensor,
            out: Tensor) -> tuple[int, ...]:
    """te_svdf_params_t's fields."""
    n_filter, n_input = weights_feature.shape
    (m1, s1), (m2, s2) = svdf_multipliers(inp, weights_feature, weights_time, state, out)
    return (n_input, n_filter, weights_time.shape[1], int(getattr(op.options, "rank", 1)), zero_point(inp),
            zero_point(state), zero_point(out), m1, s1, m2, s2)


def _check_shape_and_state(op: Operator, inp: Tensor, state: Tensor) -> None:
    if len(inp.shape) != 2 or inp.shape[0] != 1:
        raise unsupported(op, f"has an input of shape {list(inp.shape)} rather than one batch [1, n]")
    if not state.is_variable:
        raise unsupported(op, "has a state tensor that is not a variable")


def prepare(model: TfliteModel, op: Operator) -> SvdfData:
    tensors = [model.tensors[i] if i >= 0 else None for i in op.inputs]
    inp, weights_feature, weights_time, bias, state = (tensors + [None] * 5)[:5]
    out = model.tensors[op.outputs[0]]
    if inp is None or weights_feature is None or weights_time is None or state is None:
        raise unsupported(op, "lacks one of its input, weights or state tensors")
    kinds = (inp.type_name, weights_feature.type_name, weights_time.type_name, state.type_name, out.type_name)
    if kinds == SVDF_INT16_STATE:
        _check_shape_and_state(op, inp, state)
        if bias is not None and bias.type_name != "INT32":
            raise unsupported(op, "has a bias that is not int32")
        return SvdfData(_params(op, inp, weights_feature, weights_time, state, out), None, int16_state=True)
    if kinds != ("INT8",) * 5:
        raise unsupported(op, f"is not int8 throughout (input, weights, state, output: {', '.join(k.lower() for k in kinds)})")
    _check_shape_and_state(op, inp, state)
    feature_sums = weights_feature.data.astype(np.int64).sum(axis=1)
    time_sums = weights_time.data.astype(np.int64).sum(axis=1)
    folds = np.stack([-zero_point(inp) * feature_sums, -zero_point(state) * time_sums], axis=1).ravel()
    return SvdfData(_params(op, inp, weights_feature, weights_time, state, out), tuple(int(v) for v in folds))
