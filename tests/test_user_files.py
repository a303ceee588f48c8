"""A user's files are never lost: no command writes over, or removes, a file it reads (issue 17,
item 2). An output naming an input — the same path, a symbolic link to it or a hard link of it — is
one sentence, exit 1, and every file is left exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_tinyedge

NO_BOARD = "/dev/ttyNOPE0"   # the guard refuses before any port is opened


@pytest.fixture
def work(cnn_model, tmp_path) -> Path:
    """A directory with the user's files: the float and int8 models, inputs and labels."""
    shutil.copy(cnn_model.keras, tmp_path / "m.keras")
    shutil.copy(cnn_model.int8, tmp_path / "m.tflite")
    shutil.copy(cnn_model.calibration, tmp_path / "cal.npy")
    np.save(tmp_path / "x.npy", np.load(cnn_model.eval_x)[:8])
    np.save(tmp_path / "y.npy", np.load(cnn_model.eval_y)[:8])
    return tmp_path


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under `folder` and the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(work: Path, *args: str | Path, says: str) -> None:
    """The command exits 1 with one sentence, and every file in `work` is as it was."""
    before = fingerprint(work)
    result = run_tinyedge(*args, cwd=work)
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert says in message, message
    assert "Traceback" not in result.stderr
    assert fingerprint(work) == before


def validate_args(*extra: str | Path) -> list[str | Path]:
    return ["validate", "--port", NO_BOARD, "--model", "m.tflite", "--data", "x.npy", *extra]


@pytest.mark.parametrize("extra, says", [
    (("--json", "x.npy"), "--json x.npy is the same file as --data x.npy"),
    (("--json", "m.tflite"), "--json m.tflite is the same file as --model m.tflite"),
    (("--labels", "y.npy", "--junit", "y.npy"), "--junit y.npy is the same file as --labels y.npy"),
    (("--journal", "x.npy"), "--journal x.npy is the same file as --data x.npy"),
    (("--journal", "m.tflite"), "--journal m.tflite is the same file as --model m.tflite"),
    (("--float-model", "m.keras", "--labels", "y.npy", "--plot", "m.keras"), "--plot m.keras is the same file as --float-model"),
    (("--json", "./sub/../x.npy"), "is the same file as --data x.npy"),
    (("--json", "r.json", "--junit", "r.json"), "--json and --junit both name r.json"),
    (("--json", "r.jsonl"), "--json and the journal (--journal) both name r.jsonl"),
])
def test_validate_refuses_an_output_that_is_an_input(work, extra, says):
    (work / "sub").mkdir()
    refused(work, *validate_args(*extra), says=says)


def test_links_to_an_input_are_the_input(work):
    (work / "link.json").symlink_to(work / "x.npy")
    os.link(work / "m.tflite", work / "hard.json")
    refused(work, *validate_args("--json", "link.json"), says="--json link.json is the same file as --data x.npy")
    refused(work, *validate_args("--junit", "hard.json"), says="--junit hard.json is the same file as --model m.tflite")


def test_a_refused_output_leaves_the_previous_reports(work):
    (work / "r.json").write_text('{"passed": true}')
    refused(work, *validate_args("--json", "r.json", "--junit", "x.npy"), says="--junit x.npy is the same file as --data")
    assert (work / "r.json").read_text() == '{"passed": true}'


def test_deploy_refuses_reports_and_work_files_that_are_inputs(work):
    refused(work, "deploy", "m.tflite", "--data", "x.npy", "--json", "x.npy", "-o", "out",
            says="--json x.npy is the same file as --data x.npy")
    refused(work, "deploy", "m.tflite", "--data", "x.npy", "--labels", "y.npy", "--plot", "y.npy", "-o", "out",
            says="--plot y.npy is the same file as --labels y.npy")
    (work / "out" / "firmware").mkdir(parents=True)
    shutil.copy(work / "x.npy", work / "out" / "firmware" / "x.npy")
    refused(work, "deploy", "m.tflite", "--data", "out/firmware/x.npy", "-o", "out",
            says="--data out/firmware/x.npy is inside -o out/firmware, which this command may empty")


@pytest.mark.parametrize("args, says", [
    (("quantize", "m.keras", "--calibration", "cal.npy", "-o", "m.keras"), "-o m.keras is the same file as MODEL m.keras"),
    (("quantize", "m.keras", "--calibration", "cal.npy", "-o", "cal.npy"), "-o cal.npy is the same file as --calibration"),
    (("quantize", "m.keras", "--calibration", "cal.npy", "-o", "q.tflite", "--json", "m.keras"),
     "--json m.keras is the same file as MODEL m.keras"),
    (("quantize", "m.keras", "--calibration", "cal.npy", "-o", "q.tflite", "--json", "q.tflite"),
     "-o and --json both name q.tflite"),
    (("shrink", "m.keras", "--data", "x.npy", "--labels", "y.npy", "--keep", "0.5", "-o", "m.keras"),
     "-o m.keras is the same file as MODEL m.keras"),
    (("shrink", "m.keras", "--data", "x.npy", "--labels", "y.npy", "--keep", "0.5", "-o", "s.keras", "--json", "y.npy"),
     "--json y.npy is the same file as --labels y.npy"),
])
def test_quantize_and_shrink_refuse_to_write_over_their_inputs(work, args, says):
    refused(work, *args, says=says)


def test_emit_refuses_to_write_over_its_model_or_data(work):
    shutil.copy(work / "m.tflite", work / "cnn.cc")
    refused(work, "emit", "cnn.cc", "-o", ".", says="-o (cnn.cc) cnn.cc is the same file as MODEL cnn.cc")
    shutil.copy(work / "x.npy", work / "v_test.h")
    refused(work, "emit", "m.tflite", "-o", ".", "--name", "v", "--test-vectors", "2", "--data", "v_test.h",
            says="is the same file as --data v_test.h")


def test_generate_refuses_an_output_directory_holding_its_model(work):
    first = run_tinyedge("generate", "m.tflite", "--board", "host", "--runtime", "aot", "-o", "proj", cwd=work)
    assert first.returncode == 0, first.stderr
    shutil.copy(work / "m.tflite", work / "proj" / "kept.tflite")
    refused(work, "generate", "proj/kept.tflite", "--board", "qemu-cortex-m4", "--runtime", "aot", "-o", "proj",
            says="MODEL proj/kept.tflite is inside -o proj, which this command may empty")


def test_a_refused_resume_keeps_the_previous_reports(host_board, work):
    first = run_tinyedge("validate", "--port", host_board, "--model", "m.tflite", "--data", "x.npy",
                         "--json", "r.json", "--junit", "r.xml", cwd=work)
    assert first.returncode == 0, first.stderr
    np.save(work / "other.npy", np.load(work / "x.npy")[::-1])
    reports = {name: (work / name).read_bytes() for name in ("r.json", "r.xml", "r.jsonl")}
    again = run_tinyedge("validate", "--port", host_board, "--model", "m.tflite", "--data", "other.npy",
                         "--json", "r.json", "--junit", "r.xml", "--resume", cwd=work)
    assert again.returncode == 1, again.stderr
    assert "records a run with another --data" in again.stderr
    assert {name: (work / name).read_bytes() for name in reports} == reports
    assert json.loads(reports["r.json"])["passed"] is True
