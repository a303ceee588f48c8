"""pytest plugin for rigs: a `tinyedge_board` fixture and `assert_validates`, so a rig's own pytest
suite (and its JUnit XML) carries tinyedge's verdicts.

    pytest --tinyedge-port rfc2217://lab:4001 --junitxml=report.xml
    pytest --tinyedge-place uno-3 --tinyedge-coordinator lab:20408
    pytest --tinyedge-firmware fw          # a built project: flashed (or its emulator started) once

    def test_keyword_model_runs_on_the_board(tinyedge_board):
        report = tinyedge_board.assert_validates("kws_int8.tflite", "kws_test_x.npy", labels="kws_test_y.npy")
        assert report.accuracy["board"] > 0.9

Registered as a `pytest11` entry point, so installing tinyedge is enough. A test that asks for
`tinyedge_board` when no board was given is skipped, saying which option to pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

OPTIONS = (
    ("--tinyedge-board", "ID", "board id from `tinyedge boards` that the rig holds (checked against the device's INFO)"),
    ("--tinyedge-port", "URL", "the board's serial port: a path, socket://host:port or rfc2217://host:port"),
    ("--tinyedge-place", "NAME", "a labgrid place to acquire for the session (its NetworkSerialPort is used)"),
    ("--tinyedge-coordinator", "HOST:PORT", "labgrid coordinator for --tinyedge-place (default: $LG_COORDINATOR)"),
    ("--tinyedge-firmware", "DIR", "a built tinyedge project to flash first (emulated boards run for the session)"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tinyedge", "tinyedge: validate models on a real (or emulated) board")
    for flag, metavar, help_text in OPTIONS:
        group.addoption(flag, metavar=metavar, default=None, help=help_text)


def pytest_report_header(config: pytest.Config) -> str | None:
    given = [f"{flag}={config.getoption(flag)}" for flag, _, _ in OPTIONS if config.getoption(flag)]
    return f"tinyedge: {' '.join(given)}" if given else None


@dataclass
class TinyedgeBoard:
    """The board a rig's tests run on: its serial URL, and what was asked for on the command line."""

    port: str
    board: str | None = None
    place: str | None = None
    record_property: Callable[[str, object], None] | None = None

    def assert_validates(self, model: str | Path, data: Any, labels: Any = None, **options: Any) -> Any:
        """Validate `model` on this board (see the module function); returns the ValidationReport."""
        options.setdefault("board", self.board)
        options.setdefault("record_property", self.record_property)
        return assert_validates(model, data, labels, port=self.port, **options)


def assert_validates(model: str | Path, data: Any, labels: Any = None, *, port: str, board: str | None = None,
                     tolerance_lsb: int = 0, float_model: str | Path | None = None, baud: int | None = None,
                     journal: str | Path | None = None,
                     record_property: Callable[[str, object], None] | None = None) -> Any:
    """Run `data` (an array or a .npy path) through `model` on the device at `port` and fail the
    calling test with tinyedge's one-sentence verdict unless every sample ran and matched the host
    reference within `tolerance_lsb`. The report's figures become the test's JUnit properties."""
    from tinyedge.errors import TinyedgeError
    from tinyedge.validate import validate

    arrays, label_array = _array(data, "validation data"), _array(labels, "labels")
    journal_path = Path(journal) if journal else _fresh_journal()
    try:
        report = validate(port, model, arrays, label_array, float_model, tolerance_lsb, journal_path, False, baud)
    except TinyedgeError as exc:
        pytest.fail(f"tinyedge could not validate {model} on {port}: {exc}", pytrace=False)
    if record_property is not None:
        for key in ("board", "runtime", "model_sha256", "samples", "bit_exact", "max_abs_diff_lsb", "passed"):
            record_property(f"tinyedge_{key}", getattr(report, key))
    failure = verdict_failure(report, board, journal_path)
    if failure:
        pytest.fail(failure, pytrace=False)
    return report


def verdict_failure(report: Any, board: str | None, journal: Path) -> str | None:
    """The sentence that fails the test, or None for a pass."""
    if board and report.board != board:
        return f"the device answered as board {report.board}, not {board}: check the rig's wiring or --tinyedge-board."
    if report.interrupted or report.samples != report.requested_samples:
        return f"only {report.samples} of {report.requested_samples} samples ran on {report.board}: see {journal}."
    if not report.passed:
        return (f"{len(report.failures)} of {report.samples} samples differ from the host reference by more than "
                f"{report.tolerance_lsb} LSB (max {report.max_abs_diff_lsb}) on {report.board}: see {journal}.")
    return None


def _array(value: Any, what: str) -> Any:
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        from tinyedge.quantize import load_array

        return load_array(Path(value), what)
    import numpy as np

    return np.asarray(value)


def _fresh_journal() -> Path:
    import tempfile

    handle = tempfile.NamedTemporaryFile(prefix="tinyedge-validate-", suffix=".jsonl", delete=False)
    handle.close()
    Path(handle.name).unlink()
    return Path(handle.name)


@contextlib.contextmanager
def _session_port(config: pytest.Config) -> Iterator[tuple[str, str | None]]:
    """(URL, place) of the board for the session: flash first, acquire a place, or use the port given."""
    from tinyedge.errors import TinyedgeError

    port, place = config.getoption("--tinyedge-port"), config.getoption("--tinyedge-place")
    firmware, board = config.getoption("--tinyedge-firmware"), config.getoption("--tinyedge-board")
    if port and place:
        raise pytest.UsageError("give --tinyedge-port or --tinyedge-place, not both.")
    try:
        with contextlib.ExitStack() as stack:
            if place:
                from tinyedge.places import acquired_place

                port = stack.enter_context(acquired_place(place, config.getoption("--tinyedge-coordinator"))).url
            if firmware:
                from tinyedge.flash import flash

                port = stack.enter_context(flash(Path(firmware), port))
            if not port and board:
                from tinyedge.boards import get_board
                from tinyedge.ports import find_board_port

                port = find_board_port(get_board(board))
            if not port:
                pytest.skip("no tinyedge board given: pass --tinyedge-port, --tinyedge-place, --tinyedge-firmware "
                            "or --tinyedge-board.")
            yield port, place
    except TinyedgeError as exc:
        pytest.fail(f"tinyedge could not reach the board: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def tinyedge_session_port(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None]]:
    """The board's URL for the whole session (a place stays acquired, an emulator keeps running)."""
    with _session_port(request.config) as found:
        yield found


@pytest.fixture
def tinyedge_board(request: pytest.FixtureRequest, tinyedge_session_port: tuple[str, str | None]) -> TinyedgeBoard:
    """The rig's board; `tinyedge_board.assert_validates(model, data)` records its figures on this test."""
    port, place = tinyedge_session_port
    return TinyedgeBoard(port=port, board=request.config.getoption("--tinyedge-board"), place=place,
                         record_property=lambda name, value: request.node.user_properties.append((name, value)))
