"""Board profiles from `boards.yaml`, validated on load."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tinyedge.errors import TinyedgeError
from tinyedge.paths import boards_file
from tinyedge.plugins import FLASHERS, FRAMEWORKS, RUNTIMES
from tinyedge.sections import SECTIONS, Route, Section, SectionError

S = TypeVar("S", bound=Section)
TFLM_SOURCES = ("tree", "component", "arduino-library", "lib_deps", "none")
USB_ID = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}$")

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str, "mcu": str, "arch": str, "cpu_flags": list, "clock_hz": int,
    "flash_bytes": int, "ram_bytes": int, "pointer_bytes": int, "framework": str,
    "toolchain": str, "flasher": str, "usb_ids": list, "baud": int, "runtimes": list,
    "tflm": dict, "rx_buffer_bytes": int,
}
_CHOICES = {"framework": FRAMEWORKS, "flasher": FLASHERS}
_OPTIONAL: dict[str, type] = {"progmem": bool, "port": str, "image_of": str, "updatable": bool, "by_runtime": dict}


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
    progmem: bool = False
    """Constants must be placed in program memory explicitly (AVR's Harvard architecture)."""
    port: str | None = None
    """The firmware port folder (firmware/ports/<port>) when not the framework's default."""
    image_of: str | None = None
    """The board whose image this one runs unchanged (the firmware reports that board's id)."""
    updatable: bool = False
    """Firmware generated for it keeps its model in A/B slots unless `generate --no-updatable`."""
    by_runtime: dict[str, Route] = field(default_factory=dict)
    """A runtime built another way than the board's default framework: runtime -> framework and port."""
    sections: dict[str, Section] = field(default_factory=dict)
    raw_sections: dict[str, Any] = field(default_factory=dict)

    def settings(self, kind: type[S]) -> S:
        """The profile's `kind.name` section, parsed; its defaults when the profile has none. A section with
        required fields that the profile lacks is one sentence naming the board and the section."""
        found = self.sections.get(kind.name)
        if found is not None:
            return found  # type: ignore[return-value]
        if kind.required():
            raise TinyedgeError(f"the {self.id} profile needs a `{kind.name}` section "
                                f"({', '.join(f.name for f in dataclasses.fields(kind))}): fix boards.yaml.")
        return kind()

    def has_section(self, kind: type[Section]) -> bool:
        return kind.name in self.sections

    def framework_for(self, runtime: str) -> str:
        """The framework that builds this runtime: `by_runtime.<runtime>.framework`, else `framework`."""
        route = self.by_runtime.get(runtime)
        return route.framework if route else self.framework

    def port_for(self, runtime: str) -> str:
        """The firmware port for this runtime: `by_runtime.<runtime>.port`, else `port` (empty: the framework's default)."""
        route = self.by_runtime.get(runtime)
        return (route.port if route else "") or self.port or ""

    @property
    def image_id(self) -> str:
        """The board id the firmware reports: `image_of` when the board runs another board's image unchanged."""
        return self.image_of or self.id

    @property
    def emulator_kind(self) -> str | None:
        """The `emulator` section's kind (qemu, simavr, micropython-unix, …); None for a board that is only real."""
        emulator = self.sections.get("emulator")
        return getattr(emulator, "kind", None)

    @property
    def is_budgeted(self) -> bool:
        return self.flash_bytes > 0 and self.ram_bytes > 0

    def usb_pairs(self) -> list[tuple[int, int]]:
        return [tuple(int(part, 16) for part in uid.split(":")) for uid in self.usb_ids]  # type: ignore[misc]

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("sections", "raw_sections")}
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items() if v is not None}
        if not data.get("progmem"):
            data.pop("progmem", None)
        data.update(self.raw_sections)
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
    optional = _check_optional(path, board_id, raw)
    sections = _check_sections(path, board_id, raw)
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in _REQUIRED}
    return Board(id=board_id, sections=sections, raw_sections={k: raw[k] for k in sections}, **optional, **fields)


def _check_optional(path: Path, board_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The optional plain fields: checked here so a typo is reported before a build or a flash."""
    for name, kind in _OPTIONAL.items():
        if name in raw and not isinstance(raw[name], kind):
            raise _problem(path, board_id, name, f"must be {'true or false' if kind is bool else 'a ' + kind.__name__} "
                                                 f"(got {raw[name]!r})")
    found = {name: raw[name] for name in _OPTIONAL if name in raw}
    if "by_runtime" in found:
        found["by_runtime"] = _check_routes(path, board_id, raw)
    return found


def _check_routes(path: Path, board_id: str, raw: dict[str, Any]) -> dict[str, Route]:
    routes = {}
    for runtime, entry in raw["by_runtime"].items():
        try:
            route = Route.parse(entry, f"by_runtime.{runtime}")
        except SectionError as exc:
            raise _problem(path, board_id, exc.field, exc.what) from None
        if runtime not in raw["runtimes"] or route.framework not in FRAMEWORKS:
            raise _problem(path, board_id, f"by_runtime.{runtime}",
                           f"must be a listed runtime with a `framework` among {', '.join(FRAMEWORKS)} (got {entry!r})")
        routes[str(runtime)] = route
    return routes


def _check_sections(path: Path, board_id: str, raw: dict[str, Any]) -> dict[str, Section]:
    """Every other key is a typed section (tinyedge/sections.py), parsed now."""
    sections: dict[str, Section] = {}
    for key in raw:
        if key in _REQUIRED or key in _OPTIONAL:
            continue
        kind = SECTIONS.get(str(key))
        if kind is None:
            known = sorted([*_REQUIRED, *_OPTIONAL, *SECTIONS])
            raise _problem(path, board_id, str(key), f"is not a profile field or section (known: {', '.join(known)})")
        try:
            sections[str(key)] = kind.parse(raw[key])
        except SectionError as exc:
            raise _problem(path, board_id, exc.field, exc.what) from None
    return sections


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
