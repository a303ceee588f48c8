"""Estimated Cortex-M4 cycles of one inference on the emulated board: QEMU runs the firmware with our
TCG plugin (tb_counts.c, built here with the host's cc), which counts each translation block's
executions between the entry of te_runtime_invoke() and its return to the protocol's INFER handler
(the window the firmware's timer measures); cortex_m4.py prices the blocks' instructions, read from
the ELF with arm-none-eabi-objdump."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cycle_model.cortex_m4 import Block, Instruction, estimate

from tinyedge.errors import TinyedgeError
from tinyedge.flashers.qemu import READY_MARKER, free_tcp_port, qemu_command
from tinyedge.paths import cache_dir
from tinyedge.processes import serving
from tinyedge.project import Project
from tinyedge.sections import EmulatorSettings

PLUGIN_DIR = Path(__file__).resolve().parent
PLUGIN_SOURCES = ("tb_counts.c", "qemu_plugin_api.h")
WINDOW_FUNCTION = "te_runtime_invoke"
OBJDUMP_LINE = re.compile(r"^\s*([0-9a-f]+):\s+((?:[0-9a-f]{4}\s)+)\s*(\S.*)$")


@dataclass(frozen=True)
class CycleEstimate:
    low: int
    mid: int
    high: int
    instructions: int    # executed in the window, per inference (cross-checks the timer's count)

    def as_dict(self) -> dict[str, int]:
        return {"low": self.low, "mid": self.mid, "high": self.high}


def build_plugin() -> Path:
    """tb_counts.so in tinyedge's cache, rebuilt when its source changes."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise TinyedgeError("the cycle estimate needs a host C compiler for its QEMU plugin: "
                            "sudo apt-get install gcc.")
    source = "".join((PLUGIN_DIR / name).read_text() for name in PLUGIN_SOURCES)
    out = cache_dir() / "qemu-plugins" / f"tb_counts-{hashlib.sha256(source.encode()).hexdigest()[:12]}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        # Built under a name of its own, then renamed: a concurrent run never loads a half-written plugin.
        partial = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        subprocess.run([cc, "-O2", "-Wall", "-shared", "-fPIC", "-fvisibility=hidden", "-o", str(partial),
                        str(PLUGIN_DIR / "tb_counts.c")], check=True, capture_output=True, text=True)
        os.replace(partial, out)
    return out


def plugins_supported(qemu: str = "qemu-system-arm") -> bool:
    """Whether this QEMU was built with TCG plugin support (it exports the plugin API)."""
    path = shutil.which(qemu)
    if path is None:
        return False
    symbols = subprocess.run(["nm", "-D", path], capture_output=True, text=True).stdout
    return "qemu_plugin_register_vcpu_tb_exec_cb" in symbols


# The lifecycle's self-test and shadow runs (te_slots.c, te_lifecycle.c) call te_runtime_invoke too;
# the timed window is the INFER handler's call, so calls made inside their functions are left out.
LIFECYCLE_SOURCES = ("te_slots.c", "te_lifecycle.c")


def lifecycle_functions() -> set[str]:
    """The functions the lifecycle's C files define (static or not)."""
    from tinyedge.paths import FIRMWARE_DIR

    names: set[str] = set()
    for name in LIFECYCLE_SOURCES:
        source = FIRMWARE_DIR / "protocol" / name
        if source.is_file():
            names |= set(re.findall(r"^(?:static\s+)?[\w\s\*]+?\b(\w+)\([^;]*\)\s*\{", source.read_text(), re.M))
    return names


def window(elf: Path) -> tuple[int, int]:
    """(entry of te_runtime_invoke, the address the INFER handler resumes at)."""
    text = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True,
                          check=True).stdout
    skipped = lifecycle_functions()
    start = calls = None
    function = ""
    header = re.compile(r"^[0-9a-f]+ <([\w.]+)>:$")
    call = re.compile(rf"^\s*([0-9a-f]+):\s+((?:[0-9a-f]{{4}}\s)+)\s*bl\s+([0-9a-f]+) <{WINDOW_FUNCTION}>")
    for line in text.splitlines():
        named = header.match(line)
        if named:
            function = named.group(1).split(".")[0]
            continue
        match = call.match(line)
        if match and function not in skipped:
            if calls is not None:
                raise TinyedgeError(f"{elf} calls {WINDOW_FUNCTION} from more than one place: no single timed window.")
            calls = int(match.group(1), 16) + 2 * len(match.group(2).split())
            start = int(match.group(3), 16)
    if start is None or calls is None:
        raise TinyedgeError(f"{elf} has no call to {WINDOW_FUNCTION}: regenerate the firmware with this tinyedge.")
    return start, calls


