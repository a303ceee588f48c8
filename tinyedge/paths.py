"""Where tinyedge's data lives: board profiles, Jinja templates and static firmware sources, all package
data (`pip install`, a wheel and `pipx install` carry them), found through importlib.resources."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

# The compilers and Jinja read these as files: an installed package is a folder on disk (not a zip).
PACKAGE_DIR = Path(str(resources.files("tinyedge")))
TEMPLATES_DIR = PACKAGE_DIR / "templates"
FIRMWARE_DIR = PACKAGE_DIR / "firmware"
HOST_TOOLS_DIR = FIRMWARE_DIR / "host_tools"


def boards_file() -> Path:
    return Path(os.environ.get("TINYEDGE_BOARDS", PACKAGE_DIR / "boards.yaml"))


def cache_dir() -> Path:
    """Per-user cache for compiled TFLM objects and host tools, shared by every project."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinyedge"
    path = Path(os.environ.get("TINYEDGE_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def tflm_dir_from_env() -> Path | None:
    value = os.environ.get("TINYEDGE_TFLM_DIR")
    return Path(value) if value else None
