"""`tinyedge generate`: a buildable firmware project for one board, one model and one runtime."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tinyedge
from tinyedge.boards import Board, get_board
from tinyedge.errors import TinyedgeError
from tinyedge.frameworks import Framework, RenderContext
from tinyedge.outputs import guard_outputs
from tinyedge.paths import FIRMWARE_DIR, tflm_dir_from_env
from tinyedge.plugins import RUNTIMES, get_framework, get_runtime
from tinyedge.project import MANIFEST, Project
from tinyedge.runtimes import RuntimeSources
from tinyedge.runtimes.viper import DEVICE_DIR as VIPER_DEVICE_DIR
from tinyedge.runtimes.viper import SERVER_FILE as VIPER_SERVER_FILE
from tinyedge.slots import (MODULE_SLOTS_MANIFEST, SLOT_FLATBUFFER, SLOT_MODULE, check_updatable, make_module_server_updatable, slot_content,
                             tflm_slot_defines, tflm_slot_sizes,
                             write_signing_key, write_updatable_source)
from tinyedge.templating import copy_if_changed, render, write_if_changed
from tinyedge.tflite_model import Tensor, TfliteModel, load_tflite, parse_tflite, with_reset_each_inference

if TYPE_CHECKING:
    from tinyedge.events import StepReporter

DTYPE_CODES = {"INT8": 1, "UINT8": 2, "INT16": 3, "INT32": 4, "FLOAT32": 5}
MAX_DIMS = 6
PORT_SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".h", ".S", ".s")
C_SUFFIXES = (".c", ".cc", ".cpp", ".S", ".s")


RESET_EACH_INFERENCE_SUFFIX = ".reset-each-inference.tflite"


def say(report: StepReporter | None, message: str) -> None:
    if report is not None:
        report("generate", message)


def choose_runtime(board: Board, runtime: str | None, tflm_dir: Path | None, report: StepReporter | None = None) -> str:
    """The explicit runtime, checked against the board; else tflm when a TFLM tree is configured, else aot."""
    if runtime is not None:
        if runtime not in RUNTIMES:
            names = list(RUNTIMES)
            raise TinyedgeError(f"unknown runtime '{runtime}': choose {', '.join(names[:-1])} or {names[-1]}.")
        if runtime not in board.runtimes:
            raise TinyedgeError(f"the {board.id} board cannot run the {runtime} runtime: "
                                f"choose --runtime {' or '.join(board.runtimes)}.")
        return runtime
    if board.runtimes == ("viper",):
        say(report, "runtime: viper (MicroPython boards run the model as viper code)")
        return "viper"
    tree = tflm_dir if tflm_dir is not None else tflm_dir_from_env()
    if "tflm" in board.runtimes and tree is not None:
        source = "--tflm-dir" if tflm_dir is not None else "TINYEDGE_TFLM_DIR"
        say(report, f"runtime: tflm (a TFLM tree is configured by {source}; pass --runtime aot for the AOT runtime)")
        return "tflm"
    if "aot" in board.runtimes:
        why = ("the board cannot run tflm" if "tflm" not in board.runtimes
               else "no TFLM tree is configured (--tflm-dir or TINYEDGE_TFLM_DIR)")
        say(report, f"runtime: aot ({why})")
        return "aot"
    say(report, "runtime: tflm (the only runtime this board lists)")
    return "tflm"


def port_name(board: Board, framework: Framework, runtime: str) -> str:
    name = board.port_for(runtime) or framework.default_port
    if not name:
        return ""
    if not (FIRMWARE_DIR / "ports" / name).is_dir():
        raise TinyedgeError(f"the {board.id} profile names port '{name}' but firmware/ports/{name} does not exist: "
                            "fix the profile's `port` field.")
    return name


def prepare_out_dir(out_dir: Path, board_id: str, runtime: str) -> None:
    """A new or empty directory, or an earlier project: kept for an incremental rebuild when it was made
    for the same board and runtime, emptied otherwise so no stale sources remain."""
    if out_dir.exists() and not out_dir.is_dir():
        raise TinyedgeError(f"{out_dir} is a file: choose a directory for the generated project.")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MANIFEST).is_file():
            raise TinyedgeError(f"{out_dir} already holds files that are not a tinyedge project: "
                                "choose an empty or new directory.")
        previous = Project.load(out_dir)
        if (previous.board_id, previous.runtime) != (board_id, runtime):
            for entry in out_dir.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def copy_firmware_sources(src_dir: Path, port: str) -> list[Path]:
    """firmware/common, firmware/protocol and the board's port, flat into the project's source dir."""
    folders = [FIRMWARE_DIR / "common", FIRMWARE_DIR / "protocol"]
    if port:
        folders.append(FIRMWARE_DIR / "ports" / port)
    copied = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in PORT_SOURCE_SUFFIXES:
                copy_if_changed(path, src_dir / path.name)
                copied.append(src_dir / path.name)
    return copied


def tensor_info(t: Tensor) -> dict[str, Any]:
    if t.type_name not in DTYPE_CODES:
        raise TinyedgeError(f"tensor '{t.name}' is {t.type_name.lower()}, which the serial protocol cannot carry: "
                            "quantize the model to full int8 first.")
    if len(t.shape) > MAX_DIMS:
        raise TinyedgeError(f"tensor '{t.name}' has {len(t.shape)} dimensions, more than the {MAX_DIMS} the firmware "
                            "describes: reshape the model's inputs and outputs.")
    scale = float(t.scale[0]) if t.is_quantized else 0.0
    zero_point = int(t.zero_point[0]) if t.zero_point.size else 0
    dims = list(t.shape) + [0] * (MAX_DIMS - len(t.shape))
    return {"name": t.name, "dtype": DTYPE_CODES[t.type_name], "rank": len(t.shape),
            "dims": dims, "bytes": t.nbytes, "scale": scale, "zero_point": zero_point}


def render_model_info(model: TfliteModel, board: Board, model_name: str) -> str:
    return render("common/model_info.c.j2",
        model_name=model_name, board_id=board.image_id, clock_hz=board.clock_hz,
        sha256_bytes=list(bytes.fromhex(model.sha256)),
        inputs=[tensor_info(t) for t in model.input_tensors],
        outputs=[tensor_info(t) for t in model.output_tensors])


def write_firmware_sources(model: TfliteModel, board: Board, model_name: str, src_dir: Path, port: str,
                           out_dir: Path) -> list[str]:
    """The protocol, the port and model_info.c in the project's source dir; returns the C sources, relative to out_dir."""
    copied = copy_firmware_sources(src_dir, port)
    write_if_changed(src_dir / "model_info.c", render_model_info(model, board, model_name))
    common = [str(p.relative_to(out_dir)) for p in copied if p.suffix in C_SUFFIXES]
    common.append(str((src_dir / "model_info.c").relative_to(out_dir)))
    return common


