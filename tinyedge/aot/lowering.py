"""The contract between the AOT code generator and the per-op lowerings.

A lowering turns one operator into C: file-scope declarations (constant tables, read with the
TE_RD_* macros of firmware/aot/te_pgm.h so they may live in PROGMEM) and the statements that run it.
`ptr(tensor_index)` gives the C expression for a tensor's data: a typed pointer into the arena for
activations, or the name of a TE_CONST array for constants. An op that may run in place says so with
`inplace_ok` (in the compiler's first, probing pass every arena pointer is offset 0, so that answer
must come from the op's shape alone); in the second pass it runs in place when `ptr(output) ==
ptr(input)`, and may then use the model's one `te_scratch` buffer, sized to the largest
`scratch_bytes`; `grows_in_place` lets an output larger than its input share it too. Identifiers in `decls` are prefixed with
`op{op.index}_` so they never collide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tinyedge.tflite_model import Operator, TfliteModel

PointerOf = Callable[[int], str]


@dataclass
class Lowered:
    decls: str = ""
    call: str = ""
    inplace_ok: bool = False   # the output may share the first input's memory
    scratch_bytes: int = 0     # bytes of the shared `te_scratch` buffer the call uses (an in-place kernel's)
    grows_in_place: bool = False   # with inplace_ok: also when the output is larger (the input at its start)
    streams_output: bool = False   # the output is consumed as it is made (fused into its one reader): no memory


Lowering = Callable[[TfliteModel, Operator, PointerOf], Lowered]
