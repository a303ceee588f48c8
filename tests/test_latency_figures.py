"""What validate's report says a latency is: instructions under QEMU -icount (even when the board was
flashed in another shell), and an energy estimate from the board profile's datasheet figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import yaml

from conftest import TINYEDGE, require_tools, run_tinyedge

PACKAGE_BOARDS = Path(__file__).resolve().parent.parent / "tinyedge" / "boards.yaml"


def flashed(project: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    """`tinyedge flash DIR [flags]` left running, as a user leaves it in one shell; its URL."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen([*TINYEDGE, "flash", str(project), *flags], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    url = next((word for word in line.split() if word.startswith(("socket://", "/dev/"))), None)
    assert url, line + process.stderr.read() if process.poll() is not None else line
    return process, url


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()


def test_validate_against_a_board_flashed_with_icount_reports_instructions(sine_model, tmp_path):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    project = tmp_path / "fw"
    assert run_tinyedge("generate", sine_model.int8, "--board", "qemu-cortex-m4", "--runtime", "aot",
                        "-o", project).returncode == 0
    assert run_tinyedge("build", project).returncode == 0
    process, url = flashed(project, "--icount")
    try:
        result = run_tinyedge("validate", "--port", url, "--model", sine_model.int8, "--data", sine_model.eval_x,
                              "--json", tmp_path / "r.json")
    finally:
        stop(process)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert "latency_us" not in report and "latency_cycles" not in report
    counts = report["latency_instructions"]
    # the same MLP runs the same instructions; the 25 MHz SysTick counts them 40 at a time
    assert counts["max"] - counts["min"] <= 40 and counts["min"] > 100, counts
    assert "instruction counts" in report["latency_note"] and "noise" not in report["latency_note"]
    assert "instructions min / median / max" in result.stdout


def test_a_board_profile_with_datasheet_power_gets_an_energy_estimate(host_cnn_firmware, cnn_model, tmp_path):
    profiles = yaml.safe_load(PACKAGE_BOARDS.read_text())
    energy = {"run_current_ma": 10.0, "supply_v": 3.3, "clock_hz": 100_000_000, "source": "a test datasheet"}
    profiles["boards"]["host"]["energy"] = energy
    boards = tmp_path / "boards.yaml"
    boards.write_text(yaml.safe_dump(profiles))
    process, url = flashed(host_cnn_firmware)
    try:
        result = run_tinyedge("validate", "--port", url, "--model", cnn_model.int8, "--data", cnn_model.eval_x,
                              "--json", tmp_path / "r.json", env={"TINYEDGE_BOARDS": str(boards)})
    finally:
        stop(process)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    seconds = report["latency_us"]["median"] / 1e6
    assert abs(report["energy_uj_estimate"] - seconds * 0.010 * 3.3 * 1e6) < 0.01
    assert report["energy_datasheet"] == energy
    assert "energy per inference (estimate)" in result.stdout
