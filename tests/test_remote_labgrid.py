"""A labgrid lab on loopback: a real labgrid-coordinator, a real labgrid-exporter exporting the
pseudo-terminal of the running host board (served by its ser2net), and a place `uno` matching it.
tinyedge acquires the place, validates through its NetworkSerialPort and releases it on every way out."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from conftest import TINYEDGE, run_tinyedge
from remote_rigs import (free_port, hello_world_host_rig, hello_world_inputs, labgrid_client, labgrid_coordinator,
                         labgrid_exporter, running_host_board, wait_until)

PLACE = "uno"


def holder(coordinator: str) -> str | None:
    """Who holds the place, as `labgrid-client show` says it."""
    shown = labgrid_client(coordinator, "-p", PLACE, "show")
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.strip().startswith("acquired:"))
    value = line.split(":", 1)[1].strip()
    return None if value == "None" else value


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(coordinator address, model, data) with the place `uno` free and its exporter serving the board."""
    out = tmp_path_factory.mktemp("lab")
    model, project, data = hello_world_host_rig(out)
    with running_host_board(project) as pts, labgrid_coordinator(out / "coordinator") as coordinator, \
            labgrid_exporter(coordinator, pts, out / "exporter"):
        wait_until(lambda: "rig/board" in labgrid_client(coordinator, "resources").stdout, 20, "the exporter's resource")
        for command in (("create",), ("add-match", "rig/board/NetworkSerialPort")):
            made = labgrid_client(coordinator, "-p", PLACE, *command)
            assert made.returncode == 0, made.stderr
        yield coordinator, model, data, project


@pytest.fixture
def free_place(lab):
    coordinator = lab[0]
    assert holder(coordinator) is None
    yield lab
    current = holder(coordinator)
    if current is not None:   # leave the place free for the next test, whoever holds it
        labgrid_client(coordinator, "-p", PLACE, "release", "--kick")


