"""`tinyedge inspect`: what a .tflite holds, what it costs, and whether it fits a board."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyedge.aot.compiler import compile_model
from tinyedge.boards import Board, get_board
from tinyedge.errors import TinyedgeError
from tinyedge.generate import choose_runtime
from tinyedge.ops.registry import runtimes_for
from tinyedge.plugins import get_framework
from tinyedge.reference import check_runs_in_tflm, measure_arena, tflite_only_ops
from tinyedge.runtimes.aot import compile_for, ram_breakdown
from tinyedge.tflite_model import Operator, TfliteModel, load_tflite

# TFLM's interpreter, allocator and a handful of reference kernels, measured as text+rodata on a
# Cortex-M4 build (37 KB for a conv/pool/dense/softmax model); used only for the fit estimate.
TFLM_CODE_ESTIMATE = 40 * 1024
# tinyedge's AOT kernels plus the protocol for a small model.
AOT_CODE_ESTIMATE = 6 * 1024
HOST_ARENA_NOTE = (
    "arena measured with tflite-micro on this 64-bit host; 32-bit targets need a different figure "
    "(pointers are smaller): fit it on the board with `tinyedge deploy --fit-arena`"
)


@dataclass
class TensorSummary:
    index: int
    name: str
    shape: list[int]
    dtype: str
    scale: list[float]
    zero_point: list[int]
    constant: bool


@dataclass
class BoardFit:
    board: str
    runtime: str
    flash_needed: int
    flash_budget: int
    ram_needed: int
    ram_budget: int
    fits: bool
    basis: str


@dataclass
class ModelSummary:
    path: str
    model_bytes: int
    sha256: str
    ops: dict[str, int]
    operators: list[str]
    inputs: list[TensorSummary]
    outputs: list[TensorSummary]
    tensors: list[TensorSummary]
    parameters: int
    macs: int
    runtimes: dict[str, list[str]]       # op -> the runtimes that run it (aot, tflm, viper)
    full_int8: bool
    not_full_int8_because: list[str]
    arena_bytes_host: int
    arena_note: str = HOST_ARENA_NOTE
    board_fit: BoardFit | None = None
    zero_weights: float = 0.0
    zeros_note: str | None = None
    state: str = "none"   # none, carried (from one inference to the next) or reset_each_inference

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tensor_summary(model: TfliteModel, index: int) -> TensorSummary:
    t = model.tensors[index]
    return TensorSummary(
        index=index, name=t.name, shape=list(t.shape), dtype=t.type_name.lower(),
        scale=[float(s) for s in t.scale[:8]], zero_point=[int(z) for z in t.zero_point[:8]],
        constant=t.is_constant,
    )


LSTM_INPUT_WEIGHTS = 1   # the input gate's input weights (every gate's are the same size)


def op_macs(model: TfliteModel, op: Operator) -> int:
    """Multiply-accumulates of one operator: convolutions, dense layers, matrix products and the recurrent
    ops' gates; 0 for ops without multiply-accumulates (elementwise, layout, activations)."""
    recurrent = _recurrent_macs(model, op)
    if recurrent is not None:
        return recurrent
    if op.opcode == "TRANSPOSE_CONV":
        out_c, kh, kw, _ = model.tensors[op.inputs[1]].shape
        return int(model.tensors[op.inputs[2]].size) * out_c * kh * kw
    if op.opcode == "BATCH_MATMUL":
        lhs = model.tensors[op.inputs[0]]
        depth = lhs.shape[-2] if getattr(op.options, "adjX", False) else lhs.shape[-1]
        return int(model.tensors[op.outputs[0]].size) * int(depth)
    if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        weights = model.tensors[op.inputs[1]]
        out = model.tensors[op.outputs[0]]
        out_elems = int(np.prod(out.shape))
        if op.opcode == "CONV_2D":
            _, kh, kw, cin = weights.shape
            return out_elems * kh * kw * cin
        if op.opcode == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = weights.shape
            return out_elems * kh * kw
        if op.opcode == "FULLY_CONNECTED":
            return out_elems * weights.shape[-1]
    return 0


