"""Helpers for the AOT tests: make full-int8 models with TF, and run AOT-generated C natively.

`to_int8` converts a Keras model with the batch fixed to 1 (what tinyedge quantizes to), and
`NativeModel` writes a project's AOT sources, compiles them with the host C compiler at
-O2 -Wall -Wextra -Werror into a shared library, and runs it through ctypes.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from tinyedge.paths import FIRMWARE_DIR
from tinyedge.tflite_model import TfliteModel, parse_tflite

CC = os.environ.get("CC", shutil.which("cc") or "gcc")
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared"]
OBJECT_FLAGS = [flag for flag in CFLAGS if flag != "-shared"] + ["-c"]

# Where kernel objects compiled once per run are kept (tests/conftest.py points it into the run's
# temporary folder, shared by pytest-xdist's workers); a private temporary folder otherwise.
OBJECT_CACHE: Path | None = None


def compile_object(command: list[str], source: Path, obj: Path) -> Path:
    """`command` (a compiler and its flags, with -c) compiles source into obj, or the test fails with its errors."""
    result = subprocess.run([*command, str(source), "-o", str(obj)], capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"C does not compile:\n{' '.join(command)} {source}\n{result.stderr}")
    return obj


@functools.lru_cache(maxsize=None)
def _compiler_identity(compiler: str) -> bytes:
    found = shutil.which(compiler) or compiler
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    return f"{os.path.realpath(found)}\n{version}".encode()


def kernel_objects(source_dir: Path, names: Sequence[str], flags: Sequence[str] = OBJECT_FLAGS,
                   include_common: bool = True) -> list[Path]:
    """The objects of the .c files among `names` (kernel library files in source_dir, e.g. those
    copy_kernel_sources copied into a project), compiled with CC and `flags` where only those files
    (and firmware/common) can be included: compiled once per run for each set of files, their
    contents and the flags, then reused."""
    import hashlib
    import tempfile

    global OBJECT_CACHE
    if OBJECT_CACHE is None:
        OBJECT_CACHE = Path(tempfile.mkdtemp(prefix="te-kernel-objects-"))
    common = [FIRMWARE_DIR / "common"] if include_common else []
    digest = hashlib.sha256(_compiler_identity(CC) + " ".join(flags).encode())
    for path in [*(source_dir / n for n in sorted(names)), *(p for d in common for p in sorted(d.iterdir()))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    folder = OBJECT_CACHE / digest.hexdigest()[:20]
    objects = [folder / f"{Path(n).stem}.o" for n in sorted(names) if n.endswith(".c")]
    if folder.is_dir():
        return objects
    OBJECT_CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name, dir=OBJECT_CACHE))
    for name in names:
        shutil.copyfile(source_dir / name, staging / name)
    for name in (n for n in names if n.endswith(".c")):
        compile_object([CC, *flags, f"-I{staging}", *(f"-I{d}" for d in common)], staging / name,
                       staging / f"{Path(name).stem}.o")
    try:
        staging.rename(folder)
    except OSError:  # another pytest-xdist worker put the same objects there first
        shutil.rmtree(staging, ignore_errors=True)
    return objects


def to_int8(model, samples: int = 32, seed: int = 0) -> TfliteModel:
    """Full-int8 conversion of a Keras model (int8 input and output, batch 1)."""
    import tensorflow as tf

    shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.inputs]
    rng = np.random.default_rng(seed)
    calibration = [[rng.uniform(-1, 1, (1, *s)).astype(np.float32) for s in shapes] for _ in range(samples)]

    @tf.function(input_signature=[tf.TensorSpec((1, *s), tf.float32) for s in shapes])
    def serve(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return parse_tflite(converter.convert())


def reshape_to_squeeze(model: TfliteModel, squeeze_dims: list[int]) -> TfliteModel:
    """The same model with its last op, a RESHAPE that drops size-1 dims, rewritten as SQUEEZE
    (the converter folds every squeeze into RESHAPE, yet other exporters emit SQUEEZE)."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(bytearray(model.data), 0)
    op = raw.subgraphs[0].operators[-1]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SQUEEZE
    code.version = 1
    raw.operatorCodes.append(code)
    op.opcodeIndex = len(raw.operatorCodes) - 1
    op.inputs = op.inputs[:1]
    op.builtinOptionsType = schema.BuiltinOptions.SqueezeOptions
    op.builtinOptions = schema.SqueezeOptionsT()
    op.builtinOptions.squeezeDims = squeeze_dims
    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return parse_tflite(bytes(builder.Output()))


