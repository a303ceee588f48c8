"""A remote rig on loopback, built from the real parts a lab uses: the `host` board's firmware on a
pseudo-terminal, Debian's ser2net serving it over RFC 2217, and labgrid's coordinator and exporter.
Every service listens on 127.0.0.1 only and is stopped when its context ends."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import REAL_MODELS, require_tools

REPO = Path(__file__).resolve().parent.parent
# Beside the checkout (CI, /work/main); a git worktree under wt/ finds it one level up.
HELLO_WORLD = REAL_MODELS / "hello_world_int8.tflite"
SERVICE_START_S = 15.0


def require_hello_world() -> Path:
    if not HELLO_WORLD.is_file():
        pytest.skip(f"needs the real models in {REAL_MODELS} (see its README)")
    return HELLO_WORLD


def ser2net_binary() -> str:
    found = shutil.which("ser2net") or ("/usr/sbin/ser2net" if os.path.isfile("/usr/sbin/ser2net") else None)
    if found is None:
        pytest.skip("needs ser2net (Debian package ser2net, installed by install.sh)")
    return found


def build_host_firmware(model: Path, out_dir: Path) -> Path:
    """The `host` board's AOT firmware for `model`, built with the real compiler; returns the project."""
    from tinyedge.build import build
    from tinyedge.generate import generate

    project_dir = out_dir / "fw"
    generate(model, "host", project_dir, runtime="aot")
    build(project_dir)
    return project_dir


def hello_world_inputs(path: Path, count: int = 24) -> Path:
    np.save(path, np.linspace(0.0, 2 * np.pi, count, dtype=np.float32).reshape(count, 1))
    return path


def hello_world_host_rig(out_dir: Path) -> tuple[Path, Path, Path]:
    """(model, built host firmware project, inputs) for hello_world: what every remote rig test serves."""
    require_tools("cc", "make")
    model = require_hello_world()
    return model, build_host_firmware(model, out_dir), hello_world_inputs(out_dir / "x.npy")


@contextmanager
def running_host_board(project_dir: Path) -> Iterator[str]:
    """The built host firmware running; yields its pseudo-terminal (/dev/pts/N)."""
    from tinyedge.flash import flash

    with flash(project_dir) as pts:
        yield pts


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, what: str, timeout_s: float = SERVICE_START_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening on {port}")
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:g} s")


def stop_service(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def ser2net_rfc2217(device: str, baud: int = 115200) -> Iterator[str]:
    """ser2net serving `device` as an RFC 2217 server on loopback, configured as labgrid's exporter
    configures it; yields the rfc2217:// URL a rig would be given."""
    port = free_port()
    config = [
        f"connection: &board#  accepter: telnet(rfc2217,mode=server),tcp,127.0.0.1,{port}",
        f"  connector: serialdev(nouucplock=true),{device},{baud}n81,local",
        "  options:",
        "    max-connections: 10",
    ]
    command = [ser2net_binary(), "-d", "-n"]
    for line in config:
        command += ["-Y", line]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, process, "ser2net")
        yield f"rfc2217://127.0.0.1:{port}"
    finally:
        stop_service(process)


def labgrid_tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.is_file():
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"needs labgrid ({name}): pip install labgrid, as install.sh does")
        return found
    return str(path)


@contextmanager
def labgrid_coordinator(workdir: Path) -> Iterator[str]:
    """A real labgrid-coordinator on loopback; yields its HOST:PORT."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "coordinator.log").open("w")
    process = subprocess.Popen([labgrid_tool("labgrid-coordinator"), "--listen", address], cwd=workdir,
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process, "labgrid-coordinator")
        yield address
    finally:
        stop_service(process)
        log.close()


@contextmanager
def labgrid_exporter(coordinator: str, device: str, workdir: Path, group: str = "board",
                     exporter_name: str = "rig") -> Iterator[str]:
    """A real labgrid-exporter exporting `device` (a path under /dev) as RawSerialPort; yields the
    exporter's name. The exporter serves the port through its own ser2net."""
    ser2net_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "exporter.yaml"
    config.write_text(f"{group}:\n  RawSerialPort:\n    port: {device}\n    speed: 115200\n")
    log = (workdir / "exporter.log").open("w")
    process = subprocess.Popen([labgrid_tool("labgrid-exporter"), "--coordinator", coordinator,
                                "--name", exporter_name, "--hostname", "127.0.0.1", str(config)],
                               cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield exporter_name
    finally:
        stop_service(process)
        log.close()


def labgrid_client(coordinator: str, *args: str, user: str | None = None,
                   timeout: float = 30) -> subprocess.CompletedProcess:
    """labgrid's own command-line client, as a lab member would type it."""
    env = {**os.environ, "LG_COORDINATOR": coordinator}
    if user:
        env["LG_USERNAME"] = user
    return subprocess.run([labgrid_tool("labgrid-client"), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