def _recurrent_macs(model: TfliteModel, op: Operator) -> int | None:
    """SVDF: per batch, the feature matrix times the input and the time weights times the state;
    UNIDIRECTIONAL_SEQUENCE_LSTM: per step, four gates of input and recurrent weights. None for other ops."""
    if op.opcode == "SVDF":
        inp, feature, time = (model.tensors[op.inputs[i]] for i in range(3))
        n_filter, n_input = feature.shape
        return int(inp.size // n_input) * n_filter * (n_input + time.shape[1])
    if op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        inp = model.tensors[op.inputs[0]]
        n_state, n_input = model.tensors[op.inputs[LSTM_INPUT_WEIGHTS]].shape
        return int(inp.size // n_input) * 4 * n_state * (n_input + n_state)
    return None


def board_fit(model: TfliteModel, board: Board, arena_bytes: int) -> BoardFit:
    """The fit for the runtime `tinyedge generate` would choose: tflm where a TFLM tree is configured,
    else the AOT runtime's own check (also the estimate for MicroPython boards' viper code)."""
    runtime = "tflm" if choose_runtime(board, None, None) == "tflm" else "aot"
    if runtime == "tflm":
        flash_needed, ram_needed = len(model.data) + TFLM_CODE_ESTIMATE, arena_bytes
        basis = f"model bytes + ~{TFLM_CODE_ESTIMATE // 1024} KB of TFLM code; host-measured arena"
    else:
        flash_needed, ram_needed, basis = _aot_needs(model, board, fallback_arena=arena_bytes)
    fits = not board.is_budgeted or (flash_needed <= board.flash_bytes and ram_needed <= board.ram_bytes)
    return BoardFit(board.id, runtime, flash_needed, board.flash_bytes, ram_needed, board.ram_bytes, fits, basis)


def _aot_needs(model: TfliteModel, board: Board, fallback_arena: int) -> tuple[int, int, str]:
    """Flash and RAM of the AOT firmware, as `tinyedge generate` checks them: the memory plan and
    constants plus the framework's firmware allowance (the host arena when the AOT compiler refuses the model)."""
    allowance = get_framework(board.framework_for("aot")).allowance
    try:
        stats = compile_for(model, board).stats
    except TinyedgeError:
        weights = sum(t.nbytes for t in model.tensors if t.is_constant)
        return (weights + AOT_CODE_ESTIMATE, fallback_arena,
                f"constant bytes + ~{AOT_CODE_ESTIMATE // 1024} KB of AOT code; host-measured arena")
    return (stats.constant_bytes + allowance.flash_bytes, stats.ram_bytes + allowance.ram_bytes,
            f"flash: the AOT constants + about {allowance.flash_bytes:,} B of firmware; RAM: {ram_breakdown(stats)} "
            f"+ about {allowance.ram_bytes:,} B of firmware (as `tinyedge generate` checks)")


# From this share of zero weights on, `inspect` says what zeros (magnitude pruning) do not buy.
ZEROS_NOTE_FROM = 0.05


def zero_weight_fraction(model: TfliteModel) -> float:
    """The share of zeros among the weights of convolutions and dense layers."""
    zeros = total = 0
    for op in model.operators:
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
            weights = model.tensors[op.inputs[1]].data
            if weights is not None:
                zeros += int(np.count_nonzero(weights == 0))
                total += int(weights.size)
    return zeros / total if total else 0.0


def zeros_note(fraction: float) -> str | None:
    if fraction < ZEROS_NOTE_FROM:
        return None
    return (f"{fraction:.0%} of the weights are zeros, which save neither flash nor time on TFLM or the AOT runtime "
            "(both store and multiply dense arrays): narrow the layers with `tinyedge shrink` instead.")


def _arena(model: TfliteModel) -> tuple[int, str]:
    """tflite-micro's arena on this host; the AOT runtime's planned one for a model tflite-micro cannot run."""
    lacking = tflite_only_ops(model)
    if not lacking:
        return measure_arena(model), HOST_ARENA_NOTE
    return compile_model(model).plan.arena_bytes, (f"arena planned by the AOT runtime: tflite-micro has no int8 "
                                                   f"kernel for {', '.join(lacking)}, so it cannot measure one")


def inspect_model(path: str | Path, board_id: str | None = None) -> ModelSummary:
    model = load_tflite(path)
    board = get_board(board_id) if board_id else None
    check_runs_in_tflm(model)
    arena, arena_note = _arena(model)
    return ModelSummary(
        path=str(path),
        model_bytes=len(model.data),
        sha256=model.sha256,
        ops=model.op_versions(),
        operators=[op.kind for op in model.operators],
        inputs=[_tensor_summary(model, i) for i in model.inputs],
        outputs=[_tensor_summary(model, i) for i in model.outputs],
        tensors=[_tensor_summary(model, i) for i in range(len(model.tensors))],
        parameters=model.parameter_count(),
        macs=sum(op_macs(model, op) for op in model.operators),
        runtimes={name: runtimes_for(name) for name in model.op_names()},
        full_int8=model.is_full_int8(),
        not_full_int8_because=model.full_int8_problems(),
        arena_bytes_host=arena,
        arena_note=arena_note,
        board_fit=board_fit(model, board, arena) if board else None,
        zero_weights=zero_weight_fraction(model),
        zeros_note=zeros_note(zero_weight_fraction(model)),
        state=state_kind(model),
    )


def state_kind(model: TfliteModel) -> str:
    if not model.is_stateful:
        return "none"
    return "reset_each_inference" if model.resets_state_each_inference else "carried"
