"""Flashers, keyed by the `flasher` field of a board profile (names in tinyedge.plugins).

`Flasher.flash(project, port)` is a context manager: it writes the firmware (or starts the emulator
that runs it) and yields the pyserial URL to talk to; leaving the context stops anything it started.
A flasher reads what it writes from the project's build record (`project.artifact(role)`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from tinyedge.boards import Board
from tinyedge.plugins import get_flasher  # noqa: F401  (re-exported: the registry loads flashers)
from tinyedge.project import Project
from tinyedge.sections import Section
from tinyedge.tools import ProgressCallback, Tool

__all__ = ["Flasher", "ProgressCallback", "get_flasher"]


class Flasher(ABC):
    name: ClassVar[str]
    # True when flashing always starts a process that must keep running (QEMU, the host firmware).
    emulates: ClassVar[bool] = False
    # The keyword options `flash` takes beyond (project, port, progress): "icount" (QEMU's instruction
    # counting), "firmware" (MicroPython to install first).
    options: ClassVar[frozenset[str]] = frozenset()
    # The external programs every board flashed this way needs (override `tools` when it depends on the board).
    required_tools: ClassVar[tuple[Tool, ...]] = ()
    # The profile sections (tinyedge/sections.py) this flasher reads through `board.settings(...)`.
    sections: ClassVar[tuple[type[Section], ...]] = ()

    @abstractmethod
    def flash(self, project: Project, port: str | None, progress: ProgressCallback | None = None,
              **options: Any) -> AbstractContextManager[str]:
        """Write the firmware and yield the serial URL the firmware answers on."""

    def tools(self, board: Board) -> list[Tool]:
        """External programs this flasher needs (for `tinyedge doctor`)."""
        return list(self.required_tools)

    def will_emulate(self, board: Board, port: str | None) -> bool:
        """True when flashing this board on this port starts an emulator that must keep running."""
        return self.emulates
