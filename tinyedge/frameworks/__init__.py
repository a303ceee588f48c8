"""Frameworks, keyed by the `framework` field of a board profile (names in tinyedge.plugins): each
renders its project layout from templates/<framework>/ and runs that framework's real build."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tinyedge.boards import Board
from tinyedge.plugins import get_framework  # noqa: F401  (re-exported: the registry loads frameworks)
from tinyedge.project import Project
from tinyedge.runtimes import FirmwareAllowance, RuntimeSources
from tinyedge.sections import Section
from tinyedge.tflite_model import TfliteModel
from tinyedge.tools import Tool

__all__ = ["BuildResult", "DEFAULT_ALLOWANCE", "Framework", "RenderContext", "Tool", "get_framework"]

# What the firmware around the model takes on a framework that does not say.
DEFAULT_ALLOWANCE = FirmwareAllowance(flash_bytes=64 * 1024, ram_bytes=32 * 1024)


@dataclass
class RenderContext:
    board: Board
    model: TfliteModel
    model_name: str
    runtime: str
    out_dir: Path
    runtime_sources: RuntimeSources
    common_sources: list[str]               # protocol, port and model-info sources, relative to out_dir
    include_dirs: list[str]                 # relative to out_dir
    tflm_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildResult:
    elf: Path
    flash_bytes: int
    ram_bytes: int
    seconds: float
    artifacts: dict[str, Path] = field(default_factory=dict)   # role -> file, e.g. bin/hex/uf2 images
    offsets: dict[str, int] = field(default_factory=dict)      # role -> flash address, where the flasher needs one


class Framework(ABC):
    name: ClassVar[str]
    # Where generate.py copies the C/C++ sources inside the project ("main" for ESP-IDF, "src" elsewhere).
    source_dir: ClassVar[str] = "src"
    # The board port (firmware/ports/<name>) used unless the profile names one with `port:`; "" for none.
    default_port: ClassVar[str] = ""
    # False where no C is compiled (MicroPython): generate then copies no protocol/port sources.
    compiles_firmware: ClassVar[bool] = True
    # What the firmware around the model takes (generate checks an AOT model against the rest of the budget).
    allowance: ClassVar[FirmwareAllowance] = DEFAULT_ALLOWANCE
    # The ELF's data + bss leave out the stack: keep this much RAM free for it.
    stack_reserve_bytes: ClassVar[int] = 0
    # The external programs every board of this framework needs (override `tools` when it depends on the board).
    required_tools: ClassVar[tuple[Tool, ...]] = ()
    # The profile sections (tinyedge/sections.py) this framework reads through `board.settings(...)`.
    sections: ClassVar[tuple[type[Section], ...]] = ()

    @abstractmethod
    def render(self, ctx: RenderContext) -> None:
        """Write the framework's project files (build scripts, entry point) into ctx.out_dir."""

    @abstractmethod
    def build(self, project: Project) -> BuildResult:
        """Run the framework's real build; raise TinyedgeError naming a missing tool and its install line."""

    def tools(self, board: Board) -> list[Tool]:
        """The external programs this framework needs for the board (for `tinyedge doctor`)."""
        return list(self.required_tools)
