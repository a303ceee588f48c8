"""The TFLM runtime end to end on the host and the emulated Cortex-M4: the TFLM engineer's cached
library linked into each board's real build, answering bit for bit like tflite-micro's interpreter.
Needs a TFLM tree (TINYEDGE_TFLM_DIR); the first build per toolchain compiles TFLM (minutes), later
ones reuse the cached objects."""

from __future__ import annotations

import os

import pytest

from conftest import require_tools, tflm_tree
from pipeline_support import assert_device_matches_reference, children_of, wait_gone
from tinyedge.build import build
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.project import Project

pytestmark = [
    pytest.mark.tflm,
    pytest.mark.skipif(tflm_tree() is None, reason="needs a TFLM tree: set TINYEDGE_TFLM_DIR (e.g. /work/tflm-tree)"),
]

BOARDS = {
    "host": ("cc", "c++", "make"),
    "qemu-cortex-m4": ("arm-none-eabi-gcc", "arm-none-eabi-g++", "make", "qemu-system-arm"),
}


@pytest.mark.parametrize("board_id", list(BOARDS))
def test_tflm_firmware_answers_like_tflite_micro(sine_model, tmp_path, board_id):
    require_tools(*BOARDS[board_id])
    out = tmp_path / "fw"
    project = generate(sine_model.int8, board_id, out)   # a configured tree makes tflm the default
    assert project.runtime == "tflm"
    result = build(out)
    project = Project.load(out)
    assert project.elf_path == result.elf
    assert (out / "tflm.mk").read_text().count("TFLM_LIB := ") == 1
    with flash(out) as url:
        emulators = children_of(os.getpid())
        check = assert_device_matches_reference(url, sine_model.int8, board_id, "tflm", count=256)
        assert 0 < check["info"].arena_used <= project.arena_bytes
    assert wait_gone(emulators) == []


def test_a_small_cnn_runs_bit_exact_in_tflm_on_qemu(cnn_model, tmp_path):
    import numpy as np

    from pipeline_support import quantized_inputs

    require_tools(*BOARDS["qemu-cortex-m4"])
    out = tmp_path / "cnn"
    generate(cnn_model.int8, "qemu-cortex-m4", out, runtime="tflm")
    build(out)
    inputs = quantized_inputs(cnn_model.int8, np.load(cnn_model.eval_x)[:12])
    with flash(out) as url:
        assert_device_matches_reference(url, cnn_model.int8, "qemu-cortex-m4", "tflm", count=0, inputs=inputs)
