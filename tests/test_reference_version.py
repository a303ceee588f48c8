"""A FAIL caused by the reference itself is named as such (issue 17, item 9): reports say which
tflite-micro the host reference is and which the board runs; when they differ and outputs differ,
the verdict says it is a version mismatch, not a board fault, and the reference can be pinned."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import run_tinyedge, tflm_tree
from tinyedge.aot import TFLM_COMMIT
from tinyedge.build import build
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.protocol import Device
from tinyedge.reference import PIN_ENV, check_pinned_reference, reference_version
from tinyedge.validate import validate


def test_a_passing_report_names_the_reference_and_the_aot_arithmetic(host_board, cnn_model, tmp_path):
    np.save(tmp_path / "x.npy", np.load(cnn_model.eval_x)[:3])
    result = run_tinyedge("validate", "--port", host_board, "--model", cnn_model.int8, "--data", "x.npy",
                          "--json", "r.json", "--junit", "r.xml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    installed = reference_version()
    assert report["reference_version"] == f"tflite_micro {installed.package}"
    assert report["reference_commit"] == installed.commit and installed.commit
    assert report["board_tflm_commit"] == TFLM_COMMIT and report["version_mismatch"] is False
    assert f'name="reference_version" value="tflite_micro {installed.package}"' in (tmp_path / "r.xml").read_text()
    assert "host reference" in result.stdout and installed.package in result.stdout


def test_the_aot_source_states_the_tflite_micro_it_reproduces(sine_model, tmp_path):
    generate(sine_model.int8, "host", tmp_path / "fw", runtime="aot")
    assert f"reference-kernel arithmetic of tflite-micro {TFLM_COMMIT}" in (tmp_path / "fw" / "aot" / "te_model.c").read_text()


def test_a_pinned_reference_that_is_not_installed_is_refused_before_the_board_is_opened(cnn_model, tmp_path):
    np.save(tmp_path / "x.npy", np.load(cnn_model.eval_x)[:2])
    result = run_tinyedge("validate", "--port", "/dev/ttyNOPE0", "--model", cnn_model.int8, "--data", "x.npy",
                          cwd=tmp_path, env={PIN_ENV: "90b983c"})
    assert result.returncode == 1
    assert f"not the 90b983c pinned by {PIN_ENV}" in " ".join(result.stderr.split())
    installed = reference_version()
    for pin in (installed.package, installed.package.split("-g")[0], installed.commit):
        assert check_pinned_reference(pin) == installed


# ---------------------------------------------------------------- the real case: TFLM's own golden output

def tflm_source() -> Path | None:
    value = os.environ.get("TINYEDGE_TFLM_SRC")
    return Path(value) if value and (Path(value) / ".git").exists() else None


SEANET = "tensorflow/lite/micro/integration_tests/seanet/leaky_relu"


@pytest.mark.skipif(tflm_source() is None or tflm_tree() is None,
                    reason="needs TINYEDGE_TFLM_SRC (the tflite-micro checkout) and TINYEDGE_TFLM_DIR (a tree made "
                           "from it with create_tflm_tree.py)")
def test_a_board_on_another_tflite_micro_fails_as_a_version_mismatch(tmp_path):
    source, tree = tflm_source(), tflm_tree()
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    if commit.startswith(reference_version().commit or "-"):
        pytest.skip("the TFLM checkout is the reference's own commit: nothing differs")
    marked = tmp_path / "tree"   # the same tree, marked with the commit it was made from
    marked.mkdir()
    for entry in tree.iterdir():
        (marked / entry.name).symlink_to(entry)
    (marked / "TFLM_COMMIT").write_text(commit + "\n")
    model = source / SEANET / "leaky_relu3.tflite"
    inputs = np.loadtxt(source / SEANET / "leaky_relu3_input0_int16.csv", delimiter=",", dtype=np.int16)
    golden = np.loadtxt(source / SEANET / "leaky_relu3_golden_int16.csv", delimiter=",", dtype=np.int16)
    generate(model, "host", tmp_path / "fw", runtime="tflm", tflm_dir=marked)
    build(tmp_path / "fw")
    with flash(tmp_path / "fw") as url:
        report = validate(url, model, inputs.reshape(1, 2, 80, 16))
        with Device(url) as device:
            board_output = np.frombuffer(device.infer(inputs.tobytes()).output, dtype=np.int16)
    assert (board_output == golden).all(), "the board computes TFLM's own golden output"
    assert not report.passed and report.version_mismatch is True
    assert report.board_tflm_commit == commit[:40] and report.reference_commit == reference_version().commit
    assert "a version mismatch, not necessarily a board fault" in report.version_note()
