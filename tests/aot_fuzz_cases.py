"""The AOT runtime's differential shape fuzzer: random small int8 models (CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, AVERAGE/MAX_POOL_2D, ADD; channels 1-1,024, odd sizes, strides, dilations, paddings,
fused activations), each compiled for the portable and the DSP kernels, run on the host under
AddressSanitizer with every op held to its own arena and scratch bytes (aot_harness.SanitizedModel),
and compared bit for bit with tflite-micro's interpreter.

A case is plain data (`Case`: the input shape, the layers, a seed), printed as one JSON line that
`build_model` turns back into the same model; tests/test_aot_fuzz.py runs a few dozen,
benchmarks/aot_fuzz.py as many as asked.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aot_harness import SanitizedModel, random_inputs, to_int8
from tinyedge.tflite_model import TfliteModel, parse_tflite
from tinyedge.errors import TinyedgeError

PATHS = ("portable", "dsp")
ACTIVATIONS = (None, "relu", "relu6")
# Channel counts where the kernels change strategy (groups of four, the 2,048-byte two-column limit).
EDGE_CHANNELS = (1, 2, 3, 4, 5, 7, 8, 255, 256, 257, 511, 512, 513, 576, 1023, 1024)


@dataclass(frozen=True)
class Limits:
    """How big a case may get: bytes of one activation tensor, and weights of one layer."""
    activation_bytes: int = 24 * 1024
    weights: int = 160_000


@dataclass
class Case:
    seed: int
    input_shape: list[int]            # without the batch: [h, w, c] or [n]
    layers: list[dict[str, Any]] = field(default_factory=list)
    second_input: list[int] | None = None   # the other operand of a first-layer ADD of two inputs

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> "Case":
        return Case(**json.loads(text))


@dataclass
class Finding:
    case: Case
    path: str
    what: str                          # "mismatch", "sanitizer", "refused" or "compile"
    detail: str

    def __str__(self) -> str:
        return f"{self.what} on the {self.path} kernels: {self.detail}\n  case: {self.case.to_json()}"


def _channels(rng: np.random.Generator, most: int) -> int:
    pick = rng.random()
    if pick < 0.3:
        c = int(rng.integers(1, 17))
    elif pick < 0.6:
        c = int(rng.choice(EDGE_CHANNELS))
    else:
        c = int(round(math.exp(rng.uniform(0, math.log(1024)))))
    return max(1, min(c, most))


def _spatial(rng: np.random.Generator, channels: int, limits: Limits) -> tuple[int, int]:
    room = max(1, limits.activation_bytes // channels)
    side = max(1, int(math.sqrt(room)))
    h = int(rng.integers(1, min(side, 24) + 1))
    w = int(rng.integers(1, min(room // h, 24) + 1))
    return h, w


def _window(rng: np.random.Generator, h: int, w: int, kinds: str) -> dict[str, Any] | None:
    """Kernel, strides, dilation and padding that give at least one output pixel, or None."""
    for _ in range(20):
        shape = rng.random()
        k = [1, 1] if shape < 0.3 else [3, 3] if shape < 0.55 else [int(rng.choice([1, 2, 3, 4, 5, 7])) for _ in range(2)]
        if kinds == "conv" and rng.random() < 0.05:
            k[0] = int(rng.integers(15, 19))          # taller than the DSP kernels take: the portable fallback
        strides = [1, 1] if rng.random() < 0.6 else [int(rng.choice([1, 2, 3])) for _ in range(2)]
        dilation = [1, 1]
        if kinds != "pool" and strides == [1, 1] and rng.random() < 0.3:
            dilation = [int(rng.integers(1, 4)) for _ in range(2)]
        padding = str(rng.choice(["same", "valid"]))
        reach = [(k[i] - 1) * dilation[i] + 1 for i in range(2)]
        if padding == "valid" and (reach[0] > h or reach[1] > w):
            continue
        if kinds == "pool" and padding == "same" and (k[0] > h or k[1] > w):
            continue
        return {"kernel": k, "strides": strides, "dilation": dilation, "padding": padding}
    return None


def _out_hw(h: int, w: int, window: dict[str, Any]) -> tuple[int, int]:
    dims = []
    for size, k, s, d in zip((h, w), window["kernel"], window["strides"], window["dilation"]):
        reach = (k - 1) * d + 1
        dims.append(-(-size // s) if window["padding"] == "same" else (size - reach) // s + 1)
    return dims[0], dims[1]


def _weight_scale(rng: np.random.Generator) -> float:
    return float(10 ** rng.uniform(-2.0, 0.3))


def _layer(rng: np.random.Generator, shape: list[int], limits: Limits, kinds: list[str]) -> dict[str, Any] | None:
    """One random layer that fits `shape`, or None."""
    op = str(rng.choice(kinds))
    activation = ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))]
    if op == "dense":
        n = int(np.prod(shape))
        units = _channels(rng, max(1, min(1024, limits.weights // n)))
        # Half the time the FULLY_CONNECTED reads a 4-D tensor itself (no RESHAPE), as in micro_speech:
        # after a conv that is the DSP kernels' conv streamed into the FC.
        return {"op": op, "units": units, "activation": activation, "scale": _weight_scale(rng),
                "bias": bool(rng.random() < 0.8), "reads_4d": len(shape) == 3 and bool(rng.random() < 0.5)}
    if len(shape) != 3:
        return None
    h, w, c = shape
    window = _window(rng, h, w, "pool" if op in ("avgpool", "maxpool") else "conv")
    if window is None:
        return None
    out_h, out_w = _out_hw(h, w, window)
    k = window["kernel"][0] * window["kernel"][1]
    if op == "conv":
        most = min(1024, limits.activation_bytes // (out_h * out_w), limits.weights // (k * c))
        if most < 1:
            return None
        return {"op": op, **window, "filters": _channels(rng, most), "activation": activation,
                "scale": _weight_scale(rng), "bias": bool(rng.random() < 0.8)}
    if op == "depthwise":
        multiplier = int(rng.choice([1, 1, 1, 2, 3]))
        if c * multiplier > 1024 or out_h * out_w * c * multiplier > limits.activation_bytes:
            multiplier = 1
        if window["strides"] != [1, 1]:
            window["dilation"] = [1, 1]
        return {"op": op, **window, "multiplier": multiplier, "activation": activation,
                "scale": _weight_scale(rng), "bias": bool(rng.random() < 0.8)}
    if op in ("avgpool", "maxpool"):
        return {"op": op, **{key: window[key] for key in ("kernel", "strides", "padding")}}
    if op == "residual":     # x + conv1x1(x), with an optional fused ReLU
        if c * c > limits.weights:
            return None
        return {"op": op, "activation": str(rng.choice(["none", "relu"])), "scale": _weight_scale(rng)}
    if op == "add_const":    # x + a constant of shape [c], [1, 1, c] broadcast, or of x's whole shape
        return {"op": op, "broadcast": bool(rng.random() < 0.7), "scale": _weight_scale(rng)}
    return None


def _next_shape(shape: list[int], layer: dict[str, Any]) -> list[int]:
    op = layer["op"]
    if op == "dense":
        return [layer["units"]]
    if op in ("residual", "add_const"):
        return shape
    h, w, c = shape
    window = {"dilation": [1, 1], **layer}
    out_h, out_w = _out_hw(h, w, window)
    if op == "conv":
        return [out_h, out_w, layer["filters"]]
    if op == "depthwise":
        return [out_h, out_w, c * layer["multiplier"]]
    return [out_h, out_w, c]


def random_case(seed: int, limits: Limits = Limits()) -> Case:
    """One case: a single layer (half the time) or a chain of two to four, from seed alone."""
    rng = np.random.default_rng(seed)
    if rng.random() < 0.15:     # a dense-only model
        shape = [_channels(rng, 1024)]
    else:
        c = _channels(rng, 1024)
        shape = [*_spatial(rng, c, limits), c]
    case = Case(seed=seed, input_shape=list(shape))
    if len(shape) == 3 and rng.random() < 0.12:
        h, w, c = shape
        case.second_input = [int(v) for v in rng.choice([[h, w, c], [1, 1, c], [h, w, 1]])]
        case.layers.append({"op": "add_inputs", "activation": str(rng.choice(["none", "relu"]))})
    count = 1 if rng.random() < 0.5 else int(rng.integers(2, 5))
    spatial_kinds = ["conv", "conv", "depthwise", "depthwise", "avgpool", "maxpool", "residual", "add_const"]
    while len(case.layers) < count:
        last = len(case.layers) == count - 1
        kinds = ["dense"] if len(shape) != 3 else spatial_kinds + ["dense"] * last
        layer = _layer(rng, shape, limits, kinds)
        if layer is None:
            continue
        case.layers.append(layer)
        shape = _next_shape(shape, layer)
    return case


def build_model(case: Case):
    """The Keras model of a case (weights and biases drawn from the case's seed)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(case.seed)
    layers = tf.keras.layers
    inputs = [tf.keras.Input(tuple(case.input_shape))]
    if case.second_input is not None:
        inputs.append(tf.keras.Input(tuple(case.second_input)))
    x = inputs[0]

    def init(layer: dict[str, Any]):
        return tf.keras.initializers.RandomNormal(stddev=layer["scale"])

    def bias(layer: dict[str, Any]):
        return tf.keras.initializers.RandomNormal(stddev=0.5) if layer.get("bias") else "zeros"

    for layer in case.layers:
        op = layer["op"]
        if op == "add_inputs":
            x = layers.Add()([x, inputs[1]])
            x = layers.ReLU()(x) if layer["activation"] == "relu" else x
        elif op == "conv":
            x = layers.Conv2D(layer["filters"], layer["kernel"], strides=layer["strides"], padding=layer["padding"],
                              dilation_rate=layer["dilation"], activation=layer["activation"],
                              kernel_initializer=init(layer), bias_initializer=bias(layer),
                              use_bias=layer["bias"])(x)
        elif op == "depthwise":
            x = layers.DepthwiseConv2D(layer["kernel"], strides=layer["strides"], padding=layer["padding"],
                                       dilation_rate=layer["dilation"], depth_multiplier=layer["multiplier"],
                                       activation=layer["activation"], depthwise_initializer=init(layer),
                                       bias_initializer=bias(layer), use_bias=layer["bias"])(x)
        elif op == "dense":
            x = layers.Flatten()(x) if len(x.shape) > 2 else x
            x = layers.Dense(layer["units"], activation=layer["activation"], kernel_initializer=init(layer),
                             bias_initializer=bias(layer), use_bias=layer["bias"])(x)
        elif op in ("avgpool", "maxpool"):
            pool = layers.AveragePooling2D if op == "avgpool" else layers.MaxPooling2D
            x = pool(layer["kernel"], strides=layer["strides"], padding=layer["padding"])(x)
        elif op == "residual":
            y = layers.Conv2D(int(x.shape[-1]), 1, kernel_initializer=init(layer))(x)
            x = layers.Add()([x, y])
            x = layers.ReLU()(x) if layer["activation"] == "relu" else x
        elif op == "add_const":
            shape = [int(x.shape[-1])] if layer["broadcast"] else [int(d) for d in x.shape[1:]]
            rng = np.random.default_rng(case.seed)
            constant = tf.constant(rng.normal(0, layer["scale"], shape).astype(np.float32))
            x = layers.Lambda(lambda t, k=constant: t + k)(x)
    return tf.keras.Model(inputs, x)


def run_case(case: Case, work_dir: Path, kernels: Path, samples: int = 3,
             paths: tuple[str, ...] = PATHS) -> list[Finding]:
    """Build the case's int8 model, run it on each kernel path under the sanitizers, and compare every
    output with tflite-micro's on random inputs plus all-min and all-max ones: what differs."""
    from tinyedge.reference import Reference

    model = to_int8(build_model(case), samples=8, seed=case.seed)
    if any(layer.get("reads_4d") for layer in case.layers):
        model = fc_reads_4d(model)
    reference = Reference(model)
    rng = np.random.default_rng(case.seed)
    inputs = [random_inputs(model, rng) for _ in range(samples)]
    for fill in (-128, 127):
        inputs.append([np.full(t.shape, fill, dtype=t.dtype) for t in model.input_tensors])
    expected = [reference.run(sample) for sample in inputs]
    findings = []
    for path in paths:
        try:
            native = SanitizedModel(model, work_dir / path, kernels, dsp=path == "dsp")
        except TinyedgeError as refused:
            findings.append(Finding(case, path, "refused", str(refused)))
            continue
        except AssertionError as failed:
            findings.append(Finding(case, path, "compile", str(failed)[-3000:]))
            continue
        ops = " ".join(op.opcode for op in model.operators)
        try:
            actual = native.run(inputs)
        except AssertionError as fired:
            findings.append(Finding(case, path, "sanitizer", f"[{ops}] {fired}"))
            continue
        for number, (want, got) in enumerate(zip(expected, actual)):
            difference = _difference(want, got)
            if difference:
                findings.append(Finding(case, path, "mismatch", f"[{ops}] sample {number}: {difference}"))
                break
    return findings


def _difference(want: list[np.ndarray], got: list[np.ndarray]) -> str:
    for out, (a, b) in enumerate(zip(want, got)):
        if not np.array_equal(a, b):
            wrong = np.flatnonzero(a.ravel() != b.ravel())
            lsb = int(np.max(np.abs(a.ravel()[wrong].astype(np.int64) - b.ravel()[wrong].astype(np.int64))))
            first = wrong[0]
            return (f"output {out}: {wrong.size}/{a.size} values differ (up to {lsb} LSB), first at {first}: "
                    f"tflite-micro {a.ravel()[first]} vs aot {b.ravel()[first]}")
    return ""


def fc_reads_4d(model: TfliteModel) -> TfliteModel:
    """The model without the RESHAPEs whose only reader is a FULLY_CONNECTED: the FC reads the 4-D tensor
    (TFLM flattens it all the same), as converters of micro_speech's era emitted it."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(bytearray(model.data), 0)
    graph = raw.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in raw.operatorCodes]
    kept = []
    for op in graph.operators:
        out = op.outputs[0]
        readers = [o for o in graph.operators if out in list(o.inputs)]
        if (codes[op.opcodeIndex] == schema.BuiltinOperator.RESHAPE and len(readers) == 1 and out not in graph.outputs
                and codes[readers[0].opcodeIndex] == schema.BuiltinOperator.FULLY_CONNECTED
                and readers[0].inputs[0] == out):
            readers[0].inputs[0] = op.inputs[0]
            continue
        kept.append(op)
    graph.operators = kept
    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return parse_tflite(bytes(builder.Output()))
