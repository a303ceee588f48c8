"""ONNX LSTM/GRU graphs (as PyTorch's nn.LSTM/nn.GRU export them) reach the recurrent ops the AOT runs,
without PyTorch installed: tinyedge converts them itself (onnx2tf makes a WHILE loop or crashes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import onnx_models
from conftest import run_tinyedge

pytestmark = pytest.mark.slow

VARIANTS = {"lstm": {"op": "LSTM"}, "gru": {"op": "GRU"}, "gru_reset_after_product": {"op": "GRU", "linear_before_reset": 0}}


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_converted_float_model_computes_what_onnx_runtime_computes(variant, tmp_path):
    from tinyedge.onnx_import import OnnxModel

    model = OnnxModel(onnx_models.recurrent(tmp_path / "rnn.onnx", **VARIANTS[variant]))
    keras_model = model.keras_model
    for seed in range(3):
        x = np.random.default_rng(seed).normal(0, 1, model.input_shapes[0]).astype(np.float32)
        assert np.max(np.abs(np.asarray(keras_model(x)) - model.predict([x])[0])) < 1e-5


@pytest.mark.parametrize("variant", ["lstm", "gru"])
def test_an_onnx_rnn_with_external_data_deploys_bit_exact_with_the_aot_runtime(variant, tmp_path):
    model = onnx_models.with_external_data(onnx_models.recurrent(tmp_path / "rnn.onnx", **VARIANTS[variant]), "rnn.onnx.data")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).normal(0, 1, (40, 12, 6)).astype(np.float32))
    result = run_tinyedge("deploy", model, "--board", "host", "--runtime", "aot", "--calibration", tmp_path / "cal.npy",
                          "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0
    tflite = next((tmp_path / "out").glob("*.tflite"))
    from tinyedge.tflite_model import parse_tflite

    ops = parse_tflite(tflite.read_bytes(), name=str(tflite)).op_names()
    assert "WHILE" not in ops
    assert ("UNIDIRECTIONAL_SEQUENCE_LSTM" in ops) == (variant == "lstm")


def test_a_bidirectional_lstm_is_refused_in_one_sentence_and_nothing_is_written(tmp_path):
    model = onnx_models.recurrent(tmp_path / "rnn.onnx", op="LSTM", direction="bidirectional")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).normal(0, 1, (20, 12, 6)).astype(np.float32))
    result = run_tinyedge("quantize", model, "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "int8.tflite")
    message = " ".join(result.stderr.split())
    assert result.returncode == 1 and message.startswith("error:") and "Traceback" not in result.stderr
    assert "bidirectional" in message and "LSTM" in message
    assert not (tmp_path / "int8.tflite").exists()
