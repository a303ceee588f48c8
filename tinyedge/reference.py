"""The host reference: tflite-micro's own Python interpreter, running TFLM's reference kernels.

Everything that says what a board *should* answer goes through here, so a board that runs TFLM's
reference kernels must match it bit for bit. The ops tflite-micro has no int8 kernel for but TFLite has
(GELU, RELU_N1_TO_1, int8 EXP: `tflite_only_ops`) run in TFLite's interpreter, with its reference kernels:
that is their stated reference. A model with them runs in segments, each op in its own reference
(`SegmentedInterpreter`), and reports name it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from tinyedge.aot import TFLM_COMMIT as AOT_TFLM_COMMIT
from tinyedge.errors import TinyedgeError
from tinyedge.tflite_model import Operator, TfliteModel, parse_tflite

_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([A-Z0-9_]+)'|Failed to get registration from op code ([A-Z0-9_]+)")


@contextmanager
def captured_native_output() -> Iterator[list[str]]:
    """Capture what C/C++ code writes to fd 1 and 2 (TFLM's MicroPrintf, TensorFlow's logging)."""
    lines: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def tflm_interpreter(model_bytes: bytes, arena_size: int | None = None):
    """tflite-micro's own interpreter (its Python wrapper) over a model's bytes."""
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_size)


TFLITE_MICRO = "tflite-micro"
TFLITE = "tflite"
MIXED = "tflite-micro+tflite"   # each op in its own reference: tflite-micro, or TFLite for the ops it lacks
# Ops tflite-micro has no int8 kernel for (none for GELU and RELU_N1_TO_1, a float32 one for EXP), whose
# int8 kernel in TFLite the AOT runtime reproduces (the op registry's reference="tflite"): a model with
# one is checked against TFLite's interpreter for them.
TFLITE_REFERENCED = frozenset({"GELU", "RELU_N1_TO_1", "EXP"})


def _tflite_only(model: TfliteModel, op: Operator) -> bool:
    return op.opcode in TFLITE_REFERENCED and model.tensors[op.inputs[0]].dtype != np.float32


def tflite_only_ops(model: TfliteModel) -> list[str]:
    """The model's ops that only TFLite's interpreter runs (tflite-micro lacks their int8 kernel)."""
    return sorted({op.opcode for op in model.operators if _tflite_only(model, op)})


class TfliteInterpreter:
    """TFLite's own interpreter (tensorflow's tf.lite, its builtin reference kernels), called as
    tflite-micro's Python wrapper is (set_input, invoke, get_output)."""

    def __init__(self, model_bytes: bytes):
        import tensorflow as tf

        self.version = tf.__version__
        with warnings.catch_warnings():   # "tf.lite.Interpreter is deprecated": it is still TFLite's own
            warnings.simplefilter("ignore")
            self._interp = tf.lite.Interpreter(
                model_content=bytes(model_bytes),
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
        self._interp.allocate_tensors()
        self._inputs = [d["index"] for d in self._interp.get_input_details()]
        self._outputs = [d["index"] for d in self._interp.get_output_details()]

    def set_input(self, array: np.ndarray, index: int) -> None:
        self._interp.set_tensor(self._inputs[index], array)

    def invoke(self) -> None:
        self._interp.invoke()

    def get_output(self, index: int) -> np.ndarray:
        return self._interp.get_tensor(self._outputs[index])


class Segment:
    """A run of the model's operators as a model of its own: its inputs are the tensors it reads that an
    earlier segment (or the caller) wrote, its outputs those a later segment or the caller reads."""

    def __init__(self, model: TfliteModel, operators: list[int], in_tflite: bool, arena: int):
        self.inputs, self.outputs = _segment_io(model, operators)
        data = _submodel(model.data, operators, self.inputs, self.outputs)
        with captured_native_output() as log:
            try:
                self.interp = TfliteInterpreter(data) if in_tflite else tflm_interpreter(data, arena)
            except Exception as exc:
                failure = exc
            else:
                failure = None
        if failure is not None:
            raise _explain_failure(model, log, failure)


def _segment_io(model: TfliteModel, operators: list[int]) -> tuple[list[int], list[int]]:
    inside = set(operators)
    written = {t for i in operators for t in model.operators[i].outputs}
    read_later = {t for i, op in enumerate(model.operators) if i not in inside and i > min(inside) for t in op.inputs}
    inputs = list(dict.fromkeys(t for i in operators for t in model.operators[i].inputs
                                if t >= 0 and t not in written and not model.tensors[t].is_constant))
    outputs = [t for t in dict.fromkeys(t for i in operators for t in model.operators[i].outputs)
               if t in read_later or t in model.outputs]
    return inputs, outputs


def _submodel(data: bytes, operators: list[int], inputs: list[int], outputs: list[int]) -> bytes:
    """The model's bytes with only `operators` in its graph, reading `inputs` and writing `outputs`."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = model.subgraphs[0]
    graph.operators = [graph.operators[i] for i in operators]
    graph.inputs, graph.outputs = list(inputs), list(outputs)
    model.signatureDefs = []
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _segments(model: TfliteModel) -> list[tuple[list[int], bool]]:
    """The operators in runs of those tflite-micro runs and those only TFLite runs (True)."""
    runs: list[tuple[list[int], bool]] = []
    for index, op in enumerate(model.operators):
        in_tflite = _tflite_only(model, op)
        if runs and runs[-1][1] == in_tflite:
            runs[-1][0].append(index)
        else:
            runs.append(([index], in_tflite))
    return runs


class SegmentedInterpreter:
    """tflite-micro for every op it has a kernel for, TFLite's interpreter for the others (GELU...), one
    segment after the other, the tensors between them handed over: each op checked against its own
    reference. A stateful model runs whole in TFLite's interpreter (its state lives in one interpreter)."""

    def __init__(self, model: TfliteModel, arena: int):
        self.model = model
        self.segments = [Segment(model, ops, in_tflite, arena) for ops, in_tflite in _segments(model)]
        self.values: dict[int, np.ndarray] = {}

    def set_input(self, array: np.ndarray, index: int) -> None:
        self.values[self.model.inputs[index]] = array

    def invoke(self) -> None:
        for segment in self.segments:
            for position, tensor in enumerate(segment.inputs):
                segment.interp.set_input(self.values[tensor], position)
            segment.interp.invoke()
            for position, tensor in enumerate(segment.outputs):
                self.values[tensor] = np.array(segment.interp.get_output(position))

    def get_output(self, index: int) -> np.ndarray:
        return self.values[self.model.outputs[index]]


class Reference:
    """Runs one model in tflite-micro's interpreter, one sample at a time; a model with an op only TFLite
    runs (`tflite_only`) has those ops run by TFLite's interpreter (`interpreter` and `description` say so)."""

    def __init__(self, model: TfliteModel | bytes, arena_size: int | None = None):
        self.model = model if isinstance(model, TfliteModel) else parse_tflite(model)
        abort = tflm_abort_reason(self.model)
        if abort:
            raise TinyedgeError(abort)
        self.tflite_only = tflite_only_ops(self.model)
        self.interpreter, self.description, self.tflite_part = TFLITE_MICRO, TFLITE_MICRO, ""
        arena = arena_size or max(len(self.model.data) * 10, 1 << 20)
        if self.tflite_only:
            self._interp = self._mixed(arena)
            return
        with captured_native_output() as log:
            try:
                self._interp = tflm_interpreter(self.model.data, arena)
            except Exception as exc:
                failure = exc
            else:
                failure = None
        if failure is not None:
            raise _explain_failure(self.model, log, failure)

    def _mixed(self, arena: int):
        lacking = ", ".join(self.tflite_only)
        failure: Exception | None = None
        with captured_native_output() as log:
            try:
                tflite = TfliteInterpreter(self.model.data)
            except (RuntimeError, ValueError) as exc:
                failure = exc
        if failure is not None:
            raise TinyedgeError(f"TFLite's interpreter, the reference of {lacking} (tflite-micro has no int8 kernel "
                                f"for it), cannot load the model ({_last_line(log, failure)}): check that it "
                                "converted cleanly.")
        tflite_kernels = f"TFLite's interpreter (tensorflow {tflite.version}, reference kernels)"
        if self.model.is_stateful or all(op.opcode in self.tflite_only for op in self.model.operators):
            self.interpreter = TFLITE
            self.description = f"{tflite_kernels}: tflite-micro has no int8 kernel for {lacking}"
            return tflite
        self.interpreter = MIXED
        self.tflite_part = f"{tflite_kernels} for {lacking}, which tflite-micro has no int8 kernel for"
        self.description = f"tflite-micro, and {self.tflite_part}"
        return SegmentedInterpreter(self.model, arena)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One inference: inputs as arrays of the model's input dtype (batch of 1), outputs likewise. A model
        marked to reset its state each inference starts from its first state, as the board does."""
        if self.model.resets_state_each_inference and self.model.is_stateful:
            self._interp.reset()
        for index, (tensor, value) in enumerate(zip(self.model.input_tensors, inputs)):
            array = np.asarray(value, dtype=tensor.dtype).reshape(tensor.shape)
            self._interp.set_input(array, index)
        with captured_native_output() as log:
            try:
                self._interp.invoke()
            except Exception as exc:
                failure = exc
            else:
                failure = None
        if failure is not None:
            raise TinyedgeError(f"{self.description} failed to run the model ({_last_line(log, failure)}).")
        return [np.array(self._interp.get_output(i)) for i in range(len(self.model.outputs))]

    def reset(self) -> None:
        """Every state tensor (LSTM, SVDF) back to its first value, as TFLM's ResetVariableTensors does."""
        self._interp.reset()

    def run_one(self, x: np.ndarray) -> np.ndarray:
        """Single-input, single-output convenience."""
        return self.run([x])[0]


def tflm_abort_reason(model: TfliteModel) -> str | None:
    """What would make tflite-micro abort the whole process (a TFLITE_CHECK, not an error status) on
    preparing this model, as one sentence; None when nothing known would. Its int8 SOFTMAX's
    PreprocessSoftmaxScaling needs beta * input scale * 2^26 > 1 (QuantizeMultiplierGreaterThanOne)."""
    for op in model.operators:
        if op.opcode != "SOFTMAX" or model.tensors[op.inputs[0]].type_name != "INT8":
            continue
        beta = float(np.float32(getattr(op.options, "beta", 1.0)))
        scale = float(np.float32(model.tensors[op.inputs[0]].scale[0]))
        if beta * scale * (1 << 26) <= 1.0:
            return (f"tflite-micro aborts on this model: the input scale of SOFTMAX (operator {op.index}) times its beta "
                    f"is {beta * scale:.3g}, under the 2^-26 its int8 kernel needs, so the layer before it gives "
                    "(nearly) constant outputs: train the model, or quantize it with representative calibration data.")
    return None


def check_runs_in_tflm(model: TfliteModel) -> None:
    """Load the model in tflite-micro now, so an op TFLM lacks is named here rather than on the board."""
    Reference(model)


def measure_arena(model: TfliteModel, upper: int | None = None) -> int:
    """Smallest tensor arena (bytes, rounded up to 16) for which tflite-micro's host interpreter can
    allocate and invoke the model. This is a 64-bit host figure: 32-bit targets need less."""
    if tflite_only_ops(model):
        raise TinyedgeError(f"tflite-micro has no int8 kernel for {', '.join(tflite_only_ops(model))}: use "
                            f"--runtime aot, which runs {'it' if len(tflite_only_ops(model)) == 1 else 'them'}.")
    hi = upper or max(len(model.data) * 10, 1 << 20)
    if not _arena_works(model, hi):
        Reference(model, hi)  # raises with the reason
    lo = 0
    while hi - lo > 16:
        mid = (lo + hi) // 2
        if _arena_works(model, mid):
            hi = mid
        else:
            lo = mid
    return (hi + 15) // 16 * 16


def _arena_works(model: TfliteModel, size: int) -> bool:
    """Probe in a forked child: tflite-micro's Python wrapper segfaults on some too-small arenas."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        import faulthandler

        faulthandler.disable()  # a crash here is an answer ("too small"), not something to report
        os._exit(0 if _arena_probe(model, size) else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _arena_probe(model: TfliteModel, size: int) -> bool:
    with captured_native_output():
        try:
            interp = tflm_interpreter(model.data, size)
            for i, tensor in enumerate(model.input_tensors):
                interp.set_input(np.zeros(tensor.shape, dtype=tensor.dtype), i)
            interp.invoke()
        except Exception:
            return False
    return True


def _explain_failure(model: TfliteModel, log: list[str], exc: Exception) -> TinyedgeError:
    missing = sorted({m.group(1) or m.group(2) for line in log for m in [_MISSING_OP.search(line)] if m})
    custom = sorted({op.custom_code or "?" for op in model.operators if op.opcode == "CUSTOM"})
    missing = [f"CUSTOM op {', '.join(custom)}" if name == "CUSTOM" else name for name in missing]
    if missing:
        return TinyedgeError(
            f"TFLM has no kernel for {', '.join(missing)}: change the model to avoid "
            f"{'this op' if len(missing) == 1 else 'these ops'} (the model uses {', '.join(model.op_names())})."
        )
    return TinyedgeError(f"tflite-micro cannot load the model ({_last_line(log, exc)}): check that it converted cleanly.")


def _last_line(log: list[str], exc: Exception) -> str:
    meaningful = [line.strip() for line in log if line.strip()]
    return meaningful[-1] if meaningful else str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# ---------------------------------------------------------------- which tflite-micro the reference is

PIN_ENV = "TINYEDGE_REFERENCE_VERSION"
_PACKAGE_COMMIT = re.compile(r"-g([0-9a-f]{7,40})$")
_COMMIT = re.compile(r"[0-9a-f]{7,40}")


@dataclass(frozen=True)
class ReferenceVersion:
    """The installed host reference: the PyPI `tflite_micro` package and the commit it was built from."""
    package: str           # e.g. "0.dev20261023182759-g8f6596d"
    commit: str | None     # e.g. "8f6596d"

    def __str__(self) -> str:
        return f"tflite_micro {self.package}"


def reference_version() -> ReferenceVersion:
    try:
        from tflite_micro.python.tflite_micro._version import __version__ as package
    except ImportError:  # pragma: no cover - an older wheel without _version.py
        from importlib.metadata import version

        package = version("tflite_micro")
    found = _PACKAGE_COMMIT.search(package)
    return ReferenceVersion(package, found.group(1) if found else None)


def board_tflm_commit(runtime: str, runtime_version: str) -> str | None:
    """The tflite-micro commit whose arithmetic a board runs, when INFO says it: the tflm runtime
    reports its tree's commit; the AOT runtime states the one it reproduces."""
    if runtime == "aot":
        return AOT_TFLM_COMMIT
    if runtime != "tflm":
        return None
    found = re.match(r"([0-9a-f]{7,40})\b", runtime_version.strip())
    return found.group(1) if found else None


def same_commit(a: str, b: str) -> bool:
    """Two abbreviations of one commit: one is a prefix of the other."""
    return a.startswith(b) or b.startswith(a)


def check_pinned_reference(pinned: str | None = None) -> ReferenceVersion:
    """The installed reference, refused in one sentence when it is not the one pinned (the argument,
    else $TINYEDGE_REFERENCE_VERSION: a package version or a commit)."""
    installed = reference_version()
    pinned = (pinned or os.environ.get(PIN_ENV, "")).strip()
    if not pinned:
        return installed
    if pinned == installed.package or pinned == installed.package.split("-g")[0] or (
            installed.commit and _COMMIT.fullmatch(pinned) and same_commit(pinned, installed.commit)):
        return installed
    raise TinyedgeError(f"the host reference is {installed} (commit {installed.commit or 'unknown'}), not the "
                        f"{pinned} pinned by {PIN_ENV}: install that tflite_micro version (pip install "
                        f"tflite_micro==VERSION) or unset {PIN_ENV}.")
