"""Flashing an ESP-IDF build end to end through the real esptool.

No ESP32 can be attached here, so the chip is stood in for by `esp32-mock-bootloader`: a simulated
ESP32 ROM loader speaking the real SLIP protocol on a local socket, keeping what it is sent in an
in-memory SPI flash. The build artifacts are test fixtures shaped like ESP-IDF's output (images with
valid ESP image headers for the chip, a real binary partition table, build/flasher_args.json); the
code under test — tinyedge's esptool flasher, as `tinyedge flash` drives it — is real.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from tinyedge.boards import get_board
from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.flashers import get_flasher
from tinyedge.build import build_record
from tinyedge.flashers.esptool import esp_images
from tinyedge.frameworks.espidf import read_flasher_args, record_build
from tinyedge.project import Project
from tinyedge.sections import EsptoolSettings

mock_bootloader = pytest.importorskip("esp32_mock_bootloader").mock_bootloader

CHIPS = {"esp32-devkitc": "esp32", "esp32-s3-devkitc": "esp32s3"}


def esp_app_image(chip: str, load_addr: int, payload: bytes) -> bytes:
    """An ESP firmware image (header, one segment, checksum, SHA-256) for `chip`, built with esptool's own writer."""
    from esptool.bin_image import ELFSection
    from esptool.targets import CHIP_DEFS

    image = CHIP_DEFS[chip].BOOTLOADER_IMAGE()
    image.entrypoint = load_addr
    image.segments = [ELFSection(b".text", load_addr, payload, flags=0)]
    return image.save(None)


def partition_table(app_offset: int, app_size: int) -> bytes:
    """A binary partition table as gen_esp32part.py writes it: nvs, phy_init, factory app, MD5 entry."""
    def entry(name: str, ptype: int, subtype: int, offset: int, size: int) -> bytes:
        return struct.pack("<2sBBLL16sL", b"\xaa\x50", ptype, subtype, offset, size, name.encode(), 0)

    table = (entry("nvs", 1, 2, 0x9000, 0x6000) + entry("phy_init", 1, 1, 0xF000, 0x1000)
             + entry("factory", 0, 0, app_offset, app_size))
    table += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(table).digest()
    return table + b"\xff" * (0xC00 - len(table))


def make_espidf_build(project_dir: Path, board_id: str) -> dict[str, bytes]:
    """A generated project whose `build/` holds what `idf.py build` leaves for flashing."""
    chip = CHIPS[board_id]
    build = project_dir / "build"
    (build / "bootloader").mkdir(parents=True)
    (build / "partition_table").mkdir()
    images = {
        "bootloader": esp_app_image(chip, 0x403C9000 if chip == "esp32s3" else 0x40080400, bytes(range(256)) * 24),
        "partition_table": partition_table(0x10000, 0x100000),
        "app": esp_app_image(chip, 0x3F400020 if chip == "esp32" else 0x3C000020,
                             hashlib.sha256(b"tinyedge").digest() * 1500),
    }
    (build / "bootloader" / "bootloader.bin").write_bytes(images["bootloader"])
    (build / "partition_table" / "partition-table.bin").write_bytes(images["partition_table"])
    (build / "tinyedge_fw.bin").write_bytes(images["app"])
    offsets = get_board(board_id).settings(EsptoolSettings).offsets
    flasher_args = {
        "write_flash_args": ["--flash_mode", "dio", "--flash_size", "4MB", "--flash_freq", "40m"],
        "flash_settings": {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "40m"},
        "flash_files": {hex(offsets["bootloader"]): "bootloader/bootloader.bin",
                        hex(offsets["partition_table"]): "partition_table/partition-table.bin",
                        hex(offsets["app"]): "tinyedge_fw.bin"},
        "bootloader": {"offset": hex(offsets["bootloader"]), "file": "bootloader/bootloader.bin", "encrypted": "false"},
        "partition-table": {"offset": hex(offsets["partition_table"]),
                            "file": "partition_table/partition-table.bin", "encrypted": "false"},
        "app": {"offset": hex(offsets["app"]), "file": "tinyedge_fw.bin", "encrypted": "false"},
        "extra_esptool_args": {"after": "hard_reset", "before": "default_reset", "stub": True, "chip": chip},
    }
    (build / "flasher_args.json").write_text(json.dumps(flasher_args, indent=4))
    (build / "tinyedge_fw.elf").write_bytes(xtensa_elf_header())
    project = Project(dir=project_dir, board_id=board_id, runtime="tflm", model_name="sine", model_sha256="0" * 64,
                      arena_bytes=2048, ops=["FULLY_CONNECTED"])
    project.artifacts = build_record(project, record_build(project, seconds=0.0))   # as `tinyedge build` records it
    project.save()
    return images


