"""Child processes tinyedge owns (QEMU, simavr, the host firmware): stopped when the work is done,
on Ctrl-C, at interpreter exit, and by the kernel if tinyedge itself dies (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.tools import missing_tool

PR_SET_PDEATHSIG = 1
_owned: "weakref.WeakSet[subprocess.Popen]" = weakref.WeakSet()
SERVED_POLL_S = 0.2
# Resolved in the parent: the child, between fork and exec, only makes the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: the kernel kills it when its parent thread ends."""
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def start_owned(command: Sequence[str], **popen_kwargs) -> subprocess.Popen:
    """Start a child that cannot outlive tinyedge (note: PDEATHSIG follows the starting *thread*)."""
    try:
        process = subprocess.Popen(list(command), preexec_fn=_die_with_parent, **popen_kwargs)
    except FileNotFoundError:
        raise missing_tool(command[0]) from None
    _owned.add(process)
    return process


def stop(process: subprocess.Popen, grace_s: float = 3.0) -> None:
    """Terminate, then kill if it does not exit within the grace period; always reap it."""
    if process.poll() is None:
        try:
            process.terminate()
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        except ProcessLookupError:
            pass
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
    _owned.discard(process)


@atexit.register
def _stop_all() -> None:
    for process in list(_owned):
        stop(process, grace_s=1.0)


def read_line_matching(process: subprocess.Popen, stream: IO[str], marker: str, timeout_s: float,
                       what: str) -> str:
    """The first line of `stream` containing `marker`; a TinyedgeError when the process exits or stays
    silent too long. Everything read is kept for the error message."""
    lines: list[str] = []
    found: list[str] = []
    done = threading.Event()

    def reader() -> None:
        try:
            for line in stream:
                if marker in line:
                    found.append(line.strip())
                    break
                lines.append(line.rstrip())
        except (OSError, ValueError):   # the stream was closed because the process was stopped
            pass
        done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    done.wait(timeout_s)
    if found:
        return found[0]
    tail = "; ".join(line for line in lines[-3:] if line) or "no output"
    if process.poll() is not None:
        raise TinyedgeError(f"{what} exited with status {process.returncode} before it was ready ({tail}): "
                            "check the firmware build and try again.")
    raise TinyedgeError(f"{what} did not get ready within {timeout_s:.0f} s ({tail}): check the firmware and try again.")


def drain(stream: IO[str] | None, keep: list[str] | None = None, limit: int = 200) -> None:
    """Keep reading a child's output in the background so a full pipe never blocks it."""
    if stream is None:
        return

    def reader() -> None:
        try:
            for line in stream:
                if keep is not None:
                    keep.append(line.rstrip())
                    del keep[:-limit]
        except (OSError, ValueError):
            pass

    threading.Thread(target=reader, daemon=True).start()


def pids_running(executable_name: str) -> list[int]:
    """PIDs of live processes whose executable is called `executable_name` (a /proc scan; zombies excluded)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)
            name = fields[0].split("(", 1)[1]
            state = fields[1].split()[0]
        except (OSError, IndexError):
            continue
        if name == executable_name[:15] and state != "Z":
            pids.append(int(entry))
    return pids


def wait_until(predicate, timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()


@dataclass
class _Served:
    process: subprocess.Popen
    what: str
    output: list[str]


_served: list[_Served] = []  # the children `serving` runs now, innermost last


@contextmanager
def serving(command: Sequence[str], marker: str, timeout_s: float, what: str, **popen_kwargs) -> Iterator[str]:
    """Start an owned child, wait for its line holding `marker` and yield what follows the marker there;
    its output keeps draining while the caller works (wait_while_served() notices when it dies), and the
    child is stopped on leaving."""
    process = start_owned(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **popen_kwargs)
    served = _Served(process, what, [])
    try:
        line = read_line_matching(process, process.stdout, marker, timeout_s, what)
        drain(process.stdout, served.output, limit=20)
        _served.append(served)
        yield line.split(marker, 1)[1].strip()
    finally:
        if served in _served:
            _served.remove(served)
        stop(process)


def wait_while_served(url: str) -> None:
    """Block while every child `serving` runs is alive (an emulator the user works with); when one
    exits, raise a DeviceError saying so. Returns at once when nothing is being served."""
    while _served:
        for served in list(_served):
            if served.process.poll() is not None:
                time.sleep(SERVED_POLL_S)  # let the drain thread read its last words
                tail = "; ".join(line for line in served.output[-3:] if line.strip()) or "no output"
                code = served.process.returncode
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                raise DeviceError(f"{served.what} {how} (last output: {tail}), so nothing answers on {url} any "
                                  "more: run `tinyedge flash` again.")
        time.sleep(SERVED_POLL_S)
