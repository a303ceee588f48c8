"""The shape of the package, read from its source: plug-ins (frameworks, flashers, runtimes) only plug in.
They import no stage and no sibling plug-in, the registry is the one list of their names, and every
registered plug-in loads and declares what its base class asks. No module (but the CLI's and the pytest
plug-in's, for start-up time) hides an import inside a function to dodge a cycle. Every op is one module
of tinyedge/ops/: the one place that declares it and prepares it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from tinyedge import boards, plugins
from tinyedge.boards import load_boards
from tinyedge.flashers import Flasher
from tinyedge.frameworks import Framework
from tinyedge.ops import registry as op_registry
from tinyedge.paths import FIRMWARE_DIR
from tinyedge.runtimes import FirmwareAllowance, Runtime
from tinyedge.tools import Tool

PACKAGE = Path(__file__).resolve().parent.parent / "tinyedge"
PLUGIN_PACKAGES = ("frameworks", "flashers", "runtimes")
STAGES = {f"tinyedge.{name}" for name in ("build", "generate", "flash", "validate", "deploy", "quantize", "emit")}
FLASHER_OPTIONS = {"icount", "firmware"}
# Collections of strings that happen to match plug-in names but name something else.
NOT_PLUGIN_LISTS = {"viper/board.py": "the profile's micropython.installer values (esptool, uf2)"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def plugin_module_paths() -> list[Path]:
    return sorted(p for package in PLUGIN_PACKAGES for p in (PACKAGE / package).glob("*.py"))


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """Every tinyedge module an import statement names (`from tinyedge.x import y` names tinyedge.x and,
    when y is a module, tinyedge.x.y), with the statement."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node))
            found += [(f"{node.module}.{alias.name}", node) for alias in node.names
                      if is_module(f"{node.module}.{alias.name}")]
    return [(name, node) for name, node in found if name.startswith("tinyedge")]


def registered_modules() -> dict[str, str]:
    """module -> plug-in kind, for every module the registry names."""
    return {target.split(":")[0]: kind for kind, registry in plugins.KINDS.items() for target in registry.values()}


def forbidden_import(importer: str, imported: str) -> str | None:
    """Why `importer` (a plug-in-package module) may not import `imported`, or None when it may: it may
    import the low modules, its own package (base classes, shared helpers) and the runtimes package's
    shared types, never a stage, a plug-in of another kind, or a sibling plug-in."""
    if imported in STAGES:
        return "a stage"
    importer_package = importer.split(".")[1]
    imported_parts = imported.split(".")
    if len(imported_parts) < 2 or imported_parts[1] not in PLUGIN_PACKAGES:
        return None
    if imported_parts[1] != importer_package:
        if imported == "tinyedge.runtimes":
            return None
        return "a framework" if imported_parts[1] == "frameworks" else f"a module of tinyedge.{imported_parts[1]}"
    if imported in registered_modules() and imported != importer:
        return "a sibling plug-in"
    return None


