"""The AOT runtime end to end on every emulated board: generate → build with the real toolchain →
flash (host program, QEMU, simavr + Optiboot + avrdude) → the device's answers equal tflite-micro's,
bit for bit. Nothing the tests start outlives them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import TINYEDGE, require_tools, run_tinyedge
from pipeline_support import assert_device_matches_reference, children_of, wait_gone
from tinyedge.build import build
from tinyedge.elf import elf_sizes
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.project import Project

BOARDS = {
    "host": ("cc", "make"),
    "qemu-cortex-m4": ("arm-none-eabi-gcc", "make", "qemu-system-arm"),
    "arduino-uno": ("avr-gcc", "make", "avrdude", "pkg-config"),
    "qemu-riscv32": ("riscv64-unknown-elf-gcc", "make", "qemu-system-riscv32"),
}
URL = re.compile(r"(socket://\S+|/dev/pts/\d+)")


@pytest.fixture(scope="module")
def built(sine_model, tmp_path_factory):
    """One AOT project per board, generated and built once for the module."""
    projects = {}

    def get(board_id: str) -> Project:
        require_tools(*BOARDS[board_id])
        if board_id not in projects:
            out = tmp_path_factory.mktemp(f"aot-{board_id}") / "fw"
            generate(sine_model.int8, board_id, out, runtime="aot")
            build(out)
            projects[board_id] = Project.load(out)
        return projects[board_id]

    return get


@pytest.mark.parametrize("board_id", list(BOARDS))
def test_aot_firmware_answers_like_tflite_micro(built, sine_model, board_id):
    project = built(board_id)
    budget = project.board
    flash_used, ram_used = elf_sizes(project.elf_path)
    assert project.extra["build"] == {**project.extra["build"], "flash_bytes": flash_used, "ram_bytes": ram_used}
    if budget.is_budgeted:
        assert flash_used <= budget.flash_bytes and ram_used <= budget.ram_bytes
    with flash(project.dir) as url:
        emulators = children_of(os.getpid())
        assert emulators, "flashing an emulated board starts its emulator as a child of tinyedge"
        result = assert_device_matches_reference(url, sine_model.int8, board_id, "aot", count=256)
        assert result["info"].arena_used == project.arena_bytes
    assert wait_gone(emulators) == [], "the emulator outlived the flash context"


def test_uno_image_is_a_hex_within_budget(built):
    project = built("arduino-uno")
    hex_path = project.dir / "build" / "firmware.hex"
    assert hex_path.read_text().startswith(":") and hex_path.read_text().rstrip().endswith(":00000001FF")
    flash_used, ram_used = elf_sizes(project.elf_path)
    assert flash_used < 8 * 1024 and ram_used < 1024, (flash_used, ram_used)


def test_rebuild_compiles_nothing_when_nothing_changed(built):
    project = built("qemu-cortex-m4")
    started = time.monotonic()
    result = run_tinyedge("build", project.dir)
    assert result.returncode == 0, result.stderr
    log = (project.dir / "build" / "build.log").read_text()
    assert " -c " not in log, log
    assert "flash" in result.stdout and "4,194,304 B" in result.stdout
    assert time.monotonic() - started < 30


def test_cli_flash_keeps_qemu_running_until_ctrl_c(built, sine_model):
    project = built("qemu-cortex-m4")
    process = subprocess.Popen([*TINYEDGE, "flash", str(project.dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        line = process.stdout.readline()
        match = URL.search(line)
        assert match, line + process.stderr.read()
        qemu = children_of(process.pid)
        assert len(qemu) == 1
        assert_device_matches_reference(match.group(1), sine_model.int8, "qemu-cortex-m4", "aot", count=16)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 130
        assert wait_gone(qemu) == []
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("board_id", ["qemu-cortex-m4", "arduino-uno", "qemu-riscv32"])
def test_an_emulator_dies_with_a_killed_tinyedge(built, board_id):
    project = built(board_id)
    process = subprocess.Popen([*TINYEDGE, "flash", str(project.dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        line = process.stdout.readline()
        assert URL.search(line), line + process.stderr.read()
        emulators = children_of(process.pid)
        assert len(emulators) == 1
        process.kill()   # SIGKILL: no cleanup runs in tinyedge; PR_SET_PDEATHSIG must end the emulator
        process.wait()
        assert wait_gone(emulators) == [], f"orphaned emulator {emulators} after tinyedge was killed"
    finally:
        process.kill()
        process.wait()


def test_uno_is_flashed_through_optiboot_by_avrdude(built, sine_model):
    project = built("arduino-uno")
    messages = []
    started = time.monotonic()
    with flash(project.dir, progress=lambda done, total, what: messages.append(what)) as url:
        flashed = time.monotonic() - started
        assert url.startswith("/dev/pts/")
        assert_device_matches_reference(url, sine_model.int8, "arduino-uno", "aot", count=8)
    assert any("simavr" in m for m in messages), messages
    assert any("flashed and verified" in m for m in messages), messages
    assert flashed < 30


def path_without(tmp_path, *missing: str) -> str:
    """A PATH holding every program of the current PATH except `missing`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            link = bin_dir / name
            if name in missing or link.exists() or link.is_symlink():
                continue
            link.symlink_to(os.path.join(directory, name))
    return str(bin_dir)


