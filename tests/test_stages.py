"""Each stage does its whole stage from Python, as the CLI does it; the CLI only parses and renders."""

from __future__ import annotations

import ast
import json

import numpy as np
import yaml

from conftest import REPO, require_tools, run_tinyedge
from tinyedge.deploy import DeployPlan, deploy


def test_deploy_from_python_validates_on_the_board_and_writes_the_cli_report(sine_model, tmp_path):
    """A user's Python session: one call builds, flashes, validates and writes the same JSON as `tinyedge deploy`."""
    require_tools("gcc", "make")
    result = deploy(DeployPlan(sine_model.int8, board="host", runtime="aot", data=sine_model.eval_x,
                               out_dir=tmp_path / "py", json=tmp_path / "py.json"))

    assert result.validation is not None and result.validation.passed
    assert result.validation.report.samples == len(np.load(sine_model.eval_x))
    assert result.validation.journal == tmp_path / "py" / "validate.jsonl"
    ours = json.loads((tmp_path / "py.json").read_text())
    assert ours["passed"] and ours["bit_exact"] == 1.0 and ours["board"] == "host"

    cli = run_tinyedge("deploy", sine_model.int8, "--board", "host", "--runtime", "aot", "--data", sine_model.eval_x,
                       "-o", tmp_path / "cli", "--json", tmp_path / "cli.json")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert sorted(ours) == sorted(json.loads((tmp_path / "cli.json").read_text()))


def test_deploy_from_python_without_data_flashes_only(sine_model, tmp_path):
    require_tools("gcc", "make")
    result = deploy(DeployPlan(sine_model.int8, board="host", runtime="aot", out_dir=tmp_path / "fw"))
    assert result.validation is None and result.passed is None
    assert result.port and result.build.flash_bytes > 0


def rich_imports(path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    return [name for name in names if name == "rich" or name.startswith("rich.")]


def test_no_stage_module_imports_rich():
    """Tables and bars are the CLI's (cli.py, render.py) and the pytest plug-in's; stages report through callbacks."""
    front = {"cli.py", "render.py", "pytest.py"}
    offenders = {str(path.relative_to(REPO)): rich_imports(path) for path in (REPO / "tinyedge").rglob("*.py")
                 if path.name not in front or path.parent != REPO / "tinyedge"}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_build_shows_its_budget_table_before_refusing_an_image_over_budget(sine_model, tmp_path):
    """`tinyedge build` once the board's profile allows 4 KB of flash: the figures first, then one sentence."""
    require_tools("gcc", "make")
    boards = yaml.safe_load((REPO / "tinyedge" / "boards.yaml").read_text())
    boards["boards"]["host"]["flash_bytes"] = 4096
    (tmp_path / "boards.yaml").write_text(yaml.safe_dump(boards))
    env = {"TINYEDGE_BOARDS": str(tmp_path / "boards.yaml")}
    assert run_tinyedge("generate", sine_model.int8, "--board", "host", "--runtime", "aot", "-o", tmp_path / "fw").returncode == 0

    result = run_tinyedge("build", tmp_path / "fw", env=env)

    assert result.returncode == 1
    assert "4,096 B" in result.stdout and "flash" in result.stdout   # the table, on stdout
    assert "bytes of flash but the host board has 4,096: use a smaller model or a bigger board." in " ".join(result.stderr.split())
