"""A user quantizes a float Keras model to full int8 and reads what accuracy it lost."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_tinyedge
from tinyedge.errors import TinyedgeError
from tinyedge.quantize import compare_outputs, dequantize, load_float_model, quantize_input, quantize_model
from tinyedge.reference import Reference
from tinyedge.tflite_model import load_tflite


def test_quantized_sine_is_full_int8_with_batch_one(sine_model):
    model = load_tflite(sine_model.int8)
    assert model.io_types() == ["INT8", "INT8"]
    assert model.is_full_int8()
    assert model.input_tensors[0].shape == (1, 1)
    assert model.op_names() == ["FULLY_CONNECTED"]
    weights = [t for t in model.tensors if t.is_constant and t.type_name == "INT8"]
    assert weights, "weights must be int8"


def test_cnn_has_per_channel_weights_and_no_batch_ops(cnn_model):
    model = load_tflite(cnn_model.int8)
    assert model.is_full_int8()
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(model.op_names())
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(model.op_names())
    conv = next(op for op in model.operators if op.opcode == "CONV_2D")
    filters = model.tensors[conv.inputs[1]]
    assert filters.per_channel and filters.scale.size == filters.shape[0]


def test_report_figures_match_a_recomputation(cnn_model, tmp_path):
    x = np.load(cnn_model.eval_x)
    y = np.load(cnn_model.eval_y)
    report = quantize_model(cnn_model.keras, np.load(cnn_model.calibration), tmp_path / "q.tflite", eval_data=x, labels=y)

    float_model = load_float_model(cnn_model.keras)
    float_out = np.concatenate([float_model.predict([s[None]])[0] for s in x])
    int8 = load_tflite(tmp_path / "q.tflite")
    ref = Reference(int8)
    tin, tout = int8.input_tensors[0], int8.output_tensors[0]
    int8_out = np.stack([
        dequantize(ref.run_one(quantize_input(s, tin.scale[0], int(tin.zero_point[0])).reshape(tin.shape)),
                   tout.scale[0], int(tout.zero_point[0])).ravel()
        for s in x
    ])
    rmse = float(np.sqrt(np.mean((float_out.astype(np.float64) - int8_out) ** 2)))
    assert report.rmse == pytest.approx(rmse, rel=1e-6)
    cos = float(np.dot(float_out.ravel(), int8_out.ravel()) / (np.linalg.norm(float_out) * np.linalg.norm(int8_out)))
    assert report.cosine == pytest.approx(cos, rel=1e-5)
    assert report.top1_agreement == pytest.approx(np.mean(float_out.argmax(1) == int8_out.argmax(1)))
    assert report.accuracy["float"] == pytest.approx(np.mean(float_out.argmax(1) == y))
    assert report.accuracy["int8"] == pytest.approx(np.mean(int8_out.argmax(1) == y))
    assert report.int8_bytes < report.float_bytes
    assert report.eval_samples == len(x)


def test_metrics_helpers():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    rmse, cos, top1 = compare_outputs(a, a)
    assert rmse == 0 and cos == pytest.approx(1.0) and top1 == 1.0
    _, _, top1 = compare_outputs(a, a[::-1])
    assert top1 == 0.0
    _, _, top1 = compare_outputs(np.ones((3, 1)), np.ones((3, 1)))
    assert top1 is None


def test_cli_session_prints_table_and_json(sine_model, tmp_path):
    out = tmp_path / "sine_int8.tflite"
    result = run_tinyedge("quantize", sine_model.keras, "--calibration", sine_model.calibration, "-o", out,
                          "--eval", sine_model.eval_x, "--labels", sine_model.eval_y, "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    assert "file size" in result.stdout and "cosine similarity" in result.stdout
    assert "RMSE vs labels" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["eval_source"] == "--eval" and report["cosine"] > 0.95
    assert load_tflite(out).is_full_int8()
    noise = [line for line in result.stderr.splitlines() if "oneDNN" in line or "absl" in line or "I0000" in line]
    assert not noise, noise


def test_held_out_slice_when_no_eval_data(sine_model, tmp_path):
    cal = np.load(sine_model.calibration)
    report = quantize_model(sine_model.keras, cal, tmp_path / "q.tflite", samples=50)
    assert report.eval_samples == int(len(cal) * 0.2)
    assert report.calibration_samples == 50
    assert "held-out" in report.eval_source


@pytest.mark.parametrize("make_bad, message", [
    (lambda d: d[:, :, :1] if d.ndim > 2 else np.zeros((5, 3), np.float32), "expects"),
    (lambda d: d[:0], "empty"),
    (lambda d: np.array(["a", "b"]), "numeric"),
])
def test_bad_calibration_data_is_one_clear_sentence(sine_model, tmp_path, make_bad, message):
    bad = make_bad(np.load(sine_model.calibration))
    with pytest.raises(TinyedgeError, match=message):
        quantize_model(sine_model.keras, bad, tmp_path / "q.tflite")


def test_bad_inputs_from_the_command_line(sine_model, tmp_path):
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    cases = [
        (["quantize", sine_model.int8, "--calibration", sine_model.calibration, "-o", tmp_path / "x.tflite"], "needs the source model"),
        (["quantize", tmp_path / "missing.keras", "--calibration", sine_model.calibration, "-o", tmp_path / "x.tflite"], "does not exist"),
        (["quantize", not_a_model, "--calibration", sine_model.calibration, "-o", tmp_path / "x.tflite"], "not a model"),
        (["quantize", sine_model.keras, "--calibration", not_a_model, "-o", tmp_path / "x.tflite"], "not a NumPy"),
    ]
    for args, message in cases:
        result = run_tinyedge(*args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert message in " ".join(result.stderr.split()), result.stderr
        assert "Traceback" not in result.stderr


def test_requantize_before_concatenation_is_still_full_int8(tmp_path):
    """Branches with different scales meet in CONCATENATION: the converter inserts an int8→int8 QUANTIZE."""
    import tensorflow as tf

    k = tf.keras
    k.utils.set_random_seed(3)
    inp = k.Input((8, 8, 2))
    a = k.layers.Conv2D(4, 3, padding="same", activation="tanh")(inp)
    b = k.layers.Conv2D(4, 1, activation="relu6")(inp)
    out = k.layers.Dense(5)(k.layers.Flatten()(k.layers.Concatenate()([a, b])))
    k.Model(inp, out).save(tmp_path / "branches.keras")
    data = np.random.default_rng(0).normal(size=(60, 8, 8, 2)).astype(np.float32)
    report = quantize_model(tmp_path / "branches.keras", data, tmp_path / "branches.tflite")
    assert "QUANTIZE" in report.ops and "CONCATENATION" in report.ops
    model = load_tflite(tmp_path / "branches.tflite")
    assert model.is_full_int8(), model.full_int8_problems()


def test_a_savedmodel_directory_quantizes_like_its_keras_model(cnn_model, tmp_path):
    import tensorflow as tf

    tf.keras.models.load_model(cnn_model.keras).export(tmp_path / "saved", verbose=False)
    report = quantize_model(tmp_path / "saved", np.load(cnn_model.calibration), tmp_path / "q.tflite",
                            eval_data=np.load(cnn_model.eval_x), labels=np.load(cnn_model.eval_y))
    model = load_tflite(tmp_path / "q.tflite")
    assert model.is_full_int8() and model.input_tensors[0].shape == (1, 16, 16, 1)
    assert report.cosine > 0.99
    assert report.ops == load_tflite(cnn_model.int8).op_names()


def test_a_directory_that_is_not_a_savedmodel(tmp_path, sine_model):
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(TinyedgeError, match="without saved_model.pb"):
        quantize_model(tmp_path / "not-a-model", np.load(sine_model.calibration), tmp_path / "q.tflite")
