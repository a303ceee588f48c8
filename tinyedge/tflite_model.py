"""Read a `.tflite` flatbuffer into plain Python objects, without importing TensorFlow.

Uses the schema bindings that ship with tflite-micro, so reading a model costs milliseconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinyedge.errors import TinyedgeError

TFLITE_IDENTIFIER = b"TFL3"

_OPCODE_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TENSOR_TYPES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_NUMPY_TYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "UINT8": np.uint8,
    "INT64": np.int64, "INT16": np.int16, "INT8": np.int8, "BOOL": np.bool_, "UINT32": np.uint32,
    "FLOAT64": np.float64, "UINT16": np.uint16, "UINT64": np.uint64,
}
ACTIVATIONS = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
PADDINGS = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    type_name: str
    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dimension: int
    data: np.ndarray | None
    is_variable: bool = False

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_NUMPY_TYPES.get(self.type_name, np.uint8))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def is_quantized(self) -> bool:
        return self.scale.size > 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass(frozen=True)
class Operator:
    index: int
    opcode: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Any
    custom_code: str | None = None
    custom_options: bytes = b""     # a custom op's options (a flexbuffer for TFLM's signal library)

    @property
    def kind(self) -> str:
        """The op's name in registries: its custom code for a custom op (e.g. SignalRfft), else the opcode."""
        return (self.custom_code or "?") if self.opcode == "CUSTOM" else self.opcode

    @property
    def activation(self) -> str:
        value = getattr(self.options, "fusedActivationFunction", 0)
        return ACTIVATIONS.get(value, "NONE")


# Operators whose state outlives an inference even where a converter did not mark a tensor variable.
STATEFUL_OPS = frozenset({"SVDF", "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN",
                          "BIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_RNN", "VAR_HANDLE",
                          "ASSIGN_VARIABLE", "READ_VARIABLE",
                          # TFLM's signal library: ops that keep buffers or estimates from call to call.
                          "SignalDelay", "SignalFramer", "SignalStacker", "SignalOverlapAdd",
                          "SignalFilterBankSpectralSubtraction"})


@dataclass
class TfliteModel:
    path: Path | None
    data: bytes
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    opcodes: list[tuple[str, int]] = field(default_factory=list)
    subgraph_count: int = 1
    metadata: dict[str, bytes] = field(default_factory=dict)   # the flatbuffer's named metadata buffers

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    def op_names(self) -> list[str]:
        """Distinct operator names, sorted: exactly what an op resolver must register (a custom op by its
        custom code, e.g. SignalRfft)."""
        return sorted({op.custom_code or "?" if op.opcode == "CUSTOM" else op.opcode for op in self.operators})

    def op_versions(self) -> dict[str, int]:
        """Each op's highest version, a custom op under its custom code (as `op_names`)."""
        versions: dict[str, int] = {}
        for op in self.operators:
            versions[op.kind] = max(versions.get(op.kind, 0), op.version)
        return dict(sorted(versions.items()))

    @property
    def is_stateful(self) -> bool:
        """True when an inference depends on the ones before it: variable tensors (SVDF and LSTM
        state) or resource variables, which the board keeps from boot."""
        return any(t.is_variable for t in self.tensors) or not STATEFUL_OPS.isdisjoint(self.op_names())

    @property
    def resets_state_each_inference(self) -> bool:
        """True when the model is marked to start every inference from its first state (RESET_STATE_METADATA),
        as the PyTorch model an LSTM was converted from does."""
        return self.metadata.get(RESET_STATE_METADATA) == RESET_EACH_INFERENCE

    @property
    def carries_state(self) -> bool:
        """True when an inference's outputs depend on the inferences before it: stateful and not reset
        at the start of each inference."""
        return self.is_stateful and not self.resets_state_each_inference

    def parameter_count(self) -> int:
        return sum(t.size for t in self.tensors if t.is_constant)

    def io_types(self) -> list[str]:
        return [t.type_name for t in self.input_tensors + self.output_tensors]

    def full_int8_problems(self) -> list[str]:
        """Why this model is not full int8; an empty list means it is."""
        problems = []
        for t in self.input_tensors:
            if t.type_name != "INT8":
                problems.append(f"input '{t.name}' is {t.type_name.lower()}")
        for t in self.output_tensors:
            if t.type_name != "INT8":
                problems.append(f"output '{t.name}' is {t.type_name.lower()}")
        # QUANTIZE between two int8 tensors is a requantization (e.g. before CONCATENATION) and
        # stays full int8; any float tensor means part of the graph runs in float.
        float_tensors = self._float_tensors()
        if float_tensors and not problems:
            problems.append(f"{len(float_tensors)} tensors are float (e.g. '{float_tensors[0].name}')")
        return problems

    def float_inside_problems(self) -> list[str]:
        """Why the model does not compute in int8 between its inputs and outputs. Float I/O converted
        at the edges by QUANTIZE/DEQUANTIZE is fine; float tensors anywhere else are not."""
        edges = set(self.inputs) | set(self.outputs)
        inside = [t for t in self._float_tensors() if t.index not in edges]
        return [f"{len(inside)} inner tensors are float (e.g. '{inside[0].name}')"] if inside else []

    def _float_tensors(self) -> list[Tensor]:
        """Float tensors holding data: TFLM's LSTM declares empty (shape [0]) float intermediates that
        no kernel reads or writes, so they do not make a model compute in float."""
        return [t for t in self.tensors if t.type_name in ("FLOAT32", "FLOAT16") and t.size > 0]

    def require_int8_inside(self, what_for: str) -> None:
        problems = self.float_inside_problems()
        if problems:
            name = self.path.name if self.path else "the model"
            raise TinyedgeError(
                f"{name} computes in float ({problems[0]}), but {what_for} needs int8 between its inputs and "
                "outputs: quantize its Keras or SavedModel source with `tinyedge quantize MODEL --calibration "
                "CAL.npy -o OUT.tflite`, or ask its author for a full-int8 export."
            )

    def is_full_int8(self) -> bool:
        return not self.full_int8_problems()