def random_inputs(model: TfliteModel, rng: np.random.Generator) -> list[np.ndarray]:
    arrays = []
    for t in model.input_tensors:
        info = np.iinfo(t.dtype) if np.issubdtype(t.dtype, np.integer) else None
        if info is not None:
            arrays.append(rng.integers(info.min, info.max + 1, size=t.shape, dtype=t.dtype))
        else:
            arrays.append(rng.uniform(-1, 1, size=t.shape).astype(t.dtype))
    return arrays


class NativeModel:
    """An AOT-compiled model built as a host shared library."""

    def __init__(self, model: TfliteModel, work_dir: Path, dsp: bool = False):
        from tinyedge.aot.compiler import compile_model
        from tinyedge.runtimes.aot import copy_kernel_sources

        self.model = model
        self.program = compile_model(model, dsp=dsp)
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "te_model.c").write_text(self.program.source)
        (work_dir / "te_model.h").write_text(self.program.header)
        kernels = kernel_objects(work_dir, copy_kernel_sources(work_dir, self.program))
        model_object = compile_object([CC, *OBJECT_FLAGS, f"-I{work_dir}", f"-I{FIRMWARE_DIR / 'common'}"],
                                      work_dir / "te_model.c", work_dir / "te_model.o")
        self.library_path = work_dir / "libmodel.so"
        command = [CC, "-shared", str(model_object), *map(str, kernels), "-o", str(self.library_path), "-lm"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"generated C does not link:\n{' '.join(command)}\n{result.stderr}")
        self.lib = ctypes.CDLL(str(self.library_path))
        self.lib.te_runtime_input.restype = ctypes.c_void_p
        self.lib.te_runtime_output.restype = ctypes.c_void_p
        self.lib.te_runtime_name.restype = ctypes.c_char_p
        self.lib.te_runtime_version.restype = ctypes.c_char_p
        assert self.lib.te_runtime_init() == 0

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        for i, (tensor, value) in enumerate(zip(self.model.input_tensors, inputs)):
            data = np.ascontiguousarray(value, dtype=tensor.dtype).tobytes()
            ctypes.memmove(self.lib.te_runtime_input(i), data, len(data))
        assert self.lib.te_runtime_invoke() == 0
        outputs = []
        for i, tensor in enumerate(self.model.output_tensors):
            raw = ctypes.string_at(self.lib.te_runtime_output(i), tensor.nbytes)
            outputs.append(np.frombuffer(raw, dtype=tensor.dtype).reshape(tensor.shape).copy())
        return outputs


def assert_matches_reference(model: TfliteModel, native: NativeModel, samples: int = 5, seed: int = 0) -> None:
    """The AOT C gives the same bytes as tflite-micro on random inputs (plus all-min and all-max)."""
    from tinyedge.reference import Reference

    reference = Reference(model)
    rng = np.random.default_rng(seed)
    cases = [random_inputs(model, rng) for _ in range(samples)]
    for fill in (np.iinfo(np.int8).min, np.iinfo(np.int8).max):
        cases.append([np.full(t.shape, fill, dtype=t.dtype) for t in model.input_tensors])
    for case, inputs in enumerate(cases):
        expected = reference.run(inputs)
        actual = native.run(inputs)
        for out, (want, got) in enumerate(zip(expected, actual)):
            if not np.array_equal(want, got):
                diff = np.flatnonzero(want.ravel() != got.ravel())
                raise AssertionError(
                    f"case {case}, output {out}: {diff.size}/{want.size} values differ, first at {diff[0]}: "
                    f"tflm {want.ravel()[diff[0]]} vs aot {got.ravel()[diff[0]]}")


