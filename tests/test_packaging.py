"""tinyedge as a user installs it: a wheel built from this checkout, installed into a fresh virtualenv,
carries its board profiles, templates and firmware sources, and deploys to qemu-cortex-m4 from there."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, require_tools

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, timeout=600)
    (found,) = out.glob("tinyedge-*.whl")
    return found


def fresh_venv(where: Path, *install: str) -> Path:
    """A new virtualenv with tinyedge installed from `install` (no dependencies: they are this test
    interpreter's, reached through a .pth line, so nothing is downloaded)."""
    venv.create(where, with_pip=False)
    python = where / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "tinyedge-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--ignore-installed",
                    "--no-build-isolation", "-q", *install], check=True, capture_output=True, timeout=600)
    return where / "bin" / "tinyedge"


def run(tinyedge: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TINYEDGE_BOARDS")}
    return subprocess.run([str(tinyedge), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**env, "COLUMNS": "200"}, timeout=900)


def test_the_wheel_carries_profiles_templates_and_firmware(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "tinyedge/boards.yaml" in names
    assert "tinyedge/firmware/aot/te_kernels.c" in names
    assert "tinyedge/firmware/protocol/te_protocol.c" in names
    assert "tinyedge/firmware/ports/mps2/link.ld.j2" in names
    assert "tinyedge/firmware/host_tools/simavr-uno/simavr_uno.c" in names
    assert any(name.startswith("tinyedge/templates/baremetal/") for name in names)
    assert not any(name.startswith("tests/") for name in names)


def test_a_wheel_in_a_fresh_venv_deploys_to_the_emulated_cortex_m4(wheel, sine_model, tmp_path):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    tinyedge = fresh_venv(tmp_path / "venv", str(wheel))
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    version = run(tinyedge, "--version", cwd=elsewhere)
    assert version.returncode == 0 and version.stdout.startswith("tinyedge ")
    where = run(tinyedge.parent / "python", "-c", "import tinyedge.paths as p; print(p.PACKAGE_DIR)", cwd=elsewhere)
    assert where.stdout.strip().startswith(str(tmp_path / "venv")), where.stdout  # not this checkout
    boards = run(tinyedge, "boards", "--json", cwd=elsewhere)
    assert boards.returncode == 0 and "qemu-cortex-m4" in boards.stdout
    deployed = run(tinyedge, "deploy", sine_model.int8, "--board", "qemu-cortex-m4", "--runtime", "aot",
                   "--data", sine_model.eval_x, "-o", elsewhere / "out", "--json", elsewhere / "report.json",
                   cwd=elsewhere)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert '"passed": true' in (elsewhere / "report.json").read_text()


def test_pip_install_of_the_checkout_gives_a_working_tinyedge(tmp_path):
    tinyedge = fresh_venv(tmp_path / "venv", str(REPO))
    result = run(tinyedge, "boards", "show", "qemu-cortex-m4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mps2-an386" in result.stdout
