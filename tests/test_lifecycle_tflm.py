"""Model updates of TFLM firmware: with `--runtime tflm --updatable` the .tflite itself is the slot's
content, and the board rebuilds its interpreter on the new flatbuffer. TFLM is not compiled for a
graph, so a retrained model and a model of another shape made of the same ops both update; a model
needing an op the firmware lacks, or more arena than it has, is refused by the board and the old
model keeps running. Killing QEMU mid-update boots a whole model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import quantized_session_model, require_tools, requires_tflm, run_tinyedge, tflm_tree
from lifecycle_support import check_power_cuts, ed25519_keys, runs_exactly, update_killed_after

from tinyedge.build import build
from tinyedge.bundle import load_bundle, make_bundle
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.protocol import Device
from tinyedge.tflite_model import load_tflite
from tinyedge.update import rollback, update_board

pytestmark = requires_tflm
QEMU_TOOLS = ("arm-none-eabi-gcc", "make", "qemu-system-arm")


def mlp(widths: list[int], activation: str = "relu", epochs: int = 20):
    """1 -> widths... -> 1, trained on the sine data."""
    import models

    k = models.keras()
    k.utils.set_random_seed(3)
    model = k.Sequential([k.Input(shape=(1,)), *[k.layers.Dense(w, activation=activation) for w in widths],
                          k.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x, y = models.sine_data()
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


def quantized(tmp_path_factory, name: str, keras_model) -> Path:
    import models

    x, y = models.sine_data(300, seed=5)
    return quantized_session_model(tmp_path_factory.mktemp(name), name, keras_model, x, y, 200).int8


@pytest.fixture(scope="module")
def models_(sine_model, tmp_path_factory) -> dict[str, Path]:
    """The built-in model, a retrained one (same graph), one of another shape with the same ops, one
    needing an op (TANH) the built-in's resolver lacks, and a wide one needing a large arena."""
    import models

    return {"built-in": sine_model.int8,
            "retrained": quantized(tmp_path_factory, "retrained", models.sine_mlp(epochs=60)),
            "reshaped": quantized(tmp_path_factory, "reshaped", mlp([32, 24, 8])),
            "tanh": quantized(tmp_path_factory, "tanh", mlp([16], activation="tanh")),
            "wide": quantized(tmp_path_factory, "wide", mlp([800], epochs=2))}


