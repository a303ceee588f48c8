"""Flash an Arduino SAM/nRF board (Nano 33 BLE) with bossac directly, without arduino-cli:
1200-bps touch on the sketch's port, wait for the bootloader's port, then
`bossac -p PORT -U -i -e -w -R firmware.bin` (native USB, info, erase, write, reset),
and wait for the sketch's port to come back. The bossac is Arduino's fork where arduino-cli installs
it, else the one on PATH.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tinyedge.boards import Board
from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.ports import find_board_port, is_device_path, list_ports, touch_1200bps, wait_for_usb_port
from tinyedge.project import Project
from tinyedge.sections import ArduinoSettings
from tinyedge.tools import Tool, require_tool, run_with_progress

# The Nano 33 BLE's bootloader speaks Arduino's BOSSA fork (1.9.1-arduino2); upstream BOSSA, Debian's
# bossa-cli included, has no nRF52840 support. arduino-cli installs the fork with the board's core.
ARDUINO_BOSSAC_VERSION = "1.9.1-arduino2"
ARDUINO_TOOLS = Path.home() / ".arduino15" / "packages" / "arduino" / "tools" / "bossac"
BOSSAC_INSTALL = (f"install Arduino's bossac {ARDUINO_BOSSAC_VERSION} with `arduino-cli core install arduino:mbed_nano` "
                  f"(it lands in {ARDUINO_TOOLS}/{ARDUINO_BOSSAC_VERSION}/, which tinyedge looks in) - "
                  "not Debian's bossa-cli, which cannot flash the nRF52840")


def arduino_bossac() -> str | None:
    """The bossac arduino-cli installed with an Arduino core, the newest first, if any."""
    found = sorted(ARDUINO_TOOLS.glob("*/bossac"), reverse=True) if ARDUINO_TOOLS.is_dir() else []
    return str(found[0]) if found else None


def bootloader_ids(board: Board) -> list[str]:
    ids = board.settings(ArduinoSettings).bootloader_usb_ids
    return list(board.usb_ids if ids is None else ids)


def sketch_ids(board: Board) -> list[str]:
    boot = set(bootloader_ids(board))
    return [uid for uid in board.usb_ids if uid not in boot] or list(board.usb_ids)


def enter_bootloader(board: Board, port: str) -> str:
    """Touch the port at 1200 bps and return the bootloader's port once it enumerates."""
    if any(p.device == port and p.usb_id in bootloader_ids(board) for p in list_ports()):
        return port     # already in the bootloader (double-tapped reset)
    touch_1200bps(port)
    time.sleep(0.5)     # let the sketch's port go away before looking for the bootloader's
    found = wait_for_usb_port(bootloader_ids(board), timeout_s=10)
    if found is None:
        raise DeviceError(f"the {board.name} did not enter its bootloader after the 1200-bps touch on {port}: "
                          "double-tap its reset button and flash again with --port.")
    return found


class BossacFlasher(Flasher):
    name = "bossac"
    sections = (ArduinoSettings,)

    def tools(self, board: Board) -> list[Tool]:
        command = arduino_bossac() or "bossac"     # the fork first: a bossac on PATH may be upstream
        return [Tool("BOSSA", command, BOSSAC_INSTALL, ("--help",))]

    @contextmanager
    def flash(self, project: Project, port: str | None,
              progress: ProgressCallback | None = None) -> Iterator[str]:
        board = project.board
        bossac = require_tool(self.tools(board)[0])
        image = project.artifact("bin")
        port = port or find_board_port(board)
        if not is_device_path(port):
            raise TinyedgeError(f"bossac needs a local serial device, not {port}: pass --port /dev/ttyACM0 or similar.")
        if board.settings(ArduinoSettings).touch_1200bps:
            port = enter_bootloader(board, port)
        run_with_progress([bossac, "-p", port, "-U", "-i", "-e", "-w", "-R", str(image)], project.dir,
                          "bossac", progress)
        answering = wait_for_usb_port(sketch_ids(board), timeout_s=15)
        if answering is None:
            raise DeviceError(f"the {board.name} took the firmware but its port ({', '.join(sketch_ids(board))}) "
                              "did not come back: reconnect it and run `tinyedge validate` with --port.")
        yield answering


FLASHER = BossacFlasher()