def updatable_manifest(checked: Any, out_dir: Path, signing_key: Path | None, sources: RuntimeSources,
                       slot_buffer: int, runtime: str, builtin_sha256: str) -> dict[str, Any]:
    """Make the generated sources updatable; returns what tinyedge.json records of the slots."""
    if signing_key is not None:
        sources.defines["TE_SIGNED_UPDATES"] = "1"   # the board verifies signatures itself (te_ed25519.c)
    if slot_content(runtime) == SLOT_MODULE:
        added = make_module_server_updatable(out_dir / VIPER_DEVICE_DIR / VIPER_SERVER_FILE, builtin_sha256, signing_key)
        sources.sources += [f"{VIPER_DEVICE_DIR}/{name}" for name in added]
        return MODULE_SLOTS_MANIFEST
    sources.defines["TE_UPDATABLE"] = "1"   # te_slots.c, not te_slots_none.c: only this firmware holds the slots' RAM
    if not slot_buffer:
        return write_updatable_source(checked, out_dir, signing_key).manifest()
    sources.defines.update(tflm_slot_defines(slot_buffer))
    if signing_key is not None:
        sources.sources.append(write_signing_key(out_dir, signing_key))
    return {"runtime": "tflm", "model_buffer_bytes": slot_buffer, "arena_bytes": sources.arena_bytes}


def marked_model(model: TfliteModel, model_path: Path, out_dir: Path) -> TfliteModel:
    """The model marked to reset its state before each inference, to be written into the project (the user's
    file is never modified): the board runs it and `validate --model` takes it."""
    if not model.is_stateful:
        raise TinyedgeError(f"--reset-state-each-inference applies to models that keep state (LSTM, SVDF, resource "
                            f"variables), and {model_path.name} keeps none: drop the flag.")
    if model.resets_state_each_inference:
        return model
    path = out_dir / f"{model_path.stem}{RESET_EACH_INFERENCE_SUFFIX}"
    marked = parse_tflite(with_reset_each_inference(model.data), name=str(path))
    marked.path = path
    return marked


