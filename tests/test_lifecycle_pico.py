"""Model updates on the emulated Pico (pico-emulated: the bare-metal RP2040 port in rp2040js). The store
is the top 512 KiB of the RP2040's flash, written through the boot ROM's flash functions from RAM; the
emulated flash is `qspi_flash.bin` in the project, so slots survive a restart of the emulator and
killing it mid-update is a power cut."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from lifecycle_support import check_killed_updates, runs_exactly
from pipeline_support import process_table
from test_pico import require_emulator

from tinyedge.build import build
from tinyedge.bundle import make_bundle
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.protocol import Device
from tinyedge.update import update_board

FLASH_FILE = "qspi_flash.bin"
STORE_START = 0x180000


@pytest.fixture(scope="module")
def retrained(sine_model) -> Path:
    """The model the bundles carry. On the Cortex-M0+ the AOT code is specialised on the weights'
    values (a retrained sine model is another graph there), so the bundle carries the same model: what
    is under test is the store, which keeps the version, the slot and the image across restarts."""
    return sine_model.int8


@pytest.fixture()
def pico(sine_model, tmp_path) -> Path:
    require_emulator()
    project = tmp_path / "fw"
    generate(sine_model.int8, "pico-emulated", project, runtime="aot", updatable=True)
    build(project)
    return project


def kill_rp2040js() -> None:
    for pid, (name, ppid, state) in process_table().items():
        if ppid == os.getpid() and name == "node" and state != "Z":
            os.kill(pid, signal.SIGKILL)


def test_an_update_is_written_to_the_picos_flash_and_kept_across_a_restart(pico, sine_model, retrained, tmp_path):
    bundle = make_bundle(retrained, 2, tmp_path / "v2.bundle", data=sine_model.eval_x, vectors=4)
    with flash(pico) as url, Device(url, timeout=30) as device:
        first = device.stats()
        report = update_board(device, bundle)
        assert runs_exactly(device, retrained)
    assert first.persistent and (first.model_version, first.slot) == (0, 0)
    assert (report.version, report.slot) == (2, 1)
    store = (pico / FLASH_FILE).read_bytes()[STORE_START:]
    assert store[:4] == b"TER2" and store[0x1000:0x1004] == b"TER2", "a boot-record copy in each of two sectors"
    with flash(pico) as url, Device(url, timeout=30) as device:
        stats = device.stats()
        assert (stats.model_version, stats.slot, stats.resets) == (2, 1, 1)
        assert runs_exactly(device, retrained)


def test_rp2040js_killed_mid_update_boots_the_old_model(pico, sine_model, retrained, tmp_path):
    bundle = make_bundle(retrained, 2, tmp_path / "v2.bundle", vectors=2)
    # early, and with the whole image sent but no COMMIT
    check_killed_updates(pico, bundle, sine_model.int8, retrained, (64, 10**9), kill_rp2040js, chunk=256, timeout=5.0)
