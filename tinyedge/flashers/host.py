"""The `host` flasher: run the built native firmware; it opens a pseudo-terminal and says
`tinyedge: serving on /dev/pts/N`, which is the URL yielded. The program is owned like QEMU."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tinyedge.errors import TinyedgeError
from tinyedge.flashers import Flasher, ProgressCallback
from tinyedge.processes import serving
from tinyedge.project import Project

SERVING_MARKER = "tinyedge: serving on "


class HostFlasher(Flasher):
    name = "host"
    emulates = True

    @contextmanager
    def flash(self, project: Project, port: str | None,
              progress: ProgressCallback | None = None) -> Iterator[str]:
        if port:
            raise TinyedgeError("the host board runs the firmware as a local program and has no serial port: drop --port.")
        program = project.artifact("elf")
        if progress:
            progress(0, 1, f"starting {program.name}")
        with serving([str(program)], SERVING_MARKER, 10.0, f"the host firmware {program}", cwd=project.dir) as url:
            if progress:
                progress(1, 1, "running")
            yield url


FLASHER = HostFlasher()
