"""The one spec of the AOT kernels' parameter structs and limits, from which firmware/aot/te_params.h is
rendered (checked in; `python -m tinyedge.ops.cstructs` rewrites it, and a test fails when it is stale
or when a compiler lays a struct out otherwise than `layout` says). The generator writes every struct
value with designated initializers from the same field names, and counts its bytes from `layout`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Sequence

from tinyedge.paths import FIRMWARE_DIR

HEADER = FIRMWARE_DIR / "aot" / "te_params.h"


@dataclass(frozen=True)
class Field:
    c_type: str
    name: str
    count: int = 1      # > 1: an array of `count`


@dataclass(frozen=True)
class Struct:
    name: str
    doc: str
    fields: tuple[Field, ...]
    consts: tuple[str, ...] = ()     # fields that point at TE_CONST data

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


def _fields(c_type: str, names: str) -> tuple[Field, ...]:
    return tuple(Field(c_type, name) for name in names.split())


# The limits both sides rely on: the DSP kernels' largest filter height and tap pairs (te_dsp.c) and the
# most dimensions a broadcast or reduction keeps after merging (te_nonlinear.c).
TE_DIM_MAX = (1 << 15) - 1   # te_dim is int16_t
LIMITS: dict[str, int] = {"TE_DSP_MAX_K_H": 16, "TE_DSP_MAX_TAP_PAIRS": 16, "TE_NL_MAX_DIMS": 6}
# te_requant_t.per_channel's bits.
REQUANT_FLAGS: dict[str, int] = {"TE_REQUANT_PER_CHANNEL": 1, "TE_REQUANT_BOUNDED": 2}
# The batch matmul kernels' `consts` bits: which operands are TE_CONST arrays.
MATMUL_FLAGS: dict[str, int] = {"TE_MATMUL_LHS_CONST": 1, "TE_MATMUL_RHS_CONST": 2}

STRUCTS: tuple[Struct, ...] = (
    Struct("te_window_t", "The geometry shared by convolutions and pools (NHWC, batch 1).",
           _fields("te_dim", "in_h in_w in_c out_h out_w out_c k_h k_w")
           + _fields("int8_t", "stride_h stride_w dil_h dil_w pad_h pad_w")),
    Struct("te_requant_t", "Requantization of one op: per-channel tables (or one entry when bit 0 of `per_channel`\n"
                           " * is 0). Bit 1 (TE_REQUANT_BOUNDED, set only for te_dsp.c's kernels) says every accumulator\n"
                           " * times 2^left of its channel is below 2^30 in magnitude. input_offset: -input zero point.",
           (Field("const int32_t *", "multiplier"), Field("const int8_t *", "shift"), Field("uint8_t", "per_channel"),
            Field("int16_t", "input_offset"), Field("int16_t", "output_offset"), Field("int8_t", "act_min"),
            Field("int8_t", "act_max")), consts=("multiplier", "shift")),
    Struct("te_add_params_t", "ADD's rescalings (reference_integer_ops::AddFunc; te_nonlinear.c's te_add_s8, te_dsp.c's "
                              "te_dsp_add_s8).",
           _fields("int32_t", "a_offset a_multiplier a_shift b_offset b_multiplier b_shift left_shift out_multiplier "
                              "out_shift out_offset act_min act_max")),
    Struct("te_mul_params_t", "MUL's rescaling (reference_integer_ops::MulElementwise).",
           _fields("int32_t", "a_offset b_offset out_multiplier out_shift out_offset act_min act_max")),
    Struct("te_prelu_params_t", "PRELU's rescalings (reference_ops::BroadcastPrelu4DSlow): a is the input, b alpha.",
           _fields("int32_t", "a_offset b_offset out_offset multiplier_1 shift_1 multiplier_2 shift_2")),
    Struct("te_resize_bilinear_t", "RESIZE_BILINEAR's geometry (reference_ops::ResizeBilinearInteger; te_shape.c).",
           _fields("te_dim", "batches in_h in_w out_h out_w channels")),
    Struct("te_batch_matmul_t", "BATCH_MATMUL's geometry and rescaling (reference_ops::BatchMatMul; te_shape.c): out[b][m][n]\n"
                                " * = sum over k of (lhs[m*lhs_row_stride + k*lhs_depth_stride] + lhs_offset) *\n"
                                " * (rhs[k*rhs_depth_stride + n*rhs_col_stride] + rhs_offset), requantized.",
           _fields("int32_t", "batches rows cols depth lhs_row_stride lhs_depth_stride rhs_depth_stride rhs_col_stride "
                              "lhs_offset rhs_offset out_offset multiplier shift")),
    Struct("te_svdf_params_t", "SVDF's geometry and rescalings (PrepareSvdf).",
           _fields("int32_t", "n_input n_filter n_memory rank input_zp state_zp output_zp multiplier_1 shift_1 "
                              "multiplier_2 shift_2")),
    Struct("te_lstm_gate_t", "One LSTM gate's two FCs' rescalings: from the input and from the hidden state.",
           _fields("int32_t", "input_multiplier input_shift recurrent_multiplier recurrent_shift")),
    Struct("te_lstm_params_t", "UNIDIRECTIONAL_SEQUENCE_LSTM's geometry and rescalings (PrepareGateParametersInteger):\n"
                               " * offsets folded into the biases, gates input, forget, cell, output; cell clip 0: none.",
           _fields("int32_t", "steps n_input n_state input_offset hidden_offset")
           + (Field("te_lstm_gate_t", "gate", 4),)
           + _fields("int32_t", "forget_mul_multiplier forget_mul_shift input_mul_multiplier input_mul_shift "
                                "output_mul_multiplier output_mul_shift hidden_zero_point quantized_cell_clip "
                                "cell_tanh_multiplier cell_tanh_right_shift cell_gate_is_sigmoid")),
    Struct("te_rfft_params_t", "SignalRfft's geometry (te_signal.c): frames of input_length samples, zero-padded to\n"
                               " * fft_length, each to output_bins complex bins.",
           _fields("int32_t", "fft_length input_length frames output_bins")),
    Struct("te_irfft_params_t", "SignalIrfft's geometry (te_signal.c): frames of input_bins complex bins to\n"
                                " * output_length samples each.",
           _fields("int32_t", "fft_length input_bins frames output_length")),
    Struct("te_spectral_subtraction_params_t", "SignalFilterBankSpectralSubtraction's options (its flexbuffer, read "
                                               "at generation time).",
           _fields("int32_t", "num_channels smoothing one_minus_smoothing min_signal_remaining alternate_smoothing "
                              "alternate_one_minus_smoothing smoothing_bits spectral_subtraction_bits clamping")),
)
STRUCTS_BY_NAME: dict[str, Struct] = {s.name: s for s in STRUCTS}


@dataclass(frozen=True)
class Abi:
    """How a compiler lays a struct out: pointer bytes and the largest alignment of a scalar."""
    name: str
    pointer_bytes: int
    max_align: int


ABI_32 = Abi("32-bit (Arm, RISC-V, Xtensa)", 4, 4)
ABI_AVR = Abi("AVR", 2, 1)
ABI_HOST = Abi("64-bit host", 8, 8)
SCALAR_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "te_dim": 2, "int32_t": 4, "uint32_t": 4,
                "int64_t": 8, "float": 4}


def _size_align(c_type: str, abi: Abi) -> tuple[int, int]:
    if c_type.endswith("*"):
        return abi.pointer_bytes, min(abi.pointer_bytes, abi.max_align)
    if c_type in STRUCTS_BY_NAME:
        offsets, size, align = layout(STRUCTS_BY_NAME[c_type], abi)
        return size, align
    size = SCALAR_BYTES[c_type]
    return size, min(size, abi.max_align)


def layout(struct: Struct, abi: Abi = ABI_32) -> tuple[dict[str, int], int, int]:
    """(offset of each field, sizeof, alignment) as C compilers lay the struct out on `abi`."""
    offsets, at, align = {}, 0, 1
    for f in struct.fields:
        size, field_align = _size_align(f.c_type, abi)
        at = -(-at // field_align) * field_align
        offsets[f.name] = at
        at += size * f.count
        align = max(align, field_align)
    return offsets, -(-at // align) * align, align


def c_sizeof(c_type: str, abi: Abi = ABI_32) -> int:
    return _size_align(c_type, abi)[0]


INTEGER_RANGES = {"int8_t": (-(1 << 7), (1 << 7) - 1), "uint8_t": (0, (1 << 8) - 1), "int16_t": (-(1 << 15), TE_DIM_MAX),
                  "te_dim": (-(1 << 15), TE_DIM_MAX), "uint16_t": (0, (1 << 16) - 1),
                  "int32_t": (-(1 << 31), (1 << 31) - 1), "uint32_t": (0, (1 << 32) - 1),
                  "int64_t": (-(1 << 63), (1 << 63) - 1)}


class DoesNotFit(ValueError):
    """A value the generator would write into a C integer type too small for it."""


def check_fits(c_type: str, value: object, where: str) -> None:
    """Refuse to write an integer into a C type that cannot hold it (C would truncate it silently)."""
    bounds = INTEGER_RANGES.get(c_type)
    if bounds is not None and isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
        raise DoesNotFit(f"{where} is {value:,}, beyond the {c_type} the AOT kernels hold it in "
                         f"({bounds[0]:,} to {bounds[1]:,})")


def designated(struct_name: str, values: Sequence) -> str:
    """A struct value as a C99 designated initializer, e.g. {.in_h = 8, ...}; a field that is an array
    of structs takes a tuple of tuples."""
    struct = STRUCTS_BY_NAME[struct_name]
    if len(values) != len(struct.fields):
        raise ValueError(f"{struct_name} has {len(struct.fields)} fields, given {len(values)} values")
    parts = []
    for f, value in zip(struct.fields, values):
        if f.count > 1:
            inner = ", ".join(designated(f.c_type, v) if f.c_type in STRUCTS_BY_NAME else str(v) for v in value)
            parts.append(f".{f.name} = {{{inner}}}")
        else:
            check_fits(f.c_type, value, f"{struct_name}.{f.name}")
            parts.append(f".{f.name} = {value}")
    return "{" + ", ".join(parts) + "}"


def render_header() -> str:
    lines = ["/* Generated from tinyedge/ops/cstructs.py (python -m tinyedge.ops.cstructs): do not edit.",
             " * The AOT kernels' parameter structs and limits: the generator fills these structs with designated",
             " * initializers and counts their bytes from the same spec (tests/test_aot_params.py compiles them). */",
             "#ifndef TE_PARAMS_H", "#define TE_PARAMS_H", "", "#include <stdint.h>", "",
             "typedef int16_t te_dim;", ""]
    lines += [f"#define {name} {value}" for name, value in {**LIMITS, **REQUANT_FLAGS, **MATMUL_FLAGS}.items()]
    for struct in STRUCTS:
        lines += ["", f"/* {struct.doc} */", "typedef struct {"]
        for f in struct.fields:
            star = f.c_type.endswith("*")
            declared = f"{f.c_type}{f.name}" if star else f"{f.c_type} {f.name}"
            suffix = f"[{f.count}]" if f.count > 1 else ""
            note = "  /* TE_CONST */" if f.name in struct.consts else ""
            lines.append(f"  {declared}{suffix};{note}")
        lines.append(f"}} {struct.name};")
    return "\n".join(lines + ["", "#endif", ""])


def main() -> int:
    HEADER.write_text(render_header())
    print(f"wrote {HEADER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
