"""The AOT runtime on the two emulated 32-bit boards, same models, same method: qemu-riscv32 (QEMU
virt, RV32IMAC, the portable C kernels) beside qemu-cortex-m4 (QEMU mps2-an386, Cortex-M4F, the
DSP kernels with SXTB16/SMLAD). Instructions per inference, flash, RAM and bit-exactness.

    .venv/bin/python benchmarks/riscv32.py --models ../shared/models/real [--only kws] [--json OUT]

Each figure is benchmarks/mlperf_tiny.py's `measure` (the method of benchmarks/aot_vs_tflm.py):
QEMU `-icount shift=0`, one instruction per virtual nanosecond, the median over --runs INFERs of one
input; on qemu-riscv32 the port counts the CLINT's 10 MHz mtime, so its figures have a granularity
of 100 instructions (40 on the Cortex-M4's 25 MHz SysTick). RAM = data + bss - the reserved stack +
the stack's measured high-water mark. bit_exact: the outputs of --samples random inputs and the
model's shipped real inputs equal tflite-micro's byte for byte.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))

import aot_vs_tflm as method  # noqa: E402  (sys.path above)
import mlperf_tiny  # noqa: E402

from tinyedge.build import build  # noqa: E402
from tinyedge.errors import TinyedgeError  # noqa: E402
from tinyedge.generate import generate  # noqa: E402
from tinyedge.project import Project  # noqa: E402
from tinyedge.tflite_model import load_tflite  # noqa: E402

BOARDS = ("qemu-cortex-m4", "qemu-riscv32")
MODELS = ("kws_ref_model", "micro_speech_quantized", "pretrainedResnet_quant")


def measure(model_path: Path, board: str, out: Path, inputs: list, runs: int) -> mlperf_tiny.Result:
    generate(model_path, board, out, runtime="aot")
    build(out)
    return mlperf_tiny.measure(Project.load(out), load_tflite(model_path), inputs, runs)


def print_table(results: dict[str, dict[str, mlperf_tiny.Result]]) -> None:
    print("\nAOT runtime: instructions per inference (median), bytes, bit-exact vs tflite-micro")
    print(f"{'model':<26} {'board':<16} {'instructions':>13} {'flash':>9} {'RAM':>8} {'exact':>6}")
    for stem, row in results.items():
        for board, r in row.items():
            print(f"{stem:<26} {board:<16} {r.instructions:>13,} {r.flash_bytes:>9,} {r.ram_bytes:>8,} "
                  f"{r.bit_exact:>6.0%}")
        if len(row) == len(BOARDS):
            arm, riscv = (row[b] for b in BOARDS)
            print(f"{'':<26} {'riscv32 / m4':<16} {riscv.instructions / arm.instructions:>12.2f}x "
                  f"{riscv.flash_bytes / arm.flash_bytes:>8.2f}x {riscv.ram_bytes / arm.ram_bytes:>7.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="folder of .tflite models (and inputs/)")
    parser.add_argument("--only", help="run only the models whose file stem contains this text")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--runs", type=int, default=3, help="INFERs of one input per figure (median taken)")
    parser.add_argument("--samples", type=int, default=2, help="random inputs checked against tflite-micro")
    args = parser.parse_args()

    results: dict[str, dict[str, mlperf_tiny.Result]] = {}
    with tempfile.TemporaryDirectory(prefix="tinyedge-riscv32-") as tmp:
        for stem in MODELS:
            if args.only and args.only not in stem:
                continue
            model_path = args.models / f"{stem}.tflite"
            model = load_tflite(model_path)
            inputs = mlperf_tiny.checked_inputs(model, args.models, stem, args.samples)
            for board in BOARDS:
                try:
                    result = measure(model_path, board, Path(tmp) / stem / board, inputs, args.runs)
                except TinyedgeError as error:   # a missing toolchain, a model the board cannot hold
                    print(f"  {stem} {board}: not measured ({error})", file=sys.stderr)
                    continue
                results.setdefault(stem, {})[board] = result
                print(f"  {stem} {board}: {result.instructions:,} instructions", file=sys.stderr)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps({
            "commit": method.measured_commit(), "runs": args.runs, "samples": args.samples,
            "models": {stem: {b: asdict(r) for b, r in row.items()} for stem, row in results.items()},
        }, indent=2) + "\n")
    measured = [r for row in results.values() for r in row.values()]
    return 0 if measured and all(r.bit_exact == 1.0 for r in measured) else 1


if __name__ == "__main__":
    sys.exit(main())
