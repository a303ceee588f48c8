"""The `avr` framework: avr-gcc and avr-libc for the ATmega328P (Arduino Uno), weights in PROGMEM,
an Intel hex image for avrdude. The budget is checked before the build (generate) and after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyedge.boards import Board
from tinyedge.frameworks import RenderContext
from tinyedge.frameworks.make import BUILD_ESSENTIAL, MakeFramework
from tinyedge.project import Project
from tinyedge.runtimes import FirmwareAllowance
from tinyedge.sections import AvrSettings
from tinyedge.tools import Tool

AVR_INSTALL = "sudo apt-get install gcc-avr avr-libc binutils-avr"


class AvrFramework(MakeFramework):
    name = "avr"
    sections = (AvrSettings,)
    default_port = "avr"
    # RAM: the firmware's own data + bss (~330 B measured with a 256-byte input; 344 B for hello_world)
    # and the 192 B that `build` keeps free for the stack, with ~80 B to spare. The AOT's pointer
    # tables are counted apart (they are the model's): trained_lstm_int8's 1,404 B arena + 32 B of
    # tables + this fits 2,048 B, and it runs bit-exact on the emulated Uno.
    allowance = FirmwareAllowance(flash_bytes=6 * 1024, ram_bytes=608)
    # The ELF's data + bss leave out the stack: keep this much free for it (and the protocol's calls).
    stack_reserve_bytes = 192

    def compilers(self, board: Board) -> tuple[str, str, str]:
        return "avr-gcc", "avr-g++", "avr-ar"

    def make_variables(self, ctx: RenderContext) -> dict[str, Any]:
        board = ctx.board
        mcu = board.settings(AvrSettings).mcu
        return {
            "cpu_flags": [f"-mmcu={mcu}"],
            "defines": {"F_CPU": f"{board.clock_hz}UL", **self.base_defines(ctx)},
            "ldflags": ["-Wl,--gc-sections", "-Wl,-Map=$(BUILD)/firmware.map"],
            "all_targets": ["$(TARGET)", "$(BUILD)/firmware.hex"],
        }

    def artifacts(self, project: Project) -> dict[str, Path]:
        return {"hex": project.dir / "build" / "firmware.hex"}

    def tools(self, board: Board) -> list[Tool]:
        return [Tool("AVR GCC", "avr-gcc", AVR_INSTALL), Tool("avr-objcopy", "avr-objcopy", AVR_INSTALL),
                Tool("make", "make", BUILD_ESSENTIAL)]


FRAMEWORK = AvrFramework()
