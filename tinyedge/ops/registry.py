"""Which runtime runs which op: the one table the AOT and viper refusals, `tinyedge ops`, `inspect`
and the README's op table read.

Each AOT op has a family, which names the C files its kernels live in (firmware/aot/); `dsp` names
the te_dsp.c kernel cores with the Arm DSP extension run instead of the portable one. `viper` is None
when the viper runtime runs the op, else the reason it refuses it. The tflm runtime runs what
tinyedge's TFLM build registers (firmware/tflm/ops.yaml).

Every op is one module of this package (found here, nothing else to edit): its `SUPPORTS`
and its `prepare(model, op)`, which returns the typed OpData (tinyedge.ops.opdata) that the AOT and
viper emitters render; its C kernel, if it needs a new one, goes in its family's file.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace
from types import ModuleType

from tinyedge import ops as ops_package
from tinyedge import plugins
from tinyedge.aot.int16 import VARIANTS as INT16_VARIANTS
from tinyedge.ops.int32_ops import INT32_OPS
from tinyedge.ops.support import INT32_VARIANT, NOT_YET_VIPER, OpRegistryError, OpSupport  # noqa: F401  (the registry's vocabulary)
from tinyedge.tflm_tree import OP_TABLE
from tinyedge.viper.variants import VIPER_VARIANTS

RUNTIMES = tuple(sorted(plugins.RUNTIMES))   # aot, tflm, viper

# Modules of this package that are not op modules.
NOT_OP_MODULES = frozenset({"broadcast", "conv", "cstructs", "fixedpoint", "float_lut", "opdata", "registry",
                            "signal_common", "support"})


def _op_modules() -> tuple[ModuleType, ...]:
    """Every op module of tinyedge/ops/ (one per op or op pair: its `SUPPORTS` and its `prepare`)."""
    names = sorted(info.name for info in pkgutil.iter_modules(ops_package.__path__) if info.name not in NOT_OP_MODULES)
    return tuple(importlib.import_module(f"tinyedge.ops.{name}") for name in names)


OP_MODULES = _op_modules()
# op name -> the op module whose `prepare(model, op)` gives its OpData (tinyedge.ops.opdata).
PREPARED: dict[str, ModuleType] = {support.name: module for module in OP_MODULES for support in module.SUPPORTS}


def _with_int16(op: OpSupport) -> OpSupport:
    """The op with its int16 variant (tinyedge.aot.int16) and its plain int32 one (tinyedge.ops.int32_ops),
    if it has them."""
    variant = INT16_VARIANTS.get(op.name)
    if variant and variant not in op.variants:
        op = replace(op, variants=op.variants + (variant,))
    if op.name in INT32_OPS and INT32_VARIANT not in op.variants:
        op = replace(op, variants=op.variants + (INT32_VARIANT,))
    return op


def _with_viper_variants(op: OpSupport) -> OpSupport:
    """The op with the variants the viper runtime runs beyond its own list (tinyedge.viper.variants)."""
    extra = tuple(v for v in VIPER_VARIANTS.get(op.name, ()) if v not in op.viper_variants)
    return replace(op, viper_variants=op.viper_variants + extra) if extra and op.viper is None else op


AOT_OPS: tuple[OpSupport, ...] = tuple(sorted((_with_viper_variants(_with_int16(op)) for m in OP_MODULES
                                               for op in m.SUPPORTS), key=lambda op: op.name))
OPS: dict[str, OpSupport] = {op.name: op for op in AOT_OPS}


def aot_ops() -> list[str]:
    return sorted(OPS)


def viper_ops() -> list[str]:
    return sorted(name for name, op in OPS.items() if op.viper is None)


def viper_refusal(name: str) -> str:
    """Why the viper runtime does not run the op ("" when it does)."""
    op = OPS.get(name)
    if op is None:
        return "neither the viper nor the AOT runtime has a kernel for it"
    return op.viper or ""


def tflm_ops() -> list[str]:
    """The ops tinyedge's TFLM build registers (firmware/tflm/ops.yaml)."""
    return sorted(OP_TABLE)


def runtime_ops(runtime: str) -> list[str]:
    return RUNTIME_OPS[runtime]()


# Each runtime's ops, by the function named after it.
RUNTIME_OPS = {runtime: globals()[f"{runtime}_ops"] for runtime in RUNTIMES}


def runtimes_for(name: str) -> list[str]:
    """The runtimes that run the op, in RUNTIMES order."""
    return [runtime for runtime in RUNTIMES if name in runtime_ops(runtime)]


def op_detail(name: str) -> dict[str, object]:
    """Per runtime, how it runs the op (variants, paths, C files) or why it does not."""
    op = OPS.get(name)
    detail: dict[str, object] = {"tflm": name in tflm_ops()}
    if op is None:
        return {**detail, "aot": None, "viper": None}
    detail["aot"] = {"variants": list(op.variants), "paths": list(op.aot_paths), "c_files": list(op.c_files),
                     "dsp_kernel": op.dsp or None, "reference": op.reference}
    detail["viper"] = {"variants": list(op.viper_variants)} if op.viper is None else {"refused": op.viper}
    return detail


def ops_table() -> dict[str, object]:
    """`tinyedge ops --json`: one list per runtime, and the detail of every op any of them runs."""
    names = sorted(set(aot_ops()) | set(tflm_ops()))
    return {**{runtime: runtime_ops(runtime) for runtime in RUNTIMES},
            "detail": {name: op_detail(name) for name in names}}


def markdown_table() -> str:
    """The README's op table: every op the AOT runtime runs, and where."""
    lines = ["| Op | AOT (variants) | AOT DSP kernel | viper | tflm |", "|---|---|---|---|---|"]
    for op in AOT_OPS:
        viper = (", ".join(op.viper_variants) if op.viper is None
                 else "not yet" if op.viper == NOT_YET_VIPER else "no: " + op.viper)
        tflm = "yes" if op.name in tflm_ops() else "no"
        if op.reference != "tflite-micro":   # tflite-micro lacks the int8 kernel: TFLite's is the reference
            tflm = f"{'float32 only' if tflm == 'yes' else 'no'} (int8 reference: TFLite's interpreter)"
        lines.append(f"| {op.name} | {', '.join(op.variants)} | {op.dsp or '—'} | {viper} | {tflm} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":   # the README's table: python -m tinyedge.ops.registry
    print(markdown_table(), end="")
