"""`tinyedge doctor`: which external tools each board needs (present, with versions, or missing,
with the line that installs them), whether a TFLM tree is configured, and whether this user can
open serial ports. A report only: it never fails."""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import asdict, dataclass, field
from typing import Any

from tinyedge.boards import Board, load_boards
from tinyedge.errors import TinyedgeError
from tinyedge.paths import tflm_dir_from_env
from tinyedge.plugins import get_flasher, get_framework
from tinyedge.ports import list_ports
from tinyedge.tflm_tree import find_tflm_tree, tflm_version, tree_kind
from tinyedge.tools import Tool, tool_path, tool_version

SERIAL_GROUPS = ("dialout", "uucp", "plugdev")


@dataclass
class ToolStatus:
    name: str
    command: str
    install: str
    present: bool
    version: str | None
    path: str | None
    needed_by: list[str] = field(default_factory=list)    # "framework espidf: esp32-devkitc", ...


@dataclass
class TflmStatus:
    configured: bool
    path: str | None
    valid: bool
    version: str | None
    message: str
    kernels: str | None = None        # "reference" or "cmsis-nn" (Cortex-M boards only)


@dataclass
class SerialStatus:
    user: str
    groups: list[str]
    serial_group: str | None          # the group owning /dev/tty* devices on this system
    in_serial_group: bool
    ports: list[dict[str, Any]]
    message: str


@dataclass
class DoctorReport:
    tools: list[ToolStatus]
    unavailable: list[str]            # frameworks/flashers that could not be loaded, with why
    tflm: TflmStatus
    serial: SerialStatus

    @property
    def missing(self) -> list[ToolStatus]:
        return [tool for tool in self.tools if not tool.present]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["missing"] = [tool.command for tool in self.missing]
        return data


def _load(kind: str, name: str) -> Any:
    """A framework or flasher; ImportError or TinyedgeError when it is not there (the caller reports it)."""
    return get_framework(name) if kind == "framework" else get_flasher(name)


def needed_tools(boards: dict[str, Board]) -> tuple[dict[str, tuple[Tool, list[str]]], list[str]]:
    """Every tool of every board's framework and flasher, keyed by command, with who needs it."""
    tools: dict[str, tuple[Tool, list[str]]] = {}
    unavailable: list[str] = []
    for board in boards.values():
        frameworks = dict.fromkeys([board.framework, *(board.framework_for(r) for r in board.runtimes)])
        for kind, name in [*(("framework", f) for f in frameworks), ("flasher", board.flasher)]:
            try:
                component = _load(kind, name)
                board_tools = component.tools(board)
            except (ImportError, AttributeError, TinyedgeError) as exc:
                note = f"{kind} {name}: not available ({exc})"
                if note not in unavailable:
                    unavailable.append(note)
                continue
            for tool in board_tools:
                entry = tools.setdefault(tool.command, (tool, []))
                user = f"{kind} {name}: {board.id}"
                if user not in entry[1]:
                    entry[1].append(user)
    return tools, unavailable


def check_tools(boards: dict[str, Board]) -> tuple[list[ToolStatus], list[str]]:
    found, unavailable = needed_tools(boards)
    statuses = []
    for tool, users in found.values():
        path = tool_path(tool)
        statuses.append(ToolStatus(name=tool.name, command=tool.command, install=tool.install,
                                   present=path is not None, version=tool_version(tool) if path else None,
                                   path=path, needed_by=users))
    return statuses, unavailable


def check_tflm() -> TflmStatus:
    given = tflm_dir_from_env()
    if given is None:
        return TflmStatus(False, None, False, None,
                          "TINYEDGE_TFLM_DIR is not set: boards that build TFLM from a tree (host, qemu-cortex-m4) "
                          "can only use the aot runtime; ESP-IDF, Arduino and PlatformIO bring TFLM themselves")
    tree = find_tflm_tree(given)
    if tree is None:
        return TflmStatus(True, str(given), False, None,
                          f"TINYEDGE_TFLM_DIR={given} is not a TFLM tree: make one with TFLM's create_tflm_tree.py")
    kind = tree_kind(tree)
    if kind == "cmsis-nn":
        return TflmStatus(True, str(tree), True, tflm_version(tree),
                          "ok: CMSIS-NN kernels, for Cortex-M boards only (the host board needs a reference-kernel "
                          "tree)", kind)
    return TflmStatus(True, str(tree), True, tflm_version(tree), "ok", kind)


def serial_group() -> str | None:
    """The group that owns serial devices here (dialout on Debian/Ubuntu, uucp on Arch)."""
    for device in ("/dev/ttyUSB0", "/dev/ttyACM0", "/dev/ttyS0"):
        try:
            return grp.getgrgid(os.stat(device).st_gid).gr_name
        except (OSError, KeyError):
            continue
    for name in SERIAL_GROUPS:
        try:
            grp.getgrnam(name)
            return name
        except KeyError:
            continue
    return None


def check_serial() -> SerialStatus:
    uid = os.getuid()
    user = pwd.getpwuid(uid).pw_name
    groups = sorted({grp.getgrgid(gid).gr_name for gid in os.getgroups() if _group_exists(gid)})
    group = serial_group()
    in_group = uid == 0 or (group is not None and group in groups)
    ports = [{"device": p.device, "usb_id": p.usb_id, "boards": list(p.boards),
              "can_open": os.access(p.device, os.R_OK | os.W_OK)} for p in list_ports()]
    if uid == 0:
        message = "running as root: every serial port can be opened"
    elif in_group:
        message = f"{user} is in the {group} group"
    else:
        message = (f"{user} is not in the {group or 'dialout'} group: run "
                   f"`sudo usermod -aG {group or 'dialout'} {user}` and log in again")
    blocked = [p["device"] for p in ports if not p["can_open"]]
    if blocked:
        message += f"; cannot open {', '.join(blocked)}"
    return SerialStatus(user, groups, group, in_group, ports, message)


def _group_exists(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
        return True
    except KeyError:
        return False


def diagnose() -> DoctorReport:
    boards = load_boards()
    tools, unavailable = check_tools(boards)
    return DoctorReport(tools=tools, unavailable=unavailable, tflm=check_tflm(), serial=check_serial())

