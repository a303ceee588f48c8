"""Train the bundled example models in a few seconds and save them with their data.

    python examples/train.py [--model shapes|sine] [-o examples/out]

writes MODEL.keras, calibration.npy, test_x.npy and test_y.npy into the output directory:
everything `tinyedge quantize` and `tinyedge deploy` need.

shapes: a small CNN (conv, depthwise conv, pooling, dense, softmax) that tells which quadrant of a
        16x16 image holds a bright square; sized for Cortex-M boards.
sine:   the classic 1-16-16-1 MLP that approximates sin(x); small enough for an Arduino Uno.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np


def quadrant_images(n: int, seed: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.15, size=(n, size, size, 1)).astype(np.float32)
    y = rng.integers(0, 4, size=n)
    half = size // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, r * half + 2:r * half + half - 2, c * half + 2:c * half + half - 2, 0] += 1.0
    return x, y.astype(np.int64)


def train_shapes(keras):
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input(shape=(16, 16, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(8, 1, activation="relu"),
        keras.layers.AveragePooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(4, activation="softmax"),
    ], name="shapes")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = quadrant_images(600, seed=1)
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    calibration, _ = quadrant_images(200, seed=2)
    test_x, test_y = quadrant_images(100, seed=3)
    return model, calibration, test_x, test_y


def train_sine(keras):
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input(shape=(1,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1),
    ], name="sine")
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 2 * np.pi, size=(1000, 1)).astype(np.float32)
    model.fit(x, np.sin(x), epochs=60, batch_size=64, verbose=0)
    calibration = rng.uniform(0, 2 * np.pi, size=(200, 1)).astype(np.float32)
    test_x = rng.uniform(0, 2 * np.pi, size=(100, 1)).astype(np.float32)
    return model, calibration, test_x, np.sin(test_x).astype(np.float32)


TRAINERS = {"shapes": train_shapes, "sine": train_sine}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(TRAINERS), default="shapes")
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    import tensorflow as tf

    model, calibration, test_x, test_y = TRAINERS[args.model](tf.keras)
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / f"{args.model}.keras")
    np.save(out / "calibration.npy", calibration)
    np.save(out / "test_x.npy", test_x)
    np.save(out / "test_y.npy", test_y)
    print(f"wrote {out / (args.model + '.keras')}, calibration.npy, test_x.npy, test_y.npy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
