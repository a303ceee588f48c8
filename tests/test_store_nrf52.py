"""The Arduino Nano 33 BLE's persistent store (firmware/ports/arduino/te_store_nrf52.c, on the nRF52840's NVMC).

No nRF52840 and no Arduino mbed core here, so: the store compiles for the board's CPU under -Werror; its very
code runs on QEMU's `microbit` machine, whose emulated nRF51 NVMC (hw/nvram/nrf51_nvm.c) has the nRF52840's
registers (READY 0x400, CONFIG 0x504, ERASEPAGE 0x508) with 1 KiB pages instead of 4 KiB, flash that a write
only clears bits of, and contents that survive a system reset (so a reset in the middle of a write is a power
cut), under the real te_lifecycle.c too; and `generate --updatable` for the board writes a sketch holding it,
with the flash budget the store leaves.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import require_tools, run_tinyedge
from tinyedge.boards import get_board
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult
from tinyedge.frameworks.mcu_support import check_clear_of_store, updatable_flash_budget
from tinyedge.project import Project

REPO = Path(__file__).resolve().parent.parent
STORE = REPO / "tinyedge" / "firmware" / "ports" / "arduino" / "te_store_nrf52.c"
PROTOCOL = REPO / "tinyedge" / "firmware" / "protocol"
COMMON = REPO / "tinyedge" / "firmware" / "common"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Os"]
# The micro:bit's nRF51822: 1 KiB pages; the store's 8 KiB at the top of its 256 KiB flash.
NRF51_STORE = ["-DTE_STORE_NRF", "-DTE_NRF_PAGE_BYTES=1024u", "-DTE_NRF_STORE_START=0x3E000u",
               "-DTE_NRF_STORE_BYTES=0x2000u", "-DSTORE_CHECK_PAGE=1024u", "-DSTORE_CHECK_FLASH_BYTES=0x2000u"]


def compile_store(flags: list[str], out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["arm-none-eabi-gcc", *STRICT, *flags, f"-I{PROTOCOL}", "-c", str(STORE), "-o", str(out)],
                          capture_output=True, text=True)


def test_the_nrf52_store_compiles_warning_free_for_the_nano_33_ble(tmp_path):
    """As the mbed core compiles it: the board's cpu_flags and NRF52840_XXAA (the core's defines.txt)."""
    require_tools("arm-none-eabi-gcc")
    board = get_board("arduino-nano-33-ble")
    done = compile_store([*board.cpu_flags, "-DNRF52840_XXAA"], tmp_path / "store.o")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    symbols = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "store.o")], capture_output=True, text=True).stdout
    assert {"te_store_size", "te_store_read", "te_store_write"} <= {line.split()[-1] for line in symbols.splitlines()}


def test_the_nrf52_store_is_empty_on_the_arduino_ports_other_chips(tmp_path):
    """The arduino port serves the Pico and the ESP32s too: there the file defines nothing (the weak
    no-store defaults of te_lifecycle.c stay), still warning-free."""
    require_tools("arm-none-eabi-gcc")
    done = compile_store(list(get_board("raspberry-pi-pico").cpu_flags), tmp_path / "store.o")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    symbols = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "store.o")], capture_output=True, text=True).stdout
    assert "te_store" not in symbols


def build_for_microbit(tmp_path: Path, program: str, sources: list[Path], store: Path = STORE,
                       layout_dir: Path | None = None, defines: tuple[str, ...] = ()) -> Path:
    """A check program (tests/fixtures) for QEMU's micro:bit, linked with the store (`layout_dir`: another
    te_store_layout.h) and microbit.c's start-up and semihosting."""
    elf = tmp_path / f"{program}.elf"
    includes = ([layout_dir] if layout_dir else []) + [PROTOCOL, COMMON, FIXTURES]
    done = subprocess.run(
        ["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Os", "-mcpu=cortex-m0", "-mthumb",
         "-ffreestanding", "-nostartfiles", *NRF51_STORE, *defines, *(f"-I{d}" for d in includes),
         "-T", str(FIXTURES / "nrf_store_check.ld"), str(FIXTURES / f"{program}.c"), str(FIXTURES / "microbit.c"),
         *map(str, sources), str(store), "--specs=nano.specs", "-lc", "-lgcc", "-lnosys", "-o", str(elf)],
        capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return elf


def build_nrf51_check(tmp_path: Path, store: Path = STORE) -> Path:
    return build_for_microbit(tmp_path, "nrf_store_check", [FIXTURES / "store_checks.c"], store)


def build_powercut_check(tmp_path: Path, layout_dir: Path | None = None) -> Path:
    """nrf_powercut_check.c with the real te_lifecycle.c over the store."""
    return build_for_microbit(tmp_path, "nrf_powercut_check", [PROTOCOL / "te_lifecycle.c",
                              FIXTURES / "fixture_model_info.c", FIXTURES / "lifecycle_alone.c"], layout_dir=layout_dir)


def run_on_microbit(elf: Path, trace: Path | None = None) -> subprocess.CompletedProcess:
    """-icount: the emulated clock follows the instructions, so SysTick's cut points repeat run to run.
    `trace`: where QEMU logs every MMIO write (its memory_region_ops_write trace event)."""
    tracing = ["-trace", f"memory_region_ops_write,file={trace}"] if trace else []
    return subprocess.run(["qemu-system-arm", "-M", "microbit", "-icount", "shift=2", "-nographic", "-monitor", "none",
                           "-serial", "null", "-semihosting-config", "enable=on,target=native", *tracing,
                           "-kernel", str(elf)], capture_output=True, text=True, timeout=300)


def test_the_nrf52_stores_code_on_qemus_emulated_nrf51_nvmc_keeps_every_byte_across_a_reset(tmp_path):
    """Record copies in pages of their own, writes across page boundaries, overwrites that need an erase,
    byte writes into erased flash, the ends of the store; then a chip reset and every byte read back."""
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    run = run_on_microbit(build_nrf51_check(tmp_path))
    said = run.stdout + run.stderr    # QEMU's semihosting console
    assert run.returncode == 0, said
    assert "first boot: written; resetting" in said
    assert "second boot: the store kept every byte across the reset" in said


def test_the_emulated_nvmc_catches_a_store_that_never_erases(tmp_path):
    """The check is not vacuous: QEMU's flash only clears bits on a write, so a store without its erase fails."""
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    broken = tmp_path / "te_store_nrf52.c"
    text = STORE.read_text()
    assert "  NVMC_ERASEPAGE = address;\n" in text
    broken.write_text(text.replace("  NVMC_ERASEPAGE = address;\n", "  (void)address;\n"))
    run = run_on_microbit(build_nrf51_check(tmp_path, broken))
    assert run.returncode != 0 and "FAIL" in run.stdout + run.stderr, run.stdout + run.stderr


def test_power_cuts_anywhere_in_a_boot_record_write_on_the_emulated_nvmc_never_lose_a_completed_boot(tmp_path):
    """te_lifecycle.c counts every boot in its record over the store; a SysTick interrupt resets the chip at
    points swept across te_lifecycle_boot() (reading, erasing, programming): 101 of 117 armed rounds cut it;
    every boot must load the record with every boot that completed before it."""
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    run = run_on_microbit(build_powercut_check(tmp_path))
    said = run.stdout + run.stderr
    assert run.returncode == 0, said
    found = re.search(r"boots counted: (\d+), power cuts: (\d+)", said)
    assert found, said
    boots, cuts = map(int, found.groups())
    assert cuts >= 100 and boots >= 4, said


def test_the_power_cut_check_catches_record_copies_that_share_a_page(tmp_path):
    """Not vacuous: with both copies in one page, a cut between that page's erase and its program loses both."""
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    layout = (PROTOCOL / "te_store_layout.h").read_text()
    line = "    *at = copy * page + offset % TE_STORE_RECORD_COPY;\n"
    assert line in layout
    (tmp_path / "te_store_layout.h").write_text(
        layout.replace(line, "    *at = copy * TE_STORE_RECORD_COPY + offset % TE_STORE_RECORD_COPY;\n"))
    run = run_on_microbit(build_powercut_check(tmp_path, layout_dir=tmp_path))
    said = run.stdout + run.stderr
    assert run.returncode != 0 and "a power cut lost or corrupted the boot record" in said, said


# --- flash wear: an update erases each page of the inactive slot once ---------------------------------

TRACED_WRITE = re.compile(r"memory_region_ops_write .*addr (0x[0-9a-f]+) value (0x[0-9a-f]+) size \d+ name '([^']+)'")
GPIO_OUT, NVMC_ERASEPAGE = 0x50000504, 0x4001E508
NRF51_SLOT_PAGES = [[0x3E800, 0x3EC00, 0x3F000], [0x3F400, 0x3F800, 0x3FC00]]   # 3 KiB per slot, 1 KiB pages


def erases_per_update(trace: Path) -> dict[int, dict[int, int]]:
    """Phase (nrf_update_check.c's GPIO OUT writes: 0 the first boot, N the update to version N) -> page -> erases."""
    phases: dict[int, dict[int, int]] = {}
    phase = -1
    for address, value, name in TRACED_WRITE.findall(trace.read_text()):
        if int(address, 16) == GPIO_OUT and name.endswith("gpio"):
            phase = int(value, 16)
        elif int(address, 16) == NVMC_ERASEPAGE and name.endswith("nvmc"):
            pages = phases.setdefault(phase, {})
            pages[int(value, 16)] = pages.get(int(value, 16), 0) + 1
    return phases


def build_update_check(tmp_path: Path, slots: Path = PROTOCOL / "te_slots.c") -> Path:
    """nrf_update_check.c with the real te_slots.c and te_lifecycle.c over the store: 2,060-byte images."""
    return build_for_microbit(tmp_path, "nrf_update_check",
                              [FIXTURES / "slots_update.c", slots, PROTOCOL / "te_lifecycle.c", PROTOCOL / "te_sha256.c",
                               FIXTURES / "fixture_runtime.c", FIXTURES / "fixture_model_info.c"],
                              defines=("-DTE_UPDATABLE=1", "-DFIXTURE_ARENA_BYTES=512", "-DSLOTS_UPDATE_ARRAY=2000u"))


def test_an_update_on_the_emulated_nvmc_erases_each_page_of_the_inactive_slot_once(tmp_path):
    """Three updates alternate between the slots (the second interrupted: a chunk sent twice and a resuming
    BEGIN), each active after its COMMIT; QEMU's trace of the NVMC's ERASEPAGE writes shows each update erasing
    the 3 pages its 2,060-byte image occupies in the inactive slot, once each, and one boot-record copy's page
    (the activating record write)."""
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    trace = tmp_path / "mmio.trace"
    run = run_on_microbit(build_update_check(tmp_path), trace)
    said = run.stdout + run.stderr
    assert run.returncode == 0 and "each active\nok" in said, said
    phases = erases_per_update(trace)
    for version in (1, 2, 3):
        slot = 1 if version % 2 else 0
        record_pages = {page: n for page, n in phases[version].items() if page in (0x3E000, 0x3E400)}
        slot_pages = {page: n for page, n in phases[version].items() if page not in record_pages}
        assert slot_pages == dict.fromkeys(NRF51_SLOT_PAGES[slot], 1), f"update {version}: {phases[version]}"
        assert list(record_pages.values()) == [1], "the activating record write: one copy's page"


def test_the_nvmc_wear_check_catches_an_update_that_erases_per_chunk(tmp_path):
    """Not vacuous: te_slots.c without its erase ahead of the chunks erases a page per chunk landing in it."""
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    text = (PROTOCOL / "te_slots.c").read_text()
    line = "  if (erase_through(end) != 0 || te_store_write("
    assert line in text
    (tmp_path / "te_slots.c").write_text(text.replace(line, "  if ((erase_through(0u) != 0) || te_store_write("))
    trace = tmp_path / "mmio.trace"
    run = run_on_microbit(build_update_check(tmp_path, tmp_path / "te_slots.c"), trace)
    assert run.returncode == 0, run.stdout + run.stderr
    assert max(erases_per_update(trace)[1].values()) > 1


# --- generate --updatable --board arduino-nano-33-ble ---------------------------------------------


def test_updatable_firmware_for_the_nano_33_ble_holds_the_nrf52_store(sine_model, tmp_path):
    out = tmp_path / "nano"
    done = run_tinyedge("generate", sine_model.int8, "--board", "arduino-nano-33-ble", "--runtime", "aot",
                        "--updatable", "-o", out)
    assert done.returncode == 0, done.stderr
    src = out / "firmware" / "src"
    assert (src / "te_store_nrf52.c").read_text() == STORE.read_text()
    assert (src / "te_slots.c").is_file()
    manifest = json.loads((out / "tinyedge.json").read_text())
    assert manifest["extra"]["updatable"]["graph_sha256"]


def test_the_nano_33_ble_budgets_updatable_firmware_below_its_store(sine_model, tmp_path):
    """The sketch's flash (1 MiB less the bootloader's 64 KiB) less the store's 256 KiB at the top
    (0xC0000-0xFFFFF, te_store_nrf52.c's default place): an image reaching into it is refused at build time."""
    board = get_board("arduino-nano-33-ble")
    assert board.flash_bytes == 0x100000 - 0x10000
    assert updatable_flash_budget(board) == 0xC0000 - 0x10000
    out = tmp_path / "nano"
    done = run_tinyedge("generate", sine_model.int8, "--board", board.id, "--runtime", "aot", "--updatable", "-o", out)
    assert done.returncode == 0, done.stderr
    project = Project.load(out)
    elf = out / "build" / "firmware.ino.elf"
    fits = BuildResult(elf=elf, flash_bytes=updatable_flash_budget(board), ram_bytes=0, seconds=0)
    check_clear_of_store(project, fits)
    with pytest.raises(TinyedgeError, match=r"top 262,144 bytes, leaving 720,896: use a smaller model"):
        check_clear_of_store(project, BuildResult(elf=elf, flash_bytes=updatable_flash_budget(board) + 1,
                                                  ram_bytes=0, seconds=0))


@pytest.mark.parametrize("board_id, runtime", [("raspberry-pi-pico", "tflm")])
def test_the_arduino_ports_other_boards_stay_without_slots(sine_model, tmp_path, board_id, runtime):
    """The Pico's TFLM route compiles the arduino port, whose only store is the nRF52840's: still refused."""
    done = run_tinyedge("generate", sine_model.int8, "--board", board_id, "--runtime", runtime, "--updatable",
                        "-o", tmp_path / "p")
    assert done.returncode != 0
    assert "has no persistent store for model slots yet" in done.stderr
