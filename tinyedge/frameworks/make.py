"""`MakeFramework`: a framework whose project is a Makefile over the generated sources (host, baremetal, avr)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import tinyedge
from tinyedge.boards import Board
from tinyedge.elf import elf_sizes
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult, Framework, RenderContext
from tinyedge.project import Project
from tinyedge.templating import make_word, render, write_if_changed
from tinyedge.tflm_tree import build_tflm_library, require_tflm_tree
from tinyedge.tools import require_tools, run_make

BUILD_ESSENTIAL = "sudo apt-get install build-essential"
CPP_SUFFIXES = (".cc", ".cpp")


def port_has_main(sources: list[str]) -> bool:
    """A port may bring its own entry point (the posix port's main_posix.c parses its command line)."""
    return any(Path(s).name.startswith("main") for s in sources)


def split_sources(sources: list[str]) -> tuple[list[str], list[str]]:
    c_sources = [s for s in sources if s.endswith(".c")]
    cxx_sources = [s for s in sources if s.endswith(CPP_SUFFIXES)]
    return c_sources, cxx_sources


class MakeFramework(Framework):
    """A framework whose project is a Makefile over the generated sources."""

    target: ClassVar[str] = "firmware.elf"
    opt: ClassVar[str] = "-Os"

    # --- what each framework says about its toolchain -------------------------------------------
    def compilers(self, board: Board) -> tuple[str, str, str]:
        """(cc, c++, ar) commands, as the TFLM library build needs them."""
        raise NotImplementedError

    def make_variables(self, ctx: RenderContext) -> dict[str, Any]:
        return {}

    def base_defines(self, ctx: RenderContext) -> dict[str, str]:
        board = ctx.board
        return {"TE_BAUD": f"{board.baud}u", "TE_RX_BUFFER_BYTES": str(board.rx_buffer_bytes),
                "TE_PROTO_RX_BUFFER": str(board.rx_buffer_bytes),
                "TE_FIRMWARE_VERSION": f"tinyedge-{tinyedge.__version__}", **ctx.runtime_sources.defines}

    def extra_files(self, ctx: RenderContext) -> None:
        """Board files beyond the Makefile and main.c (linker scripts...)."""

    def artifacts(self, project: Project) -> dict[str, Path]:
        return {}

    def tflm_flags(self, board: Board) -> tuple[list[str], list[str]]:
        """C and C++ flags the cached TFLM library is compiled with (they must match the project's)."""
        common = [*board.cpu_flags, self.opt, "-ffunction-sections", "-fdata-sections"]
        return common, [*common, "-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"]

    # --- Framework ------------------------------------------------------------------------------
    def render(self, ctx: RenderContext) -> None:
        src = ctx.out_dir / self.source_dir
        sources = [*ctx.common_sources, *ctx.runtime_sources.sources]
        if not port_has_main(ctx.common_sources):
            write_if_changed(src / "main.c", render("common/main.c.j2", board=ctx.board))
            sources.append(f"{self.source_dir}/main.c")
        c_sources, cxx_sources = split_sources(sorted(dict.fromkeys(sources)))
        defines = self.base_defines(ctx)
        variables = {
            "board": ctx.board, "runtime": ctx.runtime, "model_name": ctx.model_name, "target": self.target,
            "c_sources": c_sources, "cxx_sources": cxx_sources,
            "include_dirs": list(dict.fromkeys([*ctx.include_dirs, *ctx.runtime_sources.include_dirs])),
            "defines": defines, "cpu_flags": list(ctx.board.cpu_flags), "opt": self.opt,
            "extra_cflags": [], "extra_cxxflags": [], "ldflags": [], "ldlibs": ["-lm"], "link_deps": [],
            "uses_cpp": ctx.runtime_sources.uses_cpp or bool(cxx_sources),
            "all_targets": ["$(TARGET)"],
            "speed_sources": [s for s in ctx.runtime_sources.speed_sources if s in c_sources],
        }
        variables.update(self.make_variables(ctx))
        write_if_changed(ctx.out_dir / "Makefile", render(f"{self.name}/Makefile.j2", **variables))
        self.extra_files(ctx)

    def build(self, project: Project) -> BuildResult:
        board = project.board
        needed = [t for t in self.tools(board) if project.runtime == "tflm" or "C++" not in t.name]
        require_tools(needed, needed_for=board.name)
        started = time.monotonic()
        self.write_tflm_makefile(project)
        run_make(project.dir, [], f"{board.name} firmware")
        elf = project.dir / "build" / self.target
        if not elf.is_file():
            raise TinyedgeError(f"the build finished without {elf}: run `make` in {project.dir} to see why.")
        flash, ram = elf_sizes(elf)
        return BuildResult(elf=elf, flash_bytes=flash, ram_bytes=ram, seconds=time.monotonic() - started,
                           artifacts=self.artifacts(project))

    def write_tflm_makefile(self, project: Project) -> None:
        """For the tflm runtime: build (or reuse) the cached TFLM library for this toolchain and point
        the Makefile at it through tflm.mk."""
        mk = project.dir / "tflm.mk"
        if project.runtime != "tflm":
            mk.unlink(missing_ok=True)
            return
        tree = require_tflm_tree(Path(project.tflm_dir) if project.tflm_dir else None)
        cc, cxx, ar = self.compilers(project.board)
        cflags, cxxflags = self.tflm_flags(project.board)
        library = build_tflm_library(tree, project.ops, cc, cxx, ar, cflags, cxxflags)
        text = (f"# Written by `tinyedge build`: the cached TFLM library for this toolchain and the model's ops.\n"
                f"TFLM_LIB := {make_word(library.archive)}\n"
                f"TFLM_INCLUDES := {' '.join(f'-isystem {make_word(d)}' for d in library.include_dirs)}\n"
                f"TFLM_DEFINES := {' '.join(f'-D{make_word(d)}' for d in library.defines)}\n")
        if not mk.is_file() or mk.read_text() != text:
            mk.write_text(text)
