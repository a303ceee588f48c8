"""Flashers, keyed by the `flasher` field of a board profile.

`Flasher.flash(project, port)` is a context manager: it writes the firmware (or starts the emulator
that runs it) and yields the pyserial URL to talk to; leaving the context stops anything it started.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Callable, ClassVar

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import Tool
from tinyedge.project import Project

FLASHER_MODULES = {
    "host": "tinyedge.flashers.host",
    "qemu": "tinyedge.flashers.qemu",
    "avrdude": "tinyedge.flashers.avrdude",
    "esptool": "tinyedge.flashers.esptool",
    "arduino-cli": "tinyedge.flashers.arduino_cli",
    "bossac": "tinyedge.flashers.bossac",
    "uf2": "tinyedge.flashers.uf2",
    "mpremote": "tinyedge.flashers.mpremote",
}

# progress(done_bytes, total_bytes, what) — routed into a rich progress bar by the CLI.
ProgressCallback = Callable[[int, int, str], None]


class Flasher(ABC):
    name: ClassVar[str]

    @abstractmethod
    def flash(self, project: Project, port: str | None,
              progress: ProgressCallback | None = None) -> AbstractContextManager[str]:
        """Write the firmware and yield the serial URL the firmware answers on."""

    @abstractmethod
    def tools(self, board: Board) -> list[Tool]:
        """External programs this flasher needs (for `tinyedge doctor`)."""

    @property
    def is_emulator(self) -> bool:
        """True when flashing starts a process that must keep running (QEMU, simavr, host)."""
        return False


def get_flasher(name: str) -> Flasher:
    if name not in FLASHER_MODULES:
        raise TinyedgeError(f"unknown flasher '{name}': choose one of {', '.join(FLASHER_MODULES)}.")
    return importlib.import_module(FLASHER_MODULES[name]).FLASHER
