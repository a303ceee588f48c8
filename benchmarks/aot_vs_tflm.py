"""The AOT runtime against TensorFlow Lite Micro on the emulated Cortex-M4 (QEMU mps2-an386): flash,
RAM, instructions per inference and bit-exactness, for MLPerf-Tiny-shaped models and tinyedge's
small CNN, each quantized with tinyedge's own quantizer and built through tinyedge's Python API.

    TINYEDGE_TFLM_DIR=/work/tflm-tree .venv/bin/python benchmarks/aot_vs_tflm.py [--json OUT]

Without a TFLM tree only the AOT figures are printed. How each figure is measured:

- flash: the ELF's allocated sections with contents (vectors, text, rodata, data's load image).
- RAM: data + bss without the linker's reserved stack region, plus the stack's measured high-water
  mark (the startup paints the free RAM at reset; INFO reports how far down the paint was overwritten
  after all the inferences). TFLM's arena is first fitted on the target (bisection with SET_ARENA)
  and the firmware regenerated with that arena plus tinyedge deploy's margin.
- instructions: the median over --runs INFERs of one input of the SysTick ticks te_runtime_invoke()
  took, under QEMU `-icount shift=0` (one instruction per virtual ns, so one 25 MHz tick = 40
  instructions; figures have that granularity).
- estimated cycles: the same INFERs run under our QEMU TCG plugin (benchmarks/cycle_model/), which
  counts every translation block executed inside te_runtime_invoke(); each executed instruction is
  priced with the Cortex-M4 TRM's timings (zero wait states) as a low/mid/high range
  (benchmarks/cycle_model/cortex_m4.py says which timings are uncertain and how each level takes them).
  Without a QEMU that loads plugins the estimate is left out, and the script says so.
- bit-exact: the device's outputs equal tflite-micro's (tinyedge.reference) on --samples random inputs.

The figures depend on the code measured, so the script prints (and writes to the JSON) the commit it
ran at, marked "+uncommitted changes" when the work tree differs from it: a figure quoted from it
names that commit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np
from cycle_model import trace

from tinyedge.boards import get_board
from tinyedge.build import build
from tinyedge.deploy import arena_with_margin
from tinyedge.elf import elf_sizes
from tinyedge.errors import TinyedgeError
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.project import Project
from tinyedge.sections import EmulatorSettings, EnergySettings
from tinyedge.protocol import Device
from tinyedge.reference import Reference
from tinyedge.tflite_model import TfliteModel, load_tflite
from tinyedge.tflm_tree import find_tflm_tree, fit_arena

BOARD = "qemu-cortex-m4"
# The Cortex-M4 board profile whose datasheet run power prices the estimated cycles in energy.
ENERGY_BOARD = "arduino-nano-33-ble"
NS_PER_SECOND = 1_000_000_000  # -icount shift=0: one instruction per virtual nanosecond
TARGETS = {"ram": 0.6, "flash": 0.75, "instructions": 1.0}
REQUEST_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Workload:
    name: str
    build_keras: Callable[[], object]
    calibration: Callable[[int], np.ndarray]


def _normal(shape: tuple[int, ...]) -> Callable[[int], np.ndarray]:
    return lambda n: np.random.default_rng(0).normal(size=(n, *shape)).astype(np.float32)


def workloads() -> list[Workload]:
    import mlperf_models
    import models

    return [
        Workload("ds_cnn (KWS)", mlperf_models.ds_cnn, _normal((49, 10, 1))),
        Workload("mobilenet_v1 0.25 (VWW, 48x48)", mlperf_models.mobilenet_v1, lambda n: np.random.default_rng(0)
                 .uniform(0, 1, size=(n, 48, 48, 3)).astype(np.float32)),
        Workload("resnet8 (IC)", mlperf_models.resnet8, lambda n: np.random.default_rng(0)
                 .uniform(0, 1, size=(n, 32, 32, 3)).astype(np.float32)),
        Workload("autoencoder (AD)", mlperf_models.autoencoder, _normal((640,))),
        Workload("small_cnn (tinyedge)", models.small_cnn, lambda n: models.blobs_images(n, seed=9)[0]),
    ]


@dataclass
class Figures:
    runtime: str
    flash_bytes: int
    static_ram_bytes: int    # data + bss without the reserved stack region
    stack_reserved_bytes: int
    stack_used_bytes: int    # the measured high-water mark
    arena_bytes: int
    instructions: int        # median per inference
    instructions_min: int
    instructions_max: int
    exact: int
    checked: int
    build_seconds: float
    flash_parts: dict[str, int]
    fitted_arena_bytes: int | None = None
    cycles_estimate: dict[str, int] | None = None   # {low, mid, high} per inference
    energy_uj_estimate: dict[str, float] | None = None   # the same range at ENERGY_BOARD's datasheet power

    @property
    def ram_bytes(self) -> int:
        return self.static_ram_bytes + self.stack_used_bytes

    def as_dict(self) -> dict:
        return {**asdict(self), "ram_bytes": self.ram_bytes}


@dataclass
class Row:
    model: str
    model_bytes: int
    aot: Figures
    tflm: Figures | None = None
    ratios: dict[str, float] = field(default_factory=dict)


# ---- sizes ----

def section_sizes(elf: Path) -> dict[str, int]:
    """Section name -> size, from `arm-none-eabi-size -A`."""
    text = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def static_sizes(project: Project) -> tuple[int, int, int]:
    """(flash, RAM without the reserved stack, reserved stack) of a built project's ELF."""
    flash_bytes, ram_bytes = elf_sizes(project.elf_path)
    reserved = section_sizes(project.elf_path).get(".stack", 0)
    return flash_bytes, ram_bytes - reserved, reserved


