"""A held-out MobileNetV2 at 224x224 (Keras's architecture, random weights, int8 with random
calibration; built here, never downloaded; or with `--model` a given int8 .tflite, such as TFLM's own
PyTorch-exported, trained mobilenet_v2_quantized_1x3x224x224.tflite) through the AOT runtime on the emulated Cortex-M4 (QEMU
mps2-an386: 4 MiB for code and weights, 4 MiB for data): flash, RAM, instructions, estimated cycles
and bit-exactness against tflite-micro, as benchmarks/aot_vs_tflm.py measures them.

    .venv/bin/python benchmarks/mobilenet_v2_224.py [--model INT8_TFLITE] [--json OUT] [--samples 2] [--keep DIR]

It exits 0 when the model fits the board, runs and matches tflite-micro bit for bit on every input.
An inference is about 300 M MACs: expect minutes under QEMU and tflite-micro's Python interpreter.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from aot_vs_tflm import (
    BOARD, Workload, generate_and_build, measure_on_target, measured_commit, quantized, run_main,
)

from tinyedge.boards import get_board
from tinyedge.tflite_model import load_tflite

SIDE = 224


def mobilenet_v2():
    import tensorflow as tf

    return tf.keras.applications.MobileNetV2(weights=None, input_shape=(SIDE, SIDE, 3))


def calibration(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, size=(n, SIDE, SIDE, 3)).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--samples", type=int, default=2, help="random inputs checked against tflite-micro")
    parser.add_argument("--calibration", type=int, default=4, help="calibration samples for quantization")
    parser.add_argument("--keep", type=Path, help="keep the generated project in this directory")
    parser.add_argument("--model", type=Path, help="an int8 MobileNetV2 224 .tflite to measure instead of building "
                                                   "Keras's (whose random weights give logits tflite-micro aborts on)")
    args = parser.parse_args()
    board = get_board(BOARD)
    with tempfile.TemporaryDirectory(prefix="tinyedge-mobilenet-") as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        model_path = args.model or quantized(Workload("mobilenet_v2 224", mobilenet_v2, calibration), out,
                                             args.calibration)
        model = load_tflite(model_path)
        project, seconds = generate_and_build(model_path, out / "aot", "aot", None)
        figures = measure_on_target(project, model, 1, args.samples, seconds)
    print(f"MobileNetV2 {SIDE}x{SIDE} (int8, {len(model.data):,} B model) on {BOARD} with the AOT runtime:")
    print(f"  flash {figures.flash_bytes:,} B of {board.flash_bytes:,}; RAM {figures.ram_bytes:,} B of "
          f"{board.ram_bytes:,} (arena {figures.arena_bytes:,} B)")
    print(f"  {figures.instructions / 1e6:,.1f} M instructions per inference", end="")
    if figures.cycles_estimate:
        c = figures.cycles_estimate
        print(f"; estimated Cortex-M4 cycles {c['low'] / 1e6:,.1f} / {c['mid'] / 1e6:,.1f} / {c['high'] / 1e6:,.1f} M "
              "(low/mid/high)", end="")
    print(f"\n  bit-exact against tflite-micro: {figures.exact}/{figures.checked} inputs; "
          f"measured in {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"board": BOARD, "commit": measured_commit(), "model_bytes": len(model.data),
                                         "aot": figures.as_dict()}, indent=2) + "\n")
    fits = figures.flash_bytes <= board.flash_bytes and figures.ram_bytes <= board.ram_bytes
    return 0 if fits and figures.exact == figures.checked else 1


if __name__ == "__main__":
    run_main(main)
