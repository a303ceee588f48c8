"""Models with several inputs or outputs, as full-int8 .tflite files (TensorFlow's own converter)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The two inputs of the ADD model cover different ranges, so they quantize with different scales and
# bytes fed to the wrong input would change the answer.
RANGES = {"a": 1.0, "b": 4.0}


def _int8(model, samples: list[np.ndarray], path: Path) -> Path:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    converter.representative_dataset = lambda: ([s[i:i + 1] for s in samples] for i in range(len(samples[0])))
    path.write_bytes(converter.convert())
    return path


def inputs_for(names: list[str], count: int, seed: int = 0, width: int = 8) -> dict[str, np.ndarray]:
    """Float samples for each input, in the range its name gives ('a': ±1, 'b': ±4)."""
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-1, 1, (count, width)).astype(np.float32) * RANGES[next(k for k in RANGES if k in name)]
            for name in names}


def two_input_add(path: Path, width: int = 8) -> Path:
    """ADD of two (1, 8) inputs, named a and b."""
    import tensorflow as tf

    a = tf.keras.Input(batch_shape=(1, width), name="a")
    b = tf.keras.Input(batch_shape=(1, width), name="b")
    model = tf.keras.Model([a, b], tf.keras.layers.Add()([a, b]))
    data = inputs_for(["a", "b"], 64)
    return _int8(model, [data["a"], data["b"]], path)


def two_outputs(path: Path, width: int = 8) -> Path:
    """One (1, 8) input, a hidden layer, and two heads: 3 scores and 2 values."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(3)
    x = tf.keras.Input(batch_shape=(1, width), name="a")
    hidden = tf.keras.layers.Dense(12, activation="relu")(x)
    model = tf.keras.Model(x, [tf.keras.layers.Dense(3)(hidden), tf.keras.layers.Dense(2)(hidden)])
    return _int8(model, [inputs_for(["a"], 64)["a"]], path)
