"""The contract between the AOT code generator and the per-op lowerings.

A lowering turns one operator into C: the constant tables its call reads (`Table`s: a C type, a name and
the values, read with the TE_RD_* macros of firmware/aot/te_pgm.h so they may live in PROGMEM) and the
statement that runs it. The compiler renders the tables and counts their bytes from that data.
`ptr(tensor_index)` gives the C expression for a tensor's data: a typed pointer into the arena for
activations, or the name of a TE_CONST array for constants. Every kernel takes its output first,
`te_kernel(out, in, ..., &params)`, and its generation-time parameters as one typed TE_CONST struct of
firmware/aot/*.h (te_window_t, te_requant_t, te_add_params_t, ...) by pointer; per-element data
(multipliers per channel, shapes, lookup tables) are arrays. An op that may run in place says so with
`inplace_ok` (in the compiler's first, probing pass every arena pointer is offset 0, so that answer must
come from the op's shape alone); in the second pass it runs in place when `ptr(output) == ptr(input)`,
and may then use the model's one `te_scratch` buffer, sized to the largest `scratch_bytes`;
`grows_in_place` lets an output larger than its input share it too; `views` names outputs that may be a
run of an input's bytes (no copy, planned inside the input's buffer). Table names start with
`op_prefix(op)` (`op{index}_`) so they never collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from tinyedge.errors import TinyedgeError
from tinyedge.ops.cstructs import REQUANT_FLAGS, c_sizeof, check_fits, designated
from tinyedge.tflite_model import Operator, TfliteModel

PointerOf = Callable[[int], str]

INT32_MIN = -(1 << 31)


def c_int(value: int) -> str:
    """An integer literal of any int32 value (C99 gives an unsuffixed literal the first type that holds it)."""
    value = int(value)
    return "(-2147483647 - 1)" if value == INT32_MIN else str(value)


def c_float(value: float) -> str:
    """An exact C99 hexadecimal literal for a float32 value, e.g. 0x1.813d8ap-6f."""
    mantissa, exponent = float(np.float32(value)).hex().split("p")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{mantissa}p{exponent}f"


def c_array(values: Sequence[int] | np.ndarray, per_line: int = 16) -> str:
    flat = [c_int(v) for v in np.asarray(values).ravel()]
    lines = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    return "{\n  " + ",\n  ".join(lines) + "\n}" if len(flat) > per_line else "{" + ", ".join(flat) + "}"


@dataclass(frozen=True)
class Table:
    """One constant table: the C array `c_type name[len(values)]`, or with `struct` one value of a
    struct type of tinyedge.ops.cstructs whose fields are `values` in its order (numbers, names of other
    tables, or tuples of them for a field that is an array of structs), written with designated
    initializers. `in_flash` tables
    are TE_CONST (PROGMEM on AVR); the others (arrays of pointers to tables) stay ordinary constants."""
    c_type: str
    name: str
    values: tuple[int | str, ...]
    struct: bool = False
    in_flash: bool = True
    per_line: int = 16
    comment: str = ""

    def __post_init__(self) -> None:
        if self.struct:
            designated(self.c_type, self.values)   # every field must fit its C type (raises DoesNotFit)

    @property
    def nbytes(self) -> int:
        """The TE_CONST bytes the table takes."""
        if not self.in_flash:
            return 0
        # The structs as the 32-bit targets lay them out.
        return c_sizeof(self.c_type) * (1 if self.struct else len(self.values))

    def render(self) -> str:
        placement = " TE_CONST" if self.in_flash else ""
        comment = f"/* {self.comment} */\n" if self.comment else ""
        if self.struct:
            return f"{comment}static const {self.c_type} {self.name}{placement} = {designated(self.c_type, self.values)};\n"
        body = c_array(self.values, self.per_line) if self.in_flash else "{" + ", ".join(map(str, self.values)) + "}"
        return f"{comment}static const {self.c_type} {self.name}[{max(len(self.values), 1)}]{placement} = {body};\n"


def table(c_type: str, name: str, values: Sequence[int] | np.ndarray, per_line: int = 16) -> Table:
    """A TE_CONST array of integers (each must fit `c_type`: C would truncate it silently)."""
    numbers = tuple(int(v) for v in np.asarray(values).ravel())
    for value in (min(numbers, default=0), max(numbers, default=0)):
        check_fits(c_type, value, f"a value of {name}")
    return Table(c_type, name, numbers, per_line=per_line)


def render_tables(tables: Sequence[Table]) -> str:
    return "".join(t.render() for t in tables)


def requant_tables(prefix: str, multipliers: Sequence[tuple[int, int]], input_offset: int, output_offset: int,
                   activation_range: tuple[int, int], bounded: bool = False) -> list[Table]:
    """te_requant_t `{prefix}q` and its multiplier and shift tables (one entry, or one per channel).
    `bounded` (TE_REQUANT_BOUNDED) says every accumulator of the op, shifted left by its channel's left
    shift, stays below 2^30 in magnitude."""
    per_channel = ((REQUANT_FLAGS["TE_REQUANT_PER_CHANNEL"] if len(multipliers) > 1 else 0)
                   | (REQUANT_FLAGS["TE_REQUANT_BOUNDED"] if bounded else 0))
    return [
        table("int32_t", f"{prefix}mult", [m for m, _ in multipliers]),
        table("int8_t", f"{prefix}shift", [s for _, s in multipliers]),
        Table("te_requant_t", f"{prefix}q", (f"{prefix}mult", f"{prefix}shift", per_channel, input_offset,
                                             output_offset, *activation_range), struct=True),
    ]


@dataclass(frozen=True)
class StateArray:
    """A static array an op keeps from call to call (outside the arena), zeroed by te_runtime_reset_state."""
    c_type: str
    name: str
    count: int

    @property
    def nbytes(self) -> int:
        return c_sizeof(self.c_type) * self.count


@dataclass
class Lowered:
    tables: list[Table] = field(default_factory=list)
    call: str = ""
    inplace_ok: bool = False   # the output may share the first input's memory
    scratch_bytes: int = 0     # bytes of the shared `te_scratch` buffer the call uses (an in-place kernel's)
    grows_in_place: bool = False   # with inplace_ok: also when the output is larger (the input at its start)
    streams_output: bool = False   # the output is consumed as it is made (fused into its one reader): no memory
    # (output position, input position, byte offset): outputs that may be a view of an input's bytes from
    # that offset (a split along its outermost axis); in the second pass the op then copies only what is
    # not (`viewed` says which copies the plan made views).
    views: tuple[tuple[int, int, int], ...] = ()
    kept_tensors: tuple[int, ...] = ()   # outputs that are the op's state: never reused, zeroed on reset
    state: "StateArray | None" = None    # the op's own state array (static RAM), zeroed on reset
    # A fused op (tinyedge.aot.residual): the input its output may share instead of the first, the
    # tensors its call reads beyond its own inputs, and the ops whose kernels its call runs.
    inplace_source: int | None = None
    reads: tuple[int, ...] = ()
    fused: tuple[str, ...] = ()

    @property
    def decls(self) -> str:
        """The tables as C declarations."""
        return render_tables(self.tables)


Lowering = Callable[[TfliteModel, Operator, PointerOf], Lowered]


def viewed(ptr: PointerOf, output: int, source: int, offset: int) -> bool:
    """The plan put tensor `output` at tensor `source`'s bytes from `offset` on (a view: nothing to copy)."""
    offsets = getattr(ptr, "offsets", {})
    return not getattr(ptr, "probing", True) and offsets.get(output) == offsets.get(source, -1) + offset


