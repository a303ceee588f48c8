"""The `baremetal` framework: arm-none-eabi-gcc, newlib-nano, our own startup code and a linker
script rendered from the profile's memory map (the QEMU mps2-an386 Cortex-M4F)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import RenderContext
from tinyedge.frameworks.make import BUILD_ESSENTIAL, MakeFramework
from tinyedge.project import Project
from tinyedge.runtimes import FirmwareAllowance
from tinyedge.templating import render, write_if_changed
from tinyedge.tools import Tool

ARM_INSTALL = "sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
ARM_CPP_INSTALL = "sudo apt-get install libstdc++-arm-none-eabi-newlib"
LINKER_SCRIPT = "link.ld"


def memory_map(board: Board) -> dict[str, Any]:
    memory = board.section("memory")
    try:
        flash, ram = memory["flash"], memory["ram"]
        return {"flash": {"origin": int(flash["origin"]), "length": int(flash["length"])},
                "ram": {"origin": int(ram["origin"]), "length": int(ram["length"])},
                "stack_bytes": int(memory.get("stack_bytes", 8192))}
    except (KeyError, TypeError, ValueError):
        raise TinyedgeError(f"the {board.id} profile needs a `memory` section with flash and ram origin/length "
                            "for the linker script: fix boards.yaml.") from None


class BaremetalFramework(MakeFramework):
    name = "baremetal"
    default_port = "mps2"
    allowance = FirmwareAllowance(flash_bytes=32 * 1024, ram_bytes=24 * 1024)

    def prefix(self, board: Board) -> str:
        return board.toolchain if board.toolchain.endswith("-") else board.toolchain + "-"

    def compilers(self, board: Board) -> tuple[str, str, str]:
        prefix = self.prefix(board)
        return f"{prefix}gcc", f"{prefix}g++", f"{prefix}ar"

    def tflm_flags(self, board: Board) -> tuple[list[str], list[str]]:
        cflags, cxxflags = super().tflm_flags(board)
        return [*cflags, "--specs=nano.specs"], [*cxxflags, "--specs=nano.specs"]

    def make_variables(self, ctx: RenderContext) -> dict[str, Any]:
        board = ctx.board
        uart = board.section("uart")
        timer = board.section("timer")
        defines = {"TE_UART_BASE": f"0x{int(uart.get('base', 0x40004000)):08X}u",
                   "TE_CPU_HZ": f"{int(timer.get('hz', board.clock_hz))}u"}
        return {
            "prefix": self.prefix(board),
            "defines": {**defines, **self.base_defines(ctx)},
            "extra_cflags": ["--specs=nano.specs"], "extra_cxxflags": ["--specs=nano.specs"],
            "ldflags": ["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", f"-T{LINKER_SCRIPT}",
                        "-Wl,--gc-sections", "-Wl,-Map=$(BUILD)/firmware.map", "-Wl,--no-warn-rwx-segments"],
            "ldlibs": ["-lm"],
            "link_deps": [LINKER_SCRIPT],
            "all_targets": ["$(TARGET)", "$(BUILD)/firmware.bin"],
        }

    def extra_files(self, ctx: RenderContext) -> None:
        text = render("baremetal/link.ld.j2", board=ctx.board, **memory_map(ctx.board))
        write_if_changed(ctx.out_dir / LINKER_SCRIPT, text)

    def artifacts(self, project: Project) -> dict[str, Path]:
        return {"bin": project.dir / "build" / "firmware.bin"}

    def tools(self, board: Board) -> list[Tool]:
        gcc, gxx, _ = self.compilers(board)
        tools = [Tool("Arm GCC", gcc, ARM_INSTALL), Tool("make", "make", BUILD_ESSENTIAL)]
        if "tflm" in board.runtimes:
            tools.append(Tool("Arm C++ compiler", gxx, f"{ARM_INSTALL} {ARM_CPP_INSTALL.split()[-1]}"))
        return tools


FRAMEWORK = BaremetalFramework()
