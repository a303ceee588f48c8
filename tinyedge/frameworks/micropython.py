"""The `micropython` framework: no C toolchain; the build compiles the generated modules with
mpy-cross for the board's architecture (its profile's `micropython.arch`) into build/*.mpy."""

from __future__ import annotations

import json
import time

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult, Framework, RenderContext
from tinyedge.project import Project
from tinyedge.sections import MicropythonSettings
from tinyedge.tools import Tool
from tinyedge.viper.mpy import INSTALL_LINE, compile_module, mpy_cross_command, mpy_cross_format

BUILD_DIR = "build"
MPY_FORMAT = "mpy.json"     # the .mpy format the modules were compiled for, and their size


def micropython_settings(board: Board) -> MicropythonSettings:
    return board.settings(MicropythonSettings)


class MicroPythonFramework(Framework):
    name = "micropython"
    sections = (MicropythonSettings,)
    source_dir = "device"
    compiles_firmware = False

    def render(self, ctx: RenderContext) -> None:
        micropython_settings(ctx.board)

    def build(self, project: Project) -> BuildResult:
        started = time.monotonic()
        arch = micropython_settings(project.board).arch
        sources = [project.dir / s for s in project.extra.get("sources", [])]
        if not sources or not all(s.is_file() for s in sources):
            raise TinyedgeError(f"{project.dir} has no generated MicroPython modules: run `tinyedge generate` again.")
        out_dir = project.dir / BUILD_DIR
        out_dir.mkdir(exist_ok=True)
        built = [compile_module(s, out_dir / f"{s.stem}.mpy", arch) for s in sources]
        module_bytes = sum(p.stat().st_size for p in built)
        fmt = mpy_cross_format(arch)
        stats = json.loads((project.dir / "device" / "viper.json").read_text())
        (out_dir / MPY_FORMAT).write_text(json.dumps({"version": fmt.version, "sub_version": fmt.sub_version,
                                                      "arch": arch, "module_bytes": module_bytes}) + "\n")
        model_mpy = out_dir / "te_model.mpy"
        return BuildResult(elf=model_mpy, flash_bytes=module_bytes, ram_bytes=module_bytes + stats["arena_bytes"],
                           seconds=time.monotonic() - started,
                           artifacts={**{p.stem: p for p in built}, "mpy_format": out_dir / MPY_FORMAT})

    def tools(self, board: Board) -> list[Tool]:
        return [Tool("mpy-cross", mpy_cross_command(), INSTALL_LINE)]


FRAMEWORK = MicroPythonFramework()
