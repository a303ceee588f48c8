"""int16 activations (TFLite's 16x8 quantization) in the AOT runtime: models converted with TensorFlow's
EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 (int16 I/O) run natively give the values
tflite-micro's interpreter gives, every op; one deploys bit-exact on qemu-cortex-m4; TFLM's own seanet
per-layer integration models (from a tflite-micro checkout named by TINYEDGE_TFLM_SRC) match both the
interpreter and TFLM's goldens; `tinyedge ops` lists the int16 variants."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from aot_harness import NativeModel, assert_matches_reference
from conftest import run_tinyedge

from tinyedge.tflite_model import TfliteModel, parse_tflite

SEANET = Path("tensorflow/lite/micro/integration_tests/seanet")
TFLM_SRC = os.environ.get("TINYEDGE_TFLM_SRC", "")


def _tf():
    import tensorflow as tf

    return tf


def to_16x8(fn, shapes: list[tuple[int, ...]], span: float = 2.0, seed: int = 0, float_io: bool = False) -> TfliteModel:
    """The function converted as TFLite's 16x8 model: int16 activations and I/O (or float I/O), int8 weights."""
    tf = _tf()
    concrete = tf.function(fn).get_concrete_function(*[tf.TensorSpec([1, *s], tf.float32) for s in shapes])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(seed)
    converter.representative_dataset = lambda: ([rng.uniform(-span, span, (1, *s)).astype(np.float32) for s in shapes]
                                                for _ in range(32))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if not float_io:
        converter.inference_input_type = tf.int16
        converter.inference_output_type = tf.int16
    return parse_tflite(converter.convert())


