"""Typed sections of a board profile: one frozen dataclass per optional section of `boards.yaml`.

Each class is the one place that section's fields, types and defaults are written down. `boards.py`
parses every section a profile has when the file loads (a typo or a wrong type is reported then, with
the board, the field and what is wrong); plug-ins read `board.settings(EsptoolSettings)`, never a raw
dict. A plug-in class names the sections it reads in `sections`; a test checks it reads no other.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, TypeVar

from tinyedge.uf2 import RP2040_FAMILY_ID, RP2040_FLASH_BASE

USB_ID = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}$")
URL = re.compile(r"^https?://\S+$")

S = TypeVar("S", bound="Section")


class SectionError(ValueError):
    """A field of a section is wrong: `field` is its dotted name, the message says what is wrong."""

    def __init__(self, field: str, what: str) -> None:
        super().__init__(what)
        self.field = field
        self.what = what


@dataclass(frozen=True)
class Section:
    """Base of every profile section. `name` is the section's key in a profile."""

    name: ClassVar[str] = ""

    @classmethod
    def parse(cls: type[S], raw: Any, where: str | None = None) -> S:
        where = where or cls.name
        if not isinstance(raw, dict):
            raise SectionError(where, f"must be a mapping of fields (got {raw!r})")
        hints = _hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(map(str, raw)) - known)
        if unknown:
            raise SectionError(f"{where}.{unknown[0]}", f"is not a field of `{cls.name or where}` "
                                                        f"(its fields: {', '.join(sorted(known))})")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in raw:
                values[f.name] = _convert(raw[f.name], hints[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SectionError(f"{where}.{f.name}", "is missing")
        section = cls(**values)
        section.check(where)
        return section

    @classmethod
    def required(cls) -> bool:
        """A section is required by the plug-ins that read it when one of its fields has no default."""
        return any(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   for f in dataclasses.fields(cls))

    def check(self, where: str) -> None:
        """Checks across fields, or beyond a field's type; raise SectionError."""


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(value: Any, kind: Any, where: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where)
    if isinstance(kind, type) and issubclass(kind, Section):
        return kind.parse(value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise SectionError(where, f"must be a list (got {value!r})")
        return tuple(_convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise SectionError(where, f"must be a mapping (got {value!r})")
        return {str(k): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if kind is Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SectionError(where, f"must be a {kind.__name__} (got {value!r})")
    return value


def _usb_id(value: str | None, where: str) -> None:
    if value is not None and not USB_ID.match(value):
        raise SectionError(where, f"{value!r} is not a VID:PID pair such as '2E8A:000A'")


# --- bare-metal boards (baremetal framework, qemu flasher) ----------------------------------------


@dataclass(frozen=True)
class Region(Section):
    origin: int
    length: int


@dataclass(frozen=True)
class MemorySettings(Section):
    """The linker script's memory map."""

    name: ClassVar[str] = "memory"
    flash: Region
    ram: Region
    stack_bytes: int = 8192


@dataclass(frozen=True)
class ToolchainSettings(Section):
    """The bare-metal GCC: its family name, install line, and the C library's specs."""

    name: ClassVar[str] = "baremetal"
    family: str
    install: str
    prefix: str = ""            # the GCC prefix, when the profile's `toolchain` names another framework's tool
    cpp_package: str = ""
    specs: tuple[str, ...] = ()
    link_specs: tuple[str, ...] = ()


@dataclass(frozen=True)
class UartSettings(Section):
    name: ClassVar[str] = "uart"
    driver: str = ""
    base: int | None = None


@dataclass(frozen=True)
class TimerSettings(Section):
    """The port's tick: `hz` is the rate its counter ticks at (the core clock when absent)."""

    name: ClassVar[str] = "timer"
    driver: str = ""
    hz: int | None = None


@dataclass(frozen=True)
class EmulatorSettings(Section):
    """An emulated board: `kind` names the emulator (qemu, simavr, micropython-unix, …); the other fields
    are what that emulator needs (QEMU: program, machine, install, args; simavr: bootloader_hex)."""

    name: ClassVar[str] = "emulator"
    kind: str
    program: str = ""
    machine: str = ""
    install: str = ""
    args: tuple[str, ...] = ()
    bootloader_hex: str = ""
    package: str = ""           # an npm package (rp2040js@1.4.1), installed into `dir`
    dir: str = ""
    node_install: str = ""


# --- ESP32 (espidf framework, esptool flasher) -------------------------------------------------


@dataclass(frozen=True)
class EsptoolSettings(Section):
    name: ClassVar[str] = "esptool"
    chip: str = "esp32"
    flash_size: str = ""
    flash_baud: int = 460800
    offsets: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def app_offset(self) -> int:
        return self.offsets.get("app", 0x10000)


@dataclass(frozen=True)
class EspidfSettings(Section):
    name: ClassVar[str] = "espidf"
    target: str = ""


@dataclass(frozen=True)
class StoreSettings(Section):
    """The flash a board's persistent store (firmware/protocol/te_store.h) takes for the lifecycle's boot record
    and model slots: `bytes` of it, which updatable firmware cannot use for code, backed by the port's
    `te_store_<source>.c` (default: the port's own name, as te_store_rp2040.c)."""

    name: ClassVar[str] = "store"
    bytes: int
    source: str = ""

    def check(self, where: str) -> None:
        if self.bytes <= 0 or self.bytes % 4096:
            raise SectionError(f"{where}.bytes", f"must be a positive multiple of 4096 (got {self.bytes})")
        if self.source and not re.fullmatch(r"[a-z0-9_]+", self.source):
            raise SectionError(f"{where}.source",
                               f"must name a te_store_<source>.c: lower-case letters, digits, _ (got {self.source!r})")


# --- Arduino, PlatformIO, UF2, AVR --------------------------------------------------------------


@dataclass(frozen=True)
class ArduinoSettings(Section):
    name: ClassVar[str] = "arduino"
    fqbn: str = ""
    core: str = ""
    index_url: str | None = None
    tflm_library: str | None = None
    tflm_header: str | None = None
    upload_tool: str = ""
    touch_1200bps: bool = True
    bootloader_usb_ids: tuple[str, ...] | None = None

    def check(self, where: str) -> None:
        if self.index_url is not None and not URL.match(self.index_url):
            raise SectionError(f"{where}.index_url", f"{self.index_url!r} is not an http(s) URL")
        for uid in self.bootloader_usb_ids or ():
            _usb_id(uid, f"{where}.bootloader_usb_ids")


@dataclass(frozen=True)
class PlatformioSettings(Section):
    name: ClassVar[str] = "platformio"
    platform: str = ""
    board: str = ""
    framework: str = ""
    core: str | None = None
    f_cpu: str | None = None
    filesystem_size: str | None = None
    tflm_header: str | None = None

    def board_options(self) -> dict[str, str]:
        """The keys that become `board_*` options, e.g. core: earlephilhower -> board_build.core."""
        options = {"core": "board_build.core", "f_cpu": "board_build.f_cpu",
                   "filesystem_size": "board_build.filesystem_size"}
        return {option: getattr(self, key) for key, option in options.items() if getattr(self, key) is not None}


@dataclass(frozen=True)
class Uf2Settings(Section):
    """A board flashed by copying a UF2 file onto its boot drive."""

    name: ClassVar[str] = "uf2"
    volume_label: str = "RPI-RP2"
    family_id: int = RP2040_FAMILY_ID
    flash_base: int = RP2040_FLASH_BASE
    running_usb_id: str | None = None

    def check(self, where: str) -> None:
        _usb_id(self.running_usb_id, f"{where}.running_usb_id")


@dataclass(frozen=True)
class AvrSettings(Section):
    name: ClassVar[str] = "avr"
    mcu: str = "atmega328p"
    avrdude_part: str = "m328p"
    avrdude_programmer: str = "arduino"
    upload_baud: int = 115200


# --- MicroPython boards (micropython framework, mpremote flasher) ------------------------------


@dataclass(frozen=True)
class MicropythonSettings(Section):
    """`arch` for mpy-cross, `heap_bytes` the budget (a fresh board's gc.mem_free()), `installer` how
    MicroPython itself gets on the board (esptool with `chip` and `firmware_offset`, or uf2)."""

    name: ClassVar[str] = "micropython"
    arch: str
    heap_bytes: int
    installer: str = ""
    chip: str = "esp32"
    firmware_offset: int = 0x1000


# --- energy (validate's and the benchmarks' energy_uj_estimate) --------------------------------


@dataclass(frozen=True)
class EnergySettings(Section):
    """The chip datasheet's run-mode current at `supply_v` and `clock_hz`, and the `source` it is from."""

    name: ClassVar[str] = "energy"
    run_current_ma: float
    supply_v: float
    clock_hz: int | None = None
    source: str = ""

    @property
    def watts(self) -> float:
        return self.run_current_ma / 1000 * self.supply_v

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Route(Section):
    """`by_runtime.<runtime>`: a runtime built another way than the board's default framework."""

    framework: str
    port: str = ""


SECTIONS: dict[str, type[Section]] = {cls.name: cls for cls in (EnergySettings,
    MemorySettings, ToolchainSettings, UartSettings, TimerSettings, EmulatorSettings, EsptoolSettings,
    EspidfSettings, ArduinoSettings, PlatformioSettings, Uf2Settings, AvrSettings, MicropythonSettings,
    StoreSettings)}
"""Every optional section a profile may have, by its key."""
