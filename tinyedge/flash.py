"""`tinyedge flash`: write the built firmware with the board's flasher (or start its emulator) and
yield the pyserial URL the firmware answers on."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.paths import cache_dir
from tinyedge.plugins import get_flasher
from tinyedge.processes import wait_while_served
from tinyedge.project import Project

# Set to 1 to run QEMU-emulated boards with `-icount shift=0` unless --icount/--no-icount says otherwise.
ICOUNT_ENV = "TINYEDGE_QEMU_ICOUNT"


def icount_requested(icount: bool | None) -> bool:
    if icount is not None:
        return icount
    return os.environ.get(ICOUNT_ENV, "") not in ("", "0")


def counts_instructions(board: Board, icount: bool | None) -> bool | None:
    """Whether the board's emulator will count instructions; None when its flasher cannot."""
    return icount_requested(icount) if "icount" in get_flasher(board.flasher).options else None


def load_built_project(project_dir: Path) -> Project:
    project = Project.load(project_dir)
    project.artifact("elf")     # an unbuilt project says to run `tinyedge build`
    return project


def is_emulated(flasher: Flasher, project: Project, port: str | None) -> bool:
    """True when flashing starts an emulator that must keep running for the firmware to answer."""
    return flasher.will_emulate(project.board, port)


@contextmanager
def flash(project_dir: Path, port: str | None = None, progress: ProgressCallback | None = None,
          icount: bool | None = None, firmware: Path | None = None) -> Iterator[str]:
    """Flash the project's firmware; the context yields the URL to open with pyserial and stops any
    emulator it started on exit. `icount` (QEMU only) runs the guest with `-icount shift=0`, so cycle
    figures are deterministic instruction counts (default: $TINYEDGE_QEMU_ICOUNT). `firmware`
    (MicroPython boards only) installs MicroPython from that file first."""
    project = load_built_project(Path(project_dir).resolve())  # flashers run tools in other directories
    flasher = get_flasher(project.board.flasher)
    if icount and "icount" not in flasher.options:
        raise TinyedgeError(f"--icount only applies to QEMU-emulated boards, not {project.board.id}: drop it.")
    options: dict[str, Any] = {"icount": icount_requested(icount)} if "icount" in flasher.options else {}
    if firmware is not None:
        if "firmware" not in flasher.options:
            raise TinyedgeError(f"--firmware installs MicroPython on MicroPython boards, not on {project.board.id}: "
                                "drop it.")
        options["firmware"] = Path(firmware)
    with flasher.flash(project, port, progress, **options) as url:
        if "icount" not in options:
            yield url
            return
        with emulator_session(url, options["icount"]):
            yield url


def _session_file(url: str) -> Path:
    return cache_dir() / "emulators" / (re.sub(r"[^A-Za-z0-9]+", "_", url) + ".json")


@contextmanager
def emulator_session(url: str, icount: bool) -> Iterator[None]:
    """While an emulator this process started serves `url`, a note of whether it counts instructions,
    so `tinyedge validate --port URL` in another shell can report instructions rather than time."""
    path = _session_file(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": url, "icount": icount, "pid": os.getpid()}))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def emulator_counts_instructions(url: str) -> bool | None:
    """Whether the emulator serving `url` runs with -icount; None when no live tinyedge emulator serves it."""
    try:
        note = json.loads(_session_file(url).read_text())
        os.kill(int(note["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return bool(note["icount"]) if note.get("url") == url else None


def keep_serving(url: str) -> None:
    """Block while the emulator that `flash` started runs (the user stops it with Ctrl-C); a DeviceError
    (exit 3) saying so when it dies on its own."""
    wait_while_served(url)