@pytest.mark.parametrize("board_id, tool, install", [
    ("qemu-cortex-m4", "arm-none-eabi-gcc", "sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"),
    ("arduino-uno", "avr-gcc", "sudo apt-get install gcc-avr avr-libc binutils-avr"),
])
def test_a_missing_toolchain_is_named_with_its_install_line(built, tmp_path, board_id, tool, install):
    project = built(board_id)
    result = run_tinyedge("build", project.dir, env={"PATH": path_without(tmp_path, tool)})
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert f"{tool} is not installed or not on PATH" in message and install in message, message
    assert "Traceback" not in result.stderr


def test_a_missing_qemu_is_named(built, tmp_path):
    project = built("qemu-cortex-m4")
    result = run_tinyedge("flash", project.dir, env={"PATH": path_without(tmp_path, "qemu-system-arm")})
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "qemu-system-arm is not installed" in message and "sudo apt-get install qemu-system-arm" in message


def test_flashing_an_unbuilt_project_says_to_build(sine_model, tmp_path):
    generate(sine_model.int8, "qemu-cortex-m4", tmp_path / "fw", runtime="aot")
    result = run_tinyedge("flash", tmp_path / "fw")
    assert result.returncode == 1 and "tinyedge build" in result.stderr


def test_icount_makes_qemu_cycle_figures_deterministic(built):
    import numpy as np

    from tinyedge.protocol import Device

    project = built("qemu-cortex-m4")
    x = np.array([[37]], dtype=np.int8).tobytes()
    cycles = []
    for _ in range(2):
        with flash(project.dir, icount=True) as url, Device(url) as device:
            cycles.append([device.infer(x).cycles for _ in range(3)])
    # Counted in instructions (40 per SysTick tick), so runs agree up to the one tick a 10 ms
    # timer interrupt adds when it lands inside an inference.
    flat = [c for run in cycles for c in run]
    assert min(flat) > 0 and max(flat) - min(flat) <= 1, cycles


@pytest.mark.parametrize("board_id, size_tool", [("qemu-cortex-m4", "arm-none-eabi-size"), ("arduino-uno", "avr-size")])
def test_flash_and_ram_figures_agree_with_the_toolchain_size_tool(built, board_id, size_tool):
    project = built(board_id)
    listing = subprocess.run([size_tool, "-A", str(project.elf_path)], capture_output=True, text=True, check=True).stdout
    sections = {line.split()[0]: int(line.split()[1]) for line in listing.splitlines()[2:] if len(line.split()) == 3}
    flash_sections = [s for s in sections if s.startswith((".isr_vector", ".text", ".rodata", ".ARM.ex", ".preinit", ".init_array", ".fini_array", ".data"))]
    ram_sections = [s for s in sections if s in (".data", ".bss", ".stack", ".heap", ".noinit")]
    assert elf_sizes(project.elf_path) == (sum(sections[s] for s in flash_sections), sum(sections[s] for s in ram_sections))


