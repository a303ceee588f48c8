"""Nothing a model's file name, its tensor names, a board profile or an option holds runs or breaks
anything in a generated project (issue 17, item 3): every string is escaped for the language of the
file it lands in (C, C++, Make, CMake, YAML, ini, Python) or refused in one sentence."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from conftest import require_tools, run_tinyedge
from models import edit_flatbuffer
from tinyedge import templating
from tinyedge.boards import load_boards
from tinyedge.errors import TinyedgeError
from tinyedge.generate import generate

HOSTILE_FILE = "evil\n$(shell touch PWNED)\n#.tflite"
HOSTILE_TENSOR = 'x */ #error PWNED\n"; ??/\n${PWNED} $(shell touch PWNED) `touch PWNED` \\'


def renamed(model_bytes: bytes, name: str) -> bytes:
    """The model with every tensor renamed to `name` plus its index."""
    def rename(model: schema.ModelT) -> None:
        for subgraph in model.subgraphs:
            for i, tensor in enumerate(subgraph.tensors):
                tensor.name = f"{name}{i}".encode()
    return edit_flatbuffer(model_bytes, rename)


@pytest.fixture
def hostile_model(sine_model, tmp_path) -> Path:
    path = tmp_path / HOSTILE_FILE
    path.write_bytes(renamed(Path(sine_model.int8).read_bytes(), HOSTILE_TENSOR))
    return path


def board_runtimes() -> list[tuple[str, str]]:
    return [(board.id, runtime) for board in load_boards().values() for runtime in board.runtimes if runtime != "tflm"]


def no_pwned(root: Path) -> None:
    assert not list(root.rglob("PWNED")), "a generated file ran a command"


def check_syntax(project: Path) -> None:
    """Each generated file parses in its own language, and Make runs nothing it should not."""
    for makefile in project.rglob("Makefile"):
        subprocess.run(["make", "-n", "-C", str(makefile.parent)], capture_output=True, text=True)
    for name in ("sketch.yaml", "idf_component.yml"):
        for path in project.rglob(name):
            assert isinstance(yaml.safe_load(path.read_text()), dict), path
    for path in project.rglob("platformio.ini"):
        configparser.ConfigParser(inline_comment_prefixes=(";",)).read_string(path.read_text())
    for path in project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    includes = [f"-I{folder}" for folder in sorted({h.parent for h in project.rglob("*.h")})]
    for path in [*project.rglob("model_info.c"), *project.rglob("te_model.c")]:
        if shutil.which("cc"):
            checked = subprocess.run(["cc", "-std=c99", "-trigraphs", "-Wall", "-Werror", "-fsyntax-only",
                                      *includes, str(path)], capture_output=True, text=True)
            assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("board, runtime", board_runtimes())
def test_every_board_project_from_a_hostile_model_is_inert(hostile_model, tmp_path, board, runtime):
    project = tmp_path / "project"
    generate(hostile_model, board, project, runtime=runtime)
    check_syntax(project)
    no_pwned(tmp_path)
    lines = [line.strip() for p in project.rglob("*") if p.is_file() and p.suffix != ".mpy"
             for line in p.read_text(errors="replace").splitlines()]
    assert not [line for line in lines if line.startswith(("$(shell", "#error PWNED", "${PWNED}"))]


def test_building_a_hostile_model_for_the_host_runs_nothing(hostile_model, tmp_path):
    require_tools("cc", "make")
    project = tmp_path / "project"
    generate(hostile_model, "host", project, runtime="aot")
    result = run_tinyedge("build", project, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    no_pwned(tmp_path)


@pytest.mark.parametrize("board", ["qemu-cortex-m4", "arduino-uno"])
def test_building_a_hostile_model_for_a_cross_compiled_board_runs_nothing(hostile_model, tmp_path, board):
    tools = {"qemu-cortex-m4": "arm-none-eabi-gcc", "arduino-uno": "avr-gcc"}
    require_tools(tools[board], "make")
    project = tmp_path / "project"
    generate(hostile_model, board, project, runtime="aot")
    result = run_tinyedge("build", project, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    no_pwned(tmp_path)


# ---------------------------------------------------------------- each filter, checked by its language's own parser

NASTY = ['a"b', "a\\", "a\\\nb", "*/x/*", "??/", "???=", "a\nb", "$(shell touch PWNED)", "${X}", "é€\0\x7f", "x;y#z"]


@pytest.mark.parametrize("value", NASTY)
def test_a_c_string_literal_holds_exactly_the_value(value, tmp_path):
    require_tools("cc")
    source = tmp_path / "s.c"
    source.write_text('#include <stdio.h>\n#include <string.h>\n'
                      f'static const char s[] = "{templating.c_string(value)}"; /* {templating.c_comment(value)} */\n'
                      f'// {templating.c_comment(value)}\n'
                      'int main(void) { fwrite(s, 1, sizeof s - 1, stdout); return 0; }\n')
    subprocess.run(["cc", "-std=c99", "-trigraphs", "-Wall", "-Werror", "-o", str(tmp_path / "s"), str(source)],
                   check=True, capture_output=True)
    assert subprocess.run([str(tmp_path / "s")], capture_output=True).stdout == value.encode()


@pytest.mark.parametrize("value", NASTY)
def test_yaml_python_and_cmake_strings_hold_exactly_the_value(value, tmp_path):
    assert yaml.safe_load(f"key: {templating.yaml_string(value)}\n") == {"key": value}
    assert eval(templating.py_string(value)) == value   # noqa: S307 - the literal we just wrote
    if any(ch in value for ch in "\n\0;"):
        with pytest.raises(TinyedgeError, match="cannot be written into a CMake file"):
            templating.cmake_string(value)
        return
    require_tools("cmake")
    script = tmp_path / "check.cmake"
    script.write_text(f'set(value "{templating.cmake_string(value)}")\n'
                      f'file(WRITE "{tmp_path}/out" "${{value}}")\n')
    subprocess.run(["cmake", "-P", str(script)], check=True, capture_output=True, cwd=tmp_path)
    assert (tmp_path / "out").read_text() == value
    no_pwned(tmp_path)


@pytest.mark.parametrize("value", ["$(shell touch PWNED)", "a b", "a#b", "`touch PWNED`", "a;b", "a\nb", "x'y", '"', "\\"])
def test_make_refuses_what_make_or_the_shell_would_read_otherwise(value):
    with pytest.raises(TinyedgeError, match="cannot be written into a Makefile"):
        templating.make_word(value)


@pytest.mark.parametrize("value", ["a ;b", "a #b", "a\nb", "${sysenv.X}", " a"])
def test_ini_refuses_what_would_end_or_expand_a_value(value):
    with pytest.raises(TinyedgeError, match="cannot be written into an ini file"):
        templating.ini_value(value)


def test_a_string_interpolated_without_a_filter_is_a_bug_found_at_render_time():
    env = templating.environment()
    with pytest.raises(templating.UnescapedValue, match="without an escaping filter"):
        env.from_string("// {{ name }}").render(name="m.tflite")
    assert env.from_string("{{ n }} {{ x }} {{ name | c_comment }}").render(n=3, x=0.5, name="a*/b") == "3 0.5 a* /b"


def test_generate_refuses_a_tflm_tree_path_make_cannot_hold(sine_model, tmp_path):
    tree = tmp_path / "tflm $(shell touch PWNED)"
    tree.mkdir()
    result = run_tinyedge("generate", sine_model.int8, "--board", "host", "--runtime", "tflm", "--tflm-dir", tree,
                          "-o", tmp_path / "p", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    no_pwned(tmp_path)


def hostile_profiles(tmp_path: Path, **host_fields) -> Path:
    """boards.yaml with the host board's fields replaced."""
    from tinyedge.paths import PACKAGE_DIR

    profiles = yaml.safe_load((PACKAGE_DIR / "boards.yaml").read_text())
    profiles["boards"]["host"].update(host_fields)
    path = tmp_path / "boards.yaml"
    path.write_text(yaml.safe_dump(profiles))
    return path


def test_a_board_profile_with_a_hostile_name_builds_inert_firmware(sine_model, tmp_path):
    require_tools("cc", "make")
    profiles = hostile_profiles(tmp_path, name='Host\n$(shell touch PWNED)\n*/ #error "x')
    env = {"TINYEDGE_BOARDS": str(profiles)}
    made = run_tinyedge("generate", sine_model.int8, "--board", "host", "--runtime", "aot", "-o", tmp_path / "p",
                        cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    built = run_tinyedge("build", tmp_path / "p", cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stderr
    no_pwned(tmp_path)


def test_a_board_profile_flag_make_would_run_is_refused(sine_model, tmp_path):
    profiles = hostile_profiles(tmp_path, cpu_flags=["-O2", "$(shell touch PWNED)"])
    result = run_tinyedge("generate", sine_model.int8, "--board", "host", "--runtime", "aot", "-o", tmp_path / "p",
                          cwd=tmp_path, env={"TINYEDGE_BOARDS": str(profiles)})
    assert result.returncode == 1, result.stderr
    assert "cannot be written into a Makefile" in " ".join(result.stderr.split())
    no_pwned(tmp_path)
