"""ONNX (and so PyTorch) models in.

ONNX Runtime runs the model as its authors wrote it: it is the float reference. For quantization,
onnx2tf turns the graph into a float SavedModel (channels-last, batch fixed to 1) that tinyedge's
own converter then quantizes to full int8, exactly as for a Keras model. onnx2tf's own int8 mode
is not used: it allows Flex ops that TFLM cannot run.

Two of onnx2tf's habits are handled here: it simplifies the .onnx in place (so it works on a copy),
and for models whose inputs are all 4-D images it loads a sample image file, which it downloads
unless one lies in its working directory (so one is written there: nothing is downloaded).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from functools import cached_property
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Iterator

import numpy as np

from tinyedge.checks import check_samples
from tinyedge.errors import TinyedgeError
from tinyedge.float_models import load_saved_model
from tinyedge.onnx_recurrent import conv_reads_input, convert_recurrent, has_recurrent_op

ONNX_SUFFIX = ".onnx"
# The file onnx2tf's download_test_image_data() reads from its working directory before it
# would download it (onnx2tf 1.x, utils/common_functions.py).
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
ONNX2TF_SAMPLES = 20
# The oldest ONNX opset onnx2tf's op handlers read; the newest is the one the installed onnx package
# (which onnx2tf reads graphs with) knows.
MIN_OPSET = 7
# tinyedge's own conversion of LSTM/GRU graphs is checked against ONNX Runtime in float on this many
# random inputs, to this relative error (float32 rounding over a few dozen time steps).
FLOAT_CHECKS = 3
FLOAT_TOLERANCE = 1e-4
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The exception a Python traceback ends with, e.g. "ValueError: An `initial_state` was passed ...".
EXCEPTION_LINE = re.compile(r"^((?:\w+\.)*\w+(?:Error|Exception): .+)$", re.MULTILINE)


def is_onnx(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ONNX_SUFFIX


def channels_last_axes(rank: int) -> tuple[int, ...]:
    """The permutation that takes a channels-first array (N, C, ...) to channels-last (N, ..., C)."""
    return (0, *range(2, rank), 1) if rank >= 3 else tuple(range(rank))


def channels_first_axes(rank: int) -> tuple[int, ...]:
    return tuple(int(a) for a in np.argsort(channels_last_axes(rank)))


def layout_name(rank: int, channels_last: bool) -> str:
    spatial = {3: "W", 4: "HW", 5: "DHW"}.get(rank)
    if spatial is None:
        return f"{rank}-D"
    return f"N{spatial}C" if channels_last else f"NC{spatial}"


class OnnxModel:
    """An ONNX model: predicts with ONNX Runtime; converted to a float Keras model on first need.

    Inputs and outputs are taken in the board's layout (channels-last, as onnx2tf converts them);
    `arrange` also accepts the user's arrays in the layout the ONNX model declares (e.g. NCHW).
    """
    reference_name = "ONNX Runtime"

    def __init__(self, path: Path):
        self.path = path
        self.proto = _load_proto(path)
        self.session = _session(path, self.proto)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise TinyedgeError(f"{path} has {len(inputs)} inputs; tinyedge takes single-input models: export one with one input.")
        self.input_name = inputs[0].name
        self.onnx_shape = _fixed_shape(path, inputs[0].shape)
        rank = len(self.onnx_shape)
        # LSTM/GRU graphs are converted by tinyedge (onnx_recurrent): channels-last only into a Conv.
        self.recurrent = has_recurrent_op(self.proto)
        self.starts_from_zero_state = self.recurrent   # a non-zero initial state is refused on conversion
        self.channels_last = rank >= 3 and (not self.recurrent or conv_reads_input(self.proto))
        self.outputs_channels_last = self.channels_last and not self.recurrent
        self.input_shapes = [tuple(self.onnx_shape[a] for a in channels_last_axes(rank)) if self.channels_last
                             else self.onnx_shape]
        self._workdir: tempfile.TemporaryDirectory | None = None

    # -- layouts

    @property
    def onnx_layout(self) -> str:
        return layout_name(len(self.onnx_shape), False)

    @property
    def board_layout(self) -> str:
        return layout_name(len(self.onnx_shape), self.channels_last)

    def declared_layout(self, data: np.ndarray) -> bool:
        """True when the samples come in the ONNX model's own layout (and so need transposing)."""
        sample = tuple(data.shape[1:])
        return self.channels_last and sample in (tuple(self.onnx_shape[1:]), tuple(self.onnx_shape))

    def arrange(self, data: np.ndarray, what: str, source: str) -> np.ndarray:
        """The samples in the board's layout: taken as they are, or transposed from the ONNX layout."""
        board_sample = tuple(self.input_shapes[0][1:])
        if self.declared_layout(data):
            data = data.reshape((len(data), *self.onnx_shape[1:]))
            data = np.ascontiguousarray(data.transpose(channels_last_axes(data.ndim)))
        if self.channels_last and tuple(data.shape[1:]) not in (board_sample, tuple(self.input_shapes[0])):
            onnx_sample = tuple(self.onnx_shape[1:])
            raise TinyedgeError(
                f"the {what} data in {source} has samples of shape {tuple(data.shape[1:])}, but the ONNX model takes "
                f"{onnx_sample} ({self.onnx_layout}, as it declares) or {board_sample} ({self.board_layout}): "
                f"give an array of shape (N, {', '.join(map(str, onnx_sample))})."
            )
        return check_samples(data, self.input_shapes[0], what, source)

    # -- the float reference

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], dtype=np.float32).reshape(self.input_shapes[0])
        if self.channels_last:
            x = x.transpose(channels_first_axes(x.ndim))
        outputs = self.session.run(None, {self.input_name: np.ascontiguousarray(x)})
        return [np.asarray(o).transpose(channels_last_axes(o.ndim)) if self.outputs_channels_last and o.ndim >= 3
                else np.asarray(o) for o in outputs]

    # -- the converted float model, for tinyedge's quantizer

    @cached_property
    def keras_model(self) -> Any:
        if self.recurrent:
            model = convert_recurrent(self.proto, self.channels_last)
            self.check_float_agreement(model)
            return model
        saved_model = self.convert_to_saved_model()
        converted = load_saved_model(saved_model)
        if converted.input_shapes[0] != self.input_shapes[0]:
            raise TinyedgeError(
                f"onnx2tf converted {self.path.name} to an input of shape {converted.input_shapes[0]}, not the expected "
                f"{self.input_shapes[0]}: export the model with a {self.onnx_layout} input."
            )
        return converted.keras_model

    def check_float_agreement(self, model: Any) -> None:
        """tinyedge's own conversion must compute what ONNX Runtime computes, before anything is quantized."""
        rng = np.random.default_rng(0)
        for _ in range(FLOAT_CHECKS):
            x = rng.normal(0, 1, self.input_shapes[0]).astype(np.float32)
            expected = self.predict([x])
            got = model(x, training=False)
            got = [np.asarray(g) for g in (got if isinstance(got, (list, tuple)) else [got])]
            for e, g in zip(expected, got):
                error = float(np.max(np.abs(e.ravel() - g.ravel()))) / max(1.0, float(np.max(np.abs(e))))
                if e.size != g.size or error > FLOAT_TOLERANCE:
                    raise TinyedgeError(f"tinyedge's conversion of {self.path.name} differs from ONNX Runtime's outputs "
                                        f"(relative error {error:.2g}): export the recurrent part alone and report it.")

    def convert_to_saved_model(self) -> Path:
        """Run onnx2tf on a copy of the model, in a directory that holds its sample image file."""
        if importlib.util.find_spec("onnx2tf") is None:
            raise TinyedgeError("onnx2tf is not installed, and tinyedge converts ONNX models with it: run ./install.sh "
                                "(it installs onnx2tf without its version pins).")
        self._workdir = tempfile.TemporaryDirectory(prefix="tinyedge-onnx2tf-")
        work = Path(self._workdir.name)
        model = work / "model.onnx"
        save_inlined(self.proto, model)
        rng = np.random.default_rng(0)
        np.save(work / ONNX2TF_SAMPLE_FILE,
                rng.uniform(0, 1, (ONNX2TF_SAMPLES, *self.input_shapes[0][1:])).astype(np.float32))
        out = work / "saved_model"
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "NO_COLOR": "1"}
        command = [sys.executable, "-m", "onnx2tf", "-i", str(model), "-o", str(out), "-b", "1"]
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        if result.returncode != 0 or not (out / "saved_model.pb").exists():
            raise TinyedgeError(f"onnx2tf could not convert {self.path.name}: {conversion_failure(result.stdout + result.stderr)}")
        return out


