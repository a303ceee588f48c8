"""The `tflm` runtime: the model as a C array, an op resolver holding exactly its ops, and the glue
(firmware/tflm/te_tflm_runtime.cc) putting TFLM's MicroInterpreter behind tinyedge_runtime.h."""

from __future__ import annotations

import shutil
from pathlib import Path

import jinja2

from tinyedge.boards import Board
from tinyedge.emit import write_c_array
from tinyedge.paths import FIRMWARE_DIR, TEMPLATES_DIR
from tinyedge.reference import measure_arena
from tinyedge.runtimes import RuntimeSources
from tinyedge.tflite_model import TfliteModel
from tinyedge.tflm import OP_TABLE, require_supported_ops, require_tflm_tree, tflm_version

MODEL_ARRAY = "te_tflm_model_data"
GLUE = FIRMWARE_DIR / "tflm" / "te_tflm_runtime.cc"
TEMPLATES = {"te_tflm_ops.cc": "te_tflm_ops.cc.j2", "te_tflm_ops.h": "te_tflm_ops.h.j2",
             "te_tflm_config.h": "te_tflm_config.h.j2"}
ARENA_ALIGN = 16
# Boards whose framework compiles TFLM from a tree we point it at; elsewhere the framework brings it.
TREE_SOURCE = "tree"


def resolver_ops(model: TfliteModel) -> list[tuple[str, str]]:
    """(op name, MicroMutableOpResolver method) for each distinct op of the model, sorted by op."""
    ops = model.op_names()
    require_supported_ops(ops)
    return [(op, OP_TABLE[op][0]) for op in ops]


def default_arena_bytes(model: TfliteModel) -> int:
    """The host interpreter's measured arena (a 64-bit figure, so above what 32-bit boards need)
    plus a quarter and 1 KiB, rounded up to 16."""
    measured = measure_arena(model)
    return _align(measured + measured // 4 + 1024)


def _align(n: int) -> int:
    return (n + ARENA_ALIGN - 1) // ARENA_ALIGN * ARENA_ALIGN


def version_string(board: Board, tree: Path | None) -> str:
    if tree is not None:
        return tflm_version(tree)
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
    tree = require_tflm_tree(tflm_dir) if needs_tree else None
    ops = resolver_ops(model)
    arena = _align(arena_bytes) if arena_bytes else default_arena_bytes(model)
    model_name = model.path.name if getattr(model, "path", None) else "the model"

    write_c_array(model.data, out_dir, MODEL_ARRAY, progmem=False)
    _render(out_dir, model_name=model_name, board_id=board.id, ops=ops, methods=[m for _, m in ops],
            arena_bytes=arena, version=version_string(board, tree))
    shutil.copyfile(GLUE, out_dir / GLUE.name)

    return RuntimeSources(
        sources=[f"{MODEL_ARRAY}.cc", "te_tflm_ops.cc", GLUE.name],
        include_dirs=["."],
        defines={"TF_LITE_STATIC_MEMORY": "1"},
        arena_bytes=arena,
        uses_cpp=True,
        needs_tflm_tree=needs_tree,
    )


def _render(out_dir: Path, **context: object) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR / "tflm"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    for target, template in TEMPLATES.items():
        (out_dir / target).write_text(env.get_template(template).render(**context))