def _weights(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _conv(x):
    return _tf().nn.relu(_tf().nn.conv2d(x, _weights(3, 3, 4, 6), 1, "SAME") + 0.3)


def _depthwise(x):
    return _tf().nn.depthwise_conv2d(x, _weights(3, 3, 4, 2), [1, 2, 2, 1], "SAME") - 0.2


def _fully_connected(x):
    return _tf().nn.relu6(_tf().matmul(_tf().reshape(x, (1, 12)), _weights(12, 5)) + 0.1)


def _transpose_conv(x):
    return _tf().nn.conv2d_transpose(x, _weights(3, 3, 5, 4), (1, 8, 6, 5), 2, "SAME") + np.linspace(-0.5, 0.5, 5, dtype=np.float32)


def _pools(x):
    return _tf().nn.avg_pool2d(x, 2, 2, "SAME") + _tf().nn.max_pool2d(x, 3, 2, "SAME")


CASES = {
    "add_broadcast": (lambda x, y: x + y, [(3, 6), (1, 6)], {"ADD"}),
    "sub": (lambda x, y: x - y, [(3, 6), (3, 6)], {"SUB"}),
    "mul": (lambda x, y: x * y, [(3, 6), (3, 6)], {"MUL"}),
    "leaky_relu": (lambda x: _tf().nn.leaky_relu(x, 0.1), [(3, 7)], {"LEAKY_RELU"}),
    "pad": (lambda x: _tf().pad(x, [[0, 0], [1, 2], [0, 1]]), [(3, 7)], {"PAD"}),
    "strided_slice": (lambda x: x[:, 1:6:2, ::-1, 1:], [(7, 5, 4)], {"STRIDED_SLICE"}),
    "slice": (lambda x: _tf().slice(x, [0, 1, 0, 1], [1, 3, -1, 2]), [(5, 4, 3)], {"SLICE"}),
    "transpose": (lambda x: _tf().transpose(x, [0, 3, 1, 2]), [(3, 4, 5)], {"TRANSPOSE"}),
    "resize_nearest_neighbor": (lambda x: _tf().image.resize(x, (7, 9), method="nearest"), [(3, 4, 2)],
                                {"RESIZE_NEAREST_NEIGHBOR"}),
    "maximum_broadcast": (lambda x, y: _tf().maximum(x, y), [(3, 6), (1, 6)], {"MAXIMUM"}),
    "minimum": (lambda x, y: _tf().minimum(x, y), [(3, 6), (3, 6)], {"MINIMUM"}),
    "relu": (lambda x: _tf().nn.relu(x), [(4, 9)], {"RELU"}),
    "conv2d": (_conv, [(5, 5, 4)], {"CONV_2D"}),
    "depthwise_conv2d": (_depthwise, [(6, 5, 4)], {"DEPTHWISE_CONV_2D"}),
    "fully_connected": (_fully_connected, [(3, 4)], {"FULLY_CONNECTED"}),
    "transpose_conv": (_transpose_conv, [(4, 3, 4)], {"TRANSPOSE_CONV"}),
    "pools": (_pools, [(5, 5, 4)], {"AVERAGE_POOL_2D", "MAX_POOL_2D"}),
    "logistic": (lambda x: _tf().sigmoid(x * 3.0), [(4, 9)], {"LOGISTIC"}),
    "tanh": (lambda x: _tf().tanh(x * 2.0), [(4, 9)], {"TANH"}),
    "softmax": (lambda x: _tf().nn.softmax(x * 2.0), [(3, 10)], {"SOFTMAX"}),
    "mean": (lambda x: _tf().reduce_mean(x, axis=[1, 2]), [(5, 6, 4)], {"MEAN"}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_16x8_ops_are_bit_exact_with_tflite_micro(name: str, tmp_path):
    fn, shapes, ops = CASES[name]
    model = to_16x8(fn, shapes)
    assert ops <= set(model.op_names()), model.op_names()
    assert {t.type_name for t in model.input_tensors + model.output_tensors} == {"INT16"}
    assert_matches_reference(model, NativeModel(model, tmp_path), samples=6)


def _int16_activation(opcode: str, in_scale: float, out_scale: float, beta: float = 1.0,
                      int8_zero_points: tuple[int, int] | None = None) -> TfliteModel:
    """One int16 LOGISTIC, TANH, SOFTMAX, RELU or RELU6 over a [256, 256] tensor (every int16 value once), zero points 0;
    with int8_zero_points, one int8 op over a [1, 256] tensor (every int8 value once) with those zero points."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    def tensor(name: str, scale: float, zero_point: int):
        t = schema.TensorT()
        t.shape, t.type = ([1, 256], schema.TensorType.INT8) if int8_zero_points else ([256, 256], schema.TensorType.INT16)
        t.buffer, t.name = 0, name
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [zero_point]
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, opcode)
    code.version = 1
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    if opcode == "SOFTMAX":
        op.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
        op.builtinOptions = schema.SoftmaxOptionsT()
        op.builtinOptions.beta = beta
    graph = schema.SubGraphT()
    zero_points = int8_zero_points or (0, 0)
    graph.tensors = [tensor("x", in_scale, zero_points[0]), tensor("y", out_scale, zero_points[1])]
    graph.inputs, graph.outputs, graph.operators = [0], [1], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], [schema.BufferT()]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return parse_tflite(bytes(builder.Output()))


# Input scales: powers of two that TFLM folds into 3 << shift (LOGISTIC: 2^-12; TANH: 2^-12, 2^-11), others
# it rescales to 1/(3*4096), one that saturates most inputs; SOFTMAX with two betas.
INT16_ACTIVATIONS = [("LOGISTIC", 2.0 ** -12, 2.0 ** -15, 1.0), ("LOGISTIC", 2.0 ** -13, 2.0 ** -15, 1.0),
                     ("LOGISTIC", 1 / 3000, 2.0 ** -15, 1.0), ("LOGISTIC", 0.01, 2.0 ** -15, 1.0),
                     ("TANH", 2.0 ** -12, 2.0 ** -15, 1.0), ("TANH", 2.0 ** -11, 2.0 ** -15, 1.0),
                     ("TANH", 1 / 3000, 2.0 ** -15, 1.0), ("TANH", 0.003, 2.0 ** -15, 1.0),
                     ("SOFTMAX", 1 / 3000, 1 / 32768, 1.0), ("SOFTMAX", 10 / 32768, 1 / 32768, 0.5),
                     ("SOFTMAX", 0.002, 1 / 32768, 1.0)]


@pytest.mark.parametrize("opcode, in_scale, out_scale, beta", INT16_ACTIVATIONS)
def test_int16_logistic_tanh_softmax_are_bit_exact_for_every_input_value(opcode, in_scale, out_scale, beta, tmp_path):
    from tinyedge.reference import Reference

    model = _int16_activation(opcode, in_scale, out_scale, beta)
    x = np.arange(-32768, 32768, dtype=np.int16).reshape(256, 256)
    inputs = [x, np.ascontiguousarray(x.T), np.random.default_rng(0).permutation(x.ravel()).reshape(256, 256)]
    native, reference = NativeModel(model, tmp_path), Reference(model)
    for case in inputs if opcode == "SOFTMAX" else inputs[:1]:
        want, got = reference.run([case])[0], native.run([case])[0]
        diff = np.flatnonzero(want.ravel() != got.ravel())
        assert diff.size == 0, f"{diff.size} values differ, first at input {case.ravel()[diff[0]]}: " \
                               f"tflm {want.ravel()[diff[0]]} vs aot {got.ravel()[diff[0]]}"


# RELU requantizes (the output scale differs from the input's); RELU6 clamps at 6.0 (in range, then beyond it).
@pytest.mark.parametrize("opcode, in_scale, out_scale", [("RELU", 1 / 3000, 1 / 1700), ("RELU", 0.002, 0.0005),
                                                         ("RELU6", 1 / 2000, 1 / 2000), ("RELU6", 1 / 5000, 1 / 5000)])
def test_int16_relu_and_relu6_are_bit_exact_for_every_input_value(opcode, in_scale, out_scale, tmp_path):
    from tinyedge.reference import Reference

    model = _int16_activation(opcode, in_scale, out_scale)
    x = np.arange(-32768, 32768, dtype=np.int16).reshape(256, 256)
    want, got = Reference(model).run([x])[0], NativeModel(model, tmp_path).run([x])[0]
    assert np.array_equal(want, got), f"{np.count_nonzero(want != got)} values differ"


def test_int8_relu_rounds_its_multiplier_as_tflite_micro_does(tmp_path):
    """CalculateReluOpData's multiplier comes out of tflite-micro's interpreter as the double quotient of the
    scales: with these scales a float32 quotient rounded 4 of the 256 int8 values the other way."""
    from tinyedge.reference import Reference

    model = _int16_activation("RELU", 1 / 3000, 1 / 1700, int8_zero_points=(-3, -128))
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    want, got = Reference(model).run([x])[0], NativeModel(model, tmp_path).run([x])[0]
    assert np.array_equal(want, got), f"{np.count_nonzero(want != got)} values differ"


def test_a_16x8_model_with_float_io_is_bit_exact_with_tflite_micro(tmp_path):
    model = to_16x8(_depthwise, [(6, 5, 4)], float_io=True)
    opcodes = [op.opcode for op in model.operators]
    assert (opcodes[0], opcodes[-1]) == ("QUANTIZE", "DEQUANTIZE"), opcodes
    assert {t.type_name for t in model.input_tensors + model.output_tensors} == {"FLOAT32"}
    assert_matches_reference(model, NativeModel(model, tmp_path), samples=6)


def test_tinyedge_ops_lists_the_int16_variants():
    result = run_tinyedge("ops", "--runtime", "aot", "--json")
    assert result.returncode == 0, result.stderr
    detail = json.loads(result.stdout)["detail"]
    for op in ("ADD", "SUB", "MUL", "LEAKY_RELU", "PAD", "PADV2", "STRIDED_SLICE", "AVERAGE_POOL_2D", "MAX_POOL_2D",
               "SLICE", "TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR", "MAXIMUM", "MINIMUM", "RELU", "RELU6", "LOGISTIC", "TANH", "SOFTMAX", "MEAN"):
        assert "int16" in detail[op]["aot"]["variants"], op
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
        assert any(v.startswith("16x8") for v in detail[op]["aot"]["variants"]), op
        assert "te_int16.c" in detail[op]["aot"]["c_files"], op


def _deploy(model: TfliteModel, board: str, x: np.ndarray, tmp_path: Path) -> dict:
    """`tinyedge deploy --runtime aot` of the model to the board with the float samples x: its JSON report."""
    (tmp_path / "model.tflite").write_bytes(model.data)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    result = run_tinyedge("deploy", tmp_path / "model.tflite", "--board", board, "--runtime", "aot",
                          "-o", tmp_path / "out", "--data", tmp_path / "x.npy", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((tmp_path / "report.json").read_text())


def test_a_16x8_model_validates_bit_exact_on_the_host_board_in_int16_lsb(tmp_path):
    model = to_16x8(_conv, [(5, 5, 4)])
    report = _deploy(model, "host", np.random.default_rng(5).uniform(-2, 2, (6, 5, 5, 4)), tmp_path)
    assert (report["runtime"], report["passed"], report["bit_exact"], report["max_abs_diff_lsb"]) == ("aot", True, 1.0, 0)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_a_16x8_model_deploys_bit_exact_on_qemu_cortex_m4(tmp_path):
    tf = _tf()

    def audio_block(x):
        y = tf.nn.leaky_relu(tf.nn.conv2d(tf.pad(x, [[0, 0], [0, 0], [2, 0], [0, 0]]), _weights(1, 3, 4, 4), 1, "VALID"), 0.3)
        return tf.nn.conv2d_transpose(y[:, :, ::2, :] - 0.1, _weights(1, 4, 4, 4), (1, 1, 12, 4), [1, 2], "SAME") + x * np.float32(0.5)

    model = to_16x8(audio_block, [(1, 12, 4)])
    assert {"PAD", "CONV_2D", "LEAKY_RELU", "STRIDED_SLICE", "SUB", "TRANSPOSE_CONV", "ADD"} <= set(model.op_names())
    report = _deploy(model, "qemu-cortex-m4", np.random.default_rng(3).uniform(-2, 2, (5, 1, 12, 4)), tmp_path)
    assert (report["runtime"], report["passed"], report["bit_exact"]) == ("aot", True, 1.0)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_int16_logistic_tanh_softmax_mean_deploy_bit_exact_on_qemu_cortex_m4(tmp_path):
    tf = _tf()

    def head(x):
        return tf.reduce_mean(tf.nn.softmax(tf.tanh(x * 2.0) * 3.0) * tf.sigmoid(x), axis=[1])

    model = to_16x8(head, [(4, 8)])
    assert {"LOGISTIC", "TANH", "SOFTMAX", "MEAN"} <= set(model.op_names())
    report = _deploy(model, "qemu-cortex-m4", np.random.default_rng(4).uniform(-2, 2, (5, 1, 4, 8)), tmp_path)
    assert (report["runtime"], report["passed"], report["bit_exact"]) == ("aot", True, 1.0)


def _seanet_models() -> list[Path]:
    root = Path(TFLM_SRC) / SEANET
    return sorted(root.glob("*/*.tflite")) if TFLM_SRC else []


def _csv(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", dtype=np.int64).ravel()


def _one_csv(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}, found {found}"
    return found[0]


@pytest.mark.skipif(not TFLM_SRC, reason="set TINYEDGE_TFLM_SRC to a tflite-micro checkout to run TFLM's seanet "
                                         "per-layer integration models")
@pytest.mark.parametrize("path", _seanet_models(), ids=lambda p: p.stem)
def test_tflm_seanet_integration_models_match_the_interpreter_and_the_goldens(path: Path, tmp_path):
    from tinyedge.reference import Reference

    model = parse_tflite(path.read_bytes())
    inputs = [_csv(_one_csv(path.parent, f"{path.stem}_input{i}_*.csv")).astype(t.dtype).reshape(t.shape)
              for i, t in enumerate(model.input_tensors)]
    golden = _csv(_one_csv(path.parent, f"{path.stem}_golden_*.csv"))
    aot = NativeModel(model, tmp_path).run(inputs)[0].ravel()
    interpreter = Reference(model).run(inputs)[0].ravel()
    assert np.array_equal(aot, interpreter), f"{np.sum(aot != interpreter)} values differ from tflite-micro's interpreter"
    if not np.array_equal(interpreter, golden):
        # tflite-micro's interpreter rescales LEAKY_RELU in double, the goldens' generator did not: one LSB here and there.
        assert path.parent.name == "leaky_relu" and np.max(np.abs(interpreter - golden)) <= 1
        pytest.xfail("TFLM's golden differs from tflite-micro's own interpreter by one LSB (the AOT matches the interpreter)")
    assert np.array_equal(aot, golden)


def _every_output(data: bytes) -> TfliteModel:
    """The model with every operator's output made a model output, to compare each layer."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    raw.subgraphs[0].outputs = [op.outputs[0] for op in raw.subgraphs[0].operators]
    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return parse_tflite(bytes(builder.Output()))


@pytest.mark.skipif(not TFLM_SRC, reason="set TINYEDGE_TFLM_SRC to a tflite-micro checkout to run TFLM's keyword model")
def test_tflm_keyword_model_with_int16_svdf_state_is_bit_exact_layer_by_layer(tmp_path):
    """keyword_scrambled.tflite: seven SVDFs with int8 input and int16 time weights and state, run 30
    invocations in a row (the state carries over), every layer's output compared."""
    from tinyedge.reference import Reference

    path = Path(TFLM_SRC) / "tensorflow/lite/micro/models/keyword_scrambled.tflite"
    model = _every_output(path.read_bytes())
    assert [op.opcode for op in model.operators].count("SVDF") == 7
    native, reference = NativeModel(model, tmp_path), Reference(model)
    assert "te_svdf_s16(" in native.program.source
    rng = np.random.default_rng(0)
    for step in range(30):
        x = rng.normal(0, 3000, model.input_tensors[0].shape).clip(-32768, 32767).astype(np.int16)
        for layer, (got, want) in enumerate(zip(native.run([x]), reference.run([x]))):
            assert np.array_equal(got, want), f"invocation {step}, operator {layer} ({model.operators[layer].opcode})"


@pytest.mark.skipif(not TFLM_SRC, reason="set TINYEDGE_TFLM_SRC to a tflite-micro checkout to run TFLM's keyword model")
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_tflm_keyword_model_with_int16_svdf_state_deploys_bit_exact_on_qemu_cortex_m4(tmp_path):
    """On a DSP core the int16-state SVDF takes its SMLAD path (x widened with its offset, the state row
    shifted a word at a time): every layer's output of keyword_scrambled.tflite, 20 invocations in a
    row on qemu-cortex-m4, the state carrying over."""
    import json

    from conftest import run_tinyedge

    model = _every_output((Path(TFLM_SRC) / "tensorflow/lite/micro/models/keyword_scrambled.tflite").read_bytes())
    (tmp_path / "keyword.tflite").write_bytes(model.data)
    rng = np.random.default_rng(5)
    x = rng.normal(0, 3000, (20, *model.input_tensors[0].shape)).clip(-32768, 32767).astype(np.int16)
    np.save(tmp_path / "x.npy", x)
    result = run_tinyedge("deploy", tmp_path / "keyword.tflite", "--board", "qemu-cortex-m4", "--runtime", "aot",
                          "--data", tmp_path / "x.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["samples"] == 20 and report["bit_exact"] == 1.0
