"""How fast `tinyedge emit` writes a model as a C array: a 1 MiB model, timed over a few runs.

    .venv/bin/python benchmarks/emit_speed.py [--megabytes 1] [--runs 5]

Prints the best and median seconds; exits 1 if the best run of 1 MiB takes a second or more (the
target the test suite used to time, which belongs here: a test must not fail on a busy machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tinyedge.carray import write_c_array  # noqa: E402

TARGET_SECONDS_PER_MIB = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = np.random.default_rng(0).integers(0, 256, args.megabytes << 20, dtype=np.uint8).tobytes()
    times = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.runs):
            start = time.perf_counter()
            write_c_array(data, Path(out), "big")
            times.append(time.perf_counter() - start)
    best = min(times)
    print(f"emit of {args.megabytes} MiB: best {best:.3f} s, median {statistics.median(times):.3f} s over {args.runs} runs")
    return 0 if best < TARGET_SECONDS_PER_MIB * args.megabytes else 1


if __name__ == "__main__":
    sys.exit(main())