def save_inlined(proto: Any, path: Path) -> None:
    """The model as one file, its weights inlined (onnx2tf reads no external data from elsewhere)."""
    import onnx

    onnx.save_model(proto, str(path), save_as_external_data=False)


def conversion_failure(log: str) -> str:
    """The op onnx2tf stopped at, in one clause with what to do."""
    text = ANSI.sub("", log)
    missing = re.findall(r"(\S+) OP is not yet implemented", text)
    if missing:
        return f"it has no conversion for the ONNX op {missing[-1]}; replace that op in the model before exporting it."
    nodes = re.findall(r"onnx_op_type:\s*(\S+)\s+onnx_op_name:\s*(\S+)", text)
    if nodes:
        op, name = nodes[-1]
        errors = EXCEPTION_LINE.findall(text)
        cause = f" with {errors[-1].strip().split('. ')[0].rstrip('.')}" if errors else ""
        return f"it failed at the ONNX op {op} (node {name}){cause}; replace that op in the model before exporting it."
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1][:200] if lines else "no output") + "; check that the model runs in ONNX Runtime."


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise TinyedgeError(f"the {module} package is not installed, and ONNX models need it: run ./install.sh.")


def _load_proto(path: Path) -> Any:
    """The model with every tensor inlined: external data (as torch.onnx.export writes it) is read from
    the model's own folder; the user's files are only read."""
    _require("onnx")
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise TinyedgeError(f"{path} does not exist: give the .onnx file the model was exported to.")
    try:
        proto = onnx.load(str(path), load_external_data=False)
        check_opset(proto, path)
        load_external_data(proto, path)
        onnx.checker.check_model(proto)
    except (DecodeError, onnx.checker.ValidationError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise TinyedgeError(f"{path} is not a valid ONNX model ({first}): export it again, e.g. with torch.onnx.export.") from None
    return proto


def load_external_data(proto: Any, path: Path) -> None:
    """Inline each tensor stored in an external file, after checking that the file lies in the model's folder."""
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_tensor, uses_external_data

    folder = path.parent.resolve()
    for tensor in model_tensors(proto):
        if not uses_external_data(tensor):
            continue
        location = ExternalDataInfo(tensor).location
        data_file = (folder / location).resolve()
        if PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute() \
                or ".." in PurePosixPath(location.replace("\\", "/")).parts or not data_file.is_relative_to(folder):
            raise TinyedgeError(f"{path.name} stores tensor {tensor.name} in {location!r}, outside the model's folder "
                                f"{folder}: save the model with its external data next to it (a file name, no path).")
        if not data_file.is_file():
            raise TinyedgeError(f"{path.name} stores tensor {tensor.name} in {location!r}, which is missing from "
                                f"{folder}: copy that file next to the model, as torch.onnx.export wrote it.")
        load_external_data_for_tensor(tensor, str(folder))


def model_tensors(proto: Any) -> Iterator[Any]:
    """Every TensorProto of a model: initializers and constant attributes, in subgraphs and functions too."""
    graphs = [proto.graph]
    nodes = [node for function in proto.functions for node in function.node]
    while graphs or nodes:
        if graphs:
            graph = graphs.pop()
            yield from graph.initializer
            yield from (sparse.values for sparse in graph.sparse_initializer)
            nodes.extend(graph.node)
            continue
        for attribute in nodes.pop().attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            graphs.extend([attribute.g] if attribute.HasField("g") else [])
            graphs.extend(attribute.graphs)


def check_opset(proto: Any, path: Path) -> None:
    """Refuse an opset onnx2tf cannot read, before anything is converted or written."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise TinyedgeError(f"{path.name} uses ONNX opset {opset}, which onnx2tf cannot read (it reads opsets "
                            f"{MIN_OPSET} to {newest}): export it again with torch.onnx.export(..., opset_version=18).")


def _session(path: Path, proto: Any) -> Any:
    _require("onnxruntime")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for graphs it cannot run
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise TinyedgeError(f"ONNX Runtime cannot run {path} ({first}): check the model's ops and opset.") from None


def _fixed_shape(path: Path, shape: list[Any]) -> tuple[int, ...]:
    """The input shape with a free batch dimension fixed to 1, as for Keras models."""
    dims = [1 if i == 0 and not isinstance(d, int) else d for i, d in enumerate(shape)]
    if dims and dims[0] in (0, -1):
        dims[0] = 1
    if any(not isinstance(d, int) or d <= 0 for d in dims):
        raise TinyedgeError(
            f"{path} has a free input dimension besides the batch ({shape}): export it with fixed input shapes."
        )
    return tuple(int(d) for d in dims)
