"""What the vendor-toolchain frameworks (ESP-IDF, Arduino, PlatformIO) share: rendering a template
folder, locating the sources generate.py wrote, running the external build tool, and sizing an ELF."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult, RenderContext, Tool
from tinyedge.paths import TEMPLATES_DIR

SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".S")
HEADER_SUFFIXES = (".h", ".hpp", ".hh", ".inc")


# TFLM without its error strings: its DebugLog has nothing left to print. Needed where DebugLog writes to
# the port the protocol speaks on (Chirale's Arduino library prints to `Serial`), or `--fit-arena`'s
# deliberate "Failed to allocate..." would land in the middle of a reply frame.
TFLM_QUIET = {"TF_LITE_STRIP_ERROR_STRINGS": "1"}


def firmware_defines(ctx: RenderContext, tflm_log_on_protocol_port: bool = False) -> dict[str, str]:
    """What every board's firmware is compiled with: serial settings, clock, and the runtime's defines.
    The arena size is not among them: each runtime writes its own into the sources it generates."""
    board = ctx.board
    defines = {"TE_BAUD": f"{board.baud}u", "TE_RX_BUFFER_BYTES": str(board.rx_buffer_bytes),
               "TE_PROTO_RX_BUFFER": str(board.rx_buffer_bytes), "TE_CLOCK_HZ": f"{board.clock_hz}u"}
    defines.update({k: str(v) for k, v in ctx.runtime_sources.defines.items()})
    if tflm_log_on_protocol_port and ctx.runtime == "tflm":
        defines.update(TFLM_QUIET)
    return defines


def jinja_env(template_dir: str) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR / template_dir),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render_template(template_dir: str, template: str, target: Path, **context: Any) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(jinja_env(template_dir).get_template(template).render(**context))
    return target


def resolve(ctx: RenderContext, relative: str, source_dir: str) -> Path:
    """A path generate.py or a runtime reported: relative to the project, or to the framework's source dir."""
    for base in (ctx.out_dir, ctx.out_dir / source_dir):
        candidate = (base / relative).resolve()
        if candidate.exists():
            return candidate
    raise TinyedgeError(f"the generated source {relative} is missing from {ctx.out_dir}: generate the project again.")


def project_sources(ctx: RenderContext, source_dir: str) -> list[Path]:
    """Every C/C++ file to compile (common, port, protocol, model info, runtime), absolute and de-duplicated."""
    seen: dict[Path, None] = {}
    for relative in list(ctx.common_sources) + list(ctx.runtime_sources.sources):
        seen.setdefault(resolve(ctx, relative, source_dir), None)
    return list(seen)


def project_include_dirs(ctx: RenderContext, source_dir: str) -> list[Path]:
    seen: dict[Path, None] = {}
    for relative in list(ctx.include_dirs) + list(ctx.runtime_sources.include_dirs):
        seen.setdefault(resolve(ctx, relative, source_dir), None)
    return list(seen)


