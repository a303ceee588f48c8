"""What the signal-library op modules share: their flexbuffer options, read at generation time, and the
checks on their tensors. TFLM's kernels (signal/micro/kernels/*.cc) read the same map."""

from __future__ import annotations

from typing import Any

from tinyedge.aot.lowering import require
from tinyedge.tflite_model import Operator, TfliteModel

# Why the viper runtime refuses every signal-library op.
VIPER_REFUSAL = ("MicroPython's viper code has no 64-bit arithmetic for TFLM's signal library "
                 "(the AOT and tflm runtimes run it)")


def options(op: Operator) -> dict[str, Any]:
    """The op's flexbuffer options as a dict (empty for ops without options)."""
    if not op.custom_options:
        return {}
    from flatbuffers import flexbuffers

    loaded = flexbuffers.Loads(op.custom_options)
    require(isinstance(loaded, dict), op, "has options that are not a flexbuffer map")
    return loaded


def option(op: Operator, name: str) -> int:
    value = options(op).get(name)
    require(isinstance(value, (int, bool)), op, f"has no integer option '{name}'")
    return int(value)


def require_tensor_types(model: TfliteModel, op: Operator, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
    """The op's inputs and outputs have these TFLite type names, in order."""
    for indices, types in ((op.inputs, inputs), (op.outputs, outputs)):
        require(len(indices) >= len(types), op, "has fewer tensors than the signal library's kernel reads")
        for index, type_name in zip(indices, types):
            t = model.tensors[index]
            require(t.type_name == type_name, op, f"has a {t.type_name.lower()} tensor '{t.name}' where TFLM's kernel "
                                                  f"takes {type_name.lower()}")