AVR_RUNNER = """/* Runs the AOT model on baked-in inputs and prints every output byte in hex over UART0. */
#include <avr/io.h>
#include <avr/interrupt.h>
#include <avr/pgmspace.h>
#include <avr/sleep.h>
#include <stdint.h>
#include "tinyedge_runtime.h"
#include "inputs.h"

static void put(char c) {
  while (!(UCSR0A & (1 << UDRE0))) {
  }
  UDR0 = c;
}

static void put_hex(uint8_t v) {
  static const char digits[] = "0123456789abcdef";
  put(digits[v >> 4]);
  put(digits[v & 15]);
}

int main(void) {
  uint16_t sample, i;
  UBRR0H = 0;
  UBRR0L = 8;
  UCSR0B = (1 << TXEN0);
  UCSR0C = (1 << UCSZ01) | (1 << UCSZ00);
  te_runtime_init();
  for (sample = 0; sample < TE_SAMPLES; ++sample) {
    uint8_t *in = te_runtime_input(0);
    const uint8_t *out;
    for (i = 0; i < TE_INPUT_BYTES; ++i) {
      in[i] = pgm_read_byte(te_inputs + (uint32_t)sample * TE_INPUT_BYTES + i);
    }
    te_runtime_invoke();
    out = te_runtime_output(0);
    for (i = 0; i < TE_OUTPUT_BYTES; ++i) {
      put_hex(out[i]);
      if (i % 16 == 15) {
        put('\\n');
      }
    }
    put('\\n');
  }
  put('E');
  put('\\n');
  cli();
  sleep_cpu();
  return 0;
}
"""


def run_on_simavr(model: TfliteModel, inputs: list[np.ndarray], work_dir: Path) -> list[np.ndarray]:
    """Build the model's AOT sources for the ATmega328P (16-bit int, constants in PROGMEM), run them
    in simavr on the given single-input samples, and return the single output of each."""
    import re

    from tinyedge.boards import get_board
    from tinyedge.runtimes.aot import write_sources

    board = get_board("arduino-uno")
    sources = write_sources(model, board, work_dir, None, None)
    in_t, out_t = model.input_tensors[0], model.output_tensors[0]
    data = b"".join(np.ascontiguousarray(x, dtype=in_t.dtype).tobytes() for x in inputs)
    (work_dir / "inputs.h").write_text(
        f"#define TE_SAMPLES {len(inputs)}\n#define TE_INPUT_BYTES {in_t.nbytes}\n#define TE_OUTPUT_BYTES {out_t.nbytes}\n"
        f"static const uint8_t te_inputs[{len(data)}] PROGMEM = {{{', '.join(str(b) for b in data)}}};\n")
    (work_dir / "runner.c").write_text(AVR_RUNNER)
    elf = work_dir / "model.elf"
    command = ["avr-gcc", *board.cpu_flags, "-Os", "-std=c99", "-Wall", "-Wextra", "-Werror",
               "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections",
               f"-I{work_dir}", f"-I{work_dir / 'aot'}", f"-I{FIRMWARE_DIR / 'common'}",
               str(work_dir / "runner.c"), *[str(work_dir / s) for s in sources.sources], "-o", str(elf)]
    built = subprocess.run(command, capture_output=True, text=True)
    if built.returncode != 0:
        raise AssertionError(f"AOT C does not build for AVR:\n{built.stderr}")
    ran = subprocess.run(["simavr", "-m", "atmega328p", "-f", "16000000", str(elf)],
                         capture_output=True, text=True, timeout=300)
    text = re.sub(r"\x1b\[[0-9;]*m", "", ran.stdout + ran.stderr)
    lines = [line.strip().rstrip(".") for line in text.splitlines()]
    assert "E" in lines, f"the AVR run did not finish:\n{text[-2000:]}"
    hex_digits = "".join(line for line in lines if re.fullmatch(r"(?:[0-9a-f]{2})+", line))
    raw = bytes.fromhex(hex_digits)
    assert len(raw) == out_t.nbytes * len(inputs), f"expected {out_t.nbytes * len(inputs)} bytes, got {len(raw)}"
    return [np.frombuffer(raw[i * out_t.nbytes:(i + 1) * out_t.nbytes], dtype=out_t.dtype).reshape(out_t.shape)
            for i in range(len(inputs))]


def tflm_planned_tensor_bytes(model: TfliteModel) -> int:
    """The head of tflite-micro's arena: what its greedy planner gives the model's non-persistent
    tensors (and scratch buffers), as its RecordingMicroAllocator reports it."""
    import re

    from tinyedge.reference import captured_native_output, tflm_interpreter

    with captured_native_output() as log:
        interpreter = tflm_interpreter(model.data, max(len(model.data) * 10, 1 << 20))
        interpreter.print_allocations()
    for line in log:
        match = re.search(r"Arena allocation head (\d+) bytes", line)
        if match:
            return int(match.group(1))
    raise AssertionError("tflite-micro did not report its arena head:\n" + "\n".join(log))


