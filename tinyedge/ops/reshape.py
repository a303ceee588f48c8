"""RESHAPE and SQUEEZE (any type): the output is the input's bytes under another shape, so it shares the
input's buffer (tinyedge.aot.ops.ALIAS_OPS); only a constant input is copied."""

from __future__ import annotations

from tinyedge.ops.opdata import AliasData
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("RESHAPE", "core", ("any",)), OpSupport("SQUEEZE", "core", ("any",)))


def prepare(model: TfliteModel, op: Operator) -> AliasData:
    source = model.tensors[op.inputs[0]]
    return AliasData(source.nbytes if source.is_constant else 0)
