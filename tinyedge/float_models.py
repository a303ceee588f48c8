"""Float models as tinyedge's quantizer takes them: Keras files and SavedModels loaded with TensorFlow and
re-wrapped with a batch dimension of 1 (an ONNX model is converted to a SavedModel first, by onnx_import)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyedge.checks import check_samples
from tinyedge.errors import TinyedgeError
from tinyedge.reference import captured_native_output


def tensorflow():
    """Import TensorFlow with its log noise silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import logging

    with captured_native_output():
        import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover
        pass
    return tf


@dataclass
class FloatModel:
    """A float Keras model whose input batch dimension is fixed to 1."""
    keras_model: Any
    input_shapes: list[tuple[int, ...]]
    reference_name = "TensorFlow"   # what computes the float outputs the int8 model is compared with
    channels_last = False           # True when user arrays may come channels-first (ONNX models)
    # True when every call starts its recurrent layers from zero state (an ONNX LSTM/GRU graph), so the
    # int8 model is marked to reset its state before each inference.
    starts_from_zero_state = False

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        result = self.keras_model(inputs if len(inputs) > 1 else inputs[0], training=False)
        if isinstance(result, dict):
            result = [result[k] for k in sorted(result)]
        elif not isinstance(result, (list, tuple)):
            result = [result]
        return [np.asarray(r) for r in result]

    def arrange(self, data: np.ndarray, what: str, source: str) -> np.ndarray:
        return check_samples(data, self.input_shapes[0], what, source)


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def load_keras_model(path: Path) -> FloatModel:
    tf = tensorflow()
    try:
        with captured_native_output():
            model = tf.keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise TinyedgeError(f"{path} could not be loaded as a Keras model ({first_line(exc)}): check the file.") from None
    return keras_to_float_model(model)


def keras_to_float_model(model: Any) -> FloatModel:
    """Re-wrap a Keras model with batch size 1 (inputs of shape (1, ...))."""
    tf = tensorflow()
    shapes = [(1, *tuple(t.shape)[1:]) for t in model.inputs]
    if any(None in shape for shape in shapes):
        raise TinyedgeError(
            "the model has a free dimension besides the batch (e.g. variable sequence length): "
            "give its inputs fixed shapes before quantizing."
        )
    inputs = [tf.keras.Input(batch_shape=shape, dtype=t.dtype) for shape, t in zip(shapes, model.inputs)]
    outputs = model(inputs if len(inputs) > 1 else inputs[0])
    return FloatModel(tf.keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs), shapes)


def load_saved_model(path: Path) -> FloatModel:
    tf = tensorflow()
    try:
        with captured_native_output():
            layer = tf.keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
            loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise TinyedgeError(f"{path} could not be loaded as a SavedModel with a 'serving_default' signature ({first_line(exc)}).") from None
    specs = loaded.signatures["serving_default"].structured_input_signature[1]
    if len(specs) != 1:
        raise TinyedgeError(f"{path} has {len(specs)} inputs; tinyedge quantize takes single-input models.")
    spec = next(iter(specs.values()))
    shape = (1, *spec.shape.as_list()[1:])
    if None in shape:
        raise TinyedgeError(f"{path} has a free dimension besides the batch: export it with fixed input shapes.")
    inp = tf.keras.Input(batch_shape=shape, dtype=spec.dtype)
    out = layer(inp)
    if isinstance(out, dict):
        out = [out[k] for k in sorted(out)]
        out = out[0] if len(out) == 1 else out
    return FloatModel(tf.keras.Model(inp, out), [shape])
