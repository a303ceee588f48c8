"""Serial ports on this machine, and which board profile each could be (by USB VID:PID)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

import serial
from serial.tools import list_ports as pyserial_list_ports

from tinyedge.boards import Board, load_boards
from tinyedge.errors import TinyedgeError

@dataclass(frozen=True)
class PortInfo:
    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    description: str = ""
    manufacturer: str | None = None
    boards: tuple[str, ...] = field(default_factory=tuple)

    @property
    def usb_id(self) -> str | None:
        if self.vid is None or self.pid is None:
            return None
        return f"{self.vid:04X}:{self.pid:04X}"

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["usb_id"] = self.usb_id
        data["boards"] = list(self.boards)
        return data

    def label(self) -> str:
        parts = [p for p in (self.usb_id, self.description if self.description != "n/a" else "", self.serial_number) if p]
        return f"{self.device} ({', '.join(parts)})" if parts else self.device


def boards_for_usb_id(usb_id: str | None, boards: dict[str, Board]) -> tuple[str, ...]:
    if usb_id is None:
        return ()
    return tuple(board_id for board_id, board in boards.items()
                 if usb_id.upper() in (uid.upper() for uid in board.usb_ids))


def list_ports() -> list[PortInfo]:
    """Every serial port pyserial sees, with the board profiles whose USB ids match it."""
    boards = load_boards()
    ports = []
    for raw in sorted(pyserial_list_ports.comports(), key=lambda p: p.device):
        port = PortInfo(device=raw.device, vid=raw.vid, pid=raw.pid, serial_number=raw.serial_number,
                        description=raw.description or "", manufacturer=raw.manufacturer)
        ports.append(PortInfo(**{**port.__dict__, "boards": boards_for_usb_id(port.usb_id, boards)}))
    return ports


def candidates_for(board: Board, ports: list[PortInfo]) -> list[PortInfo]:
    wanted = {uid.upper() for uid in board.usb_ids}
    return [port for port in ports if port.usb_id is not None and port.usb_id in wanted]


def choose_port(board: Board, ports: list[PortInfo]) -> str:
    """The one port that can be `board`; a TinyedgeError saying what to do when there are none or several."""
    if not board.usb_ids:
        raise TinyedgeError(f"the {board.name} profile lists no USB ids to look for: pass --port.")
    candidates = candidates_for(board, ports)
    if not candidates:
        raise TinyedgeError(
            f"no {board.name} found (USB ids {', '.join(board.usb_ids)}): connect it or pass --port.")
    if len(candidates) > 1:
        listed = "; ".join(port.label() for port in candidates)
        raise TinyedgeError(f"several ports could be the {board.name} ({listed}): pass --port with one of them.")
    return candidates[0].device


def find_board_port(board: Board) -> str:
    """The serial device of the one attached board matching the profile's USB ids."""
    return choose_port(board, list_ports())


def is_device_path(port: str) -> bool:
    """True for a local device (/dev/ttyACM0, COM3); False for pyserial URLs such as socket:// or rfc2217://."""
    return "://" not in port


def is_rfc2217(url: str) -> bool:
    return url.lower().startswith("rfc2217://")


def with_rfc2217_defaults(url: str) -> str:
    """An rfc2217:// URL with `ign_set_control`, which lab servers (ser2net, labgrid's exporter) need
    because they do not answer every SET_CONTROL; other URLs unchanged."""
    if not is_rfc2217(url) or "ign_set_control" in url.partition("?")[2].split("&"):
        return url
    return f"{url}{'&' if '?' in url else '?'}ign_set_control"


def open_options(url: str) -> dict[str, object]:
    """Extra pyserial options for opening `url`: a write timeout, except over RFC 2217, whose pyserial
    implementation refuses one (pyserial#412); a local device is opened exclusively (an advisory
    flock on POSIX), so two runs never share one board."""
    options: dict[str, object] = {} if is_rfc2217(url) else {"write_timeout": 30}
    if is_device_path(url) and os.name == "posix":
        options["exclusive"] = True
    return options


def port_holders(device: str) -> list[str]:
    """Who holds an exclusive (flock) lock on `device`, as "pid N (command line)", from /proc/locks;
    empty when that cannot be told."""
    try:
        stat = os.stat(device)
        with open("/proc/locks") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return []
    holders = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[4] == "->":
            continue
        pid, inode = fields[4], fields[5].rsplit(":", 1)[-1]
        if inode.isdigit() and int(inode) == stat.st_ino and pid.isdigit():
            holders.append(f"pid {pid} ({_command_line(int(pid))})")
    return sorted(set(holders))


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().split(b"\0")
    except OSError:
        return "unknown program"
    return " ".join(word.decode(errors="replace") for word in words if word)[:200] or "unknown program"


def wait_for_port(device: str, timeout_s: float = 10.0, poll_s: float = 0.1) -> bool:
    """Wait until a device path exists again (after a reset that re-enumerates USB). URLs count as present."""
    if not is_device_path(device) or os.name == "nt":
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.path.exists(device):
            return True
        time.sleep(poll_s)
    return os.path.exists(device)


def wait_for_usb_port(usb_ids: list[str] | tuple[str, ...], timeout_s: float = 10.0,
                      ignore: set[str] | None = None, poll_s: float = 0.2) -> str | None:
    """The device path of a port with one of `usb_ids` that appears within the timeout (skipping `ignore`)."""
    wanted = {uid.upper() for uid in usb_ids}
    ignore = ignore or set()
    deadline = time.monotonic() + timeout_s
    while True:
        for raw in pyserial_list_ports.comports():
            if raw.vid is not None and raw.pid is not None and raw.device not in ignore:
                if f"{raw.vid:04X}:{raw.pid:04X}" in wanted:
                    return raw.device
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll_s)


def touch_1200bps(port: str) -> None:
    """Open and close the port at 1200 baud: Arduino-style cores reboot into their bootloader on it."""
    try:
        with serial.Serial(port, 1200) as ser:
            ser.dtr = False
    except (serial.SerialException, OSError):
        pass  # the board may drop off the bus while we close: that is the point

