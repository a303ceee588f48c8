"""The real, trained models of ../shared/models/real/ (MLPerf Tiny and TFLM's examples) deployed end
to end on the emulated boards they fit, with their shipped real inputs, the way a user runs them:
`tinyedge deploy MODEL --board B --runtime R --data X.npy [--labels L.npy] --json OUT`. Every output
must equal tflite-micro's byte for byte, and where the folder's README gives labels every input must
be classified as labelled. Models without shipped inputs get random ones.

The AOT runs need no TFLM tree; the TFLM ones need TINYEDGE_TFLM_DIR (a reference-kernel tree) and
the CMSIS-NN ones TINYEDGE_TFLM_CMSIS_DIR (a tree made with OPTIMIZED_KERNEL_DIR=cmsis_nn).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import REAL_MODELS, require_tools, requires_tflm, run_tinyedge, tflm_tree
from tinyedge.tflite_model import load_tflite

# Beside the checkout (a clone's ../shared); a git worktree one level deeper finds it one level up.
REAL = REAL_MODELS
INPUTS = REAL / "inputs"
CMSIS_TREE = os.environ.get("TINYEDGE_TFLM_CMSIS_DIR")

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"the real models are not here ({REAL} is absent)")

TOOLS = {
    "host": ("cc", "c++", "make"),
    "qemu-cortex-m4": ("arm-none-eabi-gcc", "arm-none-eabi-g++", "make", "qemu-system-arm"),
    "arduino-uno": ("avr-gcc", "make", "simavr", "avrdude"),
    "qemu-riscv32": ("riscv64-unknown-elf-gcc", "make", "qemu-system-riscv32"),
}
# Every model the AOT compiles fits the host, the emulated Cortex-M4 (where its DSP kernels run) and the
# emulated RV32IMAC (portable C kernels); two fit the Uno's 2 KiB of RAM and 32 KiB of flash (the LSTM
# takes about 1 s an inference there).
AOT_MODELS = ("hello_world_int8", "micro_speech_quantized", "person_detect", "kws_ref_model", "vww_96_int8",
              "pretrainedResnet_quant", "pretrainedResnet_large_int8", "ad01_int8", "str_ww_ref_model",
              "trained_lstm_int8", "keyword_scrambled_8bit")
AOT_CASES = [
    *[("host", stem) for stem in AOT_MODELS],
    *[("qemu-cortex-m4", stem) for stem in AOT_MODELS],
    *[("qemu-riscv32", stem) for stem in AOT_MODELS],
    ("arduino-uno", "hello_world_int8"),
    ("arduino-uno", "trained_lstm_int8"),
]
TFLM_HOST_MODELS = ("hello_world_int8", "micro_speech_quantized", "person_detect", "kws_ref_model",
                    "ad01_int8", "trained_lstm_int8")


def model_path(stem: str) -> Path:
    return REAL / f"{stem}.tflite"


def shipped_inputs(stem: str, tmp_path: Path) -> tuple[Path, Path | None]:
    """The model's real inputs (and labels) from inputs/, else 3 random inputs written to tmp_path."""
    real = sorted(p for p in INPUTS.glob(f"{stem}_real*.npy") if not p.stem.endswith("_labels"))
    if real:
        labels = real[0].with_name(f"{real[0].stem}_labels.npy")
        return real[0], labels if labels.is_file() else None
    tensor = load_tflite(model_path(stem)).input_tensors[0]
    info = np.iinfo(tensor.dtype)
    data = np.random.default_rng(3).integers(info.min, info.max, size=(3, *tensor.shape[1:]), dtype=tensor.dtype,
                                             endpoint=True)
    path = tmp_path / f"{stem}_random.npy"
    np.save(path, data)
    return path, None


