"""A TFLM tree made with OPTIMIZED_KERNEL_DIR=cmsis_nn (TINYEDGE_TFLM_CMSIS_DIR): recognised as such by
doctor, its optimized kernels and CMSIS-NN picked, built the way TFLM's own Makefile builds them.
The end-to-end runs are in test_real_models.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_tinyedge
from tinyedge import tflm_tree as tflm

CMSIS_TREE = os.environ.get("TINYEDGE_TFLM_CMSIS_DIR")

pytestmark = pytest.mark.skipif(
    not CMSIS_TREE, reason="needs a CMSIS-NN TFLM tree: set TINYEDGE_TFLM_CMSIS_DIR to a tree made with "
    "create_tflm_tree.py --makefile_options=\"TARGET=cortex_m_generic TARGET_ARCH=cortex-m4 OPTIMIZED_KERNEL_DIR=cmsis_nn\"")

M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os"]


def tree() -> Path:
    return tflm.require_tflm_tree(Path(CMSIS_TREE))


def test_doctor_says_the_tree_has_cmsis_nn_kernels_for_cortex_m_only():
    result = run_tinyedge("doctor", "--json", env={"TINYEDGE_TFLM_DIR": CMSIS_TREE})
    status = json.loads(result.stdout)["tflm"]
    assert status["valid"] and status["kernels"] == "cmsis-nn"
    assert "Cortex-M" in status["message"]


def test_optimized_kernels_replace_the_reference_ones_and_cmsis_nn_comes_along():
    sources = tflm.library_sources(tree(), ["CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE"])
    names = {str(p) for p in sources}
    assert "tensorflow/lite/micro/kernels/cmsis_nn/conv.cc" in names
    assert "tensorflow/lite/micro/kernels/cmsis_nn/depthwise_conv.cc" in names
    assert "tensorflow/lite/micro/kernels/conv.cc" not in names
    assert {"tensorflow/lite/micro/kernels/conv_common.cc", "tensorflow/lite/micro/kernels/reshape.cc",
            "tensorflow/lite/micro/cortex_m_generic/debug_log.cc"} <= names
    cmsis_nn = [p for p in sources if p.parts[:2] == ("third_party", "cmsis_nn")]
    assert len(cmsis_nn) > 100 and not [p for p in cmsis_nn if p.name.endswith(("_f16.c", "_f32.c"))]


def test_kernels_compile_at_o2_the_core_at_the_boards_flags_all_with_cmsis_nn_defines(tmp_path):
    root = tree()

    def command(source: str) -> list[str]:
        return tflm._compile_command(root, Path(source), tmp_path / "x.o", "arm-none-eabi-gcc", "arm-none-eabi-g++",
                                     M4, M4)

    kernel = command("tensorflow/lite/micro/kernels/cmsis_nn/conv.cc")
    library = command("third_party/cmsis_nn/Source/ConvolutionFunctions/arm_convolve_s8.c")
    core = command("tensorflow/lite/micro/micro_interpreter.cc")
    assert "-O2" in kernel and "-Os" not in kernel and "-O2" in library
    assert "-Os" in core and "-O2" not in core
    for cmd in (kernel, core):
        assert {"-DCMSIS_NN", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0"} <= set(cmd)
        assert f"-I{root / 'third_party/cmsis/CMSIS/Core/Include'}" in cmd
    assert "CMSIS_NN" in tflm.library_defines(root)
