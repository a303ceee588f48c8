"""Putting MicroPython itself on a board (`--firmware FILE`), with the installer its profile names:
esptool for the ESP32s (the image at `micropython.firmware_offset`), the UF2 drive for the RP2040."""

from __future__ import annotations

import shutil
from pathlib import Path

from tinyedge.boards import Board
from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.ports import is_device_path
from tinyedge.sections import MicropythonSettings, Uf2Settings
from tinyedge.uf2 import find_uf2_drive

ESP_CHIPS = {"esp32": "ESP32", "esp32s3": "ESP32-S3"}


def install_micropython(board: Board, port: str, firmware: Path) -> str:
    """Write the MicroPython firmware; returns what was done, for the report line."""
    firmware = Path(firmware)
    if not firmware.is_file():
        raise TinyedgeError(f"{firmware} does not exist: download MicroPython for the {board.name} from "
                            "micropython.org/download and pass that file to --firmware.")
    settings = board.settings(MicropythonSettings)
    if settings.installer == "esptool":
        return _esptool(board, port, firmware, settings)
    if settings.installer == "uf2":
        return _uf2(firmware, board.settings(Uf2Settings).volume_label)
    raise TinyedgeError(f"the {board.id} board has no MicroPython installer: drop --firmware.")


def _esptool(board: Board, port: str, firmware: Path, settings: MicropythonSettings) -> str:
    from esptool.cmds import attach_flash, detect_chip, reset_chip, run_stub, write_flash
    from esptool.util import FatalError
    from serial import SerialException

    offset = settings.firmware_offset
    expected = ESP_CHIPS.get(settings.chip, "ESP32")
    try:
        with detect_chip(port, connect_mode="default-reset" if is_device_path(port) else "no-reset") as esp:
            if esp.CHIP_NAME != expected:
                raise TinyedgeError(f"{port} has an {esp.CHIP_NAME}, but board '{board.id}' is an {expected}: "
                                    "pass the --board that matches the chip.")
            esp = run_stub(esp)
            attach_flash(esp)
            write_flash(esp, [(offset, str(firmware))], flash_mode="keep", flash_freq="keep", flash_size="keep")
            reset_chip(esp, "hard-reset")
    except (FatalError, SerialException, OSError) as exc:
        raise DeviceError(f"esptool could not write MicroPython to the {board.name} on {port} ({exc}): hold BOOT, "
                          "tap EN (RST) and try again, or check --port.") from None
    return f"wrote {firmware.name} ({firmware.stat().st_size:,} B) at {offset:#x} with esptool"


def _uf2(firmware: Path, label: str) -> str:
    if firmware.suffix.lower() != ".uf2":
        raise TinyedgeError(f"{firmware.name} is not a .uf2 file: pass MicroPython's RPI_PICO .uf2 to --firmware.")
    drive = find_uf2_drive(label)
    if drive is None:
        raise DeviceError(f"no {label} drive is mounted: hold BOOTSEL while plugging the Pico in, then run again.")
    shutil.copyfile(firmware, drive / firmware.name)
    return f"copied {firmware.name} to {drive}"