def deploy(stem: str, board: str, runtime: str, tmp_path: Path, env: dict | None = None) -> dict:
    data, labels = shipped_inputs(stem, tmp_path)
    report = tmp_path / "report.json"
    args = ["deploy", model_path(stem), "--board", board, "--runtime", runtime, "--data", data,
            "-o", tmp_path / "out", "--json", report]
    if labels is not None:
        args += ["--labels", labels]
    result = run_tinyedge(*args, env=env, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(report.read_text())
    assert found["bit_exact"] == 1.0 and found["max_abs_diff_lsb"] == 0
    assert found["samples"] == len(np.load(data))
    if labels is not None:
        assert found["accuracy"]["board"] == 1.0, f"{stem} misclassified a labelled input: {found['accuracy']}"
    return found


def require_aot_ops(stem: str) -> None:
    from tinyedge.aot.ops import unsupported_ops

    missing = unsupported_ops(load_tflite(model_path(stem)))
    if missing:
        pytest.skip(f"the AOT runtime does not compile {', '.join(missing)} yet")


@pytest.mark.parametrize(("board", "stem"), AOT_CASES, ids=[f"{b}-{s}" for b, s in AOT_CASES])
def test_real_model_runs_bit_exact_on_the_aot_runtime(board, stem, tmp_path):
    require_tools(*TOOLS[board])
    require_aot_ops(stem)
    found = deploy(stem, board, "aot", tmp_path)
    assert found["runtime"] == "aot" and found["board"] == board


@requires_tflm
@pytest.mark.parametrize("stem", TFLM_HOST_MODELS)
def test_real_model_runs_bit_exact_on_tflm_on_the_host(stem, tmp_path):
    require_tools(*TOOLS["host"])
    found = deploy(stem, "host", "tflm", tmp_path, env={"TINYEDGE_TFLM_DIR": str(tflm_tree())})
    assert found["runtime"] == "tflm"


@requires_tflm
def test_a_depthwise_model_without_conv_links_on_tflm_for_cortex_m4(tmp_path):
    """micro_speech has DEPTHWISE_CONV_2D but no CONV_2D; its kernel needs conv_common all the same."""
    require_tools(*TOOLS["qemu-cortex-m4"])
    deploy("micro_speech_quantized", "qemu-cortex-m4", "tflm", tmp_path, env={"TINYEDGE_TFLM_DIR": str(tflm_tree())})


requires_cmsis_tree = pytest.mark.skipif(
    not CMSIS_TREE, reason="needs a CMSIS-NN TFLM tree: set TINYEDGE_TFLM_CMSIS_DIR to a tree made with "
    "create_tflm_tree.py --makefile_options=\"TARGET=cortex_m_generic TARGET_ARCH=cortex-m4 OPTIMIZED_KERNEL_DIR=cmsis_nn\"")


@requires_cmsis_tree
@pytest.mark.parametrize("stem", ["micro_speech_quantized", "person_detect"])
def test_tflm_with_cmsis_nn_runs_real_models_bit_exact_on_cortex_m4(stem, tmp_path):
    require_tools(*TOOLS["qemu-cortex-m4"])
    found = deploy(stem, "qemu-cortex-m4", "tflm", tmp_path, env={"TINYEDGE_TFLM_DIR": CMSIS_TREE})
    assert found["runtime_version"].endswith("+cmsis-nn")
    assert found["tolerance_lsb"] == 0
    ops = (tmp_path / "out" / "firmware" / "te_tflm_ops.cc").read_text()
    assert "Register_DEPTHWISE_CONV_2D_INT8()" in ops and "Register_SOFTMAX_INT8()" in ops


@requires_cmsis_tree
def test_a_cmsis_nn_tree_is_refused_for_the_host_board(tmp_path):
    result = run_tinyedge("generate", model_path("hello_world_int8"), "--board", "host", "--runtime", "tflm",
                          "-o", tmp_path / "out", env={"TINYEDGE_TFLM_DIR": CMSIS_TREE})
    assert result.returncode == 1
    assert "Cortex-M only" in result.stderr and "reference-kernel tree" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_lstm_model_computes_in_int8_despite_its_empty_float_intermediates():
    model = load_tflite(model_path("trained_lstm_int8"))
    empty_floats = [t for t in model.tensors if t.type_name == "FLOAT32"]
    assert len(empty_floats) == 4 and all(t.size == 0 for t in empty_floats)
    assert model.float_inside_problems() == [] and model.is_full_int8()
