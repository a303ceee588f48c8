"""Model updates without reflashing: `generate --updatable`, `tinyedge bundle`, `tinyedge update`,
on the host board and under QEMU — a retrained model proven on the board before it is used, every
refusal in one sentence, and the power cut at many bytes of an update, after which the board boots
a whole model (the old or, once activated, the new one), never a mix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import quantized_session_model, require_tools, run_tinyedge
from lifecycle_support import (PROBES, check_a_lying_bundle_is_refused, check_killed_updates, check_power_cuts,
                               ed25519_keys, runs_exactly)

from tinyedge.build import build
from tinyedge.bundle import load_bundle, make_bundle
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.protocol import Device
from tinyedge.reference import Reference
from tinyedge.tflite_model import load_tflite
from tinyedge.update import UpdateFailed, update_board

STORE_FILE = "model_slots.flash"
RISCV_TOOLS = ("riscv64-unknown-elf-gcc", "make", "qemu-system-riscv32")


@pytest.fixture(scope="module")
def retrained(sine_model, tmp_path_factory) -> Path:
    """The sine model trained longer: the same graph, other weights and quantization parameters."""
    import models

    x, y = models.sine_data(300, seed=5)
    out = tmp_path_factory.mktemp("retrained")
    return quantized_session_model(out, "sine", models.sine_mlp(epochs=60), x, y, 200).int8


@pytest.fixture(scope="module")
def other_graph(tmp_path_factory) -> Path:
    import models

    x, y = models.blobs_images(60, seed=4)
    return quantized_session_model(tmp_path_factory.mktemp("other"), "cnn", models.small_cnn(epochs=1), x, y, 40).int8


@pytest.fixture(scope="module")
def bundles(retrained, sine_model, other_graph, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bundles")
    made = {"v2": make_bundle(retrained, 2, out / "v2.bundle", data=sine_model.eval_x, vectors=8).path,
            "v1-again": make_bundle(sine_model.int8, 1, out / "v1.bundle", vectors=4).path,
            "other-graph": make_bundle(other_graph, 3, out / "cnn.bundle", vectors=2).path}
    return made


@pytest.fixture(scope="module")
def host_updatable(sine_model, tmp_path_factory) -> Path:
    require_tools("cc", "make")
    project = tmp_path_factory.mktemp("host-updatable") / "fw"
    generate(sine_model.int8, "host", project, runtime="aot", updatable=True)
    build(project)
    return project


def fresh_store(project: Path) -> None:
    (project / STORE_FILE).unlink(missing_ok=True)


@pytest.mark.parametrize("board,tools", [("host", ("cc", "make")),
                                         ("qemu-cortex-m4", ("arm-none-eabi-gcc", "make", "qemu-system-arm")),
                                         ("qemu-riscv32", RISCV_TOOLS)])
def test_a_retrained_model_is_updated_proven_and_kept_across_a_power_cut(board, tools, sine_model, retrained,
                                                                       bundles, tmp_path):
    require_tools(*tools)
    project = tmp_path / "fw"
    generate(sine_model.int8, board, project, runtime="aot", updatable=True)
    build(project)
    with flash(project) as url:
        result = run_tinyedge("update", bundles["v2"], "--port", url, "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        with Device(url) as device:
            assert runs_exactly(device, retrained), "the board runs the new model, bit for bit"
            stats = device.stats()
    assert report["version"] == 2 and report["previous_version"] == 0
    assert report["model_sha256"] == load_tflite(retrained).sha256 == stats.model_sha256
    assert stats.slot == report["slot"] == 1

    with flash(project) as url:   # power off, power on
        status = json.loads(run_tinyedge("status", "--port", url, "--json").stdout)
        with Device(url) as device:
            assert runs_exactly(device, retrained)
    assert (status["model_version"], status["slot"]) == (2, 1)

    with flash(project) as url:   # the same version again, and an older one, are refused
        again = run_tinyedge("update", bundles["v2"], "--port", url)
        older = run_tinyedge("update", bundles["v1-again"], "--port", url)
        back = run_tinyedge("update", bundles["v1-again"], "--port", url, "--allow-downgrade", "--json")
    assert again.returncode == 3 and "is not above version 2" in again.stderr
    assert older.returncode == 3 and "--allow-downgrade" in older.stderr
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["slot"] == 0


def test_refusals_leave_the_old_model_running(host_updatable, bundles, sine_model, tmp_path):
    fresh_store(host_updatable)
    with flash(host_updatable) as url:
        other = run_tinyedge("update", bundles["other-graph"], "--port", url)
        corrupt = tmp_path / "corrupt.bundle"
        data = bytearray(bundles["v2"].read_bytes())
        data[len(data) // 2] ^= 0xFF
        corrupt.write_bytes(bytes(data))
        broken = run_tinyedge("update", corrupt, "--port", url)
        truncated = tmp_path / "truncated.bundle"
        truncated.write_bytes(bundles["v2"].read_bytes()[:300])
        cut = run_tinyedge("update", truncated, "--port", url)
        with Device(url) as device:
            assert runs_exactly(device, sine_model.int8)
            assert device.stats().model_version == 0
    assert other.returncode == 3 and "this firmware was compiled for another graph: deploy it" in other.stderr
    for result in (broken, cut):
        assert result.returncode == 1 and "not a readable model bundle" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_model_that_fails_its_self_test_is_never_activated(host_updatable, retrained, sine_model, tmp_path):
    fresh_store(host_updatable)
    check_a_lying_bundle_is_refused(host_updatable, retrained, sine_model.int8, tmp_path)


def test_firmware_without_slots_says_to_deploy_updatable_firmware(sine_model, bundles, tmp_path):
    require_tools("cc", "make")
    project = tmp_path / "fw"
    generate(sine_model.int8, "host", project, runtime="aot")
    build(project)
    with flash(project) as url:
        result = run_tinyedge("update", bundles["v2"], "--port", url)
    assert result.returncode == 3
    assert "has no model slots: generate it with --updatable and deploy it" in result.stderr


def test_the_uno_has_no_room_for_slots(sine_model, tmp_path):
    result = run_tinyedge("generate", sine_model.int8, "--board", "arduino-uno", "--updatable", "-o", tmp_path / "fw")
    assert result.returncode == 1 and "no room for updatable firmware" in result.stderr


def test_an_interrupted_transfer_resumes_where_it_stopped(host_updatable, bundles, retrained):
    fresh_store(host_updatable)
    bundle = load_bundle(bundles["v2"])
    with flash(host_updatable) as url:
        with Device(url) as device:
            device.info()
            device._info = device.info().__class__(**{**device.info().__dict__, "max_chunk": 100})

            def unplug(done: int, total: int) -> None:
                if done >= 300:
                    raise KeyboardInterrupt   # the user gave up, or the link died
            with pytest.raises(KeyboardInterrupt):
                update_board(device, bundle, progress=unplug)
        with Device(url) as device:
            report = update_board(device, bundle)
            assert runs_exactly(device, retrained)
    assert report.resumed_from >= 300 and report.sent_bytes == report.image_bytes - report.resumed_from


def test_power_cut_at_any_byte_of_an_update_boots_a_whole_model(host_updatable, bundles, sine_model, retrained,
                                                                  tmp_path):
    """A power cut at any of ~50 bytes of an update boots one whole model (lifecycle_support)."""
    check_power_cuts(host_updatable / "build" / "firmware", load_bundle(bundles["v2"]), sine_model.int8, tmp_path)


@pytest.mark.parametrize("board,tools", [("qemu-cortex-m4", ("arm-none-eabi-gcc", "make", "qemu-system-arm")),
                                         ("qemu-riscv32", RISCV_TOOLS)])
def test_qemu_killed_during_an_update_boots_the_old_model(board, tools, sine_model, retrained, bundles, tmp_path):
    """QEMU's flash is a semihosting file in the project: killing QEMU mid-transfer is a power cut."""
    require_tools(*tools)
    project = tmp_path / "fw"
    generate(sine_model.int8, board, project, runtime="aot", updatable=True)
    build(project)
    check_killed_updates(project, load_bundle(bundles["v2"]), sine_model.int8, retrained, (64, 256, 512, 700))


