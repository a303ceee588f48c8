"""What the protocol and lifecycle code costs in RAM on a board (issue 18, item 3: RAM <= 0.5x TFLM +
CMSIS-NN's). Firmware generated without --updatable holds none of the model slots' state (the update in
progress, the shadow trial, their SHA-256 contexts): te_slots_none.c answers the update requests instead,
and `update` is refused as before. The boot record is read in place, so booting no longer goes deeper
into the stack than answering INFO; its high-water mark is what the model's own kernels take, under no
frame of a function that only chooses a kernel."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import require_tools, run_tinyedge

from tinyedge.build import build
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.protocol import Device

BOARD = "qemu-cortex-m4"
SLOT_STATE = {"update", "shadow", "usable", "te_sha256_init"}   # te_slots.c's state, its hashing
BOOT_RECORD_BYTES = 200   # sizeof(te_boot_record_t) on a 32-bit board (te_lifecycle.h)
TE_MSG_UPDATE_BEGIN = 0x11
TE_LC_NO_SLOTS = 0x20


def elf_symbols(project: Path) -> dict[str, int]:
    """Every symbol of the project's ELF with its size."""
    listing = subprocess.run(["arm-none-eabi-nm", "-S", str(project / "build" / "firmware.elf")],
                             capture_output=True, text=True, check=True).stdout
    symbols = {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 4:
            symbols[fields[3]] = int(fields[1], 16)
    return symbols


@pytest.fixture(scope="module")
def fixed_firmware(sine_model, tmp_path_factory) -> Path:
    require_tools("arm-none-eabi-gcc", "make", "qemu-system-arm")
    out = tmp_path_factory.mktemp("ram") / "fixed"
    generate(sine_model.int8, BOARD, out, runtime="aot", updatable=False)
    build(out)
    return out


def test_firmware_that_is_not_updatable_links_none_of_the_slots_state(fixed_firmware, sine_model, tmp_path):
    assert not SLOT_STATE & set(elf_symbols(fixed_firmware)), "no update, shadow trial or SHA-256 in fixed firmware"

    updatable = tmp_path / "updatable"
    done = run_tinyedge("generate", sine_model.int8, "--board", BOARD, "--runtime", "aot", "--updatable", "-o", updatable)
    assert done.returncode == 0, done.stderr
    done = run_tinyedge("build", updatable)
    assert done.returncode == 0, done.stderr
    assert SLOT_STATE <= set(elf_symbols(updatable)), "updatable firmware keeps its slots"


def test_fixed_firmware_still_answers_updates_no_slots_and_reports_a_shallow_boot(fixed_firmware):
    with flash(fixed_firmware) as url, Device(url) as device:
        at_boot = device.info().stack_used
        status, _body = device.request(TE_MSG_UPDATE_BEGIN, bytes(109))
    assert status == TE_LC_NO_SLOTS
    assert at_boot is not None
    assert at_boot < BOOT_RECORD_BYTES, "booting reads the boot record in place, not into copies on the stack"


def test_the_fully_connected_kernel_is_chosen_where_it_is_called(fixed_firmware):
    """te_dsp_fully_connected_packed only chooses between its per-tensor and general kernels, inline in the
    generated code: no frame of its own sits under the kernel's on the stack (keyword_scrambled: 104 B)."""
    symbols = elf_symbols(fixed_firmware)
    assert "te_dsp_fully_connected_packed" not in symbols
    assert {"te_dsp_fc_packed_per_tensor", "te_dsp_fc_packed_general"} & set(symbols)