# The metadata entry (name -> buffer) that makes every runtime reset the model's state before each inference.
RESET_STATE_METADATA = "tinyedge_reset_state"
RESET_EACH_INFERENCE = b"each_inference"
_BUFFER_ALIGNMENT = 16   # as TFLite's converter aligns buffers, so TFLM reads int32/int64 data in place


def with_reset_each_inference(data: bytes) -> bytes:
    """The model `data` with the RESET_STATE_METADATA entry set to each_inference (everything else unchanged;
    buffers stay 16-byte aligned). TFLite and TFLM ignore metadata they do not know."""
    raw = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    if any(int(getattr(b, "offset", 0) or 0) > 1 for b in raw.buffers or []):
        raise TinyedgeError("the model keeps its weights outside the flatbuffer (a model over 2 GB), which cannot be "
                            "marked to reset its state: export it again as one flatbuffer.")
    raw.metadata = [m for m in raw.metadata or [] if _metadata_name(m) != RESET_STATE_METADATA]
    entry = schema.MetadataT()
    entry.name, entry.buffer = RESET_STATE_METADATA, len(raw.buffers)
    marker = schema.BufferT()
    marker.data = np.frombuffer(RESET_EACH_INFERENCE, dtype=np.uint8)
    raw.buffers = [_AlignedBuffer(b) for b in raw.buffers] + [_AlignedBuffer(marker)]
    raw.metadata.append(entry)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(raw.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


class _AlignedBuffer(schema.BufferT):
    """A buffer whose data the builder places on a 16-byte boundary (the bindings' own Pack aligns to 1)."""

    def __init__(self, source: Any) -> None:
        super().__init__()
        self.data, self.offset, self.size = source.data, source.offset, source.size

    def Pack(self, builder: flatbuffers.Builder) -> int:
        data = None
        if self.data is not None and len(self.data):
            payload = bytes(np.asarray(self.data, dtype=np.uint8))
            builder.StartVector(1, len(payload), _BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            data = builder.EndVector(len(payload))
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def _metadata_name(entry: Any) -> str:
    name = entry.name
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name or "")


def load_tflite(path: str | Path) -> TfliteModel:
    path = Path(path)
    if not path.exists():
        raise TinyedgeError(f"{path} does not exist: give the path of a .tflite model.")
    if path.is_dir():
        raise TinyedgeError(f"{path} is a directory, not a .tflite file: give the path of a .tflite model.")
    model = parse_tflite(path.read_bytes(), name=str(path))
    model.path = path
    return model


def parse_tflite(data: bytes, name: str = "the model") -> TfliteModel:
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise TinyedgeError(
            f"{name} is not a TensorFlow Lite model (no TFL3 identifier): give a .tflite file made by "
            "`tinyedge quantize` or the TFLite converter."
        )
    try:
        raw = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        problem = flatbuffer_problem(raw, len(data))
        if problem is None:
            return _from_schema(raw, bytes(data))
    except TinyedgeError:
        raise
    except Exception as exc:  # a truncated or corrupted flatbuffer fails anywhere inside the bindings
        raise TinyedgeError(
            f"{name} looks like a .tflite file but cannot be read ({type(exc).__name__}): it is probably "
            "truncated or corrupted, so export it again."
        ) from None
    raise TinyedgeError(f"{name} is a damaged .tflite ({problem}): export it again from the converter.")


def flatbuffer_problem(raw: Any, data_bytes: int) -> str | None:
    """What makes an unpacked model unsafe to read, or None: every index (opcode, tensor, buffer,
    subgraph) in range, every shape non-negative, every buffer inside the file and the size of its
    tensor. TFLM's interpreter trusts all of these, so they are checked before any stage reads it."""
    buffers = raw.buffers or []
    opcode_count = len(raw.operatorCodes or [])
    subgraphs = raw.subgraphs or []
    for b, buf in enumerate(buffers):
        offset, size = int(getattr(buf, "offset", 0) or 0), int(getattr(buf, "size", 0) or 0)
        if offset > 1 and (size < 0 or offset + size > data_bytes):
            return f"buffer {b} lies outside the file's {data_bytes:,} bytes"
    for g, sub in enumerate(subgraphs):
        where = f"subgraph {g}: " if len(subgraphs) > 1 else ""
        tensors = sub.tensors or []
        for i, t in enumerate(tensors):
            problem = _tensor_problem(t, buffers, data_bytes)
            if problem:
                return f"{where}tensor {i} {problem}"
        for role, indices in (("inputs", sub.inputs), ("outputs", sub.outputs)):
            bad = [int(x) for x in (indices if indices is not None else []) if not 0 <= int(x) < len(tensors)]
            if bad:
                return f"{where}the graph's {role} name tensor {bad[0]} of {len(tensors)}"
        for o, op in enumerate(sub.operators or []):
            if not 0 <= int(op.opcodeIndex) < opcode_count:
                return f"{where}operator {o} names opcode {op.opcodeIndex} of {opcode_count}"
            for role in ("inputs", "outputs", "intermediates"):
                values = getattr(op, role, None)
                bad = [int(x) for x in (values if values is not None else []) if not -1 <= int(x) < len(tensors)]
                if bad:
                    return f"{where}operator {o} names tensor {bad[0]} of {len(tensors)} among its {role}"
            for key, value in getattr(op.builtinOptions, "__dict__", {}).items():
                if key.endswith("SubgraphIndex") and not 0 <= int(value) < len(subgraphs):
                    return f"{where}operator {o} names subgraph {value} of {len(subgraphs)}"
    return None


MAX_TENSOR_BYTES = 1 << 31


def _tensor_problem(t: Any, buffers: list, data_bytes: int) -> str | None:
    shape = [int(x) for x in (t.shape if t.shape is not None else [])]
    if any(d < 0 for d in shape):
        return f"has a negative dimension in its shape {shape}"
    if not 0 <= int(t.buffer) < max(len(buffers), 1):
        return f"names buffer {t.buffer} of {len(buffers)}"
    dtype = _NUMPY_TYPES.get(_TENSOR_TYPES.get(t.type, ""))
    size = int(np.prod(shape, dtype=object)) if shape else 1
    if dtype is not None and size * np.dtype(dtype).itemsize > MAX_TENSOR_BYTES:
        return f"of shape {shape} would take more than {MAX_TENSOR_BYTES:,} bytes"
    q = t.quantization
    scales = len(q.scale) if q is not None and q.scale is not None else 0
    if scales > 1 and scales not in shape:
        return f"has {scales} scales but no dimension of its shape {shape} has {scales} channels"
    if dtype is not None and 0 < int(t.buffer) < len(buffers):
        buf = buffers[int(t.buffer)]
        stored = len(buf.data) if buf.data is not None and len(buf.data) else int(getattr(buf, "size", 0) or 0)
        if stored and stored != size * np.dtype(dtype).itemsize:
            return f"of shape {shape} needs {size * np.dtype(dtype).itemsize:,} bytes but its buffer holds {stored:,}"
    return None


def _from_schema(raw: Any, data: bytes) -> TfliteModel:
    if not raw.subgraphs:
        raise TinyedgeError("the model has no subgraph: export it again from the converter.")
    opcodes = [(_opcode_name(oc), int(oc.version or 1)) for oc in (raw.operatorCodes or [])]
    sub = raw.subgraphs[0]
    buffers = raw.buffers or []
    tensors = [_tensor(i, t, buffers, data) for i, t in enumerate(sub.tensors or [])]
    operators = []
    for i, op in enumerate(sub.operators or []):
        name, version = opcodes[op.opcodeIndex]
        custom = None
        if name == "CUSTOM":
            custom = bytes(raw.operatorCodes[op.opcodeIndex].customCode or b"").decode(errors="replace")
        operators.append(Operator(
            index=i, opcode=name, version=version,
            inputs=tuple(int(x) for x in (op.inputs if op.inputs is not None else [])),
            outputs=tuple(int(x) for x in (op.outputs if op.outputs is not None else [])),
            options=op.builtinOptions, custom_code=custom,
            custom_options=bytes(np.asarray(op.customOptions, dtype=np.uint8)) if custom is not None and op.customOptions is not None else b"",
        ))
    return TfliteModel(
        path=None, data=data, tensors=tensors, operators=operators,
        inputs=[int(x) for x in sub.inputs], outputs=[int(x) for x in sub.outputs],
        opcodes=opcodes, subgraph_count=len(raw.subgraphs), metadata=_metadata(raw, buffers, data),
    )


def _metadata(raw: Any, buffers: list, data: bytes) -> dict[str, bytes]:
    return {_metadata_name(m): _buffer_bytes(buffers[int(m.buffer)], data)
            for m in raw.metadata or [] if 0 <= int(m.buffer) < len(buffers)}


def builtin_op_name(code: int) -> str:
    """The name of a TFLite builtin operator code (CONV_2D for 3)."""
    return _OPCODE_NAMES.get(code, f"builtin op {code}")


def _opcode_name(oc: Any) -> str:
    code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
    return _OPCODE_NAMES.get(code, f"UNKNOWN_{code}")


def _tensor(index: int, t: Any, buffers: list, data: bytes) -> Tensor:
    type_name = _TENSOR_TYPES.get(t.type, f"TYPE_{t.type}")
    shape = tuple(int(x) for x in (t.shape if t.shape is not None else []))
    q = t.quantization
    scale = np.asarray(q.scale if q is not None and q.scale is not None else [], dtype=np.float32)
    zero_point = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], dtype=np.int64)
    qdim = int(q.quantizedDimension) if q is not None else 0
    values = None
    buf = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
    if buf is not None:
        raw_bytes = _buffer_bytes(buf, data)
        if raw_bytes:
            dtype = np.dtype(_NUMPY_TYPES.get(type_name, np.uint8))
            values = np.frombuffer(raw_bytes, dtype=dtype).reshape(shape if shape else ())
    name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or "")
    return Tensor(index, name, shape, type_name, scale, zero_point, qdim, values, bool(t.isVariable))


