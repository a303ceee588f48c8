"""The AOT runtime on the Cortex-M0+ (board pico-emulated: the RP2040 in rp2040js) against TensorFlow
Lite Micro with CMSIS-NN built for cortex-m0plus (CMSIS-NN's portable C paths: the M0+ has no DSP
extension), in clk_sys cycles per inference, plus flash, RAM and bit-exactness, for the real models
that fit the Pico's 264 KB of RAM.

    .venv/bin/python benchmarks/m0plus.py --models ../shared/models/real [--tflm-cmsis-dir TREE] [--json OUT]

How each figure is measured:

- cycles: the RP2040's SysTick on the processor clock (125 MHz: the port's PLL setting, which is also
  the rate rp2040js counts at) across te_runtime_invoke(), the median over --runs INFERs of one input.
  rp2040js gives every instruction the M0+'s documented cycle count and has no XIP cache model, so the
  figures are the core's own, without flash wait states.
- TFLM + CMSIS-NN: the same firmware (port, protocol) with the tflm runtime from a CMSIS-NN tree
  (TINYEDGE_TFLM_CMSIS_DIR or --tflm-cmsis-dir; CMSIS-NN compiled for -mcpu=cortex-m0plus, so without
  ARM_MATH_DSP), built through a benchmark-only board profile (pico-emulated with the tflm runtime);
  its arena fitted on the target first. Without a tree, only the AOT side is measured.
- flash: the ELF's allocated sections with contents; RAM: data + bss without the reserved stack plus
  the stack's measured high-water mark.
- bit-exact: the outputs of --samples random inputs and the model's shipped real inputs equal
  tflite-micro's (tinyedge.reference) byte for byte.
- target: AOT cycles <= 0.8x TFLM + CMSIS-NN's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aot_vs_tflm as method  # noqa: E402  (sys.path above)
import mlperf_tiny  # noqa: E402

from tinyedge.build import build  # noqa: E402
from tinyedge.errors import TinyedgeError  # noqa: E402
from tinyedge.flash import flash  # noqa: E402
from tinyedge.generate import generate  # noqa: E402
from tinyedge.paths import boards_file  # noqa: E402
from tinyedge.project import Project  # noqa: E402
from tinyedge.protocol import Device  # noqa: E402
from tinyedge.reference import Reference  # noqa: E402
from tinyedge.tflite_model import TfliteModel, load_tflite  # noqa: E402
from tinyedge.tflm_tree import find_tflm_tree, is_cmsis_nn_tree  # noqa: E402

BOARD = "pico-emulated"
TFLM_BOARD = "pico-emulated-tflm"
MODELS = ("hello_world_int8", "kws_ref_model", "micro_speech_quantized", "str_ww_ref_model", "pretrainedResnet_quant")
TARGET = 0.8


@dataclass
class Result:
    cycles: int
    flash_bytes: int
    ram_bytes: int
    bit_exact: float
    inputs_checked: int


def tflm_board_profiles(out: Path) -> Path:
    """The package's boards.yaml plus pico-emulated with the tflm runtime (benchmarks only: the product
    board is AOT-only)."""
    doc = yaml.safe_load(boards_file().read_text())
    profile = dict(doc["boards"][BOARD])
    profile.update(name="Emulated Raspberry Pi Pico running TFLM (benchmark profile)", runtimes=["tflm", "aot"],
                   tflm={"source": "tree"}, image_of=TFLM_BOARD)
    profile["baremetal"] = {**profile["baremetal"], "cpp_package": "libstdc++-arm-none-eabi-newlib"}
    doc["boards"][TFLM_BOARD] = profile
    path = out / "boards.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def measure(project: Project, model: TfliteModel, inputs: list[list[np.ndarray]], runs: int) -> Result:
    reference = Reference(model)
    flash_bytes, static_ram, _reserved = method.static_sizes(project)
    with flash(project.dir) as url, Device(url, timeout=method.REQUEST_TIMEOUT_S) as device:
        first = method.concat_bytes(inputs[0])
        cycles = [device.infer(first).cycles for _ in range(runs)]
        exact = sum(device.infer(method.concat_bytes(x)).output == method.concat_bytes(reference.run(x)) for x in inputs)
        stack_used = device.info(refresh=True).stack_used or 0
    return Result(round(statistics.median(cycles)), flash_bytes, static_ram + stack_used, exact / len(inputs),
                  len(inputs))


def run(model_path: Path, board: str, runtime: str, tree: Path | None, out: Path,
        inputs: list[list[np.ndarray]], runs: int) -> Result:
    generate(model_path, board, out, runtime=runtime, tflm_dir=tree)
    build(out)
    project = Project.load(out)
    if runtime == "tflm":
        fitted = method.fitted_tflm_arena(project)
        generate(model_path, board, out, runtime=runtime, tflm_dir=tree, arena_bytes=method.arena_with_margin(fitted))
        build(out)
        project = Project.load(out)
    return measure(project, load_tflite(model_path), inputs, runs)


def print_table(results: dict[str, dict[str, Result]]) -> None:
    print("\nCortex-M0+ (RP2040 in rp2040js, 125 MHz): cycles per inference (median), bytes, bit-exact vs tflite-micro")
    print(f"{'model':<24} {'runtime':<16} {'cycles':>13} {'ms':>8} {'flash':>9} {'RAM':>8} {'exact':>6}")
    for stem, row in results.items():
        for runtime, r in row.items():
            print(f"{stem:<24} {runtime:<16} {r.cycles:>13,} {r.cycles / 125e3:>8.1f} {r.flash_bytes:>9,} "
                  f"{r.ram_bytes:>8,} {r.bit_exact:>6.0%}")
        if "tflm_cmsis_nn" in row:
            ratio = row["aot"].cycles / row["tflm_cmsis_nn"].cycles
            verdict = "meets" if ratio <= TARGET else "misses"
            print(f"{'':<24} {'aot / tflm':<16} {ratio:>12.2f}x  ({verdict} the {TARGET}x target)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="folder of .tflite models (and inputs/)")
    parser.add_argument("--tflm-cmsis-dir", type=Path, default=os.environ.get("TINYEDGE_TFLM_CMSIS_DIR") or None,
                        help="a CMSIS-NN TFLM tree (default: $TINYEDGE_TFLM_CMSIS_DIR); without it, AOT only")
    parser.add_argument("--only", help="run only the models whose file stem contains this text")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--runs", type=int, default=1, help="INFERs of one input per figure (median taken)")
    parser.add_argument("--samples", type=int, default=1, help="random inputs checked against tflite-micro")
    args = parser.parse_args()
    tree = None
    if args.tflm_cmsis_dir:
        tree = find_tflm_tree(Path(args.tflm_cmsis_dir))
        if tree is None or not is_cmsis_nn_tree(tree):
            raise TinyedgeError(f"{args.tflm_cmsis_dir} is not a CMSIS-NN TFLM tree: give one made with "
                                "OPTIMIZED_KERNEL_DIR=cmsis_nn.")
    else:
        print("no CMSIS-NN TFLM tree (--tflm-cmsis-dir / TINYEDGE_TFLM_CMSIS_DIR): measuring the AOT side only")

    results: dict[str, dict[str, Result]] = {}
    with tempfile.TemporaryDirectory(prefix="tinyedge-m0plus-") as tmp:
        os.environ["TINYEDGE_BOARDS"] = str(tflm_board_profiles(Path(tmp)))
        for stem in MODELS:
            if args.only and args.only not in stem:
                continue
            model_path = args.models / f"{stem}.tflite"
            model = load_tflite(model_path)
            inputs = mlperf_tiny.checked_inputs(model, args.models, stem, args.samples)
            row = results.setdefault(stem, {})
            row["aot"] = run(model_path, BOARD, "aot", None, Path(tmp) / stem / "aot", inputs, args.runs)
            print(f"{stem}: aot {row['aot'].cycles:,} cycles", flush=True)
            if tree is not None:
                row["tflm_cmsis_nn"] = run(model_path, TFLM_BOARD, "tflm", tree, Path(tmp) / stem / "tflm", inputs,
                                           args.runs)
                print(f"{stem}: tflm + cmsis-nn {row['tflm_cmsis_nn'].cycles:,} cycles", flush=True)
    print_table(results)
    if args.json:
        payload = {"commit": method.measured_commit(), "board": BOARD, "tflm_cmsis_tree": str(tree) if tree else None,
                   "results": {s: {r: asdict(v) for r, v in row.items()} for s, row in results.items()}}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    method.run_main(main)
