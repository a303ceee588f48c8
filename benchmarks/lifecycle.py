"""The model lifecycle's costs, measured: firmware size without the lifecycle (TE_LIFECYCLE=0),
with STATS (the default), and updatable (two slots); and the time an update takes per KiB of slot
image over the board's link (QEMU's UART on a TCP socket, the host board's pseudo-terminal).

    .venv/bin/python benchmarks/lifecycle.py [--model PATH ...] [--board B ...] [--micropython-only]

Default models: TFLM's hello_world and MLPerf Tiny's keyword-spotting DS-CNN (/work/shared/models/real).
Each update sends the model's own slot image (its weights, per-layer constants and 4 self-test
vectors) as a version-1 bundle, and times the transfer and the board's check + self-test.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.aot_vs_tflm import run_main  # noqa: E402
from tinyedge.build import build  # noqa: E402
from tinyedge.bundle import make_bundle  # noqa: E402
from tinyedge.flash import flash  # noqa: E402
from tinyedge.generate import generate  # noqa: E402
from tinyedge.project import Project  # noqa: E402
from tinyedge.protocol import Device  # noqa: E402
from tinyedge.update import update_board  # noqa: E402

REAL = REPO.parent / "shared" / "models" / "real"
if not REAL.is_dir():
    REAL = REPO.parent.parent / "shared" / "models" / "real"
MODELS = [REAL / "hello_world_int8.tflite", REAL / "kws_ref_model.tflite"]
BOARDS = ("qemu-cortex-m4", "qemu-riscv32", "host")
SIZE_TOOLS = {"qemu-cortex-m4": "arm-none-eabi-size", "qemu-riscv32": "riscv64-unknown-elf-size"}


def sizes(project: Path, board: str) -> tuple[int, int]:
    """(flash = text + data, RAM = data + bss) of the built ELF."""
    size = SIZE_TOOLS.get(board, "size")
    elf = Project.load(project).artifact("elf")
    out = subprocess.run([size, str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = map(int, out.splitlines()[1].split()[:3])
    return text + data, data + bss


def built(model: Path, board: str, out: Path, updatable: bool, lifecycle: bool = True) -> Path:
    generate(model, board, out, runtime="aot", updatable=updatable)
    if not lifecycle:
        makefile = out / "Makefile"
        makefile.write_text(re.sub(r"^DEFINES := ", "DEFINES := -DTE_LIFECYCLE=0 ", makefile.read_text(), flags=re.M))
    build(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append")
    parser.add_argument("--board", action="append", choices=BOARDS, help="only these C boards (default: all)")
    parser.add_argument("--micropython-only", action="store_true", help="only the MicroPython table")
    args = parser.parse_args()
    if args.micropython_only:
        micropython_table(args.model or MODELS)
        return 0
    print("| model | board | flash / RAM without lifecycle | + STATS | + slots (updatable) | image | transfer | per KiB | check + self-test |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.model or MODELS:
        for board in args.board or BOARDS:
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                bare = sizes(built(model, board, tmp / "bare", False, lifecycle=False), board)
                stats = sizes(built(model, board, tmp / "stats", False), board)
                updatable = built(model, board, tmp / "slots", True)
                slots = sizes(updatable, board)
                bundle = make_bundle(model, 1, tmp / "m.bundle", vectors=4)
                with flash(updatable) as url, Device(url, timeout=30) as device:
                    report = update_board(device, bundle)
                kib = report.image_bytes / 1024
                print(f"| {model.name} | {board} | {bare[0]:,} / {bare[1]:,} | +{stats[0] - bare[0]:,} / "
                      f"+{stats[1] - bare[1]:,} | +{slots[0] - stats[0]:,} / +{slots[1] - stats[1]:,} | "
                      f"{report.image_bytes:,} B | {report.transfer_s:.3f} s | {report.transfer_s / kib * 1000:.1f} ms | "
                      f"{report.commit_s:.3f} s |", flush=True)
    if not args.board:
        micropython_table(args.model or MODELS)
    return 0


def micropython_table(models: list[Path]) -> None:
    """MicroPython's unix port (micropython-unix): the server module's size without and with slots,
    and an update of the model's own modules (compiled by mpy-cross) over the pseudo-terminal."""
    print("\n| model | micropython-unix: te_server.mpy | updatable | image (2 .mpy + vectors) | transfer | per KiB | "
          "check + import + self-test |")
    print("|---|---|---|---|---|---|---|")
    for model in models:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            plain, slots = tmp / "plain", tmp / "slots"
            generate(model, "micropython-unix", plain)
            generate(model, "micropython-unix", slots, updatable=True)
            build(plain)
            build(slots)
            server = [(p / "build" / "te_server.mpy").stat().st_size for p in (plain, slots)]
            bundle = make_bundle(model, 1, tmp / "m.bundle", vectors=4)
            with flash(slots) as url, Device(url, timeout=60) as device:
                report = update_board(device, bundle)
            kib = report.image_bytes / 1024
            print(f"| {model.name} | {server[0]:,} B | {server[1]:,} B | {report.image_bytes:,} B | "
                  f"{report.transfer_s:.3f} s | {report.transfer_s / kib * 1000:.1f} ms | {report.commit_s:.3f} s |",
                  flush=True)


if __name__ == "__main__":
    run_main(main)