def relative_to(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def gather_into(ctx: RenderContext, source_dir: str, target: Path) -> None:
    """Bring sources and headers that live outside `target` into it (Arduino and PlatformIO compile one
    tree): files the runtime wrote elsewhere in the project are moved, anything outside it is copied."""
    target = target.resolve()
    project = ctx.out_dir.resolve()
    files = project_sources(ctx, source_dir)
    for include_dir in project_include_dirs(ctx, source_dir):
        files += [p for p in include_dir.iterdir() if p.is_file() and p.suffix in HEADER_SUFFIXES]
    emptied: set[Path] = set()
    for path in dict.fromkeys(files):
        if target in path.parents:
            continue
        destination = target / path.name
        if project in path.parents:
            path.replace(destination)
            emptied.add(path.parent)
        else:
            shutil.copyfile(path, destination)
    for folder in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
        if folder != project and project in folder.parents and not any(folder.iterdir()):
            folder.rmdir()


GENERATED_LIST = ".tinyedge-sources"


def drop_stale_sources(target: Path, current: list[str]) -> None:
    """Delete the C/C++ sources an earlier `tinyedge generate` put in `target` that this one did not (say the
    aot runtime's after switching to tflm): Arduino and PlatformIO compile every file there. Only files named
    in the list the earlier run left behind are touched."""
    listing = target / GENERATED_LIST
    previous = listing.read_text().split() if listing.is_file() else []
    for name in set(previous) - set(current):
        stale = target / name
        if stale.is_file():
            stale.unlink()
    listing.write_text("\n".join(sorted(set(current))) + "\n")


def tool_path(tool: Tool) -> str | None:
    return shutil.which(tool.command)


def require_tool(tool: Tool) -> str:
    path = tool_path(tool)
    if path is None:
        raise TinyedgeError(f"{tool.name} ({tool.command}) is not installed or not on PATH: {tool.install}.")
    return path


def tool_version(tool: Tool, timeout_s: float = 20.0) -> str | None:
    """The first line the tool prints for its version arguments, or None when it is missing or fails."""
    path = tool_path(tool)
    if path is None:
        return None
    try:
        done = subprocess.run([path, *tool.version_args], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    if not lines:
        return "ok" if done.returncode == 0 else None
    # A dotted number first: licence blurbs ("GPL version 3 or later") follow the real version line.
    for pattern in (r"\d+\.\d+", r"version\s*:?\s*v?\d"):
        for line in lines:
            if re.search(pattern, line, re.IGNORECASE):
                return line
    return lines[0]


def run_build_step(command: Sequence[str], cwd: Path, log: Path, what: str,
                   env: dict[str, str] | None = None) -> None:
    """Run one step of a vendor build, its output appended to `log`; a failure names the log and its last lines."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        try:
            done = subprocess.run(list(command), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, **(env or {})})
        except FileNotFoundError:
            raise TinyedgeError(f"{command[0]} is not installed or not on PATH: install it and try again.") from None
    if done.returncode != 0:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-3:]
        raise TinyedgeError(f"{what} failed (exit {done.returncode}; {' / '.join(tail)}): see {log} for the full output.")


def elf_memory(elf: Path) -> tuple[int, int]:
    """(flash bytes, RAM bytes) of a 32-bit ELF from its allocated sections: code and read-only data and the
    initial values of .data in flash; .data and .bss in RAM."""
    data = elf.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1:
        raise TinyedgeError(f"{elf} is not a 32-bit ELF file: build the project again.")
    endian = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(endian + "I", data, 32)
    shentsize, shnum = struct.unpack_from(endian + "HH", data, 46)
    flash = ram = 0
    for i in range(shnum):
        _name, sh_type, flags, _addr, _offset, size = struct.unpack_from(endian + "6I", data, shoff + i * shentsize)
        if not flags & 0x2:          # SHF_ALLOC
            continue
        if sh_type == 8:             # SHT_NOBITS: .bss
            ram += size
        elif flags & 0x1:            # SHF_WRITE: .data lives in RAM, its initial values in flash
            ram += size
            flash += size
        else:
            flash += size
    return flash, ram


def firmware_outputs(project: Any, elf: Path, seconds: float, tool: str, log: Path) -> BuildResult:
    """What an MCU build left: the ELF and the .bin/.hex/.uf2 images beside it (same stem), recorded
    in the manifest for the flashers."""
    if not elf.is_file():
        raise TinyedgeError(f"{tool} finished but {elf} is missing: see {log}.")
    artifacts = {suffix: elf.with_suffix(f".{suffix}") for suffix in ("bin", "hex", "uf2")
                 if elf.with_suffix(f".{suffix}").is_file()}
    flash, ram = elf_memory(elf)
    project.extra["artifacts"] = {k: relative_to(v, project.dir) for k, v in {**artifacts, "elf": elf}.items()}
    return BuildResult(elf=elf, flash_bytes=flash, ram_bytes=ram, seconds=seconds, artifacts=artifacts)
