"""The whole chain in one call: quantize (for a float model), emit, generate, build, flash, validate."""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from tinyedge.errors import TinyedgeError
from tinyedge.tflite_model import TFLITE_IDENTIFIER

# Stated margin over the arena fitted on the target, so a later firmware change (stack, alignment)
# does not tip AllocateTensors over.
FIT_ARENA_MARGIN = 0.10
FIT_ARENA_MIN_MARGIN = 256


@dataclass
class DeployPlan:
    model: Path
    board: str
    out_dir: Path
    calibration: Path | None = None
    data: Path | None = None
    labels: Path | None = None
    runtime: str | None = None
    port: str | None = None
    tflm_dir: Path | None = None
    arena_kb: int | None = None
    fit_arena: bool = False
    firmware: Path | None = None      # MicroPython boards: install MicroPython from this file first


@dataclass
class DeployResult:
    tflite: Path
    project_dir: Path
    runtime: str
    build: Any = None
    port: str | None = None
    baud: int | None = None   # the board profile's: what the host opens the port with
    fitted_arena: int | None = None
    arena_with_margin: int | None = None
    steps: dict[str, float] = field(default_factory=dict)


StepReporter = Callable[[str, str], None]   # (step name, message when done)


def is_tflite(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        head = handle.read(8)
    return head[4:8] == TFLITE_IDENTIFIER


def ensure_int8(plan: DeployPlan, report: StepReporter) -> Path:
    """The .tflite to deploy: the given one, or the float model quantized with --calibration."""
    if not plan.model.exists():
        raise TinyedgeError(f"{plan.model} does not exist: give a .tflite, a Keras .keras/.h5 file, a SavedModel directory "
                            "or an .onnx file.")
    if is_tflite(plan.model):
        return plan.model
    if plan.calibration is None:
        raise TinyedgeError(f"{plan.model} is a float model: give --calibration CAL.npy so it can be quantized to int8 first.")
    from tinyedge.quantize import load_array, quantize_model

    out = plan.out_dir / f"{plan.model.stem}_int8.tflite"
    data = load_array(plan.data, "validation data") if plan.data else None
    labels = load_array(plan.labels, "labels") if plan.labels and plan.data else None
    result = quantize_model(plan.model, load_array(plan.calibration, "calibration"), out, eval_data=data, labels=labels)
    lost = ""
    if result.accuracy:
        lost = f", accuracy {100 * result.accuracy['float']:.1f} % → {100 * result.accuracy['int8']:.1f} %"
    reference = "" if result.float_reference == "TensorFlow" else f" ({result.float_reference})"
    report("quantize", f"quantized to full int8: {result.float_bytes:,} → {result.int8_bytes:,} bytes, "
                       f"cosine {result.cosine:.4f} vs float{reference}{lost}")
    return out


def board_inputs(model: Path, data_path: Path, out_dir: Path) -> tuple[Path, str | None]:
    """The validation inputs as the board takes them, and for an ONNX model the layout note for the report:
    arrays in the layout the ONNX model declares (NCHW) are transposed to the board's (NHWC) into out_dir."""
    from tinyedge.onnx_import import is_onnx

    if not is_onnx(model):
        return data_path, None
    import numpy as np

    from tinyedge.onnx_import import OnnxModel
    from tinyedge.quantize import input_layout_note, load_array

    onnx_model = OnnxModel(model)
    data = load_array(data_path, "validation data")
    note = input_layout_note(onnx_model, data)
    if not onnx_model.declared_layout(data):
        onnx_model.arrange(data, "validation", "--data")   # refuses a shape that fits neither layout
        return data_path, note
    out_dir.mkdir(parents=True, exist_ok=True)
    board_data = out_dir / f"{data_path.stem}_{onnx_model.board_layout.lower()}.npy"
    np.save(board_data, onnx_model.arrange(data, "validation", "--data"))
    return board_data, note


def arena_with_margin(fitted: int) -> int:
    margin = max(FIT_ARENA_MIN_MARGIN, math.ceil(fitted * FIT_ARENA_MARGIN))
    return (fitted + margin + 15) // 16 * 16


def fit_arena_on_target(url: str, baud: int = 115200, model: Path | None = None) -> int:
    from tinyedge.protocol import Device
    from tinyedge.tflm import fit_arena

    with Device(url, baud=baud) as device:
        info = device.info()
        if model is not None:  # each probe runs the model once: wait for it as validate does
            from tinyedge.tflite_model import load_tflite
            from tinyedge.validate import infer_timeout_for

            device.infer_timeout = infer_timeout_for(load_tflite(model), info, device)
        if info.runtime != "tflm":
            raise TinyedgeError(f"--fit-arena applies to the tflm runtime; the {info.runtime} runtime plans its arena statically.")
        # Below the bytes TFLM reports in use nothing can work, and probing there makes kernels
        # dereference persistent buffers that could not be allocated: start the bisection at that figure.
        return fit_arena(device, low=int(info.arena_used), high=int(info.arena_size))


@contextmanager
def deploy(plan: DeployPlan, report: StepReporter, console: Any = None,
           progress: Callable[[int, int, str], None] | None = None) -> Iterator[DeployResult]:
    """Run every stage up to a flashed board; yield while the board (or its emulator) is live."""
    from tinyedge.build import build
    from tinyedge.flash import flash
    from tinyedge.generate import generate

    plan.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tflite = ensure_int8(plan, report)
    project_dir = plan.out_dir / "firmware"
    project = generate(tflite, plan.board, project_dir, runtime=plan.runtime, tflm_dir=plan.tflm_dir,
                       arena_kb=plan.arena_kb, console=console)
    report("generate", f"generated {project.runtime} firmware for {plan.board} in {project_dir}")
    built = build(project_dir, console=console)
    report("build", f"built {built.elf.name}: flash {built.flash_bytes:,} B, RAM {built.ram_bytes:,} B in {built.seconds:.1f} s")
    result = DeployResult(tflite, project_dir, project.runtime, built, baud=project.board.baud)
    if plan.fit_arena:
        with flash(project_dir, plan.port, progress) as url:
            result.fitted_arena = fit_arena_on_target(url, project.board.baud, tflite)
        result.arena_with_margin = arena_with_margin(result.fitted_arena)
        report("fit-arena", f"smallest working arena on the target: {result.fitted_arena:,} B; rebuilding with "
                            f"{result.arena_with_margin:,} B (+{FIT_ARENA_MARGIN:.0%}, at least {FIT_ARENA_MIN_MARGIN} B)")
        project = generate(tflite, plan.board, project_dir, runtime=project.runtime, tflm_dir=plan.tflm_dir,
                           console=console, arena_bytes=result.arena_with_margin)
        result.build = build(project_dir, console=console)
    with flash(project_dir, plan.port, progress, firmware=plan.firmware) as url:
        result.port = url
        report("flash", f"flashed; the board answers on {url}")
        result.steps["total"] = time.monotonic() - started
        yield result