def uses_dsp(ptr: PointerOf) -> bool:
    """The target has the Arm DSP extension: lower to te_dsp.c's kernels (the compiler says so on `ptr`)."""
    return bool(getattr(ptr, "dsp", False))


def op_prefix(op: Operator) -> str:
    return f"op{op.index}_"


def unsupported(op: Operator, what: str) -> TinyedgeError:
    return TinyedgeError(f"{op.opcode} (operator {op.index}) {what}, which the AOT runtime does not compile: "
                         "build the model with `--runtime tflm` instead.")


def require(condition: bool, op: Operator, what: str) -> None:
    """Refuse the op, saying `what` it has that the AOT compiler does not support."""
    if not condition:
        raise unsupported(op, what)


def require_types(model: TfliteModel, op: Operator, types: dict[int, str]) -> None:
    """Refuse the op unless each tensor index has its type name (e.g. {op.inputs[0]: "INT8"})."""
    for tensor_index, type_name in types.items():
        t = model.tensors[tensor_index]
        if t.type_name != type_name:
            raise TinyedgeError(
                f"{op.opcode} (operator {op.index}) has a {t.type_name.lower()} tensor '{t.name}' where the AOT runtime "
                f"supports {type_name.lower()} only: quantize the model to full int8 or use the tflm runtime.")
