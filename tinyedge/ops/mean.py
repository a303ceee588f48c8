"""MEAN (int8), as TFLM's reduce_common.cc: the axes resolved (ResolveAxis), neighbouring dims of the same
kind merged, the sum of each output's elements rescaled by in/out folded with 1/count as
QuantizedMeanOrSum does (te_nonlinear.c's te_mean_s8; int16: te_int16.c's te_mean_s16)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyedge.aot.lowering import require_types
from tinyedge.aot.quant import quantize_multiplier, tensor_scale, zero_point
from tinyedge.errors import TinyedgeError
from tinyedge.ops.cstructs import LIMITS
from tinyedge.ops.fixedpoint import wrap32
from tinyedge.ops.opdata import MeanData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("MEAN", "nonlinear", ("int8", "int16")),)
MAX_DIMS = LIMITS["TE_NL_MAX_DIMS"]


@dataclass(frozen=True)
class MeanGeometry:
    kept_sizes: list[int]
    kept_strides: list[int]
    reduced_sizes: list[int]
    reduced_strides: list[int]
    count: int  # elements averaged into each output


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


def prepare(model: TfliteModel, op: Operator) -> MeanData:
    src, axis_index, dst = op.inputs[0], op.inputs[1], op.outputs[0]
    element_type = "INT16" if model.tensors[src].type_name == "INT16" else "INT8"
    require_types(model, op, {src: element_type, dst: element_type})
    inp, out, axis_t = model.tensors[src], model.tensors[dst], model.tensors[axis_index]
    if axis_t.data is None:
        raise TinyedgeError(f"MEAN (operator {op.index}) takes its axes at run time, which the AOT runtime cannot "
                            "compile: make the reduction axes a constant.")
    geometry = mean_geometry(inp.shape, [int(a) for a in np.asarray(axis_t.data).reshape(-1)])
    if math.prod(geometry.kept_sizes) != out.size:
        raise TinyedgeError(f"MEAN (operator {op.index}) output has {out.size} elements but its axes leave "
                            f"{math.prod(geometry.kept_sizes)}: the model is inconsistent, convert it again.")
    multiplier, shift = mean_multiplier(tensor_scale(inp), tensor_scale(out), geometry.count)
    return MeanData(tuple(geometry.kept_sizes), tuple(geometry.kept_strides), tuple(geometry.reduced_sizes),
                    tuple(geometry.reduced_strides), geometry.count, zero_point(inp), multiplier, shift, zero_point(out),
                    element_type.lower())
