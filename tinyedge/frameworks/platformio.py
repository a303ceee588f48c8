"""PlatformIO: `platformio.ini` with one `[env:<board id>]` (platform, board and framework from the
profile's `platformio` section, the TFLM library in `lib_deps`, our defines in `build_flags`) and
every source under `src/`. `build` runs `pio run`, which fetches the platform, toolchain and
libraries itself on first use. `build_flags` reach the libraries too: the tflm runtime is built without
TFLM's error strings, since the Arduino TFLM library's DebugLog prints on `Serial`, the protocol's port.
"""

from __future__ import annotations

import time

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult, Framework, RenderContext
from tinyedge.frameworks.mcu_support import (
    drop_stale_sources, firmware_defines, firmware_outputs, gather_into, project_sources,
)
from tinyedge.project import Project
from tinyedge.sections import PlatformioSettings
from tinyedge.templating import render_to
from tinyedge.tools import Tool, require_tool, run_build_step

PIO_INSTALL = "pip install platformio  (or see https://platformio.org/install/cli)"
PIO = Tool("PlatformIO Core", "pio", PIO_INSTALL, ("--version",))
ENTRY_SOURCE = "main.cpp"


def platformio_settings(board: Board) -> PlatformioSettings:
    settings = board.settings(PlatformioSettings)
    missing = [key for key in ("platform", "board", "framework") if not getattr(settings, key)]
    if missing:
        raise TinyedgeError(f"board '{board.id}' has no platformio.{'/'.join(missing)}: add it to its profile in boards.yaml.")
    return settings


def env_name(board: Board) -> str:
    return board.id


class PlatformioFramework(Framework):
    name = "platformio"
    sections = (PlatformioSettings,)
    default_port = "arduino"
    required_tools = (PIO,)

    def render(self, ctx: RenderContext) -> None:
        board = ctx.board
        settings = platformio_settings(board)
        src = ctx.out_dir / self.source_dir
        src.mkdir(parents=True, exist_ok=True)
        drop_stale_sources(src, [p.name for p in project_sources(ctx, self.source_dir)] + [ENTRY_SOURCE])
        gather_into(ctx, self.source_dir, src)
        uses_tflm = ctx.runtime == "tflm"
        lib_deps = list(board.tflm.get("lib_deps", [])) if uses_tflm else []
        options = settings.board_options()
        render_to(ctx.out_dir / "platformio.ini", "platformio/platformio.ini.j2", board=board,
                  env=env_name(board), platform=settings.platform, pio_board=settings.board,
                  framework=settings.framework, board_options=options, lib_deps=lib_deps,
                  lib_compat_mode=board.tflm.get("lib_compat_mode") if uses_tflm else None,
                  defines=firmware_defines(ctx, tflm_log_on_protocol_port=True))
        render_to(src / ENTRY_SOURCE, "platformio/main.cpp.j2", board=board, model_name=ctx.model_name,
                  runtime=ctx.runtime, library_header=settings.tflm_header if uses_tflm else None)

    def build(self, project: Project) -> BuildResult:
        board = project.board
        pio = require_tool(PIO)
        started = time.monotonic()
        log = project.dir / "build" / "build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        run_build_step([pio, "run", "-e", env_name(board)], project.dir, log, "pio run")
        out = project.dir / ".pio" / "build" / env_name(board)
        return firmware_outputs(out / "firmware.elf", time.monotonic() - started, "pio run", log)


FRAMEWORK = PlatformioFramework()
