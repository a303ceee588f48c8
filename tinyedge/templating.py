"""The one Jinja environment over templates/, and writing generated files only when they change
(so a regenerated project rebuilds only what changed)."""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from tinyedge.paths import TEMPLATES_DIR


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)


def render(template: str, **context: Any) -> str:
    """templates/<template> rendered with `context`, e.g. render("common/main.c.j2", board=board)."""
    return environment().get_template(template).render(**context)


def render_file(path: Path, **context: Any) -> str:
    """A template that lives outside templates/ (a port's linker script), rendered with the same settings."""
    return environment().from_string(path.read_text()).render(**context)


def render_to(target: Path, template: str, **context: Any) -> Path:
    """Render a template into `target`, written whether or not it changed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(template, **context))
    return target


def write_if_changed(path: Path, text: str) -> None:
    """Leave an identical file untouched."""
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def copy_if_changed(source: Path, dest: Path) -> None:
    if dest.is_file() and dest.read_bytes() == source.read_bytes():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
