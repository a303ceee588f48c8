"""The whole chain in one call, as `tinyedge deploy` runs it: quantize (a float model), generate the
firmware around the model, build it, flash it, and, when the plan has data, validate on the board and
write the reports the plan names. `deploy` returns once any emulator is stopped; `deployed` yields
while the board (or its emulator) is still live."""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from tinyedge.events import CountProgress, ProgressCallback, StepReporter
from tinyedge.boards import get_board
from tinyedge.build import BuildFigures, build
from tinyedge.errors import TinyedgeError
from tinyedge.flash import counts_instructions, flash
from tinyedge.generate import generate
from tinyedge.onnx_import import OnnxModel, is_onnx
from tinyedge.outputs import check_output_dir
from tinyedge.reference import check_pinned_reference
from tinyedge.places import port_or_place
from tinyedge.protocol import Device, check_link_options
from tinyedge.quantize import input_layout_note, load_array, quantize_model
from tinyedge.tflite_model import TFLITE_IDENTIFIER, load_tflite
from tinyedge.tflm_tree import fit_arena
from tinyedge.validate import (ReportFiles, ValidationRun, infer_timeout_for, load_inputs, quantized_inputs,
                               validate_and_report)


# Stated margin over the arena fitted on the target, so a later firmware change (stack, alignment)
# does not tip AllocateTensors over.
FIT_ARENA_MARGIN = 0.10
FIT_ARENA_MIN_MARGIN = 256


@dataclass
class DeployPlan:
    model: Path
    board: str
    out_dir: Path | None = None       # default: tinyedge-out/MODEL-BOARD
    calibration: Path | None = None
    data: Path | list[Path] | None = None   # one array per model input (or one .npz keyed by input name)
    labels: Path | None = None
    runtime: str | None = None
    port: str | None = None
    tflm_dir: Path | None = None
    arena_kb: int | None = None
    fit_arena: bool = False
    firmware: Path | None = None      # MicroPython boards: install MicroPython from this file first
    icount: bool | None = None        # QEMU: -icount shift=0 (None: $TINYEDGE_QEMU_ICOUNT decides)
    tolerance_lsb: int = 0            # validation: allowed |Δ| per output (optimized kernels)
    json: Path | None = None          # validation reports to write
    junit: Path | None = None
    plot: Path | None = None
    timeout: float | None = None      # seconds to wait for each reply (default: from the model's MACs)
    place: str | None = None          # a labgrid place to hold while deploying; its serial port is the port
    coordinator: str | None = None
    reset_state_each_inference: bool = False   # the board starts every inference from the model's first state

    def __post_init__(self) -> None:
        for name in ("model", "out_dir", "calibration", "labels", "tflm_dir", "firmware", "json", "junit", "plot"):
            if getattr(self, name) is not None:   # paths may be given as strings from Python
                setattr(self, name, Path(getattr(self, name)))
        if self.data is not None:
            self.data = [Path(self.data)] if isinstance(self.data, (str, Path)) else [Path(p) for p in self.data]
        self.out_dir = self.out_dir or Path("tinyedge-out") / f"{self.model.stem}-{self.board}"

    @property
    def validation_data(self) -> list[Path] | None:
        """What the board is validated on: --data, else the calibration inputs (None: flash only)."""
        return self.data or ([self.calibration] if self.calibration else None)

    @property
    def inputs(self) -> dict[str, Path | None]:
        """The files the deploy reads, by the flag that names them."""
        return {"MODEL": self.model, "--calibration": self.calibration, "--data": self.data, "--labels": self.labels,
                "--firmware": self.firmware, "--tflm-dir": self.tflm_dir}

    @property
    def work_files(self) -> dict[str, Path | None]:
        """The files the deploy writes in its -o directory, besides the reports and the firmware project."""
        data = self.validation_data or []
        return {f"-o ({name})": self.out_dir / name for name in (
            f"{self.model.stem}_int8.tflite", *(f"{path.stem}_{layout}.npy" for path in data for layout in ("nhwc", "nchw")))}

    @property
    def reports(self) -> ReportFiles:

        return ReportFiles(self.json, self.junit, self.plot, self.out_dir / "validate.jsonl")


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
    icount: bool | None = None      # whether QEMU counted instructions (None: not a QEMU board)
    steps: dict[str, float] = field(default_factory=dict)
    validation: ValidationRun | None = None   # the verdict on the board, when the plan has data
    float_reference: str | None = None   # what ran the float model deploy quantized (TensorFlow, ONNX Runtime)

    @property
    def passed(self) -> bool | None:
        return None if self.validation is None else self.validation.passed




