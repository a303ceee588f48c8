"""How much of the serial line carries tensor bytes: payload / bytes on the wire for one INFER of a
1 KiB input (12-byte output plus 4-byte checksum output, like a keyword-spotting model), measured
over the real C implementation (host firmware + fixture runtime) on a pseudo-terminal.

    .venv/bin/python benchmarks/protocol_efficiency.py

One row per device UART receive buffer size (the chunk size follows it). Exits 1 if the host
board's figure is below the 0.9 target.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from fixtures.posix_firmware import FixtureModel, build_firmware, start_firmware  # noqa: E402
from tinyedge.protocol import Device, max_chunk_for_rx_buffer  # noqa: E402

MODEL = FixtureModel(in0_bytes=1024, in1_floats=0, out0_bytes=12)
RX_BUFFERS = [("arduino-uno", 64), ("nano-33-ble / pico", 256), ("qemu / esp32", 1024), ("host", 4096)]
RUNS = 20
TARGET = 0.9


def hex_text_efficiency(nbytes: int, bytes_per_line: int = 32) -> float:
    """MLPerf Tiny's runner style: `db <hex>%` command lines, two characters per payload byte."""
    lines = -(-nbytes // bytes_per_line)
    return nbytes / (len("db load 1024%") + lines * (len("db %") + 2 * bytes_per_line))


def measure(binary: Path) -> tuple[float, float, int]:
    with start_firmware(binary) as firmware, Device(firmware.url, timeout=5.0) as device:
        device.info()
        rng = random.Random(0)
        sent0, received0 = device.bytes_sent, device.bytes_received
        payload0 = device.payload_sent + device.payload_received
        for _ in range(RUNS):
            data = rng.randbytes(MODEL.input_bytes)
            assert device.infer(data).output == MODEL.expected_output(data)
        sent = device.bytes_sent - sent0
        wire = sent + device.bytes_received - received0
        payload = device.payload_sent + device.payload_received - payload0
        return payload / wire, MODEL.input_bytes * RUNS / sent, wire // RUNS


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for board, rx_buffer in RX_BUFFERS:
            binary = build_firmware(Path(tmp) / str(rx_buffer), MODEL,
                                    extra_defines={"TE_PROTO_RX_BUFFER": rx_buffer})
            rows.append((board, rx_buffer, max_chunk_for_rx_buffer(rx_buffer), *measure(binary)))
    print(f"INFER of a {MODEL.input_bytes}-byte input, {MODEL.out0 + 4}-byte output, {RUNS} runs each")
    print(f"{'board':<20} {'rx buffer':>9} {'chunk':>6} {'wire B/infer':>12} {'overall':>8} {'host->dev':>9}")
    for board, rx_buffer, chunk, overall, upstream, wire in rows:
        print(f"{board:<20} {rx_buffer:>9} {chunk:>6} {wire:>12} {overall:>8.3f} {upstream:>9.3f}")
    print(f"MLPerf Tiny-style hex text for the same input: {hex_text_efficiency(MODEL.input_bytes):.3f}")
    host_figure = rows[-1][3]
    verdict = "meets" if host_figure >= TARGET else "MISSES"
    print(f"host board: payload / wire = {host_figure:.3f}, {verdict} the {TARGET} target")
    return 0 if host_figure >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
