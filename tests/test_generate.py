"""`tinyedge generate`: every board profile renders a complete project, with the right manifest;
bad requests are refused before anything is built."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import pytest

from conftest import run_tinyedge, tflm_tree
from tinyedge.boards import load_boards
from tinyedge.errors import TinyedgeError
from tinyedge.plugins import FRAMEWORKS
from tinyedge.generate import generate
from tinyedge.project import Project
from tinyedge.tflite_model import load_tflite

MAKE_FRAMEWORKS = ("host", "baremetal", "avr")


def framework_available(name: str) -> bool:
    try:
        importlib.import_module(FRAMEWORKS[name].split(":")[0])
    except ImportError:
        return False
    return True


def board_cases() -> list:
    cases = []
    for board in load_boards().values():
        if "aot" not in board.runtimes:
            continue
        marks = [] if framework_available(board.framework) else [
            pytest.mark.skip(reason=f"the {board.framework} framework is not written yet")]
        cases.append(pytest.param(board.id, marks=marks, id=board.id))
    return cases


@pytest.mark.parametrize("board_id", board_cases())
def test_every_board_generates_an_aot_project(sine_model, tmp_path, board_id):
    board = load_boards()[board_id]
    model = load_tflite(sine_model.int8)
    project = generate(sine_model.int8, board_id, tmp_path / "fw", runtime="aot")

    loaded = Project.load(tmp_path / "fw")
    assert loaded.board_id == board_id and loaded.runtime == "aot"
    assert loaded.model_sha256 == model.sha256
    assert loaded.ops == ["FULLY_CONNECTED"]
    assert loaded.arena_bytes == project.arena_bytes > 0
    assert loaded.artifacts == {} and loaded.elf_path is None
    assert loaded.extra["framework"] == board.framework_for("aot")

    from tinyedge.frameworks import get_framework
    src = tmp_path / "fw" / get_framework(board.framework_for("aot")).source_dir
    info = (src / "model_info.c").read_text()
    assert f'"{board.image_id}"' in info   # a board that runs another's image reports that board
    assert ", ".join(f"0x{b:02x}" for b in bytes.fromhex(model.sha256)) in info
    assert f"{board.clock_hz}u" in info
    for header in ("tinyedge_port.h", "tinyedge_runtime.h", "tinyedge_model_info.h", "te_protocol.h"):
        assert (src / header).is_file(), header
    assert list((tmp_path / "fw").rglob("te_model.c"))
    assert [p for p in src.iterdir() if "port" in p.name and p.suffix in (".c", ".cpp")], "the board port is copied"
    if board.framework in MAKE_FRAMEWORKS:
        makefile = (tmp_path / "fw" / "Makefile").read_text()
        assert "aot/te_model.c" in makefile and "src/model_info.c" in makefile and "src/te_protocol.c" in makefile
        assert f"-DTE_BAUD={board.baud}u" in makefile


def test_qemu_project_has_startup_and_a_linker_script_from_the_profile(sine_model, tmp_path):
    generate(sine_model.int8, "qemu-cortex-m4", tmp_path / "fw", runtime="aot")
    linker = (tmp_path / "fw" / "link.ld").read_text()
    assert "ORIGIN = 0x00000000, LENGTH = 0x00400000" in linker
    assert "ORIGIN = 0x20000000, LENGTH = 0x00400000" in linker
    assert "__stack_size = 16384;" in linker
    makefile = (tmp_path / "fw" / "Makefile").read_text()
    for flag in ("-mcpu=cortex-m4", "-mfloat-abi=hard", "--specs=nano.specs", "--specs=nosys.specs",
                 "-nostartfiles", "-Wl,--gc-sections", "-ffunction-sections", "-Os", "-DTE_UART_BASE=0x40004000u"):
        assert flag in makefile, flag
    assert (tmp_path / "fw" / "src" / "startup_mps2.c").is_file()
    assert "CPACR" in (tmp_path / "fw" / "src" / "startup_mps2.c").read_text()


def test_uno_project_sets_clock_and_produces_a_hex(sine_model, tmp_path):
    generate(sine_model.int8, "arduino-uno", tmp_path / "fw")
    makefile = (tmp_path / "fw" / "Makefile").read_text()
    assert "-mmcu=atmega328p" in makefile and "-DF_CPU=16000000UL" in makefile
    assert "firmware.hex" in makefile and "-DTE_RX_BUFFER_BYTES=64" in makefile


def test_runtime_is_chosen_and_explained(sine_model, tmp_path, monkeypatch):
    monkeypatch.delenv("TINYEDGE_TFLM_DIR", raising=False)
    result = run_tinyedge("generate", sine_model.int8, "--board", "host", "-o", tmp_path / "a",
                          env={"TINYEDGE_TFLM_DIR": ""})
    assert result.returncode == 0, result.stderr
    assert "runtime: aot (no TFLM tree is configured" in result.stdout
    assert json.loads((tmp_path / "a" / "tinyedge.json").read_text())["runtime"] == "aot"


def test_tflm_on_the_uno_is_refused(sine_model, tmp_path):
    with pytest.raises(TinyedgeError, match="cannot run the tflm runtime: choose --runtime aot"):
        generate(sine_model.int8, "arduino-uno", tmp_path / "fw", runtime="tflm")
    assert not (tmp_path / "fw").exists()


def test_tflm_without_a_tree_is_refused(sine_model, tmp_path, monkeypatch):
    monkeypatch.delenv("TINYEDGE_TFLM_DIR", raising=False)
    with pytest.raises(TinyedgeError, match="TFLM"):
        generate(sine_model.int8, "qemu-cortex-m4", tmp_path / "fw", runtime="tflm", tflm_dir=tmp_path / "nowhere")
    assert not (tmp_path / "fw").exists()


@pytest.mark.skipif(tflm_tree() is None, reason="needs TINYEDGE_TFLM_DIR set to a TFLM tree")
@pytest.mark.parametrize("board_id", ["host", "qemu-cortex-m4"])
def test_tflm_project_is_generated_when_a_tree_is_configured(sine_model, tmp_path, board_id):
    project = generate(sine_model.int8, board_id, tmp_path / "fw")
    assert project.runtime == "tflm" and project.tflm_dir == str(tflm_tree().resolve())
    assert "te_tflm_runtime.cc" in (tmp_path / "fw" / "Makefile").read_text()


def dense_int8(out: Path, name: str, widths: list[int]) -> Path:
    import models
    from tinyedge.quantize import quantize_model

    k = models.keras()
    k.utils.set_random_seed(3)
    layers = [k.layers.Dense(w, activation="relu") for w in widths]
    model = k.Sequential([k.Input(shape=(1,)), *layers, k.layers.Dense(1)])
    model.save(out / f"{name}.keras")
    x, _ = models.sine_data(64)
    quantize_model(out / f"{name}.keras", x, out / f"{name}_int8.tflite")
    return out / f"{name}_int8.tflite"


@pytest.fixture(scope="session")
def too_big_for_uno(tmp_path_factory) -> dict[str, Path]:
    """Two models the Uno cannot hold: 1-170-170-1 (a 35 KB flatbuffer, more than the whole flash)
    and 1-1800-1 (only 11 KB, but its 1.8 KB activation does not fit 2 KiB of RAM beside the firmware)."""
    out = tmp_path_factory.mktemp("big")
    return {"flash": dense_int8(out, "deep", [170, 170]), "ram": dense_int8(out, "wide", [1800])}


@pytest.mark.parametrize("budget, expected", [
    ("flash", r"deep_int8.tflite is \d\d,\d\d\d bytes but the arduino-uno board has 32,256 bytes of flash"),
    ("ram", r"wide_int8.tflite does not fit the arduino-uno board's RAM: a 1,\d\d\d-byte arena \+ about 608 bytes "
            r"for the firmware = \d,\d\d\d > 2,048 bytes"),
])
def test_a_model_too_big_for_the_uno_is_refused_with_figures(too_big_for_uno, tmp_path, budget, expected):
    import re

    result = run_tinyedge("generate", too_big_for_uno[budget], "--board", "arduino-uno", "-o", tmp_path / "fw")
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert re.search(expected, message), message
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "fw").exists()


def test_a_model_bigger_than_flash_is_refused(tmp_path, sine_model):
    # The flash check compares the flatbuffer itself against the board's whole budget.
    from tinyedge.runtimes import check_model_fits_flash
    from tinyedge.boards import get_board

    model = load_tflite(sine_model.int8)
    board = get_board("arduino-uno")
    tiny = dataclasses.replace(board, flash_bytes=1000)
    with pytest.raises(TinyedgeError, match=r"3,\d\d\d bytes but the arduino-uno board has 1,000 bytes of flash"):
        check_model_fits_flash(model, tiny, "sine_int8.tflite")


def test_generating_into_a_foreign_directory_is_refused(sine_model, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = run_tinyedge("generate", sine_model.int8, "--board", "host", "-o", tmp_path)
    assert result.returncode == 1 and "not a tinyedge project" in result.stderr


def test_regenerating_leaves_unchanged_files_alone(sine_model, tmp_path):
    generate(sine_model.int8, "qemu-cortex-m4", tmp_path / "fw")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "fw" / "src").iterdir()}
    generate(sine_model.int8, "qemu-cortex-m4", tmp_path / "fw")
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "fw" / "src").iterdir()}
    assert before == after


def test_a_float_model_is_refused(tmp_path):
    import models
    import tensorflow as tf

    model = models.sine_mlp(epochs=1)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    (tmp_path / "float.tflite").write_bytes(converter.convert())
    result = run_tinyedge("generate", tmp_path / "float.tflite", "--board", "host", "-o", tmp_path / "fw")
    assert result.returncode == 1 and "computes in float" in result.stderr
    assert "tinyedge quantize" in result.stderr


def test_regenerating_for_another_board_leaves_no_stale_sources(sine_model, tmp_path):
    generate(sine_model.int8, "qemu-cortex-m4", tmp_path / "fw", runtime="aot")
    assert (tmp_path / "fw" / "src" / "startup_mps2.c").is_file()
    generate(sine_model.int8, "arduino-uno", tmp_path / "fw", runtime="aot")
    assert not (tmp_path / "fw" / "src" / "startup_mps2.c").exists()
    assert not (tmp_path / "fw" / "link.ld").exists()
    assert (tmp_path / "fw" / "src" / "port_avr.c").is_file()
    assert Project.load(tmp_path / "fw").board_id == "arduino-uno"
