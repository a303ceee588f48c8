"""The device side of the protocol builds warning-free for every target family, stays small on an
ATmega328P, and survives fuzzing of its frame parser."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.posix_firmware import FIXTURE_SOURCES, INCLUDES, POSIX_SOURCES, PROTOCOL_SOURCES

REPO = Path(__file__).resolve().parent.parent
PROTOCOL_DIR = REPO / "tinyedge" / "firmware" / "protocol"
COMMON_DIR = REPO / "tinyedge" / "firmware" / "common"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
FUZZ_SECONDS = int(os.environ.get("TINYEDGE_FUZZ_SECONDS", "20"))

# The protocol's budget on a 2 KiB AVR, with 48-byte chunks (2,716 B of text and 104 B of RAM since
# INFER replies are replayed on retransmission, every frame starts with 0x00 and RESET_STATE; 2,816 B and
# 110 B since every frame carries a 32-bit request id).
AVR_FLASH_BUDGET = 2880
AVR_RAM_BUDGET = 150


def compile_objects(compiler: str, flags: list[str], sources: list[Path], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    objects = []
    for source in sources:
        obj = out_dir / (source.stem + ".o")
        result = subprocess.run([compiler, *STRICT, *flags, f"-I{COMMON_DIR}", f"-I{PROTOCOL_DIR}",
                                 "-c", str(source), "-o", str(obj)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", result.stderr
        objects.append(obj)
    return objects


def require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_host_firmware_builds_warning_free(compiler, tmp_path):
    require(compiler)
    sources = PROTOCOL_SOURCES + POSIX_SOURCES + FIXTURE_SOURCES
    result = subprocess.run([compiler, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2",
                             *(f"-I{d}" for d in INCLUDES), *map(str, sources), "-o", str(tmp_path / "fw")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_protocol_builds_for_cortex_m4(tmp_path):
    require("arm-none-eabi-gcc")
    flags = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os",
             "-DTE_PROTO_RX_BUFFER=1024"]
    compile_objects("arm-none-eabi-gcc", flags, PROTOCOL_SOURCES, tmp_path)


@pytest.mark.parametrize("chunk_define", ["-DTE_PROTO_MAX_CHUNK=48", "-DTE_PROTO_RX_BUFFER=64"])
def test_protocol_fits_an_atmega328p(chunk_define, tmp_path, record_property, capsys):
    require("avr-gcc")
    objects = compile_objects("avr-gcc", ["-mmcu=atmega328p", "-Os", chunk_define], PROTOCOL_SOURCES, tmp_path)
    sizes = subprocess.run(["avr-size", *map(str, objects)], capture_output=True, text=True, check=True).stdout
    text = data = bss = 0
    for line in sizes.splitlines()[1:]:
        t, d, b = (int(v) for v in line.split()[:3])
        text, data, bss = text + t, data + d, bss + b
    record_property("avr_text", text)
    record_property("avr_ram", data + bss)
    with capsys.disabled():
        print(f"\nprotocol on atmega328p ({chunk_define}): .text {text} B, .data {data} B, .bss {bss} B")
    assert text < AVR_FLASH_BUDGET
    assert data + bss < AVR_RAM_BUDGET


def fuzzer_available(tmp_path: Path) -> bool:
    probe = tmp_path / "probe.c"
    probe.write_text("#include <stdint.h>\n#include <stddef.h>\n"
                     "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
    result = subprocess.run(["clang", "-fsanitize=fuzzer,address", str(probe), "-o", str(tmp_path / "probe")],
                            capture_output=True, text=True)
    return result.returncode == 0


@pytest.mark.slow
def test_fuzzing_the_frame_parser_finds_nothing(tmp_path):
    require("clang")
    if not fuzzer_available(tmp_path):
        pytest.skip("clang cannot link libFuzzer here (install libclang-rt-dev for -fsanitize=fuzzer)")
    binary = tmp_path / "fuzz_frames"
    build = subprocess.run(
        ["clang", "-g", "-O1", "-std=c99", "-Wall", "-Wextra", "-Werror",
         "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=undefined", "-DTE_PROTO_MAX_CHUNK=48",
         f"-I{COMMON_DIR}", f"-I{PROTOCOL_DIR}", str(PROTOCOL_DIR / "fuzz" / "fuzz_frames.c"),
         str(PROTOCOL_DIR / "te_protocol.c"), "-o", str(binary)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # 2 GB: ASan's quarantine and shadow alone come near 1 GB on a long run of a busy machine.
    run = subprocess.run([str(binary), f"-max_total_time={FUZZ_SECONDS}", "-max_len=2048", "-rss_limit_mb=2048",
                          f"-artifact_prefix={tmp_path}/", str(corpus)],
                         capture_output=True, text=True, timeout=FUZZ_SECONDS + 120)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Done" in run.stderr