@pytest.mark.parametrize("min_agreement,outcome,version", [(0.0, "promoted", 2), (0.9, "dropped", 0)])
def test_shadow_runs_the_new_model_beside_the_old_one_before_promoting_it(
        min_agreement, outcome, version, host_updatable, bundles, sine_model, retrained):
    fresh_store(host_updatable)
    with flash(host_updatable) as url:
        staged = run_tinyedge("update", bundles["v2"], "--port", url, "--shadow", "6",
                              "--min-agreement", str(min_agreement))
        assert staged.returncode == 0, staged.stderr
        assert "runs version 2 beside it on its next 6 inferences" in staged.stdout
        with Device(url) as device:   # the application's live inferences, answered by the old model
            assert runs_exactly(device, sine_model.int8, PROBES[:6]), "the old model answers while the new one is shadowed"
            trial = device.stats().shadow
        status = json.loads(run_tinyedge("status", "--port", url, "--json").stdout)
        with Device(url) as device:
            assert runs_exactly(device, retrained if version == 2 else sine_model.int8)
    assert trial.done == 6 and trial.outcome == outcome
    assert trial.exact < 6, "the retrained model's outputs differ from the old one's on most inputs"
    assert status["model_version"] == version and status["shadow"]["outcome"] == outcome


def test_firmware_generated_with_a_key_takes_only_bundles_signed_with_it(sine_model, retrained, tmp_path):
    require_tools("cc", "make")
    keys, public = ed25519_keys(tmp_path, "ours", "theirs")
    project = tmp_path / "fw"
    made = run_tinyedge("generate", sine_model.int8, "--board", "host", "--runtime", "aot", "--updatable",
                        "--signing-key", public, "-o", project)
    assert made.returncode == 0, made.stderr
    build(project)
    for name, key in (("unsigned", None), ("theirs", keys["theirs"]), ("ours", keys["ours"])):
        args = ("--sign", key) if key else ()
        assert run_tinyedge("bundle", retrained, "--version", "2", "--vectors", "2", "-o", tmp_path / f"{name}.bundle",
                            *args).returncode == 0
    with flash(project) as url:
        unsigned = run_tinyedge("update", tmp_path / "unsigned.bundle", "--port", url)
        theirs = run_tinyedge("update", tmp_path / "theirs.bundle", "--port", url)
        ours = run_tinyedge("update", tmp_path / "ours.bundle", "--port", url)
    assert unsigned.returncode == 3 and "is not signed" in unsigned.stderr
    assert theirs.returncode == 3 and "signature does not match" in theirs.stderr
    assert ours.returncode == 0, ours.stderr


