"""A rig trusts tinyedge's verdict: no resumed, stale, or meaningless PASS; exit codes and output a
script can rely on (issue 7, items 1, 3, 4, 13–19)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, TINYEDGE, require_tools, run_tinyedge
from tinyedge.build import build
from tinyedge.errors import TinyedgeError
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.validate import ReportFiles, validate, validate_and_report


@pytest.fixture
def board(host_board) -> str:
    """The host board running the session CNN (conftest's `host_board`)."""
    return host_board


def sentence(result: subprocess.CompletedProcess) -> str:
    return " ".join(result.stderr.split())


def wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def journal_rows(path: Path) -> int:
    return len(path.read_text().splitlines()) - 1 if path.exists() else 0


def a_passing_report(path: Path) -> None:
    """What a previous, passing run left on disk."""
    path.write_text(json.dumps({"passed": True, "bit_exact": 1.0, "samples": 40}))


# ---------------------------------------------------------------- 1. resume


def test_resume_with_other_data_is_refused(board, cnn_model, tmp_path):
    data = np.load(cnn_model.eval_x)[:12]
    journal = tmp_path / "run.jsonl"
    assert validate(board, cnn_model.int8, data, journal_path=journal).passed
    for other, why in ((data[::-1].copy(), "reversed"), (np.random.default_rng(1).normal(size=data.shape), "noise")):
        with pytest.raises(TinyedgeError, match="records a run with another --data: drop --resume"):
            validate(board, cnn_model.int8, other, journal_path=journal, resume=True)
    with pytest.raises(TinyedgeError, match="another --tolerance-lsb"):
        validate(board, cnn_model.int8, data, tolerance_lsb=2, journal_path=journal, resume=True)
    labels = np.arange(12) % 4
    with pytest.raises(TinyedgeError, match="another --labels"):
        validate(board, cnn_model.int8, data, labels, journal_path=journal, resume=True)


def test_resume_recomputes_the_verdict_from_the_stored_outputs(board, cnn_model, tmp_path):
    data = np.load(cnn_model.eval_x)[:12]
    np.save(tmp_path / "data.npy", data)
    journal = tmp_path / "run.jsonl"
    assert validate(board, cnn_model.int8, data, journal_path=journal).passed
    lines = journal.read_text().splitlines()
    row = json.loads(lines[5])
    row["output"][0] = (row["output"][0] + 7 + 128) % 256 - 128   # the board's answer, edited; its figures left at 0
    lines[5] = json.dumps(row)
    journal.write_text("\n".join(lines) + "\n")

    result = run_tinyedge("validate", "--port", board, "--model", cnn_model.int8, "--data", tmp_path / "data.npy",
                          "--journal", journal, "--resume", "--json", tmp_path / "report.json")
    assert result.returncode == 2, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is False and report["bit_exact"] < 1 and report["max_abs_diff_lsb"] == 7
    assert report["failures"] == [row["index"]] and report["resumed_samples"] == 12


def test_a_journal_without_what_it_measured_is_refused(board, cnn_model, tmp_path):
    data = np.load(cnn_model.eval_x)[:4]
    journal = tmp_path / "old.jsonl"
    validate(board, cnn_model.int8, data, journal_path=journal)
    lines = journal.read_text().splitlines()
    old_header = {"journal": "tinyedge-validate", "model_sha256": json.loads(lines[0])["model_sha256"]}
    journal.write_text("\n".join([json.dumps(old_header), *lines[1:]]) + "\n")
    with pytest.raises(TinyedgeError, match="written by an older tinyedge .* drop --resume"):
        validate(board, cnn_model.int8, data, journal_path=journal, resume=True)


# ---------------------------------------------------------------- 3. no stale report


def test_a_deploy_whose_build_fails_leaves_no_report_of_the_previous_run(cnn_model, tmp_path):
    require_tools("cc", "make")
    profiles = yaml.safe_load((REPO / "tinyedge" / "boards.yaml").read_text())
    profiles["boards"]["host"]["cpu_flags"] = ["-mno-such-option-tinyedge"]   # the compiler refuses it
    (tmp_path / "boards.yaml").write_text(yaml.safe_dump(profiles))
    a_passing_report(tmp_path / "report.json")
    (tmp_path / "report.xml").write_text("<testsuite failures='0'/>")
    result = run_tinyedge("deploy", cnn_model.int8, "--board", "host", "--runtime", "aot", "--data", cnn_model.eval_x,
                          "-o", tmp_path / "out", "--json", tmp_path / "report.json", "--junit", tmp_path / "report.xml",
                          env={"TINYEDGE_BOARDS": str(tmp_path / "boards.yaml")})
    assert result.returncode not in (0, 2), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "report.json").exists() and not (tmp_path / "report.xml").exists()


