"""Runtimes behind the one serial protocol: `tflm` (the interpreter) and `aot` (compiled ahead of time).

Each runtime module exposes `write_sources(model, board, out_dir, arena_bytes, tflm_dir) -> RuntimeSources`,
writing the C/C++ it needs into the generated project.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.tflite_model import TfliteModel

RUNTIME_MODULES = {"tflm": "tinyedge.runtimes.tflm", "aot": "tinyedge.runtimes.aot",
                   "viper": "tinyedge.runtimes.viper"}


@dataclass
class RuntimeSources:
    sources: list[str]                       # relative to the project dir: .c/.cc files to compile
    include_dirs: list[str] = field(default_factory=list)   # relative to the project dir
    defines: dict[str, str] = field(default_factory=dict)
    arena_bytes: int = 0
    uses_cpp: bool = False
    needs_tflm_tree: bool = False
    speed_sources: list[str] = field(default_factory=list)  # hot kernels: compiled for speed (-O2), not size


class Runtime(Protocol):
    def write_sources(self, model: TfliteModel, board: Board, out_dir: Path,
                      arena_bytes: int | None, tflm_dir: Path | None) -> RuntimeSources: ...


def get_runtime(name: str) -> Runtime:
    if name not in RUNTIME_MODULES:
        raise TinyedgeError(f"unknown runtime '{name}': choose one of {', '.join(RUNTIME_MODULES)}.")
    return importlib.import_module(RUNTIME_MODULES[name])  # type: ignore[return-value]