def _buffer_bytes(buf: Any, data: bytes) -> bytes:
    if buf.data is not None and len(buf.data):
        return bytes(np.asarray(buf.data, dtype=np.uint8))
    offset, size = int(getattr(buf, "offset", 0) or 0), int(getattr(buf, "size", 0) or 0)
    if offset > 1 and size:
        return data[offset:offset + size]
    return b""


def refuse_custom_ops(model: TfliteModel, supported: set[str] = frozenset()) -> None:
    """Refuse, naming them, custom ops the runtime does not register (`supported`: the custom codes it does)."""
    custom = sorted({op.custom_code or "?" for op in model.operators if op.opcode == "CUSTOM"} - set(supported))
    if custom:
        name = model.path.name if getattr(model, "path", None) else "the model"
        if all(code.startswith("Signal") for code in custom):
            raise TinyedgeError(
                f"{name} uses TFLM's signal library ({', '.join(custom)}), which only the tflm runtime runs: "
                "deploy it with --runtime tflm and a TFLM tree (--tflm-dir or TINYEDGE_TFLM_DIR).")
        raise TinyedgeError(
            f"{name} uses the custom op(s) {', '.join(custom)}, which tinyedge's runtimes do not register: "
            "run that stage in your application code with TFLM and pass its output to a model without custom "
            "ops, or re-export the model without them.")
