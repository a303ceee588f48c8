"""Build times of generated firmware, through tinyedge's Python API (generate, then build), for the
tflm and aot runtimes on the qemu-cortex-m4 and host boards:

- first build: a new project with an empty TFLM object cache (a fresh temporary TINYEDGE_CACHE), so
  the TFLM library is compiled from the tree;
- warm cache: another new project for the same model, the cache now holding the library;
- no change: `build` again in the same project;
- +1 op: the model gains one operator (a sigmoid: LOGISTIC) and the same project is regenerated and
  rebuilt; TFLM compiles just that kernel and re-archives.

    TINYEDGE_TFLM_DIR=/work/tflm-tree .venv/bin/python benchmarks/build_times.py [--json OUT]

Without a TFLM tree only the AOT rows are measured. Times are wall-clock seconds on this machine
(make -j<cores>, TFLM objects compiled in parallel); "TFLM objects" is how many the cache gained.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np

from aot_vs_tflm import run_main  # noqa: E402  (sys.path above)
from tinyedge.build import build
from tinyedge.generate import generate
from tinyedge.tflite_model import load_tflite
from tinyedge.tflm_tree import find_tflm_tree

BOARDS = ("qemu-cortex-m4", "host")


@dataclass
class Timing:
    runtime: str
    board: str
    step: str
    generate_s: float
    build_s: float
    tflm_objects: int


def mlp(sigmoid_head: bool):
    """The sine 'hello world' shape (1 -> 16 -> 16 -> 1, FULLY_CONNECTED), optionally ending in a sigmoid."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(1)
    k = tf.keras
    layers = [k.Input((1,)), k.layers.Dense(16, activation="relu"), k.layers.Dense(16, activation="relu"),
              k.layers.Dense(1)]
    if sigmoid_head:
        layers.append(k.layers.Activation("sigmoid"))
    return k.Sequential(layers)


def quantized_models(out: Path) -> tuple[Path, Path]:
    from tinyedge.quantize import quantize_model

    calibration = np.linspace(0, 2 * np.pi, 64, dtype=np.float32).reshape(-1, 1)
    paths = []
    for name, sigmoid_head in (("mlp", False), ("mlp_sigmoid", True)):
        keras_path = out / f"{name}.keras"
        mlp(sigmoid_head).save(keras_path)
        quantize_model(keras_path, calibration, out / f"{name}_int8.tflite")
        paths.append(out / f"{name}_int8.tflite")
    base, grown = (load_tflite(p).op_names() for p in paths)
    assert len(set(grown) - set(base)) == 1, (base, grown)
    return paths[0], paths[1]


def cached_objects(cache: Path) -> int:
    return sum(1 for _ in (cache / "tflm").rglob("*.o")) if (cache / "tflm").is_dir() else 0


def timed_step(runtime: str, board: str, step: str, model: Path | None, project: Path, tree: Path | None,
               cache: Path) -> Timing:
    """Generate (unless model is None) and build; the seconds each took and the TFLM objects compiled."""
    objects = cached_objects(cache)
    started = time.monotonic()
    if model is not None:
        generate(model, board, project, runtime=runtime, tflm_dir=tree)
    generated = time.monotonic()
    build(project)
    built = time.monotonic()
    return Timing(runtime, board, step, round(generated - started, 2), round(built - generated, 2),
                  cached_objects(cache) - objects)


def measure(runtime: str, board: str, models: tuple[Path, Path], work: Path, tree: Path | None) -> list[Timing]:
    cache = work / f"cache-{runtime}-{board}"
    os.environ["TINYEDGE_CACHE"] = str(cache)
    base, grown = models
    first, second = work / f"{runtime}-{board}-1", work / f"{runtime}-{board}-2"
    return [
        timed_step(runtime, board, "first build (empty cache)", base, first, tree, cache),
        timed_step(runtime, board, "new project, warm cache", base, second, tree, cache),
        timed_step(runtime, board, "rebuild, no change", None, second, tree, cache),
        timed_step(runtime, board, "model change: +1 op", grown, second, tree, cache),
    ]


def print_table(timings: list[Timing], grown_op: str) -> None:
    print(f"\nBuild times in seconds (generate, then build); +1 op adds {grown_op}")
    header = f"{'runtime':<7} {'board':<15} {'step':<26} {'generate':>9} {'build':>8} {'TFLM objects':>13}"
    print(header)
    print("-" * len(header))
    for t in timings:
        objects = str(t.tflm_objects) if t.runtime == "tflm" else "-"
        print(f"{t.runtime:<7} {t.board:<15} {t.step:<26} {t.generate_s:>9.2f} {t.build_s:>8.2f} {objects:>13}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the timings to this JSON file")
    args = parser.parse_args()
    tree = find_tflm_tree(None)
    runtimes = ["aot", "tflm"] if tree is not None else ["aot"]
    if tree is None:
        print("No TFLM tree (set TINYEDGE_TFLM_DIR to a tree made with TFLM's create_tflm_tree.py): "
              "timing the AOT builds only.")
    saved_cache = os.environ.get("TINYEDGE_CACHE")
    timings: list[Timing] = []
    try:
        with tempfile.TemporaryDirectory(prefix="tinyedge-build-times-") as tmp:
            work = Path(tmp)
            models = quantized_models(work)
            grown_op = ", ".join(sorted(set(load_tflite(models[1]).op_names()) - set(load_tflite(models[0]).op_names())))
            for runtime in runtimes:
                for board in BOARDS:
                    timings += measure(runtime, board, models, work, tree)
                    print(f"  {runtime} on {board}: done", file=sys.stderr)
    finally:
        if saved_cache is None:
            os.environ.pop("TINYEDGE_CACHE", None)
        else:
            os.environ["TINYEDGE_CACHE"] = saved_cache
    print_table(timings, grown_op)
    if args.json:
        args.json.write_text(json.dumps({"cores": os.cpu_count(), "added_op": grown_op,
                                         "timings": [asdict(t) for t in timings]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    run_main(main)
