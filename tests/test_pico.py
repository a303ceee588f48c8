"""The Raspberry Pi Pico a maker holds, and the same image in rp2040js (board `pico-emulated`): a bare-metal
RP2040 port (boot2, vector table, PLL, UART0, SysTick) built with Arm GCC into one UF2, which a real Pico
boots and Node runs in Wokwi's rp2040js from npm (installed by ./install.sh), its UART0 on socket://."""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tools, run_tinyedge
from remote_rigs import require_hello_world

BOARD = "pico-emulated"
REAL_PICO = "raspberry-pi-pico"
RP2040_FAMILY_ID = 0xE48BFF56
FLASH_BASE = 0x10000000
ELF_MACHINE_ARM = 40


def rp2040js_dir() -> Path:
    return Path(os.environ.get("TINYEDGE_RP2040JS") or Path.home() / ".local" / "share" / "tinyedge" / "rp2040js")


def require_emulator() -> None:
    require_tools("arm-none-eabi-gcc", "make", "node")
    if not (rp2040js_dir() / "node_modules" / "rp2040js" / "package.json").is_file():
        pytest.skip(f"needs rp2040js in {rp2040js_dir()} (./install.sh installs it from npm)")


def crc32_mpeg2(data: bytes) -> int:
    """The CRC the RP2040 boot ROM checks boot2 with: polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def uf2_blocks(image: bytes) -> list[tuple[int, int, bytes]]:
    """(family id, target address, payload) of every 512-byte block."""
    blocks = []
    for offset in range(0, len(image), 512):
        magic0, magic1, _flags, address, size, _number, _total, family = struct.unpack_from("<8I", image, offset)
        assert (magic0, magic1) == (0x0A324655, 0x9E5D5157)
        blocks.append((family, address, image[offset + 32:offset + 32 + size]))
    return blocks


def flat_image(image: bytes) -> bytes:
    blocks = uf2_blocks(image)
    end = max(address + len(payload) for _, address, payload in blocks)
    flat = bytearray(end - FLASH_BASE)
    for _, address, payload in blocks:
        flat[address - FLASH_BASE:address - FLASH_BASE + len(payload)] = payload
    return bytes(flat)


def hello_world_inputs(path: Path) -> Path:
    np.save(path, np.linspace(0.0, 2 * np.pi, 32, dtype=np.float32).reshape(32, 1))
    return path


def test_hello_world_validates_bit_exact_on_the_emulated_pico_in_cycles(tmp_path):
    require_emulator()
    model = require_hello_world()
    report = tmp_path / "report.json"
    result = run_tinyedge("deploy", model, "--board", BOARD, "--data", hello_world_inputs(tmp_path / "x.npy"),
                          "-o", tmp_path / "out", "--json", report)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PASS" in result.stdout and "cycles" in result.stdout

    found = json.loads(report.read_text())
    assert found["passed"] and found["samples"] == 32 and found["bit_exact"] == 1.0
    assert found["runtime"] == "aot" and found["board"] == REAL_PICO   # the firmware is the real Pico's image
    assert found.get("latency_us") is None and found["clock_hz"] == 125_000_000
    cycles = found["latency_cycles"]
    assert 1_000 < cycles["median"] < 1_000_000, cycles   # three tiny FULLY_CONNECTED layers

    elf = (tmp_path / "out" / "firmware" / "build" / "firmware.elf").read_bytes()
    assert elf[4] == 1 and int.from_bytes(elf[18:20], "little") == ELF_MACHINE_ARM
    assert not (tmp_path / "out" / "firmware" / "aot" / "te_dsp.c").exists(), "the M0+ has no DSP extension"


def test_validate_on_the_emulated_pico_needs_no_retries(tmp_path):
    require_emulator()
    report = tmp_path / "report.json"
    result = run_tinyedge("deploy", require_hello_world(), "--board", BOARD, "--data",
                          hello_world_inputs(tmp_path / "x.npy"), "-o", tmp_path / "out", "--json", report)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    link = json.loads(report.read_text())["link"]
    assert link["retries"] == 0 and link["crc_errors"] == 0 and link["timeouts"] == 0, link


def test_the_cnn_deploys_bit_exact_on_the_emulated_pico(cnn_model, tmp_path):
    require_emulator()
    report = tmp_path / "report.json"
    result = run_tinyedge("deploy", cnn_model.keras, "--board", BOARD, "--calibration", cnn_model.calibration,
                          "--data", cnn_model.eval_x, "--labels", cnn_model.eval_y, "-o", tmp_path / "out",
                          "--json", report)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(report.read_text())
    assert found["passed"] and found["bit_exact"] == 1.0 and found["max_abs_diff_lsb"] == 0
    assert found["samples"] == len(np.load(cnn_model.eval_x))
    assert found["accuracy"]["board"] == found["accuracy"]["host_int8"]
    assert found["latency_cycles"]["median"] > 0


def test_the_real_pico_uf2_is_the_emulated_image_byte_for_byte_with_a_valid_boot2(sine_model, tmp_path):
    require_tools("arm-none-eabi-gcc", "make")
    images = {}
    for board in (BOARD, REAL_PICO):
        out = tmp_path / board
        generated = run_tinyedge("generate", sine_model.int8, "--board", board, "--runtime", "aot", "-o", out)
        assert generated.returncode == 0, generated.stderr
        built = run_tinyedge("build", out)
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
        images[board] = (out / "build" / "firmware.uf2").read_bytes()
    assert images[BOARD] == images[REAL_PICO]
    assert "platformio" not in (tmp_path / REAL_PICO / "Makefile").read_text().lower()

    blocks = uf2_blocks(images[REAL_PICO])
    assert {family for family, _, _ in blocks} == {RP2040_FAMILY_ID}
    assert blocks[0][1] == FLASH_BASE
    flat = flat_image(images[REAL_PICO])
    boot2 = flat[:256]
    assert struct.unpack_from("<I", boot2, 252)[0] == crc32_mpeg2(boot2[:252]), "the boot ROM would reject boot2"
    stack_top, reset = struct.unpack_from("<II", flat, 0x100)
    assert stack_top == 0x20000000 + 264 * 1024
    assert FLASH_BASE + 0x100 < reset < FLASH_BASE + len(flat) and reset & 1, hex(reset)   # a Thumb address


def wide_activations_model(path: Path) -> Path:
    """A small-weight CNN whose activations (two 160x160x8 int8 tensors, 400 KB) cannot fit 264 KB of RAM."""
    import tensorflow as tf

    from tinyedge.quantize import quantize_model

    inputs = tf.keras.Input((160, 160, 8))
    model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(8, 3, padding="same")(inputs))
    model.save(path.with_suffix(".keras"))
    calibration = np.random.default_rng(2).uniform(-1, 1, (4, 160, 160, 8)).astype(np.float32)
    quantize_model(path.with_suffix(".keras"), calibration, path)
    return path


def test_a_model_too_big_for_the_pico_is_refused_before_building_with_the_figures(tmp_path):
    model = wide_activations_model(tmp_path / "wide.tflite")
    result = run_tinyedge("generate", model, "--board", BOARD, "-o", tmp_path / "fw")
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "does not fit the pico-emulated board's RAM" in message and "270,336 bytes" in message
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "fw" / "Makefile").exists()


def built_hello_world(tmp_path: Path) -> Path:
    out = tmp_path / "fw"
    assert run_tinyedge("generate", require_hello_world(), "--board", BOARD, "-o", out).returncode == 0
    built = run_tinyedge("build", out)
    assert built.returncode == 0, built.stderr
    return out


def test_a_uf2_for_another_chip_is_refused_by_family_id(tmp_path):
    require_emulator()
    project = built_hello_world(tmp_path)
    image = bytearray((project / "build" / "firmware.uf2").read_bytes())
    for offset in range(0, len(image), 512):
        struct.pack_into("<I", image, offset + 28, 0x1C5F21B0)   # the ESP32's UF2 family id
    other = tmp_path / "esp32.uf2"
    other.write_bytes(bytes(image))
    result = run_tinyedge("flash", project, "--firmware", other, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "is a UF2 for family 0x1C5F21B0, not for the RP2040 (family 0xE48BFF56)" in message
    assert "Traceback" not in result.stderr


def test_missing_node_or_rp2040js_is_one_sentence_that_says_how_to_install(tmp_path):
    require_tools("arm-none-eabi-gcc", "make")
    project = built_hello_world(tmp_path)
    nowhere = {"TINYEDGE_RP2040JS": str(tmp_path / "no-rp2040js")}
    result = run_tinyedge("flash", project, env=nowhere, timeout=60)
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "rp2040js is not installed" in message and "./install.sh" in message
    assert "npm install --prefix ~/.local/share/tinyedge/rp2040js rp2040js@1.4.1" in message
    assert "Traceback" not in result.stderr

    doctor = run_tinyedge("doctor", "--json", env=nowhere)
    tools = {tool["command"]: tool for tool in json.loads(doctor.stdout)["tools"]}
    assert not tools["rp2040js"]["present"] and tools["rp2040js"]["needed_by"] == [f"flasher rp2040js: {BOARD}"]
    assert "sudo apt-get install nodejs npm" in tools["node"]["install"]

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    no_node = run_tinyedge("flash", project, env={"PATH": f"{bin_dir}:{os.path.dirname(sys.executable)}"}, timeout=60)
    assert no_node.returncode == 1
    message = " ".join(no_node.stderr.split())
    assert "node is not installed" in message and "sudo apt-get install nodejs npm" in message


def test_doctor_and_boards_know_the_emulated_pico():
    shown = run_tinyedge("boards", "show", BOARD)
    assert shown.returncode == 0, shown.stderr
    assert "rp2040js" in shown.stdout and "Cortex-M0+" in shown.stdout
    doctor = run_tinyedge("doctor", "--json")
    tools = {tool["command"].rsplit("/", 1)[-1]: tool for tool in json.loads(doctor.stdout)["tools"]}
    assert f"framework baremetal: {REAL_PICO}" in tools["arm-none-eabi-gcc"]["needed_by"]
    if shutil.which("node") and (rp2040js_dir() / "node_modules" / "rp2040js" / "package.json").is_file():
        assert tools["rp2040js"]["present"] and "1.4.1" in tools["rp2040js"]["version"]