@pytest.mark.parametrize("path", plugin_module_paths(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_plugin_imports_no_stage_and_no_sibling_plugin(path):
    importer = module_name(path)
    problems = [f"line {node.lineno}: {name} is {why}" for name, node in imported_modules(ast.parse(path.read_text()))
                if (why := forbidden_import(importer, name))]
    assert not problems, f"{importer} imports " + "; ".join(problems)


# Modules that import some of tinyedge only when a function needs it, to keep their own start-up light.
LAZY_FOR_START_UP = {
    "cli.py": "each command imports the stages it runs (TensorFlow, NumPy) only when it runs",
    "pytest.py": "the pytest11 plug-in loads with every pytest run once tinyedge is installed",
}


def module_paths() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if str(p.relative_to(PACKAGE)) not in LAZY_FOR_START_UP)


@pytest.mark.parametrize("path", module_paths(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_hides_a_tinyedge_import_inside_a_function(path):
    tree = ast.parse(path.read_text())
    hidden = [f"{function.name}() imports {name} (line {node.lineno})"
              for function in ast.walk(tree) if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
              for name, node in imported_modules(function)]
    assert not hidden, "; ".join(hidden)


def test_the_rules_catch_what_they_are_for():
    assert forbidden_import("tinyedge.frameworks.espidf", "tinyedge.build") == "a stage"
    assert forbidden_import("tinyedge.frameworks.espidf", "tinyedge.flashers.esptool") == "a module of tinyedge.flashers"
    assert forbidden_import("tinyedge.flashers.bossac", "tinyedge.flashers.uf2") == "a sibling plug-in"
    assert forbidden_import("tinyedge.flashers.arduino_cli", "tinyedge.frameworks") == "a framework"
    assert forbidden_import("tinyedge.frameworks.avr", "tinyedge.frameworks.make") is None
    assert forbidden_import("tinyedge.flashers.qemu", "tinyedge.tools") is None
    assert forbidden_import("tinyedge.frameworks.avr", "tinyedge.runtimes") is None
    assert forbidden_import("tinyedge.runtimes.aot", "tinyedge.frameworks") == "a framework"
    code = "def f():\n    from tinyedge.flashers import uf2, Flasher\n"
    assert [name for name, _ in imported_modules(ast.parse(code).body[0])] == ["tinyedge.flashers", "tinyedge.flashers.uf2"]


def string_collections(tree: ast.AST) -> list[tuple[int, set[str]]]:
    """The literal tuples, lists, sets and dict keys made only of strings."""
    found = []
    for node in ast.walk(tree):
        items = node.keys if isinstance(node, ast.Dict) else node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else None
        if items and all(isinstance(i, ast.Constant) and isinstance(i.value, str) for i in items):
            found.append((node.lineno, {i.value for i in items}))
    return found


def test_the_registry_is_the_only_list_of_plugin_names():
    assert (boards.FRAMEWORKS, boards.FLASHERS, boards.RUNTIMES) == (plugins.FRAMEWORKS, plugins.FLASHERS, plugins.RUNTIMES)
    lists = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "plugins.py" or path.relative_to(PACKAGE).as_posix() in NOT_PLUGIN_LISTS:
            continue
        for line, names in string_collections(ast.parse(path.read_text())):
            for kind, registry in plugins.KINDS.items():
                if len(names) >= 2 and names <= set(registry):
                    lists.append(f"{path.relative_to(PACKAGE)}:{line} lists {kind} names {sorted(names)}")
    assert not lists, "; ".join(lists)


def registered(kind: str) -> list[tuple[str, object]]:
    return [(name, plugins.load(kind, name)) for name in getattr(plugins, kind.upper() + "S")]


def boards_using(field: str, name: str) -> list:
    return [b for b in load_boards().values() if getattr(b, field) == name]


@pytest.mark.parametrize("name, framework", registered("framework"), ids=lambda x: x if isinstance(x, str) else "")
def test_every_registered_framework_loads_and_declares_what_the_base_class_asks(name, framework):
    assert isinstance(framework, Framework) and framework.name == name
    assert not inspect.isabstract(type(framework))
    assert isinstance(framework.source_dir, str) and framework.source_dir
    assert isinstance(framework.allowance, FirmwareAllowance)
    assert isinstance(framework.stack_reserve_bytes, int) and framework.stack_reserve_bytes >= 0
    if framework.default_port:
        assert (FIRMWARE_DIR / "ports" / framework.default_port).is_dir()
    for board in boards_using("framework", name):
        assert all(isinstance(tool, Tool) for tool in framework.tools(board))


@pytest.mark.parametrize("name, flasher", registered("flasher"), ids=lambda x: x if isinstance(x, str) else "")
def test_every_registered_flasher_loads_and_declares_what_the_base_class_asks(name, flasher):
    assert isinstance(flasher, Flasher) and flasher.name == name
    assert not inspect.isabstract(type(flasher))
    assert flasher.options <= FLASHER_OPTIONS
    parameters = set(inspect.signature(flasher.flash).parameters)
    assert parameters >= {"project", "port", "progress"} | set(flasher.options)
    assert not (parameters & FLASHER_OPTIONS) - set(flasher.options), "flash() takes an option it does not declare"
    for board in boards_using("flasher", name):
        assert all(isinstance(tool, Tool) for tool in flasher.tools(board))
        assert isinstance(flasher.will_emulate(board, "/dev/ttyUSB7"), bool)


@pytest.mark.parametrize("name, runtime", registered("runtime"), ids=lambda x: x if isinstance(x, str) else "")
def test_every_registered_runtime_loads_and_declares_what_the_base_class_asks(name, runtime):
    assert isinstance(runtime, Runtime) and runtime.name == name
    assert not inspect.isabstract(type(runtime))
    assert set(inspect.signature(runtime.write_sources).parameters) >= {"model", "board", "out_dir", "checked"}
    assert any(name in board.runtimes for board in load_boards().values())


def test_a_missing_program_is_worded_in_one_place():
    sentence = "is not installed or not on PATH"
    writers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if sentence in p.read_text())
    assert writers == ["tools.py"]


def settings_read(module_path: Path) -> set[str]:
    """The section classes a module reads with `board.settings(Class)`."""
    tree = ast.parse(module_path.read_text())
    return {call.args[0].id for call in ast.walk(tree)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "settings"
            and call.args and isinstance(call.args[0], ast.Name)}


@pytest.mark.parametrize("kind, name", [(kind, name) for kind in ("framework", "flasher")
                                        for name in plugins.KINDS[kind]])
def test_a_plugin_reads_only_the_profile_sections_it_declares(kind, name):
    plugin = plugins.load(kind, name)
    module = inspect.getmodule(type(plugin))
    declared = {section.__name__ for section in plugin.sections}
    read = settings_read(Path(module.__file__))
    assert read <= declared, f"{name} reads {sorted(read - declared)} without declaring them in `sections`"


def test_no_module_reads_a_profile_section_as_a_raw_dict():
    """Profiles are typed: a Board has no raw `extra`/`section()` to read, and no module calls them."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in ("section", "emulator")
                    and isinstance(node.value, ast.Name) and node.value.id == "board"):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders
    assert not hasattr(load_boards()["qemu-cortex-m4"], "extra")


def op_declarations() -> dict[str, list[str]]:
    """module -> the op names it declares with `OpSupport("NAME", ...)`, for every module of the package."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "OpSupport" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                found.setdefault(module_name(path), []).append(node.args[0].value)
    return found


def test_every_op_is_declared_and_prepared_in_its_own_op_module():
    declared = op_declarations()
    op_modules = {module.__name__ for module in op_registry.OP_MODULES}
    assert set(declared) <= op_modules, f"ops declared outside tinyedge/ops/<op>.py: {sorted(set(declared) - op_modules)}"
    assert sorted(name for names in declared.values() for name in names) == sorted(op_registry.OPS)
    assert {name: module.__name__ for name, module in op_registry.PREPARED.items()} == {
        name: module for module, names in declared.items() for name in names}
