"""The `aot` runtime: the model compiled ahead of time to C99 (tinyedge.aot), with the small kernel
library of firmware/aot/. No interpreter, no flatbuffer on the board, one statically planned arena."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tinyedge.aot.compiler import (
    DSP_FILES, KERNEL_FILES, MODEL_HEADER, MODEL_SOURCE, NONLINEAR_FILES, AotProgram, AotStats, compile_model,
)
from tinyedge.aot.m0plus import M0PLUS_ARCHITECTURES, M0PLUS_FILES, use_m0plus_kernels, uses_m0plus_kernels
from tinyedge.aot.residual import RESIDUAL_FILES
from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.ops import registry
from tinyedge.paths import FIRMWARE_DIR
from tinyedge.runtimes import FirmwareAllowance, Runtime, RuntimeSources, check_model_fits_flash
from tinyedge.tflite_model import TfliteModel

SUBDIR = "aot"


def copy_kernel_sources(dest: Path, program: AotProgram) -> list[str]:
    """Copy the kernel library files the program needs into dest; returns their names."""
    names = list(KERNEL_FILES)
    if program.uses_nonlinear:
        if not all((FIRMWARE_DIR / "aot" / n).exists() for n in NONLINEAR_FILES):
            raise TinyedgeError("the AOT kernels for nonlinear ops are missing from firmware/aot: "
                                "reinstall tinyedge or build with `--runtime tflm`.")
        names += NONLINEAR_FILES
    if program.uses_dsp:
        names += DSP_FILES
    if program.uses_residual:
        names += RESIDUAL_FILES
    if uses_m0plus_kernels(program):
        names += M0PLUS_FILES
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(FIRMWARE_DIR / "aot" / name, dest / name)
    return names


# Architectures whose cores all have the DSP extension (SXTB16, SMLAD): Cortex-M4, M7.
DSP_ARCHITECTURES = frozenset({"armv7e-m"})


def has_dsp(board: Board) -> bool:
    """The board's architecture has the Arm DSP extension, so the AOT uses te_dsp.c's kernels."""
    return board.arch in DSP_ARCHITECTURES


RECURRENT_OPS = frozenset(name for name, op in registry.OPS.items() if op.family == "recurrent")


def compile_for(model: TfliteModel, board: Board) -> AotProgram:
    program = compile_model(model, progmem=board.progmem, dsp=has_dsp(board))
    return use_m0plus_kernels(program) if board.arch in M0PLUS_ARCHITECTURES else program


def check_fits(program: AotProgram, board: Board, model_name: str, allowance: FirmwareAllowance) -> None:
    """Refuse, with the figures, an AOT model whose constants or arena cannot fit the board's budget."""
    if not board.is_budgeted:
        return
    stats = program.stats
    flash_needed = stats.constant_bytes + allowance.flash_bytes
    ram_needed = stats.ram_bytes + allowance.ram_bytes
    if flash_needed > board.flash_bytes:
        raise TinyedgeError(
            f"{model_name} does not fit the {board.id} board's flash: {stats.constant_bytes:,} bytes of constants "
            f"(weights, biases, per-op tables) + about {allowance.flash_bytes:,} bytes of firmware = "
            f"{flash_needed:,} > {board.flash_bytes:,} bytes; use a smaller model or a bigger board.")
    if ram_needed > board.ram_bytes:
        raise TinyedgeError(
            f"{model_name} does not fit the {board.id} board's RAM: {ram_breakdown(stats)} + about "
            f"{allowance.ram_bytes:,} bytes for the firmware = {ram_needed:,} > {board.ram_bytes:,} bytes "
            f"(its {stats.constant_bytes:,} bytes of constants stay in flash); use a smaller model or a bigger board.")


def ram_breakdown(stats: AotStats) -> str:
    """The model's RAM in words: 'a 2,450,000-byte arena + a 4,608-byte scratch'."""
    parts = [f"a {stats.arena_bytes:,}-byte arena"]
    if stats.scratch_bytes:
        parts.append(f"a {stats.scratch_bytes:,}-byte scratch")
    if stats.ram_table_bytes:
        parts.append(f"{stats.ram_table_bytes:,} bytes of pointer tables")
    return " + ".join(parts)


def write_sources(model: TfliteModel, board: Board, out_dir: Path, arena_bytes: int | None,
                  tflm_dir: Path | None, program: AotProgram | None = None) -> RuntimeSources:
    """Write aot/te_model.{c,h} and the kernel library into out_dir. The arena is planned here, so an
    `arena_bytes` request smaller than the plan is refused and a larger one changes nothing."""
    program = program or compile_for(model, board)
    if arena_bytes is not None and arena_bytes < program.plan.arena_bytes:
        raise TinyedgeError(
            f"the AOT runtime plans a {program.plan.arena_bytes}-byte arena for this model and cannot use "
            f"{arena_bytes} bytes: drop --arena-kb, since the AOT runtime plans its own arena."
        )
    dest = Path(out_dir) / SUBDIR
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MODEL_SOURCE).write_text(program.source)
    (dest / MODEL_HEADER).write_text(program.header)
    names = copy_kernel_sources(dest, program)
    sources = [f"{SUBDIR}/{MODEL_SOURCE}"] + [f"{SUBDIR}/{n}" for n in names if n.endswith(".c")]
    speed = [f"{SUBDIR}/{n}" for n in DSP_FILES if n.endswith(".c") and program.uses_dsp]
    speed += [f"{SUBDIR}/{n}" for n in M0PLUS_FILES if n.endswith(".c") and uses_m0plus_kernels(program)]
    if program.uses_dsp and any(op.opcode in RECURRENT_OPS for op in model.operators):
        speed.append(f"{SUBDIR}/te_recurrent.c")
    if program.uses_dsp and any(op.kind.startswith("Signal") for op in model.operators):   # the audio front end
        speed.append(f"{SUBDIR}/te_signal.c")
    return RuntimeSources(sources=sources, include_dirs=[SUBDIR], arena_bytes=program.plan.arena_bytes,
                          uses_cpp=False, needs_tflm_tree=False, speed_sources=speed)


class AotRuntime(Runtime):
    name = "aot"
    slot_content = "compiled"

    def check(self, model: TfliteModel, board: Board, model_name: str, allowance: FirmwareAllowance,
              tflm_dir: Path | None = None) -> AotProgram:
        check_model_fits_flash(model, board, model_name)
        program = compile_for(model, board)
        check_fits(program, board, model_name, allowance)
        return program

    def write_sources(self, model: TfliteModel, board: Board, out_dir: Path, arena_bytes: int | None,
                      tflm_dir: Path | None, checked: Any = None) -> RuntimeSources:
        return write_sources(model, board, out_dir, arena_bytes, tflm_dir, checked)


RUNTIME = AotRuntime()
