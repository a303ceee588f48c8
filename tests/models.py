"""Small real models for the tests, built and trained (briefly) in-process.

Each builder returns a Keras model; `to_int8_tflite` converts one to full int8 through
tinyedge's own quantize stage, so every test uses what users get.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np


def keras():
    import tensorflow as tf

    return tf.keras


def sine_data(n: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 2 * np.pi, size=(n, 1)).astype(np.float32)
    return x, np.sin(x).astype(np.float32)


def sine_mlp(epochs: int = 30):
    """The classic TFLM 'hello world': 1 -> 16 -> 16 -> 1, FULLY_CONNECTED only."""
    k = keras()
    k.utils.set_random_seed(1)
    model = k.Sequential([
        k.Input(shape=(1,)),
        k.layers.Dense(16, activation="relu"),
        k.layers.Dense(16, activation="relu"),
        k.layers.Dense(1),
    ])
    model.compile(optimizer="adam", loss="mse")
    x, y = sine_data()
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


def blobs_images(n: int = 256, size: int = 16, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is which quadrant holds a bright blob: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.15, size=(n, size, size, 1)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    half = size // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, r * half + 2:r * half + half - 2, c * half + 2:c * half + half - 2, 0] += 1.0
    return x, y.astype(np.int64)


def small_cnn(epochs: int = 3):
    """CONV_2D, DEPTHWISE_CONV_2D, pooling, FULLY_CONNECTED and SOFTMAX."""
    k = keras()
    k.utils.set_random_seed(2)
    model = k.Sequential([
        k.Input(shape=(16, 16, 1)),
        k.layers.Conv2D(8, 3, padding="same", activation="relu"),
        k.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        k.layers.MaxPooling2D(2),
        k.layers.Conv2D(8, 1, activation="relu"),
        k.layers.AveragePooling2D(2),
        k.layers.Flatten(),
        k.layers.Dense(16, activation="relu"),
        k.layers.Dense(4, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = blobs_images()
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def edit_flatbuffer(data: bytes, edit) -> bytes:
    """A .tflite's bytes with `edit(model)` applied to its unpacked schema object (ModelT), repacked."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
