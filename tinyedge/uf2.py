"""UF2 (https://github.com/microsoft/uf2): images made of 512-byte blocks, and the mass-storage drive a
board's bootloader (the RP2040's BOOTSEL, volume RPI-RP2) mounts to take them. Used by the uf2 flasher and
by the MicroPython installer."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from tinyedge.errors import TinyedgeError

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
