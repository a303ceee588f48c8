"""External programs: what one is (`Tool`), finding it, asking its version, and running it for a build
or an upload. Every "not installed" error is worded here, once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyedge.events import ProgressCallback
from tinyedge.errors import DeviceError, TinyedgeError

BUILD_LOG = "build/build.log"
PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s?%")



@dataclass(frozen=True)
class Tool:
    """An external program a framework or flasher needs, and the line that installs it."""
    name: str
    command: str
    install: str
    version_args: tuple[str, ...] = ("--version",)
    # A library rather than a program (an npm package): present when this file exists; its version is
    # read from the file (package.json). `command` then only names it.
    file: str = ""


ARDUINO_CLI_INSTALL = ("install arduino-cli (curl -fsSL https://raw.githubusercontent.com/arduino/arduino-cli/master/"
                       "install.sh | BINDIR=~/.local/bin sh) and run `arduino-cli core update-index`")
ARDUINO_CLI = Tool("arduino-cli", "arduino-cli", ARDUINO_CLI_INSTALL, ("version",))


def how_to_install(install: str) -> str:
    """An install line as the end of a sentence: a phrase stays as it is, a command is quoted."""
    if not install:
        return "install it and try again"
    return install if install.startswith("install ") else f"install it with `{install}`"


def missing_tool(command: str, install: str = "", needed_for: str = "") -> TinyedgeError:
    """The one sentence for a program that cannot be found."""
    needed = f" (needed for {needed_for})" if needed_for else ""
    return TinyedgeError(f"{command} is not installed or not on PATH{needed}: {how_to_install(install)}.")


def tool_path(tool: Tool) -> str | None:
    if tool.file:
        return tool.file if os.path.isfile(tool.file) else None
    return shutil.which(tool.command)


def require_tool(tool: Tool, needed_for: str = "") -> str:
    path = tool_path(tool)
    if path is None:
        raise missing_tool(tool.command, tool.install, needed_for)
    return path


def require_tools(tools: Sequence[Tool], needed_for: str = "") -> list[str]:
    return [require_tool(tool, needed_for) for tool in tools]


def tool_version(tool: Tool, timeout_s: float = 20.0) -> str | None:
    """The first line the tool prints for its version arguments, or None when it is missing or fails."""
    path = tool_path(tool)
    if path is None:
        return None
    if tool.file:
        return _version_line([line.strip() for line in Path(path).read_text(errors="replace").splitlines()
                              if '"version"' in line])
    try:
        done = subprocess.run([path, *tool.version_args], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    if not lines:
        return "ok" if done.returncode == 0 else None
    return _version_line(lines)


def _version_line(lines: list[str]) -> str | None:
    if not lines:
        return None
    # A dotted number first: licence blurbs ("GPL version 3 or later") follow the real version line.
    for pattern in (r"\d+\.\d+", r"version\s*:?\s*v?\d"):
        for line in lines:
            if re.search(pattern, line, re.IGNORECASE):
                return line
    return lines[0]


def run_build_step(command: Sequence[str], cwd: Path, log: Path, what: str,
                   env: dict[str, str] | None = None) -> None:
    """Run one step of a vendor build, its output appended to `log`; a failure names the log and its last lines."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        try:
            done = subprocess.run(list(command), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, **(env or {})})
        except FileNotFoundError:
            raise missing_tool(command[0]) from None
    if done.returncode != 0:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-3:]
        raise TinyedgeError(f"{what} failed (exit {done.returncode}; {' / '.join(tail)}): see {log} for the full output.")


def run_make(project_dir: Path, targets: list[str], what: str) -> None:
    """`make` in the project with the log kept in build/build.log; a failure names the first error line."""
    log_path = project_dir / BUILD_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    jobs = str(max(1, os.cpu_count() or 1))
    result = subprocess.run(["make", "-j", jobs, *targets], cwd=project_dir, capture_output=True, text=True)
    log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        lines = (result.stderr + result.stdout).splitlines()
        first = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "no output")
        raise TinyedgeError(f"the {what} build failed ({first.strip()[:300]}): fix it and run the build again "
                            f"(full log: {log_path}).")


def run_with_progress(command: Sequence[str], cwd: Path, what: str, progress: ProgressCallback | None,
                      timeout_s: float = 300.0) -> list[str]:
    """Run an uploader, turning the percentages it prints into progress calls; its lines are returned.
    A failure raises DeviceError naming the uploader's last words."""
    lines: list[str] = []
    try:
        process = subprocess.Popen(list(command), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        raise missing_tool(command[0]) from None
    assert process.stdout is not None
    pending = b""
    while chunk := process.stdout.read1(4096):
        pending += chunk
        *complete, pending = re.split(rb"[\r\n]", pending)
        for raw in complete:
            _take_line(raw.decode(errors="replace").strip(), lines, what, progress)
    _take_line(pending.decode(errors="replace").strip(), lines, what, progress)
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        raise DeviceError(f"{what} did not finish within {timeout_s:.0f} s: reset the board and flash again.") from None
    if code != 0:
        tail = " / ".join(lines[-3:]) or "no output"
        raise DeviceError(f"{what} failed (exit {code}; {tail}): check the port and the board, then flash again.")
    return lines


def _take_line(line: str, lines: list[str], what: str, progress: ProgressCallback | None) -> None:
    if not line:
        return
    lines.append(line)
    match = PERCENT.search(line)
    if match and progress is not None:
        progress(min(100, int(float(match.group(1)))), 100, what)
