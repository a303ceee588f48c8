"""What the TFLite converter leaves that TFLM cannot run, quantize rewrites into ops TFLM runs: PyTorch's
Hardsigmoid (onnx2tf's max(0, min(1, x)), which the converter makes RELU_0_TO_1) and ELU (which the
converter leaves in float between a DEQUANTIZE and a QUANTIZE). Before, quantize and deploy refused
both ("TFLM has no kernel for RELU_0_TO_1", "could not make the model full int8")."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from aot_harness import NativeModel, assert_matches_reference, to_int8
from conftest import run_tinyedge
from tinyedge.int8_rewrites import rewrite_for_tflm
from tinyedge.reference import Reference
from tinyedge.tflite_model import parse_tflite
from tinyedge.viper.bridge import micropython_program

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def one_op_model(builtin: str, in_q: tuple[float, int], out_q: tuple[float, int], count: int = 256) -> bytes:
    """A .tflite of one int8 op, as the converter writes it."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    def tensor(name: str, q: tuple[float, int]):
        t = schema.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, count], schema.TensorType.INT8, 0, name
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [q[0]], [q[1]]
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = getattr(schema.BuiltinOperator, builtin)
    code.deprecatedBuiltinCode, code.version = min(code.builtinCode, 127), 1
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = [tensor("x", in_q), tensor("y", out_q)], [0], [1], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], [schema.BufferT()]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tflite_run(data: bytes, x: np.ndarray) -> np.ndarray:
    """TensorFlow Lite's own interpreter (it has the kernels TFLM lacks)."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


EVERY_BYTE = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)


@pytest.mark.parametrize("in_q", [(0.05, -3), (0.01, 0), (0.2, 100)])
def test_relu_0_to_1_on_a_0_to_1_output_becomes_relu_with_the_same_bytes(in_q):
    original = one_op_model("RELU_0_TO_1", in_q, (1 / 255, -128))
    rewritten, notes = rewrite_for_tflm(original)
    model = parse_tflite(rewritten)
    assert [op.opcode for op in model.operators] == ["RELU"] and "RELU_0_TO_1" in notes[0]
    expected = tflite_run(original, EVERY_BYTE)
    assert np.array_equal(Reference(model).run([EVERY_BYTE])[0], expected)
    assert np.array_equal(tflite_run(rewritten, EVERY_BYTE), expected)


def test_relu_0_to_1_whose_output_reaches_past_1_is_left_alone():
    original = one_op_model("RELU_0_TO_1", (0.05, 0), (2 / 255, -128))   # the output could hold 2.0
    assert rewrite_for_tflm(original) == (original, [])


def hard_sigmoid(x):
    """PyTorch's Hardsigmoid as onnx2tf writes it."""
    import tensorflow as tf

    return tf.maximum(0.0, tf.minimum(1.0, 0.2 * x + 0.5))


def gated_model():
    """Dense → ELU → Dense → Hardsigmoid → Dense."""
    import tensorflow as tf

    inputs = tf.keras.Input((12,))
    x = tf.keras.layers.ELU()(tf.keras.layers.Dense(16)(inputs))
    x = tf.keras.layers.Lambda(hard_sigmoid)(tf.keras.layers.Dense(16)(x))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(4)(x))


def test_the_converters_float_elu_and_relu_0_to_1_become_int8_ops_tflm_runs_bit_exact_on_the_aot(tmp_path):
    converted = to_int8(gated_model())
    assert [op.opcode for op in converted.operators] == ["FULLY_CONNECTED", "DEQUANTIZE", "ELU", "QUANTIZE",
                                                         "FULLY_CONNECTED", "RELU_0_TO_1", "FULLY_CONNECTED"]
    rewritten, notes = rewrite_for_tflm(converted.data)
    model = parse_tflite(rewritten)
    assert [op.opcode for op in model.operators] == ["FULLY_CONNECTED", "ELU", "FULLY_CONNECTED", "RELU",
                                                     "FULLY_CONNECTED"]
    assert all(t.type_name in ("INT8", "INT32") for t in model.tensors), "no float tensor is left behind"
    assert len(notes) == 2
    rng = np.random.default_rng(0)
    for _ in range(8):
        x = rng.integers(-128, 128, (1, 12), dtype=np.int8)
        float_island, fused = tflite_run(converted.data, x), Reference(model).run([x])[0]
        assert np.abs(float_island.astype(int) - fused.astype(int)).max() <= 1   # one rounding where there were two
    assert_matches_reference(model, NativeModel(model, tmp_path / "aot"), samples=8)


def test_quantize_says_what_it_rewrote_and_the_model_deploys_bit_exact(tmp_path):
    """A user's Keras model with an ELU: quantize makes it full int8 and says so; it deploys on the AOT
    runtime bit-exact with tflite-micro."""
    gated_model().save(tmp_path / "gates.keras")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).normal(0, 2, (64, 12)).astype(np.float32))

    quantized = run_tinyedge("quantize", tmp_path / "gates.keras", "--calibration", tmp_path / "cal.npy",
                             "-o", tmp_path / "gates_int8.tflite", "--json", tmp_path / "quantize.json")
    assert quantized.returncode == 0, quantized.stderr
    report = json.loads((tmp_path / "quantize.json").read_text())
    assert any("int8 ELU" in note for note in report["rewrites"]) and "rewritten:" in quantized.stderr
    assert "ELU" in report["ops"] and "DEQUANTIZE" not in report["ops"] and report["cosine"] > 0.99

    deployed = run_tinyedge("deploy", tmp_path / "gates_int8.tflite", "--board", "host", "--runtime", "aot",
                            "--data", tmp_path / "cal.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    validation = json.loads((tmp_path / "report.json").read_text())
    assert validation["passed"] and validation["bit_exact"] == 1.0 and validation["samples"] == 64
    if micropython_program() is not None:   # the viper runtime runs ELU's table too
        viper = run_tinyedge("deploy", tmp_path / "gates_int8.tflite", "--board", "micropython-unix", "--data",
                             tmp_path / "cal.npy", "-o", tmp_path / "viper", "--json", tmp_path / "viper.json")
        assert viper.returncode == 0, viper.stdout + viper.stderr
        assert json.loads((tmp_path / "viper.json").read_text())["bit_exact"] == 1.0