@pytest.fixture(scope="module")
def bundles(models_, sine_model, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bundles")
    versions = {"retrained": 2, "reshaped": 3, "tanh": 4, "wide": 5}
    return {name: make_bundle(models_[name], version, out / f"{name}.bundle", data=sine_model.eval_x,
                              vectors=4).path for name, version in versions.items()}


def updatable_tflm(model: Path, board: str, out: Path, **options) -> Path:
    generate(model, board, out, runtime="tflm", tflm_dir=tflm_tree(), updatable=True, **options)
    build(out)
    return out


@pytest.fixture(scope="module")
def qemu_tflm(models_, tmp_path_factory) -> Path:
    require_tools(*QEMU_TOOLS)
    return updatable_tflm(models_["built-in"], "qemu-cortex-m4", tmp_path_factory.mktemp("qemu-tflm") / "fw")


def fresh_store(project: Path) -> None:
    (project / "model_slots.flash").unlink(missing_ok=True)


def test_retrained_and_reshaped_models_update_tflm_firmware_and_roll_back(qemu_tflm, models_, bundles):
    fresh_store(qemu_tflm)
    manifest = json.loads((qemu_tflm / "tinyedge.json").read_text())
    assert manifest["extra"]["updatable"]["runtime"] == "tflm"
    with flash(qemu_tflm) as url:
        retrained = run_tinyedge("update", bundles["retrained"], "--port", url, "--json")
        assert retrained.returncode == 0, retrained.stderr
        with Device(url) as device:
            assert runs_exactly(device, models_["retrained"])
        reshaped = run_tinyedge("update", bundles["reshaped"], "--port", url, "--json")
        assert reshaped.returncode == 0, reshaped.stderr
        with Device(url) as device:
            assert runs_exactly(device, models_["reshaped"]), "another graph of the same ops runs, bit for bit"
    assert json.loads(reshaped.stdout)["model_sha256"] == load_tflite(models_["reshaped"]).sha256

    with flash(qemu_tflm) as url:   # power off, power on: the reshaped model is still there
        status = json.loads(run_tinyedge("status", "--port", url, "--json").stdout)
        with Device(url) as device:
            assert runs_exactly(device, models_["reshaped"])
        with Device(url) as device:   # what fleet update does to a board that failed after its update
            assert rollback(device).model_version == 2 and runs_exactly(device, models_["retrained"])
    assert (status["model_version"], status["slot"]) == (3, 0)


def test_a_model_needing_an_op_the_firmware_lacks_is_refused_by_the_board(qemu_tflm, models_, bundles):
    fresh_store(qemu_tflm)
    with flash(qemu_tflm) as url:
        result = run_tinyedge("update", bundles["tanh"], "--port", url)
        with Device(url) as device:
            assert device.stats().model_version == 0
            assert runs_exactly(device, models_["built-in"])
    assert result.returncode == 3
    assert "needs the TANH op, which the firmware on" in result.stderr and "old model stays active" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_model_that_does_not_fit_the_arena_is_refused_and_the_old_one_runs(models_, bundles, tmp_path):
    require_tools(*QEMU_TOOLS)
    project = updatable_tflm(models_["built-in"], "qemu-cortex-m4", tmp_path / "fw", arena_kb=4)
    with flash(project) as url:
        result = run_tinyedge("update", bundles["wide"], "--port", url)
        assert result.returncode == 3, result.stderr
        with Device(url) as device:
            assert device.stats().model_version == 0
            assert runs_exactly(device, models_["built-in"])
    assert result.returncode == 3
    assert "does not fit the 4,096-byte tensor arena" in result.stderr, result.stderr


def test_a_model_with_other_inputs_is_refused_in_one_sentence(qemu_tflm, cnn_model, tmp_path):
    bundle = make_bundle(cnn_model.int8, 7, tmp_path / "cnn.bundle", vectors=1)
    with flash(qemu_tflm) as url:
        result = run_tinyedge("update", bundle.path, "--port", url)
    assert result.returncode == 3 and "deploy it instead" in result.stderr and "input bytes" in result.stderr


def test_qemu_killed_during_a_tflm_update_boots_a_whole_model(qemu_tflm, models_, bundles):
    """QEMU's flash is a semihosting file in the project: killing QEMU is a power cut."""
    fresh_store(qemu_tflm)
    bundle = load_bundle(bundles["reshaped"])
    for kill_after in (64, 1024, 2500, 10**9):   # 10**9: the whole image is in, COMMIT not yet sent
        update_killed_after(qemu_tflm, bundle, kill_after)
        with flash(qemu_tflm) as url, Device(url) as device:
            assert device.stats().model_version == 0, f"killed after {kill_after} bytes"
            assert runs_exactly(device, models_["built-in"])
    with flash(qemu_tflm) as url, Device(url) as device:
        assert update_board(device, bundle).version == 3
    with flash(qemu_tflm) as url, Device(url) as device:
        assert device.stats().model_version == 3 and runs_exactly(device, models_["reshaped"])


def test_keyed_tflm_firmware_checks_that_the_signed_model_is_the_one_in_its_slot(models_, tmp_path):
    """With a key, the board verifies the signature itself and hashes the flatbuffer it received
    against the signed manifest: a host that skips the checks cannot slip another model in."""
    from tinyedge.update import UpdateFailed

    require_tools(*QEMU_TOOLS)
    keys, public = ed25519_keys(tmp_path, "ours")
    private = keys["ours"]
    project = updatable_tflm(models_["built-in"], "qemu-cortex-m4", tmp_path / "fw", signing_key=public)
    signed = make_bundle(models_["reshaped"], 3, tmp_path / "signed.bundle", vectors=2, sign_key=private)
    swapped = signed.__class__(**{**signed.__dict__, "model_bytes": models_["retrained"].read_bytes()})
    with flash(project) as url, Device(url) as device:
        with pytest.raises(UpdateFailed, match="not signed with the key its firmware was generated with"):
            update_board(device, swapped, host_check=False)
        assert device.stats().model_version == 0 and runs_exactly(device, models_["built-in"])
        assert update_board(device, signed, host_check=False).version == 3
        assert runs_exactly(device, models_["reshaped"])


def test_power_cut_at_any_byte_of_a_tflm_update_boots_a_whole_model(models_, bundles, tmp_path):
    require_tools("cc", "make")
    project = updatable_tflm(models_["built-in"], "host", tmp_path / "fw")
    check_power_cuts(project / "build" / "firmware", load_bundle(bundles["retrained"]), models_["built-in"], tmp_path,
                     step=97)