def write_marked_model(model: TfliteModel, model_path: Path, report: StepReporter | None) -> None:
    path = model.path
    if not path.is_file() or path.read_bytes() != model.data:   # unchanged: an incremental rebuild stays incremental
        path.write_bytes(model.data)
    say(report, f"the board resets {model_path.name}'s state before every inference; it runs {path} "
                "(the model marked so): validate with that file")


def generate(model_path: Path, board_id: str, out_dir: Path, runtime: str | None = None,
             tflm_dir: Path | None = None, arena_kb: int | None = None, report: StepReporter | None = None,
             arena_bytes: int | None = None, updatable: bool | None = None,
             signing_key: Path | None = None, reset_state_each_inference: bool = False) -> Project:
    """Write a firmware project for `board_id` running `model_path` into `out_dir`; returns its manifest.
    `updatable` (default: the profile's `updatable`) keeps the model in a slot `tinyedge update` replaces;
    `signing_key` (an Ed25519 public key, PEM) makes it take only bundles signed with its private key;
    `reset_state_each_inference` makes every inference start from the model's first state (the project
    then holds the model marked so, `Project.extra["model_file"]`, which the board runs)."""
    board = get_board(board_id)
    model_path, out_dir = Path(model_path), Path(out_dir)
    guard_outputs({"MODEL": model_path, "--tflm-dir": tflm_dir}, {}, {"-o": out_dir})
    model = load_tflite(model_path)
    model_name = model_path.name
    if reset_state_each_inference:
        model = marked_model(model, model_path, out_dir)
    model.require_int8_inside(f"running it on the {board.id} board")
    if arena_kb is not None and arena_kb <= 0:
        raise TinyedgeError(f"--arena-kb must be a positive number of KiB (got {arena_kb}).")
    chosen = choose_runtime(board, runtime, tflm_dir, report)
    updatable = board.updatable if updatable is None else updatable
    if signing_key is not None and not updatable:
        raise TinyedgeError("--signing-key applies to updatable firmware: add --updatable.")
    framework, runtime_plugin = get_framework(board.framework_for(chosen)), get_runtime(chosen)
    checked = runtime_plugin.check(model, board, model_name, framework.allowance, tflm_dir)
    port = port_name(board, framework, chosen) if framework.compiles_firmware else ""
    if updatable:
        check_updatable(board, chosen, port)

    prepare_out_dir(out_dir, board.id, chosen)
    model_file = None
    if model.path != model_path:   # marked here
        write_marked_model(model, model_path, report)
        model_file = model.path.name
    common: list[str] = []
    if framework.compiles_firmware:
        common = write_firmware_sources(model, board, model_name, out_dir / framework.source_dir, port, out_dir)
    if arena_bytes is None and arena_kb is not None:
        arena_bytes = arena_kb * 1024
    slot_buffer = 0
    if updatable and slot_content(chosen) == SLOT_FLATBUFFER:
        slot_buffer, arena_bytes = tflm_slot_sizes(model, arena_bytes)
    sources: RuntimeSources = runtime_plugin.write_sources(model, board, out_dir, arena_bytes, tflm_dir, checked)
    slots = updatable_manifest(checked, out_dir, signing_key, sources, slot_buffer, chosen,
                               model.sha256) if updatable else None
    tree = sources.tflm_dir
    ctx = RenderContext(board=board, model=model, model_name=model_name, runtime=chosen, out_dir=out_dir,
                        runtime_sources=sources, common_sources=common,
                        include_dirs=[framework.source_dir] if framework.compiles_firmware else [], tflm_dir=tree,
                        extra={"port": port, "updatable": bool(slots)})
    framework.render(ctx)

    project = Project(dir=out_dir, board_id=board.id, runtime=chosen, model_name=model_name,
                      model_sha256=model.sha256, arena_bytes=sources.arena_bytes, ops=model.op_names(),
                      tflm_dir=str(tree) if tree else None,
                      extra={"framework": board.framework_for(chosen), "port": port, "tinyedge_version": tinyedge.__version__,
                             "model_bytes": len(model.data), "uses_cpp": sources.uses_cpp,
                             "sources": sources.sources,
                             "updatable": slots, **({"model_file": model_file} if model_file else {})})
    project.save()
    say(report, f"generated {out_dir} for {board.name}: {chosen} runtime, "
                 f"{len(model.data):,}-byte model, {sources.arena_bytes:,}-byte arena, ops {', '.join(project.ops)}")
    return project