def is_tflite(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        head = handle.read(8)
    return head[4:8] == TFLITE_IDENTIFIER


def ensure_int8(plan: DeployPlan, report: StepReporter) -> tuple[Path, str | None]:
    """The .tflite to deploy: the given one, or the float model quantized with --calibration; and what
    ran the float model when it was quantized here (None for a .tflite)."""
    if not plan.model.exists():
        raise TinyedgeError(f"{plan.model} does not exist: give a .tflite, a Keras .keras/.h5 file, a SavedModel directory "
                            "or an .onnx file.")
    if is_tflite(plan.model):
        return plan.model, None
    if plan.calibration is None:
        raise TinyedgeError(f"{plan.model} is a float model: give --calibration CAL.npy so it can be quantized to int8 first.")

    out = plan.out_dir / f"{plan.model.stem}_int8.tflite"
    data = load_array(plan.data[0], "validation data") if plan.data and len(plan.data) == 1 else None
    labels = load_array(plan.labels, "labels") if plan.labels and plan.data else None
    result = quantize_model(plan.model, load_array(plan.calibration, "calibration"), out, eval_data=data, labels=labels)
    lost = ""
    if result.accuracy:
        lost = f", accuracy {100 * result.accuracy['float']:.1f} % → {100 * result.accuracy['int8']:.1f} %"
    warnings = "".join(f"; warning: {warning}" for warning in result.warnings)
    warnings += "".join(f"; {rewrite}" for rewrite in result.rewrites)
    reference = "" if result.float_reference == "TensorFlow" else f" ({result.float_reference})"
    report("quantize", f"quantized to full int8: {result.float_bytes:,} → {result.int8_bytes:,} bytes, "
                       f"cosine {result.cosine:.4f} vs float{reference}{lost}{warnings}")
    return out, result.float_reference


def board_inputs(model: Path, data_paths: list[Path], out_dir: Path) -> tuple[list[Path], str | None]:
    """The validation inputs as the board takes them, and for an ONNX model the layout note for the report:
    arrays in the layout the ONNX model declares (NCHW) are transposed to the board's (NHWC) into out_dir.
    A .tflite's inputs are checked against the model now, before anything is built or flashed."""
    if is_tflite(model):
        tflite = load_tflite(model)
        quantized_inputs(tflite, load_inputs(data_paths, tflite))
    if not is_onnx(model):
        return data_paths, None
    onnx_model = OnnxModel(model)
    if len(data_paths) != 1:
        raise TinyedgeError(f"{model.name} takes one input but {len(data_paths)} --data arrays were given: give one.")
    data_path = data_paths[0]
    data = load_array(data_path, "validation data")
    note = input_layout_note(onnx_model, data)
    if not onnx_model.declared_layout(data):
        onnx_model.arrange(data, "validation", "--data")   # refuses a shape that fits neither layout
        return data_paths, note
    out_dir.mkdir(parents=True, exist_ok=True)
    board_data = out_dir / f"{data_path.stem}_{onnx_model.board_layout.lower()}.npy"
    np.save(board_data, onnx_model.arrange(data, "validation", "--data"))
    return [board_data], note


def arena_with_margin(fitted: int) -> int:
    margin = max(FIT_ARENA_MIN_MARGIN, math.ceil(fitted * FIT_ARENA_MARGIN))
    return (fitted + margin + 15) // 16 * 16


def fit_arena_on_target(url: str, baud: int = 115200, model: Path | None = None) -> int:

    with Device(url, baud=baud) as device:
        info = device.info()
        if model is not None:  # each probe runs the model once: wait for it as validate does

            device.infer_timeout = infer_timeout_for(load_tflite(model), info, device)
        if info.runtime != "tflm":
            raise TinyedgeError(f"--fit-arena applies to the tflm runtime; the {info.runtime} runtime plans its arena statically.")
        # Below the bytes TFLM reports in use nothing can work, and probing there makes kernels
        # dereference persistent buffers that could not be allocated: start the bisection at that figure.
        return fit_arena(device, low=int(info.arena_used), high=int(info.arena_size))


@dataclass
class ValidationInputs:
    """The plan's validation inputs as the board takes them."""
    data: list[Path]
    labels: Path | None
    float_model: Path | None      # the float model given, for its accuracy (with labels)
    layout: str | None            # an ONNX model's input layout note


def prepare(plan: DeployPlan) -> ValidationInputs | None:
    """Refuse, before any work, what cannot run (an --icount off QEMU, an output that cannot be
    written, inputs of the wrong shape); the validation inputs, or None for a plan without data."""
    check_link_options(timeout=plan.timeout)
    if plan.icount and get_board(plan.board).flasher != "qemu":
        raise TinyedgeError(f"--icount only applies to QEMU-emulated boards, not {plan.board}: drop it.")
    data = plan.validation_data
    if data is None and (plan.json or plan.junit or plan.plot):
        raise TinyedgeError("the reports describe a validation: give --data X.npy (or --calibration) to validate on.")
    plan.reports.prepare(plan.inputs, plan.work_files, {"-o": plan.out_dir / "firmware"})
    check_output_dir(plan.out_dir, "-o")
    if data is None:
        return None
    check_pinned_reference()   # before the build, not after it
    float_model = plan.model if plan.labels and not is_tflite(plan.model) else None
    board_data, layout = board_inputs(plan.model, data, plan.out_dir)
    return ValidationInputs(board_data, plan.labels, float_model, layout)


def no_report(step: str, message: str) -> None:
    """The StepReporter of a quiet deploy."""


@contextmanager
def deployed(plan: DeployPlan, report: StepReporter | None = None, notes: StepReporter | None = None,
             progress: ProgressCallback | None = None, on_built: BuildFigures | None = None,
             validation_progress: CountProgress | None = None) -> Iterator[DeployResult]:
    """Run every stage up to a flashed board, validated on it when the plan has data; yield while the
    board (or its emulator) is live. `report` hears each stage as it ends, `notes` what a stage says
    along the way (the runtime chosen, the labgrid place held), `on_built` the build's figures."""
    inputs = prepare(plan)
    if inputs is not None:   # a build or flash that fails from here on must not leave the last run's PASS on disk
        plan.reports.remove_stale()
    report = report or no_report
    notes = notes or no_report
    with port_or_place(plan.port, plan.place, plan.coordinator, say=lambda line: notes("place", line)) as port, \
            flashed(plan, port, report, notes, progress, on_built) as result:
        if inputs is not None:
            result.validation = validate_deployed(plan, result, inputs, report, validation_progress)
        yield result


def deploy(plan: DeployPlan, report: StepReporter | None = None, notes: StepReporter | None = None,
           progress: ProgressCallback | None = None, on_built: BuildFigures | None = None,
           validation_progress: CountProgress | None = None) -> DeployResult:
    """`tinyedge deploy` from Python: every stage, validated when the plan has data, its reports
    written; returns once any emulator is stopped. The verdict is `result.validation`: a failed or
    interrupted run is returned, not raised (`result.validation.raise_for_verdict()` raises as the CLI exits)."""
    with deployed(plan, report, notes, progress, on_built, validation_progress) as result:
        return result


def validate_deployed(plan: DeployPlan, result: DeployResult, inputs: ValidationInputs, report: StepReporter,
                      progress: CountProgress | None) -> ValidationRun:

    extra: dict[str, Any] = {}
    if plan.fit_arena:
        extra = {"arena_fitted_bytes": result.fitted_arena, "arena_built_bytes": result.arena_with_margin}
    if result.float_reference:
        extra["float_reference"] = result.float_reference
    if inputs.layout:
        extra["input_layout"] = inputs.layout
        report("layout", f"the board is fed {inputs.layout}")
    return validate_and_report(result.port, result.tflite, inputs.data, inputs.labels, inputs.float_model,
                               plan.tolerance_lsb, plan.reports, baud=result.baud, timeout=plan.timeout,
                               icount=result.icount, extra=extra, progress=progress)


@contextmanager
def flashed(plan: DeployPlan, port: str | None, report: StepReporter, notes: StepReporter,
            progress: ProgressCallback | None = None,
            on_built: BuildFigures | None = None) -> Iterator[DeployResult]:
    """Run every stage up to a flashed board; yield while the board (or its emulator) is live."""

    started = time.monotonic()
    tflite, float_reference = ensure_int8(plan, report)
    project_dir = plan.out_dir / "firmware"
    project = generate(tflite, plan.board, project_dir, runtime=plan.runtime, tflm_dir=plan.tflm_dir,
                       arena_kb=plan.arena_kb, report=notes, reset_state_each_inference=plan.reset_state_each_inference)
    if project.extra.get("model_file"):   # the model marked to reset its state, which the board runs
        tflite = project_dir / project.extra["model_file"]
    report("generate", f"generated {project.runtime} firmware for {plan.board} in {project_dir}")
    built = build(project_dir, on_built)
    report("build", f"built {built.elf.name}: flash {built.flash_bytes:,} B, RAM {built.ram_bytes:,} B in {built.seconds:.1f} s")
    result = DeployResult(tflite, project_dir, project.runtime, built, baud=project.board.baud,
                          float_reference=float_reference)
    if plan.fit_arena:
        with flash(project_dir, port, progress, icount=plan.icount) as url:
            result.fitted_arena = fit_arena_on_target(url, project.board.baud, tflite)
        result.arena_with_margin = arena_with_margin(result.fitted_arena)
        report("fit-arena", f"smallest working arena on the target: {result.fitted_arena:,} B; rebuilding with "
                            f"{result.arena_with_margin:,} B (+{FIT_ARENA_MARGIN:.0%}, at least {FIT_ARENA_MIN_MARGIN} B)")
        project = generate(tflite, plan.board, project_dir, runtime=project.runtime, tflm_dir=plan.tflm_dir,
                           report=notes, arena_bytes=result.arena_with_margin)   # tflite: already marked
        result.build = build(project_dir, on_built)
    result.icount = counts_instructions(project.board, plan.icount)
    with flash(project_dir, port, progress, icount=plan.icount, firmware=plan.firmware) as url:
        result.port = url
        report("flash", f"flashed; the board answers on {url}")
        result.steps["total"] = time.monotonic() - started
        yield result
