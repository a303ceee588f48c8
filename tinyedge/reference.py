"""The host reference: tflite-micro's own Python interpreter, running TFLM's reference kernels.

Everything that says what a board *should* answer goes through here, so a board that runs TFLM's
reference kernels must match it bit for bit.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from tinyedge.aot import TFLM_COMMIT as AOT_TFLM_COMMIT
from tinyedge.errors import TinyedgeError
from tinyedge.tflite_model import TfliteModel, parse_tflite

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


class Reference:
    """Runs one model in tflite-micro's interpreter, one sample at a time."""

    def __init__(self, model: TfliteModel | bytes, arena_size: int | None = None):
        self.model = model if isinstance(model, TfliteModel) else parse_tflite(model)
        arena = arena_size or max(len(self.model.data) * 10, 1 << 20)
        with captured_native_output() as log:
            try:
                self._interp = tflm_interpreter(self.model.data, arena)
            except Exception as exc:
                failure = exc
            else:
                failure = None
        if failure is not None:
            raise _explain_failure(self.model, log, failure)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One inference: inputs as arrays of the model's input dtype (batch of 1), outputs likewise."""
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
            raise TinyedgeError(f"tflite-micro failed to run the model ({_last_line(log, failure)}).")
        return [np.array(self._interp.get_output(i)) for i in range(len(self.model.outputs))]

    def reset(self) -> None:
        """Every state tensor (LSTM, SVDF) back to its first value, as TFLM's ResetVariableTensors does."""
        self._interp.reset()

    def run_one(self, x: np.ndarray) -> np.ndarray:
        """Single-input, single-output convenience."""
        return self.run([x])[0]


def check_runs_in_tflm(model: TfliteModel) -> None:
    """Load the model in tflite-micro now, so an op TFLM lacks is named here rather than on the board."""
    Reference(model)


def measure_arena(model: TfliteModel, upper: int | None = None) -> int:
    """Smallest tensor arena (bytes, rounded up to 16) for which tflite-micro's host interpreter can
    allocate and invoke the model. This is a 64-bit host figure: 32-bit targets need less."""
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
