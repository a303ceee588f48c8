"""A remote rig over RFC 2217: the host board's firmware on a pseudo-terminal, served by a real
ser2net on loopback, validated through `rfc2217://127.0.0.1:PORT` as a lab would."""

from __future__ import annotations

import json

import pytest

from conftest import run_tinyedge
from remote_rigs import free_port, hello_world_host_rig, running_host_board, ser2net_rfc2217
from tinyedge.ports import open_options, with_rfc2217_defaults


@pytest.fixture(scope="module")
def host_firmware(tmp_path_factory):
    return hello_world_host_rig(tmp_path_factory.mktemp("rfc2217"))


def test_validate_over_rfc2217_through_ser2net_is_bit_exact(host_firmware, tmp_path):
    model, project_dir, data = host_firmware
    with running_host_board(project_dir) as pts, ser2net_rfc2217(pts) as url:
        result = run_tinyedge("validate", "--port", url, "--model", model, "--data", data,
                              "--json", tmp_path / "report.json", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is True
    assert report["samples"] == 24
    assert report["bit_exact"] == 1.0


def test_an_rfc2217_url_that_already_names_its_options_keeps_them(host_firmware, tmp_path):
    model, project_dir, data = host_firmware
    with running_host_board(project_dir) as pts, ser2net_rfc2217(pts) as url:
        result = run_tinyedge("validate", "--port", f"{url}?ign_set_control&timeout=5", "--model", model,
                              "--data", data, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout


def test_no_rfc2217_server_is_a_device_error_in_one_sentence(host_firmware, tmp_path):
    model, _, data = host_firmware
    url = f"rfc2217://127.0.0.1:{free_port()}"
    result = run_tinyedge("validate", "--port", url, "--model", model, "--data", data, cwd=tmp_path, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert f"cannot reach the RFC 2217 server at {url}" in message
    assert "ser2net or labgrid exporter is running" in message


def test_lab_servers_get_ign_set_control_and_no_write_timeout():
    assert with_rfc2217_defaults("rfc2217://lab:4000") == "rfc2217://lab:4000?ign_set_control"
    assert with_rfc2217_defaults("rfc2217://lab:4000?timeout=5") == "rfc2217://lab:4000?timeout=5&ign_set_control"
    assert with_rfc2217_defaults("rfc2217://lab:4000?ign_set_control") == "rfc2217://lab:4000?ign_set_control"
    assert with_rfc2217_defaults("socket://127.0.0.1:5000") == "socket://127.0.0.1:5000"
    assert with_rfc2217_defaults("/dev/ttyACM0") == "/dev/ttyACM0"
    assert open_options("rfc2217://lab:4000") == {}
    assert open_options("/dev/ttyACM0") == {"write_timeout": 30, "exclusive": True}  # one run per board
    assert open_options("socket://127.0.0.1:5000") == {"write_timeout": 30}


def test_validate_without_port_or_place_says_to_give_one(host_firmware, tmp_path):
    model, _, data = host_firmware
    result = run_tinyedge("validate", "--model", model, "--data", data, cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "validate needs the board: give --port (a path or URL) or --place (a labgrid place)." in \
        " ".join(result.stderr.split())
