"""The command line's own manners: a version, help without noise, and the embedded default board."""

from __future__ import annotations

import tinyedge
from conftest import run_tinyedge
from tinyedge.boards import DEFAULT_BOARD, load_boards


def test_version_prints_the_package_version():
    result = run_tinyedge("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tinyedge {tinyedge.__version__}"


def test_help_shows_no_type_beside_a_flag():
    for command in ([], ["deploy"], ["flash"], ["boards"]):
        result = run_tinyedge(*command, "--help")
        assert result.returncode == 0
        assert "<bool>" not in result.stdout, command
        assert "--help" in result.stdout


def test_deploy_defaults_to_the_embedded_default_board_named_once():
    assert DEFAULT_BOARD in load_boards()
    help_text = " ".join(run_tinyedge("deploy", "--help").stdout.split())
    assert f"[default: {DEFAULT_BOARD}]" in help_text.replace("│ ", "")


def test_runtime_help_names_every_runtime():
    help_text = " ".join(run_tinyedge("generate", "--help").stdout.replace("│", " ").split())
    assert "tflm, aot or viper" in help_text
