"""A rig's own pytest suite using tinyedge's plugin: run as a separate pytest process (as the rig
would run it) against the host board's firmware, and read the JUnit XML it writes."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from conftest import REPO
from remote_rigs import hello_world_host_rig

RIG_SUITE = '''
import numpy as np
from tinyedge.pytest import assert_validates

MODEL = {model!r}
DATA = {data!r}


def test_hello_world_is_bit_exact_on_the_board(tinyedge_board):
    report = tinyedge_board.assert_validates(MODEL, DATA)
    assert report.samples == 24 and report.bit_exact == 1.0


def test_module_helper_takes_arrays(tinyedge_board):
    x = np.load(DATA)[:5]
    report = assert_validates(MODEL, x, port=tinyedge_board.port)
    assert report.samples == 5


def test_another_model_than_the_flashed_one_fails(tinyedge_board):
    tinyedge_board.assert_validates({other!r}, np.zeros((2, 640), dtype=np.float32))
'''


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    out = tmp_path_factory.mktemp("rig")
    model, project, data = hello_world_host_rig(out)
    other = sorted(model.parent.glob("*.tflite"))
    other = next(p for p in other if p.name == "ad01_int8.tflite")
    (out / "test_rig.py").write_text(RIG_SUITE.format(model=str(model), data=str(data), other=str(other)))
    return out, project


def run_rig_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The rig's pytest, loading only tinyedge's plugin (as its pytest11 entry point would)."""
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tinyedge.pytest", "-p", "no:cacheprovider",
                           "-q", "-rA", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def junit_cases(path: Path) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in ET.parse(path).getroot().iter("testcase")}


def test_a_rig_suite_carries_tinyedge_verdicts_into_junit(rig):
    out, project = rig
    result = run_rig_pytest(out, "test_rig.py", "--tinyedge-firmware", str(project), "--tinyedge-board", "host",
                            "--junitxml", str(out / "rig.xml"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 2 passed" in result.stdout
    cases = junit_cases(out / "rig.xml")
    passed = cases["test_hello_world_is_bit_exact_on_the_board"]
    properties = {p.get("name"): p.get("value") for p in passed.iter("property")}
    assert properties["tinyedge_board"] == "host"
    assert properties["tinyedge_bit_exact"] == "1.0"
    assert properties["tinyedge_samples"] == "24"
    assert properties["tinyedge_passed"] == "True"
    failure = cases["test_another_model_than_the_flashed_one_fails"].find("failure")
    assert failure is not None
    message = " ".join(failure.get("message").split())
    assert "tinyedge could not validate" in message and "ad01_int8.tflite" in message
    assert "Traceback" not in message


def test_the_wrong_board_fails_with_one_sentence(rig):
    out, project = rig
    result = run_rig_pytest(out, "test_rig.py", "-k", "bit_exact", "--tinyedge-firmware", str(project),
                            "--tinyedge-board", "qemu-cortex-m4")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the device answered as board host, not qemu-cortex-m4" in result.stdout


def test_without_a_board_the_rig_tests_skip_and_say_what_to_pass(rig):
    out, _ = rig
    result = run_rig_pytest(out, "test_rig.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 skipped" in result.stdout
    assert "no tinyedge board given: pass --tinyedge-port" in result.stdout


def test_the_plugin_is_declared_as_a_pytest11_entry_point():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert declared == {"tinyedge": "tinyedge.pytest"}


def test_an_installed_tinyedge_loads_the_plugin_in_any_pytest_run(tmp_path):
    from importlib.metadata import entry_points

    if not any(ep.value == "tinyedge.pytest" for ep in entry_points(group="pytest11")):
        pytest.skip("this install predates the pytest11 entry point: reinstall tinyedge (pip install -e .)")
    result = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for flag in ("--tinyedge-board", "--tinyedge-port", "--tinyedge-place", "--tinyedge-firmware"):
        assert flag in result.stdout
