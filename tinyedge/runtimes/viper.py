"""The `viper` runtime: the model as MicroPython code (tinyedge.viper), for the micropython framework.
Writes device/te_model.py, device/te_kernels.py and device/te_server.py; nothing is compiled in C."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.paths import TEMPLATES_DIR
from tinyedge.protocol import max_chunk_for_rx_buffer
from tinyedge.runtimes import FirmwareAllowance, Runtime, RuntimeSources
from tinyedge.tflite_model import TfliteModel
from tinyedge.viper.generator import MODEL_MODULE, generate_program
from tinyedge.viper.kernels import KERNEL_MODULE, kernels_for
from tinyedge.viper.mpy import compile_module

DEVICE_DIR = "device"
SERVER_FILE = "te_server.py"
STATS_FILE = "viper.json"


def compile_for(model: TfliteModel, board: Board) -> Any:
    """The model as MicroPython code; refuses (in one sentence) a model the viper runtime cannot serve."""
    return generate_program(model, board.id, board.clock_hz, max_chunk_for_rx_buffer(board.rx_buffer_bytes))


def write_sources(model: TfliteModel, board: Board, out_dir: Path, arena_bytes: int | None,
                  tflm_dir: Path | None, program: Any = None) -> RuntimeSources:
    program = program or compile_for(model, board)
    if arena_bytes is not None and arena_bytes < program.stats.arena_bytes:
        raise TinyedgeError(f"the viper runtime plans a {program.stats.arena_bytes}-byte arena for this model and "
                            f"cannot use {arena_bytes} bytes: drop --arena-kb.")
    dest = Path(out_dir) / DEVICE_DIR
    dest.mkdir(parents=True, exist_ok=True)
    (dest / f"{MODEL_MODULE}.py").write_text(program.model_source)
    (dest / f"{KERNEL_MODULE}.py").write_text(kernels_for(program.model_source))
    shutil.copyfile(TEMPLATES_DIR / "micropython" / SERVER_FILE, dest / SERVER_FILE)
    stats = {"arena_bytes": program.stats.arena_bytes, "constant_bytes": program.stats.constant_bytes,
             "macs": program.stats.macs, "op_count": program.stats.op_count}
    (dest / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n")
    sources = [f"{DEVICE_DIR}/{name}.py" for name in (MODEL_MODULE, KERNEL_MODULE, SERVER_FILE[:-3])]
    return RuntimeSources(sources=sources, arena_bytes=program.stats.arena_bytes)


def slot_modules(model: TfliteModel, board: Board, arch: str) -> tuple[bytes, bytes]:
    """The model's two modules (te_model, te_kernels) compiled by mpy-cross for `arch`: what an update
    puts into a MicroPython board's slot."""
    program = compile_for(model, board)
    with tempfile.TemporaryDirectory(prefix="tinyedge-slot-") as folder:
        built = []
        for name, source in ((MODEL_MODULE, program.model_source), (KERNEL_MODULE, kernels_for(program.model_source))):
            path = Path(folder) / f"{name}.py"
            path.write_text(source)
            built.append(compile_module(path, Path(folder) / f"{name}.mpy", arch).read_bytes())
    return built[0], built[1]


class ViperRuntime(Runtime):
    name = "viper"
    slot_content = "module"

    def check(self, model: TfliteModel, board: Board, model_name: str, allowance: FirmwareAllowance,
              tflm_dir: Path | None = None) -> Any:
        return compile_for(model, board)

    def write_sources(self, model: TfliteModel, board: Board, out_dir: Path, arena_bytes: int | None,
                      tflm_dir: Path | None, checked: Any = None) -> RuntimeSources:
        return write_sources(model, board, out_dir, arena_bytes, tflm_dir, checked)


RUNTIME = ViperRuntime()
