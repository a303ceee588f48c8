"""`tinyedge shrink` by width factor: int8 bytes, host tensor arena, MACs, tflite-micro time per
inference on this host, and held-out accuracy (float and int8), on a blob classifier of 64-filter
convolutions trained here (tests/models.py's blobs_images, 600 samples).

    .venv/bin/python benchmarks/shrink.py [--keep 0.5 0.25 0.125] [--epochs 2] [--json OUT]

How each figure is measured:
- int8 bytes, arena, MACs, accuracy: tinyedge.shrink.shrink_model's report (tinyedge's own quantizer;
  the arena measured with tflite-micro on this 64-bit host; accuracy on the fifth of the data held out).
- time: the median of 50 tflite-micro (reference kernels) invocations on this host, in µs — a relative
  figure between widths, not a board's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def teacher(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    import models

    k = models.keras()
    k.utils.set_random_seed(4)
    model = k.Sequential([
        k.Input((16, 16, 1)),
        k.layers.Conv2D(64, 3, padding="same", activation="relu"), k.layers.MaxPooling2D(2),
        k.layers.Conv2D(64, 3, padding="same"), k.layers.BatchNormalization(), k.layers.ReLU(), k.layers.MaxPooling2D(2),
        k.layers.Flatten(), k.layers.Dense(64, activation="relu"), k.layers.Dense(4, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    model.save(path)


def host_micros(keras_path: Path, calibration: np.ndarray, runs: int = 50) -> float:
    from tinyedge.reference import Reference
    from tinyedge.shrink import int8_bytes_of

    import keras

    reference = Reference(int8_bytes_of(keras.models.load_model(keras_path), calibration[:16]))
    tin = reference.model.input_tensors[0]
    sample = np.zeros(tin.shape, dtype=tin.dtype)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        reference.run([sample])
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def main() -> int:
    import models
    from tinyedge.shrink import shrink_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=float, nargs="+", default=[0.5, 0.25, 0.125])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    x, y = models.blobs_images(600, seed=3)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        teacher(work / "teacher.keras", x, y)
        for keep in args.keep:
            report = shrink_model(work / "teacher.keras", x, y, work / f"keep{keep}.keras", keep=keep, epochs=args.epochs)
            if not rows:
                rows.append({"keep": 1.0, **vars(report.before),
                             "host_us": host_micros(work / "teacher.keras", x)})
            rows.append({"keep": keep, **vars(report.after), "host_us": host_micros(work / f"keep{keep}.keras", x)})
    print(f"{'keep':>6} {'int8 B':>9} {'arena B':>8} {'MACs':>10} {'host µs':>8} {'acc float':>9} {'acc int8':>8}")
    for row in rows:
        print(f"{row['keep']:>6.3f} {row['int8_bytes']:>9,} {row['arena_bytes']:>8,} {row['macs']:>10,} "
              f"{row['host_us']:>8.0f} {row['accuracy_float']:>9.1%} {row['accuracy_int8']:>8.1%}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
