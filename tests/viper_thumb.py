"""Instructions per MAC of the viper inner loops, read from the Thumb code mpy-cross emits for armv6m
(RP2040's Cortex-M0+): the backward branch around `muls` with the fewest instructions per `muls` is the MAC loop."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tinyedge.errors import TinyedgeError
from tinyedge.tools import missing_tool
from tinyedge.viper.mpy import compile_module

_LINE = re.compile(r"^\s*([0-9a-f]+):\s+(?:[0-9a-f]{4}\s?)+\s+(\S+)\s*(.*)$")
_BRANCH = re.compile(r"^b(eq|ne|cs|cc|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?(\.n|\.w)?$")


@dataclass(frozen=True)
class LoopCount:
    instructions: int        # per turn of the loop
    stack_traffic: int       # loads and stores through sp (spilled locals), per turn
    macs: int                # multiplies per turn (an unrolled loop does several)
    listing: list[str]

    @property
    def per_mac(self) -> float:
        return self.instructions / self.macs

    @property
    def stack_per_mac(self) -> float:
        return self.stack_traffic / self.macs


def _disassemble(mpy: Path, skew: int) -> list[tuple[int, str, str]]:
    objdump = shutil.which("arm-none-eabi-objdump")
    if objdump is None:
        raise missing_tool("arm-none-eabi-objdump", "sudo apt-get install binutils-arm-none-eabi")
    data = mpy.read_bytes()[skew:]
    with tempfile.NamedTemporaryFile(suffix=".bin") as raw:
        raw.write(data)
        raw.flush()
        text = subprocess.run([objdump, "-D", "-b", "binary", "-marm", "-Mforce-thumb", raw.name],
                              capture_output=True, text=True).stdout
    rows = []
    for line in text.splitlines():
        found = _LINE.match(line)
        if found:
            rows.append((int(found.group(1), 16), found.group(2), found.group(3)))
    return rows


def innermost_mac_loop(mpy: Path) -> LoopCount:
    best: list[tuple[int, str, str]] | None = None
    for skew in (0, 1):
        rows = _disassemble(mpy, skew)
        index = {addr: i for i, (addr, _, _) in enumerate(rows)}
        for i, (addr, mnemonic, operands) in enumerate(rows):
            if not _BRANCH.match(mnemonic):
                continue
            target = re.match(r"0x([0-9a-f]+)", operands)
            if not target or int(target.group(1), 16) >= addr or int(target.group(1), 16) not in index:
                continue
            body = rows[index[int(target.group(1), 16)]:i + 1]
            macs = sum(m.startswith("mul") for _, m, _ in body)
            if macs and (best is None or len(body) / macs < len(best) / sum(m.startswith("mul") for _, m, _ in best)):
                best = body
    if best is None:
        raise TinyedgeError(f"no multiply loop found in {mpy.name}: the kernel code changed shape.")
    stack = sum(1 for _, m, ops in best if m.startswith(("ldr", "str")) and "sp" in ops)
    macs = sum(m.startswith("mul") for _, m, _ in best)
    return LoopCount(len(best), stack, macs, [f"{m} {ops}" for _, m, ops in best])


def count_kernel(source: str, work: Path) -> LoopCount:
    (work / "probe.py").write_text(source)
    return innermost_mac_loop(compile_module(work / "probe.py", work / "probe.mpy", "armv6m"))
