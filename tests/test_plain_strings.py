"""Strings from a board, a path or a model are printed as they are, never read as rich markup
(issue 17, item 4): `[/]` does not end a PASS in a MarkupError, `[red]m.tflite` is not printed as
`m.tflite`."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
from rich.console import Console

from conftest import run_tinyedge
from tinyedge.render import validation_table
from tinyedge.validate import validate


def test_inspect_prints_a_model_named_like_markup(cnn_model, tmp_path):
    (tmp_path / "[").mkdir()
    for name in ("[/]m.tflite", "[red]m.tflite", "[bold]x.tflite"):
        shutil.copy(cnn_model.int8, tmp_path / name)
        result = run_tinyedge("inspect", name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert name in result.stdout and "Traceback" not in result.stderr


def test_an_error_about_a_path_like_markup_shows_the_path(tmp_path):
    result = run_tinyedge("inspect", "[red]missing.tflite", cwd=tmp_path)
    assert result.returncode == 1
    assert "[red]missing.tflite does not exist" in " ".join(result.stderr.split())


def test_validate_to_a_report_named_like_markup_passes(host_board, cnn_model, tmp_path):
    (tmp_path / "[").mkdir()
    np.save(tmp_path / "x.npy", np.load(cnn_model.eval_x)[:3])
    result = run_tinyedge("validate", "--port", host_board, "--model", cnn_model.int8, "--data", "x.npy",
                          "--json", "[/]r.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "results journal: [/]r.jsonl" in result.stdout
    assert (tmp_path / "[" / "]r.json").is_file()


def test_a_board_whose_runtime_version_is_markup_is_shown_as_it_said(host_board, cnn_model):
    report = validate(host_board, cnn_model.int8, np.load(cnn_model.eval_x)[:2])
    board_said = dataclasses.replace(report, runtime_version="[/]", board="[red]b", error="[/bold] stop")
    console = Console(record=True, width=200)
    console.print(validation_table(board_said))
    text = console.export_text()
    assert "[red]b" in text and "[/]" in text and "[/bold] stop" in text
