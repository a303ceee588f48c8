"""The AOT compiler speaks one dialect: its lowerings hand over their constant tables as data, and the
constant bytes it reports are the bytes those tables take in the compiled te_model.c."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REAL_MODELS
from tinyedge.aot.compiler import compile_model
from tinyedge.tflite_model import load_tflite

REPO = Path(__file__).resolve().parent.parent
AOT_DIR = REPO / "tinyedge" / "firmware" / "aot"
COMMON_DIR = REPO / "tinyedge" / "firmware" / "common"
REAL = REAL_MODELS


def _real(stem: str):
    path = REAL / f"{stem}.tflite"
    if not path.is_file():
        pytest.skip(f"the real models are not in {REAL} (see the team's shared models README)")
    return load_tflite(path)


def _symbol_sizes(source: str, header: str, tmp_path: Path) -> dict[str, int]:
    """Bytes of every object te_model.c defines, as arm-none-eabi-gcc lays them out."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.fail("arm-none-eabi-gcc is not installed: install gcc-arm-none-eabi")
    (tmp_path / "te_model.c").write_text(source)
    (tmp_path / "te_model.h").write_text(header)
    obj = tmp_path / "te_model.o"
    subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-mcpu=cortex-m4", "-mthumb", "-O2", f"-I{AOT_DIR}",
                    f"-I{COMMON_DIR}", "-c", str(tmp_path / "te_model.c"), "-o", str(obj)], check=True)
    listing = subprocess.run(["arm-none-eabi-nm", "-S", str(obj)], check=True, capture_output=True, text=True).stdout
    return {parts[3]: int(parts[1], 16) for parts in (line.split() for line in listing.splitlines()) if len(parts) == 4}


@pytest.mark.parametrize("stem, dsp", [("kws_ref_model", False), ("kws_ref_model", True),
                                       ("trained_lstm_int8", True), ("keyword_scrambled_8bit", False)])
def test_constant_bytes_are_the_bytes_of_the_tables_in_the_compiled_model(stem: str, dsp: bool, tmp_path: Path):
    program = compile_model(_real(stem), dsp=dsp)
    compiled = _symbol_sizes(program.source, program.header, tmp_path)
    flash_tables = [t for t in program.tables if t.in_flash]
    assert flash_tables and {t.name: t.nbytes for t in flash_tables} == {t.name: compiled[t.name] for t in flash_tables}
    assert program.stats.constant_bytes == sum(t.nbytes for t in flash_tables)
    for t in program.tables:
        assert f" {t.name}[" in program.source or f" {t.name} TE_CONST" in program.source


def test_session_cnn_counts_its_windows_and_requantizations_as_compiled(cnn_model, tmp_path: Path):
    program = compile_model(load_tflite(cnn_model.int8))
    compiled = _symbol_sizes(program.source, program.header, tmp_path)
    structs = [t for t in program.tables if t.struct]
    assert {t.c_type for t in structs} == {"te_window_t", "te_requant_t"}
    assert all(compiled[t.name] == t.nbytes for t in structs)
    assert program.stats.constant_bytes == sum(compiled[t.name] for t in program.tables)


KERNEL_DECLARATION = re.compile(r"^void\s+(te_\w+)\s*\(([^)]*)\)\s*;", re.MULTILINE)
# What a kernel writes: its output, or the data it transforms in place (or a table of row pointers:
# te_row_pointers).
FIRST_PARAMETER = re.compile(r"^(?:(?:u?int(?:8|16|32|64)_t|float|void) \*(?:out|dst|data|fc_out)|const int8_t \*\*out)$")


def test_every_kernel_takes_its_output_first():
    declarations = [(header.name, name, " ".join(params.split()))
                    for header in sorted(AOT_DIR.glob("*.h"))
                    for name, params in KERNEL_DECLARATION.findall(header.read_text())]
    assert len(declarations) > 30 and {h for h, _, _ in declarations} >= {"te_kernels.h", "te_nonlinear.h",
                                                                             "te_recurrent.h", "te_dsp.h"}
    wrong = [f"{header}: {name}({params})" for header, name, params in declarations
             if not FIRST_PARAMETER.match(params.split(",")[0].strip())]
    assert wrong == []
