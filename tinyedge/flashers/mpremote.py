"""The `mpremote` flasher: MicroPython boards. Reads the board's .mpy format and free heap, refuses what
it cannot load or hold, copies the built .mpy modules (mpremote skips unchanged ones), starts the
protocol server from the raw REPL and yields the port; leaving the context quits the server and hands
the REPL back. The `micropython-unix` board (profile `emulator: {kind: micropython-unix}`) is the unix
port behind tinyedge.viper.bridge's pseudo-terminal, started here and stopped on exit."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinyedge.boards import Board
from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.ports import find_board_port, is_device_path, wait_for_port
from tinyedge.processes import serving
from tinyedge.project import Project
from tinyedge.sections import MicropythonSettings, Uf2Settings
from tinyedge.tools import Tool
from tinyedge.viper.board import check_fits, copy_files, read_facts, start_server, stop_server
from tinyedge.viper.bridge import SERVING_MARKER
from tinyedge.viper.firmware import install_micropython
from tinyedge.viper.mpy import MpyFormat, check_board_loads

BOARD_FS_DIR = "board-fs"


def is_unix_board(board: Board) -> bool:
    return board.emulator_kind == "micropython-unix"


@contextmanager
def _unix_board(project: Project) -> Iterator[str]:
    heap = project.board.settings(MicropythonSettings).heap_bytes
    fs_dir = project.dir / BOARD_FS_DIR
    fs_dir.mkdir(exist_ok=True)
    with serving([sys.executable, "-m", "tinyedge.viper.bridge", "--heap", str(heap), "--dir", str(fs_dir)],
                 SERVING_MARKER, 15.0, "the MicroPython unix-port bridge") as pty:
        yield pty


class MpremoteFlasher(Flasher):
    name = "mpremote"
    sections = (MicropythonSettings, Uf2Settings)
    options = frozenset({"firmware"})

    def will_emulate(self, board: Board, port: str | None) -> bool:
        return is_unix_board(board)

    def tools(self, board: Board) -> list[Tool]:
        # mpremote is a tinyedge dependency; its script sits beside our Python.
        return [Tool("mpremote", str(Path(sys.executable).parent / "mpremote"),
                     f"{sys.executable} -m pip install mpremote", ("version",))]

    @contextmanager
    def flash(self, project: Project, port: str | None, progress: ProgressCallback | None = None,
              firmware: Path | None = None) -> Iterator[str]:
        board = project.board
        if firmware is not None and is_unix_board(board):
            raise TinyedgeError(f"the {board.id} board runs MicroPython from PyPI's unix port: drop --firmware.")
        if is_unix_board(board):
            if port:
                raise TinyedgeError(f"the {board.id} board is MicroPython's unix port on a local pseudo-terminal: "
                                    "drop --port.")
            with _unix_board(project) as url:
                yield from self._serve(project, url, progress)
            return
        url = port or find_board_port(board)
        if firmware is not None:
            if progress:
                progress(0, 1, f"installing MicroPython from {firmware.name}")
            done = install_micropython(board, url, firmware)
            if progress:
                progress(1, 1, done)
            if is_device_path(url) and not wait_for_port(url, timeout_s=15.0):
                raise DeviceError(f"{url} did not come back after MicroPython was installed: replug the board "
                                  "and run again without --firmware.")
        yield from self._serve(project, url, progress)

    def _serve(self, project: Project, url: str, progress: ProgressCallback | None) -> Iterator[str]:
        board = project.board
        mpy = json.loads(project.artifact("mpy_format").read_text())
        installer = board.settings(MicropythonSettings).installer
        facts = read_facts(url, board.baud, installer)
        check_board_loads(facts.mpy, MpyFormat(mpy["version"], mpy["sub_version"], mpy["arch"]))
        check_fits(facts.mem_free, int(mpy["module_bytes"]), project.arena_bytes, board.id)
        files = [project.artifact(Path(s).stem) for s in project.extra.get("sources", [])]
        if progress:
            progress(0, len(files), f"copying {len(files)} modules with mpremote")
        copied, unchanged = copy_files(url, files)
        project.extra["flash"] = {"copied": copied, "unchanged": unchanged, "mem_free": facts.mem_free,
                                  "micropython": facts.version, "platform": facts.platform}
        project.save()
        if progress:
            progress(len(files), len(files), f"copied {copied}, {unchanged} unchanged; starting the server")
        start_server(url, board.baud)
        try:
            yield url
        finally:
            stop_server(url, board.baud)


FLASHER = MpremoteFlasher()
