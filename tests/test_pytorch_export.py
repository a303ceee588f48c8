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
MAY_BE_REFUSED = {"keyword_conv1d": ("CONV_2D",), "grouped_hardswish_cnn": ("CONV_2D", "HARD_SWISH"),
                  "lstm": ("LSTM",), "gru": ("GRU",)}


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
