"""Every op's AOT lowering: its op module's prepare step (tinyedge/ops/*.py) rendered by `tinyedge.aot.opdata`,
with its int16 and int32 variants, and the check that refuses the rest."""

from __future__ import annotations

from tinyedge.aot import int16, opdata
from tinyedge.aot.lowering import Lowered, Lowering, PointerOf
from tinyedge.errors import TinyedgeError
from tinyedge.ops import int32_ops, registry
from tinyedge.tflite_model import Operator, TfliteModel, refuse_custom_ops

# Ops whose output is the input's bytes under another shape: no code, one buffer.
ALIAS_OPS = frozenset({"RESHAPE", "SQUEEZE"})


def lowerings() -> dict[str, Lowering]:
    """Every op's lowering: its op module's (tinyedge/ops/*.py) prepare step, rendered."""
    modules = {name: opdata.lowering(module.prepare) for name, module in registry.PREPARED.items()}
    return {name: _int32_dispatch(name, int16.dispatch(name, lower)) for name, lower in modules.items()}


def _int32_dispatch(name: str, other: Lowering) -> Lowering:
    """The op's lowering: its plain int32 variant (tinyedge.ops.int32_ops) on int32 tensors, else `other`."""
    if name not in int32_ops.INT32_OPS:
        return other
    int32 = opdata.lowering(int32_ops.prepare_int32)

    def lower(model: TfliteModel, op: Operator, ptr: PointerOf) -> Lowered:
        return (int32 if int32_ops.is_int32_variant(model, op) else other)(model, op, ptr)
    return lower


def supported_ops() -> list[str]:
    return registry.aot_ops()


def unsupported_ops(model: TfliteModel) -> list[str]:
    return sorted({op.kind for op in model.operators} - set(registry.OPS))


def check_supported(model: TfliteModel) -> None:
    """Refuse, naming the ops, a model the AOT compiler cannot compile."""
    refuse_custom_ops(model, {name for name in registry.OPS if name.startswith("Signal")})
    missing = unsupported_ops(model)
    if missing:
        name = model.path.name if model.path else "the model"
        verb = "is" if len(missing) == 1 else "are"
        raise TinyedgeError(
            f"{name} uses {', '.join(missing)}, which {verb} not supported by the AOT runtime "
            f"(it compiles {', '.join(supported_ops())}): build it with `--runtime tflm` instead."
        )
    if model.subgraph_count != 1:
        raise TinyedgeError("the model has more than one subgraph, which the AOT runtime cannot compile: "
                            "build it with `--runtime tflm` instead.")
