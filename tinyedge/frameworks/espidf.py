"""ESP-IDF (ESP32, ESP32-S3): a CMake project whose one component, `main`, holds every source
(the runtime's files are moved there too, so the project is self-contained).

TFLM comes from Espressif's `esp-tflite-micro` component (with the ESP-NN kernels), declared in
main/idf_component.yml and fetched by the IDF Component Manager during `idf.py build`.
`build` runs `idf.py set-target` (when the target changed) and `idf.py build`, then records the
images esptool writes (from ESP-IDF's build/flasher_args.json) in tinyedge.json.

Serial: the protocol owns UART0, the port behind the DevKits' USB-UART bridge, so sdkconfig.defaults
turns the IDF console and boot log off (CONFIG_ESP_CONSOLE_NONE, bootloader log level NONE); only the
ROM loader's boot text precedes the protocol, and the host skips it. On the ESP32-S3 the port also
serves the USB Serial/JTAG connector (firmware/ports/espidf). The CPU runs at the profile's clock
(240 MHz), the main task gets an 8 KiB stack, the task watchdog is not armed (a long inference must
not reset the chip) and the app partition is the large single-app one at 0x10000.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult, Framework, RenderContext, Tool
from tinyedge.frameworks.mcu_support import (
    drop_stale_sources, elf_memory, firmware_defines, gather_into, project_sources, relative_to, render_template,
    require_tool, run_build_step,
)
from tinyedge.project import Project

IDF_VERSION = ">=5.1"
MAIN_STACK_BYTES = 8192
ENTRY_SOURCE = "tinyedge_app_main.c"
IDF_INSTALL = ("install ESP-IDF v5.1 or newer (git clone --recursive https://github.com/espressif/esp-idf, "
               "then ./install.sh esp32,esp32s3) and run `. ./export.sh` from it in this shell")


def project_name(model_name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", model_name).strip("_") or "model"
    return f"tinyedge_{name}"


def idf_target(board: Board) -> str:
    target = board.extra.get("idf_target") or board.section("esptool").get("chip")
    if not target:
        raise TinyedgeError(f"board '{board.id}' names no idf_target: add it to its profile in boards.yaml.")
    return str(target)


def flash_size_name(flash_bytes: int) -> str:
    mib = flash_bytes // (1024 * 1024)
    if mib not in (1, 2, 4, 8, 16, 32, 64, 128):
        raise TinyedgeError(f"flash_bytes {flash_bytes} is not an ESP flash size (1-128 MiB): fix boards.yaml.")
    return f"{mib}MB"


class EspIdfFramework(Framework):
    name = "espidf"
    source_dir = "main"

    def tools(self, board: Board) -> list[Tool]:
        return [Tool("ESP-IDF", "idf.py", IDF_INSTALL, ("--version",))]

    def render(self, ctx: RenderContext) -> None:
        board, out = ctx.board, ctx.out_dir
        main_dir = out / self.source_dir
        name = project_name(ctx.model_name)
        render_template("espidf", "main/tinyedge_app_main.c.j2", main_dir / ENTRY_SOURCE, board=board)
        sources = list(dict.fromkeys([p.name for p in project_sources(ctx, self.source_dir)] + [ENTRY_SOURCE]))
        drop_stale_sources(main_dir, sources)
        gather_into(ctx, self.source_dir, main_dir)
        tflm = board.tflm if ctx.runtime == "tflm" else {}
        render_template("espidf", "CMakeLists.txt.j2", out / "CMakeLists.txt", board=board,
                        idf_target=idf_target(board), project_name=name)
        render_template("espidf", "main/CMakeLists.txt.j2", main_dir / "CMakeLists.txt", runtime=ctx.runtime,
                        sources=sources, include_dirs=["."], defines=firmware_defines(ctx))
        render_template("espidf", "main/idf_component.yml.j2", main_dir / "idf_component.yml",
                        idf_version=IDF_VERSION, component=tflm.get("component"),
                        component_version=tflm.get("version", "*"))
        render_template("espidf", "sdkconfig.defaults.j2", out / "sdkconfig.defaults", board=board,
                        idf_target=idf_target(board), main_stack_bytes=MAIN_STACK_BYTES,
                        flash_size=flash_size_name(board.flash_bytes))

    def build(self, project: Project) -> BuildResult:
        board = project.board
        idf = require_tool(self.tools(board)[0])
        started = time.monotonic()
        log = project.dir / "build.log"
        log.write_text("")
        target = idf_target(board)
        if configured_target(project.dir) != target:
            run_build_step([idf, "set-target", target], project.dir, log, f"idf.py set-target {target}")
        run_build_step([idf, "build"], project.dir, log, "idf.py build")
        return record_build(project, time.monotonic() - started)


def configured_target(project_dir: Path) -> str | None:
    sdkconfig = project_dir / "sdkconfig"
    if not sdkconfig.is_file():
        return None
    match = re.search(r'^CONFIG_IDF_TARGET="([^"]+)"', sdkconfig.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def record_build(project: Project, seconds: float) -> BuildResult:
    """Note ESP-IDF's outputs in tinyedge.json: the ELF, and the images esptool writes."""
    from tinyedge.flashers.esptool import read_flasher_args

    build_dir = project.dir / "build"
    recorded = read_flasher_args(build_dir)
    app = project.dir / recorded["images"]["app"]
    elf = app.with_suffix(".elf")
    if not elf.is_file():
        raise TinyedgeError(f"ESP-IDF built {app.name} but no {elf.name}: run `idf.py fullclean` and build again.")
    _, ram = elf_memory(elf)
    project.elf = relative_to(elf, project.dir)
    project.extra["esptool"] = recorded
    project.extra["artifacts"] = {**recorded["images"], "elf": project.elf}
    project.save()
    artifacts = {role: project.dir / path for role, path in recorded["images"].items()}
    return BuildResult(elf=elf, flash_bytes=app.stat().st_size, ram_bytes=ram, seconds=seconds, artifacts=artifacts)


FRAMEWORK = EspIdfFramework()
