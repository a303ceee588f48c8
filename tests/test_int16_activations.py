"""16x8 quantization: `quantize --activations int16` makes TFLite's
EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 model (int16 activations and I/O, int8
weights); validate compares it in int16 LSB; a runtime without 16x8 kernels refuses it in one sentence
before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import models
from conftest import requires_tflm, run_tinyedge
from tinyedge.tflite_model import load_tflite


@pytest.fixture(scope="module")
def sine(tmp_path_factory) -> Path:
    """The sine MLP quantized both ways, with its calibration inputs."""
    folder = tmp_path_factory.mktemp("sixteen")
    models.sine_mlp(epochs=20).save(folder / "sine.keras")
    x, _ = models.sine_data(200, seed=2)
    np.save(folder / "x.npy", x)
    for activations in ("int8", "int16"):
        result = run_tinyedge("quantize", folder / "sine.keras", "--calibration", folder / "x.npy", "--activations",
                              activations, "-o", folder / f"sine_{activations}.tflite",
                              "--json", folder / f"{activations}.json")
        assert result.returncode == 0, result.stdout + result.stderr
    return folder


@pytest.mark.slow
def test_int16_activations_make_a_16x8_model_no_further_from_float_than_int8(sine):
    model = load_tflite(sine / "sine_int16.tflite")
    assert [t.type_name for t in model.input_tensors + model.output_tensors] == ["INT16", "INT16"]
    assert not model.float_inside_problems()
    weights = [model.tensors[op.inputs[1]] for op in model.operators if op.opcode == "FULLY_CONNECTED"]
    assert weights and all(t.type_name == "INT8" for t in weights), "16x8: the weights stay int8"
    int8, int16 = (json.loads((sine / f"{a}.json").read_text()) for a in ("int8", "int16"))
    assert int16["activations"] == "int16" and int8["activations"] == "int8"
    print(f"output RMSE vs float: int8 {int8['rmse']:.5f}, int16 {int16['rmse']:.5f}")
    assert int16["rmse"] < int8["rmse"], "the int8 weights are the same; the activations lose less"


@pytest.mark.slow
def test_a_runtime_without_16x8_kernels_refuses_the_model_before_writing_anything_or_runs_it_bit_exact(sine, tmp_path):
    """The AOT runtime's own check decides (its int16 kernels are its registry's): either the 16x8 model
    runs bit-exact in int16 LSB, or it is refused in one sentence and nothing is written."""
    out = tmp_path / "out"
    result = run_tinyedge("deploy", sine / "sine_int16.tflite", "--board", "host", "--runtime", "aot",
                          "--data", sine / "x.npy", "-o", out, "--json", tmp_path / "report.json")
    if result.returncode == 0:
        assert json.loads((tmp_path / "report.json").read_text())["bit_exact"] == 1.0
        return
    message = " ".join(result.stderr.split())
    assert result.returncode == 1 and message.startswith("error:") and "Traceback" not in result.stderr
    assert "AOT runtime" in message and "--runtime tflm" in message
    assert not out.exists() and not (tmp_path / "report.json").exists(), "nothing is written"


@pytest.mark.slow
@requires_tflm
def test_a_16x8_model_validates_bit_exact_in_int16_lsb_on_the_host_board_with_tflm(sine, tmp_path):
    result = run_tinyedge("deploy", sine / "sine_int16.tflite", "--board", "host", "--runtime", "tflm",
                          "--data", sine / "x.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json",
                          timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0 and report["samples"] == 200
    outputs = [json.loads(line)["output"][0] for line in (tmp_path / "out" / "validate.jsonl").read_text().splitlines()[1:]]
    assert max(abs(v) for v in outputs) > 1000, "the board answers int16 values, compared in int16 LSB"


def test_an_unknown_activation_type_is_refused_in_one_sentence(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 1), np.float32))
    result = run_tinyedge("quantize", tmp_path / "missing.keras", "--calibration", tmp_path / "x.npy",
                          "--activations", "int4", "-o", tmp_path / "o.tflite")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--activations must be int8 or int16 (TFLite's 16x8), not 'int4'" in " ".join(result.stderr.split())


@pytest.mark.slow
@pytest.mark.parametrize("board, runtime", [("micropython-unix", "viper"), ("qemu-cortex-m4", "aot")])
def test_generate_for_a_runtime_without_16x8_refuses_before_writing_anything(sine, tmp_path, board, runtime):
    result = run_tinyedge("generate", sine / "sine_int16.tflite", "--board", board, "--runtime", runtime,
                          "-o", tmp_path / "project")
    if result.returncode == 0:
        pytest.skip(f"the {runtime} runtime now runs this 16x8 model")
    message = " ".join(result.stderr.split())
    assert result.returncode == 1 and message.startswith("error:") and "Traceback" not in result.stderr
    assert "int16" in message or "non-int8" in message
    assert not (tmp_path / "project").exists(), "the runtime's check refuses before generate writes"
