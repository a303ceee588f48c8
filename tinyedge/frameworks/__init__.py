"""Frameworks, keyed by the `framework` field of a board profile: each renders its project
layout from templates/<framework>/ and runs that framework's real build."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.project import Project
from tinyedge.runtimes import RuntimeSources
from tinyedge.tflite_model import TfliteModel

FRAMEWORK_MODULES = {
    "host": "tinyedge.frameworks.host",
    "baremetal": "tinyedge.frameworks.baremetal",
    "avr": "tinyedge.frameworks.avr",
    "espidf": "tinyedge.frameworks.espidf",
    "arduino": "tinyedge.frameworks.arduino",
    "platformio": "tinyedge.frameworks.platformio",
    "micropython": "tinyedge.frameworks.micropython",
}


@dataclass(frozen=True)
class Tool:
    """An external program a framework needs, and the line that installs it."""
    name: str
    command: str
    install: str
    version_args: tuple[str, ...] = ("--version",)


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
    artifacts: dict[str, Path] = field(default_factory=dict)   # e.g. bin/hex/uf2 images


class Framework(ABC):
    name: ClassVar[str]
    # Where generate.py copies the C/C++ sources inside the project ("main" for ESP-IDF, "src" elsewhere).
    source_dir: ClassVar[str] = "src"

    @abstractmethod
    def render(self, ctx: RenderContext) -> None:
        """Write the framework's project files (build scripts, entry point) into ctx.out_dir."""

    @abstractmethod
    def build(self, project: Project) -> BuildResult:
        """Run the framework's real build; raise TinyedgeError naming a missing tool and its install line."""

    @abstractmethod
    def tools(self, board: Board) -> list[Tool]:
        """The external programs this framework needs for the board (for `tinyedge doctor`)."""


def get_framework(name: str) -> Framework:
    if name not in FRAMEWORK_MODULES:
        raise TinyedgeError(f"unknown framework '{name}': choose one of {', '.join(FRAMEWORK_MODULES)}.")
    module = importlib.import_module(FRAMEWORK_MODULES[name])
    return module.FRAMEWORK
