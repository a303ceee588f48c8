"""Runtimes behind the one serial protocol, keyed by the names in tinyedge.plugins.RUNTIMES: `tflm` (the
interpreter), `aot` (compiled ahead of time) and `viper` (MicroPython code).

A runtime first answers whether it can run a model on a board (`check`, which raises with the figures
when it cannot and returns what it worked out, e.g. the compiled program), then writes the sources the
generated project needs (`write_sources`, given what `check` returned).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.plugins import get_runtime  # noqa: F401  (re-exported: the registry loads runtimes)
from tinyedge.tflite_model import TfliteModel

__all__ = ["FirmwareAllowance", "Runtime", "RuntimeSources", "check_model_fits_flash", "get_runtime"]


@dataclass
class RuntimeSources:
    sources: list[str]                       # relative to the project dir: .c/.cc files to compile
    include_dirs: list[str] = field(default_factory=list)   # relative to the project dir
    defines: dict[str, str] = field(default_factory=dict)
    arena_bytes: int = 0
    uses_cpp: bool = False
    needs_tflm_tree: bool = False
    speed_sources: list[str] = field(default_factory=list)  # hot kernels: compiled for speed (-O2), not size
    tflm_dir: Path | None = None             # the TFLM tree the project compiles, where it compiles one


@dataclass(frozen=True)
class FirmwareAllowance:
    """What the firmware around the model (protocol, port, kernels, C library) takes, by framework:
    the model's constants and arena must fit in the budget that is left."""
    flash_bytes: int
    ram_bytes: int


class Runtime(ABC):
    name: ClassVar[str]
    # What an updatable firmware's model slot holds for this runtime (tinyedge.slots): "compiled"
    # (the data of a model compiled for one graph), "flatbuffer" (the .tflite itself), "" (no slots).
    slot_content: ClassVar[str] = ""

    def check(self, model: TfliteModel, board: Board, model_name: str, allowance: FirmwareAllowance,
              tflm_dir: Path | None = None) -> Any:
        """Refuse, in one sentence, a model this runtime cannot run on the board (or a TFLM tree it needs and
        cannot find); return what `write_sources` can reuse (None when nothing)."""
        return None

    @abstractmethod
    def write_sources(self, model: TfliteModel, board: Board, out_dir: Path, arena_bytes: int | None,
                      tflm_dir: Path | None, checked: Any = None) -> RuntimeSources:
        """Write the runtime's sources into out_dir; `checked` is what `check` returned."""


def check_model_fits_flash(model: TfliteModel, board: Board, model_name: str) -> None:
    if board.flash_bytes and len(model.data) > board.flash_bytes:
        raise TinyedgeError(
            f"{model_name} is {len(model.data):,} bytes but the {board.id} board has {board.flash_bytes:,} bytes "
            "of flash: use a smaller model or a bigger board.")
