"""ONNX graphs with LSTM/GRU (PyTorch's nn.LSTM/nn.GRU exports), converted by tinyedge itself.

onnx2tf rebuilds an ONNX LSTM/GRU as its own cell in a WHILE loop (or crashes on PyTorch's), which no
runtime on a board runs. Here the graph is rebuilt as a tf_keras model op by op instead:
- an ONNX `LSTM` becomes a `tf_keras.layers.LSTM`, which TensorFlow's converter fuses into TFLite's
  UNIDIRECTIONAL_SEQUENCE_LSTM (int8, int16 cell state). Like every fused TFLite LSTM, its state is a
  variable tensor: the board carries it from one inference to the next;
- an ONNX `GRU` (TFLite has no fused GRU) is unrolled over its time steps into FULLY_CONNECTED,
  LOGISTIC, TANH, MUL, SUB and ADD ops, with ONNX's `linear_before_reset` semantics (PyTorch's);
- the ops around them (Conv, Gemm/MatMul, activations, and the Transpose/Reshape/Squeeze/Gather moves
  PyTorch's exporters write around a recurrent layer) map one to one. Values computable before the
  model runs (shapes, initial states) are folded with ONNX's reference evaluator.

Layouts: each value is kept in a "stored" axis order (`perm`: stored axis i is ONNX axis perm[i]), so
the exporters' Transposes cost nothing; a Conv takes channels-last. The board's input is channels-last
when a Conv reads it first, else in the ONNX layout; outputs are in the ONNX layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tinyedge.errors import TinyedgeError
from tinyedge.float_models import tensorflow

RECURRENT_OPS = ("LSTM", "GRU")
CONV_OPS = ("Conv",)
# The activations PyTorch's layers use (ONNX's defaults); others are refused.
DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def has_recurrent_op(proto: Any) -> bool:
    return any(node.op_type in RECURRENT_OPS for node in proto.graph.node)


def conv_reads_input(proto: Any) -> bool:
    """True when the graph's input goes straight into a Conv (the board then takes it channels-last)."""
    name = data_inputs(proto)[0].name
    return any(node.op_type in CONV_OPS and node.input and node.input[0] == name for node in proto.graph.node)


def data_inputs(proto: Any) -> list[Any]:
    """The graph's inputs that are not initializers (old exporters list those as inputs too)."""
    initializers = {t.name for t in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in initializers]


def tf_keras():
    try:
        import tf_keras
    except ImportError:
        raise TinyedgeError("the tf-keras package is not installed, and tinyedge converts ONNX LSTM/GRU with it: "
                            "run ./install.sh (or pip install 'tf-keras>=2.21,<2.22').") from None
    return tf_keras


def unsupported(what: str) -> TinyedgeError:
    return TinyedgeError(f"{what}; tinyedge converts forward, single-direction LSTM/GRU layers (stack them for "
                         "several layers): export the model with such layers.")


# ---------------------------------------------------------------- values


@dataclass
class Value:
    """A tensor of the ONNX graph in the Keras model: `tensor` holds it in `perm` order (stored axis i is
    ONNX axis perm[i]); `shape` is its ONNX shape. A GRU's sequence output also keeps its per-step
    tensors (`steps`, each [1, hidden]) and which ONNX axis is time, so picking one step costs no op."""
    tensor: Any
    perm: tuple[int, ...]
    shape: tuple[int, ...]
    steps: list[Any] | None = None
    time_axis: int | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def non_unit_order(shape: tuple[int, ...], axes: tuple[int, ...]) -> list[int]:
    return [a for a in axes if shape[a] != 1]


def in_layout(tf: Any, value: Value, perm: tuple[int, ...]) -> Any:
    """The value's tensor with its axes in `perm` order (a RESHAPE when only unit axes move)."""
    if tuple(perm) == value.perm:
        return value.tensor
    target_shape = [value.shape[a] for a in perm]
    if non_unit_order(value.shape, value.perm) == non_unit_order(value.shape, tuple(perm)):
        return tf.reshape(value.tensor, target_shape)
    return tf.transpose(value.tensor, [value.perm.index(a) for a in perm])


def onnx_layout(tf: Any, value: Value) -> Any:
    return in_layout(tf, value, identity(value.rank))