def test_validate_acquires_the_place_runs_bit_exact_and_releases_it(free_place, tmp_path):
    coordinator, model, data, _ = free_place
    result = run_tinyedge("validate", "--place", PLACE, "--coordinator", coordinator, "--model", model,
                          "--data", data, "--json", tmp_path / "report.json", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is True and report["bit_exact"] == 1.0 and report["samples"] == 24
    stderr = " ".join(result.stderr.split())
    assert f"holding labgrid place {PLACE} via {coordinator}: rfc2217://127.0.0.1:" in stderr
    assert f"released labgrid place {PLACE}" in stderr
    assert holder(coordinator) is None


def test_the_coordinator_comes_from_lg_coordinator(free_place, tmp_path):
    coordinator, model, data, _ = free_place
    result = run_tinyedge("validate", "--place", PLACE, "--model", model, "--data", data, cwd=tmp_path,
                          env={"LG_COORDINATOR": coordinator}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert holder(coordinator) is None


def test_a_place_held_by_someone_else_is_one_sentence_and_stays_theirs(free_place, tmp_path):
    coordinator, model, data, _ = free_place
    taken = labgrid_client(coordinator, "-p", PLACE, "acquire", user="alice")
    assert taken.returncode == 0, taken.stderr
    result = run_tinyedge("validate", "--place", PLACE, "--coordinator", coordinator, "--model", model,
                          "--data", data, cwd=tmp_path, timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert f"labgrid place '{PLACE}' is held by " in message and "/alice: wait until they release it" in message
    assert holder(coordinator).endswith("/alice")


def test_a_place_this_user_already_holds_is_used_and_left_held(free_place, tmp_path):
    coordinator, model, data, _ = free_place
    taken = labgrid_client(coordinator, "-p", PLACE, "acquire")
    assert taken.returncode == 0, taken.stderr
    mine = holder(coordinator)
    result = run_tinyedge("validate", "--place", PLACE, "--coordinator", coordinator, "--model", model,
                          "--data", data, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "using (already held by you) labgrid place" in " ".join(result.stderr.split())
    assert holder(coordinator) == mine


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_validation_releases_the_place(free_place, tmp_path, stop_signal):
    coordinator, model, _, _ = free_place
    many = hello_world_inputs(tmp_path / "many.npy", count=20000)
    process = subprocess.Popen([*TINYEDGE, "validate", "--place", PLACE, "--coordinator", coordinator,
                                "--model", str(model), "--data", str(many)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: holder(coordinator) is not None, 60, "tinyedge to acquire the place")
        time.sleep(1.0)
        assert process.poll() is None, "validation ended before it could be interrupted"
        process.send_signal(stop_signal)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode in (130, 143), stderr
    assert "Traceback" not in stderr
    assert f"released labgrid place {PLACE}" in " ".join(stderr.split())
    assert holder(coordinator) is None


def test_a_failing_flash_on_a_place_still_releases_it(free_place, tmp_path):
    coordinator, _, _, project = free_place
    result = run_tinyedge("flash", project, "--place", PLACE, "--coordinator", coordinator, cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "has no serial port" in " ".join(result.stderr.split())
    assert holder(coordinator) is None


def test_an_unknown_place_is_a_usage_error(free_place, tmp_path):
    coordinator, model, data, _ = free_place
    result = run_tinyedge("validate", "--place", "nosuchboard", "--coordinator", coordinator, "--model", model,
                          "--data", data, cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no single labgrid place 'nosuchboard'" in " ".join(result.stderr.split())


def test_no_coordinator_is_a_device_error(lab, tmp_path):
    _, model, data, _ = lab
    address = f"127.0.0.1:{free_port()}"
    result = run_tinyedge("validate", "--place", PLACE, "--coordinator", address, "--model", model,
                          "--data", data, cwd=tmp_path, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot reach the labgrid coordinator at {address}" in " ".join(result.stderr.split())


def test_port_and_place_together_are_refused(lab, tmp_path):
    _, model, data, _ = lab
    result = run_tinyedge("validate", "--port", "/dev/null", "--place", PLACE, "--model", model, "--data", data,
                          cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert "give --port or --place, not both" in result.stderr


def test_the_pytest_plugin_holds_a_place_for_the_session(free_place, tmp_path):
    from test_pytest_plugin import run_rig_pytest

    coordinator, model, data, _ = free_place
    (tmp_path / "test_on_place.py").write_text(
        "def test_board(tinyedge_board):\n"
        f"    assert tinyedge_board.port.startswith('rfc2217://127.0.0.1:')\n"
        f"    tinyedge_board.assert_validates({str(model)!r}, {str(data)!r})\n")
    result = run_rig_pytest(tmp_path, "test_on_place.py", "--tinyedge-place", PLACE,
                            "--tinyedge-coordinator", coordinator)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert holder(coordinator) is None


@pytest.mark.parametrize("address", ["lab:notaport", ":20408", "lab:99999"])
def test_a_malformed_coordinator_address_is_a_usage_error(lab, tmp_path, address):
    _, model, data, _ = lab
    result = run_tinyedge("validate", "--place", PLACE, "--coordinator", address, "--model", model,
                          "--data", data, cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"--coordinator must be HOST:PORT, such as lab:20408 (got '{address}')." in " ".join(result.stderr.split())


def test_deploy_holds_the_place_and_releases_it_when_flashing_fails(free_place, tmp_path):
    coordinator, model, data, _ = free_place
    result = run_tinyedge("deploy", model, "--board", "host", "--runtime", "aot", "--data", data, "-o", tmp_path / "out",
                          "--place", PLACE, "--coordinator", coordinator, cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    stderr = " ".join(result.stderr.split())
    assert f"holding labgrid place {PLACE}" in stderr and "has no serial port" in stderr
    assert f"released labgrid place {PLACE}" in stderr
    assert holder(coordinator) is None
