"""The `tflm` runtime: the model as a C array, an op resolver holding exactly its ops, and the glue
(firmware/tflm/te_tflm_runtime.cc) putting TFLM's MicroInterpreter behind tinyedge_runtime.h."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tinyedge.boards import Board
from tinyedge.carray import write_c_array
from tinyedge.errors import TinyedgeError
from tinyedge.paths import FIRMWARE_DIR
from tinyedge.reference import measure_arena
from tinyedge.runtimes import FirmwareAllowance, Runtime, RuntimeSources, check_model_fits_flash
from tinyedge.templating import render_to
from tinyedge.tflite_model import TfliteModel
from tinyedge.tflm_tree import OP_TABLE, is_cmsis_nn_tree, require_model_ops, require_tflm_tree, tflm_version

MODEL_ARRAY = "te_tflm_model_data"
GLUE = FIRMWARE_DIR / "tflm" / "te_tflm_runtime.cc"
TEMPLATES = {"te_tflm_ops.cc": "te_tflm_ops.cc.j2", "te_tflm_ops.h": "te_tflm_ops.h.j2",
             "te_tflm_config.h": "te_tflm_config.h.j2"}
ARENA_ALIGN = 16
# Boards whose framework compiles TFLM from a tree we point it at; elsewhere the framework brings it.
TREE_SOURCE = "tree"
CMSIS_NN_SUFFIX = "+cmsis-nn"
# Cortex-M architectures, the only ones CMSIS-NN (and a cortex_m_generic tree) is built for.
CORTEX_M_ARCHS = ("armv6-m", "armv7-m", "armv7e-m", "armv8-m.base", "armv8-m.main", "armv8.1-m.main")
# Int8-only registrations of CMSIS-NN kernels: the generic ones also link the int16 (and int4) code.
INT8_REGISTRATIONS = {
    "ADD": "Register_ADD_INT8", "AVERAGE_POOL_2D": "Register_AVERAGE_POOL_2D_INT8",
    "BATCH_MATMUL": "Register_BATCH_MATMUL_INT8", "CONV_2D": "Register_CONV_2D_INT8",
    "DEPTHWISE_CONV_2D": "Register_DEPTHWISE_CONV_2D_INT8", "FULLY_CONNECTED": "Register_FULLY_CONNECTED_INT8",
    "MAX_POOL_2D": "Register_MAX_POOL_2D_INT8", "MUL": "Register_MUL_INT8", "SOFTMAX": "Register_SOFTMAX_INT8",
    "SVDF": "Register_SVDF_INT8", "TRANSPOSE_CONV": "Register_TRANSPOSE_CONV_INT8",
}
# Not Register_UNIDIRECTIONAL_SEQUENCE_LSTM_INT8: with it trained_lstm_int8 never answered on
# qemu-cortex-m4 (TFLM 90b983c, CMSIS-NN 4ab83cc), while the generic registration runs.
# Which input carries the activations (TRANSPOSE_CONV's first input is the output shape).
DATA_INPUT = {"TRANSPOSE_CONV": 2}


def resolver_ops(model: TfliteModel) -> list[tuple[str, str]]:
    """(op name, MicroMutableOpResolver method) for each distinct op of the model, sorted by op."""
    ops = model.op_names()
    require_model_ops(model)
    return [(op, OP_TABLE[op][0]) for op in ops]


def int8_only_ops(model: TfliteModel) -> set[str]:
    """Ops with an int8-only CMSIS-NN registration whose every instance in the model has int8
    activations and int8 (not int4) weights."""
    candidates = set(INT8_REGISTRATIONS) & set(model.op_names())
    for op in model.operators:
        if op.opcode in candidates and not _runs_in_int8(model, op):
            candidates.discard(op.opcode)
    return candidates


def _runs_in_int8(model: TfliteModel, op) -> bool:
    data = model.tensors[op.inputs[DATA_INPUT.get(op.opcode, 0)]]
    outputs = [model.tensors[i] for i in op.outputs if i >= 0]
    weights = [model.tensors[i] for i in op.inputs[1:2] if i >= 0 and model.tensors[i].is_constant]
    if op.opcode == "TRANSPOSE_CONV":
        weights = [model.tensors[op.inputs[1]]]
    return data.type_name == "INT8" and all(t.type_name == "INT8" for t in outputs + weights)


def registrations(model: TfliteModel, cmsis_nn: bool) -> dict[str, str]:
    """The Register_* call each op gets when not the resolver method's default (CMSIS-NN int8 only)."""
    if not cmsis_nn:
        return {}
    return {op: INT8_REGISTRATIONS[op] for op in int8_only_ops(model)}


