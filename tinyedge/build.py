"""`tinyedge build`: run the board framework's real build and report flash and RAM against the budget."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import Callable

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult, Tool, get_framework
from tinyedge.project import Project

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHT_NOBITS = 8
BUILD_LOG = "build/build.log"


def elf_sizes(path: Path) -> tuple[int, int]:
    """(flash, RAM) of an ELF image: flash = allocated sections with contents (text, rodata, data),
    RAM = writable allocated sections (data, bss and any reserved stack)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF":
        raise TinyedgeError(f"{path} is not an ELF file: run `tinyedge build` again.")
    is64, little = data[4] == 2, data[5] == 1
    end = "<" if little else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
        layout = end + "IIQQQQ"
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
        layout = end + "IIIIII"
    flash = ram = 0
    for i in range(shnum):
        _name, sh_type, sh_flags, _addr, _offset, sh_size = struct.unpack_from(layout, data, shoff + i * shentsize)
        if not sh_flags & SHF_ALLOC:
            continue
        if sh_type != SHT_NOBITS:
            flash += sh_size
        if sh_flags & SHF_WRITE:
            ram += sh_size
    return flash, ram


def require_tools(tools: list[Tool], board: Board) -> None:
    for tool in tools:
        if shutil.which(tool.command) is None:
            raise TinyedgeError(f"{tool.command} is not installed or not on PATH (needed for {board.name}): "
                                f"install it with `{tool.install}`.")


def run_make(project_dir: Path, targets: list[str], what: str) -> None:
    """`make` in the project with the log kept in build/build.log; a failure names the first error line."""
    log_path = project_dir / BUILD_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    jobs = str(max(1, os.cpu_count() or 1))
    result = subprocess.run(["make", "-j", jobs, *targets], cwd=project_dir, capture_output=True, text=True)
    log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        lines = (result.stderr + result.stdout).splitlines()
        first = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "no output")
        raise TinyedgeError(f"the {what} build failed ({first.strip()[:300]}): fix it and run the build again "
                            f"(full log: {log_path}).")


def check_budget(project: Project, result: BuildResult, stack_reserve: int = 0) -> None:
    board = project.board
    if board.flash_bytes and result.flash_bytes > board.flash_bytes:
        raise TinyedgeError(f"the firmware needs {result.flash_bytes:,} bytes of flash but the {board.id} board has "
                            f"{board.flash_bytes:,}: use a smaller model or a bigger board.")
    if board.ram_bytes and result.ram_bytes > board.ram_bytes:
        raise TinyedgeError(f"the firmware needs {result.ram_bytes:,} bytes of RAM (data + bss) but the {board.id} board "
                            f"has {board.ram_bytes:,}: use a smaller model or a bigger board.")
    if board.ram_bytes and result.ram_bytes + stack_reserve > board.ram_bytes:
        raise TinyedgeError(f"the firmware's {result.ram_bytes:,} bytes of data + bss leave less than {stack_reserve} of the "
                            f"{board.id} board's {board.ram_bytes:,} bytes of RAM for the stack: use a smaller model.")


BuildFigures = Callable[[Project, BuildResult], None]   # shown before the budget is checked (the CLI's table)


def build(project_dir: Path, on_built: BuildFigures | None = None) -> BuildResult:
    """Build a generated project with its board's framework; records the image in the manifest.
    `on_built` sees the figures before a budget error is raised."""
    project = Project.load(project_dir)
    framework = get_framework(project.board.framework)
    started = time.monotonic()
    result = framework.build(project)
    result.seconds = result.seconds or time.monotonic() - started
    project.elf = str(result.elf.relative_to(project.dir))
    project.extra["build"] = {"flash_bytes": result.flash_bytes, "ram_bytes": result.ram_bytes,
                              "seconds": round(result.seconds, 2),
                              "artifacts": {k: str(v.relative_to(project.dir)) for k, v in result.artifacts.items()}}
    project.save()
    if on_built is not None:
        on_built(project, result)
    check_budget(project, result, getattr(framework, "stack_reserve_bytes", 0))
    return result
