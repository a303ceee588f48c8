"""ONNX (and so PyTorch) models in: a user who exported NCHW models from PyTorch quantizes and deploys
them with the NCHW arrays they hold; ONNX Runtime is the float reference; the board answers bit for
bit like tflite-micro; nothing is downloaded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import onnx_models
from conftest import require_tools, requires_tflm, run_tinyedge
from tinyedge.reference import Reference
from tinyedge.tflite_model import load_tflite

QEMU_TOOLS = ("arm-none-eabi-gcc", "make", "qemu-system-arm")


def onnxruntime_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {session.get_inputs()[0].name: x[i:i + 1]})[0] for i in range(len(x))])


def assert_int8_within_2_lsb_rmse_of_onnxruntime(tflite: Path, onnx_model: Path, x_onnx: np.ndarray,
                                            x_board: np.ndarray) -> None:
    model = load_tflite(tflite)
    tin, tout = model.input_tensors[0], model.output_tensors[0]
    reference = Reference(model)
    q_in = np.clip(np.round(x_board / tin.scale[0]) + tin.zero_point[0], -128, 127).astype(np.int8)
    int8 = np.stack([reference.run([q.reshape(tin.shape)])[0].ravel() for q in q_in]).astype(np.int32)
    float_in_lsb = (onnxruntime_outputs(onnx_model, x_onnx) / tout.scale[0] + tout.zero_point[0]).reshape(int8.shape)
    error_lsb = np.sqrt(np.mean((int8 - float_in_lsb) ** 2))
    print(f"int8 vs ONNX Runtime: RMSE {error_lsb:.2f} LSB, max {np.abs(int8 - float_in_lsb).max():.2f} LSB")
    assert error_lsb <= 2
    if int8.shape[1] > 1:
        assert np.mean(int8.argmax(axis=1) == float_in_lsb.argmax(axis=1)) >= 0.9


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cnn_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx-cnn")
    model = onnx_models.cnn(out / "cnn.onnx")
    rng = np.random.default_rng(3)
    np.save(out / "cal_nchw.npy", rng.uniform(0, 1, (48, 3, 16, 16)).astype(np.float32))
    x = rng.uniform(0, 1, (24, 3, 16, 16)).astype(np.float32)
    np.save(out / "x_nchw.npy", x)
    np.save(out / "y.npy", onnxruntime_outputs(model, x).argmax(axis=1))
    return out


@pytest.mark.slow
def test_pytorch_style_cnn_deploys_to_qemu_with_its_nchw_arrays(cnn_files, tmp_path):
    require_tools(*QEMU_TOOLS)
    model = cnn_files / "cnn.onnx"
    before = sha256(model)
    result = run_tinyedge("deploy", model, "--board", "qemu-cortex-m4", "--runtime", "aot",
                          "--calibration", cnn_files / "cal_nchw.npy", "--data", cnn_files / "x_nchw.npy",
                          "--labels", cnn_files / "y.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json",
                          cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0 and report["samples"] == 24
    assert report["input_layout"] == "NHWC (transposed from the NCHW arrays given)"
    assert report["accuracy"]["float"] == 1.0, "the labels are ONNX Runtime's own answers"
    assert "the board is fed NHWC" in result.stdout
    assert "vs float (ONNX Runtime)" in " ".join(result.stdout.split())

    tflite = tmp_path / "out" / "cnn_int8.tflite"
    ops = load_tflite(tflite).op_names()
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE", "FULLY_CONNECTED"} <= set(ops)
    x = np.load(cnn_files / "x_nchw.npy")
    assert_int8_within_2_lsb_rmse_of_onnxruntime(tflite, model, x, x.transpose(0, 2, 3, 1))
    assert sha256(model) == before, "onnx2tf simplifies models in place: the user's file must stay untouched"
    assert not list(tmp_path.glob("calibration_image_sample_data*")), "nothing is fetched or left in the cwd"


@pytest.mark.slow
def test_mlp_quantizes_with_onnxruntime_as_the_float_reference_then_deploys(tmp_path):
    require_tools(*QEMU_TOOLS)
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    rng = np.random.default_rng(4)
    cal = rng.uniform(-1, 1, (60, 10)).astype(np.float32)
    np.save(tmp_path / "cal.npy", cal)
    result = run_tinyedge("quantize", model, "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "mlp_int8.tflite",
                          "--json", tmp_path / "quantize.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "float (ONNX Runtime)" in result.stdout
    report = json.loads((tmp_path / "quantize.json").read_text())
    assert report["float_reference"] == "ONNX Runtime" and report["input_layout"] is None
    assert report["cosine"] > 0.999
    assert_int8_within_2_lsb_rmse_of_onnxruntime(tmp_path / "mlp_int8.tflite", model, cal, cal)
    assert load_tflite(tmp_path / "mlp_int8.tflite").input_tensors[0].shape == (1, 10), "the free batch is fixed to 1"

    deployed = run_tinyedge("deploy", tmp_path / "mlp_int8.tflite", "--board", "qemu-cortex-m4", "--runtime", "aot",
                            "--data", tmp_path / "cal.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert json.loads((tmp_path / "report.json").read_text())["bit_exact"] == 1.0


def assert_one_sentence_error(result, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert message.startswith("error:")
    for fragment in fragments:
        assert fragment in message


def test_a_corrupt_onnx_file_is_refused_in_one_sentence(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07 this is not a protobuf model")
    np.save(tmp_path / "cal.npy", np.zeros((4, 10), np.float32))
    result = run_tinyedge("quantize", tmp_path / "broken.onnx", "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "o.tflite")
    assert_one_sentence_error(result, "broken.onnx is not a valid ONNX model", "export it again")


def test_an_op_onnx2tf_cannot_convert_is_named(tmp_path):
    model = onnx_models.with_scaler(tmp_path / "scaler.onnx")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(0, 1, (8, 6)).astype(np.float32))
    result = run_tinyedge("quantize", model, "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "o.tflite")
    assert_one_sentence_error(result, "no conversion for the ONNX op Scaler")
    assert not (tmp_path / "o.tflite").exists()


def test_calibration_data_in_neither_layout_is_refused_naming_both(cnn_files, tmp_path):
    np.save(tmp_path / "cal.npy", np.zeros((5, 16, 16, 4), np.float32))
    result = run_tinyedge("quantize", cnn_files / "cnn.onnx", "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "o.tflite")
    assert_one_sentence_error(result, "(3, 16, 16) (NCHW, as it declares) or (16, 16, 3) (NHWC)",
                              "give an array of shape (N, 3, 16, 16)")


def test_a_free_dimension_besides_the_batch_is_refused(tmp_path):
    model = onnx_models.free_length(tmp_path / "free.onnx")
    np.save(tmp_path / "cal.npy", np.zeros((4, 4, 9), np.float32))
    result = run_tinyedge("quantize", model, "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "o.tflite")
    assert_one_sentence_error(result, "free input dimension besides the batch", "fixed input shapes")


def test_nchw_and_nhwc_arrays_give_the_same_board_inputs(cnn_files):
    from tinyedge.onnx_import import OnnxModel

    model = OnnxModel(cnn_files / "cnn.onnx")
    nchw = np.load(cnn_files / "x_nchw.npy")
    nhwc = nchw.transpose(0, 2, 3, 1)
    assert model.input_shapes == [(1, 16, 16, 3)]
    assert np.array_equal(model.arrange(nchw, "validation", "--data"), nhwc)
    assert np.array_equal(model.arrange(nhwc, "validation", "--data"), nhwc)
    assert np.allclose(model.predict([nhwc[:1]])[0], onnxruntime_outputs(cnn_files / "cnn.onnx", nchw[:1]))


@pytest.mark.slow
@requires_tflm
def test_the_onnx_cnn_with_its_transpose_runs_bit_exact_on_tflm(cnn_files, tmp_path):
    require_tools(*QEMU_TOOLS)
    from tinyedge.quantize import quantize_model

    report = quantize_model(cnn_files / "cnn.onnx", np.load(cnn_files / "cal_nchw.npy"), tmp_path / "cnn_int8.tflite")
    assert "TRANSPOSE" in report.ops
    np.save(tmp_path / "x_nhwc.npy", np.load(cnn_files / "x_nchw.npy")[:8].transpose(0, 2, 3, 1))
    result = run_tinyedge("deploy", tmp_path / "cnn_int8.tflite", "--board", "qemu-cortex-m4", "--runtime", "tflm",
                          "--data", tmp_path / "x_nhwc.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["runtime"] == "tflm" and report["bit_exact"] == 1.0


@pytest.mark.slow
def test_deploying_an_onnx_model_names_onnxruntime_as_the_float_reference_of_its_report(tmp_path):
    """README: ONNX Runtime is the float reference of the report (`float_reference` in `--json`),
    for `deploy model.onnx` as for `quantize` (issue 17: deploy's report had no such key)."""
    require_tools(*QEMU_TOOLS)
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    np.save(tmp_path / "cal.npy", np.random.default_rng(5).uniform(-1, 1, (40, 10)).astype(np.float32))
    deployed = run_tinyedge("deploy", model, "--board", "qemu-cortex-m4", "--runtime", "aot",
                            "--calibration", tmp_path / "cal.npy", "--data", tmp_path / "cal.npy",
                            "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "vs float (ONNX Runtime)" in deployed.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["float_reference"] == "ONNX Runtime" and report["bit_exact"] == 1.0


# ---------------------------------------------------------------- ONNX as PyTorch writes it: external data, opsets


def folder_state(folder: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in folder.iterdir() if p.is_file()}


@pytest.mark.slow
def test_a_model_whose_weights_lie_in_an_external_file_deploys_on_the_host_board(tmp_path):
    """As torch.onnx.export writes it: the graph in one file, the weights in another next to it (here
    with spaces in both names); deploy reads both from the model's folder and changes neither."""
    exported = tmp_path / "exported"
    exported.mkdir()
    model = onnx_models.with_external_data(onnx_models.mlp(exported / "my mlp.onnx"), "my mlp weights.bin")
    assert (exported / "my mlp weights.bin").stat().st_size > 500
    cal = np.random.default_rng(4).uniform(-1, 1, (40, 10)).astype(np.float32)
    np.save(tmp_path / "cal.npy", cal)
    before = folder_state(exported)
    result = run_tinyedge("deploy", model, "--board", "host", "--runtime", "aot", "--calibration", tmp_path / "cal.npy",
                          "-o", tmp_path / "out", "--json", tmp_path / "report.json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0 and report["samples"] == 40
    assert folder_state(exported) == before, "the user's model and weights are read, never written"
    calibrated = cal[:32]   # the 8 others are held out for the accuracy figures, and may fall outside its ranges
    assert_int8_within_2_lsb_rmse_of_onnxruntime(tmp_path / "out" / "my mlp_int8.tflite", model, calibrated, calibrated)


@pytest.fixture
def external_mlp(tmp_path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    np.save(tmp_path / "cal.npy", np.zeros((8, 10), np.float32))
    return onnx_models.with_external_data(onnx_models.mlp(folder / "mlp.onnx"), "mlp.onnx.data")


def quantize_refused(model: Path, tmp_path: Path, *fragments: str) -> None:
    before = folder_state(model.parent)
    result = run_tinyedge("quantize", model, "--calibration", tmp_path / "cal.npy", "-o", tmp_path / "out" / "o.tflite")
    assert_one_sentence_error(result, *fragments)
    assert not (tmp_path / "out").exists(), "nothing is written"
    assert folder_state(model.parent) == before


def test_a_missing_external_data_file_is_refused_in_one_sentence(external_mlp, tmp_path):
    (external_mlp.parent / "mlp.onnx.data").unlink()
    quantize_refused(external_mlp, tmp_path, "mlp.onnx stores tensor", "in 'mlp.onnx.data', which is missing",
                     "copy that file next to the model")


@pytest.mark.parametrize("where", ["../weights.bin", "absolute"])
def test_external_data_outside_the_models_folder_is_refused_even_when_it_exists(external_mlp, tmp_path, where):
    outside = tmp_path / "weights.bin"
    (external_mlp.parent / "mlp.onnx.data").rename(outside)
    location = str(outside) if where == "absolute" else where
    onnx_models.point_external_data_at(external_mlp, location)
    quantize_refused(external_mlp, tmp_path, f"in {location!r}, outside the model's folder",
                     "save the model with its external data next to it")


@pytest.mark.parametrize("opset", [5, 99])
def test_an_opset_onnx2tf_cannot_read_is_refused_in_one_sentence(tmp_path, opset):
    (tmp_path / "model").mkdir()
    np.save(tmp_path / "cal.npy", np.zeros((8, 10), np.float32))
    model = onnx_models.with_opset(onnx_models.mlp(tmp_path / "model" / "mlp.onnx"), opset)
    quantize_refused(model, tmp_path, f"mlp.onnx uses ONNX opset {opset}, which onnx2tf cannot read",
                     "opset_version=18")
