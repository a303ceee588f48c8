"""What a remote rig costs: the host board's firmware validated straight on its pseudo-terminal, and
through a real ser2net RFC 2217 server on loopback (as labgrid's exporter serves it).

    .venv/bin/python benchmarks/remote_link.py [--samples 2000]

Prints, per link, `validate` throughput (samples/s, host reference included) and the median INFER
round trip measured with tinyedge.protocol.Device alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from remote_rigs import HELLO_WORLD, build_host_firmware, running_host_board, ser2net_rfc2217  # noqa: E402

from tinyedge.protocol import Device  # noqa: E402
from tinyedge.validate import validate  # noqa: E402


def round_trip_ms(url: str, count: int = 200) -> float:
    with Device(url) as device:
        size = device.info().input_bytes
        times = []
        for value in range(count):
            started = time.perf_counter()
            device.infer(bytes([value & 0x7F]) * size)
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    if not HELLO_WORLD.is_file():
        print(f"needs {HELLO_WORLD} (the shared real models)")
        return 1
    data = np.linspace(0.0, 2 * np.pi, args.samples, dtype=np.float32).reshape(-1, 1)
    with tempfile.TemporaryDirectory() as tmp:
        project = build_host_firmware(HELLO_WORLD, Path(tmp))
        with running_host_board(project) as pts, ser2net_rfc2217(pts) as url:
            print(f"{'link':<34} {'validate samples/s':>19} {'INFER round trip':>17}  verdict")
            for name, port in (("pseudo-terminal", pts), ("RFC 2217 via ser2net (loopback)", url)):
                started = time.monotonic()
                report = validate(port, HELLO_WORLD, data, journal_path=Path(tmp) / f"{len(name)}.jsonl")
                rate = report.samples / (time.monotonic() - started)
                verdict = f"{'PASS' if report.passed else 'FAIL'}, {100 * report.bit_exact:.1f} % bit-exact"
                print(f"{name:<34} {rate:>19.0f} {round_trip_ms(port):>14.2f} ms  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
