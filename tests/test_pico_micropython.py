"""The emulated Pico with the RP2040 boot ROM, which the rp2040js npm package does not ship: the user gives
a 16 KiB ROM image in TINYEDGE_RP2040_BOOTROM (rp2040js's repository has it as demo/bootrom.ts). Then the
AOT image boots as on a real Pico (boot2's CRC checked, boot2 run), and a MicroPython UF2 the user supplies
(TINYEDGE_MICROPYTHON_UF2: MicroPython's rp2-pico download) runs under `flash --firmware`, so
rp2040-micropython deploys run against it over socket://, and an idle REPL there leaves the host's cores
alone. Skipped, saying which, without those files."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import serial

from conftest import REPO, TINYEDGE, run_tinyedge
from remote_rigs import require_hello_world
from test_pico import BOARD, hello_world_inputs, require_emulator

BOOTROM_ENV = "TINYEDGE_RP2040_BOOTROM"
MICROPYTHON_ENV = "TINYEDGE_MICROPYTHON_UF2"


def require_file(env: str, what: str) -> Path:
    value = os.environ.get(env)
    if not value or not Path(value).is_file():
        pytest.skip(f"needs {what} in {env} (not shipped: the user supplies it)")
    return Path(value)


def require_bootrom() -> Path:
    return require_file(BOOTROM_ENV, "a 16 KiB RP2040 boot ROM image (rp2040js's demo/bootrom.ts as binary)")


def test_the_aot_image_boots_through_the_boot_rom_and_its_own_boot2(tmp_path):
    require_emulator()
    require_bootrom()
    report = tmp_path / "report.json"
    result = run_tinyedge("deploy", require_hello_world(), "--board", BOARD, "--data",
                          hello_world_inputs(tmp_path / "x.npy"), "-o", tmp_path / "out", "--json", report)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PASS" in result.stdout

    image = tmp_path / "out" / "firmware" / "build" / "firmware.uf2"
    corrupted = bytearray(image.read_bytes())
    corrupted[32 + 10] ^= 0xFF   # a byte of boot2's code in the first block's payload
    image.write_bytes(bytes(corrupted))
    refused = run_tinyedge("flash", tmp_path / "out" / "firmware", timeout=120)
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert "boot2's CRC32" in message and "the boot ROM would not start this image" in message


def test_flashing_micropython_without_the_boot_rom_says_where_to_put_it(tmp_path):
    require_emulator()
    project = tmp_path / "fw"
    assert run_tinyedge("generate", require_hello_world(), "--board", BOARD, "-o", project).returncode == 0
    assert run_tinyedge("build", project).returncode == 0
    image = project / "build" / "firmware.uf2"   # any RP2040 UF2 gets this far
    result = run_tinyedge("flash", project, "--firmware", image, env={BOOTROM_ENV: ""}, timeout=60)
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert f"set {BOOTROM_ENV} to a 16 KiB boot ROM image" in message and "Traceback" not in result.stderr


@contextmanager
def micropython_on_the_emulated_pico(tmp_path: Path, fresh: bool = True) -> Iterator[tuple[str, subprocess.Popen]]:
    """`tinyedge flash PROJECT --firmware rp2-pico.uf2` running: its socket:// URL and the process.
    `fresh=False` starts it again on the flash (qspi_flash.bin) the last run in tmp_path left."""
    require_emulator()
    require_bootrom()
    firmware = require_file(MICROPYTHON_ENV, "MicroPython's rp2-pico UF2")
    project = tmp_path / "fw"
    if fresh:
        assert run_tinyedge("generate", require_hello_world(), "--board", BOARD, "-o", project).returncode == 0
        assert run_tinyedge("build", project).returncode == 0
    emulator = subprocess.Popen([*TINYEDGE, "flash", str(project), "--firmware", str(firmware)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "COLUMNS": "200"})
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = emulator.stdout.readline()
            if not line:
                break
            found = re.search(r"socket://[0-9.]+:\d+", line)
            url = found.group(0) if found else None
        assert url, "the emulator printed no socket:// URL"
        yield url, emulator
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


def test_a_micropython_uf2_runs_on_the_emulated_pico_and_rp2040_micropython_deploys_to_it(tmp_path):
    with micropython_on_the_emulated_pico(tmp_path) as (url, _):
        report = tmp_path / "report.json"
        result = run_tinyedge("deploy", require_hello_world(), "--board", "rp2040-micropython", "--port", url,
                              "--data", hello_world_inputs(tmp_path / "x.npy"), "-o", tmp_path / "mp",
                              "--json", report, timeout=1200)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "PASS" in result.stdout


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_until(port: serial.Serial, marker: bytes, seconds: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while marker not in seen and time.monotonic() < deadline:
        seen += port.read(256)
    return seen


def test_an_idle_micropython_repl_leaves_the_host_cores_alone(tmp_path):
    with micropython_on_the_emulated_pico(tmp_path) as (url, emulator):
        runner = int(Path(f"/proc/{emulator.pid}/task/{emulator.pid}/children").read_text().split()[0])
        with serial.serial_for_url(url, timeout=0.2) as port:
            assert b">>> " in read_until(port, b">>> ", 60)
            start_cpu, start = cpu_seconds(runner), time.monotonic()
            time.sleep(5)
            used = cpu_seconds(runner) - start_cpu
            assert used < 0.25 * (time.monotonic() - start), f"the idle REPL took {used:.1f} s of CPU in 5 s"
            port.write(b"print(6 * 7)\r\n")
            assert b"42" in read_until(port, b"42\r\n", 30)
