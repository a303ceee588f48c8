"""The qemu-riscv32 board: QEMU's RISC-V `virt` machine (an RV32IMAC hart) built with Debian's
riscv64-unknown-elf GCC and picolibc, flashed by starting QEMU, validated over its NS16550A UART.
It is a profile in boards.yaml and the firmware/ports/riscv_virt folder; the baremetal framework and
the qemu flasher read everything else from the profile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO, require_tools, run_tinyedge
from tinyedge.inspection import inspect_model

BOARD = "qemu-riscv32"
ELF_MACHINE_RISCV = 243


def require_riscv_toolchain() -> None:
    require_tools("riscv64-unknown-elf-gcc", "make", "qemu-system-riscv32")
    specs = subprocess.run(["riscv64-unknown-elf-gcc", "-print-file-name=picolibc.specs"], capture_output=True,
                           text=True).stdout.strip()
    if not os.path.isfile(specs):
        pytest.skip("needs picolibc-riscv64-unknown-elf (installed by the README's set-up command)")


def test_the_cnn_deploys_bit_exact_on_qemu_riscv32_with_instruction_counts(cnn_model, tmp_path):
    require_riscv_toolchain()
    report = tmp_path / "report.json"
    result = run_tinyedge("deploy", cnn_model.keras, "--board", BOARD, "--calibration", cnn_model.calibration,
                          "--data", cnn_model.eval_x, "--labels", cnn_model.eval_y, "-o", tmp_path / "out",
                          "--icount", "--json", report)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PASS" in result.stdout

    found = json.loads(report.read_text())
    assert found["board"] == BOARD and found["runtime"] == "aot" and found["passed"]
    assert found["bit_exact"] == 1.0 and found["max_abs_diff_lsb"] == 0
    assert found["samples"] == len(np.load(cnn_model.eval_x))
    assert found["accuracy"]["board"] == found["accuracy"]["host_int8"]
    assert "-icount" in found["latency_note"]

    # -icount shift=0: the report gives instruction counts, not microseconds that stand for 1,000 of them.
    macs = inspect_model(tmp_path / "out" / "cnn_int8.tflite").macs
    counts = found["latency_instructions"]
    instructions = counts["median"]
    spread = counts["max"] - counts["min"]
    assert spread <= 0.01 * instructions, f"instruction counts barely vary by input: {counts}"
    assert 2 < instructions / macs < 60, (instructions, macs)

    firmware = tmp_path / "out" / "firmware"
    elf = (firmware / "build" / "firmware.elf").read_bytes()
    assert elf[4] == 1 and int.from_bytes(elf[18:20], "little") == ELF_MACHINE_RISCV   # ELF32, RISC-V
    assert not (firmware / "aot" / "te_dsp.c").exists(), "the Arm DSP kernels are for armv7e-m only"


def test_the_board_is_a_profile_and_a_port(sine_model, tmp_path):
    riscv = tmp_path / "riscv"
    arm = tmp_path / "arm"
    for board, out in ((BOARD, riscv), ("qemu-cortex-m4", arm)):
        result = run_tinyedge("generate", sine_model.int8, "--board", board, "-o", out, "--runtime", "aot")
        assert result.returncode == 0, result.stderr

    makefile = (riscv / "Makefile").read_text()
    assert "PREFIX := riscv64-unknown-elf-" in makefile and "-march=rv32imac -mabi=ilp32" in makefile
    assert "--specs=picolibc.specs" in makefile and "nano.specs" not in makefile
    assert "-DTE_UART_BASE=0x10000000u" in makefile and "-DTE_CPU_HZ=10000000u" in makefile
    assert "src/port_riscv_virt.c" in makefile and "src/startup_riscv_virt.c" in makefile
    linker = (riscv / "link.ld").read_text()
    assert "ENTRY(_start)" in linker and "ORIGIN = 0x80000000" in linker and "__global_pointer$" in linker

    arm_makefile = (arm / "Makefile").read_text()
    assert "--specs=nano.specs" in arm_makefile and "--specs=nosys.specs" in arm_makefile
    assert "ENTRY(Reset_Handler)" in (arm / "link.ld").read_text()


def test_boards_doctor_and_inspect_know_the_board(cnn_model):
    boards = run_tinyedge("boards", "show", BOARD)
    assert boards.returncode == 0, boards.stderr
    assert "RV32IMAC" in boards.stdout and "qemu-system-riscv32" in boards.stdout

    inspect = run_tinyedge("inspect", cnn_model.int8, "--board", BOARD, "--json")
    assert inspect.returncode == 0, inspect.stderr
    fit = json.loads(inspect.stdout)["board_fit"]
    assert fit["runtime"] == "aot" and fit["fits"] and fit["flash_budget"] == fit["ram_budget"] == 4 * 1024 * 1024

    doctor = run_tinyedge("doctor", "--json")
    assert doctor.returncode == 0, doctor.stderr
    tools = {tool["command"].rsplit("/", 1)[-1]: tool for tool in json.loads(doctor.stdout)["tools"]}
    gcc, qemu = tools["riscv64-unknown-elf-gcc"], tools["qemu-system-riscv32"]
    assert gcc["name"] == "RISC-V GCC" and "picolibc-riscv64-unknown-elf" in gcc["install"]
    assert gcc["needed_by"] == [f"framework baremetal: {BOARD}"]
    assert "qemu-system-misc" in qemu["install"] and qemu["needed_by"] == [f"flasher qemu: {BOARD}"]


def test_a_missing_riscv_compiler_is_one_sentence_with_its_install_line(sine_model, tmp_path):
    out = tmp_path / "fw"
    assert run_tinyedge("generate", sine_model.int8, "--board", BOARD, "-o", out).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make = shutil.which("make")
    if make:
        (bin_dir / "make").symlink_to(make)
    result = run_tinyedge("build", out, env={"PATH": f"{bin_dir}:{os.path.dirname(sys.executable)}"})
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "riscv64-unknown-elf-gcc is not installed" in message
    assert "sudo apt-get install gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf" in message
    assert "Traceback" not in result.stderr


def test_a_baremetal_profile_without_its_toolchain_facts_is_refused_in_one_sentence(sine_model, tmp_path):
    doc = yaml.safe_load((REPO / "tinyedge" / "boards.yaml").read_text())
    del doc["boards"][BOARD]["baremetal"]
    (tmp_path / "boards.yaml").write_text(yaml.safe_dump(doc))
    result = run_tinyedge("generate", sine_model.int8, "--board", BOARD, "-o", tmp_path / "fw",
                          env={"TINYEDGE_BOARDS": str(tmp_path / "boards.yaml")})
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "qemu-riscv32 profile needs a `baremetal` section" in message and "fix boards.yaml" in message
    assert "Traceback" not in result.stderr
