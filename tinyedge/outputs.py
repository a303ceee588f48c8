"""Files the user names for tinyedge to write: checked before the work starts, written whole or not
at all, and a failure to write is the user's to fix (one sentence), not a tinyedge bug."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Mapping

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


# ---------------------------------------------------------------- outputs never touch inputs

Named = Mapping[str, "str | os.PathLike[str] | None"]   # what the user calls it (a flag) -> its path


def guard_outputs(inputs: Named, outputs: Named, cleared: Named | None = None) -> None:
    """Refuse, before anything is read, written or removed, an output that would destroy an input
    or another output: an output file that is an input (the same path, a link to it or a hard link
    of it) or lies inside an input directory, two outputs naming one file, or a directory the
    command may empty (`cleared`) that holds an input. Every stage calls it with its own paths."""
    given_inputs = present(inputs)
    given_outputs = present(outputs)
    for flag, path in given_outputs:
        for in_flag, in_path in given_inputs:
            if same_file(path, in_path) or (in_path.is_dir() and inside(path, in_path)):
                raise overwrites_input(flag, path, in_flag, in_path)
    for i, (flag, path) in enumerate(given_outputs):
        for other_flag, other in given_outputs[i + 1:]:
            if same_file(path, other) and not is_special(path):   # two reports to /dev/stdout are fine
                raise TinyedgeError(f"{flag} and {other_flag} both name {path}: give each output its own file.")
    for flag, directory in present(cleared or {}):
        for in_flag, in_path in given_inputs:
            if inside(in_path, directory) or same_file(in_path, directory):
                raise TinyedgeError(f"{in_flag} {in_path} is inside {flag} {directory}, which this command may empty: "
                                    "move it out or give another output directory.")


def overwrites_input(flag: str, path: Path, in_flag: str, in_path: Path) -> TinyedgeError:
    what = "the same file as" if same_file(path, in_path) else "inside"
    return TinyedgeError(f"{flag} {path} is {what} {in_flag} {in_path}, which this command reads: "
                         f"give {flag} another path (tinyedge never writes over its inputs).")


def present(named: Named) -> list[tuple[str, Path]]:
    """The named paths given (a flag that takes several, e.g. --data per input, once per path)."""
    found = []
    for flag, value in named.items():
        for path in value if isinstance(value, (list, tuple)) else [value]:
            if path is not None and str(path) != "":
                found.append((flag, Path(path)))
    return found


def real(path: Path) -> Path:
    return Path(os.path.realpath(path.expanduser()))


def same_file(a: Path, b: Path) -> bool:
    """One file: the same path once links are followed, or the same inode (a hard link)."""
    if real(a) == real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:   # one of them does not exist yet
        return False


def is_special(path: Path) -> bool:
    """A device or a pipe (/dev/stdout, /dev/null, a FIFO): written through, never destroyed."""
    return path.exists() and not path.is_file() and not path.is_dir()


def inside(path: Path, directory: Path) -> bool:
    """`path` is strictly below `directory`, once links are followed."""
    return real(directory) in real(path).parents
