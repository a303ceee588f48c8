"""The Cortex-M0+ kernel path (armv6-m: the RP2040): the compiled program's convolution, depthwise and
fully-connected calls retargeted to firmware/aot/te_m0plus.c's kernels, which take the same arguments as
te_kernels.c's and give the same bits (see te_m0plus.h). The generator's lowering is unchanged: this is
one pass over the generated C (which also word-aligns the int8 weight tables), applied by the aot
runtime for armv6-m boards."""

from __future__ import annotations

import re
from dataclasses import replace

from tinyedge.aot.compiler import AotProgram

M0PLUS_FILES = ("te_m0plus.h", "te_m0plus.c")
M0PLUS_ARCHITECTURES = frozenset({"armv6-m"})
RETARGETED = ("conv2d", "conv2d_inplace", "depthwise_conv2d", "depthwise_conv2d_inplace",
              "pointwise_conv2d_inplace", "fully_connected")
_CALL = re.compile(r"\bte_(" + "|".join(RETARGETED) + r")\(")
_KERNELS_INCLUDE = '#include "te_kernels.h"'
# int8 constant arrays (the weights) word-aligned, so te_m0plus.c reads them four at a time.
_INT8_TABLE = re.compile(r"^(static const int8_t \w+\[\d+\]) TE_CONST =", re.MULTILINE)


def retarget(text: str) -> str:
    return _CALL.sub(r"te_m0_\1(", text)


def use_m0plus_kernels(program: AotProgram) -> AotProgram:
    """The same program calling te_m0plus.c's kernels (and including their header)."""
    source = _INT8_TABLE.sub(r"\1 TE_CONST __attribute__((aligned(4))) =", retarget(program.source))
    if _CALL.search(program.source) and _KERNELS_INCLUDE in source:
        source = source.replace(_KERNELS_INCLUDE, f'{_KERNELS_INCLUDE}\n#include "te_m0plus.h"', 1)
    return replace(program, source=source, op_lines=[retarget(line) for line in program.op_lines])


def uses_m0plus_kernels(program: AotProgram) -> bool:
    return '#include "te_m0plus.h"' in program.source
