"""Files the user names for tinyedge to write: checked before the work starts, written whole or not
at all, and a failure to write is the user's to fix (one sentence), not a tinyedge bug."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from tinyedge.errors import TinyedgeError


def cannot_write(path: Path, flag: str, exc: OSError) -> TinyedgeError:
    reason = exc.strerror or type(exc).__name__
    return TinyedgeError(f"cannot write {flag} {path} ({reason.lower()}): give a path in a writable directory.")


def check_output_file(path: Path, flag: str) -> Path:
    """Refuse, before any work and without creating anything, an output file that cannot be
    written: a path inside a file, a directory where a file is wanted, an unwritable directory."""
    if path.is_dir():
        raise TinyedgeError(f"{flag} {path} is a directory: give a file name, e.g. {path / 'report'}{path.suffix or ''}.")
    if not path.parent.is_dir():
        check_can_create(path, flag)   # its directories are made when it is written
        return path
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as exc:
        raise cannot_write(path, flag, exc) from None
    if not existed:
        path.unlink()
    return path


def check_output_dir(path: Path, flag: str) -> Path:
    """Refuse an output directory that cannot be made or written to, without creating it."""
    if path.exists() and not path.is_dir():
        raise TinyedgeError(f"{flag} {path} is a file: give a directory (it is created when missing).")
    check_can_create(path, flag)
    return path


def check_can_create(path: Path, flag: str) -> None:
    """The nearest existing directory above `path` (or `path` itself) accepts new files."""
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise TinyedgeError(f"{flag} {path} is inside the file {existing}: give a path in a directory.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise cannot_write(path, flag, exc) from None


def is_plain_file(path: Path) -> bool:
    """A regular file, not a link: what may be removed and replaced. A link or a special file
    (`--json /dev/stdout`, a FIFO) is written through and never replaced."""
    return path.is_file() and not path.is_symlink()


def remove_stale(path: Path, flag: str) -> None:
    """Remove a previous run's report, so no exit path can leave it describing this run."""
    if not is_plain_file(path):
        return
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise cannot_write(path, flag, exc) from None


def write_atomically(path: Path, content: str | bytes, flag: str = "") -> None:
    """Write through a temporary file renamed over `path`: a reader (or an interruption) sees the
    old file or the whole new one, never a half-written one."""
    data = content.encode() if isinstance(content, str) else content
    if path.exists() and not is_plain_file(path):
        try:
            with path.open("wb") as out:
                out.write(data)
        except OSError as exc:
            raise cannot_write(path, flag or "the file", exc) from None
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise cannot_write(path, flag or "the file", exc) from None
    try:
        os.fchmod(handle, 0o666 & ~current_umask())  # as an ordinary open() would create it
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        raise cannot_write(path, flag or "the file", exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
