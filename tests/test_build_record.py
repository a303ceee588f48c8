"""The build record: `tinyedge build` writes what the framework built into tinyedge.json's `artifacts`
(role -> path, offset), and every flasher reads that record, so an unbuilt project gets one answer."""

from __future__ import annotations

import json

import pytest

from conftest import require_tools, run_tinyedge
from tinyedge.build import build
from tinyedge.errors import TinyedgeError
from tinyedge.generate import generate
from tinyedge.plugins import get_flasher
from tinyedge.project import MANIFEST, Artifact, Project

NOT_BUILT = r"has not been built: run `tinyedge build .*` first\."


def unbuilt_project(directory, board_id: str) -> Project:
    Project(dir=directory, board_id=board_id, runtime="aot", model_name="m.tflite", model_sha256="0" * 64,
            arena_bytes=0, ops=[]).save()
    return Project.load(directory)


@pytest.mark.parametrize("board_id, port", [
    ("host", None), ("qemu-cortex-m4", None), ("arduino-uno", "/dev/ttyUSB7"),
    ("esp32-devkitc", "socket://127.0.0.1:1"), ("raspberry-pi-pico", "/dev/ttyACM7"),
])
def test_every_flasher_says_the_same_thing_about_an_unbuilt_project(tmp_path, board_id, port):
    project = unbuilt_project(tmp_path, board_id)
    with pytest.raises(TinyedgeError, match=NOT_BUILT):
        with get_flasher(project.board.flasher).flash(project, port):
            pass


def test_a_build_records_its_outputs_by_role(sine_model, tmp_path):
    require_tools("cc", "make")
    generate(sine_model.int8, "host", tmp_path / "fw", runtime="aot")
    assert Project.load(tmp_path / "fw").artifacts == {}
    result = build(tmp_path / "fw")
    project = Project.load(tmp_path / "fw")
    assert project.artifacts == {"elf": Artifact("build/firmware")}
    assert project.artifact("elf") == result.elf
    manifest = json.loads((tmp_path / "fw" / MANIFEST).read_text())
    assert manifest["artifacts"] == {"elf": {"path": "build/firmware", "offset": None}}
    assert manifest["extra"]["build"]["flash_bytes"] == result.flash_bytes


def test_a_project_built_by_an_older_tinyedge_asks_for_a_new_build(sine_model, tmp_path):
    """Older manifests kept the image in `elf` and extra["artifacts"]: they read as unbuilt."""
    require_tools("cc", "make")
    generate(sine_model.int8, "host", tmp_path / "fw", runtime="aot")
    build(tmp_path / "fw")
    manifest_path = tmp_path / "fw" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    del manifest["artifacts"]
    manifest["elf"] = "build/firmware"
    manifest["extra"]["artifacts"] = {"elf": "build/firmware"}
    manifest_path.write_text(json.dumps(manifest))
    result = run_tinyedge("flash", tmp_path / "fw")
    assert result.returncode == 1
    assert "has not been built: run `tinyedge build" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_generate_compiles_the_aot_model_once(sine_model, tmp_path, monkeypatch):
    """The runtime's fit check compiles the model; the sources it writes come from that same program."""
    import tinyedge.runtimes.aot as aot

    compiled = []
    real = aot.compile_model

    def counting(*args, **kwargs):
        program = real(*args, **kwargs)
        compiled.append(program)
        return program

    monkeypatch.setattr(aot, "compile_model", counting)
    generate(sine_model.int8, "qemu-cortex-m4", tmp_path / "fw", runtime="aot")
    assert len(compiled) == 1
    assert (tmp_path / "fw" / "aot" / "te_model.c").read_text() == compiled[0].source
