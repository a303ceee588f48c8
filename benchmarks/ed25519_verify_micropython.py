"""MicroPython's Ed25519 verifier (templates/micropython/te_ed25519.py, shipped in firmware generated with
--signing-key): the time one verification of a bundle-sized manifest takes on MicroPython's unix port and,
with --port, on a MicroPython board's REPL (a real one, or the emulated Pico started by
`tinyedge flash PROJECT --firmware rp2-pico.uf2`, whose clock counts every instruction at 125 MHz):
the board's own ticks_ms per verification, and the host's wall clock for the same run.

    .venv/bin/python benchmarks/ed25519_verify_micropython.py [--port socket://127.0.0.1:PORT] [--runs N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tinyedge.paths import TEMPLATES_DIR  # noqa: E402
from tinyedge.viper.bridge import micropython_program  # noqa: E402

VERIFIER = TEMPLATES_DIR / "micropython" / "te_ed25519.py"
MANIFEST_BYTES = 287   # a bundle's manifest.json (tinyedge bundle)


def script(runs: int) -> str:
    """A MicroPython program verifying a fresh signature of a manifest-sized message `runs` times."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.generate()
    message = bytes(range(256)) + bytes(MANIFEST_BYTES - 256)
    key = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return (f"import time, te_ed25519\nfrom binascii import unhexlify\n"
            f"k, s, m = unhexlify('{key.hex()}'), unhexlify('{private.sign(message).hex()}'), unhexlify('{message.hex()}')\n"
            f"t = time.ticks_ms()\nok = all(te_ed25519.verify(k, s, m) for _ in range({runs}))\n"
            f"print('BOARD_MS', time.ticks_diff(time.ticks_ms(), t) / {runs}, ok)\n")


def board_ms(output: str) -> float:
    words = next(line for line in output.splitlines() if line.startswith("BOARD_MS")).split()
    if words[2] != "True":
        raise SystemExit("the signature did not verify")
    return float(words[1])


def on_unix(runs: int, folder: Path) -> None:
    program = folder / "bench.py"
    program.write_text(script(runs))
    out = subprocess.run([micropython_program(), str(program)], capture_output=True, text=True, check=True,
                         env={"MICROPYPATH": str(VERIFIER.parent)}).stdout
    print(f"unix port: {board_ms(out):.1f} ms per verification ({MANIFEST_BYTES}-byte message)")


def on_board(url: str, runs: int, folder: Path) -> None:
    mpremote = [sys.executable, "-m", "mpremote", "connect", url]
    subprocess.run([*mpremote, "fs", "cp", str(VERIFIER), ":te_ed25519.py"], check=True, capture_output=True)
    empty, program = folder / "empty.py", folder / "bench.py"
    empty.write_text("import te_ed25519\nprint('BOARD_MS 0 True')\n")
    program.write_text(script(runs))
    walls = []
    for path in (empty, program):   # the same REPL round trip and import, without and with the verifications
        started = time.monotonic()
        out = subprocess.run([*mpremote, "run", str(path)], capture_output=True, text=True, check=True).stdout
        walls.append(time.monotonic() - started)
    ms = board_ms(out)
    wall_ms = (walls[1] - walls[0]) / runs * 1000
    print(f"{url}: {ms:.0f} ms per verification on the board's clock, {wall_ms:.0f} ms of host wall clock "
          f"(the board ran at {ms / wall_ms:.2f}x its clock's speed)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", help="a MicroPython board's REPL (pyserial URL)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        on_unix(max(args.runs, 20), Path(tmp))
        if args.port:
            on_board(args.port, args.runs, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
