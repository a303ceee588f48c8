"""Upload an Arduino build with `arduino-cli upload -p PORT --fqbn FQBN --input-dir build`.

arduino-cli runs the core's own uploader (bossac for the Nano 33 BLE, esptool for ESP32 cores) and
does the core's port dance itself (1200-bps touch, waiting for the bootloader port). It reports the
port the sketch reappears on as "New upload port: ..."; that, or the port we gave, is yielded.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tinyedge.boards import Board
from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.ports import find_board_port, wait_for_port
from tinyedge.project import Project
from tinyedge.sections import ArduinoSettings
from tinyedge.tools import ARDUINO_CLI, require_tool, run_with_progress

NEW_PORT = re.compile(r"New upload port:\s*(\S+)")
SKETCH_ELF_SUFFIX = ".ino.elf"      # arduino-cli names its outputs after the sketch: firmware.ino.elf


def new_port_from(lines: list[str]) -> str | None:
    for line in reversed(lines):
        if match := NEW_PORT.search(line):
            return match.group(1)
    return None


def fqbn(board: Board) -> str:
    name = board.settings(ArduinoSettings).fqbn
    if not name:
        raise TinyedgeError(f"board '{board.id}' has no arduino.fqbn: add it to its profile in boards.yaml.")
    return name


class ArduinoCliFlasher(Flasher):
    name = "arduino-cli"
    sections = (ArduinoSettings,)
    required_tools = (ARDUINO_CLI,)

    def upload_command(self, cli: str, project: Project, port: str) -> list[str]:
        """Upload the sketch arduino-cli built, from the folder its outputs are in."""
        elf = project.artifact("elf")
        sketch = elf.name.removesuffix(SKETCH_ELF_SUFFIX)
        input_dir = Path(os.path.relpath(elf.parent, project.dir)).as_posix()
        return [cli, "upload", "-p", port, "--fqbn", fqbn(project.board), "--input-dir", input_dir, sketch]

    @contextmanager
    def flash(self, project: Project, port: str | None,
              progress: ProgressCallback | None = None) -> Iterator[str]:
        board = project.board
        cli = require_tool(ARDUINO_CLI)
        project.artifact("elf")     # refuses an unbuilt project before looking for the board
        port = port or find_board_port(board)
        lines = run_with_progress(self.upload_command(cli, project, port), project.dir, "arduino-cli upload", progress)
        answering = new_port_from(lines) or port
        if not wait_for_port(answering, timeout_s=10):
            raise DeviceError(f"{answering} did not come back after the upload: reconnect the {board.name} "
                              "and run `tinyedge validate` with --port.")
        yield answering


FLASHER = ArduinoCliFlasher()
