"""`tinyedge flash`: write the built firmware with the board's flasher (or start its emulator) and
yield the pyserial URL the firmware answers on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinyedge.errors import TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback, get_flasher
from tinyedge.project import Project


def load_built_project(project_dir: Path) -> Project:
    project = Project.load(project_dir)
    if project.elf_path is None or not project.elf_path.is_file():
        raise TinyedgeError(f"{project_dir} has not been built: run `tinyedge build {project_dir}` first.")
    return project


def is_emulated(flasher: Flasher, project: Project, port: str | None) -> bool:
    """True when flashing starts an emulator that must keep running for the firmware to answer."""
    will_emulate = getattr(flasher, "will_emulate", None)
    return flasher.is_emulator or bool(will_emulate and will_emulate(project.board, port))


@contextmanager
def flash(project_dir: Path, port: str | None = None, progress: ProgressCallback | None = None,
          icount: bool | None = None, firmware: Path | None = None) -> Iterator[str]:
    """Flash the project's firmware; the context yields the URL to open with pyserial and stops any
    emulator it started on exit. `icount` (QEMU only) runs the guest with `-icount shift=0`, so cycle
    figures are deterministic instruction counts (default: $TINYEDGE_QEMU_ICOUNT). `firmware`
    (MicroPython boards only) installs MicroPython from that file first."""
    project = load_built_project(Path(project_dir))
    flasher = get_flasher(project.board.flasher)
    if icount and project.board.flasher != "qemu":
        raise TinyedgeError(f"--icount only applies to QEMU-emulated boards, not {project.board.id}: drop it.")
    options = {"icount": icount} if project.board.flasher == "qemu" else {}
    if firmware is not None:
        if project.board.flasher != "mpremote":
            raise TinyedgeError(f"--firmware installs MicroPython on MicroPython boards, not on {project.board.id}: "
                                "drop it.")
        options["firmware"] = Path(firmware)
    with flasher.flash(project, port, progress, **options) as url:
        yield url
