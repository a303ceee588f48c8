"""A generated firmware project: a directory plus `tinyedge.json`, which build and flash read."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinyedge.boards import Board, get_board
from tinyedge.errors import TinyedgeError

MANIFEST = "tinyedge.json"


@dataclass
class Artifact:
    """One file the build made, by role ("elf", "bin", "hex", "uf2", "app"...): its path relative to the
    project, and the flash address it is written at where the flasher needs one."""
    path: str
    offset: int | None = None


@dataclass
class Project:
    dir: Path
    board_id: str
    runtime: str
    model_name: str
    model_sha256: str
    arena_bytes: int
    ops: list[str]
    tflm_dir: str | None = None
    artifacts: dict[str, Artifact] = field(default_factory=dict)   # written by `tinyedge build` only
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def board(self) -> Board:
        return get_board(self.board_id)

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST

    @property
    def elf_path(self) -> Path | None:
        """The firmware image the build made, or None before a build."""
        return self.dir / self.artifacts["elf"].path if "elf" in self.artifacts else None

    def has_artifact(self, role: str) -> bool:
        return role in self.artifacts and (self.dir / self.artifacts[role].path).is_file()

    def artifact(self, role: str) -> Path:
        """The built file for `role`; an unbuilt project (or one whose outputs are gone) says to build it."""
        if not self.has_artifact(role):
            raise TinyedgeError(f"{self.dir} has not been built: run `tinyedge build {self.dir}` first.")
        return self.dir / self.artifacts[role].path

    def artifact_offset(self, role: str) -> int:
        offset = self.artifacts[role].offset if role in self.artifacts else None
        if offset is None:
            raise TinyedgeError(f"{self.dir} has not been built: run `tinyedge build {self.dir}` first.")
        return offset

    def save(self) -> None:
        data = asdict(self)
        data["dir"] = None
        self.manifest_path.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "Project":
        directory = Path(directory)
        path = directory / MANIFEST
        if not path.is_file():
            raise TinyedgeError(
                f"{directory} is not a tinyedge project (no {MANIFEST}): create one with "
                "`tinyedge generate MODEL.tflite --board ID -o DIR`."
            )
        try:
            data = json.loads(path.read_text())
            data["dir"] = directory
            data.pop("elf", None)   # an older build record: without `artifacts` the project reads as unbuilt
            data["artifacts"] = {role: Artifact(**a) for role, a in data.get("artifacts", {}).items()}
            return cls(**data)
        except (json.JSONDecodeError, TypeError, AttributeError) as exc:
            raise TinyedgeError(f"{path} is damaged ({exc}): generate the project again.") from None
