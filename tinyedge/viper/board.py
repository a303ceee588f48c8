"""Talking to a MicroPython board through its REPL, with mpremote (PyPI): what it runs, how much heap
it has free, copying files (unchanged ones skipped) and starting and stopping the protocol server."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.protocol import MSG_QUIT, encode_frame
from tinyedge.viper.mpy import MpyFormat

READ_TIMEOUT_S = 2.0
SERVER_MODULE = "te_server"
NO_MICROPYTHON_HINTS = {
    "esptool": "flash MicroPython first with esptool (installed with tinyedge), e.g. "
               "`esptool.py --port PORT write_flash 0x1000 ESP32_GENERIC.bin` from micropython.org/download",
    "uf2": "flash MicroPython first: hold BOOTSEL, plug the board in and copy RPI_PICO.uf2 from "
           "micropython.org/download to the RPI-RP2 drive",
}


@dataclass(frozen=True)
class BoardFacts:
    mpy: MpyFormat
    mem_free: int        # gc.mem_free() after a soft reset and a collection
    platform: str
    version: str


def _transport(url: str, baud: int):
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    try:
        # A read timeout, so a silent port ends mpremote's waits instead of blocking them forever.
        return SerialTransport(url, baudrate=baud, timeout=READ_TIMEOUT_S)
    except (TransportError, OSError) as exc:
        raise DeviceError(f"cannot open {url} ({exc}): check the port with `tinyedge ports`.") from None


def _raw_repl(transport, url: str, installer: str, soft_reset: bool = True) -> None:
    from mpremote.transport import TransportError

    try:
        transport.enter_raw_repl(soft_reset=soft_reset)
    except TransportError:
        hint = NO_MICROPYTHON_HINTS.get(installer, "flash MicroPython on it first")
        raise DeviceError(f"no MicroPython REPL answers on {url}: {hint}.") from None


def read_facts(url: str, baud: int, installer: str = "") -> BoardFacts:
    """Soft-reset the board and read its .mpy format, free heap, platform and version."""
    from mpremote.transport import TransportError

    transport = _transport(url, baud)
    try:
        _raw_repl(transport, url, installer)
        out = transport.exec("import sys, gc; gc.collect(); "
                             "print(sys.implementation._mpy, gc.mem_free(), sys.platform, "
                             "'.'.join(str(v) for v in sys.implementation.version[:3]))")
        transport.exit_raw_repl()
    except TransportError as exc:   # TransportExecError too: the query itself failed on the board
        raise DeviceError(f"the MicroPython board on {url} did not answer a query ({exc}): "
                          "reset it and try again.") from None
    finally:
        transport.close()
    mpy, free, platform, version = out.decode().split()
    return BoardFacts(MpyFormat.from_sys_implementation(int(mpy)), int(free), platform, version)


def copy_files(url: str, files: list[Path]) -> tuple[int, int]:
    """`mpremote fs cp` the files to the board's root; returns (copied, already up to date)."""
    command = [sys.executable, "-m", "mpremote", "connect", url]
    for index, path in enumerate(files):
        command += (["+"] if index else []) + ["fs", "cp", str(path), f":{path.name}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DeviceError(f"mpremote could not copy the model to {url} ({last[0][:300]}): "
                          "check the board has room on its filesystem.")
    skipped = result.stdout.count("Up to date:")
    return len(files) - skipped, skipped


def start_server(url: str, baud: int) -> None:
    """Run `te_server.serve()` from the raw REPL (after a soft reset, so the heap is clean) and leave it
    running: the protocol then speaks on the REPL's stdin/stdout."""
    transport = _transport(url, baud)
    try:
        _raw_repl(transport, url, "")
        transport.exec_raw_no_follow(f"import {SERVER_MODULE}\n{SERVER_MODULE}.serve()\n")
    finally:
        transport.serial.close()


def stop_server(url: str, baud: int, timeout_s: float = 5.0) -> bool:
    """Ask the server to quit and leave the raw REPL: the board's REPL is the user's again."""
    import serial

    try:
        port = serial.serial_for_url(url, baudrate=baud, timeout=0.1)
    except (serial.SerialException, OSError, ValueError):
        return False
    try:
        port.write(b"\x00" + encode_frame(MSG_QUIT, 1) + b"\x00")
        deadline = time.monotonic() + timeout_s
        seen = b""
        while time.monotonic() < deadline and not seen.endswith(b"\x04>"):
            seen += port.read(256)
        port.write(b"\x02")   # Ctrl-B: back to the friendly REPL
        return seen.endswith(b"\x04>")
    finally:
        port.close()


def heap_needed(module_bytes: int, arena_bytes: int, server_bytes: int = 12 * 1024) -> int:
    """Heap the model needs once imported: the loaded modules (their bytes objects and code), the arena,
    and the server's frames and buffers."""
    return module_bytes + arena_bytes + server_bytes


def check_fits(facts_free: int, module_bytes: int, arena_bytes: int, board_id: str) -> None:
    needed = heap_needed(module_bytes, arena_bytes)
    if needed > facts_free:
        raise TinyedgeError(
            f"the model needs about {needed:,} bytes of MicroPython heap ({module_bytes:,} of modules + a "
            f"{arena_bytes:,}-byte arena + about 12 KiB for the server) but the {board_id} board has "
            f"{facts_free:,} free: use a smaller model or a board with more RAM (weights live in RAM on stock "
            "MicroPython).")
