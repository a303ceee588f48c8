"""On-device validation: send every input over serial, compare every output with the host reference.

Each result is appended to a JSONL journal as it arrives, so an interrupted run loses nothing and
`--resume` continues it; Ctrl-C still leaves a valid partial report. `validate_and_report` is the
whole stage as `tinyedge validate` and `tinyedge deploy` run it: the run and its report files.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from xml.etree import ElementTree as ET

import numpy as np

from tinyedge.events import CountProgress
from tinyedge.boards import get_board
from tinyedge.checks import check_input_arrays, check_integer_input, class_labels
from tinyedge.errors import DeviceError, TinyedgeError, ValidationFailed
from tinyedge.flash import emulator_counts_instructions
from tinyedge.inspection import op_macs
from tinyedge.outputs import Named, check_output_file, guard_outputs, remove_stale, write_atomically
from tinyedge.protocol import Device, check_link_options, infer_timeout
from tinyedge.quantize import (cosine_similarity, dequantize, load_array, load_float_model, pair_outputs, quantize_input,
                               run_float)
from tinyedge.reference import MIXED, PIN_ENV, TFLITE, Reference, ReferenceVersion, board_tflm_commit, check_pinned_reference, same_commit
from tinyedge.sections import EnergySettings
from tinyedge.tflite_model import Tensor, TfliteModel, load_tflite



@dataclass
class SampleResult:
    index: int
    output: list[int]
    expected: list[int]
    max_abs_diff: int
    cycles: int
    micros: int | None


NOT_A_NUMBER_LSB = 1 << 33   # the code of a NaN/infinite float output: beyond every int32, no int64 overflow


@dataclass
class ValidationReport:
    samples: int
    bit_exact: float
    max_abs_diff_lsb: int
    mean_abs_diff_lsb: float
    rmse: float
    cosine: float
    top1_agreement: float | None
    model_sha256: str
    board: str
    runtime: str
    arena_bytes: int
    passed: bool
    tolerance_lsb: int = 0
    accuracy: dict[str, float] | None = None
    latency_us: dict[str, float] | None = None
    latency_cycles: dict[str, float] | None = None
    latency_instructions: dict[str, float] | None = None   # QEMU with -icount: instructions, not time
    runtime_version: str = ""
    clock_hz: int = 0
    requested_samples: int = 0
    interrupted: bool = False
    failures: list[int] = field(default_factory=list)
    data_sha256: str = ""
    resumed_samples: int = 0          # results read back from the journal (re-checked, not re-run)
    error: str | None = None          # why the run stopped early (a device error), when it did
    latency_note: str | None = None   # why the latency figures are not the board's, when they are not
    energy_uj_estimate: float | None = None   # per inference (median latency x the datasheet's run power)
    energy_datasheet: dict[str, Any] | None = None   # the profile's figures the estimate used
    link: dict[str, Any] | None = None   # what the serial link did: retries, crc_errors, resyncs, timeouts, ...
    non_finite_outputs: int = 0          # board output values that were NaN or infinite (each fails its sample)
    reference_version: str = ""           # the host reference: the tflite_micro package (and its commit)
    reference: str = "tflite-micro"       # what computed the expected outputs ("tflite": TFLite's interpreter;
                                          # "tflite-micro+tflite": TFLite's for the ops tflite-micro lacks)
    reference_commit: str | None = None
    board_tflm_commit: str | None = None  # the tflite-micro commit the board's arithmetic comes from, when known
    version_mismatch: bool | None = None  # the two commits differ (None: the board's is unknown)
    extra: dict[str, Any] = field(default_factory=dict)   # e.g. deploy --fit-arena's figures

    @property
    def fails_by_version(self) -> bool:
        """Outputs differ, and the board runs another tflite-micro than the host reference."""
        return bool(self.failures) and bool(self.version_mismatch)

    def version_note(self) -> str:
        """Why differing outputs may be the reference's doing, not the board's ('' when they cannot be)."""
        if not self.fails_by_version:
            return ""
        return (f"the board runs tflite-micro {self.board_tflm_commit} but the host reference is {self.reference_version}: "
                f"a version mismatch, not necessarily a board fault (build the board from tflite-micro "
                f"{self.reference_commit}, or install the reference of {self.board_tflm_commit} and pin it with "
                f"{PIN_ENV})")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("extra"))
        return {k: v for k, v in data.items() if v is not None or k == "top1_agreement"}


# ---------------------------------------------------------------- inputs


Arrays = list[np.ndarray]   # one array of N samples per model input, in the model's input order


def load_inputs(paths: Path | Sequence[Path], model: TfliteModel) -> Arrays:
    """The arrays given with --data: one .npy per input in order, or one .npz keyed by input name."""
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    names = [t.name for t in model.input_tensors]
    if len(paths) == 1 and paths[0].suffix.lower() == ".npz" and paths[0].is_file():
        return arrays_by_name(paths[0], names)
    return [load_array(path, "validation data") for path in paths]


def arrays_by_name(path: Path, names: list[str]) -> Arrays:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        raise TinyedgeError(f"{path} is not a NumPy .npz archive: save the inputs with numpy.savez.") from None
    with archive:
        keys = list(archive.keys())
        if len(names) == 1 and len(keys) == 1:
            return [archive[keys[0]]]
        missing = [name for name in names if name not in keys]
        if missing:
            raise TinyedgeError(f"{path} has no array named {missing[0]!r} (it holds {', '.join(keys) or 'none'}): "
                                f"key its arrays by the model's input names ({', '.join(names)}), as inspect lists them.")
        return [archive[name] for name in names]


def as_arrays(data: np.ndarray | Arrays) -> Arrays:
    return [data] if isinstance(data, np.ndarray) else list(data)


def quantized_inputs(model: TfliteModel, data: np.ndarray | Arrays) -> Arrays:
    """Each input tensor's bytes for each sample: float data is quantized with that input's scale."""
    arrays = as_arrays(data)
    flags = check_input_arrays([(t.name, tuple(t.shape)) for t in model.input_tensors], arrays)
    return [quantized_input(tin, array, flag) for tin, array, flag in zip(model.input_tensors, arrays, flags)]


def quantized_input(tin: Tensor, data: np.ndarray, flag: str) -> np.ndarray:
    if np.issubdtype(data.dtype, np.floating) and tin.type_name != "FLOAT32":
        data = quantize_input(data, tin.scale[0], int(tin.zero_point[0]), tin.dtype)
    elif np.issubdtype(data.dtype, np.integer) and tin.type_name != "FLOAT32":
        check_integer_input(data, tin.dtype, flag)
    return data.astype(tin.dtype).reshape(len(data), *tin.shape)


def sample_inputs(inputs: Arrays, index: int) -> list[np.ndarray]:
    return [array[index] for array in inputs]


def inputs_sha256(inputs: Arrays) -> str:
    """The hash of the inputs a run was given (one input: that array's hash, as journals always had)."""
    if len(inputs) == 1:
        return array_sha256(inputs[0]) or ""
    return hashlib.sha256("".join(array_sha256(a) or "" for a in inputs).encode()).hexdigest()


def float_inputs(model: TfliteModel, data: np.ndarray | Arrays) -> Arrays:
    return [float_input(tin, array) for tin, array in zip(model.input_tensors, as_arrays(data))]


def float_input(tin: Tensor, data: np.ndarray) -> np.ndarray:
    if np.issubdtype(data.dtype, np.floating) or tin.type_name == "FLOAT32":
        return data.astype(np.float32).reshape(len(data), *tin.shape[1:])
    return dequantize(data, tin.scale[0], int(tin.zero_point[0])).reshape(len(data), *tin.shape[1:])


class OutputUnits:
    """Outputs in quantized steps (LSB) and in real units. A float output that a DEQUANTIZE produced is
    mapped back through that op's scale, so |Δ| stays in LSB for models whose I/O stayed float."""

    def __init__(self, model: TfliteModel, tensor: Tensor):
        self.is_float = tensor.type_name == "FLOAT32"
        source = tensor
        if self.is_float:
            producer = next((op for op in model.operators if tensor.index in op.outputs), None)
            if producer is not None and producer.opcode == "DEQUANTIZE":
                source = model.tensors[producer.inputs[0]]
        self.scale = float(source.scale[0]) if source.is_quantized else 1.0
        self.zero_point = int(source.zero_point[0]) if source.is_quantized else 0
        self.quantized = source.is_quantized

    def lsb(self, values: np.ndarray) -> np.ndarray:
        """Output codes; a NaN or infinite float output is NOT_A_NUMBER_LSB, farther than any real code."""
        values = np.asarray(values)
        if not self.is_float:
            return values.astype(np.int64)
        finite = np.isfinite(values.astype(np.float64))
        safe = np.where(finite, values, 0.0)
        if self.quantized:
            codes = np.round(safe.astype(np.float64) / self.scale).astype(np.int64) + self.zero_point
        else:
            codes = safe.astype(np.float32).view(np.int32).astype(np.int64)  # no scale: compare float bit patterns
        return np.where(finite, codes, NOT_A_NUMBER_LSB)

    def real(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return values if self.is_float else (values - self.zero_point) * self.scale


class Outputs:
    """All of a model's outputs as one flat vector per sample, as the device sends them (concatenated
    in order): compared in LSB output by output; top-1 and accuracy are taken on the first output."""

    def __init__(self, model: TfliteModel):
        self.tensors = model.output_tensors
        self.units = [OutputUnits(model, t) for t in self.tensors]
        self.bounds = np.cumsum([0] + [t.size for t in self.tensors])
        self.nbytes = sum(t.nbytes for t in self.tensors)

    def decode(self, data: bytes) -> list[float | int]:
        values, offset = [], 0
        for t in self.tensors:
            values += np.frombuffer(data, dtype=t.dtype, count=t.size, offset=offset).tolist()
            offset += t.nbytes
        return values

    def can_hold(self, values: list[Any]) -> bool:
        """Whether `values` could be a board's outputs: one per output value, integers within their
        tensor's type (a journal holds integers) or, for a float output, finite numbers."""
        if len(values) != self.bounds[-1]:
            return False
        for t, a, b in zip(self.tensors, self.bounds, self.bounds[1:]):
            kind = np.dtype(t.dtype)
            for v in values[a:b]:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    return False
                if kind.kind in "iu" and not (isinstance(v, int) and np.iinfo(kind).min <= v <= np.iinfo(kind).max):
                    return False
                if kind.kind == "f" and not math.isfinite(v):
                    return False
        return True

    def flatten(self, arrays: list[np.ndarray]) -> list[float | int]:
        return [v for t, a in zip(self.tensors, arrays) for v in np.asarray(a, dtype=t.dtype).ravel().tolist()]

    def _per_output(self, convert: str, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        blocks = [getattr(u, convert)(values[..., a:b]) for u, a, b in zip(self.units, self.bounds, self.bounds[1:])]
        return np.concatenate(blocks, axis=-1)

    def lsb(self, values: np.ndarray) -> np.ndarray:
        return self._per_output("lsb", values)

    def real(self, values: np.ndarray) -> np.ndarray:
        return self._per_output("real", values)

    def first(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values)[..., : self.bounds[1]]


# ---------------------------------------------------------------- journal

JOURNAL_FORMAT = 2


@dataclass(frozen=True)
class RunIdentity:
    """What a journal measured: a journal resumes only the run it was written for."""
    model_sha256: str
    data_sha256: str
    labels_sha256: str | None
    tolerance_lsb: int
    samples: int
    board: str = ""
    runtime: str = ""


# How each field is named in the sentence refusing a journal of another run.
IDENTITY_NAMES = {"model_sha256": "model", "data_sha256": "--data", "labels_sha256": "--labels",
                  "tolerance_lsb": "--tolerance-lsb", "samples": "number of samples", "board": "board",
                  "runtime": "runtime"}


def array_sha256(array: np.ndarray | None) -> str | None:
    """A hash of an array's values, dtype and shape (None for no array)."""
    if array is None:
        return None
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


Recheck = Callable[[int, list[Any], int, Any], SampleResult]   # (index, output, cycles, micros) -> result


class Journal:
    """Results as JSON lines: a header naming the run (model, data, labels, tolerance, board,
    runtime), then one line per sample. On resume only the board's outputs are read back; every
    comparison is made again against the host reference."""

    def __init__(self, path: Path, identity: RunIdentity, resume: bool, recheck: Recheck,
                 can_hold: Callable[[list[Any]], bool]):
        self.path = path
        self.done: dict[int, SampleResult] = {}
        if resume and path.exists():
            self._load(identity, recheck, can_hold)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            header = {"journal": "tinyedge-validate", "version": JOURNAL_FORMAT, **asdict(identity)}
            path.write_text(json.dumps(header) + "\n")
        self._handle = path.open("a")

    def _load(self, identity: RunIdentity, recheck: Recheck, can_hold: Callable[[list[Any]], bool]) -> None:
        lines = self.path.read_text().splitlines()
        header = self._header(lines[0] if lines else "")
        for key, name in IDENTITY_NAMES.items():
            if header.get(key) != getattr(identity, key):
                raise TinyedgeError(f"{self.path} records a run with another {name}: drop --resume to validate afresh, "
                                    "or give the journal of this run.")
        kept = lines[:1]
        for line in lines[1:]:
            try:
                row = json.loads(line)
                index, output = row["index"], row["output"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by the interruption
            if not (isinstance(index, int) and 0 <= index < identity.samples and isinstance(output, list)
                    and can_hold(output)):
                raise TinyedgeError(f"{self.path} has a damaged result line (sample {index!r}): drop --resume to validate afresh.")
            result = recheck(index, output, int(row.get("cycles") or 0), row.get("micros"))
            self.done[index] = result
            kept.append(json.dumps(asdict(result)))
        self.path.write_text("\n".join(kept) + "\n")

    def _header(self, line: str) -> dict[str, Any]:
        try:
            header = json.loads(line)
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("journal") != "tinyedge-validate":
            raise TinyedgeError(f"{self.path} is not a tinyedge validate journal: drop --resume or give the run's --journal.")
        if header.get("version") != JOURNAL_FORMAT:
            raise TinyedgeError(f"{self.path} was written by an older tinyedge and does not record what it measured: "
                                "drop --resume to validate afresh.")
        return header

    def append(self, result: SampleResult) -> None:
        self._handle.write(json.dumps(asdict(result)) + "\n")
        self._handle.flush()
        self.done[result.index] = result

    def close(self) -> None:
        self._handle.close()


# ---------------------------------------------------------------- the run


def check_device_matches(info: Any, model: TfliteModel) -> None:
    if info.model_sha256.lower() != model.sha256:
        raise DeviceError(
            f"the board runs a different model — flash it first (board: {info.model_sha256[:12]}…, "
            f"{model.path.name if model.path else 'model'}: {model.sha256[:12]}…)."
        )
    expected = [t.nbytes for t in model.input_tensors]
    got = [t.nbytes for t in info.inputs]
    if expected != got:
        raise DeviceError(f"the board's model takes {got} input bytes but the model here takes {expected}: flash it again.")


class Comparison:
    """A board output against the host reference for the same sample, in LSB."""

    def __init__(self, outputs: Outputs, expected: list[list[np.ndarray]]):
        self.outputs = outputs
        self.expected = expected

    def __call__(self, index: int, output: list[Any], cycles: int, micros: Any) -> SampleResult:
        want = self.outputs.flatten(self.expected[index])
        diff = int(np.max(np.abs(self.outputs.lsb(np.asarray(output, dtype=np.float64))
                                 - self.outputs.lsb(np.asarray(want, dtype=np.float64))))) if want else 0
        return SampleResult(index, output, want, diff, cycles, micros if isinstance(micros, int) else None)


def start_from_boot_state(device: Any, journal: Journal) -> None:
    """A stateful model's outputs depend on every sample before: the board's state goes back to its
    boot values, as the host reference starts, and a run cannot resume halfway through."""
    if journal.done:
        journal.close()
        raise TinyedgeError(f"{journal.path} records part of a run of a stateful model, whose state on the board "
                            "cannot be restored halfway: rerun validate without --resume.")
    try:
        device.reset_state()
    except DeviceError:
        journal.close()
        raise


def run_samples(device: Any, inputs: Arrays, compare: Comparison, journal: Journal,
                progress: CountProgress | None = None, stateful: bool = False) -> Iterator[SampleResult]:
    """INFER each sample, its inputs concatenated in the model's input order."""
    total = len(inputs[0])
    outputs = compare.outputs
    for index in range(total):
        if index in journal.done:
            continue
        resets = device.resets_seen
        answer = device.infer(b"".join(x.tobytes() for x in sample_inputs(inputs, index)))
        if stateful and device.resets_seen != resets:
            raise DeviceError(f"the board reset during sample {index} and lost the model's state, so its outputs "
                              "cannot be compared: check its power supply and rerun validate.")
        if len(answer.output) != outputs.nbytes:
            raise DeviceError(f"the board answered {len(answer.output)} output bytes for sample {index}, expected "
                              f"{outputs.nbytes}: flash the firmware again.")
        result = compare(index, outputs.decode(answer.output), int(answer.cycles), answer.micros)
        journal.append(result)
        if progress:
            progress(len(journal.done), total)
        yield result


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": float(np.min(values)), "median": float(np.median(values)), "max": float(np.max(values))}


def latency_note(board_id: str, icount: bool | None) -> str | None:
    """Under QEMU the latency is the host's time unless the guest counts instructions (-icount)."""
    try:
        flasher = get_board(board_id).flasher
    except TinyedgeError:
        return None  # a board without a profile here: real hardware
    if flasher != "qemu":
        return None
    if icount:
        return ("emulated by QEMU with -icount: latency_instructions are instruction counts (one per virtual ns), "
                "not the real chip's cycles or time")
    known = "without" if icount is False else "unless the emulator runs with"
    return (f"emulated by QEMU {known} -icount: latency is the host's time and is noise; "
            "flash or deploy with --icount for deterministic instruction counts")


def summarize(model: TfliteModel, info: Any, results: list[SampleResult], tolerance_lsb: int,
              classes: np.ndarray | None, float_outputs: np.ndarray | None, requested: int, interrupted: bool,
              error: str | None = None, icount: bool | None = None) -> ValidationReport:
    """The verdict, computed from the board's outputs against the host reference of each sample."""
    outputs = Outputs(model)
    width = int(outputs.bounds[-1])   # every output's values, also when no sample completed
    board = np.array([r.output for r in results], dtype=np.float64).reshape(len(results), width)
    host = np.array([r.expected for r in results], dtype=np.float64).reshape(len(results), width)
    diffs = np.abs(outputs.lsb(board) - outputs.lsb(host)) if len(results) else np.zeros((0, 1))
    per_sample = diffs.max(axis=1) if len(results) else np.zeros(0)
    numbers = np.isfinite(board) & np.isfinite(host)
    non_finite = int(np.sum(~np.isfinite(board)))
    board_f, host_f = outputs.real(board), outputs.real(host)
    board, host = outputs.first(board), outputs.first(host)
    top1 = float(np.mean(board.argmax(1) == host.argmax(1))) if len(results) and board.shape[1] > 1 else None
    accuracy = None
    if classes is not None and len(results) and board.shape[1] > 1:
        idx = np.array([r.index for r in results])
        truth = classes[idx]
        accuracy = {"board": float(np.mean(board.argmax(1) == truth)), "host_int8": float(np.mean(host.argmax(1) == truth))}
        if float_outputs is not None:
            accuracy["float"] = float(np.mean(float_outputs[idx].argmax(1) == truth))
    latency = Latency.of(results, int(info.cycle_hz), bool(icount))
    failures = [r.index for r, d in zip(results, per_sample) if d > tolerance_lsb]
    complete = bool(results) and len(results) == requested and not interrupted and error is None
    return ValidationReport(
        samples=len(results),
        bit_exact=float(np.mean(per_sample == 0)) if len(results) else 0.0,
        max_abs_diff_lsb=int(diffs[numbers].max()) if numbers.any() else 0,
        mean_abs_diff_lsb=float(diffs[numbers].mean()) if numbers.any() else 0.0,
        non_finite_outputs=non_finite,
        rmse=float(np.sqrt(np.mean((board_f - host_f)[numbers] ** 2))) if numbers.any() else 0.0,
        cosine=cosine_similarity(np.where(numbers, board_f, 0.0), np.where(numbers, host_f, 0.0)) if len(results) else 0.0,
        top1_agreement=top1,
        accuracy=accuracy,
        latency_us=latency.micros,
        latency_cycles=latency.cycles,
        latency_instructions=latency.instructions,
        arena_bytes=int(info.arena_used),
        model_sha256=model.sha256,
        board=info.board_id,
        runtime=info.runtime,
        runtime_version=info.runtime_version,
        clock_hz=int(info.clock_hz),
        passed=complete and not failures,
        tolerance_lsb=tolerance_lsb,
        requested_samples=requested,
        interrupted=interrupted,
        failures=failures[:100],
        error=error,
        latency_note=latency_note(info.board_id, icount),
        **energy_estimate(info.board_id, latency.median_seconds),
    )


@dataclass(frozen=True)
class Latency:
    """The board's latency figures: µs, timer cycles, or (QEMU -icount) instruction counts."""
    micros: dict[str, float] | None
    cycles: dict[str, float] | None
    instructions: dict[str, float] | None
    median_seconds: float | None

    @staticmethod
    def of(results: list[SampleResult], cycle_hz: int, icount: bool) -> Latency:
        micros = [r.micros for r in results if r.micros is not None]
        if icount and cycle_hz > 0:   # -icount shift=0: one instruction per virtual nanosecond
            return Latency(None, None, _stats([r.cycles * 1e9 / cycle_hz for r in results]), None)
        seconds = (float(np.median(micros)) / 1e6 if micros else
                   float(np.median([r.cycles for r in results])) / cycle_hz if results and cycle_hz > 0 else None)
        return Latency(_stats(micros) if micros else None,
                       _stats([r.cycles for r in results]) if not micros else None, None, seconds)


def energy_estimate(board_id: str, seconds: float | None) -> dict[str, Any]:
    """energy_uj_estimate per inference from the profile's datasheet run-mode power, when it has one."""
    try:
        board = get_board(board_id)
    except TinyedgeError:
        return {}
    if not board.has_section(EnergySettings) or seconds is None:
        return {}
    energy = board.settings(EnergySettings)
    return {"energy_uj_estimate": round(seconds * energy.watts * 1e6, 3), "energy_datasheet": energy.as_dict()}


def float_model_outputs(float_model: Path, data: Arrays, model: TfliteModel,
                        expected: list[list[np.ndarray]]) -> np.ndarray:
    """The float model's head that matches the int8 model's first output (the one accuracy is taken on)."""
    outputs = Outputs(model)
    host = outputs.real(np.array([outputs.flatten(e) for e in expected], dtype=np.float64))
    host_heads = [host[:, a:b] for a, b in zip(outputs.bounds, outputs.bounds[1:])]
    return pair_outputs(run_float(load_float_model(float_model), data), host_heads)[0]


class StoppedByDevice(DeviceError):
    """A device error after some samples ran: carries the partial report of the run it stopped."""

    def __init__(self, message: str, report: ValidationReport):
        super().__init__(message)
        self.report = report


def validate(
    port: str,
    model_path: str | Path,
    data: np.ndarray | Arrays,
    labels: np.ndarray | None = None,
    float_model: str | Path | None = None,
    tolerance_lsb: int = 0,
    journal_path: str | Path | None = None,
    resume: bool = False,
    baud: int | None = None,
    progress: CountProgress | None = None,
    on_info: Callable[[Any], None] | None = None,
    icount: bool | None = None,
    timeout: float | None = None,
    on_start: Callable[[], None] | None = None,
) -> ValidationReport:
    """Run every sample on the board and compare it with the host reference. A device error after
    the board answered INFO raises StoppedByDevice, whose report describes the partial run.
    `on_start` is called once the run is sure to start (the board answered, the journal is accepted)."""
    model = load_tflite(model_path)
    reference_version = check_pinned_reference()
    if tolerance_lsb < 0:
        raise TinyedgeError(f"--tolerance-lsb must be 0 or more (got {tolerance_lsb}).")
    check_link_options(baud, timeout)
    inputs = quantized_inputs(model, data)
    samples = len(inputs[0])
    outputs = Outputs(model)
    classes = class_labels(labels, samples, int(outputs.bounds[1])) if labels is not None else None
    reference = Reference(model)
    expected = [reference.run(sample_inputs(inputs, i)) for i in range(samples)]
    float_outputs = (float_model_outputs(Path(float_model), float_inputs(model, data), model, expected)
                     if float_model else None)
    compare = Comparison(outputs, expected)
    identity = RunIdentity(model.sha256, inputs_sha256(inputs), array_sha256(labels), tolerance_lsb, samples)
    interrupted, error = False, None
    if icount is None:
        icount = emulator_counts_instructions(port)
    with Device(port, **link_options(baud, timeout)) as device:
        info = device.info()
        check_device_matches(info, model)
        device.infer_timeout = timeout or infer_timeout_for(model, info, device)
        if on_info:
            on_info(info)
        identity = replace(identity, board=info.board_id, runtime=info.runtime)
        journal = Journal(Path(journal_path or "tinyedge-validate.jsonl"), identity, resume, compare, outputs.can_hold)
        resumed = len(journal.done)
        results: list[SampleResult] = list(journal.done.values())
        if model.carries_state:
            start_from_boot_state(device, journal)
        try:
            if on_start:
                on_start()
            if progress:
                progress(resumed, samples)
            for result in run_samples(device, inputs, compare, journal, progress, model.carries_state):
                results.append(result)
        except KeyboardInterrupt:
            interrupted = True
        except DeviceError as exc:
            error = exc
        finally:
            journal.close()
    results.sort(key=lambda r: r.index)
    report = summarize(model, info, results, tolerance_lsb, classes, float_outputs, samples, interrupted,
                       str(error) if error else None, icount)
    report.link = {**device.link.as_dict(), "baud": device.baud, "infer_timeout_s": round(device.infer_timeout, 3)}
    name_versions(report, reference_version)
    name_interpreter(report, reference)
    report.data_sha256 = identity.data_sha256
    report.resumed_samples = resumed
    if error is not None:
        raise StoppedByDevice(str(error), report) from None
    return report


def name_versions(report: ValidationReport, reference: ReferenceVersion) -> None:
    """Which tflite-micro the reference and the board each are, and whether they differ."""
    report.reference_version, report.reference_commit = str(reference), reference.commit
    report.board_tflm_commit = board_tflm_commit(report.runtime, report.runtime_version)
    if report.board_tflm_commit and reference.commit:
        report.version_mismatch = not same_commit(report.board_tflm_commit, reference.commit)


def name_interpreter(report: ValidationReport, reference: Reference) -> None:
    """A model checked against TFLite's interpreter, whole or for the ops tflite-micro lacks, says so (whole: no
    tflite-micro commit comparison applies)."""
    report.reference = reference.interpreter
    if reference.interpreter == TFLITE:
        report.reference_version, report.reference_commit, report.version_mismatch = reference.description, None, None
    elif reference.interpreter == MIXED:
        report.reference_version += f", and {reference.tflite_part}"


def link_options(baud: int | None, timeout: float | None) -> dict[str, Any]:
    """Device keyword arguments for the link: `--baud` (else pyserial's 115200), `--timeout`."""
    return {**({"baud": baud} if baud else {}), **({"timeout": timeout} if timeout else {})}


def infer_timeout_for(model: TfliteModel, info: Any, device: Any) -> float:
    """An INFER's timeout from the model's cost: its MACs at the board's clock, and its bytes on the wire."""
    macs = sum(op_macs(model, op) for op in model.operators)
    return infer_timeout(device.timeout, macs, int(info.clock_hz), info.input_bytes + info.output_bytes, device.baud)


# ---------------------------------------------------------------- the stage: a run and its reports


@dataclass
class ReportFiles:
    """Where a run's reports go (each optional); the results journal goes next to --json by default."""
    json: Path | None = None
    junit: Path | None = None
    plot: Path | None = None
    journal: Path | None = None

    @property
    def journal_path(self) -> Path:
        return self.journal or (self.json.with_suffix(".jsonl") if self.json else Path("tinyedge-validate.jsonl"))

    @property
    def named(self) -> dict[str, Path | None]:
        journal = "--journal" if self.journal else "the journal (--journal)"
        return {"--json": self.json, "--junit": self.junit, "--plot": self.plot, journal: self.journal_path}

    def prepare(self, inputs: Named | None = None, outputs: Named | None = None, cleared: Named | None = None) -> None:
        """Refuse a report path that names an input (or another output) and one that cannot be
        written, touching nothing; the previous run's reports stay until `remove_stale`."""
        guard_outputs(inputs or {}, {**self.named, **(outputs or {})}, cleared)
        for flag, path in self.named.items():
            if path:
                check_output_file(path, flag)

    def remove_stale(self) -> None:
        """Once the run is sure to start, remove the previous run's reports: whatever happens next,
        a report on disk describes this run or there is none."""
        for path, flag in ((self.json, "--json"), (self.junit, "--junit"), (self.plot, "--plot")):
            if path:
                remove_stale(path, flag)

    def write(self, report: ValidationReport, seconds: float) -> None:
        if self.json:
            write_json(report, self.json)
        if self.junit:
            write_junit(report, self.junit, seconds)
        if self.plot:
            write_plot(report, self.journal_path, self.plot)


@dataclass
class ValidationRun:
    """How a validation ended: its report (also on disk when asked), its journal, and a device error
    that stopped it early, if one did."""
    report: ValidationReport
    journal: Path
    seconds: float
    stopped: StoppedByDevice | None = None

    @property
    def passed(self) -> bool:
        return self.report.passed

    def raise_for_verdict(self) -> None:
        """A pass returns; a device error, an interruption or differing samples raise (exit 3, 130, 2)."""
        if self.stopped:
            raise self.stopped
        if self.report.interrupted:
            raise KeyboardInterrupt
        if not self.report.passed:
            note = self.report.version_note()
            raise ValidationFailed(
                f"{len(self.report.failures)} of {self.report.samples} samples differ from the host reference by more "
                f"than {self.report.tolerance_lsb} LSB (max {self.report.max_abs_diff_lsb})"
                + (f"; {self.report.non_finite_outputs} output values were NaN or infinite"
                   if self.report.non_finite_outputs else "")
                + (f"; {note}" if note else "") + f": see {self.journal}."
            )


def validate_and_report(
    port: str,
    model: str | Path,
    data: Path | Sequence[Path] | np.ndarray | Arrays,
    labels: Path | np.ndarray | None = None,
    float_model: str | Path | None = None,
    tolerance_lsb: int = 0,
    reports: ReportFiles | None = None,
    resume: bool = False,
    baud: int | None = None,
    timeout: float | None = None,
    icount: bool | None = None,
    extra: dict[str, Any] | None = None,
    progress: CountProgress | None = None,
) -> ValidationRun:
    """Validate on the board at `port` and write the reports asked for; results go to the journal as
    they arrive. Ctrl-C or a device error mid-run still writes the partial run's reports."""
    reports = reports or ReportFiles()
    given = [data] if isinstance(data, (str, Path, np.ndarray)) else list(data)
    reports.prepare(paths_among({"--model": model, "--data": given, "--labels": labels, "--float-model": float_model}))
    arrays = given if all(isinstance(a, np.ndarray) for a in given) else load_inputs(given, load_tflite(model))
    label_array = labels if labels is None or isinstance(labels, np.ndarray) else load_array(labels, "labels")
    started = time.monotonic()
    stopped: StoppedByDevice | None = None
    try:
        report = validate(port, model, arrays, label_array, float_model, tolerance_lsb, reports.journal_path, resume,
                          baud, progress, icount=icount, timeout=timeout, on_start=reports.remove_stale)
    except StoppedByDevice as exc:
        stopped, report = exc, exc.report
    seconds = time.monotonic() - started
    report.extra.update(extra or {})
    reports.write(report, seconds)
    return ValidationRun(report, reports.journal_path, seconds, stopped)


def paths_among(named: dict[str, Any]) -> dict[str, Path]:
    """The arguments given as paths (not arrays): the files a stage reads (a repeated flag once per file)."""
    found: dict[str, Path] = {}
    for flag, value in named.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for position, item in enumerate(values):
            if isinstance(item, (str, Path)):
                found[flag if position == 0 else f"{flag} ({position + 1})"] = Path(item)
    return found


# ---------------------------------------------------------------- outputs for rigs


def write_json(report: ValidationReport, path: Path) -> None:
    write_atomically(path, json.dumps(report.as_dict(), indent=2) + "\n", "--json")


def write_junit(report: ValidationReport, path: Path, seconds: float = 0.0) -> None:
    """One suite; a case for bit-exactness (within tolerance), one for completeness, one per label metric."""
    suite = ET.Element("testsuite", name=f"tinyedge.validate.{report.board}", timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"),
                       time=f"{seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    for key in ("board", "runtime", "runtime_version", "reference_version", "board_tflm_commit", "model_sha256",
                "data_sha256", "arena_bytes", "samples", "bit_exact", "max_abs_diff_lsb"):
        value = getattr(report, key)
        ET.SubElement(props, "property", name=key, value="" if value is None else str(value))
    for key, value in (report.link or {}).items():
        ET.SubElement(props, "property", name=f"link_{key}", value=str(value))
    cases = []
    agreement = ET.Element("testcase", classname=f"tinyedge.{report.board}.{report.runtime}", name="outputs_match_host_reference")
    if report.failures:
        failure = ET.SubElement(agreement, "failure", message=(
            f"{len(report.failures)} of {report.samples} samples differ by more than {report.tolerance_lsb} LSB "
            f"(max {report.max_abs_diff_lsb} LSB)" + (f"; {report.version_note()}" if report.fails_by_version else "")))
        failure.text = "first differing samples: " + ", ".join(map(str, report.failures[:20]))
    cases.append(agreement)
    complete = ET.Element("testcase", classname=f"tinyedge.{report.board}.{report.runtime}", name="all_samples_ran")
    if report.samples != report.requested_samples or report.interrupted or report.error:
        ET.SubElement(complete, "failure", message=f"ran {report.samples} of {report.requested_samples} samples"
                      + (" (interrupted)" if report.interrupted else "") + (f": {report.error}" if report.error else ""))
    cases.append(complete)
    suite.extend(cases)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", "0")
    write_atomically(path, ET.tostring(suite, encoding="utf-8", xml_declaration=True), "--junit")


def write_plot(report: ValidationReport, journal_path: Path, path: Path) -> None:
    """Histogram of |Δ| in LSB and of latency, for people."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in journal_path.read_text().splitlines()[1:] if line.strip()]
    diffs = [r["max_abs_diff"] for r in rows]
    latency = [r["micros"] if r["micros"] is not None else r["cycles"] for r in rows]
    unit = "µs" if rows and rows[0]["micros"] is not None else "cycles"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.hist(diffs, bins=range(0, max(diffs + [0]) + 2), color="tab:blue", align="left")
    left.set_title(f"max |Δ| per sample (LSB) — {100 * report.bit_exact:.1f} % bit-exact")
    left.set_xlabel("LSB")
    right.hist(latency, bins=30, color="tab:green")
    right.set_title(f"latency per inference ({unit})")
    right.set_xlabel(unit)
    fig.suptitle(f"{report.board} · {report.runtime} · {report.samples} samples · {'PASS' if report.passed else 'FAIL'}")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    write_atomically(path, png.getvalue(), "--plot")