def xtensa_elf_header() -> bytes:
    """An ELF32 header for Xtensa (machine 94) with no sections: what `tinyedge flash` checks is there."""
    ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    return ident + struct.pack("<HHIIIIIHHHHHH", 2, 94, 1, 0x40080000, 0, 0, 0, 52, 32, 0, 40, 0, 0)


def read_back(url: str, offset: int, size: int) -> bytes:
    """Read the mock chip's flash through esptool's ROM loader commands."""
    from esp_pylib.logger import EspLog
    from esptool.cmds import detect_chip, read_flash

    saved = EspLog.instance
    try:
        with detect_chip(url, connect_mode="no-reset") as esp:
            return read_flash(esp, offset, size, no_progress=True)
    finally:
        EspLog.instance = saved


@pytest.mark.parametrize("board_id", sorted(CHIPS))
def test_flash_writes_bootloader_partition_table_and_app_at_profile_offsets(tmp_path, board_id, capsys):
    images = make_espidf_build(tmp_path, board_id)
    project = Project.load(tmp_path)
    board = project.board
    offsets = board.settings(EsptoolSettings).offsets
    progress_calls: list[tuple[int, int, str]] = []

    with mock_bootloader(chip=CHIPS[board_id]) as stand_in_chip:
        url = stand_in_chip.url()
        flasher = get_flasher(board.flasher)
        with flasher.flash(project, url, progress=lambda done, total, what: progress_calls.append((done, total, what))) as serial_url:
            assert serial_url == url
        for role, data in images.items():
            assert read_back(url, offsets[role], len(data)) == data, f"{role} at {offsets[role]:#x} differs"

    labels = {what for _, _, what in progress_calls}
    assert {f"bootloader @ {offsets['bootloader']:#x}", "partition table @ 0x8000", "app @ 0x10000"} <= labels
    finals = [(done, total) for done, total, what in progress_calls if what.startswith("app")]
    assert finals[-1][0] == finals[-1][1] > 0
    assert "Hash of data verified" not in capsys.readouterr().out, "esptool's own output should be captured"


def test_profile_offsets_match_esptool_chip_definitions():
    from esptool.targets import CHIP_DEFS

    for board_id, chip in CHIPS.items():
        offsets = get_board(board_id).settings(EsptoolSettings).offsets
        assert offsets["bootloader"] == CHIP_DEFS[chip].BOOTLOADER_FLASH_OFFSET
        assert (offsets["partition_table"], offsets["app"]) == (0x8000, 0x10000)


def test_flash_to_the_wrong_chip_says_which_board_to_pass(tmp_path):
    make_espidf_build(tmp_path, "esp32-s3-devkitc")
    project = Project.load(tmp_path)
    with mock_bootloader(chip="esp32") as stand_in_chip:
        with pytest.raises(TinyedgeError, match=r"has an ESP32, but board 'esp32-s3-devkitc' is an ESP32-S3"):
            with get_flasher("esptool").flash(project, stand_in_chip.url()):
                pass