def reshaped(tf: Any, value: Value, shape: tuple[int, ...]) -> Value:
    """The value under an ONNX Reshape/Squeeze/Unsqueeze/Flatten to `shape`: kept in its stored order
    when only unit axes come and go (the exporters' batch and direction axes)."""
    old_axes = [a for a in range(value.rank) if value.shape[a] != 1]
    new_axes = [a for a in range(len(shape)) if shape[a] != 1]
    if [value.shape[a] for a in old_axes] != [shape[a] for a in new_axes]:
        return Value(tf.reshape(onnx_layout(tf, value), shape), identity(len(shape)), tuple(shape))
    moved = dict(zip(old_axes, new_axes))
    order = [moved[a] for a in value.perm if value.shape[a] != 1]
    order += [a for a in range(len(shape)) if shape[a] == 1]
    perm = tuple(order)
    if non_unit_order(tuple(shape), perm) == non_unit_order(tuple(shape), identity(len(shape))):
        perm = identity(len(shape))
    tensor = tf.reshape(value.tensor, [shape[a] for a in perm])
    time_axis = moved.get(value.time_axis) if value.steps is not None else None
    return Value(tensor, perm, tuple(shape), value.steps if time_axis is not None else None, time_axis)


def transposed(value: Value, perm: list[int]) -> Value:
    inverse = [int(a) for a in np.argsort(perm)]
    time_axis = inverse[value.time_axis] if value.time_axis is not None else None
    return Value(value.tensor, tuple(inverse[a] for a in value.perm), tuple(value.shape[p] for p in perm),
                 value.steps, time_axis)


def picked(tf: Any, value: Value, axis: int, index: int, keep: bool) -> Value:
    """One position along an ONNX axis (Gather with a scalar index; Slice of length 1 when `keep`)."""
    index = index + value.shape[axis] if index < 0 else index
    shape = tuple(value.shape[:axis]) + ((1,) if keep else ()) + tuple(value.shape[axis + 1:])
    if value.steps is not None and axis == value.time_axis:
        step = Value(value.steps[index], (0, 1), (1, value.steps[index].shape[-1]))
        return reshaped(tf, step, shape)
    stored_axis = value.perm.index(axis)
    key = tuple([slice(None)] * stored_axis + [slice(index, index + 1)])
    tensor = value.tensor[key]
    kept = Value(tensor, value.perm, tuple(value.shape[:axis]) + (1,) + tuple(value.shape[axis + 1:]))
    return kept if keep else reshaped(tf, kept, shape)


# ---------------------------------------------------------------- the converter


@dataclass
class Converter:
    proto: Any
    tf: Any
    keras: Any
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, Value] = field(default_factory=dict)
    consumers: dict[str, list[Any]] = field(default_factory=dict)
    skipped: set[int] = field(default_factory=set)

    def __post_init__(self):
        from onnx import numpy_helper

        for tensor in self.proto.graph.initializer:
            self.constants[tensor.name] = numpy_helper.to_array(tensor)
        for node in self.proto.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    # -- inputs and outputs of nodes

    def constant(self, name: str, what: str) -> np.ndarray:
        if name not in self.constants:
            raise TinyedgeError(f"the {what} of a node is computed from the model's input, and tinyedge needs it "
                                "fixed to convert a model with LSTM/GRU: export it with fixed shapes and constants.")
        return self.constants[name]

    def value(self, name: str) -> Value:
        if name in self.constants:
            raise TinyedgeError(f"tensor {name} is a constant where tinyedge expects the model's data: "
                                "export the model without folding its input away.")
        return self.values[name]

    def used(self, name: str) -> bool:
        outputs = {o.name for o in self.proto.graph.output}
        return bool(name) and (name in outputs or bool(self.consumers.get(name)))

    # -- the graph

    def build(self, board_channels_last: bool) -> Any:
        graph = self.proto.graph
        inp = data_inputs(self.proto)[0]
        shape = tuple(d.dim_value or 1 for d in inp.type.tensor_type.shape.dim)
        perm = (0, *range(2, len(shape)), 1) if board_channels_last else identity(len(shape))
        keras_input = self.keras.Input(batch_shape=[shape[a] for a in perm], dtype="float32")
        self.values[inp.name] = Value(keras_input, perm, shape)
        for index, node in enumerate(graph.node):
            if index in self.skipped:
                continue
            self.convert_node(index, node)
        outputs = []
        for out in graph.output:
            if out.name in self.constants:
                raise TinyedgeError(f"output {out.name} does not depend on the input: export the model with its data path.")
            outputs.append(onnx_layout(self.tf, self.values[out.name]))
        return self.keras.Model(keras_input, outputs[0] if len(outputs) == 1 else outputs)

    def convert_node(self, index: int, node: Any) -> None:
        data_inputs = [n for n in node.input if n and n not in self.constants]
        if not data_inputs and node.op_type != "Shape":
            self.fold(node)
            return
        if node.op_type == "Shape":
            value = self.values[node.input[0]]
            self.constants[node.output[0]] = self.fold_shape(node, value.shape)
            return
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            raise TinyedgeError(f"tinyedge converts models with LSTM/GRU itself, and has no conversion for the ONNX op "
                                f"{node.op_type} (node {node.name or node.output[0]}) in them: replace that op "
                                "before exporting, or export the recurrent part alone.")
        handler(self, index, node)

    def fold(self, node: Any) -> None:
        """A node of constants only (shapes, initial states): evaluated now with ONNX's reference evaluator."""
        import onnx
        from onnx.reference import ReferenceEvaluator

        inputs = [n for n in node.input if n]
        graph = onnx.helper.make_graph(
            [node], "fold", [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(self.constants[n].dtype),
                                                                 self.constants[n].shape) for n in inputs],
            [onnx.helper.make_empty_tensor_value_info(o) for o in node.output if o])
        model = onnx.helper.make_model(graph, opset_imports=self.proto.opset_import)
        results = ReferenceEvaluator(model).run(None, {n: self.constants[n] for n in inputs})
        for name, result in zip([o for o in node.output if o], results):
            self.constants[name] = np.asarray(result)

    @staticmethod
    def fold_shape(node: Any, shape: tuple[int, ...]) -> np.ndarray:
        attrs = attributes(node)
        start, end = attrs.get("start", 0), attrs.get("end", len(shape))
        return np.array(shape[start:end], dtype=np.int64)

    def put(self, node: Any, value: Value, output: int = 0) -> None:
        self.values[node.output[output]] = value