def start_validation(board: str, model: Path, data: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*TINYEDGE, "validate", "--port", board, "--model", str(model), "--data", str(data),
         "--json", str(out / "report.json"), "--junit", str(out / "report.xml"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def many_samples(cnn_model, tmp_path) -> Path:
    path = tmp_path / "many.npy"
    np.save(path, np.repeat(np.load(cnn_model.eval_x), 100, axis=0))
    return path


def test_sigterm_leaves_a_report_of_the_stopped_run(board, cnn_model, many_samples, tmp_path):
    a_passing_report(tmp_path / "report.json")
    process = start_validation(board, cnn_model.int8, many_samples, tmp_path)
    wait_for(lambda: journal_rows(tmp_path / "report.jsonl") >= 20)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["interrupted"] is True and report["passed"] is False and report["samples"] >= 20


def test_ctrl_c_as_the_run_starts_leaves_a_failing_report(board, cnn_model, many_samples, tmp_path):
    a_passing_report(tmp_path / "report.json")
    (tmp_path / "report.xml").write_text("<testsuite failures='0'/>")
    process = start_validation(board, cnn_model.int8, many_samples, tmp_path)
    wait_for(lambda: not (tmp_path / "report.json").exists() or process.poll() is not None)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["interrupted"] is True and report["passed"] is False
    assert 'failures="1"' in (tmp_path / "report.xml").read_text()


def interrupt_at_first_progress(done: int, total: int) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_before_the_first_sample_completes_leaves_a_report_of_no_samples(board, cnn_model, tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, np.load(cnn_model.eval_x)[:5])
    run = validate_and_report(board, cnn_model.int8, data, reports=ReportFiles(json=tmp_path / "r.json"),
                              progress=interrupt_at_first_progress)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["samples"] == 0 and report["passed"] is False and report["interrupted"] is True
    assert report["requested_samples"] == 5
    with pytest.raises(KeyboardInterrupt):
        run.raise_for_verdict()


def test_a_board_that_dies_before_its_first_output_leaves_a_report_with_the_error(host_cnn_firmware, cnn_model, tmp_path):
    from pipeline_support import children_of, wait_gone

    data = tmp_path / "x.npy"
    np.save(data, np.load(cnn_model.eval_x)[:5])

    def board_dies(done: int, total: int) -> None:
        boards = children_of(os.getpid())
        for pid in boards:
            os.kill(pid, signal.SIGKILL)
        assert boards and not wait_gone(boards)

    with flash(host_cnn_firmware) as url:
        run = validate_and_report(url, cnn_model.int8, data, reports=ReportFiles(json=tmp_path / "r.json"),
                                  timeout=2, progress=board_dies)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["samples"] == 0 and report["passed"] is False and report["error"]
    with pytest.raises(TinyedgeError) as raised:
        run.raise_for_verdict()
    assert raised.value.exit_code == 3


def test_a_device_error_mid_run_leaves_a_failing_report_with_the_error(host_cnn_firmware, cnn_model, many_samples, tmp_path):
    a_passing_report(tmp_path / "report.json")
    with flash(host_cnn_firmware) as url:   # the board dies when this block ends
        process = start_validation(url, cnn_model.int8, many_samples, tmp_path)
        wait_for(lambda: journal_rows(tmp_path / "report.jsonl") >= 20)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is False and report["error"] and report["samples"] >= 20
    assert report["samples"] < report["requested_samples"]
    assert "Traceback" not in stderr


def test_a_second_ctrl_c_while_writing_leaves_no_half_report(tmp_path, monkeypatch):
    from tinyedge import outputs

    target = tmp_path / "report.json"

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs.os, "replace", ctrl_c)   # the Ctrl-C lands between writing and renaming
    with pytest.raises(KeyboardInterrupt):
        outputs.write_atomically(target, '{"passed": false}')
    assert list(tmp_path.iterdir()) == []


def test_a_report_to_dev_stdout_is_written_through(board, cnn_model, tmp_path):
    np.save(tmp_path / "few.npy", np.load(cnn_model.eval_x)[:3])
    result = run_tinyedge("validate", "--port", board, "--model", cnn_model.int8, "--data", tmp_path / "few.npy",
                          "--json", "/dev/stdout", "--journal", tmp_path / "j.jsonl")
    assert result.returncode == 0, result.stderr
    assert '"passed": true' in result.stdout and Path("/dev/stdout").is_symlink()


# ---------------------------------------------------------------- 4. inputs that make accuracy meaningless


@pytest.mark.parametrize("labels, message", [
    (np.eye(3, dtype=np.float32)[np.arange(12) % 3], "one-hot rows of 3 values but the model's output has 4"),
    (np.linspace(0, 3, 12).astype(np.float32), "holds float32 values: give class indices as integers"),
    (np.arange(12) + 2, "class indices from 2 to 13, but the model's output has 4 classes"),
])
def test_validate_refuses_labels_that_cannot_score_the_classes(cnn_model, labels, message):
    data = np.load(cnn_model.eval_x)[:12]
    with pytest.raises(TinyedgeError, match=message):
        validate("/dev/ttyNOPE0", cnn_model.int8, data, labels)


def test_validate_refuses_uint8_data_for_an_int8_input_and_nan_samples(cnn_model):
    data = np.load(cnn_model.eval_x)[:6]
    raw = np.clip(data * 255, 0, 255).astype(np.uint8)
    with pytest.raises(TinyedgeError, match="holds uint8 samples but the model's input is int8"):
        validate("/dev/ttyNOPE0", cnn_model.int8, raw)
    with pytest.raises(TinyedgeError, match="outside the int8 range"):
        validate("/dev/ttyNOPE0", cnn_model.int8, raw.astype(np.int32))
    data[3, 0, 0, 0] = np.nan
    with pytest.raises(TinyedgeError, match="NaN or infinity in 1 sample.*index 3"):
        validate("/dev/ttyNOPE0", cnn_model.int8, data)


def test_quantize_and_validate_refuse_narrow_labels_alike(cnn_model, tmp_path):
    narrow = np.eye(3, dtype=np.float32)[np.arange(len(np.load(cnn_model.eval_x))) % 3]
    np.save(tmp_path / "narrow.npy", narrow)
    result = run_tinyedge("quantize", cnn_model.keras, "--calibration", cnn_model.calibration, "--eval", cnn_model.eval_x,
                          "--labels", tmp_path / "narrow.npy", "-o", tmp_path / "m.tflite")
    assert result.returncode == 1
    assert "--labels holds one-hot rows of 3 values but the model's output has 4" in sentence(result)


# ---------------------------------------------------------------- 13. usage errors


@pytest.mark.parametrize("args", [("validate", "--bogus"), ("validate",), ("boards", "show"), ("no-such-command",)])
def test_usage_errors_exit_1_not_the_validation_failed_code(args):
    result = run_tinyedge(*args)
    assert result.returncode == 1, result.stderr


# ---------------------------------------------------------------- 14. output paths


def test_unwritable_report_paths_are_user_errors(sine_model, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    (tmp_path / "a-dir").mkdir()
    for flag, path in (("--json", a_file / "report.json"), ("--junit", tmp_path / "a-dir"), ("--plot", a_file / "p.png")):
        result = run_tinyedge("validate", "--port", "/dev/ttyNOPE0", "--model", sine_model.int8,
                              "--data", sine_model.eval_x, flag, path)
        assert result.returncode == 1, result.stderr
        assert "internal error" not in result.stderr and flag in sentence(result) and str(path) in sentence(result)


def test_unwritable_model_and_project_paths_are_user_errors(sine_model, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for args in (("quantize", sine_model.keras, "--calibration", sine_model.calibration, "-o", tmp_path),
                 ("quantize", sine_model.keras, "--calibration", sine_model.calibration, "-o", a_file / "m.tflite"),
                 ("emit", sine_model.int8, "-o", a_file),
                 ("generate", sine_model.int8, "--board", "host", "-o", a_file / "fw")):
        result = run_tinyedge(*args)
        assert result.returncode == 1, result.stderr
        assert "internal error" not in result.stderr and "error:" in result.stderr


def read_only_directory(tmp_path: Path) -> Path:
    """A directory this user cannot create files in: chmod 555 for a user; sysfs (where no one creates
    files) for root, who writes through permission bits."""
    if os.geteuid() == 0:
        if not Path("/sys/kernel").is_dir():
            pytest.skip("needs sysfs at /sys when run as root")
        return Path("/sys")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return locked


def test_a_read_only_directory_is_a_user_error(sine_model, tmp_path):
    target = read_only_directory(tmp_path) / "tinyedge-report.json"
    result = run_tinyedge("validate", "--port", "/dev/ttyNOPE0", "--model", sine_model.int8, "--data", sine_model.eval_x,
                          "--json", target)
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stderr and f"cannot write --json {target}" in sentence(result)


def test_two_ctrl_c_in_a_row_leave_this_runs_report_or_none(board, cnn_model, many_samples, tmp_path):
    a_passing_report(tmp_path / "report.json")
    process = start_validation(board, cnn_model.int8, many_samples, tmp_path)
    wait_for(lambda: journal_rows(tmp_path / "report.jsonl") >= 20)
    process.send_signal(signal.SIGINT)
    time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    if (tmp_path / "report.json").exists():
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["interrupted"] is True and report["passed"] is False
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- 15. calibration data


def test_quantize_refuses_nan_calibration_and_a_scalar(sine_model, tmp_path):
    cal = np.load(sine_model.calibration)
    cal[7] = np.inf
    np.save(tmp_path / "inf.npy", cal)
    np.save(tmp_path / "scalar.npy", np.float32(0.5))
    for path, message in ((tmp_path / "inf.npy", "holds NaN or infinity in 1 sample(s), the first at index 7"),
                          (tmp_path / "scalar.npy", "holds a single number, not samples")):
        result = run_tinyedge("quantize", sine_model.keras, "--calibration", path, "-o", tmp_path / "new" / "m.tflite")
        assert result.returncode == 1, result.stderr
        assert message in sentence(result) and "internal error" not in result.stderr
        assert not (tmp_path / "new").exists()


def test_quantize_warns_about_int8_data_and_a_single_sample(sine_model, tmp_path):
    np.save(tmp_path / "one.npy", np.array([[3]], dtype=np.int8))
    result = run_tinyedge("quantize", sine_model.keras, "--calibration", tmp_path / "one.npy", "-o", tmp_path / "m.tflite")
    assert result.returncode == 0, result.stderr
    assert "warning: the calibration data is int8" in sentence(result)
    assert "warning: there is a single calibration sample" in sentence(result)


# ---------------------------------------------------------------- 16. output for rigs is never cut


def uncut_run(*args: str | Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run([*TINYEDGE, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def test_tables_on_a_pipe_keep_ids_and_install_lines_whole():
    from tinyedge.boards import load_boards
    from tinyedge.doctor import diagnose

    boards = uncut_run("boards")
    assert boards.returncode == 0
    for board_id, board in load_boards().items():
        assert f" {board_id} " in boards.stdout and board.name in boards.stdout
    doctor = uncut_run("doctor")
    hints = [tool.install for tool in diagnose().missing]
    assert hints, "this check needs a tool that is not installed here"
    for hint in hints:
        assert hint in doctor.stdout


def test_the_validation_table_on_a_pipe_prints_the_whole_model_hash(board, cnn_model, tmp_path):
    np.save(tmp_path / "few.npy", np.load(cnn_model.eval_x)[:3])
    result = uncut_run("validate", "--port", board, "--model", cnn_model.int8, "--data", tmp_path / "few.npy",
                       "--journal", tmp_path / "j.jsonl")
    assert result.returncode == 0, result.stderr
    from tinyedge.tflite_model import load_tflite

    assert load_tflite(cnn_model.int8).sha256 in result.stdout


# ---------------------------------------------------------------- 17. inspect on the Uno


def test_inspect_fits_the_uno_with_the_aot_memory_plan(sine_model):
    from tinyedge.aot.compiler import compile_model
    from tinyedge.tflite_model import load_tflite

    result = run_tinyedge("inspect", sine_model.int8, "--board", "arduino-uno", "--json")
    assert result.returncode == 0, result.stderr
    fit = json.loads(result.stdout)["board_fit"]
    from tinyedge.frameworks.avr import FRAMEWORK as AVR

    planned = compile_model(load_tflite(sine_model.int8), progmem=True).stats
    assert fit["runtime"] == "aot" and fit["fits"] is True
    assert fit["ram_needed"] == planned.arena_bytes + planned.scratch_bytes + AVR.allowance.ram_bytes


def test_no_bare_except_exception_around_our_own_code():
    """Modules that only call tinyedge's own code let its bugs surface (the CLI keeps one last resort,
    which says "tinyedge bug"); `except Exception` is left only around TF, tflite-micro and NumPy."""
    ours = ["inspection.py", "validate.py", "deploy.py", "flash.py", "checks.py", "outputs.py", "render.py",
            "generate.py", "build.py", "project.py", "boards.py", "emit.py"]
    for name in ours:
        assert "except Exception" not in (REPO / "tinyedge" / name).read_text(), name
    assert (REPO / "tinyedge" / "cli.py").read_text().count("except Exception") == 1


# ---------------------------------------------------------------- 18. QEMU latency


def test_deploy_takes_icount_and_the_report_says_what_qemu_latency_is(sine_model, tmp_path):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    result = run_tinyedge("deploy", sine_model.int8, "--board", "qemu-cortex-m4", "--runtime", "aot", "--icount",
                          "--data", sine_model.eval_x, "-o", tmp_path / "q", "--json", tmp_path / "q.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "q.json").read_text())
    assert "-icount" in report["latency_note"] and "instruction counts" in report["latency_note"]


def test_without_icount_qemu_latency_is_called_noise():
    from tinyedge.validate import latency_note

    assert "noise" in latency_note("qemu-cortex-m4", None) and "noise" in latency_note("qemu-cortex-m4", False)
    assert latency_note("host", None) is None and latency_note("a-lab-board", None) is None


# ---------------------------------------------------------------- 19. relative project folder


def flash_until_serving(project: Path, cwd: Path) -> tuple[str, int, str]:
    """`tinyedge flash DIR` with stdout a pipe and no COLUMNS: its line naming the URL, then SIGTERM."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen([*TINYEDGE, "flash", str(project)], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return line, process.returncode, stderr


def test_flash_a_relative_project_folder_on_the_host_board(host_cnn_firmware):
    line, code, stderr = flash_until_serving(Path(host_cnn_firmware.name), cwd=host_cnn_firmware.parent)
    assert "the firmware answers on /dev/" in line, stderr
    assert code == 130, stderr   # SIGTERM stops it like Ctrl-C


def test_flash_on_a_pipe_prints_the_socket_url_on_one_line(sine_model, tmp_path):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    generate(sine_model.int8, "qemu-cortex-m4", tmp_path / "fw", runtime="aot")
    build(tmp_path / "fw")
    line, code, stderr = flash_until_serving(tmp_path / "fw", cwd=tmp_path)
    assert re.search(r"answers on socket://127\.0\.0\.1:\d+ \(Ctrl-C stops it\)$", line.rstrip()), line + stderr
    assert code == 130, stderr
