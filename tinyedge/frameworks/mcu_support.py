"""What the vendor-toolchain frameworks (ESP-IDF, Arduino, PlatformIO) share: the firmware's defines,
locating the sources generate.py wrote and gathering them into the one tree the vendor build compiles,
and what the build left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

from tinyedge.boards import Board
from tinyedge.elf import elf_sizes
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import BuildResult, RenderContext
from tinyedge.project import Project
from tinyedge.sections import StoreSettings

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


def firmware_outputs(elf: Path, seconds: float, tool: str, log: Path) -> BuildResult:
    """What an MCU build left: the ELF and the .bin/.hex/.uf2 images beside it (same stem), for the
    build record the flashers read."""
    if not elf.is_file():
        raise TinyedgeError(f"{tool} finished but {elf} is missing: see {log}.")
    artifacts = {suffix: elf.with_suffix(f".{suffix}") for suffix in ("bin", "hex", "uf2")
                 if elf.with_suffix(f".{suffix}").is_file()}
    flash, ram = elf_sizes(elf)
    return BuildResult(elf=elf, flash_bytes=flash, ram_bytes=ram, seconds=seconds, artifacts=artifacts)


def updatable_flash_budget(board: Board) -> int:
    """The flash updatable firmware's code may take: the profile's budget less its persistent store's
    `store.bytes` (the boot record and the two model slots), which sits at the end of that flash."""
    return board.flash_bytes - board.settings(StoreSettings).bytes


def check_clear_of_store(project: Project, result: BuildResult) -> None:
    """Updatable firmware whose image reaches into the board's store would be overwritten by an update
    (the store answers size 0 then and keeps nothing): refuse it at build time, in one sentence."""
    board = project.board
    if not project.extra.get("updatable") or not board.has_section(StoreSettings):
        return
    budget = updatable_flash_budget(board)
    if result.flash_bytes > budget:
        raise TinyedgeError(f"the updatable firmware needs {result.flash_bytes:,} bytes of flash but the {board.id} "
                            f"board keeps its model slots in the top {board.settings(StoreSettings).bytes:,} bytes, "
                            f"leaving {budget:,}: use a smaller model or generate without --updatable.")
