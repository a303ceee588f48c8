"""The AOT kernels' parameter structs are one spec (tinyedge/ops/cstructs.py): te_params.h is its
rendering, every compiler the boards use lays each struct out as the spec says (sizes and offsets), and
the generated te_model.c names every field it fills."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tinyedge.ops import cstructs
from tinyedge.paths import FIRMWARE_DIR

COMPILERS = {
    "cc": (["cc"], cstructs.ABI_HOST),
    "arm-none-eabi-gcc": (["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb"], cstructs.ABI_32),
    "avr-gcc": (["avr-gcc", "-mmcu=atmega328p"], cstructs.ABI_AVR),
}


def test_te_params_h_is_the_specs_rendering():
    assert cstructs.HEADER.read_text() == cstructs.render_header(), "run `python -m tinyedge.ops.cstructs`"


def layout_checks(abi: cstructs.Abi) -> str:
    """C11 static assertions of every struct's size and field offsets on `abi`."""
    lines = ['#include <stddef.h>', '#include "te_params.h"']
    for struct in cstructs.STRUCTS:
        offsets, size, _ = cstructs.layout(struct, abi)
        lines.append(f'_Static_assert(sizeof({struct.name}) == {size}, "sizeof {struct.name}");')
        lines += [f'_Static_assert(offsetof({struct.name}, {name}) == {at}, "{struct.name}.{name}");'
                  for name, at in offsets.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("compiler", sorted(COMPILERS))
def test_every_struct_has_the_specs_layout(compiler, tmp_path: Path):
    command, abi = COMPILERS[compiler]
    if shutil.which(command[0]) is None:
        pytest.skip(f"needs {command[0]} on PATH (installed by the README's set-up command)")
    source = tmp_path / "layout.c"
    source.write_text(layout_checks(abi))
    result = subprocess.run([*command, "-std=c11", "-fsyntax-only", "-I", str(FIRMWARE_DIR / "aot"), str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_struct_values_are_designated_and_checked_against_the_spec():
    window = cstructs.designated("te_window_t", tuple(range(14)))
    assert window.startswith("{.in_h = 0, .in_w = 1") and window.endswith(".pad_w = 13}")
    lstm = cstructs.designated("te_lstm_params_t", (1, 2, 3, 4, 5, ((1, 2, 3, 4),) * 4, *range(11)))
    assert ".gate = {{.input_multiplier = 1, .input_shift = 2" in lstm
    with pytest.raises(ValueError, match="te_window_t has 14 fields, given 13"):
        cstructs.designated("te_window_t", tuple(range(13)))
