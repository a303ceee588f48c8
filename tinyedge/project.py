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
class Project:
    dir: Path
    board_id: str
    runtime: str
    model_name: str
    model_sha256: str
    arena_bytes: int
    ops: list[str]
    tflm_dir: str | None = None
    elf: str | None = None          # set by build: the firmware image, relative to dir
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def board(self) -> Board:
        return get_board(self.board_id)

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST

    @property
    def elf_path(self) -> Path | None:
        return self.dir / self.elf if self.elf else None

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
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise TinyedgeError(f"{path} is damaged ({exc}): generate the project again.") from None
