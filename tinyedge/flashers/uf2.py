"""Flash an RP2040 by copying a UF2 file onto its BOOTSEL mass-storage drive (volume RPI-RP2).

The build's .uf2 is used when there is one; otherwise the .bin (or the .elf's flash segments) is
converted here into UF2 blocks (see https://github.com/microsoft/uf2). With no drive mounted, a board
already running a program with a CDC port is asked into BOOTSEL by the 1200-bps touch first.
"""

from __future__ import annotations

import os
import struct
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tinyedge.boards import Board
from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.ports import candidates_for, list_ports, touch_1200bps, wait_for_port, wait_for_usb_port
from tinyedge.project import Project

UF2_MAGIC_START0 = 0x0A324655   # "UF2\n"
UF2_MAGIC_START1 = 0x9E5D5157
UF2_MAGIC_END = 0x0AB16F30
UF2_FLAG_FAMILY_ID_PRESENT = 0x00002000
UF2_BLOCK_BYTES = 512
UF2_PAYLOAD_BYTES = 256
RP2040_FAMILY_ID = 0xE48BFF56
RP2040_FLASH_BASE = 0x10000000
INFO_FILE = "INFO_UF2.TXT"


def bin_to_uf2(data: bytes, base_address: int = RP2040_FLASH_BASE, family_id: int = RP2040_FAMILY_ID) -> bytes:
    """Split a flat image into 256-byte UF2 blocks starting at `base_address`."""
    return _blocks([(base_address + offset, data[offset:offset + UF2_PAYLOAD_BYTES])
                    for offset in range(0, len(data), UF2_PAYLOAD_BYTES)], family_id)


def elf_to_uf2(elf: bytes, family_id: int = RP2040_FAMILY_ID, flash_base: int = RP2040_FLASH_BASE,
               flash_bytes: int = 16 * 1024 * 1024) -> bytes:
    """UF2 blocks for the loadable segments of a 32-bit little-endian ELF that live in flash (by load address)."""
    pages: dict[int, bytearray] = {}
    for paddr, content in _elf_flash_segments(elf, flash_base, flash_bytes):
        for i, byte in enumerate(content):
            address = paddr + i
            page = address - address % UF2_PAYLOAD_BYTES
            pages.setdefault(page, bytearray(UF2_PAYLOAD_BYTES))[address - page] = byte
    if not pages:
        raise TinyedgeError(f"the ELF has no segments in flash at {flash_base:#x}: build for the board again.")
    return _blocks([(page, bytes(pages[page])) for page in sorted(pages)], family_id)


def _elf_flash_segments(elf: bytes, flash_base: int, flash_bytes: int) -> list[tuple[int, bytes]]:
    if elf[:4] != b"\x7fELF" or elf[4] != 1 or elf[5] != 1:
        raise TinyedgeError("the firmware is not a 32-bit little-endian ELF: build the project again.")
    phoff, = struct.unpack_from("<I", elf, 28)
    phentsize, phnum = struct.unpack_from("<HH", elf, 42)
    segments = []
    for i in range(phnum):
        p_type, p_offset, _vaddr, p_paddr, p_filesz = struct.unpack_from("<IIIII", elf, phoff + i * phentsize)
        if p_type == 1 and p_filesz and flash_base <= p_paddr < flash_base + flash_bytes:
            segments.append((p_paddr, elf[p_offset:p_offset + p_filesz]))
    return segments


def _blocks(chunks: list[tuple[int, bytes]], family_id: int) -> bytes:
    total = len(chunks)
    out = bytearray()
    for number, (address, payload) in enumerate(chunks):
        header = struct.pack("<8I", UF2_MAGIC_START0, UF2_MAGIC_START1, UF2_FLAG_FAMILY_ID_PRESENT,
                             address, len(payload), number, total, family_id)
        data = payload.ljust(476, b"\x00")
        out += header + data + struct.pack("<I", UF2_MAGIC_END)
    return bytes(out)


def mount_points() -> list[Path]:
    """TINYEDGE_UF2_DRIVE (where the BOOTSEL drive is mounted, when it is somewhere unusual), the mounted
    filesystems (from /proc/mounts on Linux) and the usual automount folders."""
    points: list[Path] = [Path(os.environ["TINYEDGE_UF2_DRIVE"])] if os.environ.get("TINYEDGE_UF2_DRIVE") else []
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 1:
                points.append(Path(fields[1].replace("\\040", " ")))
    except OSError:
        pass
    for root in (Path("/media"), Path("/run/media"), Path("/Volumes")):
        if root.is_dir():
            points += [p for p in root.glob("*") if p.is_dir()] + [p for p in root.glob("*/*") if p.is_dir()]
    return points


def is_uf2_drive(path: Path, volume_label: str) -> bool:
    info = path / INFO_FILE
    try:
        text = info.read_text(errors="replace")
    except OSError:
        return False
    return path.name == volume_label or f"Board-ID: {volume_label}" in text


def find_uf2_drive(volume_label: str = "RPI-RP2", search: list[Path] | None = None) -> Path | None:
    drives = [p for p in (search if search is not None else mount_points()) if is_uf2_drive(p, volume_label)]
    return drives[0] if drives else None


def uf2_image(project: Project) -> Path:
    """The project's .uf2, converting its .bin or .elf when the build made none."""
    board = project.board
    settings = board.section("uf2")
    family = int(settings.get("family_id", RP2040_FAMILY_ID))
    base = int(settings.get("flash_base", RP2040_FLASH_BASE))
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
    return board.section("uf2").get("running_usb_id")


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

    def _bootsel_drive(self, board: Board, port: str | None) -> Path:
        label = board.section("uf2").get("volume_label", "RPI-RP2")
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
