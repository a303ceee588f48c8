"""UNPACK (any type), as TFLM's unpack.cc: output k is slice k along `axis`, that axis dropped; byte copies."""

from __future__ import annotations

from tinyedge.ops.opdata import BlockCopyData
from tinyedge.ops.split import COPY_VARIANTS, split_along
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("UNPACK", "shape", COPY_VARIANTS, viper_variants=("int8",)),)


def prepare(model: TfliteModel, op: Operator) -> BlockCopyData:
    axis = int(op.options.axis) % len(model.tensors[op.inputs[0]].shape)
    return split_along(model, op, 0, axis, [1] * len(op.outputs))