def disassembly(elf: Path) -> dict[int, Instruction]:
    raw = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    instructions = {}
    for line in raw.splitlines():
        match = OBJDUMP_LINE.match(line)
        if match:
            address = int(match.group(1), 16)
            instructions[address] = Instruction.parse(address, 2 * len(match.group(2).split()), match.group(3))
    return instructions


def read_counts(path: Path) -> tuple[int, list[tuple[int, int, int, int, int]]]:
    """(windows, [(vaddr, bytes, executions, fell_through, jumped)]) from the plugin's file."""
    windows = 0
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts[0] == "windows":
            windows = int(parts[1])
        elif parts[0] == "tb":
            rows.append((int(parts[1], 16), int(parts[2]), int(parts[4]), int(parts[5]), int(parts[6])))
    return windows, rows


def blocks(rows: list[tuple[int, int, int, int, int]], code: dict[int, Instruction]) -> list[Block]:
    result = []
    for vaddr, size, executions, fell_through, jumped in rows:
        instructions = []
        address = vaddr
        while address < vaddr + size:
            insn = code.get(address)
            if insn is None:
                raise TinyedgeError(f"the trace ran code at {address:#x} that the ELF's disassembly lacks.")
            instructions.append(insn)
            address += insn.size
        result.append(Block(tuple(instructions), executions, fell_through, jumped))
    return result


def functions(elf: Path) -> list[tuple[int, str]]:
    """(start address, name) of the ELF's functions, sorted."""
    text = subprocess.run(["arm-none-eabi-nm", "-n", str(elf)], capture_output=True, text=True, check=True).stdout
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            found.append((int(parts[0], 16) & ~1, parts[2]))
    return found


def cycles_by_function(elf: Path, counts: Path, level: str = "mid") -> dict[str, tuple[int, int]]:
    """Function name -> (instructions, cycles at `level`) per inference, for finding the hot loops."""
    import bisect

    from cycle_model.cortex_m4 import block_cycles

    windows, rows = read_counts(counts)
    starts = functions(elf)
    addresses = [a for a, _ in starts]
    totals: dict[str, tuple[int, int]] = {}
    for block in blocks(rows, disassembly(elf)):
        name = starts[bisect.bisect_right(addresses, block.instructions[0].address) - 1][1]
        insns, cycles = totals.get(name, (0, 0))
        totals[name] = (insns + len(block.instructions) * block.executions // windows,
                        cycles + block_cycles(block, level) // windows)
    return dict(sorted(totals.items(), key=lambda item: -item[1][1]))


def estimate_from_counts(elf: Path, counts: Path) -> CycleEstimate:
    windows, rows = read_counts(counts)
    if windows == 0:
        raise TinyedgeError("the QEMU plugin saw no inference: no cycle estimate.")
    traced = blocks(rows, disassembly(elf))
    cycles = estimate(traced)
    executed = sum(len(b.instructions) * b.executions for b in traced)
    return CycleEstimate(*(round(cycles[level] / windows) for level in ("low", "mid", "high")),
                         instructions=round(executed / windows))


@contextmanager
def traced_qemu(project: Project, windows: int, counts: Path) -> Iterator[str]:
    """QEMU with `-icount shift=0` and the plugin counting the first `windows` inferences into `counts`."""
    if not plugins_supported(project.board.settings(EmulatorSettings).program):
        raise TinyedgeError("the installed QEMU cannot load TCG plugins (built without --enable-plugins): "
                            "no cycle estimate; install a QEMU with plugin support.")
    elf = project.artifact("elf")
    start, end = window(elf)
    plugin = f"{build_plugin()},start={start:#x},end={end:#x},windows={windows},out={counts}"
    port = free_tcp_port()
    command = qemu_command(project.board, elf, port, icount=True) + ["-plugin", plugin]
    # In the project's directory, as the qemu flasher runs it: semihosting opens the board's store there.
    with serving(command, READY_MARKER, 20.0, "QEMU", cwd=project.dir):
        yield f"socket://127.0.0.1:{port}"
