"""The `host` framework: the firmware as a native Linux program (cc/c++ through a generated Makefile),
talking the protocol on a pseudo-terminal."""

from __future__ import annotations

from typing import Any

from tinyedge.boards import Board
from tinyedge.frameworks import RenderContext
from tinyedge.frameworks.make import BUILD_ESSENTIAL, MakeFramework
from tinyedge.tools import Tool


class HostFramework(MakeFramework):
    name = "host"
    default_port = "posix"
    target = "firmware"
    opt = "-O2"

    def compilers(self, board: Board) -> tuple[str, str, str]:
        return "cc", "c++", "ar"

    def make_variables(self, ctx: RenderContext) -> dict[str, Any]:
        return {"cc": "cc", "cxx": "c++", "ldflags": ["-Wl,--gc-sections"], "ldlibs": ["-lm", "-lutil"]}

    def tools(self, board: Board) -> list[Tool]:
        tools = [Tool("C compiler", "cc", BUILD_ESSENTIAL), Tool("make", "make", BUILD_ESSENTIAL)]
        if "tflm" in board.runtimes:
            tools.append(Tool("C++ compiler", "c++", BUILD_ESSENTIAL))
        return tools


FRAMEWORK = HostFramework()
