"""The size of a firmware image, read from its ELF section headers (32- or 64-bit, either endianness)."""

from __future__ import annotations

import struct
from pathlib import Path

from tinyedge.errors import TinyedgeError

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHT_NOBITS = 8


def elf_sizes(path: Path) -> tuple[int, int]:
    """(flash, RAM) of an ELF image: flash = allocated sections with contents (text, rodata, the initial
    values of data), RAM = allocated sections without contents (bss, any reserved stack) and writable ones (data)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF":
        raise TinyedgeError(f"{path} is not an ELF file: run `tinyedge build` again.")
    is64, little = data[4] == 2, data[5] == 1
    end = "<" if little else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
        layout = end + "IIQQQQ"
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
        layout = end + "IIIIII"
    flash = ram = 0
    for i in range(shnum):
        _name, sh_type, sh_flags, _addr, _offset, sh_size = struct.unpack_from(layout, data, shoff + i * shentsize)
        if not sh_flags & SHF_ALLOC:
            continue
        if sh_type != SHT_NOBITS:
            flash += sh_size
        if sh_flags & SHF_WRITE or sh_type == SHT_NOBITS:
            ram += sh_size
    return flash, ram
