"""Board profiles from `boards.yaml`, validated on load."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from tinyedge.errors import TinyedgeError
from tinyedge.paths import boards_file
from tinyedge.plugins import FLASHERS, FRAMEWORKS, RUNTIMES
TFLM_SOURCES = ("tree", "component", "arduino-library", "lib_deps", "none")
USB_ID = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}$")

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str, "mcu": str, "arch": str, "cpu_flags": list, "clock_hz": int,
    "flash_bytes": int, "ram_bytes": int, "pointer_bytes": int, "framework": str,
    "toolchain": str, "flasher": str, "usb_ids": list, "baud": int, "runtimes": list,
    "tflm": dict, "rx_buffer_bytes": int,
}
_CHOICES = {"framework": FRAMEWORKS, "flasher": FLASHERS}
URL = re.compile(r"^https?://\S+$")


@dataclass(frozen=True)
class Board:
    id: str
    name: str
    mcu: str
    arch: str
    cpu_flags: tuple[str, ...]
    clock_hz: int
    flash_bytes: int
    ram_bytes: int
    pointer_bytes: int
    framework: str
    toolchain: str
    flasher: str
    usb_ids: tuple[str, ...]
    baud: int
    runtimes: tuple[str, ...]
    tflm: dict[str, Any]
    rx_buffer_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """An optional section such as `esptool`, `memory` or `emulator` (empty when absent)."""
        value = self.extra.get(name)
        return value if isinstance(value, dict) else {}

    def route(self, runtime: str) -> dict[str, Any]:
        """The profile's `by_runtime` entry for a runtime built another way than the board's default (empty if none)."""
        entry = self.section("by_runtime").get(runtime)
        return entry if isinstance(entry, dict) else {}

    def framework_for(self, runtime: str) -> str:
        """The framework that builds this runtime: `by_runtime.<runtime>.framework`, else `framework`."""
        return str(self.route(runtime).get("framework", self.framework))

    def port_for(self, runtime: str) -> str:
        """The firmware port for this runtime: `by_runtime.<runtime>.port`, else `port` (empty: the framework's default)."""
        return str(self.route(runtime).get("port") or self.extra.get("port") or "")

    @property
    def image_id(self) -> str:
        """The board id the firmware reports: `image_of` when the board runs another board's image unchanged."""
        return str(self.extra.get("image_of", self.id))

    @property
    def emulator(self) -> dict[str, Any]:
        return self.section("emulator")

    @property
    def progmem(self) -> bool:
        """Constants must be placed in program memory explicitly (AVR's Harvard architecture)."""
        return bool(self.extra.get("progmem", False))

    @property
    def is_budgeted(self) -> bool:
        return self.flash_bytes > 0 and self.ram_bytes > 0

    def usb_pairs(self) -> list[tuple[int, int]]:
        return [tuple(int(part, 16) for part in uid.split(":")) for uid in self.usb_ids]  # type: ignore[misc]

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "extra"}
        data.update({k: list(v) if isinstance(v, tuple) else v for k, v in data.items()})
        data.update(self.extra)
        return data


def _problem(path: Path, board_id: str, field_name: str, what: str) -> TinyedgeError:
    return TinyedgeError(f"{path}: board '{board_id}', field '{field_name}': {what}; fix the profile.")