def test_a_small_cnn_runs_bit_exact_on_qemu(cnn_model, tmp_path):
    import numpy as np

    from pipeline_support import quantized_inputs

    require_tools(*BOARDS["qemu-cortex-m4"])
    out = tmp_path / "cnn"
    project = generate(cnn_model.int8, "qemu-cortex-m4", out, runtime="aot")
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= set(project.ops)
    build(out)
    inputs = quantized_inputs(cnn_model.int8, np.load(cnn_model.eval_x)[:12])
    with flash(out) as url:
        assert_device_matches_reference(url, cnn_model.int8, "qemu-cortex-m4", "aot", count=0, inputs=inputs)


def test_a_real_uno_path_flashes_with_port_and_exits(built, sine_model):
    """`tinyedge flash DIR --port P` is the real-board path: avrdude through the bootloader on P, then
    exit. An emulated Uno started on its own stands in for the board on the other end of P."""
    from tinyedge.boards import get_board
    from tinyedge.flashers.avrdude import emulated_uno

    project = built("arduino-uno")
    with emulated_uno(get_board("arduino-uno")) as pty:
        result = run_tinyedge("flash", project.dir, "--port", pty, timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"answers on {pty}" in " ".join(result.stdout.split())
        assert_device_matches_reference(pty, sine_model.int8, "arduino-uno", "aot", count=4)


def test_the_uno_build_is_refused_when_its_ram_leaves_no_stack(built):
    from tinyedge.build import check_budget
    from tinyedge.errors import TinyedgeError
    from tinyedge.frameworks import BuildResult

    project = built("arduino-uno")
    crowded = BuildResult(elf=project.elf_path, flash_bytes=6000, ram_bytes=1900, seconds=0.0)
    with pytest.raises(TinyedgeError, match="1,900 bytes of data \\+ bss leave less than 192 of the arduino-uno"):
        check_budget(project, crowded, stack_reserve=192)
    oversized = BuildResult(elf=project.elf_path, flash_bytes=40000, ram_bytes=300, seconds=0.0)
    with pytest.raises(TinyedgeError, match="needs 40,000 bytes of flash but the arduino-uno board has 32,256"):
        check_budget(project, oversized)


@pytest.fixture(scope="module")
def wide_input_model(tmp_path_factory):
    """120 inputs -> 16 -> 4: each request spans several 64-byte-buffer chunks on the Uno."""
    import numpy as np

    import models
    from tinyedge.quantize import quantize_model

    k = models.keras()
    k.utils.set_random_seed(4)
    model = k.Sequential([k.Input(shape=(120,)), k.layers.Dense(16, activation="relu"), k.layers.Dense(4)])
    out = tmp_path_factory.mktemp("wide")
    model.save(out / "wide.keras")
    samples = np.random.default_rng(4).normal(size=(64, 120)).astype(np.float32)
    quantize_model(out / "wide.keras", samples, out / "wide_int8.tflite")
    return out / "wide_int8.tflite", samples


def test_multi_chunk_requests_reach_the_uno_intact(wide_input_model, tmp_path):
    from pipeline_support import quantized_inputs

    require_tools(*BOARDS["arduino-uno"])
    model_path, samples = wide_input_model
    out = tmp_path / "fw"
    generate(model_path, "arduino-uno", out)
    build(out)
    with flash(out) as url:
        check = assert_device_matches_reference(url, model_path, "arduino-uno", "aot", count=0,
                                                inputs=quantized_inputs(model_path, samples[:10]))
    assert check["info"].max_chunk < 120
