"""`tinyedge build`: run the board framework's real build and report flash and RAM against the budget."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tinyedge.events import BuildFigures
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult
from tinyedge.plugins import get_framework
from tinyedge.project import Artifact, Project


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


def build_record(project: Project, result: BuildResult) -> dict[str, Artifact]:
    """What the build made, by role, relative to the project: the ELF and every image the framework returned."""
    files = {**result.artifacts, "elf": result.elf}
    return {role: Artifact(os.path.relpath(path, project.dir), result.offsets.get(role)) for role, path in files.items()}




def build(project_dir: Path, on_built: BuildFigures | None = None) -> BuildResult:
    """Build a generated project with its board's framework; records the image in the manifest.
    `on_built` sees the figures before a budget error is raised."""
    project = Project.load(project_dir)
    framework = get_framework(project.board.framework_for(project.runtime))
    started = time.monotonic()
    result = framework.build(project)
    result.seconds = result.seconds or time.monotonic() - started
    project.artifacts = build_record(project, result)
    project.extra["build"] = {"flash_bytes": result.flash_bytes, "ram_bytes": result.ram_bytes,
                              "seconds": round(result.seconds, 2)}
    project.save()
    if on_built is not None:
        on_built(project, result)
    check_budget(project, result, framework.stack_reserve_bytes)
    return result
