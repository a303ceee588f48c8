"""The serial link under faults: `tinyedge.validate.validate` against QEMU (qemu-cortex-m4, AOT
runtime) through the fault-injecting proxy of tests/fixtures/fault_proxy.py, which flips bits,
drops, duplicates and inserts bytes, stalls the line and splits writes, both ways, at a per-byte
fault rate; then each fault kind alone at --kind-rate (1e-2), an inserted 0x00 included, and a replaying
relay that sends an old genuine INFER reply before every one.

    .venv/bin/python benchmarks/link_faults.py [--samples 30] [--rates 0,1e-4,1e-3,3e-3,1e-2] [--seed 1]
        [--kinds flip,drop,dup,garbage,zero,delay,split] [--kind-rate 1e-2] [--no-replay]

Two models: the example-size CNN (examples/train.py's `shapes`, a 256-byte input: one chunk) and
TFLM's micro_speech (real weights, /work/shared/models/real; a 1,960-byte input: two chunks on the
board's 1 KiB receive buffer). For each rate: how many samples completed, how many results were
wrong (different from tflite-micro's output: the AOT runtime is bit-exact with it, so any difference
is a false result), whether validate stopped on a link failure, and what the link did.
Exits 1 if any result was wrong, or if a sample failed to complete at a rate up to 3e-3 or in a
single-kind or relay row.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from fixtures.fault_proxy import FAULT_KINDS, FaultProxy  # noqa: E402
from tinyedge.protocol import MSG_INFER, MSG_REPLY  # noqa: E402
from tinyedge.build import build  # noqa: E402
from tinyedge.errors import DeviceError  # noqa: E402
from tinyedge.flash import flash  # noqa: E402
from tinyedge.generate import generate  # noqa: E402
from tinyedge.validate import validate  # noqa: E402

BOARD = "qemu-cortex-m4"
REAL_MODELS = REPO.parent / "shared" / "models" / "real"
MUST_COMPLETE_UP_TO = 3e-3


def example_cnn(work: Path) -> tuple[Path, np.ndarray]:
    from tinyedge.quantize import quantize_model

    subprocess.run([sys.executable, str(REPO / "examples" / "train.py"), "--model", "shapes", "-o", str(work)],
                   check=True, capture_output=True)
    tflite = work / "shapes_int8.tflite"
    quantize_model(work / "shapes.keras", np.load(work / "calibration.npy"), tflite)
    return tflite, np.load(work / "test_x.npy")


def micro_speech() -> tuple[Path, np.ndarray] | None:
    tflite = REAL_MODELS / "micro_speech_quantized.tflite"
    if not tflite.exists():
        return None
    return tflite, np.random.default_rng(0).integers(-128, 128, size=(64, 1, 1960), dtype=np.int8)


def run(url: str, tflite: Path, data: np.ndarray, journal: Path, **faults) -> dict:
    """validate through a FaultProxy(url, **faults)."""
    started = time.monotonic()
    with FaultProxy(url, **faults) as proxy:
        try:
            report = validate(proxy.url, tflite, data, journal_path=journal)
            outcome, done, wrong, link = ("pass" if report.passed else "FAIL", report.samples,
                                          int(round((1 - report.bit_exact) * report.samples)), report.link)
        except DeviceError as exc:
            lines = journal.read_text().splitlines()[1:]
            import json

            rows = [json.loads(line) for line in lines if line.strip()]
            outcome, done, wrong, link = "link failure", len(rows), sum(r["max_abs_diff"] > 0 for r in rows), None
            print(f"    ({exc})", file=sys.stderr)
        injected = proxy.counts.total() + proxy.replayer.replayed
    return {"outcome": outcome, "done": done, "wrong": wrong, "link": link, "faults": injected,
            "seconds": time.monotonic() - started}


def rows(args: argparse.Namespace) -> list[tuple[str, dict, bool]]:
    """(label, FaultProxy arguments, must every sample complete) for each run."""
    mixed = [(f"all kinds {rate:g}", {"rate": rate, "seed": args.seed}, rate <= MUST_COMPLETE_UP_TO)
             for rate in (float(r) for r in args.rates.split(",") if r)]
    kinds = [(f"{kind} {args.kind_rate:g}", {"rate": args.kind_rate, "seed": args.seed, "kinds": (kind,)}, True)
             for kind in args.kinds.split(",") if kind]
    replay = [] if args.no_replay else [("replaying relay", {"replay_replies": (MSG_INFER | MSG_REPLY,)}, True)]
    return mixed + kinds + replay


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--rates", default="0,1e-4,1e-3,3e-3,1e-2")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kinds", default=",".join(FAULT_KINDS))
    parser.add_argument("--kind-rate", type=float, default=1e-2)
    parser.add_argument("--no-replay", action="store_true")
    args = parser.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = {"example CNN (256 B in)": example_cnn(work / "cnn")}
        speech = micro_speech()
        if speech:
            models["micro_speech (1,960 B in)"] = speech
        else:
            print(f"(micro_speech skipped: {REAL_MODELS} is absent)")
        print(f"validate through the fault proxy on {BOARD} (AOT), {args.samples} samples per run, seed {args.seed}")
        print(f"{'model':<26} {'faults':<18} {'injected':>8} {'done':>9} {'wrong':>5} {'outcome':>13} "
              f"{'retries':>7} {'crc':>5} {'resync':>6} {'t/o':>4} {'stale':>5} {'s/sample':>8}")
        for name, (tflite, data) in models.items():
            project = work / f"fw-{tflite.stem}"
            generate(tflite, BOARD, project, runtime="aot")
            build(project)
            samples = data[:args.samples]
            with flash(project) as url:
                for index, (label, faults, must_complete) in enumerate(rows(args)):
                    row = run(url, tflite, samples, work / f"{tflite.stem}-{index}.jsonl", **faults)
                    link = row["link"] or {}
                    print(f"{name:<26} {label:<18} {row['faults']:>8} {row['done']:>4}/{len(samples):<4} "
                          f"{row['wrong']:>5} {row['outcome']:>13} {link.get('retries', '-'):>7} "
                          f"{link.get('crc_errors', '-'):>5} {link.get('resyncs', '-'):>6} "
                          f"{link.get('timeouts', '-'):>4} {link.get('stale', '-'):>5} "
                          f"{row['seconds'] / max(1, row['done']):>8.2f}", flush=True)
                    bad += row["wrong"]
                    if must_complete and row["done"] < len(samples):
                        bad += 1
    print("target: 0 wrong in every run; every sample completes up to 3e-3, with each fault kind alone at "
          f"{args.kind_rate:g} and through the replaying relay —", "met" if not bad else "MISSED")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
