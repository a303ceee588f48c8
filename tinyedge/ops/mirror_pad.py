"""MIRROR_PAD (8-bit), as TFLM's mirror_pad.cc: every output element is an input element, found per
dimension by GetInputDimension (REFLECT leaves the edge out, SYMMETRIC repeats it). SEANet-style audio
models pad this way (PyTorch's reflect padding). The input and output share their quantization, so it
is a copy: whole rows of the dimensions after the last padded one (a row gather)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import RowGatherData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("MIRROR_PAD", "core", ("int8", "uint8")),)
REFLECT = 0   # TFLite's MirrorPadMode; SYMMETRIC is 1


def input_index(padded: int, before: int, size: int, offset: int) -> int:
    """TFLM's GetInputDimension: where output position `padded` reads in a dimension of `size`."""
    if padded < before:
        original = before + offset - 1
        return original - min(padded, original - offset)
    padded -= before
    if padded >= size:
        padded -= size
        original = size - (1 + offset)
        return original - min(padded, original)
    return padded


def prepare(model: TfliteModel, op: Operator) -> RowGatherData:
    in_t, out_t, paddings = (model.tensors[i] for i in (op.inputs[0], op.outputs[0], op.inputs[1]))
    require(paddings.data is not None and in_t.dtype.itemsize == 1 and not in_t.is_constant, op,
            "takes its paddings at run time, is wider than 8-bit or reads constant data")
    pads = np.asarray(paddings.data).reshape(-1, 2).astype(int).tolist()
    shape = [int(d) for d in in_t.shape]
    require([s + a + b for s, (a, b) in zip(shape, pads)] == [int(d) for d in out_t.shape], op,
            "has an output shape its paddings do not give")
    offset = 1 if getattr(op.options, "mode", REFLECT) == REFLECT else 0
    padded_dims = [d for d, (a, b) in enumerate(pads) if a or b]
    last = padded_dims[-1] if padded_dims else -1
    row_bytes = math.prod(shape[last + 1:])
    in_rows = [math.prod(shape[d + 1:last + 1]) for d in range(last + 1)]   # input rows per step of each dimension
    sources = [[input_index(o, pads[d][0], shape[d], offset) for o in range(int(out_t.shape[d]))] for d in range(last + 1)]
    rows = tuple(sum(index * step for index, step in zip(position, in_rows))
                 for position in itertools.product(*sources))
    return RowGatherData(rows or (0,), row_bytes)
