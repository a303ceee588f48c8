"""The `rp2040js` flasher: "flashing" the emulated Pico is starting Node on the packaged runner
(firmware/host_tools/rp2040js-runner/runner.mjs) with rp2040js, Wokwi's RP2040 emulator from npm, on the
build's UF2; the runner bridges UART0 to a local TCP port and the yielded URL is `socket://127.0.0.1:PORT`.
`firmware` runs a MicroPython UF2 instead (its REPL on USB CDC), which needs the RP2040 boot ROM the npm
package lacks: the user gives it in $TINYEDGE_RP2040_BOOTROM. With that ROM, the AOT image too boots as on
a real Pico (boot2's CRC checked, boot2 run); without it, at its vector table. The runner is owned:
stopped on exit, on Ctrl-C and with tinyedge."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.paths import HOST_TOOLS_DIR
from tinyedge.processes import serving
from tinyedge.project import Project
from tinyedge.sections import EmulatorSettings
from tinyedge.tools import Tool, require_tools
from tinyedge.uf2 import RP2040_FAMILY_ID, UF2_BLOCK_BYTES, UF2_FLAG_FAMILY_ID_PRESENT, UF2_MAGIC_START0

RUNNER = HOST_TOOLS_DIR / "rp2040js-runner" / "runner.mjs"
FLASH_FILE = "qspi_flash.bin"   # the emulated Pico's 2 MiB flash
READY_MARKER = "rp2040js: listening on "
DIR_ENV = "TINYEDGE_RP2040JS"
BOOTROM_ENV = "TINYEDGE_RP2040_BOOTROM"
START_TIMEOUT_S = 30.0


def emulator_facts(board: Board) -> EmulatorSettings:
    emulator = board.settings(EmulatorSettings)
    if not (emulator.package and emulator.dir and emulator.install and emulator.node_install):
        raise TinyedgeError(f"the {board.id} profile needs an `emulator` section with rp2040js's package, dir, install "
                            "and node_install lines: fix boards.yaml.")
    return emulator


def rp2040js_dir(board: Board) -> Path:
    """Where rp2040js is installed: $TINYEDGE_RP2040JS, else the profile's `emulator.dir` (./install.sh's)."""
    return Path(os.environ.get(DIR_ENV) or os.path.expanduser(emulator_facts(board).dir))


def uf2_family(image: Path) -> int | None:
    """The family id of the UF2's first block, or None when the file is no UF2 (or names no family)."""
    head = image.read_bytes()[:UF2_BLOCK_BYTES]
    if len(head) < UF2_BLOCK_BYTES:
        return None
    magic, _, flags, _, _, _, _, family = struct.unpack_from("<8I", head)
    if magic != UF2_MAGIC_START0 or not flags & UF2_FLAG_FAMILY_ID_PRESENT:
        return None
    return family


def require_rp2040_uf2(image: Path) -> None:
    if not image.is_file():
        raise TinyedgeError(f"{image} does not exist: give the path of a UF2 file.")
    family = uf2_family(image)
    if family != RP2040_FAMILY_ID:
        found = "is not a UF2 file" if family is None else f"is a UF2 for family 0x{family:08X}"
        raise TinyedgeError(f"{image} {found}, not for the RP2040 (family 0x{RP2040_FAMILY_ID:08X}): give the "
                            "UF2 built for a Raspberry Pi Pico (MicroPython's rp2-pico download).")


def given_bootrom() -> Path | None:
    """$TINYEDGE_RP2040_BOOTROM when it names a file."""
    value = os.environ.get(BOOTROM_ENV)
    return Path(value) if value and Path(value).is_file() else None


def bootrom_path() -> Path:
    path = given_bootrom()
    if path is None:
        raise TinyedgeError(f"running MicroPython in rp2040js needs the RP2040 boot ROM, which the npm package does "
                            f"not ship: set {BOOTROM_ENV} to a 16 KiB boot ROM image (rp2040js's repository has it "
                            "as demo/bootrom.ts; a Pico's ROM is documented in the RP2040 datasheet).")
    return path


def runner_command(board: Board, image: Path, bootrom: Path | None, serial: str = "uart0",
                   flash_file: Path | None = None) -> list[str]:
    command = ["node", str(RUNNER), "--rp2040js", str(rp2040js_dir(board)), "--image", str(image), "--port", "0",
               "--serial", serial]
    command += ["--flash-file", str(flash_file)] if flash_file is not None else []
    return command + (["--bootrom", str(bootrom)] if bootrom is not None else [])


class Rp2040jsFlasher(Flasher):
    name = "rp2040js"
    sections = (EmulatorSettings,)
    emulates = True
    options = frozenset({"firmware"})

    def tools(self, board: Board) -> list[Tool]:
        facts = emulator_facts(board)
        package = rp2040js_dir(board) / "node_modules" / "rp2040js" / "package.json"
        return [Tool("Node.js", "node", facts.node_install),
                Tool(facts.package, "rp2040js", facts.install, file=str(package))]

    @contextmanager
    def flash(self, project: Project, port: str | None, progress: ProgressCallback | None = None,
              firmware: Path | None = None) -> Iterator[str]:
        board = project.board
        if port:
            raise TinyedgeError(f"the {board.id} board is emulated by rp2040js and has no serial port: drop --port.")
        require_tools(self.tools(board), needed_for=board.name)
        image = Path(firmware) if firmware is not None else project.artifact("uf2")
        require_rp2040_uf2(image)
        bootrom = bootrom_path() if firmware is not None else given_bootrom()
        # The emulated QSPI flash is a file in the project: what the firmware stores there (model slots, the
        # boot record, MicroPython's filesystem) survives a restart of the emulator, as on a Pico.
        flash_file = project.dir / FLASH_FILE
        command = runner_command(board, image, bootrom, "usb-cdc" if firmware is not None else "uart0", flash_file)
        if progress:
            progress(0, 1, f"starting rp2040js on {image.name}")
        with serving(command, READY_MARKER, START_TIMEOUT_S, "rp2040js") as address:
            if progress:
                progress(1, 1, "rp2040js running")
            yield f"socket://{address}"


FLASHER = Rp2040jsFlasher()