def test_flash_without_a_build_asks_to_build_first(tmp_path):
    Project(dir=tmp_path, board_id="esp32-devkitc", runtime="aot", model_name="m", model_sha256="0" * 64,
            arena_bytes=0, ops=[]).save()
    with pytest.raises(TinyedgeError, match=r"has not been built: run `tinyedge build"):
        with get_flasher("esptool").flash(Project.load(tmp_path), "socket://127.0.0.1:1"):
            pass


def test_flash_to_a_silent_port_is_a_device_error(tmp_path):
    import socket

    make_espidf_build(tmp_path, "esp32-devkitc")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(DeviceError, match="esptool could not flash"):
        with get_flasher("esptool").flash(Project.load(tmp_path), f"socket://127.0.0.1:{port}"):
            pass


def test_flasher_args_images_are_recorded_relative_to_the_project(tmp_path):
    make_espidf_build(tmp_path, "esp32-devkitc")
    assert read_flasher_args(tmp_path / "build") == {"bootloader": "build/bootloader/bootloader.bin",
                                                     "partition_table": "build/partition_table/partition-table.bin",
                                                     "app": "build/tinyedge_fw.bin"}
    assert [(i.role, i.offset) for i in esp_images(Project.load(tmp_path))] == [
        ("bootloader", 0x1000), ("partition_table", 0x8000), ("app", 0x10000)]


def test_tinyedge_flash_command_writes_the_chip(tmp_path):
    """The user's command line: `tinyedge flash DIR --port URL` against the stand-in ESP32."""
    from conftest import run_tinyedge

    images = make_espidf_build(tmp_path, "esp32-devkitc")
    with mock_bootloader(chip="esp32") as stand_in_chip:
        url = stand_in_chip.url()
        result = run_tinyedge("flash", tmp_path, "--port", url, timeout=120)
        assert result.returncode == 0, result.stderr
        assert url in result.stdout
        assert read_back(url, 0x10000, len(images["app"])) == images["app"]


def test_flash_through_a_serial_device_path(tmp_path):
    """The stand-in chip on a pseudo-terminal (/dev/pts/N), as a real USB-UART bridge appears (/dev/ttyUSB0)."""
    import subprocess
    import sys
    import time

    images = make_espidf_build(tmp_path / "project", "esp32-s3-devkitc")
    port_file = tmp_path / "mock.port"
    mock = subprocess.Popen([sys.executable, "-m", "esp32_mock_bootloader.cli", "run", "--pty", "--port-file",
                             str(port_file), "--chip", "esp32s3", "--timeout", "120"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (port_file.is_file() and port_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        device = port_file.read_text().strip()
        assert device.startswith("/dev/")
        with get_flasher("esptool").flash(Project.load(tmp_path / "project"), device) as serial_url:
            assert serial_url == device
        assert read_back(device, 0x0, len(images["bootloader"])) == images["bootloader"]
        assert read_back(device, 0x10000, len(images["app"])) == images["app"]
    finally:
        mock.terminate()
        mock.wait(timeout=10)


def test_an_esptool_older_than_the_api_the_flasher_drives_is_refused_in_one_sentence():
    """attach_flash, run_stub and reset_chip came with esptool 5.0, logging through esp_pylib with 5.4."""
    import importlib.metadata

    tomllib = pytest.importorskip("tomllib")
    from tinyedge.flashers.esptool import ESPTOOL_MINIMUM, require_esptool_version
    PROJECT_ROOT = Path(__file__).resolve().parent.parent

    dependencies = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "esptool>=5.4" in dependencies and ESPTOOL_MINIMUM == (5, 4)
    require_esptool_version(importlib.metadata.version("esptool"))     # the one installed here passes
    require_esptool_version("5.4.0")
    for old in ("5.3.1", "4.8.1"):
        with pytest.raises(TinyedgeError, match=rf"esptool {old} is installed but tinyedge needs 5.4 or newer: "
                                                r"run `.* -m pip install 'esptool>=5.4'`\.$"):
            require_esptool_version(old)
