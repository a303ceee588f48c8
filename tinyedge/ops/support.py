"""What the op registry records about one op (`OpSupport`), kept apart so op modules can declare theirs."""

from __future__ import annotations

from dataclasses import dataclass

# The C files of each AOT op family (te_pgm.h, te_dsp_insn.h and te_params.h come with every build).
FAMILY_FILES: dict[str, tuple[str, ...]] = {
    "core": ("te_kernels.h", "te_kernels.c"),
    "nonlinear": ("te_nonlinear.h", "te_nonlinear.c"),
    "recurrent": ("te_recurrent.h", "te_recurrent.c"),
    "shape": ("te_shape.h", "te_shape.c"),
    "elementwise": ("te_elementwise.h", "te_elementwise.c"),
    "signal": ("te_signal.h", "te_signal.c"),
}
DSP_FILES = ("te_dsp.h", "te_dsp.c")
INT16_FILES = ("te_int16.h", "te_int16.c")   # the int16 and 16x8 variants' kernels (tinyedge.aot.int16)
INT16_FILE_VARIANTS = ("int16", "float32->int16", "int16->float32")   # and every "16x8 ..." variant
INT32_VARIANT = "int32"   # the plain int32 elementwise variants (tinyedge.aot.int32), in te_signal.c

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
    reference: str = "tflite-micro"          # what its bit-exactness is checked against ("tflite": TFLite's
                                             # interpreter, for ops tflite-micro has no int8 kernel for)

    @property
    def c_files(self) -> tuple[str, ...]:
        int16 = any(v in INT16_FILE_VARIANTS or v.startswith("16x8") for v in self.variants)
        int32 = INT32_VARIANT in self.variants and self.family != "signal"
        return (FAMILY_FILES[self.family] + (DSP_FILES if self.dsp else ()) + (INT16_FILES if int16 else ())
                + (FAMILY_FILES["signal"] if int32 else ()))

    @property
    def aot_paths(self) -> tuple[str, ...]:
        return ("portable", "dsp") if self.dsp else ("portable",)
