"""The `avrdude` flasher: a real Uno is flashed through its bootloader with
`avrdude -c arduino -p m328p -b 115200 -P PORT -U flash:w:firmware.hex:i`.

With no --port and no matching USB device attached, a profile with an `emulator` of kind `simavr`
is emulated instead: a small launcher (firmware/host_tools/simavr-uno, built once against libsimavr and cached)
runs Debian's Optiboot in an emulated ATmega328P with its UART on a pseudo-terminal; the real
avrdude flashes through that bootloader, and the firmware then answers on the same pty."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.paths import HOST_TOOLS_DIR, cache_dir
from tinyedge.ports import candidates_for, choose_port, list_ports
from tinyedge.processes import serving
from tinyedge.project import Project
from tinyedge.sections import AvrSettings, EmulatorSettings
from tinyedge.tools import Tool, require_tool

AVRDUDE_INSTALL = "sudo apt-get install avrdude"
AVRDUDE = Tool("avrdude", "avrdude", AVRDUDE_INSTALL)
SIMAVR_INSTALL = "sudo apt-get install libsimavr-dev libelf-dev pkg-config build-essential"
LAUNCHER_SOURCES = HOST_TOOLS_DIR / "simavr-uno"
LAUNCHER_MARKER = "simavr-uno: uart on "
FLASH_TIMEOUT_S = 120


def avrdude_command(board: Board, port: str, hex_path: Path) -> list[str]:
    avr = board.settings(AvrSettings)
    return ["avrdude", "-c", avr.avrdude_programmer, "-p", avr.avrdude_part,
            "-b", str(avr.upload_baud), "-P", port, "-U", f"flash:w:{hex_path}:i"]


def run_avrdude(board: Board, port: str, hex_path: Path, progress: ProgressCallback | None) -> float:
    """Flash and verify; returns the seconds it took. A failure quotes avrdude's last error line."""
    require_tool(AVRDUDE)
    size = hex_path.stat().st_size
    if progress:
        progress(0, size, f"avrdude → {port}")
    started = time.monotonic()
    try:
        result = subprocess.run(avrdude_command(board, port, hex_path), capture_output=True, text=True,
                                timeout=FLASH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TinyedgeError(f"avrdude did not finish within {FLASH_TIMEOUT_S} s on {port}: "
                            "press reset on the board and try again.") from None
    if result.returncode != 0:
        raise avrdude_failure(board, port, result.stderr)
    if progress:
        progress(size, size, f"flashed and verified in {time.monotonic() - started:.1f} s")
    return time.monotonic() - started


# avrdude toggles DTR to reset the board before each sync attempt; a pseudo-terminal has no modem
# lines, so every attempt logs these, whatever the outcome: they never say why a flash failed.
MODEM_LINE_NOISE = ('ioctl("TIOCMGET")', 'ioctl("TIOCMSET")')
LOST_SYNC = ("not in sync", "not responding", "protocol expects sync")


def avrdude_failure(board: Board, port: str, stderr: str) -> TinyedgeError:
    """One sentence saying why avrdude failed: a bootloader that does not answer (lost sync), else
    avrdude's last error line, never the modem-line noise of a pty."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not any(n in line for n in MODEM_LINE_NOISE)]
    lost = [line for line in lines if any(sign in line for sign in LOST_SYNC)]
    if lost:
        return TinyedgeError(f"the bootloader of {board.name} on {port} did not answer avrdude ({lost[-1]}): press reset "
                             "(or replug the board) just before flashing, check the port, then try again.")
    errors = [line for line in lines if "error" in line.lower()]
    last = errors[-1] if errors else (lines or ["no output"])[-1]
    return TinyedgeError(f"avrdude could not flash {board.name} on {port} ({last}): "
                         "check the port and the board, then try again.")


def launcher_path() -> Path:
    """The simavr-uno launcher, compiled once per version of its sources into the tinyedge cache."""
    sources = sorted(LAUNCHER_SOURCES.glob("*.c"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    target = cache_dir() / "simavr-uno" / digest / "simavr-uno"
    if target.is_file():
        return target
    for tool in ("cc", "pkg-config"):
        if shutil.which(tool) is None:
            raise TinyedgeError(f"{tool} is needed to build the Uno emulator: install it with `{SIMAVR_INSTALL}`.")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "simavr", "simavrparts"], capture_output=True, text=True)
    if flags.returncode != 0:
        raise TinyedgeError(f"libsimavr is not installed, so the Uno cannot be emulated: install it with `{SIMAVR_INSTALL}`.")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f"simavr-uno.{time.monotonic_ns()}.tmp")
    command = ["cc", "-O2", "-std=gnu99", "-Wall", "-Wextra", *map(str, sources), "-o", str(temporary),
               *flags.stdout.split(), "-lelf", "-lpthread", "-lutil"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        first = next((l for l in result.stderr.splitlines() if "error" in l), result.stderr.strip()[-200:])
        raise TinyedgeError(f"the Uno emulator launcher did not compile ({first}): install `{SIMAVR_INSTALL}`.")
    temporary.replace(target)
    return target


def attached_port(board: Board) -> str | None:
    """The one attached board's port; None when none is attached (several is an error)."""
    found = candidates_for(board, list_ports())
    if not found:
        return None
    return choose_port(board, found)


class AvrdudeFlasher(Flasher):
    name = "avrdude"
    sections = (AvrSettings, EmulatorSettings)
    required_tools = (AVRDUDE,)

    def will_emulate(self, board: Board, port: str | None) -> bool:
        return port is None and board.emulator_kind == "simavr" and attached_port(board) is None

    @contextmanager
    def flash(self, project: Project, port: str | None,
              progress: ProgressCallback | None = None) -> Iterator[str]:
        board = project.board
        hex_path = project.artifact("hex")
        if port is None:
            port = attached_port(board)
        if port is not None:
            run_avrdude(board, port, hex_path, progress)
            yield port
            return
        if board.emulator_kind != "simavr":
            raise TinyedgeError(f"no {board.name} found (USB ids {', '.join(board.usb_ids)}): connect it or pass --port.")
        with emulated_uno(board, progress) as pty:
            run_avrdude(board, pty, hex_path, progress)
            yield pty


@contextmanager
def emulated_uno(board: Board, progress: ProgressCallback | None = None) -> Iterator[str]:
    """An emulated Uno running its bootloader, owned for the duration; yields its pty."""
    bootloader = Path(board.settings(EmulatorSettings).bootloader_hex)
    if not bootloader.is_file():
        raise TinyedgeError(f"the Optiboot image {bootloader} is missing, so the Uno cannot be emulated: "
                            "install it with `sudo apt-get install arduino-core-avr`.")
    launcher = launcher_path()
    if progress:
        progress(0, 1, "no Uno attached: starting the simavr emulator")
    with serving([str(launcher), str(bootloader), str(board.clock_hz)], LAUNCHER_MARKER, 10.0,
                 "the simavr Uno emulator") as pty:
        yield pty


FLASHER = AvrdudeFlasher()
