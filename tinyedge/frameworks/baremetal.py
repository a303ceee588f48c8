"""The `baremetal` framework: a bare-metal GCC (the profile's `toolchain` prefix), the C library its
`baremetal` section names by --specs, our own startup code and the port's linker script
(firmware/ports/<port>/link.ld.j2) rendered from the profile's memory map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult, RenderContext
from tinyedge.frameworks.make import BUILD_ESSENTIAL, MakeFramework
from tinyedge.paths import FIRMWARE_DIR
from tinyedge.project import Project
from tinyedge.runtimes import FirmwareAllowance
from tinyedge.sections import MemorySettings, TimerSettings, ToolchainSettings, UartSettings, Uf2Settings
from tinyedge.templating import render_file, write_if_changed
from tinyedge.tools import Tool
from tinyedge.uf2 import bin_to_uf2

LINKER_SCRIPT = "link.ld"


def memory_map(board: Board) -> dict[str, Any]:
    memory = board.settings(MemorySettings)
    return {"flash": {"origin": memory.flash.origin, "length": memory.flash.length},
            "ram": {"origin": memory.ram.origin, "length": memory.ram.length},
            "stack_bytes": memory.stack_bytes}


def toolchain_facts(board: Board) -> ToolchainSettings:
    """The profile's `baremetal` section: the toolchain's family name, its install line, the C library's specs."""
    return board.settings(ToolchainSettings)


def spec_flags(names: tuple[str, ...]) -> list[str]:
    return [f"--specs={name}" for name in names]


def link_script_template(port: str) -> Path:
    path = FIRMWARE_DIR / "ports" / port / "link.ld.j2"
    if not path.is_file():
        raise TinyedgeError(f"the {port} port has no linker script template ({path}): add one to the port.")
    return path


class BaremetalFramework(MakeFramework):
    name = "baremetal"
    sections = (MemorySettings, ToolchainSettings, UartSettings, TimerSettings, Uf2Settings)
    default_port = "mps2"
    allowance = FirmwareAllowance(flash_bytes=32 * 1024, ram_bytes=24 * 1024)

    def prefix(self, board: Board) -> str:
        """The GCC prefix: the `baremetal` section's `prefix` (a board whose default framework is another's),
        else the profile's `toolchain`."""
        toolchain = board.settings(ToolchainSettings).prefix or board.toolchain
        return toolchain if toolchain.endswith("-") else toolchain + "-"

    def compilers(self, board: Board) -> tuple[str, str, str]:
        prefix = self.prefix(board)
        return f"{prefix}gcc", f"{prefix}g++", f"{prefix}ar"

    def tflm_flags(self, board: Board) -> tuple[list[str], list[str]]:
        cflags, cxxflags = super().tflm_flags(board)
        libc = spec_flags(toolchain_facts(board).specs)
        return [*cflags, *libc], [*cxxflags, *libc]

    def make_variables(self, ctx: RenderContext) -> dict[str, Any]:
        board = ctx.board
        uart = board.settings(UartSettings)
        timer = board.settings(TimerSettings)
        defines = {"TE_UART_BASE": f"0x{uart.base:08X}u"} if uart.base is not None else {}
        defines["TE_CPU_HZ"] = f"{timer.hz if timer.hz is not None else board.clock_hz}u"
        facts = toolchain_facts(board)
        libc = spec_flags(facts.specs)
        return {
            "prefix": self.prefix(board),
            "defines": {**defines, **self.base_defines(ctx)},
            "extra_cflags": libc, "extra_cxxflags": libc,
            "ldflags": ["-nostartfiles", *libc, *spec_flags(facts.link_specs), f"-T{LINKER_SCRIPT}",
                        "-Wl,--gc-sections", "-Wl,-Map=$(BUILD)/firmware.map", "-Wl,--no-warn-rwx-segments"],
            "ldlibs": ["-lm"],
            "link_deps": [LINKER_SCRIPT],
            "all_targets": ["$(TARGET)", "$(BUILD)/firmware.bin"],
        }

    def extra_files(self, ctx: RenderContext) -> None:
        text = render_file(link_script_template(ctx.extra["port"]), board=ctx.board, **memory_map(ctx.board))
        write_if_changed(ctx.out_dir / LINKER_SCRIPT, text)

    def artifacts(self, project: Project) -> dict[str, Path]:
        return {"bin": project.dir / "build" / "firmware.bin"}

    def build(self, project: Project) -> BuildResult:
        """The make build; a board whose profile has a `uf2` section (the RP2040s) also gets firmware.uf2,
        the flat image from the flash base in UF2 blocks of the profile's family id."""
        result = super().build(project)
        if project.board.has_section(Uf2Settings):
            uf2 = project.board.settings(Uf2Settings)
            image = result.artifacts["bin"]
            out = image.with_suffix(".uf2")
            out.write_bytes(bin_to_uf2(image.read_bytes(), uf2.flash_base, uf2.family_id))
            result.artifacts["uf2"] = out
        return result

    def tools(self, board: Board) -> list[Tool]:
        gcc, gxx, _ = self.compilers(board)
        facts = toolchain_facts(board)
        family, install = facts.family, facts.install
        tools = [Tool(f"{family} GCC", gcc, install), Tool("make", "make", BUILD_ESSENTIAL)]
        if "tflm" in board.runtimes:
            tools.append(Tool(f"{family} C++ compiler", gxx, f"{install} {facts.cpp_package}".strip()))
        return tools


FRAMEWORK = BaremetalFramework()
