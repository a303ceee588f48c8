"""TFLM from a source tree made by tflite-micro's create_tflm_tree.py: find it, pick the sources a
model needs (the core plus exactly the kernels of its ops), and compile them into a static library.

Objects are cached per (tree content, compilers, flags) under `cache_dir()/tflm/<key>/`, so after a
model change only the kernels of new ops compile.

Two kinds of tree build: a reference-kernel tree (create_tflm_tree.py without options) and a CMSIS-NN
tree (`--makefile_options="TARGET=cortex_m_generic TARGET_ARCH=cortex-m4 OPTIMIZED_KERNEL_DIR=cmsis_nn
..."`), whose optimized kernels live in kernels/cmsis_nn/ and call Arm's CMSIS-NN library in
third_party/cmsis_nn. The CMSIS-NN tree is built the way TFLM's own Makefile builds it: -DCMSIS_NN and
no float CMSIS-NN code, kernels and CMSIS-NN at -O2 while the rest keeps the board's -Os.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import yaml

from tinyedge.errors import TinyedgeError
from tinyedge.paths import FIRMWARE_DIR, cache_dir, tflm_dir_from_env
from tinyedge.tflite_model import TfliteModel, refuse_custom_ops
from tinyedge.tools import missing_tool

MAKE_TREE_HINT = (
    "make one with tflite-micro's tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py "
    "<dir> (run from a tflite-micro checkout, Pillow and numpy installed) and point tinyedge at it with "
    "--tflm-dir <dir> or TINYEDGE_TFLM_DIR=<dir>"
)

# Files whose presence makes a directory a usable TFLM tree.
TREE_MARKERS = (
    "tensorflow/lite/micro/micro_interpreter.cc",
    "tensorflow/lite/micro/micro_mutable_op_resolver.h",
    "tensorflow/lite/micro/kernels/kernel_util.cc",
    "tensorflow/lite/schema/schema_generated.h",
    "third_party/flatbuffers/include/flatbuffers/flatbuffers.h",
    "third_party/gemmlowp/fixedpoint/fixedpoint.h",
)
THIRD_PARTY_INCLUDES = ("third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy",
                        "third_party/kissfft")
# Defines the library is built with and every translation unit including TFLM headers must share:
# TF_LITE_STATIC_MEMORY changes the layout of TfLiteTensor.
LIBRARY_DEFINES = ("TF_LITE_STATIC_MEMORY", "TF_LITE_DISABLE_X86_NEON")

MICRO_DIR = "tensorflow/lite/micro"
KERNELS_DIR = f"{MICRO_DIR}/kernels"

CMSIS_NN_KERNELS_DIR = f"{KERNELS_DIR}/cmsis_nn"
CMSIS_NN_DIR = "third_party/cmsis_nn"
CMSIS_NN_DEFINES = ("CMSIS_NN", "ARM_NN_ENABLE_F16=0", "ARM_NN_ENABLE_F32=0")
# As in tflite-micro's ext_libs/cmsis_nn.inc: kernels include "Include/arm_nnfunctions.h", CMSIS-NN
# includes "arm_nn_types.h" and the CMSIS core headers by bare name.
CMSIS_NN_INCLUDES = ("third_party/cmsis", CMSIS_NN_DIR, "third_party/cmsis/CMSIS/Core/Include",
                     f"{CMSIS_NN_DIR}/Include")
# The cortex_m_generic target replaces micro/debug_log.cc by a callback-based one.
CORTEX_M_DEBUG_LOG = f"{MICRO_DIR}/cortex_m_generic/debug_log.cc"
# TFLM's Makefile compiles kernels (and third-party kernel code) at -O2, the rest at -Os.
KERNEL_OPT = "-O2"
TREE_KIND_REFERENCE = "reference"
TREE_KIND_CMSIS_NN = "cmsis-nn"
# Test and recording helpers in the tree that no firmware needs.
CORE_EXCLUDED = frozenset({
    "fake_micro_context.cc", "mock_micro_graph.cc", "test_helpers.cc", "test_helper_custom_ops.cc",
    "recording_micro_allocator.cc", "recording_single_arena_buffer_allocator.cc",
})
# Kernel-directory helpers every kernel links against.
KERNEL_SUPPORT = ("kernel_util", "micro_tensor_utils")

OP_TABLE_FILE = FIRMWARE_DIR / "tflm" / "ops.yaml"
# TFLite builtin op -> (MicroMutableOpResolver method, kernel sources without ".cc"): see OP_TABLE_FILE.
OP_TABLE: dict[str, tuple[str, tuple[str, ...]]] = {
    op: (entry[0], tuple(entry[1:])) for op, entry in yaml.safe_load(OP_TABLE_FILE.read_text()).items()}

COMPILE_JOBS = 2


# ---------------------------------------------------------------------------------------------
# Finding the tree


def is_tflm_tree(path: Path) -> bool:
    return all((path / marker).is_file() for marker in TREE_MARKERS)


def find_tflm_tree(explicit: Path | None) -> Path | None:
    """The tree given by --tflm-dir, else by TINYEDGE_TFLM_DIR; None when neither names a valid tree."""
    candidate = explicit if explicit is not None else tflm_dir_from_env()
    if candidate is None:
        return None
    candidate = Path(candidate).expanduser()
    return candidate.resolve() if is_tflm_tree(candidate) else None


def require_tflm_tree(explicit: Path | None) -> Path:
    """Like find_tflm_tree, but a missing or broken tree is a TinyedgeError saying how to make one."""
    tree = find_tflm_tree(explicit)
    if tree is not None:
        return tree
    given = explicit if explicit is not None else tflm_dir_from_env()
    if given is None:
        raise TinyedgeError(f"this board builds TFLM from source but no TFLM tree is set: {MAKE_TREE_HINT}.")
    given = Path(given).expanduser()
    if not given.is_dir():
        raise TinyedgeError(f"the TFLM tree {given} does not exist: {MAKE_TREE_HINT}.")
    missing = next(marker for marker in TREE_MARKERS if not (given / marker).is_file())
    raise TinyedgeError(f"{given} is not a TFLM tree ({missing} is missing): {MAKE_TREE_HINT}.")


def tree_kind(tree: Path) -> str:
    """"cmsis-nn" for a tree made with OPTIMIZED_KERNEL_DIR=cmsis_nn, else "reference"."""
    cmsis = (tree / CMSIS_NN_KERNELS_DIR).is_dir() and (tree / CMSIS_NN_DIR / "Include" / "arm_nnfunctions.h").is_file()
    return TREE_KIND_CMSIS_NN if cmsis else TREE_KIND_REFERENCE


def is_cmsis_nn_tree(tree: Path) -> bool:
    return tree_kind(tree) == TREE_KIND_CMSIS_NN


def tflm_version(tree: Path) -> str:
    """The tflite-micro commit recorded in the tree (a TFLM_COMMIT file), else a content hash."""
    for name in ("TFLM_COMMIT", "TFLM_VERSION"):
        marker = tree / name
        if marker.is_file():
            text = marker.read_text().strip().split()
            if text:
                return text[0][:40]
    return "tree-" + tree_hash(tree)[:12]


# ---------------------------------------------------------------------------------------------
# Choosing sources


def unsupported_ops(ops: list[str]) -> list[str]:
    return sorted(op for op in set(ops) if op not in OP_TABLE)


def require_supported_ops(ops: list[str]) -> None:
    missing = unsupported_ops(ops)
    if missing:
        raise TinyedgeError(
            f"TFLM has no kernel for {', '.join(missing)}: re-export the model without these ops or "
            "use a runtime that supports them.")


def require_model_ops(model: TfliteModel) -> None:
    """Refuse, naming them, custom ops TFLM does not register (it registers its signal library's) and
    builtin ops TFLM has no kernel for."""
    refuse_custom_ops(model, supported=set(OP_TABLE))
    require_supported_ops(model.op_names())


def resolver_methods(ops: list[str]) -> list[str]:
    """The MicroMutableOpResolver Add* calls registering exactly these ops, in op-name order."""
    require_supported_ops(ops)
    return [OP_TABLE[op][0] for op in sorted(set(ops))]


def kernel_sources(tree: Path, ops: list[str]) -> list[Path]:
    """The kernel .cc files the ops need (and nothing else), relative to the tree; in a CMSIS-NN tree
    the optimized kernel replaces the reference one where there is one."""
    require_supported_ops(ops)
    stems = sorted({stem for op in set(ops) for stem in OP_TABLE[op][1]})
    paths = [_kernel_path(tree, stem) for stem in stems]
    missing = [str(p) for p in paths if not (tree / p).is_file()]
    if missing:
        raise TinyedgeError(
            f"the TFLM tree {tree} lacks {', '.join(missing)}: regenerate it from a tflite-micro checkout "
            "with create_tflm_tree.py.")
    return paths


def _kernel_path(tree: Path, stem: str) -> Path:
    if "/" in stem:  # a tree-relative source (the signal library), not a kernel in kernels/
        return Path(f"{stem}.cc")
    optimized = Path(CMSIS_NN_KERNELS_DIR) / f"{stem}.cc"
    if (tree / optimized).is_file():
        return optimized
    return Path(KERNELS_DIR) / f"{stem}.cc"


def cmsis_nn_sources(tree: Path) -> list[Path]:
    """CMSIS-NN's C sources without its float code (as ARM_NN_ENABLE_F16/F32=0 leave it), relative
    to the tree; the archive lets the linker take only the functions the kernels call."""
    if not is_cmsis_nn_tree(tree):
        return []
    found = [p for p in (tree / CMSIS_NN_DIR / "Source").rglob("*.c")
             if not p.name.endswith(("_f16.c", "_f32.c")) and p.name != "arm_nntables_flt.c"]
    return sorted(p.relative_to(tree) for p in found)


def core_sources(tree: Path) -> list[Path]:
    """Interpreter, allocator, memory planners, flatbuffer and logging glue, shared TFLite code, and
    the kernel helpers every kernel uses; relative to the tree."""
    micro = tree / MICRO_DIR
    found: list[Path] = []
    for directory in (micro, micro / "arena_allocator", micro / "memory_planner", micro / "tflite_bridge"):
        found += [p for p in directory.glob("*.cc") if p.name not in CORE_EXCLUDED and not p.name.endswith("_test.cc")]
    for path in (tree / "tensorflow").rglob("*.cc"):
        inside_micro = path.is_relative_to(micro)
        if not inside_micro and "experimental" not in path.relative_to(tree).parts \
                and not path.name.endswith("_test.cc") and path.name != "array.cc":
            found.append(path)
    found += [tree / KERNELS_DIR / f"{stem}.cc" for stem in KERNEL_SUPPORT]
    if not (micro / "debug_log.cc").is_file() and (tree / CORTEX_M_DEBUG_LOG).is_file():
        found.append(tree / CORTEX_M_DEBUG_LOG)
    return sorted({p.relative_to(tree) for p in found})


def library_sources(tree: Path, ops: list[str]) -> list[Path]:
    return sorted(set(core_sources(tree)) | set(kernel_sources(tree, ops)) | set(cmsis_nn_sources(tree)))


def include_dirs(tree: Path) -> list[Path]:
    extra = CMSIS_NN_INCLUDES if is_cmsis_nn_tree(tree) else ()
    return [tree] + [tree / d for d in (*THIRD_PARTY_INCLUDES, *extra) if (tree / d).is_dir()]


def library_defines(tree: Path) -> list[str]:
    """Defines the library is built with; the op-resolver source must be compiled with them too."""
    extra = CMSIS_NN_DEFINES if is_cmsis_nn_tree(tree) else ()
    return [*LIBRARY_DEFINES, *extra]


def is_kernel_source(tree: Path, source: Path) -> bool:
    """Compiled at KERNEL_OPT in a CMSIS-NN tree: the op kernels and CMSIS-NN itself."""
    if not is_cmsis_nn_tree(tree):
        return False
    parts = source.parts
    return source.parent == Path(KERNELS_DIR) and source.stem not in KERNEL_SUPPORT \
        or source.parent == Path(CMSIS_NN_KERNELS_DIR) or parts[:2] == tuple(Path(CMSIS_NN_DIR).parts)


# ---------------------------------------------------------------------------------------------
# Building


@dataclass
class TflmLibrary:
    archive: Path
    include_dirs: list[Path]
    defines: list[str]
    objects_compiled: int
    objects_reused: int
    seconds: float


@lru_cache(maxsize=8)
def _tree_hash_cached(tree: str, stamp: tuple[int, int]) -> str:
    digest = hashlib.sha256()
    root = Path(tree)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".cc", ".c", ".h", ".hpp", ".inc")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def tree_hash(tree: Path) -> str:
    """Content hash of the tree's sources and headers: any edit to the tree gives a new object cache."""
    stat = (tree / MICRO_DIR).stat()
    return _tree_hash_cached(str(tree.resolve()), (stat.st_mtime_ns, stat.st_ino))


@lru_cache(maxsize=16)
def _compiler_identity(compiler: str) -> str:
    resolved = shutil.which(compiler)
    if resolved is None:
        raise missing_tool(compiler, "install it or fix the board's toolchain")
    version = subprocess.run([resolved, "--version"], capture_output=True, text=True).stdout.splitlines()
    machine = subprocess.run([resolved, "-dumpmachine"], capture_output=True, text=True).stdout.strip()
    return f"{os.path.realpath(resolved)}|{version[0] if version else ''}|{machine}"


def cache_key(tree: Path, cc: str, cxx: str, cflags: list[str], cxxflags: list[str]) -> str:
    parts = [tree_hash(tree), _compiler_identity(cc), _compiler_identity(cxx), " ".join(cflags), " ".join(cxxflags),
             f"kernels {KERNEL_OPT}" if is_cmsis_nn_tree(tree) else "kernels as the rest"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _object_name(source: Path) -> str:
    return str(source.with_suffix(".o")).replace("/", "__")


def _compile_command(tree: Path, source: Path, obj: Path, cc: str, cxx: str,
                     cflags: list[str], cxxflags: list[str]) -> list[str]:
    compiler, flags = (cxx, cxxflags) if source.suffix == ".cc" else (cc, cflags)
    if is_kernel_source(tree, source):
        flags = [f for f in flags if not f.startswith("-O")] + [KERNEL_OPT]
    includes = [f"-I{d}" for d in include_dirs(tree)]
    defines = [f"-D{d}" for d in library_defines(tree) if f"-D{d}" not in flags]
    return [compiler, *flags, *defines, *includes, "-c", str(tree / source), "-o", str(obj)]


def _compile_one(command: list[str], obj: Path) -> str | None:
    """Compile to a private temporary name and rename, so concurrent builds never see half an object."""
    tmp = obj.with_name(f"{obj.name}.{os.getpid()}.{id(command)}.tmp")
    command = command[:-1] + [str(tmp)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        return f"{' '.join(command)}\n{result.stderr.strip()}"
    os.replace(tmp, obj)
    return None


def build_tflm_library(tree: Path, ops: list[str], cc: str, cxx: str, ar: str,
                       cflags: list[str], cxxflags: list[str]) -> TflmLibrary:
    """Compile TFLM's core and exactly the kernels of `ops` with the caller's compilers and flags into
    a static library, reusing every object already in the cache for the same tree, compilers and flags."""
    started = time.monotonic()
    tree = require_tflm_tree(tree)
    sources = library_sources(tree, ops)
    key = cache_key(tree, cc, cxx, cflags, cxxflags)
    obj_dir = cache_dir() / "tflm" / key
    obj_dir.mkdir(parents=True, exist_ok=True)
    objects = {src: obj_dir / _object_name(src) for src in sources}
    pending = [src for src, obj in objects.items() if not obj.is_file()]
    _compile_all(tree, pending, objects, cc, cxx, cflags, cxxflags)
    archive = _archive(obj_dir, [objects[src] for src in sources], ar)
    return TflmLibrary(
        archive=archive, include_dirs=include_dirs(tree), defines=library_defines(tree),
        objects_compiled=len(pending), objects_reused=len(sources) - len(pending),
        seconds=time.monotonic() - started)


def _compile_all(tree: Path, pending: list[Path], objects: dict[Path, Path], cc: str, cxx: str,
                 cflags: list[str], cxxflags: list[str]) -> None:
    if not pending:
        return
    commands = [(_compile_command(tree, src, objects[src], cc, cxx, cflags, cxxflags), objects[src]) for src in pending]
    with ThreadPoolExecutor(max_workers=COMPILE_JOBS) as pool:
        failures = [f for f in pool.map(lambda job: _compile_one(*job), commands) if f]
    if failures:
        raise TinyedgeError(
            f"compiling TFLM failed for {len(failures)} file(s); the first error was:\n{failures[0][-3000:]}\n"
            "Check the board's compiler flags, or regenerate the TFLM tree with create_tflm_tree.py.")


def _archive(obj_dir: Path, objects: list[Path], ar: str) -> Path:
    names = "\n".join(sorted(o.name for o in objects))
    lib_dir = obj_dir / "lib"
    lib_dir.mkdir(exist_ok=True)
    archive = lib_dir / f"libtflm-{hashlib.sha256(names.encode()).hexdigest()[:12]}.a"
    if archive.is_file():
        return archive
    if shutil.which(ar) is None:
        raise missing_tool(ar, "install binutils for the board's toolchain")
    tmp = archive.with_name(f"{archive.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    result = subprocess.run([ar, "rcs", str(tmp), *map(str, objects)], capture_output=True, text=True)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise TinyedgeError(f"'{ar}' could not archive the TFLM objects ({result.stderr.strip()}): check the toolchain install.")
    os.replace(tmp, archive)
    return archive


# ---------------------------------------------------------------------------------------------
# --fit-arena


class ArenaDevice(Protocol):
    def set_arena(self, nbytes: int) -> bool: ...


ARENA_ALIGN = 16


def _align_up(n: int) -> int:
    return (n + ARENA_ALIGN - 1) // ARENA_ALIGN * ARENA_ALIGN


def fit_arena(device: ArenaDevice, low: int, high: int) -> int:
    """Smallest arena length (a multiple of 16, in [low, high]) the device can allocate and invoke
    with, found by bisection; the device is left running with that arena."""
    high = _align_up(high)
    failing = low // ARENA_ALIGN * ARENA_ALIGN - ARENA_ALIGN  # largest length known (or assumed) too small
    if not device.set_arena(high):
        raise TinyedgeError(
            f"the model does not run even with the full {high}-byte arena: generate the firmware "
            "with a larger --arena.")
    while high - failing > ARENA_ALIGN:
        middle = _align_up((failing + high) // 2)
        if device.set_arena(middle):
            high = middle
        else:
            failing = middle
    if not device.set_arena(high):
        raise TinyedgeError(f"the device stopped accepting a {high}-byte arena it took before: reset it and retry.")
    return high
