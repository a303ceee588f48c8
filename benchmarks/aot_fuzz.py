"""The AOT runtime's differential shape fuzzer, for as long as you like (see tests/aot_fuzz_cases.py).

    .venv/bin/python benchmarks/aot_fuzz.py --cases 500 --seed 1 [--activation-kb 24] [--weights-k 160]
    .venv/bin/python benchmarks/aot_fuzz.py --case '{"seed": ..., ...}'     # rerun one printed case

Each case is a random int8 model, run on the portable and the DSP kernels (host-compiled with clang under
AddressSanitizer and UBSan, each op held to its own arena and scratch bytes) and compared bit for bit with
tflite-micro. Prints every finding with the case as one JSON line, then a summary; exits 1 when any
case mismatched, tripped a sanitizer or failed to compile (refusals are listed, not failures).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from aot_fuzz_cases import Case, Limits, random_case, run_case  # noqa: E402
from aot_harness import sanitized_kernels  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="how many random cases (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="the first case's seed; case i uses seed + i")
    parser.add_argument("--activation-kb", type=int, default=24, help="largest activation tensor, KiB (default 24)")
    parser.add_argument("--weights-k", type=int, default=160, help="most weights in one layer, thousands (default 160)")
    parser.add_argument("--case", help="rerun this one case (a JSON line the fuzzer printed)")
    args = parser.parse_args()
    limits = Limits(activation_bytes=args.activation_kb * 1024, weights=args.weights_k * 1000)
    cases = ([Case.from_json(args.case)] if args.case
             else (random_case(args.seed + i, limits) for i in range(args.cases)))
    counts: collections.Counter[str] = collections.Counter()
    ops: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aot_fuzz_") as tmp:
        kernels = sanitized_kernels(Path(tmp))
        for number, case in enumerate(cases):
            for layer in case.layers:
                ops[layer["op"]] += 1
            findings = run_case(case, Path(tmp) / f"case{number}", kernels)
            counts["cases"] += 1
            for finding in findings:
                counts[finding.what] += 1
                print(f"case {number} (seed {case.seed}): {finding}", flush=True)
            if (number + 1) % 25 == 0:
                print(f"... {number + 1} cases in {time.monotonic() - started:.0f} s", flush=True)
    failures = counts["mismatch"] + counts["sanitizer"] + counts["compile"]
    print(f"{counts['cases']} cases ({', '.join(f'{n} {op}' for op, n in sorted(ops.items()))}) on the portable "
          f"and DSP kernels in {time.monotonic() - started:.0f} s: {counts['mismatch']} mismatched, "
          f"{counts['sanitizer']} tripped a sanitizer, {counts['compile']} did not compile, {counts['refused']} refused")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
