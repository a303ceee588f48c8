"""`tinyedge status`: the STATS request on the host board and under QEMU, the way a user reads a
board's telemetry — what it runs, since when, how often it reset and how fast it answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools, run_tinyedge
from fixtures.posix_firmware import build_firmware, start_firmware

from tinyedge.build import build
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.protocol import Device
from tinyedge.tflite_model import load_tflite

STATUS_KEYS = {"model_sha256", "model_version", "slot", "firmware_version", "uptime_s", "resets", "inferences",
               "errors", "latency", "arena_high_water_bytes"}
STORE_FILE = "model_slots.flash"


def built(model: Path, board: str, out: Path) -> Path:
    generate(model, board, out, runtime="aot")
    build(out)
    return out


def status_json(url: str) -> dict:
    result = run_tinyedge("status", "--port", url, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def run_inferences(url: str, count: int) -> None:
    with Device(url) as device:
        for value in range(count):
            device.infer(bytes((value,)))


@pytest.mark.parametrize("board,tools", [("host", ("cc", "make")),
                                         ("qemu-cortex-m4", ("arm-none-eabi-gcc", "make", "qemu-system-arm")),
                                         ("qemu-riscv32", ("riscv64-unknown-elf-gcc", "make", "qemu-system-riscv32"))])
def test_status_reports_the_model_counts_inferences_and_keeps_resets_across_power_cuts(
        board, tools, sine_model, tmp_path):
    require_tools(*tools)
    project = built(sine_model.int8, board, tmp_path / "fw")
    sha = load_tflite(sine_model.int8).sha256

    with flash(project) as url:
        run_inferences(url, 5)
        first = status_json(url)
    assert STATUS_KEYS <= set(first)
    assert first["board"] == board
    assert first["model_sha256"] == sha
    assert first["model_version"] == 0 and first["slot"] is None
    assert first["firmware_version"].startswith("tinyedge-")
    assert first["inferences"] == 5 and first["errors"] == 0
    latency = first["latency"]
    assert latency["count"] == 5 and 0 <= latency["min_us"] <= latency["mean_us"] <= latency["max_us"]
    assert first["arena_high_water_bytes"] > 0
    assert 0 < first["uptime_s"] < 600
    assert (project / STORE_FILE).is_file(), "the emulated board's flash is a file in its project"

    with flash(project) as url:   # the emulator was killed: a power cut, then a cold boot
        again = status_json(url)
    assert again["resets"] == first["resets"] + 1
    assert again["inferences"] == 0, "counters are since boot"
    assert again["resets_persist"] is True


def test_status_as_a_table_names_the_model_and_its_latency(sine_model, tmp_path):
    require_tools("cc", "make")
    project = built(sine_model.int8, "host", tmp_path / "fw")
    with flash(project) as url:
        run_inferences(url, 2)
        result = run_tinyedge("status", "--port", url)
    assert result.returncode == 0, result.stderr
    assert load_tflite(sine_model.int8).sha256 in result.stdout
    assert "2 (0 errors)" in result.stdout
    assert "built into the firmware" in result.stdout


def test_firmware_without_stats_is_told_to_reflash(tmp_path):
    require_tools("cc")
    binary = build_firmware(tmp_path)   # the protocol alone, as on the Uno: no te_lifecycle.c
    with start_firmware(binary) as firmware:
        result = run_tinyedge("status", "--port", firmware.url, "--json")
    assert result.returncode == 3
    assert "cannot report its statistics" in result.stderr and "Traceback" not in result.stderr


def test_status_needs_a_board():
    result = run_tinyedge("status")
    assert result.returncode == 1
    assert "give --port" in result.stderr


def test_a_stats_reply_from_newer_firmware_with_more_fields_still_parses():
    from tinyedge.protocol import parse_stats

    body = (bytes((1,)) + (7).to_bytes(4, "little") + bytes(range(32)) + bytes((1,)) + bytes((3,)) + b"fw1"
            + (1500).to_bytes(8, "little") + bytes((1,))
            + np.array([2, 10, 1, 9, 100, 300], "<u4").tobytes() + (1800).to_bytes(8, "little")
            + np.array([512, 1024], "<u4").tobytes() + b"later")
    stats = parse_stats(body)
    assert (stats.model_version, stats.slot, stats.firmware_version, stats.resets) == (7, 1, "fw1", 2)
    assert stats.latency_mean_us == 200 and stats.arena_high_water == 512