def attributes(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------- element-wise ops


def unary(fn: Callable[[Any, Any, dict[str, Any]], Any]) -> Callable[[Converter, int, Any], None]:
    def handle(c: Converter, index: int, node: Any) -> None:
        value = c.value(node.input[0])
        c.put(node, Value(fn(c.tf, value.tensor, attributes(node)), value.perm, value.shape, None, None))
    return handle


def clip(c: Converter, index: int, node: Any) -> None:
    value = c.value(node.input[0])
    attrs = attributes(node)
    low = float(c.constant(node.input[1], "Clip's minimum")) if len(node.input) > 1 and node.input[1] else attrs.get("min", -np.inf)
    high = float(c.constant(node.input[2], "Clip's maximum")) if len(node.input) > 2 and node.input[2] else attrs.get("max", np.inf)
    if low == 0 and high == 6:
        tensor = c.tf.nn.relu6(value.tensor)
    elif low == 0 and high == np.inf:
        tensor = c.tf.nn.relu(value.tensor)
    else:
        tensor = c.tf.clip_by_value(value.tensor, np.float32(low), np.float32(high))
    c.put(node, Value(tensor, value.perm, value.shape))


def stored_constant(array: np.ndarray, value: Value) -> np.ndarray:
    """A constant broadcast against `value`, arranged in the value's stored axis order."""
    array = np.asarray(array, dtype=np.float32)
    array = array.reshape((1,) * (value.rank - array.ndim) + array.shape)
    return np.ascontiguousarray(array.transpose(value.perm))


def binary(op: str) -> Callable[[Converter, int, Any], None]:
    def handle(c: Converter, index: int, node: Any) -> None:
        tf = c.tf
        a_name, b_name = node.input[0], node.input[1]
        if a_name in c.constants or b_name in c.constants:
            swapped = a_name in c.constants
            value = c.value(b_name if swapped else a_name)
            const = c.constants[a_name if swapped else b_name]
            if const.ndim > value.rank:
                raise TinyedgeError(f"the {op} node {node.name} broadcasts its data to a higher rank: "
                                    "export the model with the constant's rank at most the data's.")
            shape = tuple(np.broadcast_shapes(value.shape, const.shape))
            if shape != value.shape:
                raise TinyedgeError(f"the {op} node {node.name} broadcasts its data to a larger shape: "
                                    "export the model without that broadcast.")
            other = tf.constant(stored_constant(const, value))
            a, b = (other, value.tensor) if swapped else (value.tensor, other)
            if op == "Div" and not swapped:
                a, b, fn = value.tensor, tf.constant(1.0 / stored_constant(const, value)), tf.multiply
            else:
                fn = {"Add": tf.add, "Sub": tf.subtract, "Mul": tf.multiply, "Div": tf.divide}[op]
            c.put(node, Value(fn(a, b), value.perm, value.shape))
            return
        first, second = c.value(a_name), c.value(b_name)
        if first.shape != second.shape:
            raise TinyedgeError(f"the {op} node {node.name} broadcasts one input against the other: "
                                "export the model with both inputs of one shape.")
        fn = {"Add": tf.add, "Sub": tf.subtract, "Mul": tf.multiply, "Div": tf.divide}[op]
        c.put(node, Value(fn(first.tensor, in_layout(tf, second, first.perm)), first.perm, first.shape))
    return handle


def softmax(c: Converter, index: int, node: Any) -> None:
    value = c.value(node.input[0])
    axis = attributes(node).get("axis", -1) % value.rank
    if axis != value.rank - 1:
        raise TinyedgeError(f"the Softmax node {node.name} works on axis {axis}, not the last: export it over the last axis.")
    tensor = onnx_layout(c.tf, value)
    c.put(node, Value(c.tf.nn.softmax(tensor), identity(value.rank), value.shape))


# ---------------------------------------------------------------- moves


def transpose(c: Converter, index: int, node: Any) -> None:
    value = c.value(node.input[0])
    perm = attributes(node).get("perm") or list(reversed(range(value.rank)))
    c.put(node, transposed(value, list(perm)))


def reshape_to(c: Converter, node: Any, shape: list[int]) -> None:
    c.put(node, reshaped(c.tf, c.value(node.input[0]), tuple(int(d) for d in shape)))


def reshape(c: Converter, index: int, node: Any) -> None:
    value = c.value(node.input[0])
    target = [int(d) for d in c.constant(node.input[1], "shape of a Reshape")]
    allowzero = attributes(node).get("allowzero", 0)
    target = [value.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = int(np.prod(value.shape)) // known
    reshape_to(c, node, target)


def squeeze(c: Converter, index: int, node: Any) -> None:
    value = c.value(node.input[0])
    axes = attributes(node).get("axes")
    if len(node.input) > 1 and node.input[1]:
        axes = c.constant(node.input[1], "axes of a Squeeze").tolist()
    axes = [a % value.rank for a in axes] if axes is not None else [a for a, d in enumerate(value.shape) if d == 1]
    reshape_to(c, node, [d for a, d in enumerate(value.shape) if a not in axes])


def unsqueeze(c: Converter, index: int, node: Any) -> None:
    value = c.value(node.input[0])
    axes = attributes(node).get("axes")
    if len(node.input) > 1 and node.input[1]:
        axes = c.constant(node.input[1], "axes of an Unsqueeze").tolist()
    rank = value.rank + len(axes)
    axes = sorted(a % rank for a in axes)
    dims = iter(value.shape)
    reshape_to(c, node, [1 if a in axes else next(dims) for a in range(rank)])


def flatten(c: Converter, index: int, node: Any) -> None:
    value = c.value(node.input[0])
    axis = attributes(node).get("axis", 1) % max(value.rank, 1)
    reshape_to(c, node, [int(np.prod(value.shape[:axis])), int(np.prod(value.shape[axis:]))])


def gather(c: Converter, index: int, node: Any) -> None:
    value = c.value(node.input[0])
    indices = c.constant(node.input[1], "indices of a Gather")
    axis = attributes(node).get("axis", 0) % value.rank
    if indices.size != 1:
        raise TinyedgeError(f"the Gather node {node.name} picks several positions: tinyedge converts Gathers of one "
                            "position in models with LSTM/GRU (e.g. the last time step).")
    c.put(node, picked(c.tf, value, axis, int(indices.ravel()[0]), keep=indices.ndim > 0))


def slice_(c: Converter, index: int, node: Any) -> None:
    value = c.value(node.input[0])
    starts = c.constant(node.input[1], "starts of a Slice").tolist()
    ends = c.constant(node.input[2], "ends of a Slice").tolist()
    axes = c.constant(node.input[3], "axes of a Slice").tolist() if len(node.input) > 3 and node.input[3] else list(range(len(starts)))
    steps = c.constant(node.input[4], "steps of a Slice").tolist() if len(node.input) > 4 and node.input[4] else [1] * len(starts)
    if any(s != 1 for s in steps):
        raise TinyedgeError(f"the Slice node {node.name} has steps other than 1: export it with contiguous slices.")
    bounds = {}
    for start, end, axis in zip(starts, ends, axes):
        axis %= value.rank
        size = value.shape[axis]
        start, end = (s + size if s < 0 else s for s in (start, end))
        bounds[axis] = (max(0, min(start, size)), max(0, min(end, size)))
    if len(bounds) == 1:
        (axis, (start, end)), = bounds.items()
        if end - start == 1:
            c.put(node, picked(c.tf, value, axis, start, keep=True))
            return
    key = tuple(slice(*bounds.get(a, (None, None))) for a in value.perm)
    shape = tuple(bounds[a][1] - bounds[a][0] if a in bounds else d for a, d in enumerate(value.shape))
    c.put(node, Value(value.tensor[key], value.perm, shape))


def concat(c: Converter, index: int, node: Any) -> None:
    values = [c.value(n) for n in node.input]
    axis = attributes(node)["axis"] % values[0].rank
    tensor = c.tf.concat([onnx_layout(c.tf, v) for v in values], axis=axis)
    shape = list(values[0].shape)
    shape[axis] = sum(v.shape[axis] for v in values)
    c.put(node, Value(tensor, identity(len(shape)), tuple(shape)))


# ---------------------------------------------------------------- layers with weights


def dense(c: Converter, tensor: Any, kernel: np.ndarray, bias: np.ndarray | None) -> Any:
    layer = c.keras.layers.Dense(kernel.shape[1], use_bias=bias is not None)
    output = layer(tensor)
    layer.set_weights([kernel.astype(np.float32)] + ([bias.astype(np.float32)] if bias is not None else []))
    return output


def dense_on(c: Converter, value: Value, kernel: np.ndarray, bias: np.ndarray | None) -> Value:
    """A matrix product over the value's last ONNX axis (Gemm, MatMul), as FULLY_CONNECTED."""
    tf = c.tf
    tensor = onnx_layout(tf, value)
    rows = int(np.prod(value.shape[:-1]))
    flat = tensor if value.rank == 2 else tf.reshape(tensor, [rows, value.shape[-1]])
    out = dense(c, flat, kernel, bias)
    shape = (*value.shape[:-1], kernel.shape[1])
    return Value(out if value.rank == 2 else tf.reshape(out, shape), identity(len(shape)), shape)


def gemm(c: Converter, index: int, node: Any) -> None:
    attrs = attributes(node)
    if attrs.get("transA", 0):
        raise TinyedgeError(f"the Gemm node {node.name} transposes its data input: export it without transA.")
    weights = c.constant(node.input[1], "weights of a Gemm").astype(np.float64)
    kernel = (weights.T if attrs.get("transB", 0) else weights) * attrs.get("alpha", 1.0)
    bias = None
    if len(node.input) > 2 and node.input[2]:
        bias = np.broadcast_to(c.constant(node.input[2], "bias of a Gemm") * attrs.get("beta", 1.0), (kernel.shape[1],))
    c.put(node, dense_on(c, c.value(node.input[0]), kernel, bias))


def matmul(c: Converter, index: int, node: Any) -> None:
    """MatMul by a constant matrix; a following Add of a constant vector becomes the layer's bias."""
    kernel = c.constant(node.input[1], "second input of a MatMul (a weight matrix)")
    if kernel.ndim != 2:
        raise TinyedgeError(f"the MatMul node {node.name} multiplies by a {kernel.ndim}-D tensor: tinyedge takes a weight matrix.")
    bias, out = None, node
    followers = c.consumers.get(node.output[0], [])
    graph_outputs = {o.name for o in c.proto.graph.output}
    if len(followers) == 1 and followers[0].op_type == "Add" and node.output[0] not in graph_outputs:
        add = followers[0]
        other = next((n for n in add.input if n != node.output[0]), None)
        if other in c.constants and c.constants[other].size == kernel.shape[1]:
            bias, out = c.constants[other].ravel(), add
            c.skipped.add(list(c.proto.graph.node).index(add))
    c.put(out, dense_on(c, c.value(node.input[0]), kernel, bias))


def conv(c: Converter, index: int, node: Any) -> None:
    value = c.value(node.input[0])
    spatial = value.rank - 2
    if spatial not in (1, 2):
        raise TinyedgeError(f"the Conv node {node.name} is {spatial}-D: tinyedge converts Conv1d and Conv2d here.")
    attrs = attributes(node)
    weights = c.constant(node.input[1], "weights of a Conv").astype(np.float32)
    bias = c.constant(node.input[2], "bias of a Conv").astype(np.float32) if len(node.input) > 2 and node.input[2] else None
    kernel_shape = tuple(weights.shape[2:])
    strides = tuple(attrs.get("strides", [1] * spatial))
    dilations = tuple(attrs.get("dilations", [1] * spatial))
    pads = list(attrs.get("pads", [0] * 2 * spatial))
    if text(attrs.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
        raise TinyedgeError(f"the Conv node {node.name} uses auto_pad: export it with explicit padding.")
    groups = attrs.get("group", 1)
    channels_last = (0, *range(2, value.rank), 1)
    tensor = in_layout(c.tf, value, channels_last)
    same = all(s == 1 for s in strides) and all(
        pads[i] == pads[i + spatial] == dilations[i] * (kernel_shape[i] - 1) // 2 for i in range(spatial))
    if any(pads) and not same:
        padding = [[0, 0]] + [[pads[i], pads[i + spatial]] for i in range(spatial)] + [[0, 0]]
        tensor = c.tf.pad(tensor, padding)
    layer_type = c.keras.layers.Conv1D if spatial == 1 else c.keras.layers.Conv2D
    layer = layer_type(weights.shape[0], kernel_shape, strides=strides, dilation_rate=dilations, groups=groups,
                       padding="same" if same and any(pads) else "valid", use_bias=bias is not None)
    out = layer(tensor)
    kernel = weights.transpose(*range(2, 2 + spatial), 1, 0)
    layer.set_weights([kernel] + ([bias] if bias is not None else []))
    stored = tuple(out.shape)
    shape = (stored[0], stored[-1], *stored[1:-1])
    c.put(node, Value(out, channels_last, shape))


def batch_norm(c: Converter, index: int, node: Any) -> None:
    """Inference BatchNormalization as a per-channel scale and shift (the converter folds them into a
    Conv before it)."""
    value = c.value(node.input[0])
    scale, shift, mean, var = (c.constant(n, "statistics of a BatchNormalization").astype(np.float64) for n in node.input[1:5])
    factor = scale / np.sqrt(var + attributes(node).get("epsilon", 1e-5))
    per_channel = lambda v: v.reshape((v.size,) + (1,) * (value.rank - 2))
    tensor = c.tf.multiply(value.tensor, c.tf.constant(stored_constant(per_channel(factor), value)))
    tensor = c.tf.add(tensor, c.tf.constant(stored_constant(per_channel(shift - mean * factor), value)))
    c.put(node, Value(tensor, value.perm, value.shape))


def pool(c: Converter, index: int, node: Any) -> None:
    """MaxPool/AveragePool without padding, over channels-last data."""
    value = c.value(node.input[0])
    spatial, attrs = value.rank - 2, attributes(node)
    if spatial not in (1, 2) or any(attrs.get("pads", [])) or attrs.get("ceil_mode", 0) \
            or any(d != 1 for d in attrs.get("dilations", [])) or text(attrs.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
        raise TinyedgeError(f"the {node.op_type} node {node.name} pads, dilates or rounds up: tinyedge converts "
                            "1-D and 2-D pools without padding in models with LSTM/GRU.")
    channels_last = (0, *range(2, value.rank), 1)
    kinds = {("MaxPool", 1): "MaxPooling1D", ("MaxPool", 2): "MaxPooling2D",
             ("AveragePool", 1): "AveragePooling1D", ("AveragePool", 2): "AveragePooling2D"}
    layer = getattr(c.keras.layers, kinds[node.op_type, spatial])(tuple(attrs["kernel_shape"]),
                                                                  strides=tuple(attrs.get("strides", attrs["kernel_shape"])))
    out = layer(in_layout(c.tf, value, channels_last))
    stored = tuple(out.shape)
    c.put(node, Value(out, channels_last, (stored[0], stored[-1], *stored[1:-1])))


# ---------------------------------------------------------------- recurrent layers


@dataclass
class RecurrentNode:
    """What LSTM and GRU share: the checks, the input sequence and the state inputs."""
    converter: Converter
    node: Any
    gates: int

    @property
    def attrs(self) -> dict[str, Any]:
        return attributes(self.node)

    def check(self) -> None:
        attrs, op = self.attrs, self.node.op_type
        direction = text(attrs.get("direction", "forward"))
        if direction != "forward":
            raise unsupported(f"the {op} node {self.node.name} is {direction} (e.g. nn.{op}(bidirectional=True))")
        activations = [text(a) for a in attrs.get("activations", [])]
        if activations and activations != DEFAULT_ACTIVATIONS[op]:
            raise unsupported(f"the {op} node {self.node.name} uses the activations {activations}")
        if "clip" in attrs or attrs.get("input_forget", 0):
            raise unsupported(f"the {op} node {self.node.name} clips its cell or couples its gates")
        if self.has_input(4):
            lengths = self.converter.constant(self.node.input[4], f"sequence lengths of an {op}")
            if np.any(lengths != self.time_steps):
                raise unsupported(f"the {op} node {self.node.name} takes sequences shorter than its input")
        for position in (5, 6, 7) if op == "LSTM" else (5,):
            if self.has_input(position):
                state = self.converter.constant(self.node.input[position], f"initial state or peepholes of an {op}")
                if np.any(state != 0):
                    raise unsupported(f"the {op} node {self.node.name} starts from a non-zero state or has peepholes")

    def has_input(self, position: int) -> bool:
        return len(self.node.input) > position and bool(self.node.input[position])

    @property
    def batch_first(self) -> bool:
        return bool(self.attrs.get("layout", 0))

    @property
    def sequence(self) -> Value:
        return self.converter.value(self.node.input[0])

    @property
    def time_steps(self) -> int:
        return self.sequence.shape[1 if self.batch_first else 0]

    def batch_major(self) -> Any:
        """The input sequence as [batch, time, features]."""
        perm = (0, 1, 2) if self.batch_first else (1, 0, 2)
        value = self.sequence
        if value.shape[perm[0]] != 1:
            raise TinyedgeError(f"the {self.node.op_type} node {self.node.name} takes a batch of {value.shape[perm[0]]}: "
                                "export it with a batch of 1.")
        return in_layout(self.converter.tf, value, perm)

    def weights(self) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
        """Per-gate input and recurrent weights (ONNX's order) and the two biases."""
        c, hidden = self.converter, self.attrs["hidden_size"]
        w = c.constant(self.node.input[1], "weights of a recurrent layer")[0].astype(np.float64)
        r = c.constant(self.node.input[2], "weights of a recurrent layer")[0].astype(np.float64)
        b = (c.constant(self.node.input[3], "biases of a recurrent layer")[0].astype(np.float64) if self.has_input(3)
             else np.zeros(2 * self.gates * hidden))
        split = lambda m: [m[g * hidden:(g + 1) * hidden] for g in range(self.gates)]
        return split(w), split(r), b[:self.gates * hidden], b[self.gates * hidden:]

    def outputs(self, sequence: Any | None, last: Any | None, steps: list[Any] | None = None) -> None:
        """Y ([time, 1, batch, hidden], or [batch, time, 1, hidden] batch-first) and Y_h."""
        c, tf, hidden = self.converter, self.converter.tf, self.attrs["hidden_size"]
        steps_count = self.time_steps
        if sequence is not None:
            stored = tf.reshape(sequence, [1, steps_count, 1, hidden])
            if self.batch_first:
                value = Value(stored, (0, 1, 2, 3), (1, steps_count, 1, hidden), steps, 1 if steps else None)
            else:
                value = Value(stored, (2, 0, 1, 3), (steps_count, 1, 1, hidden), steps, 0 if steps else None)
            c.put(self.node, value, 0)
        if last is not None:
            c.put(self.node, Value(tf.reshape(last, [1, 1, hidden]), (0, 1, 2), (1, 1, hidden)), 1)


def lstm(c: Converter, index: int, node: Any) -> None:
    rec = RecurrentNode(c, node, gates=4)
    rec.check()
    if len(node.output) > 2 and c.used(node.output[2]):
        raise unsupported(f"the LSTM node {node.name}'s final cell state is used (TFLite's LSTM keeps it inside)")
    hidden = rec.attrs["hidden_size"]
    (wi, wo, wf, wc), (ri, ro, rf, rc), wb, rb = rec.weights()
    keras_order = lambda parts: np.concatenate([parts[0], parts[2], parts[3], parts[1]], axis=0)   # i,o,f,c -> i,f,c,o
    bias = wb + rb
    bias_parts = [bias[g * hidden:(g + 1) * hidden] for g in range(4)]
    want_sequence = c.used(node.output[0])
    layer = c.keras.layers.LSTM(hidden, return_sequences=want_sequence)
    out = layer(rec.batch_major())
    layer.set_weights([keras_order([wi, wo, wf, wc]).T.astype(np.float32), keras_order([ri, ro, rf, rc]).T.astype(np.float32),
                       keras_order(bias_parts).astype(np.float32)])
    want_last = len(node.output) > 1 and c.used(node.output[1])
    last = (out[:, -1] if want_sequence else out) if want_last else None
    rec.outputs(out if want_sequence else None, last)


def gru(c: Converter, index: int, node: Any) -> None:
    """A GRU unrolled over its time steps into ops every runtime runs: FULLY_CONNECTED, LOGISTIC, TANH,
    MUL, SUB, ADD (ONNX's equations; linear_before_reset=1 is PyTorch's)."""
    rec = RecurrentNode(c, node, gates=3)
    rec.check()
    tf, hidden, steps_count = c.tf, rec.attrs["hidden_size"], rec.time_steps
    before_reset = bool(rec.attrs.get("linear_before_reset", 0))
    (wz, wr, wh), (rz, rr, rh), (wbz, wbr, wbh), (rbz, rbr, rbh) = _gru_parts(rec, hidden)
    x = tf.reshape(rec.batch_major(), [steps_count, -1])
    xz = dense(c, x, wz.T, wbz + rbz)
    xr = dense(c, x, wr.T, wbr + rbr)
    xh = dense(c, x, wh.T, wbh if before_reset else wbh + rbh)
    recurrent = {name: c.keras.layers.Dense(hidden, use_bias=use_bias) for name, use_bias in
                 (("z", False), ("r", False), ("h", before_reset))}
    built = set()

    def project(name: str, tensor: Any, kernel: np.ndarray, bias: np.ndarray) -> Any:
        out = recurrent[name](tensor)
        if name not in built:
            recurrent[name].set_weights([kernel.T.astype(np.float32)] + ([bias.astype(np.float32)] if name == "h" and before_reset else []))
            built.add(name)
        return out

    h, states = None, []
    for t in range(steps_count):
        xz_t, xr_t, xh_t = xz[t:t + 1], xr[t:t + 1], xh[t:t + 1]
        if h is None:   # the state starts at zero: its products are the recurrent biases alone
            z, r = tf.sigmoid(xz_t), tf.sigmoid(xr_t)
            n = tf.tanh(xh_t + r * rbh.astype(np.float32)) if before_reset else tf.tanh(xh_t)
            h = n - z * n
        else:
            z = tf.sigmoid(xz_t + project("z", h, rz, rbz))
            r = tf.sigmoid(xr_t + project("r", h, rr, rbr))
            n = tf.tanh(xh_t + r * project("h", h, rh, rbh)) if before_reset else tf.tanh(xh_t + project("h", r * h, rh, rbh))
            h = n + z * (h - n)
        states.append(h)
    want_sequence = c.used(node.output[0])
    sequence = tf.concat([tf.reshape(s, [1, 1, hidden]) for s in states], axis=1) if want_sequence else None
    rec.outputs(sequence, h if len(node.output) > 1 and c.used(node.output[1]) else None, states)


def _gru_parts(rec: RecurrentNode, hidden: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    w, r, wb, rb = rec.weights()
    split = lambda b: [b[g * hidden:(g + 1) * hidden] for g in range(3)]
    return w, r, split(wb), split(rb)


HANDLERS: dict[str, Callable[[Converter, int, Any], None]] = {
    "Relu": unary(lambda tf, x, a: tf.nn.relu(x)),
    "Sigmoid": unary(lambda tf, x, a: tf.sigmoid(x)),
    "Tanh": unary(lambda tf, x, a: tf.tanh(x)),
    "LeakyRelu": unary(lambda tf, x, a: tf.nn.leaky_relu(x, alpha=a.get("alpha", 0.01))),
    "Identity": unary(lambda tf, x, a: x),
    "Dropout": unary(lambda tf, x, a: x),
    "Clip": clip,
    "Add": binary("Add"), "Sub": binary("Sub"), "Mul": binary("Mul"), "Div": binary("Div"),
    "Softmax": softmax,
    "Transpose": transpose, "Reshape": reshape, "Squeeze": squeeze, "Unsqueeze": unsqueeze, "Flatten": flatten,
    "Gather": gather, "Slice": slice_, "Concat": concat,
    "Gemm": gemm, "MatMul": matmul, "Conv": conv, "BatchNormalization": batch_norm,
    "MaxPool": pool, "AveragePool": pool,
    "LSTM": lstm, "GRU": gru,
}


def convert_recurrent(proto: Any, board_channels_last: bool) -> Any:
    """The ONNX graph as a tf_keras model with the board's input layout (batch of 1)."""
    tf = tensorflow()
    keras = tf_keras()
    if len(data_inputs(proto)) != 1:
        raise TinyedgeError("tinyedge converts single-input models with LSTM/GRU: export the model with one input.")
    return Converter(proto, tf, keras).build(board_channels_last)