FLASH_SECTIONS = {".isr_vector", ".text", ".ARM.extab", ".ARM.exidx", ".preinit_array", ".init_array",
                  ".fini_array", ".data"}
INPUT_SECTION = re.compile(r"^ (\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
FLASH_PARTS = ("model", "runtime", "protocol+port", "libc+other")


def flash_part(obj: str) -> str:
    """Which part of the firmware an input file of the link belongs to."""
    name = Path(obj.split("(")[0]).name
    if name in ("te_model.c.o", "te_tflm_model_data.cc.o"):
        return "model"
    if "/aot/" in obj or name.startswith(("te_tflm_", "libtflm", "libstdc++")):
        return "runtime"
    if "/src/" in obj or obj.startswith("build/src"):
        return "protocol+port"
    return "libc+other"


def flash_breakdown(map_path: Path, flash_bytes: int) -> dict[str, int]:
    """Flash bytes per part (the model's constants and code, the runtime, the protocol and port) from
    the linker map's input sections; libc, libgcc, alignment and string merging are the rest."""
    parts = dict.fromkeys(FLASH_PARTS, 0)
    text = map_path.read_text(errors="replace")
    output_section = pending = None
    for line in text[text.find("Linker script and memory map"):].splitlines():
        if line.startswith("."):
            output_section = line.split()[0]
            continue
        if line.startswith(" .") and len(line.split()) == 1:
            pending = line.strip()
            continue
        match = INPUT_SECTION.match(line)
        if match and output_section in FLASH_SECTIONS and (match.group(1) or pending):
            parts[flash_part(match.group(4).strip())] += int(match.group(3), 16)
        pending = None
    parts["libc+other"] = flash_bytes - sum(v for k, v in parts.items() if k != "libc+other")
    return parts


# ---- on the target ----

def concat_bytes(tensors: list[np.ndarray]) -> bytes:
    return b"".join(np.ascontiguousarray(t).tobytes() for t in tensors)


def random_input(model: TfliteModel, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in model.input_tensors]


@contextmanager
def timed_board(project: Project, windows: int) -> Iterator[tuple[str, Callable[[], dict[str, int] | None]]]:
    """The board under `-icount shift=0`, and a function giving the estimated cycles of the first
    `windows` inferences (None when the installed QEMU cannot load our plugin)."""
    if not trace.plugins_supported(project.board.settings(EmulatorSettings).program):
        print("note: the installed QEMU cannot load TCG plugins (built without --enable-plugins): "
              "no cycle estimate", file=sys.stderr)
        with flash(project.dir, icount=True) as url:
            yield url, lambda: None
        return
    with tempfile.TemporaryDirectory(prefix="tinyedge-cycles-") as tmp:
        counts = Path(tmp) / "counts.txt"
        with trace.traced_qemu(project, windows, counts) as url:
            yield url, lambda: trace.estimate_from_counts(project.artifact("elf"), counts).as_dict()


def measure_on_target(project: Project, model: TfliteModel, runs: int, samples: int,
                      build_seconds: float, fitted: int | None = None) -> Figures:
    reference = Reference(model)
    rng = np.random.default_rng(1)
    flash_bytes, static_ram, reserved = static_sizes(project)
    with timed_board(project, runs) as (url, cycles), Device(url, timeout=REQUEST_TIMEOUT_S) as device:
        info = device.info()
        if info.cycle_hz == 0:
            raise TinyedgeError(f"the {project.board_id} firmware reports no cycle counter: flash a board with a timer.")
        x = concat_bytes(random_input(model, rng))
        ticks = [device.infer(x).cycles for _ in range(runs)]
        cycles_estimate = cycles()
        exact = 0
        for _ in range(samples):
            inputs = random_input(model, rng)
            exact += device.infer(concat_bytes(inputs)).output == concat_bytes(reference.run(inputs))
        stack_used = device.info(refresh=True).stack_used
    if stack_used is None:
        raise TinyedgeError("the firmware reports no stack high-water mark: regenerate it with this tinyedge.")
    per_tick = NS_PER_SECOND / info.cycle_hz
    return Figures(project.runtime, flash_bytes, static_ram, reserved, stack_used, info.arena_size,
                   round(statistics.median(ticks) * per_tick), round(min(ticks) * per_tick),
                   round(max(ticks) * per_tick), exact, samples, round(build_seconds, 1),
                   flash_breakdown(project.dir / "build" / "firmware.map", flash_bytes), fitted, cycles_estimate,
                   energy_from_cycles(cycles_estimate))


def generate_and_build(model_path: Path, out: Path, runtime: str, tree: Path | None,
                       arena_bytes: int | None = None) -> tuple[Project, float]:
    started = time.monotonic()
    generate(model_path, BOARD, out, runtime=runtime, tflm_dir=tree, arena_bytes=arena_bytes)
    build(out)
    return Project.load(out), time.monotonic() - started


def fitted_tflm_arena(project: Project) -> int:
    """The smallest arena TFLM allocates and invokes with on the target, as `tinyedge deploy --fit-arena`."""
    with flash(project.dir) as url, Device(url, timeout=REQUEST_TIMEOUT_S) as device:
        info = device.info()
        return fit_arena(device, low=int(info.arena_used), high=int(info.arena_size))


def run_aot(model_path: Path, model: TfliteModel, out: Path, runs: int, samples: int) -> Figures:
    project, seconds = generate_and_build(model_path, out / "aot", "aot", None)
    return measure_on_target(project, model, runs, samples, seconds)


def run_tflm(model_path: Path, model: TfliteModel, out: Path, tree: Path, runs: int, samples: int) -> Figures:
    project, seconds = generate_and_build(model_path, out / "tflm", "tflm", tree)
    fitted = fitted_tflm_arena(project)
    project, rebuild_seconds = generate_and_build(model_path, out / "tflm", "tflm", tree, arena_with_margin(fitted))
    return measure_on_target(project, model, runs, samples, seconds + rebuild_seconds, fitted)


# ---- the models ----

def quantized(workload: Workload, out: Path, calibration_samples: int) -> Path:
    from tinyedge.quantize import quantize_model

    keras_path = out / "model.keras"
    workload.build_keras().save(keras_path)
    int8_path = out / "model_int8.tflite"
    quantize_model(keras_path, workload.calibration(calibration_samples), int8_path)
    return int8_path


# ---- the table ----

def measured_commit() -> str:
    """HEAD of the checkout the benchmark runs from, "+uncommitted changes" when tracked files differ."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + (" +uncommitted changes" if dirty else "")


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def compare(row: Row) -> None:
    if row.tflm is None:
        return
    row.ratios = {"ram": row.aot.ram_bytes / row.tflm.ram_bytes,
                  "flash": row.aot.flash_bytes / row.tflm.flash_bytes,
                  "instructions": row.aot.instructions / row.tflm.instructions}
    if row.aot.cycles_estimate and row.tflm.cycles_estimate:
        row.ratios["cycles_mid"] = row.aot.cycles_estimate["mid"] / row.tflm.cycles_estimate["mid"]


def print_figures(rows: list[Row]) -> None:
    print(f"\n{BOARD}: flash and RAM in bytes, instructions per inference (median), outputs equal to tflite-micro's")
    print(f"measured at tinyedge commit {measured_commit()}")
    header = (f"{'model':<31} {'runtime':<7} {'flash':>9} {'data+bss':>9} {'stack':>6} {'RAM':>9} "
              f"{'arena':>8} {'instructions':>13} {'est. M4 cycles (low-high)':>27} {'exact':>6}")
    print(header)
    print("-" * len(header))
    for row in rows:
        for figures in (row.aot, row.tflm):
            if figures is None:
                continue
            print(f"{row.model:<31} {figures.runtime:<7} {figures.flash_bytes:>9,} {figures.static_ram_bytes:>9,} "
                  f"{figures.stack_used_bytes:>6,} {figures.ram_bytes:>9,} {figures.arena_bytes:>8,} "
                  f"{figures.instructions:>13,} {cycle_range(figures.cycles_estimate):>27} "
                  f"{figures.exact:>3}/{figures.checked:<2}")
    print("RAM = data + bss - the reserved stack region (.stack) + the stack's measured high-water mark; "
          "TFLM's arena is the fitted one plus deploy's margin. Estimated cycles: executed instructions priced "
          "with the Cortex-M4 TRM's timings, zero wait states (benchmarks/cycle_model/).")


def energy_datasheet() -> dict:
    """The datasheet figures energy_uj_estimate uses, with the board they come from."""
    return {"board": ENERGY_BOARD, **get_board(ENERGY_BOARD).settings(EnergySettings).as_dict()}


def energy_from_cycles(cycles: dict[str, int] | None) -> dict[str, float] | None:
    """µJ per inference: estimated cycles / the datasheet's clock x its run-mode current x voltage."""
    if cycles is None:
        return None
    sheet = energy_datasheet()
    joules_per_cycle = sheet["run_current_ma"] / 1000 * sheet["supply_v"] / sheet["clock_hz"]
    return {level: round(count * joules_per_cycle * 1e6, 3) for level, count in cycles.items()}


def cycle_range(estimate: dict[str, int] | None) -> str:
    """"8.724 M (7.833-9.599)": the mid estimate and its range, or "-" without one."""
    if estimate is None:
        return "-"
    return f"{estimate['mid'] / 1e6:.3f} M ({estimate['low'] / 1e6:.3f}-{estimate['high'] / 1e6:.3f})"


def cycle_ratio(estimate: dict[str, int] | None, other: dict[str, int] | int | None) -> str:
    """"0.945 (0.930-0.960)": the ratio at mid, and the lowest and highest of the per-level ratios (a
    published figure is one number for every level)."""
    if estimate is None or other is None:
        return "-"
    ratios = {level: estimate[level] / (other if isinstance(other, int) else other[level]) for level in estimate}
    return f"{ratios['mid']:.3f} ({min(ratios.values()):.3f}-{max(ratios.values()):.3f})"


def print_flash_parts(rows: list[Row]) -> None:
    print("\nWhere the flash goes (bytes, from the linker map; model = weights, biases and requantization "
          "constants, plus the AOT's generated code or TFLM's flatbuffer)")
    header = f"{'model':<31} {'runtime':<7} " + " ".join(f"{part:>13}" for part in FLASH_PARTS)
    print(header)
    print("-" * len(header))
    for row in rows:
        for figures in (row.aot, row.tflm):
            if figures is not None:
                print(f"{row.model:<31} {figures.runtime:<7} "
                      + " ".join(f"{figures.flash_parts[part]:>13,}" for part in FLASH_PARTS))


def print_ratios(rows: list[Row]) -> bool:
    compared = [row for row in rows if row.tflm is not None]
    if not compared:
        return True
    targets = ", ".join(f"{k} <= {v:.2f}x" for k, v in TARGETS.items())
    print(f"\nAOT / TFLM (targets: {targets}, 100 % bit-exact)")
    header = (f"{'model':<31} {'RAM':>11} {'flash':>11} {'instructions':>13} {'bit-exact':>10} "
              f"{'est. cycles mid (range)':>24}")
    print(header)
    print("-" * len(header))
    all_pass = True
    for row in compared:
        cells = []
        for key, width in (("ram", 11), ("flash", 11), ("instructions", 13)):
            ok = verdict(row.ratios[key], TARGETS[key])
            all_pass &= ok == "PASS"
            cells.append(f"{row.ratios[key]:.3f} {ok}".rjust(width))
        exact = row.aot.exact == row.aot.checked and row.tflm.exact == row.tflm.checked
        all_pass &= exact
        cells.append(("PASS" if exact else "MISS").rjust(10))
        cells.append(cycle_ratio(row.aot.cycles_estimate, row.tflm.cycles_estimate).rjust(24))
        print(f"{row.model:<31} {' '.join(cells)}")
    print_shortfalls(compared)
    return all_pass


def print_shortfalls(rows: list[Row]) -> None:
    """For each missed target, the AOT figure it would take and how far off it is."""
    units = {"ram": "B", "flash": "B", "instructions": "instructions"}
    for row in rows:
        for key, target in TARGETS.items():
            if row.ratios[key] <= target:
                continue
            aot, tflm = (getattr(f, f"{key}_bytes" if key != "instructions" else key) for f in (row.aot, row.tflm))
            goal = int(target * tflm)
            print(f"  {row.model}: {key} misses by {aot - goal:,} {units[key]} ({(aot - goal) / aot:.1%} of the "
                  f"AOT's {aot:,}; the target is <= {goal:,})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--runs", type=int, default=20, help="INFERs of one input per figure (median taken)")
    parser.add_argument("--samples", type=int, default=4, help="random inputs checked against tflite-micro")
    parser.add_argument("--calibration", type=int, default=32, help="calibration samples for quantization")
    parser.add_argument("--only", help="run only the models whose name contains this text")
    parser.add_argument("--keep", type=Path, help="keep the generated projects in this directory")
    args = parser.parse_args()

    tree = find_tflm_tree(None)
    if tree is None:
        print("No TFLM tree (set TINYEDGE_TFLM_DIR to a tree made with TFLM's create_tflm_tree.py): "
              "printing the AOT figures only.")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tinyedge-bench-") as tmp:
        root = args.keep or Path(tmp)
        for index, workload in enumerate(w for w in workloads() if not args.only or args.only in w.name):
            out = root / f"model{index}"
            out.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            model_path = quantized(workload, out, args.calibration)
            model = load_tflite(model_path)
            row = Row(workload.name, len(model.data), run_aot(model_path, model, out, args.runs, args.samples))
            if tree is not None:
                row.tflm = run_tflm(model_path, model, out, tree, args.runs, args.samples)
            compare(row)
            rows.append(row)
            print(f"  {workload.name}: measured in {time.monotonic() - started:.0f} s", file=sys.stderr)
    print_figures(rows)
    print_flash_parts(rows)
    all_pass = print_ratios(rows) and all(row.aot.exact == row.aot.checked for row in rows)
    if args.json:
        args.json.write_text(json.dumps(
            {"board": BOARD, "commit": measured_commit(), "targets": TARGETS, "energy_datasheet": energy_datasheet(), "runs": args.runs, "tflm_tree": str(tree) if tree else None,
             "models": [{"model": r.model, "model_bytes": r.model_bytes, "aot": r.aot.as_dict(),
                         "tflm": r.tflm.as_dict() if r.tflm else None, "ratios": r.ratios} for r in rows]},
            indent=2) + "\n")
    return 0 if all_pass else 1


def run_main(main: Callable[[], int]) -> None:
    """Exit with main()'s status, or with 2 and one line for an error the user can fix (every benchmark's entry)."""
    try:
        sys.exit(main())
    except TinyedgeError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run_main(main)
