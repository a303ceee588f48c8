"""A user inspects a model: ops, tensors, cost, arena, and whether it fits a board."""

from __future__ import annotations

import json


from conftest import run_tinyedge
from tinyedge.inspection import inspect_model
from tinyedge.reference import _arena_works
from tinyedge.tflite_model import load_tflite


def test_inspect_json_lists_ops_tensors_and_costs(cnn_model):
    result = run_tinyedge("inspect", cnn_model.int8, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    model = load_tflite(cnn_model.int8)
    assert list(info["ops"]) == model.op_names()
    assert all(isinstance(v, int) and v >= 1 for v in info["ops"].values())
    assert info["full_int8"] is True
    assert info["model_bytes"] == cnn_model.int8.stat().st_size
    assert info["inputs"][0]["shape"] == [1, 16, 16, 1] and info["inputs"][0]["dtype"] == "int8"
    assert info["parameters"] == sum(t.size for t in model.tensors if t.is_constant)
    assert "32-bit" in info["arena_note"]


def test_macs_of_the_small_cnn(cnn_model):
    summary = inspect_model(cnn_model.int8)
    # conv 3x3x1->8 on 16x16, depthwise 3x3 on 16x16x8, conv 1x1 8->8 on 8x8, dense 128->16, dense 16->4
    expected = 16 * 16 * 8 * 9 + 16 * 16 * 8 * 9 + 8 * 8 * 8 * 8 + 16 * 128 + 4 * 16
    assert summary.macs == expected


def test_arena_is_the_smallest_that_tflite_micro_accepts(cnn_model):
    model = load_tflite(cnn_model.int8)
    arena = inspect_model(cnn_model.int8).arena_bytes_host
    assert _arena_works(model, arena)
    assert not _arena_works(model, arena - 32)


def test_fit_on_a_board_with_figures(sine_model, cnn_model):
    result = run_tinyedge("inspect", sine_model.int8, "--board", "esp32-devkitc")
    assert result.returncode == 0, result.stderr
    assert "Fit on esp32-devkitc" in result.stdout and "fits" in result.stdout

    too_big = run_tinyedge("inspect", cnn_model.int8, "--board", "arduino-uno")
    assert too_big.returncode == 1
    message = " ".join(too_big.stderr.split())
    assert "does not fit arduino-uno" in message and "2,048 B" in message


def test_inspect_flags_a_float_model(tmp_path, sine_model):
    import tensorflow as tf

    keras_model = tf.keras.models.load_model(sine_model.keras)
    float_tflite = tmp_path / "float.tflite"
    float_tflite.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras_model).convert())
    summary = inspect_model(float_tflite)
    assert summary.full_int8 is False
    assert any("float32" in reason for reason in summary.not_full_int8_because)


def test_unknown_board_lists_the_known_ones(sine_model):
    result = run_tinyedge("inspect", sine_model.int8, "--board", "esp8266")
    assert result.returncode == 1
    assert "unknown board 'esp8266'" in result.stderr and "qemu-cortex-m4" in result.stderr


def test_corrupt_model_is_one_sentence(tmp_path, sine_model):
    data = bytearray(sine_model.int8.read_bytes())
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(bytes(data[:200]))
    result = run_tinyedge("inspect", truncated)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert "corrupted" in result.stderr or "cannot" in result.stderr


def test_missing_tflm_op_is_named(tmp_path):
    import tensorflow as tf

    class Cumsum(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
        def __call__(self, x):
            return tf.math.cumprod(x, axis=1)

    module = Cumsum()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    path = tmp_path / "cumprod.tflite"
    path.write_bytes(converter.convert())
    result = run_tinyedge("inspect", path)
    assert result.returncode == 1
    assert "TFLM has no kernel for" in " ".join(result.stderr.split())


def test_a_softmax_tflite_micro_would_abort_on_is_one_sentence(tmp_path):
    """A model whose logits barely vary (an untrained MobileNetV2 with random calibration: input scale
    7.8e-9) makes tflite-micro's int8 SOFTMAX fail a TFLITE_CHECK, which aborts the whole process with
    no message: tinyedge says why before loading it."""
    from test_aot_recurrent import KEYWORD, _real, rewritten

    model = _real(KEYWORD)
    softmax = next(op for op in model.operators if op.opcode == "SOFTMAX")
    logits = softmax.inputs[0]
    flat = rewritten(model, scales={logits: 7.843235e-09 / float(model.tensors[logits].scale[0])})
    path = tmp_path / "flat_logits.tflite"
    path.write_bytes(flat.data)
    result = run_tinyedge("inspect", path)
    message = " ".join(result.stderr.split())
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert f"tflite-micro aborts on this model: the input scale of SOFTMAX (operator {softmax.index})" in message
    assert run_tinyedge("inspect", KEYWORD).returncode == 0
