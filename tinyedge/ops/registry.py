"""Which runtime runs which op: the one table the AOT and viper refusals, `tinyedge ops`, `inspect`
and the README's op table read.

Each AOT op has a family, which names the C files its kernels live in (firmware/aot/); `dsp` names
the te_dsp.c kernel cores with the Arm DSP extension run instead of the portable one. `viper` is None
when the viper runtime runs the op, else the reason it refuses it. The tflm runtime runs what
tinyedge's TFLM build registers (firmware/tflm/ops.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyedge.tflm import OP_TABLE

RUNTIMES = ("aot", "tflm", "viper")

# The C files of each AOT op family (te_pgm.h, te_dsp_insn.h and te_params.h come with every build).
FAMILY_FILES: dict[str, tuple[str, ...]] = {
    "core": ("te_kernels.h", "te_kernels.c"),
    "nonlinear": ("te_nonlinear.h", "te_nonlinear.c"),
    "recurrent": ("te_recurrent.h", "te_recurrent.c"),
}
DSP_FILES = ("te_dsp.h", "te_dsp.c")

NOT_YET_VIPER = "not yet written for the viper runtime (the AOT and tflm runtimes run it)"


class OpRegistryError(Exception):
    """A bug, not a user error: an op's lowering disagrees with its entry here."""


@dataclass(frozen=True)
class OpSupport:
    """One op (TFLite's name) as the AOT and viper runtimes run it."""
    name: str
    family: str                              # a key of FAMILY_FILES
    variants: tuple[str, ...] = ("int8",)    # tensor types, "in->out" where they differ
    dsp: str = ""                            # the te_dsp.c kernel on cores with the DSP extension
    viper: str | None = None                 # None: viper runs it; else why it does not
    viper_variants: tuple[str, ...] = ("int8",)

    @property
    def c_files(self) -> tuple[str, ...]:
        return FAMILY_FILES[self.family] + (DSP_FILES if self.dsp else ())

    @property
    def aot_paths(self) -> tuple[str, ...]:
        return ("portable", "dsp") if self.dsp else ("portable",)


AOT_OPS: tuple[OpSupport, ...] = (
    OpSupport("ADD", "nonlinear", dsp="te_dsp_add_s8"),
    OpSupport("AVERAGE_POOL_2D", "core"),
    OpSupport("CONCATENATION", "core", ("int8", "uint8", "int16", "int32")),
    OpSupport("CONV_2D", "core", dsp="te_dsp_conv2d"),
    OpSupport("DEPTHWISE_CONV_2D", "core", dsp="te_dsp_depthwise_conv2d"),
    OpSupport("DEQUANTIZE", "nonlinear", ("int8->float32",),
              viper="MicroPython's viper code has no float32 arithmetic on the arena's bytes, and its model I/O is int8"),
    OpSupport("FULLY_CONNECTED", "core", dsp="te_dsp_fully_connected"),
    OpSupport("LOGISTIC", "nonlinear"),
    OpSupport("MAX_POOL_2D", "core"),
    OpSupport("MEAN", "nonlinear"),
    OpSupport("MUL", "nonlinear"),
    OpSupport("PAD", "core"),
    OpSupport("PADV2", "core"),
    OpSupport("QUANTIZE", "nonlinear", ("float32->int8", "int8->int8", "int16->int8", "int8->int16", "int8->int32",
                                        "int16->int16", "int16->int32", "int32->int8", "int32->int16"),
              viper_variants=("int8->int8",)),
    OpSupport("RESHAPE", "core", ("any",)),
    OpSupport("SOFTMAX", "nonlinear", ("int8", "int8->int16")),
    OpSupport("SQUEEZE", "core", ("any",)),
    OpSupport("SVDF", "recurrent", viper=NOT_YET_VIPER),
    OpSupport("TANH", "nonlinear"),
    OpSupport("TRANSPOSE", "core", ("int8", "uint8")),
    OpSupport("UNIDIRECTIONAL_SEQUENCE_LSTM", "recurrent", ("int8 (int16 cell state)",),
              dsp="te_lstm_s8 (SMLAD weights)", viper=NOT_YET_VIPER),
)

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
    return {"aot": aot_ops, "tflm": tflm_ops, "viper": viper_ops}[runtime]()


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
                     "dsp_kernel": op.dsp or None}
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
        lines.append(f"| {op.name} | {', '.join(op.variants)} | {op.dsp or '—'} | {viper} | "
                     f"{'yes' if op.name in tflm_ops() else 'no'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":   # the README's table: python -m tinyedge.ops.registry
    print(markdown_table(), end="")
