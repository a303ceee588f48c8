"""Arduino (arduino-cli): a sketch folder `firmware/firmware.ino` with every source under
`firmware/src/`, which arduino-cli compiles recursively.

The board's core (`arduino.core`) and, for the tflm runtime, its TFLM library (`arduino.tflm_library`)
are installed by `build` with `arduino-cli core install` / `arduino-cli lib install`. Defines and
include folders reach every compilation unit through the cores' `compiler.{c,cpp}.extra_flags`
build properties, so they reach the libraries too: the tflm runtime is built without TFLM's error
strings, since the library's DebugLog prints on `Serial`, the port the protocol speaks on.

The port's persistent stores are chip-specific (te_store_nrf52.c: the nRF52840's NVMC, compiled only where
the core defines NRF52840_XXAA); a profile's `store` section names the one that backs the board, and
updatable firmware must end below it (the build checks the ELF against `flash_bytes - store.bytes`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult, Framework, RenderContext
from tinyedge.frameworks.mcu_support import (
    check_clear_of_store, drop_stale_sources, firmware_defines, firmware_outputs, gather_into, project_sources,
)
from tinyedge.project import Project
from tinyedge.sections import ArduinoSettings, StoreSettings
from tinyedge.templating import render_to
from tinyedge.tools import ARDUINO_CLI, require_tool, run_build_step

SKETCH = "firmware"


def arduino_settings(board: Board) -> ArduinoSettings:
    settings = board.settings(ArduinoSettings)
    if not settings.fqbn or not settings.core:
        raise TinyedgeError(f"board '{board.id}' has no arduino.fqbn/arduino.core: add them to its profile in boards.yaml.")
    return settings


def extra_flags(defines: dict[str, str]) -> str:
    return " ".join(f"-D{name}={value}" for name, value in defines.items())


def additional_urls(config: dict) -> list[str]:
    """`--additional-urls` for the board manager index the profile names (`arduino.index_url`), if any."""
    return sum((["--additional-urls", url] for url in config.get("index_urls", [])), [])


class ArduinoFramework(Framework):
    name = "arduino"
    sections = (ArduinoSettings, StoreSettings)
    source_dir = f"{SKETCH}/src"
    default_port = "arduino"
    required_tools = (ARDUINO_CLI,)

    def render(self, ctx: RenderContext) -> None:
        board = ctx.board
        settings = arduino_settings(board)
        sketch = ctx.out_dir / SKETCH
        src = ctx.out_dir / self.source_dir
        src.mkdir(parents=True, exist_ok=True)
        drop_stale_sources(src, [p.name for p in project_sources(ctx, self.source_dir)])
        gather_into(ctx, self.source_dir, src)
        uses_tflm = ctx.runtime == "tflm"
        render_to(sketch / f"{SKETCH}.ino", "arduino/sketch.ino.j2", board=board, model_name=ctx.model_name,
                  runtime=ctx.runtime, core=settings.core,
                  library=settings.tflm_library if uses_tflm else None,
                  library_header=settings.tflm_header if uses_tflm else None)
        render_to(sketch / "sketch.yaml", "arduino/sketch.yaml.j2", fqbn=settings.fqbn)
        (ctx.out_dir / "arduino_build.json").write_text(json.dumps({
            "fqbn": settings.fqbn, "core": settings.core,
            "index_urls": [settings.index_url] if settings.index_url else [],
            "libraries": [settings.tflm_library] if uses_tflm and settings.tflm_library else [],
            "defines": firmware_defines(ctx, tflm_log_on_protocol_port=True),
        }, indent=2) + "\n")

    def compile_command(self, cli: str, project_dir: Path) -> list[str]:
        config = json.loads((project_dir / "arduino_build.json").read_text())
        flags = extra_flags(config["defines"])
        return [cli, "compile", "--fqbn", config["fqbn"], "--output-dir", "build",
                "--build-property", f"compiler.c.extra_flags={flags}",
                "--build-property", f"compiler.cpp.extra_flags={flags}",
                *additional_urls(config),
                SKETCH]

    def build(self, project: Project) -> BuildResult:
        cli = require_tool(ARDUINO_CLI)
        config_path = project.dir / "arduino_build.json"
        if not config_path.is_file():
            raise TinyedgeError(f"{config_path} is missing: generate the project again.")
        config = json.loads(config_path.read_text())
        started = time.monotonic()
        log = project.dir / "build" / "build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        urls = additional_urls(config)
        run_build_step([cli, "core", "update-index", *urls], project.dir, log, "arduino-cli core update-index")
        run_build_step([cli, "core", "install", config["core"], *urls], project.dir, log,
                       f"arduino-cli core install {config['core']}")
        for library in config["libraries"]:
            run_build_step([cli, "lib", "install", library], project.dir, log, f"arduino-cli lib install {library}")
        run_build_step(self.compile_command(cli, project.dir), project.dir, log, "arduino-cli compile")
        result = collect_outputs(project, time.monotonic() - started)
        check_clear_of_store(project, result)
        return result


def collect_outputs(project: Project, seconds: float) -> BuildResult:
    """arduino-cli --output-dir build leaves firmware.ino.elf/.bin/.hex (and .uf2 on some cores)."""
    build = project.dir / "build"
    return firmware_outputs(build / f"{SKETCH}.ino.elf", seconds, "arduino-cli", build / "build.log")


FRAMEWORK = ArduinoFramework()