def _check_board(path: Path, board_id: str, raw: Any) -> Board:
    if not isinstance(raw, dict):
        raise _problem(path, board_id, "(profile)", "must be a mapping of fields")
    for name, kind in _REQUIRED.items():
        if name not in raw:
            raise _problem(path, board_id, name, "is missing")
        value = raw[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise _problem(path, board_id, name, f"must be a {expected} (got {value!r})")
    for name, choices in _CHOICES.items():
        if raw[name] not in choices:
            raise _problem(path, board_id, name, f"must be one of {', '.join(choices)} (got {raw[name]!r})")
    for name in ("clock_hz", "flash_bytes", "ram_bytes"):
        if raw[name] < 0:
            raise _problem(path, board_id, name, f"must not be negative (got {raw[name]})")
    for name in ("baud", "rx_buffer_bytes"):
        if raw[name] <= 0:
            raise _problem(path, board_id, name, f"must be positive (got {raw[name]})")
    if raw["pointer_bytes"] not in (2, 4, 8):
        raise _problem(path, board_id, "pointer_bytes", f"must be 2, 4 or 8 (got {raw['pointer_bytes']})")
    for uid in raw["usb_ids"]:
        if not isinstance(uid, str) or not USB_ID.match(uid):
            raise _problem(path, board_id, "usb_ids", f"{uid!r} is not a VID:PID pair such as '2341:0043'")
    bad_runtimes = [r for r in raw["runtimes"] if r not in RUNTIMES]
    if not raw["runtimes"] or bad_runtimes:
        raise _problem(path, board_id, "runtimes", f"must list some of {', '.join(RUNTIMES)} (got {raw['runtimes']!r})")
    if raw["tflm"].get("source") not in TFLM_SOURCES:
        raise _problem(path, board_id, "tflm", f"'source' must be one of {', '.join(TFLM_SOURCES)}")
    if "tflm" in raw["runtimes"] and raw["tflm"]["source"] == "none":
        raise _problem(path, board_id, "tflm", "the board lists the tflm runtime but names no TFLM source")
    _check_optional(path, board_id, raw)
    extra = {k: v for k, v in raw.items() if k not in _REQUIRED}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in _REQUIRED}
    return Board(id=board_id, extra=extra, **fields)


def _check_optional(path: Path, board_id: str, raw: dict[str, Any]) -> None:
    """The optional fields plug-ins read: checked here so a typo is reported before a build or a flash."""
    if not isinstance(raw.get("progmem", False), bool):
        raise _problem(path, board_id, "progmem", f"must be true or false (got {raw['progmem']!r})")
    running = raw.get("uf2", {}).get("running_usb_id") if isinstance(raw.get("uf2"), dict) else None
    if running is not None and not (isinstance(running, str) and USB_ID.match(running)):
        raise _problem(path, board_id, "uf2.running_usb_id", f"{running!r} is not a VID:PID pair such as '2E8A:000A'")
    for runtime, route in (raw.get("by_runtime") or {}).items():
        if runtime not in raw["runtimes"] or not isinstance(route, dict) or route.get("framework") not in FRAMEWORKS:
            raise _problem(path, board_id, f"by_runtime.{runtime}",
                           f"must be a listed runtime with a `framework` among {', '.join(FRAMEWORKS)} (got {route!r})")
    index_url = raw.get("arduino", {}).get("index_url") if isinstance(raw.get("arduino"), dict) else None
    if index_url is not None and not (isinstance(index_url, str) and URL.match(index_url)):
        raise _problem(path, board_id, "arduino.index_url", f"{index_url!r} is not an http(s) URL")


def load_boards(path: Path | None = None) -> dict[str, Board]:
    path = Path(path) if path else boards_file()
    if not path.is_file():
        raise TinyedgeError(f"the board profiles file {path} is missing: restore boards.yaml or set TINYEDGE_BOARDS.")
    return _load_cached(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _load_cached(path: Path, _mtime: int) -> dict[str, Board]:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TinyedgeError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}): fix the file.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("boards"), dict) or not doc["boards"]:
        raise TinyedgeError(f"{path} must have a top-level 'boards' mapping of board id to profile.")
    return {str(board_id): _check_board(path, str(board_id), raw) for board_id, raw in doc["boards"].items()}


def get_board(board_id: str, path: Path | None = None) -> Board:
    boards = load_boards(path)
    if board_id not in boards:
        raise TinyedgeError(f"unknown board '{board_id}': choose one of {', '.join(boards)}.")
    return boards[board_id]


DEFAULT_BOARD = "qemu-cortex-m4"
