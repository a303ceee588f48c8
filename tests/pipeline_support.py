"""Helpers for the board-pipeline tests: sample inputs, a reference check on a live device, and
which child processes a test left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from tinyedge.protocol import Device
from tinyedge.reference import Reference
from tinyedge.tflite_model import load_tflite

# As /proc shows them: a process name is cut to 15 characters (qemu-system-riscv32 is "qemu-system-ris").
EMULATOR_NAMES = ("qemu-system-arm", "qemu-system-ris", "simavr-uno", "firmware")


def process_table() -> dict[int, tuple[str, int, str]]:
    """pid -> (name, parent pid, state) from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        table[int(entry)] = (name, int(fields[1]), fields[0])
    return table


def children_of(parent: int, names: tuple[str, ...] = EMULATOR_NAMES) -> list[int]:
    return [pid for pid, (name, ppid, state) in process_table().items()
            if ppid == parent and name in names and state != "Z"]


def is_alive(pid: int) -> bool:
    info = process_table().get(pid)
    return info is not None and info[2] != "Z"


def wait_gone(pids: list[int], timeout_s: float = 10.0) -> list[int]:
    """The pids still alive after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if is_alive(pid)]
        if not alive:
            return []
        time.sleep(0.1)
    return [pid for pid in pids if is_alive(pid)]


def int8_inputs(model_path: Path, count: int) -> list[np.ndarray]:
    """Evenly spread int8 inputs over the whole range (for the 1-input sine model: every value)."""
    tensor = load_tflite(model_path).input_tensors[0]
    values = np.linspace(-128, 127, num=count).round().astype(np.int8)
    return [np.full(tensor.shape, v, dtype=np.int8) for v in values]


def quantized_inputs(model_path: Path, samples: np.ndarray) -> list[np.ndarray]:
    """Float samples quantized with the model's input scale and zero point."""
    tensor = load_tflite(model_path).input_tensors[0]
    scale, zero_point = float(tensor.scale[0]), int(tensor.zero_point[0])
    return [np.clip(np.round(s / scale) + zero_point, -128, 127).astype(np.int8).reshape(tensor.shape) for s in samples]


def assert_device_matches_reference(url: str, model_path: Path, board_id: str, runtime: str, count: int,
                                    inputs: list[np.ndarray] | None = None) -> dict:
    """INFO names the model (by SHA-256), board and runtime; every INFER equals tflite-micro's output."""
    model = load_tflite(model_path)
    reference = Reference(model)
    inputs = inputs if inputs is not None else int8_inputs(model_path, count)
    with Device(url) as device:
        info = device.info()
        assert info.model_sha256 == model.sha256
        assert info.board_id == board_id
        assert info.runtime == runtime
        mismatches = []
        started = time.monotonic()
        for x in inputs:
            got = device.infer(x.tobytes())
            expected = reference.run([x])[0].tobytes()
            if got.output != expected:
                mismatches.append((int(x.flat[0]), got.output, expected))
        seconds = time.monotonic() - started
    assert not mismatches, f"{len(mismatches)} of {len(inputs)} outputs differ from tflite-micro, e.g. {mismatches[:3]}"
    return {"info": info, "infer_seconds": seconds, "last_cycles": got.cycles}