def test_two_updates_of_one_board_at_once_one_goes_through(host_updatable, bundles, retrained):
    import subprocess

    from conftest import TINYEDGE

    fresh_store(host_updatable)
    with flash(host_updatable) as url:
        runs = [subprocess.Popen([*TINYEDGE, "update", str(bundles["v2"]), "--port", url], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
        with Device(url) as device:
            assert device.stats().model_version == 2 and runs_exactly(device, retrained)
    assert sorted(code for code, _ in results) == [0, 3]
    refused = next(err for code, err in results if code == 3)
    assert ("another update of the board" in refused or "is not above version 2" in refused), refused


def test_a_board_without_a_persistent_store_is_told_so(sine_model, tmp_path):
    """A profile of the user's own whose port (here the Uno's, for a new 32-bit board) has no store yet."""
    import yaml

    from tinyedge.paths import boards_file

    boards = yaml.safe_load(boards_file().read_text())
    boards["boards"]["my-board"] = {**boards["boards"]["qemu-riscv32"], "name": "My board", "port": "avr"}
    custom = tmp_path / "boards.yaml"
    custom.write_text(yaml.safe_dump(boards))
    result = run_tinyedge("generate", sine_model.int8, "--board", "my-board", "--updatable", "-o", tmp_path / "fw",
                          env={"TINYEDGE_BOARDS": str(custom)})
    assert result.returncode == 1, result.stderr
    assert "my-board board's port (avr) has no persistent store for model slots yet" in result.stderr
    assert "riscv_virt" in result.stderr, "the sentence names the ports that have one"


def test_a_profile_can_make_updatable_firmware_the_default(sine_model, tmp_path):
    import yaml

    from tinyedge.paths import boards_file

    boards = yaml.safe_load(boards_file().read_text())
    boards["boards"]["host"]["updatable"] = True
    custom = tmp_path / "boards.yaml"
    custom.write_text(yaml.safe_dump(boards))
    env = {"TINYEDGE_BOARDS": str(custom)}
    assert run_tinyedge("generate", sine_model.int8, "--board", "host", "--runtime", "aot", "-o", tmp_path / "on",
                        env=env).returncode == 0
    assert run_tinyedge("generate", sine_model.int8, "--board", "host", "--runtime", "aot", "--not-updatable",
                        "-o", tmp_path / "off", env=env).returncode == 0
    assert json.loads((tmp_path / "on" / "tinyedge.json").read_text())["extra"]["updatable"]["graph_sha256"]
    assert json.loads((tmp_path / "off" / "tinyedge.json").read_text())["extra"]["updatable"] is None


@pytest.mark.parametrize("board,tools", [("host", ("cc", "make")),
                                         ("qemu-cortex-m4", ("arm-none-eabi-gcc", "make", "qemu-system-arm"))])
def test_a_retrained_cnn_with_new_softmax_and_pooling_parameters_is_the_same_graph(board, tools, cnn_model, tmp_path):
    """Retraining moves quantization parameters that the AOT code passes as literals (softmax's
    rescaling, pooling's activation range): they travel in the slot too, on the DSP kernels as well."""
    import models

    require_tools(*tools)
    x, y = models.blobs_images(160, seed=9)
    (tmp_path / "retrained").mkdir()
    retrained_cnn = quantized_session_model(tmp_path / "retrained", "cnn", models.small_cnn(epochs=1), x, y, 100).int8
    project = tmp_path / "fw"
    generate(cnn_model.int8, board, project, runtime="aot", updatable=True)
    build(project)
    bundle = make_bundle(retrained_cnn, 2, tmp_path / "cnn.bundle", data=cnn_model.eval_x, vectors=3)
    inputs = np.load(cnn_model.eval_x)[:3]
    reference = Reference(load_tflite(retrained_cnn))
    tensor = load_tflite(retrained_cnn).input_tensors[0]
    with flash(project) as url, Device(url, timeout=30) as device:
        assert update_board(device, bundle).version == 2
        for sample in inputs:
            q = np.clip(np.round(sample / tensor.scale[0] + tensor.zero_point[0]), -128, 127).astype(np.int8)[None]
            assert device.infer(q.tobytes()).output == reference.run([q])[0].tobytes()


@pytest.mark.parametrize("board,tools", [("host", ("cc", "make")),
                                         ("qemu-cortex-m4", ("arm-none-eabi-gcc", "make", "qemu-system-arm")),
                                         ("qemu-riscv32", RISCV_TOOLS)])
def test_a_keyed_board_verifies_signatures_itself_when_the_host_skips_it(board, tools, sine_model, retrained,
                                                                         tmp_path):
    """Firmware generated with --signing-key checks the bundle's Ed25519 signature with its own verifier
    (te_ed25519.c): a host that skips the check still cannot make it run an unsigned bundle, one signed
    with another key, or a signed manifest with another model's image."""
    require_tools(*tools)
    keys, public = ed25519_keys(tmp_path, "ours", "theirs")
    project = tmp_path / "fw"
    generate(sine_model.int8, board, project, runtime="aot", updatable=True, signing_key=public)
    build(project)
    unsigned = make_bundle(retrained, 2, tmp_path / "unsigned.bundle", vectors=2)
    theirs = make_bundle(retrained, 2, tmp_path / "theirs.bundle", vectors=2, sign_key=keys["theirs"])
    ours = make_bundle(retrained, 2, tmp_path / "ours.bundle", vectors=2, sign_key=keys["ours"])
    swapped = ours.__class__(**{**ours.__dict__, "model_bytes": sine_model.int8.read_bytes()})
    with flash(project) as url, Device(url) as device:
        for bundle in (unsigned, theirs):
            with pytest.raises(UpdateFailed, match="not signed with the key its firmware was generated with"):
                update_board(device, bundle, host_check=False)
            assert device.stats().model_version == 0 and runs_exactly(device, sine_model.int8)
        with pytest.raises(UpdateFailed):
            update_board(device, swapped, host_check=False)
        assert device.stats().model_version == 0 and runs_exactly(device, sine_model.int8)
        assert update_board(device, ours, host_check=False).version == 2
        assert runs_exactly(device, retrained)


def test_the_host_sends_update_chunks_of_whole_words(sine_model, bundles, tmp_path, monkeypatch):
    """A profile whose receive buffer gives a chunk that is not a multiple of 4 (rx_buffer_bytes 249: 233
    bytes) still gets whole 32-bit words per UPDATE_DATA, so a flash that programs whole words once between
    erases (the nRF52840's) programs each word of the slot once, in the erased page."""
    import yaml

    from tinyedge.paths import boards_file

    require_tools("cc", "make")
    boards = yaml.safe_load(boards_file().read_text())
    boards["boards"]["host"]["rx_buffer_bytes"] = 249
    (tmp_path / "boards.yaml").write_text(yaml.safe_dump(boards))
    monkeypatch.setenv("TINYEDGE_BOARDS", str(tmp_path / "boards.yaml"))
    project = tmp_path / "fw"
    generate(sine_model.int8, "host", project, runtime="aot", updatable=True)
    build(project)
    sent: list[int] = []
    with flash(project) as url, Device(url) as device:
        assert device.info().max_chunk % 4 != 0
        report = update_board(device, load_bundle(bundles["v2"]), progress=lambda done, total: sent.append(done))
    assert sent[-1] == report.image_bytes and len(sent) > 1
    assert all(done % 4 == 0 for done in sent[:-1]), sent