def require_cmsis_nn_board(board: Board, tree: Path) -> None:
    if board.arch not in CORTEX_M_ARCHS:
        raise TinyedgeError(
            f"the TFLM tree {tree} is built with CMSIS-NN kernels, which run on Cortex-M only, and {board.id} is "
            f"{board.arch}: point --tflm-dir (or TINYEDGE_TFLM_DIR) at a reference-kernel tree made by "
            "create_tflm_tree.py without OPTIMIZED_KERNEL_DIR.")


def default_arena_bytes(model: TfliteModel) -> int:
    """The host interpreter's measured arena (a 64-bit figure, so above what 32-bit boards need)
    plus a quarter and 1 KiB, rounded up to 16."""
    measured = measure_arena(model)
    return _align(measured + measured // 4 + 1024)


def _align(n: int) -> int:
    return (n + ARENA_ALIGN - 1) // ARENA_ALIGN * ARENA_ALIGN


def version_string(board: Board, tree: Path | None) -> str:
    if tree is not None:
        return tflm_version(tree) + (CMSIS_NN_SUFFIX if is_cmsis_nn_tree(tree) else "")
    source = board.tflm
    kind = source.get("source", "")
    name = source.get("component") or source.get("library") or ",".join(source.get("lib_deps", [])) or kind
    version = source.get("version")
    return f"{name} {version}" if version else str(name)


def write_sources(model: TfliteModel, board: Board, out_dir: Path, arena_bytes: int | None,
                  tflm_dir: Path | None) -> RuntimeSources:
    """Write the model array, op resolver, config header and runtime glue into out_dir; the
    returned paths are relative to out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    needs_tree = board.tflm.get("source") == TREE_SOURCE
    ops = resolver_ops(model)   # the model's own problems first: they need no tree to be told
    tree = require_tflm_tree(tflm_dir) if needs_tree else None
    cmsis_nn = tree is not None and is_cmsis_nn_tree(tree)
    if cmsis_nn:
        require_cmsis_nn_board(board, tree)
    arena = _align(arena_bytes) if arena_bytes else default_arena_bytes(model)
    model_name = model.path.name if getattr(model, "path", None) else "the model"

    write_c_array(model.data, out_dir, MODEL_ARRAY, progmem=False)
    _render(out_dir, model_name=model_name, board_id=board.id, ops=ops, methods=[m for _, m in ops],
            registrations=registrations(model, cmsis_nn),
            arena_bytes=arena, version=version_string(board, tree))
    shutil.copyfile(GLUE, out_dir / GLUE.name)

    return RuntimeSources(
        sources=[f"{MODEL_ARRAY}.cc", "te_tflm_ops.cc", GLUE.name],
        include_dirs=["."],
        defines={"TF_LITE_STATIC_MEMORY": "1"},
        arena_bytes=arena,
        uses_cpp=True,
        needs_tflm_tree=needs_tree,
        tflm_dir=tree,
    )


def _render(out_dir: Path, **context: object) -> None:
    for target, template in TEMPLATES.items():
        render_to(out_dir / target, f"tflm/{template}", **context)


class TflmRuntime(Runtime):
    name = "tflm"
    slot_content = "flatbuffer"

    def check(self, model: TfliteModel, board: Board, model_name: str, allowance: FirmwareAllowance,
              tflm_dir: Path | None = None) -> Path | None:
        """The model fits and TFLM has its ops; returns the TFLM tree where the board compiles one."""
        check_model_fits_flash(model, board, model_name)
        require_model_ops(model)
        return require_tflm_tree(tflm_dir) if board.tflm.get("source") == TREE_SOURCE else None

    def write_sources(self, model: TfliteModel, board: Board, out_dir: Path, arena_bytes: int | None,
                      tflm_dir: Path | None, checked: Any = None) -> RuntimeSources:
        return write_sources(model, board, out_dir, arena_bytes, checked if checked is not None else tflm_dir)


RUNTIME = TflmRuntime()
