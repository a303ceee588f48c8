"""Flash an RP2040 by copying a UF2 file onto its BOOTSEL mass-storage drive (volume RPI-RP2).

The build's .uf2 is used when there is one; otherwise the .bin (or the .elf's flash segments) is
converted here into UF2 blocks (see https://github.com/microsoft/uf2). With no drive mounted, a board
already running a program with a CDC port is asked into BOOTSEL by the 1200-bps touch first.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tinyedge.boards import Board
from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.ports import candidates_for, list_ports, touch_1200bps, wait_for_port, wait_for_usb_port
from tinyedge.project import Project
from tinyedge.sections import Uf2Settings
from tinyedge.uf2 import INFO_FILE, bin_to_uf2, elf_to_uf2, find_uf2_drive


def uf2_image(project: Project) -> Path:
    """The project's .uf2, converting its .bin or .elf when the build made none."""
    board = project.board
    settings = board.settings(Uf2Settings)
    family, base = settings.family_id, settings.flash_base
    if project.has_artifact("uf2"):
        return project.artifact("uf2")
    out = project.dir / "build" / "firmware.uf2"
    out.parent.mkdir(parents=True, exist_ok=True)
    if project.has_artifact("bin"):
        out.write_bytes(bin_to_uf2(project.artifact("bin").read_bytes(), base, family))
    else:
        out.write_bytes(elf_to_uf2(project.artifact("elf").read_bytes(), family, base, board.flash_bytes or 16 << 20))
    return out


def running_usb_id(board: Board) -> str | None:
    """The VID:PID the board's program enumerates as once flashed (the profile's uf2.running_usb_id)."""
    return board.settings(Uf2Settings).running_usb_id


def copy_to_drive(image: Path, drive: Path, progress: ProgressCallback | None) -> None:
    total = image.stat().st_size
    target = drive / image.name
    with image.open("rb") as src, target.open("wb") as dst:
        done = 0
        while chunk := src.read(64 * 1024):
            dst.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, total, f"copy to {drive}")
        dst.flush()
        os.fsync(dst.fileno())


def wait_for_drive_to_leave(drive: Path, timeout_s: float) -> None:
    """The RP2040 reboots into the new program once the last block is written; its drive goes away."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (drive / INFO_FILE).exists():
        time.sleep(0.2)


class Uf2Flasher(Flasher):
    name = "uf2"    # a mounted drive and a file copy: nothing to install
    sections = (Uf2Settings,)

    def _bootsel_drive(self, board: Board, port: str | None) -> Path:
        label = board.settings(Uf2Settings).volume_label
        drive = find_uf2_drive(label)
        if drive is not None:
            return drive
        if port:
            running = [port] if os.path.exists(port) else []
        else:
            running = [p.device for p in candidates_for(board, list_ports()) if p.usb_id == running_usb_id(board)]
        if len(running) == 1:
            touch_1200bps(running[0])
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if (drive := find_uf2_drive(label)) is not None:
                    return drive
                time.sleep(0.25)
        raise TinyedgeError(f"no {label} drive is mounted: hold BOOTSEL while plugging in the {board.name}, "
                            "mount the drive (or set TINYEDGE_UF2_DRIVE to where it is), then flash again.")

    @contextmanager
    def flash(self, project: Project, port: str | None,
              progress: ProgressCallback | None = None) -> Iterator[str]:
        board = project.board
        image = uf2_image(project)
        drive = self._bootsel_drive(board, port)
        copy_to_drive(image, drive, progress)
        wait_for_drive_to_leave(drive, timeout_s=10)
        if port:
            if not wait_for_port(port, timeout_s=15):
                raise DeviceError(f"{port} did not appear after flashing: check the {board.name} and --port.")
            yield port
            return
        running = running_usb_id(board)
        found = wait_for_usb_port([running], timeout_s=15) if running else None
        if found is None:
            raise DeviceError(f"the {board.name} took the UF2 but no serial port {running or '(uf2.running_usb_id)'} "
                              "appeared: check that the firmware enables USB CDC, or pass --port.")
        yield found


FLASHER = Uf2Flasher()
