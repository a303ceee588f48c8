"""The typed results of an op module's `prepare(model, op)`: what the op computes, decided once at
generation time, for the AOT C emitter (tinyedge.aot.opdata) and the viper emitter to render.

- `LutData`: an int8 -> int8 op whose output depends on the input byte alone, as its 256-entry table.
- `BroadcastData`: a binary elementwise op over a broadcast walk (tinyedge.aot.nonlinear's geometry).
- `PadData`: a 4-D constant pad.
- `TransposeConvData`: TRANSPOSE_CONV's geometry (te_window_t's fields, the output as the window's
  output) and requantization.
- `RowGatherData`: a layout op that copies whole rows (runs of bytes) of its input, in any order
  (resizing, gathering, depth/space rearrangements).
- `GatherData`: a layout op that walks its output in order and reads its input at an offset plus
  strides (slices, permutations), in 4 dimensions.
- `CallData`: one kernel call over the op's tensors, its own constant arrays and options struct (the
  signal-library ops and the integer glue around them, te_signal.c).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LutData:
    table: tuple[int, ...]       # out = table[in + 128]


@dataclass(frozen=True)
class BroadcastData:
    kernel: str                  # the kernel's name without its runtime's prefix, e.g. "sub_s8"
    geometry: tuple[int, ...]    # {ndim, sizes, a_strides, b_strides}
    params_type: str = ""        # a struct of tinyedge.ops.cstructs, or "" for none
    params: tuple[int, ...] = ()
    flag: int = 0                # one extra small argument (MAXIMUM: 1, MINIMUM: 0)


@dataclass(frozen=True)
class GatherData:
    out_dims: tuple[int, int, int, int]
    in_strides: tuple[int, int, int, int]   # input elements per step of each output dimension (may be negative)
    in_offset: int                          # input elements before the first one read


@dataclass(frozen=True)
class PadData:
    in_dims: tuple[int, int, int, int]
    out_dims: tuple[int, int, int, int]
    before: tuple[int, int, int, int]       # leading padding per dimension
    value: int


@dataclass(frozen=True)
class RowGatherData:
    rows: tuple[int, ...]       # output row i is input row rows[i]
    row_bytes: int


@dataclass(frozen=True)
class TransposeConvData:
    window: tuple[int, ...]                  # te_window_t's fields
    multipliers: tuple[tuple[int, int], ...]
    input_offset: int
    output_offset: int
    activation_range: tuple[int, int]


@dataclass(frozen=True)
class ConstArray:
    c_type: str
    name: str                    # without the op's prefix
    values: tuple[int, ...]


@dataclass(frozen=True)
class CallData:
    """`kernel(args)`: each arg is an integer or C text in which {inK}/{outK} stand for the op's K-th
    input/output tensor and {p} for the op's prefix of its `arrays` and `params` (e.g. "&{p}params")."""
    kernel: str
    args: tuple[str | int, ...]
    arrays: tuple[ConstArray, ...] = ()
    params_type: str = ""        # a struct of tinyedge.ops.cstructs
    params_name: str = "params"
    params: tuple[int, ...] = ()
    scratch_bytes: int = 0
    kept_outputs: tuple[int, ...] = ()   # output positions whose bytes persist across invocations (state)
    state: tuple[str, int] = ("", 0)     # (C type, count): the op's own zero-reset state array, "{p}state"
    inplace_ok: bool = False


OpData = CallData | LutData | BroadcastData | GatherData | PadData | RowGatherData | TransposeConvData
