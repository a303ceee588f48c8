"""Flash an ESP-IDF build through esptool's Python API: detect the chip, load the stub, write the
bootloader, partition table and app at the board profile's offsets, verify each by MD5, hard-reset.

The images and their offsets come from the project's build record (`tinyedge build` notes what ESP-IDF
built, at the board profile's offsets).

Needs esptool 5.4 or newer: `attach_flash`, `run_stub` and `reset_chip` came with 5.0, logging through
`esp_pylib.logger` with 5.4 (pyproject.toml pins it; an older one is refused in one sentence).
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tinyedge.boards import Board
from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.ports import find_board_port, is_device_path, wait_for_port
from tinyedge.project import Project
from tinyedge.sections import EsptoolSettings
from tinyedge.tools import Tool

ROLES = ("bootloader", "partition_table", "app")


@dataclass(frozen=True)
class EspImage:
    role: str
    offset: int
    path: Path

    @property
    def label(self) -> str:
        return f"{self.role.replace('_', ' ')} @ {self.offset:#x}"


def esp_images(project: Project) -> list[EspImage]:
    """The bootloader, partition table and app of the project's build, at the offsets it recorded."""
    return [EspImage(role, project.artifact_offset(role), project.artifact(role)) for role in ROLES]


def _esptool_logger(progress: ProgressCallback | None, label: list[str]) -> Any:
    """An esptool logger that keeps its text for error reports and turns its bars into progress calls."""
    from esp_pylib.logger import EspLogBase

    class TinyedgeEspLog(EspLogBase):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def print(self, *args: Any, **kwargs: Any) -> None:
            self.lines.append(" ".join(str(a) for a in args))

        def err(self, *args: Any, suggestion: str | None = None) -> None:
            self.print(*args)

        warn = note = hint = debug = err  # type: ignore[assignment]

        def set_verbosity(self, mode: int | str) -> None:
            pass

        def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "", suffix: str = "",
                         bar_length: int = 30) -> None:
            if progress is not None:
                progress(cur_iter, total_iters, label[0])

    return TinyedgeEspLog()


@contextmanager
def _quiet_esptool(progress: ProgressCallback | None, label: list[str]) -> Iterator[Any]:
    from esp_pylib.logger import EspLog

    previous = EspLog.instance
    logger = _esptool_logger(progress, label)
    EspLog.instance = logger
    try:
        yield logger
    finally:
        EspLog.instance = previous


def chip_name(chip: str) -> str:
    from esptool.targets import CHIP_DEFS

    if chip not in CHIP_DEFS:
        raise TinyedgeError(f"esptool does not know the chip '{chip}': fix esptool.chip in boards.yaml "
                            f"(one of {', '.join(CHIP_DEFS)}).")
    return CHIP_DEFS[chip].CHIP_NAME


ESPTOOL_MINIMUM = (5, 4)


def require_esptool_version(installed: str) -> None:
    """Refuse an esptool older than the API this flasher drives."""
    numbers = tuple(int(part) for part in re.findall(r"\d+", installed)[:2])
    if numbers < ESPTOOL_MINIMUM:
        wanted = ".".join(map(str, ESPTOOL_MINIMUM))
        found = f"esptool {installed} is installed" if numbers else "esptool is not installed"
        raise TinyedgeError(f"{found} but tinyedge needs {wanted} or newer: "
                            f"run `{sys.executable} -m pip install 'esptool>={wanted}'`.")


def write_images(port: str, board: Board, images: list[EspImage],
                 progress: ProgressCallback | None = None) -> None:
    """Connect to the ROM loader on `port`, write every image and verify it, then hard-reset the chip."""
    try:
        require_esptool_version(importlib.metadata.version("esptool"))
    except importlib.metadata.PackageNotFoundError:
        require_esptool_version("none")
    from esptool.cmds import attach_flash, detect_chip, reset_chip, run_stub, write_flash
    from esptool.util import FatalError
    from serial import SerialException

    settings = board.settings(EsptoolSettings)
    expected = chip_name(settings.chip)
    flash_baud = settings.flash_baud
    label = ["connecting"]
    with _quiet_esptool(progress, label) as logger:
        try:
            connect_mode = "default-reset" if is_device_path(port) else "no-reset"
            with detect_chip(port, connect_mode=connect_mode) as esp:
                if esp.CHIP_NAME != expected:
                    raise TinyedgeError(f"{port} has an {esp.CHIP_NAME}, but board '{board.id}' is an {expected}: "
                                        "pass the --board that matches the chip.")
                esp = run_stub(esp)
                if flash_baud != esp._port.baudrate:
                    esp.change_baud(flash_baud)
                attach_flash(esp)
                for image in images:
                    label[0] = image.label
                    write_flash(esp, [(image.offset, str(image.path))], flash_mode="keep",
                                flash_freq="keep", flash_size="keep")
                label[0] = "reset"
                reset_chip(esp, "hard-reset")
        except (FatalError, SerialException, OSError) as exc:
            raise DeviceError(f"esptool could not flash the {board.name} on {port} during {label[0]} "
                              f"({_what_went_wrong(exc, logger.lines)}): hold BOOT, tap EN (RST) and try again, "
                              "or check --port.") from None


def _what_went_wrong(exc: Exception, esptool_lines: list[str]) -> str:
    """esptool's error, with the last thing it said before it (often the more telling part)."""
    text = str(exc).strip()
    detail = text.splitlines()[0] if text else type(exc).__name__
    last_said = next((line.strip() for line in reversed(esptool_lines) if line.strip()), "")
    return f"{detail}; {last_said}" if last_said and last_said not in detail else detail


class EsptoolFlasher(Flasher):
    name = "esptool"
    sections = (EsptoolSettings,)

    def tools(self, board: Board) -> list[Tool]:
        # esptool is a tinyedge dependency, driven through its Python API; its script sits beside our Python.
        script = Path(sys.executable).parent / "esptool"
        return [Tool("esptool", str(script), f"{sys.executable} -m pip install esptool", ("version",))]

    @contextmanager
    def flash(self, project: Project, port: str | None,
              progress: ProgressCallback | None = None) -> Iterator[str]:
        board = project.board
        images = esp_images(project)
        port = port or find_board_port(board)
        write_images(port, board, images, progress)
        if is_device_path(port):
            time.sleep(0.5)     # a native-USB chip drops off the bus on reset: let it go before waiting for it
        if not wait_for_port(port, timeout_s=10.0):
            raise DeviceError(f"{port} did not come back after the reset: reconnect the {board.name} "
                              "and run `tinyedge validate` with --port.")
        yield port


FLASHER = EsptoolFlasher()
