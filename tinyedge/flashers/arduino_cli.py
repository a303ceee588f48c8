"""Upload an Arduino build with `arduino-cli upload -p PORT --fqbn FQBN --input-dir build`.

arduino-cli runs the core's own uploader (bossac for the Nano 33 BLE, esptool for ESP32 cores) and
does the core's port dance itself (1200-bps touch, waiting for the bootloader port). It reports the
port the sketch reappears on as "New upload port: ..."; that, or the port we gave, is yielded.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tinyedge.boards import Board
from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.frameworks import Tool
from tinyedge.frameworks.arduino import ARDUINO_CLI_INSTALL, SKETCH, arduino_settings
from tinyedge.frameworks.mcu_support import require_tool
from tinyedge.ports import find_board_port, wait_for_port
from tinyedge.project import Project

PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s?%")
NEW_PORT = re.compile(r"New upload port:\s*(\S+)")


def run_with_progress(command: Sequence[str], cwd: Path, what: str, progress: ProgressCallback | None,
                      timeout_s: float = 300.0) -> list[str]:
    """Run an uploader, turning the percentages it prints into progress calls; its lines are returned.
    A failure raises DeviceError naming the uploader's last words."""
    lines: list[str] = []
    try:
        process = subprocess.Popen(list(command), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        raise TinyedgeError(f"{command[0]} is not installed or not on PATH: install it and try again.") from None
    assert process.stdout is not None
    pending = b""
    while chunk := process.stdout.read1(4096):
        pending += chunk
        *complete, pending = re.split(rb"[\r\n]", pending)
        for raw in complete:
            _take_line(raw.decode(errors="replace").strip(), lines, what, progress)
    _take_line(pending.decode(errors="replace").strip(), lines, what, progress)
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        raise DeviceError(f"{what} did not finish within {timeout_s:.0f} s: reset the board and flash again.") from None
    if code != 0:
        tail = " / ".join(lines[-3:]) or "no output"
        raise DeviceError(f"{what} failed (exit {code}; {tail}): check the port and the board, then flash again.")
    return lines


def _take_line(line: str, lines: list[str], what: str, progress: ProgressCallback | None) -> None:
    if not line:
        return
    lines.append(line)
    match = PERCENT.search(line)
    if match and progress is not None:
        progress(min(100, int(float(match.group(1)))), 100, what)


def new_port_from(lines: list[str]) -> str | None:
    for line in reversed(lines):
        if match := NEW_PORT.search(line):
            return match.group(1)
    return None


class ArduinoCliFlasher(Flasher):
    name = "arduino-cli"

    def tools(self, board: Board) -> list[Tool]:
        return [Tool("arduino-cli", "arduino-cli", ARDUINO_CLI_INSTALL, ("version",))]

    def upload_command(self, cli: str, project: Project, port: str) -> list[str]:
        config_path = project.dir / "arduino_build.json"
        fqbn = (json.loads(config_path.read_text())["fqbn"] if config_path.is_file()
                else arduino_settings(project.board)["fqbn"])
        return [cli, "upload", "-p", port, "--fqbn", fqbn, "--input-dir", "build", SKETCH]

    @contextmanager
    def flash(self, project: Project, port: str | None,
              progress: ProgressCallback | None = None) -> Iterator[str]:
        board = project.board
        cli = require_tool(self.tools(board)[0])
        if not (project.dir / "build" / f"{SKETCH}.ino.elf").is_file():
            raise TinyedgeError(f"{project.dir} has no Arduino build: run `tinyedge build {project.dir}` first.")
        port = port or find_board_port(board)
        lines = run_with_progress(self.upload_command(cli, project, port), project.dir, "arduino-cli upload", progress)
        answering = new_port_from(lines) or port
        if not wait_for_port(answering, timeout_s=10):
            raise DeviceError(f"{answering} did not come back after the upload: reconnect the {board.name} "
                              "and run `tinyedge validate` with --port.")
        yield answering


FLASHER = ArduinoCliFlasher()
