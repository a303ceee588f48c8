"""A PyTorch user's first contact: models exported with torch.onnx.export's default arguments (the
dynamo exporter, opset 18+, weights as external data) deploy to the host board with the AOT runtime
bit-exact, or are refused in one sentence naming the op; none fails for how it was saved."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

import torch_models
from conftest import run_tinyedge

from tinyedge.tflite_model import load_tflite

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnxscript") is None,
                       reason="needs PyTorch and onnxscript (torch.onnx.export's default exporter): "
                              "pip install torch onnxscript (not in install.sh: the wheel is GBs)"),
]

# The models a runtime (or onnx2tf) may still refuse, and the ops one of which the refusal must name.
MAY_BE_REFUSED = {"keyword_conv1d": ("CONV_2D",), "grouped_hardswish_cnn": ("CONV_2D", "HARD_SWISH")}


@pytest.mark.parametrize("name", torch_models.MODELS)
def test_a_default_torch_onnx_export_deploys_or_is_refused_naming_the_op(name, tmp_path):
    import onnx

    model, shape = torch_models.export(name, tmp_path)
    assert (tmp_path / f"{name}.onnx.data").exists(), "torch.onnx.export keeps the weights in a file of their own"
    assert onnx.load(str(model), load_external_data=False).opset_import[0].version >= 18
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).normal(0, 1, (40, *shape[1:])).astype(np.float32))
    result = run_tinyedge("deploy", model, "--board", "host", "--runtime", "aot", "--calibration", tmp_path / "cal.npy",
                          "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    print(result.stdout[-2000:], result.stderr)
    if result.returncode == 0:
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["passed"] and report["bit_exact"] == 1.0
        return
    assert name in MAY_BE_REFUSED, f"{name} must deploy: {result.stderr}"
    message = " ".join(result.stderr.split())
    assert result.returncode == 1 and message.startswith("error:") and "Traceback" not in result.stderr
    assert any(op in message for op in MAY_BE_REFUSED[name])
    for how_it_was_saved in ("not regular file", "external data", "not a valid ONNX model", "opset"):
        assert how_it_was_saved not in message


def test_the_legacy_exporters_opset_13_graph_deploys_bit_exact(tmp_path):
    """torch.onnx.export(..., dynamo=False, opset_version=13): the TorchScript exporter's graph, weights inlined."""
    import onnx

    model, shape = torch_models.export("mobilenet_style", tmp_path, dynamo=False, opset_version=13)
    assert onnx.load(str(model)).opset_import[0].version == 13
    np.save(tmp_path / "cal.npy", np.random.default_rng(1).normal(0, 1, (40, *shape[1:])).astype(np.float32))
    result = run_tinyedge("deploy", model, "--board", "host", "--runtime", "aot", "--calibration", tmp_path / "cal.npy",
                          "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_a_pytorch_gelu_mlp_deploys_bit_exact_on_qemu_cortex_m4_against_tflites_gelu(tmp_path):
    """nn.GELU() and nn.GELU(approximate="tanh") quantize to one GELU op each, which tflite-micro has no kernel
    for: the AOT runs TFLite's int8 GELU, checked against TFLite's interpreter (tflite-micro for the rest)."""
    model, shape = torch_models.export("gelu_mlp", tmp_path)
    np.save(tmp_path / "cal.npy", np.random.default_rng(2).normal(0, 1, (40, *shape[1:])).astype(np.float32))
    result = run_tinyedge("deploy", model, "--board", "qemu-cortex-m4", "--runtime", "aot", "--calibration",
                          tmp_path / "cal.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0
    assert report["reference"] == "tflite-micro+tflite" and "for GELU" in report["reference_version"]
    gelus = [op for op in load_tflite(tmp_path / "out" / "gelu_mlp_int8.tflite").operators if op.opcode == "GELU"]
    assert [op.options.approximate for op in gelus] == [False, True]


# ---------------------------------------------------------------- nn.LSTM / nn.GRU


def _calibration(path, shape, seed=0, count=60):
    np.save(path, np.random.default_rng(seed).normal(0, 1, (count, *shape[1:])).astype(np.float32))
    return path


@pytest.mark.parametrize("name", torch_models.RECURRENT)
def test_tinyedges_conversion_of_a_pytorch_rnn_computes_what_onnx_runtime_computes(name, tmp_path):
    """tinyedge rebuilds LSTM/GRU graphs itself (onnx2tf turns them into a WHILE loop or crashes); in float
    the rebuilt model equals ONNX Runtime's outputs, the same inputs in the same layout."""
    from pathlib import Path

    from tinyedge.onnx_import import OnnxModel

    model, shape = torch_models.export(name, tmp_path)
    onnx_model = OnnxModel(Path(model))
    keras_model = onnx_model.keras_model
    for seed in range(4):
        x = np.random.default_rng(seed).normal(0, 1, onnx_model.input_shapes[0]).astype(np.float32)
        expected = onnx_model.predict([x])[0]
        assert np.max(np.abs(np.asarray(keras_model(x)) - expected)) < 1e-5


@pytest.mark.parametrize("name", ["lstm", "gru", "conv_gru"])
def test_a_pytorch_rnn_quantizes_to_ops_the_aot_runs_and_deploys_bit_exact_on_a_cortex_m4(name, tmp_path):
    """`tinyedge quantize model.onnx` then `tinyedge deploy model_int8.tflite --board qemu-cortex-m4`: the LSTM
    reaches TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM, the GRU is unrolled into FULLY_CONNECTED/LOGISTIC/TANH."""
    model, shape = torch_models.export(name, tmp_path)
    _calibration(tmp_path / "cal.npy", shape)
    result = run_tinyedge("quantize", model, "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "int8.tflite",
                          "--json", tmp_path / "quantize.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "quantize.json").read_text())
    print(name, {k: report[k] for k in ("rmse", "cosine", "top1_agreement", "ops")})
    assert report["float_reference"] == "ONNX Runtime" and report["cosine"] > 0.98
    assert "WHILE" not in report["ops"]
    if name == "lstm":
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in report["ops"]
    else:
        assert {"FULLY_CONNECTED", "LOGISTIC", "TANH"} <= set(report["ops"])
    board_shape = (1, 20, 10)   # conv_gru: channels-last, as its Conv1d reads it
    _calibration(tmp_path / "data.npy", board_shape, seed=3, count=12)
    result = run_tinyedge("deploy", tmp_path / "int8.tflite", "--board", "qemu-cortex-m4", "--runtime", "aot",
                          "--data", tmp_path / "data.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0 and report["samples"] == 12


@pytest.mark.parametrize("name", ["lstm", "gru", "lstm_2_layers_sequence"])
def test_the_legacy_exporters_rnn_graph_deploys_bit_exact(name, tmp_path):
    """torch.onnx.export(..., dynamo=False): zero initial states built from Shape/Gather/Expand, folded away."""
    model, shape = torch_models.export(name, tmp_path, dynamo=False)
    _calibration(tmp_path / "cal.npy", shape, seed=1)
    result = run_tinyedge("deploy", model, "--board", "host", "--runtime", "aot", "--calibration", tmp_path / "cal.npy",
                          "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0


def test_a_bidirectional_rnn_is_refused_in_one_sentence_and_nothing_is_written(tmp_path):
    model, shape = torch_models.export("bidirectional_gru", tmp_path)
    _calibration(tmp_path / "cal.npy", shape)
    result = run_tinyedge("deploy", model, "--board", "host", "--runtime", "aot", "--calibration", tmp_path / "cal.npy",
                          "-o", tmp_path / "out")
    message = " ".join(result.stderr.split())
    assert result.returncode == 1 and message.startswith("error:") and "Traceback" not in result.stderr
    assert "bidirectional" in message and "GRU" in message and len(result.stderr.strip().splitlines()) <= 3
    assert not (tmp_path / "out").exists()