# --- the AOT under AddressSanitizer, every op held to its own bytes --------------------------------

SANITIZER_CC = os.environ.get("TINYEDGE_SANITIZER_CC", shutil.which("clang") or "clang")
SANITIZER_FLAGS = ["-std=c99", "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                   "-fno-sanitize-recover=all"]

GUARD_SOURCE = """
/* Added by the test harness: before each op, the whole arena is poisoned but for the op's own tensors,
 * and te_scratch past the bytes the op declared, so AddressSanitizer stops any access outside them. */
#include <sanitizer/asan_interface.h>
typedef struct { uint32_t offset, bytes; } te_guard_region_t;
static void te_guard(const te_guard_region_t *regions, int count, uint32_t scratch_bytes) {
  int i;
  ASAN_POISON_MEMORY_REGION(&te_arena_mem, sizeof te_arena_mem);
  for (i = 0; i < count; ++i) {
    ASAN_UNPOISON_MEMORY_REGION(te_arena + regions[i].offset, regions[i].bytes);
  }
#ifdef te_scratch
  ASAN_UNPOISON_MEMORY_REGION(&te_scratch_mem, sizeof te_scratch_mem);
  ASAN_POISON_MEMORY_REGION(te_scratch + scratch_bytes, sizeof te_scratch_mem - scratch_bytes);
#else
  (void)scratch_bytes;
#endif
}
static void te_unguard(void) {
  ASAN_UNPOISON_MEMORY_REGION(&te_arena_mem, sizeof te_arena_mem);
#ifdef te_scratch
  ASAN_UNPOISON_MEMORY_REGION(&te_scratch_mem, sizeof te_scratch_mem);
#endif
}
"""

RUNNER_SOURCE = """/* Runs the model on samples read from stdin (each its inputs' bytes in order), writing every
 * output's bytes to stdout. */
#include <stdio.h>
#include <stdint.h>
#include "tinyedge_runtime.h"
#include "te_io.h"

int main(void) {
  unsigned i;
  if (te_runtime_init() != 0) {
    return 3;
  }
  for (;;) {
    for (i = 0; i < sizeof te_input_bytes / sizeof te_input_bytes[0]; ++i) {
      size_t got = fread(te_runtime_input((uint8_t)i), 1, te_input_bytes[i], stdin);
      if (got == 0 && i == 0) {
        return 0;
      }
      if (got != te_input_bytes[i]) {
        return 4;
      }
    }
    if (te_runtime_invoke() != 0) {
      return 5;
    }
    for (i = 0; i < sizeof te_output_bytes / sizeof te_output_bytes[0]; ++i) {
      fwrite(te_runtime_output((uint8_t)i), 1, te_output_bytes[i], stdout);
    }
  }
}
"""


def _has_code(op_line: str) -> bool:
    """An op line that calls something (not just comments: an alias, or an op fused into another's call)."""
    import re

    return bool(re.sub(r"/\*.*?\*/", "", op_line, flags=re.S).strip())


def guarded_source(model: TfliteModel, program) -> str:
    """te_model.c with te_guard(...) before each op's call: the op may touch its inputs' and outputs'
    arena bytes (and those of the ops without code that it computes, e.g. a fused FULLY_CONNECTED's)
    and the first `op_scratch_bytes` of te_scratch, nothing else."""
    guards, calls = [], []
    for op, line, scratch in zip(model.operators, program.op_lines, program.op_scratch_bytes):
        tensors = [t for t in op.inputs + op.outputs if t in program.tensor_offsets]
        if _has_code(line) or not calls:
            calls.append([line, tensors, scratch])
        else:
            calls[-1][0] += "\n" + line
            calls[-1][1] += tensors
    body = []
    for i, (line, tensors, scratch) in enumerate(calls):
        regions = sorted({(program.tensor_offsets[t], model.tensors[t].nbytes) for t in tensors})
        table = ", ".join(f"{{{o}, {n}}}" for o, n in regions) or "{0, 0}"
        guards.append(f"static const te_guard_region_t te_guard_{i}[] = {{{table}}};\n")
        body.append(f"  te_guard(te_guard_{i}, {len(regions)}, {scratch});\n{line}")
    invoke = "\n".join(program.op_lines)
    assert invoke in program.source, "te_model_invoke's body is not the op lines"
    head, tail = program.source.split("void te_model_invoke(void) {", 1)
    tail = tail.replace(invoke, "\n".join(body) + "\n  te_unguard();", 1)
    return head + GUARD_SOURCE + "".join(guards) + "void te_model_invoke(void) {" + tail


def sanitized_kernels(cache_dir: Path) -> Path:
    """The AOT kernel library (every firmware/aot/*.c) compiled once under the sanitizers, as an archive."""
    import hashlib

    sources = sorted((FIRMWARE_DIR / "aot").glob("*.[ch]"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources) + " ".join(SANITIZER_FLAGS).encode()).hexdigest()
    archive = cache_dir / f"te_kernels_{digest[:16]}.a"
    if archive.exists():
        return archive
    build_dir = cache_dir / f"kernels_{digest[:16]}"
    build_dir.mkdir(parents=True, exist_ok=True)
    objects = []
    for source in (p for p in sources if p.suffix == ".c"):
        obj = build_dir / f"{source.stem}.o"
        command = [SANITIZER_CC, *SANITIZER_FLAGS, "-c", f"-I{FIRMWARE_DIR / 'aot'}", f"-I{FIRMWARE_DIR / 'common'}",
                   str(source), "-o", str(obj)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"the kernels do not compile under the sanitizers:\n{result.stderr}")
        objects.append(str(obj))
    partial = archive.with_suffix(f".{os.getpid()}.tmp")
    subprocess.run(["ar", "rcs", str(partial), *objects], check=True)
    partial.replace(archive)
    return archive


class SanitizedModel:
    """An AOT-compiled model built as a host executable under AddressSanitizer and UBSan, each op
    held to its own tensors' arena bytes and its own share of te_scratch (guarded_source)."""

    def __init__(self, model: TfliteModel, work_dir: Path, kernels: Path, dsp: bool = False, program=None):
        from tinyedge.aot.compiler import compile_model

        self.model = model
        self.program = program or compile_model(model, dsp=dsp)
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "te_model.c").write_text(guarded_source(model, self.program))
        (work_dir / "te_model.h").write_text(self.program.header)
        sizes = lambda tensors: ", ".join(str(t.nbytes) for t in tensors)  # noqa: E731
        (work_dir / "te_io.h").write_text(
            f"static const size_t te_input_bytes[] = {{{sizes(model.input_tensors)}}};\n"
            f"static const size_t te_output_bytes[] = {{{sizes(model.output_tensors)}}};\n")
        (work_dir / "runner.c").write_text(RUNNER_SOURCE)
        self.executable = work_dir / "model"
        command = [SANITIZER_CC, *SANITIZER_FLAGS, f"-I{work_dir}", f"-I{FIRMWARE_DIR / 'aot'}",
                   f"-I{FIRMWARE_DIR / 'common'}", str(work_dir / "te_model.c"), str(work_dir / "runner.c"),
                   str(kernels), "-o", str(self.executable), "-lm"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"generated C does not compile:\n{' '.join(command)}\n{result.stderr}")

    def run(self, samples: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        """Every sample's outputs; AssertionError with the sanitizer's report when one fires."""
        data = b"".join(np.ascontiguousarray(x, dtype=t.dtype).tobytes()
                        for inputs in samples for t, x in zip(self.model.input_tensors, inputs))
        env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
               "UBSAN_OPTIONS": "print_stacktrace=1"}
        ran = subprocess.run([str(self.executable)], input=data, capture_output=True, env=env, timeout=600)
        if ran.returncode != 0:
            report = ran.stderr.decode(errors="replace")
            report = report[report.find("==ERROR") if "==ERROR" in report else 0:]
            report = report.split("Shadow bytes around")[0]
            raise AssertionError(f"the sanitized model failed (exit {ran.returncode}):\n{report[:4000]}")
        raw, outputs = ran.stdout, []
        for _ in samples:
            sample = []
            for t in self.model.output_tensors:
                sample.append(np.frombuffer(raw[:t.nbytes], dtype=t.dtype).reshape(t.shape).copy())
                raw = raw[t.nbytes:]
            outputs.append(sample)
        assert not raw and len(outputs) == len(samples), "the sanitized model wrote an unexpected number of bytes"
        return outputs
