"""The `qemu` flasher: "flashing" an emulated board is starting QEMU on the ELF with its UART on a
local TCP port; the yielded URL is `socket://127.0.0.1:PORT`. QEMU is owned: stopped on exit, on
Ctrl-C and, through PR_SET_PDEATHSIG, when tinyedge dies."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.processes import serving
from tinyedge.project import Project
from tinyedge.sections import EmulatorSettings
from tinyedge.tools import Tool, require_tools

READY_MARKER = "waiting for connection"


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def emulator_facts(board: Board) -> EmulatorSettings:
    """The profile's `emulator` section: QEMU's `program`, `machine`, its `install` line and the machine's
    own `args` (how it boots the ELF, semihosting)."""
    emulator = board.settings(EmulatorSettings)
    if not (emulator.program and emulator.machine and emulator.install):
        raise TinyedgeError(f"the {board.id} profile needs an `emulator` section with QEMU's program, machine and "
                            "install line: fix boards.yaml.")
    return emulator


def qemu_command(board: Board, elf: Path, port: int, icount: bool = False) -> list[str]:
    emulator = emulator_facts(board)
    command = [
        emulator.program, "-M", emulator.machine,
        "-kernel", str(elf), "-display", "none", "-monitor", "none", "-nodefaults",
        *emulator.args,
        # wait=on: the guest starts only once the host connects, so its boot banner is not lost;
        # nodelay=on: without it every request/reply exchange costs ~45 ms of Nagle delay.
        "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
    ]
    if icount:
        command += ["-icount", "shift=0"]
    return command


class QemuFlasher(Flasher):
    name = "qemu"
    sections = (EmulatorSettings,)
    emulates = True
    options = frozenset({"icount"})

    def tools(self, board: Board) -> list[Tool]:
        emulator = emulator_facts(board)
        return [Tool("QEMU", emulator.program, emulator.install)]

    def flash(self, project: Project, port: str | None, progress: ProgressCallback | None = None,
              icount: bool = False):
        """`icount`: `-icount shift=0`, one instruction per virtual nanosecond, so a timer counts
        instructions (a 25 MHz SysTick tick is 40, a 10 MHz RISC-V mtime tick 100)."""
        return self._run(project, port, progress, icount)

    @contextmanager
    def _run(self, project: Project, port: str | None, progress: ProgressCallback | None,
             icount: bool) -> Iterator[str]:
        board = project.board
        if port:
            raise TinyedgeError(f"the {board.id} board is emulated by QEMU and has no serial port: drop --port.")
        elf = project.artifact("elf")
        require_tools(self.tools(board), needed_for=board.name)
        tcp_port = free_tcp_port()
        if progress:
            progress(0, 1, f"starting QEMU {emulator_facts(board).machine}")
        # In the project's directory: semihosting opens the board's persistent store there
        # (model_slots.flash, firmware/protocol/te_store.h), so it survives QEMU's restarts.
        with serving(qemu_command(board, elf, tcp_port, icount), READY_MARKER, 20.0, "QEMU", cwd=project.dir):
            if progress:
                progress(1, 1, "QEMU running")
            yield f"socket://127.0.0.1:{tcp_port}"


FLASHER = QemuFlasher()
