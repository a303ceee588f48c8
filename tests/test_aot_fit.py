"""The AOT runtime's fit check counts what really lives where: its constants (weights, biases,
per-op tables) in flash, its planned arena and scratch in RAM; `generate` and `inspect --board`
agree, and a refusal names the figures. (Issue 17: MobileNetV2 224 was refused on qemu-cortex-m4 as
"a 6,084,013-byte arena" — 2.45 MB of plan plus its 3.6 MB of weights.)"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from aot_harness import to_int8
from conftest import require_tools, run_tinyedge

BOARD = "qemu-cortex-m4"          # 4 MiB of flash, 4 MiB of RAM
NO_TFLM = {"TINYEDGE_TFLM_DIR": ""}   # the runtime generate and inspect choose is then aot


def _big_weights_modest_activations():
    """MobileNetV2 224's property in small: 3.3 MB of weights (fits the flash) beside a 1 MB input
    (fits the RAM), together more than the 4 MiB of RAM."""
    import tensorflow as tf

    inputs = tf.keras.Input((128, 128, 64))
    x = tf.keras.layers.AveragePooling2D(128)(inputs)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(2000, activation="relu")(x)
    x = tf.keras.layers.Dense(1600, activation="relu")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x))


@pytest.fixture(scope="module")
def big_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "big_weights.tflite"
    path.write_bytes(to_int8(_big_weights_modest_activations(), samples=4).data)
    return path


@pytest.mark.slow
def test_big_weights_beside_a_modest_arena_fit_and_inspect_agrees(big_weights, tmp_path):
    from tinyedge.aot.compiler import compile_model
    from tinyedge.frameworks.baremetal import FRAMEWORK
    from tinyedge.tflite_model import load_tflite

    stats = compile_model(load_tflite(big_weights), dsp=True).stats
    allowance = FRAMEWORK.allowance
    assert stats.constant_bytes > 3_000_000 and stats.arena_bytes < 1_200_000
    assert stats.constant_bytes + stats.arena_bytes + allowance.ram_bytes > 4 * 1024 * 1024, "the old sum overflows"

    generated = run_tinyedge("generate", big_weights, "--board", BOARD, "-o", tmp_path / "fw", env=NO_TFLM)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "runtime: aot" in generated.stdout

    inspected = run_tinyedge("inspect", big_weights, "--board", BOARD, "--json", env=NO_TFLM)
    assert inspected.returncode == 0, inspected.stderr
    fit = json.loads(inspected.stdout)["board_fit"]
    assert fit["runtime"] == "aot" and fit["fits"] is True
    assert fit["flash_needed"] == stats.constant_bytes + allowance.flash_bytes
    assert fit["ram_needed"] == stats.arena_bytes + stats.scratch_bytes + allowance.ram_bytes
    assert f"{stats.arena_bytes:,}-byte arena" in fit["basis"]


def test_a_board_with_a_tflm_tree_is_inspected_for_tflm_as_generate_would_build_it(sine_model, tmp_path):
    """Without a TFLM tree generate builds the AOT runtime, so inspect checks the AOT's fit; with one, TFLM's."""
    aot = json.loads(run_tinyedge("inspect", sine_model.int8, "--board", BOARD, "--json", env=NO_TFLM).stdout)
    assert aot["board_fit"]["runtime"] == "aot" and "AOT constants" in aot["board_fit"]["basis"]
    tflm = json.loads(run_tinyedge("inspect", sine_model.int8, "--board", BOARD, "--json",
                                   env={"TINYEDGE_TFLM_DIR": str(tmp_path)}).stdout)
    assert tflm["board_fit"]["runtime"] == "tflm"


def test_an_arena_too_big_for_the_ram_is_refused_with_its_figures(tmp_path):
    import tensorflow as tf

    inputs = tf.keras.Input((1200, 1200, 3))
    model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(2, 1)(inputs))
    path = tmp_path / "wide.tflite"
    path.write_bytes(to_int8(model, samples=2).data)
    result = run_tinyedge("generate", path, "--board", BOARD, "--runtime", "aot", "-o", tmp_path / "fw")
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert re.search(r"does not fit the qemu-cortex-m4 board's RAM: a [\d,]{9}-byte arena .* = [\d,]+ > 4,194,304 bytes",
                     message), message
    assert "bytes of constants stay in flash" in message
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_built_firmware_keeps_the_weights_in_flash(big_weights, tmp_path):
    """What the check assumes, measured on the ELF: RAM (data + bss) holds the arena, not the 3.3 MB of weights."""
    require_tools("arm-none-eabi-gcc")
    from tinyedge.aot.compiler import compile_model
    from tinyedge.project import Project
    from tinyedge.tflite_model import load_tflite

    stats = compile_model(load_tflite(big_weights), dsp=True).stats
    assert run_tinyedge("generate", big_weights, "--board", BOARD, "--runtime", "aot", "-o", tmp_path / "fw").returncode == 0
    built = run_tinyedge("build", tmp_path / "fw", timeout=1800)
    assert built.returncode == 0, built.stdout + built.stderr
    build = Project.load(tmp_path / "fw").extra["build"]
    assert build["flash_bytes"] > stats.constant_bytes
    assert stats.arena_bytes <= build["ram_bytes"] < stats.arena_bytes + stats.scratch_bytes + 64 * 1024


# ---------------------------------------------------------------- the README's other claims about the AOT runtime


def test_generate_says_it_picks_tflm_when_a_tflm_tree_is_configured_and_aot_otherwise(sine_model, tmp_path):
    aot = run_tinyedge("generate", sine_model.int8, "--board", BOARD, "-o", tmp_path / "aot", env=NO_TFLM)
    assert aot.returncode == 0, aot.stderr
    assert "runtime: aot (no TFLM tree is configured" in aot.stdout
    not_a_tree = tmp_path / "tree"
    not_a_tree.mkdir()
    tflm = run_tinyedge("generate", sine_model.int8, "--board", BOARD, "-o", tmp_path / "tflm",
                        env={"TINYEDGE_TFLM_DIR": str(not_a_tree)})
    assert "runtime: tflm (a TFLM tree is configured by TINYEDGE_TFLM_DIR" in tflm.stdout


def test_the_dsp_kernels_build_at_O2_and_the_rest_at_Os_with_no_malloc(sine_model, tmp_path):
    """README: te_dsp.c is compiled at -O2 while the rest stays -Os; one static arena, no malloc."""
    require_tools("make")
    fw = tmp_path / "fw"
    assert run_tinyedge("generate", sine_model.int8, "--board", BOARD, "--runtime", "aot", "-o", fw).returncode == 0
    commands = subprocess.run(["make", "-n"], cwd=fw, capture_output=True, text=True, check=True).stdout.splitlines()
    compile_of = {name: next(c for c in commands if f" -c aot/{name} " in c) for name in ("te_dsp.c", "te_kernels.c")}
    dsp_flags = compile_of["te_dsp.c"].split()
    assert dsp_flags.index("-O2") > dsp_flags.index("-Os"), "the last -O wins"
    assert "-O2" not in compile_of["te_kernels.c"].split() and "-Os" in compile_of["te_kernels.c"].split()
    for source in sorted((fw / "aot").glob("*.[ch]")):
        assert not re.search(r"\b(malloc|calloc|realloc|free)\s*\(", source.read_text()), source.name
