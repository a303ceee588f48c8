"""The board-side Ed25519 verifier's cost on qemu-cortex-m4: the flash and RAM a --signing-key adds to
updatable firmware, and the instructions one verification takes (QEMU with `-icount shift=0`: one
instruction per virtual nanosecond, counted by the port's 25 MHz SysTick).

    TINYEDGE_CACHE=... .venv/bin/python benchmarks/ed25519_verify.py [--model PATH]
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

from benchmarks.lifecycle import MODELS, sizes  # noqa: E402
from tinyedge.boards import get_board  # noqa: E402
from tinyedge.build import build  # noqa: E402
from tinyedge.generate import generate  # noqa: E402
from tinyedge.paths import FIRMWARE_DIR  # noqa: E402

BOARD = "qemu-cortex-m4"
HARNESS = Path(__file__).resolve().parent / "ed25519_verify_main.c"
NS_PER_TICK = 40   # SysTick at 25 MHz; -icount shift=0 runs one instruction per nanosecond


def public_key(folder: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = folder / "key.pub.pem"
    path.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def verify_instructions(project: Path, folder: Path) -> int:
    """Build the harness with the project's link script and port, run it, return its instruction count."""
    board = get_board(BOARD)
    elf = folder / "verify.elf"
    port = FIRMWARE_DIR / "ports" / "mps2"
    subprocess.run(["arm-none-eabi-gcc", *board.cpu_flags, "-Os", "-std=c99", "-ffunction-sections", "-fdata-sections",
                    "-DTE_SIGNED_UPDATES", "-DTE_UART_BASE=0x40004000u", "-DTE_CPU_HZ=25000000u", "-DTE_BAUD=115200u",
                    f"-I{FIRMWARE_DIR / 'protocol'}", f"-I{FIRMWARE_DIR / 'common'}", f"-I{port}", str(HARNESS),
                    str(FIRMWARE_DIR / "protocol" / "te_ed25519.c"), str(port / "port_mps2.c"),
                    str(port / "startup_mps2.c"), "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
                    f"-T{project / 'link.ld'}", "-Wl,--gc-sections", "-Wl,--no-warn-rwx-segments", "-o", str(elf)],
                   check=True)
    run = subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-kernel", str(elf), "-display", "none",
                          "-monitor", "none", "-nodefaults", "-semihosting-config", "enable=on,target=native",
                          "-icount", "shift=0", "-serial", "stdio"], capture_output=True, text=True, timeout=600)
    found = re.search(r"verify 1 ticks (\d+)", run.stdout)
    if not found:
        raise SystemExit(f"the verification failed or printed nothing: {run.stdout!r} {run.stderr!r}")
    return int(found.group(1)) * NS_PER_TICK


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODELS[0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        figures = {}
        for name, key in (("unsigned", None), ("signed", public_key(folder))):
            project = folder / name
            generate(args.model, BOARD, project, runtime="aot", updatable=True, signing_key=key)
            build(project)
            figures[name] = sizes(project, BOARD)
        flash_bytes = figures["signed"][0] - figures["unsigned"][0]
        ram_bytes = figures["signed"][1] - figures["unsigned"][1]
        print(f"--signing-key on {BOARD}: +{flash_bytes:,} B flash, +{ram_bytes:,} B RAM")
        print(f"one Ed25519 verification: {verify_instructions(folder / 'signed', folder):,} instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
