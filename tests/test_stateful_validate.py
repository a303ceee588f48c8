"""A stateful model (SVDF state kept on the board from boot) validates truthfully however often it is
validated without re-flashing: the board's state is reset to its boot values before the first sample,
as the host reference starts fresh, and a run is never resumed halfway through its state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tools, requires_tflm, run_tinyedge
from tinyedge.build import build
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.protocol import Device
from tinyedge.tflite_model import load_tflite

@pytest.fixture(scope="module")
def keyword_svdfs(tmp_path_factory) -> Path:
    """The real keyword model through its seven SVDFs, tamed: the whole model's scrambled weights
    saturate its output whatever the state, these outputs change with it."""
    from test_aot_recurrent import KEYWORD, _real, sub_model, tamed

    path = tmp_path_factory.mktemp("svdfs") / "keyword_svdfs.tflite"
    path.write_bytes(tamed(sub_model(_real(KEYWORD), 0, 11)).data)
    return path


def _firmware(model: Path, project: Path) -> Path:
    require_tools("cc", "make")
    generate(model, "host", project, runtime="aot")
    build(project)
    return project


@pytest.fixture(scope="module")
def keyword_firmware(keyword_svdfs, tmp_path_factory) -> Path:
    return _firmware(keyword_svdfs, tmp_path_factory.mktemp("keyword") / "fw")


@pytest.fixture
def samples(keyword_svdfs, tmp_path) -> Path:
    t = load_tflite(keyword_svdfs).input_tensors[0]
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(5).integers(-128, 128, (8, *t.shape)).astype(t.dtype))
    return path


def _validate(port: str, model: Path, samples: Path, report: Path, *extra: str):
    return run_tinyedge("validate", "--port", port, "--model", model, "--data", samples, "--json", report, *extra)


def test_svdf_models_are_stateful_and_a_cnn_is_not(keyword_svdfs, cnn_model):
    assert load_tflite(keyword_svdfs).is_stateful
    assert not load_tflite(cnn_model.int8).is_stateful


@pytest.mark.parametrize("which", ["real keyword model", "its tamed SVDFs"])
def test_validating_twice_on_the_same_running_board_passes_both_times(which, keyword_svdfs, samples, tmp_path):
    from test_aot_recurrent import KEYWORD, _real

    model = keyword_svdfs if which == "its tamed SVDFs" else _real(KEYWORD).path
    with flash(_firmware(model, tmp_path / "fw")) as port:
        for run in ("first", "second"):
            result = _validate(port, model, samples, tmp_path / f"{run}.json")
            assert result.returncode == 0, f"{run} run: {result.stdout}{result.stderr}"
            report = json.loads((tmp_path / f"{run}.json").read_text())
            assert report["samples"] == 8 and report["bit_exact"] == 1.0 and report["max_abs_diff_lsb"] == 0


def test_reset_state_is_idempotent_and_restores_the_boot_outputs(keyword_firmware, samples):
    x = np.load(samples)[0].tobytes()
    with flash(keyword_firmware) as port, Device(port) as device:
        at_boot = [device.infer(x).output for _ in range(3)]
        assert len(set(at_boot)) > 1   # the state carries over: the same input answers differently
        device.reset_state()
        device.reset_state()
        assert [device.infer(x).output for _ in range(3)] == at_boot


def test_resume_of_a_stateful_model_is_refused_in_one_sentence(keyword_firmware, keyword_svdfs, samples, tmp_path):
    journal = tmp_path / "run.jsonl"
    with flash(keyword_firmware) as port:
        assert _validate(port, keyword_svdfs, samples, tmp_path / "r.json", "--journal", journal).returncode == 0
        lines = journal.read_text().splitlines()
        journal.write_text("\n".join(lines[:5]) + "\n")   # interrupted after 4 samples
        before = journal.read_text()
        result = _validate(port, keyword_svdfs, samples, tmp_path / "r.json", "--journal", journal, "--resume")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rerun validate without --resume" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert journal.read_text() == before


def test_firmware_that_predates_reset_state_is_refused_for_a_stateful_model(keyword_svdfs, samples, tmp_path):
    """Firmware of an older tinyedge answers RESET_STATE with a NAK (unknown request): rebuilt here
    from this protocol with that request taken out."""
    old = tmp_path / "old-fw"
    generate(keyword_svdfs, "host", old, runtime="aot")
    protocol = old / "src" / "te_protocol.c"
    source = protocol.read_text()
    start = source.index("    case TE_MSG_RESET_STATE:")
    request = source[start:source.index("    default:", start)]
    protocol.write_text(source.replace(request, ""))
    build(old)
    with flash(old) as port:
        result = _validate(port, keyword_svdfs, samples, tmp_path / "r.json")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "predates the RESET_STATE request" in result.stderr and "flash firmware" in result.stderr
    assert "PASS" not in result.stdout and "FAIL" not in result.stdout


@requires_tflm
def test_tflm_firmware_resets_its_variable_tensors_between_validations(keyword_svdfs, samples, tmp_path):
    require_tools("cc", "c++", "make")
    project = tmp_path / "fw"
    generate(keyword_svdfs, "host", project, runtime="tflm")
    build(project)
    with flash(project) as port:
        for run in ("first", "second"):
            result = _validate(port, keyword_svdfs, samples, tmp_path / f"{run}.json")
            assert result.returncode == 0, f"{run} run: {result.stdout}{result.stderr}"
            report = json.loads((tmp_path / f"{run}.json").read_text())
            assert report["runtime"] == "tflm" and report["bit_exact"] == 1.0


def test_a_board_that_resets_mid_run_stops_the_run_instead_of_comparing_lost_state(keyword_firmware, keyword_svdfs,
                                                                                  samples, monkeypatch):
    from tinyedge.validate import StoppedByDevice, validate

    monkeypatch.setenv("TE_POSIX_RESET_AT_RX", "1000")   # the emulated board resets after 1000 bytes received
    with flash(keyword_firmware) as port, pytest.raises(StoppedByDevice) as stopped:
        validate(port, keyword_svdfs, np.load(samples))
    assert "reset during sample" in str(stopped.value)
    report = stopped.value.report
    assert 0 < report.samples < 8 and report.bit_exact == 1.0
