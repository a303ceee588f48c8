"""The firmware image loads as the board's memory map says, whatever the model's size: QEMU (and any
ELF loader) writes each loadable segment at its load address, so a zero-filled section must load in
RAM, never after the image in flash (on mps2-an386 that zero fill ran past the 4 MiB flash into its
mirror and wiped the code of MobileNetV2's 3.6 MB image)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tools, run_tinyedge

EMULATED_BAREMETAL = ("pico-emulated", "qemu-cortex-m4", "qemu-riscv32")
MOBILENET_V2_224 = "third_party/xtensa/examples/pytorch_to_tflite/mobilenet_v2_quantized_1x3x224x224.tflite"


def load_segments(elf: Path) -> list[dict[str, int]]:
    """The ELF's PT_LOAD program headers: offset, virtual and physical address, file and memory size."""
    data = elf.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 1, "a 32-bit ELF"
    phoff, = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    segments = []
    for index in range(phnum):
        kind, offset, vaddr, paddr, filesz, memsz = struct.unpack_from("<6I", data, phoff + index * phentsize)
        if kind == 1:
            segments.append({"vaddr": vaddr, "paddr": paddr, "filesz": filesz, "memsz": memsz})
    return segments


@pytest.mark.parametrize("board", EMULATED_BAREMETAL)
def test_zero_filled_sections_load_in_ram_not_after_the_image(board, sine_model, tmp_path):
    require_tools("make", "arm-none-eabi-gcc" if board != "qemu-riscv32" else "riscv64-unknown-elf-gcc")
    made = run_tinyedge("generate", sine_model.int8, "--board", board, "--runtime", "aot", "-o", tmp_path / "p")
    assert made.returncode == 0, made.stderr
    built = run_tinyedge("build", tmp_path / "p")
    assert built.returncode == 0, built.stderr
    segments = load_segments(tmp_path / "p" / "build" / "firmware.elf")
    zero_filled = [s for s in segments if s["memsz"] > s["filesz"]]
    assert zero_filled, segments
    for segment in zero_filled:
        assert segment["paddr"] == segment["vaddr"], f"a zero-filled segment loads at {segment['paddr']:#x}, " \
                                                     f"not where it lives ({segment['vaddr']:#x})"


@pytest.mark.skipif(not os.environ.get("TINYEDGE_TFLM_SRC"),
                    reason="set TINYEDGE_TFLM_SRC to a tflite-micro checkout to run its MobileNetV2 224×224 model")
def test_mobilenet_v2_224_runs_on_the_4_mib_emulated_cortex_m4(tmp_path):
    require_tools("make", "arm-none-eabi-gcc", "qemu-system-arm")
    model = Path(os.environ["TINYEDGE_TFLM_SRC"]) / MOBILENET_V2_224
    if not model.exists():
        pytest.skip(f"{model} is not in this tflite-micro checkout")
    data = tmp_path / "images.npy"
    np.save(data, np.random.default_rng(0).integers(-128, 128, (2, 1, 3, 224, 224), dtype=np.int8))
    result = run_tinyedge("deploy", model, "--board", "qemu-cortex-m4", "--runtime", "aot", "--data", data,
                          "-o", tmp_path / "out", "--json", tmp_path / "report.json", timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0 and report["samples"] == 2
    assert report["arena_bytes"] > 2_000_000
