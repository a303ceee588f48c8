"""The link's options and the emulators behind it, as a user meets them: hopeless timeouts and baud
rates refused in one sentence, an emulator that dies under `tinyedge flash` reported (exit 3), a port
opened by one run at a time."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import TINYEDGE, require_tools, run_tinyedge


@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "0", "-3"])
def test_a_timeout_that_cannot_end_a_wait_is_refused_in_one_sentence(sine_model, tmp_path, timeout):
    data = tmp_path / "x.npy"
    np.save(data, np.load(sine_model.eval_x)[:2])
    for command in (["validate", "--port", "/dev/null", "--model", sine_model.int8, "--data", data],
                    ["deploy", sine_model.int8, "--board", "host", "--runtime", "aot", "--data", data,
                     "-o", tmp_path / "out"]):
        result = run_tinyedge(*command, "--timeout", timeout)
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert "--timeout must be more than 0 seconds" in output and "Traceback" not in output
        assert not (tmp_path / "out").exists()  # refused before any work


def test_a_negative_baud_rate_is_called_a_bad_baud_rate_not_a_bad_port(sine_model, tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, np.load(sine_model.eval_x)[:2])
    result = run_tinyedge("validate", "--port", "/dev/null", "--model", sine_model.int8, "--data", data,
                          "--baud", "-9600")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "--baud" in output and "baud rate" in output and "port name" not in output
    assert "Traceback" not in output


def test_a_port_another_run_holds_is_refused_naming_who_holds_it(host_board, sine_model, tmp_path):
    """Two runs must not share one board: the second is told which process has the port."""
    from tinyedge.errors import DeviceError
    from tinyedge.protocol import Device

    with Device(host_board) as device:
        device.info()
        with pytest.raises(DeviceError) as refused:
            Device(host_board)
    message = str(refused.value)
    assert f"{host_board} is in use by" in message and f"pid {os.getpid()}" in message
    with Device(host_board) as device:  # free again
        assert device.ping() == 2


def flash_and_wait_for_its_url(project: Path) -> subprocess.Popen:
    process = subprocess.Popen([*TINYEDGE, "flash", str(project)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "COLUMNS": "200"})
    line = process.stdout.readline()
    assert "the firmware answers on" in line, line + (process.stderr.read() if process.poll() is not None else "")
    return process


@pytest.mark.parametrize("board", ["qemu-cortex-m4", "host"])
def test_flash_says_so_and_exits_3_when_its_emulator_dies(sine_model, tmp_path, board):
    from tinyedge.build import build
    from tinyedge.generate import generate

    require_tools("cc", "make", *(("arm-none-eabi-gcc", "qemu-system-arm") if board != "host" else ()))
    generate(sine_model.int8, board, tmp_path / "fw", runtime="aot")
    build(tmp_path / "fw")
    process = flash_and_wait_for_its_url(tmp_path / "fw")
    try:
        emulator = [int(pid) for pid in _children(process.pid)]  # QEMU, or the host board's firmware
        assert len(emulator) == 1, emulator
        os.kill(emulator[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, stderr
    assert "was killed by signal 9" in stderr and "run `tinyedge flash` again" in stderr, stderr
    assert "Traceback" not in stderr


def _children(pid: int) -> list[str]:
    """The child pids of `pid` (every thread's)."""
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += (task / "children").read_text().split()
    return children


@pytest.mark.parametrize("edit", ["3.9", "NaN", "200", "true", "\"5\""], ids=["fraction", "nan", "out-of-range", "bool", "text"])
def test_a_journal_output_that_no_board_sends_is_refused_on_resume(host_board, cnn_model, tmp_path, edit):
    """The journal holds the board's int8 outputs: 3.9 is not truncated to 3, NaN does not become a
    difference of 9,223,372,036,854,775,680 LSB; the run says the journal is damaged (exit 1)."""
    import json

    from tinyedge.validate import validate

    data_path = tmp_path / "data.npy"
    np.save(data_path, np.load(cnn_model.eval_x)[:6])
    journal = tmp_path / "run.jsonl"
    assert validate(host_board, cnn_model.int8, np.load(data_path), journal_path=journal).passed
    header, *rows = journal.read_text().splitlines()
    first = json.loads(rows[2])["output"][0]
    edited = rows[2].replace(f'"output": [{first},', f'"output": [{edit},', 1)
    assert edited != rows[2]
    journal.write_text("\n".join([header, *rows[:2], edited, *rows[3:]]) + "\n")
    result = run_tinyedge("validate", "--port", host_board, "--model", cnn_model.int8, "--data", tmp_path / "data.npy",
                          "--journal", journal, "--resume", "--json", tmp_path / "report.json")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "damaged result line (sample 2)" in output and "Traceback" not in output
    assert "9223372036854775" not in output
