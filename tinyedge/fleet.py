"""`tinyedge fleet`: every board of a labgrid lab — what each runs (`fleet status`), and a staged
rollout of a bundle (`fleet update`): canaries first, each updated board validated with the
bundle's vectors, then the rest K at a time; the rollout stops at the first failure and rolls that
board back. Every place is acquired for its own step only and released on every way out
(tinyedge.places.acquired_place). One row per place, as JSON and JUnit."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from tinyedge.bundle import Bundle
from tinyedge.errors import TinyedgeError
from tinyedge.outputs import write_atomically
from tinyedge.paths import cache_dir
from tinyedge.places import Lease, PlaceSummary, acquired_place, coordinator_address, list_places
from tinyedge.protocol import Device
from tinyedge.telemetry import read_status
from tinyedge.update import one_update_at_a_time, rollback, update_board

VALIDATIONS_FILE = "fleet-validations.json"


@dataclass
class PlaceRow:
    place: str
    board: str | None = None
    result: str = "pending"          # status: ok | unreachable; update: updated | failed | rolled-back | skipped
    model_version: int | None = None
    model_sha256: str | None = None
    slot: int | None = None
    previous_version: int | None = None
    last_validation: dict[str, Any] | None = None
    why: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FleetReport:
    coordinator: str
    rows: list[PlaceRow] = field(default_factory=list)
    bundle_version: int | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> list[PlaceRow]:
        return [r for r in self.rows if r.result in ("failed", "rolled-back", "unreachable")]

    def as_dict(self) -> dict[str, Any]:
        return {"coordinator": self.coordinator, "bundle_version": self.bundle_version, "seconds": round(self.seconds, 2),
                "passed": not self.failed, "places": [r.as_dict() for r in self.rows]}


def parse_match(matches: list[str]) -> dict[str, str]:
    wanted = {}
    for item in matches:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise TinyedgeError(f"--match takes KEY=VALUE, such as board=host (got {item!r}).")
        wanted[key] = value
    return wanted


def matching_places(coordinator: str | None, matches: list[str]) -> list[PlaceSummary]:
    wanted = parse_match(matches)
    places = [p for p in list_places(coordinator) if all(p.tags.get(k) == v for k, v in wanted.items())]
    if not places:
        raise TinyedgeError(f"no labgrid place matches {' '.join(matches) or 'anything'}: tag the places with "
                            "`labgrid-client -p PLACE set-tags KEY=VALUE`.")
    return places


# One labgrid session at a time in this process (the coordinator takes one client's concurrent
# sessions badly); the boards themselves are worked on in parallel.
_labgrid_lock = threading.Lock()


@contextlib.contextmanager
def held(place: str, coordinator: str) -> Iterator[Lease]:
    """acquired_place, with its acquire and its release serialized across threads."""
    lease_context = acquired_place(place, coordinator)
    with _labgrid_lock:
        lease = lease_context.__enter__()
    try:
        yield lease
    except BaseException as exc:
        with _labgrid_lock:
            if not lease_context.__exit__(type(exc), exc, exc.__traceback__):
                raise
    else:
        with _labgrid_lock:
            lease_context.__exit__(None, None, None)


# ---- the last validation of each place, kept on this host ----

_validations_lock = threading.Lock()


def _validations_path() -> Path:
    return cache_dir() / VALIDATIONS_FILE


def _load_validations() -> dict[str, Any]:
    try:
        return json.loads(_validations_path().read_text())
    except (OSError, ValueError):
        return {}


def _record_validation(coordinator: str, place: str, entry: dict[str, Any]) -> None:
    with _validations_lock:
        known = _load_validations()
        known[f"{coordinator}/{place}"] = entry
        _validations_path().write_text(json.dumps(known, indent=2, sort_keys=True))


# ---- status ----

def _status_row(place: str, coordinator: str, known: dict[str, Any]) -> PlaceRow:
    row = PlaceRow(place, last_validation=known.get(f"{coordinator}/{place}"))
    started = time.monotonic()
    try:
        with held(place, coordinator) as lease, Device(lease.url) as device:
            status = read_status(device).as_dict()
        row.board, row.model_version, row.model_sha256, row.slot = (
            status["board"], status["model_version"], status["model_sha256"], status["slot"])
        row.result = "ok"
    except TinyedgeError as exc:
        row.result, row.why = "unreachable", str(exc)
    row.seconds = round(time.monotonic() - started, 2)
    return row


def fleet_status(coordinator: str | None, matches: list[str], parallel: int = 4) -> FleetReport:
    address = coordinator_address(coordinator)
    started = time.monotonic()
    places = matching_places(address, matches)
    known = _load_validations()
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        rows = list(pool.map(lambda p: _status_row(p.name, address, known), places))
    return FleetReport(address, rows, seconds=time.monotonic() - started)


# ---- update ----

def validate_with_vectors(device: Device, bundle: Bundle) -> str | None:
    """Run the bundle's self-test inputs as live inferences; None when every output is exact."""
    for index, (x, expected) in enumerate(zip(bundle.inputs, bundle.outputs)):
        device.reset_state()
        if device.infer(x).output != expected:
            return f"its outputs for vector {index} differ from the host reference's"
    return None


def _update_row(place: str, coordinator: str, bundle: Bundle, allow_downgrade: bool) -> PlaceRow:
    row = PlaceRow(place)
    started = time.monotonic()
    try:
        with held(place, coordinator) as lease, one_update_at_a_time(lease.url), Device(lease.url) as device:
            _update_and_validate(device, bundle, allow_downgrade, row, coordinator)
    except TinyedgeError as exc:
        if row.result == "pending":
            row.result = "unreachable" if row.board is None else "failed"
        row.why = row.why or str(exc)
    row.seconds = round(time.monotonic() - started, 2)
    return row


def _update_and_validate(device: Device, bundle: Bundle, allow_downgrade: bool, row: PlaceRow,
                         coordinator: str) -> None:
    before = read_status(device)
    row.board, row.previous_version = before.info.board_id, before.stats.model_version
    report = update_board(device, bundle, allow_downgrade)
    mismatch = validate_with_vectors(device, bundle)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _record_validation(coordinator, row.place, {"when": now, "version": bundle.version,
                                                "vectors": len(bundle.inputs), "passed": mismatch is None})
    if mismatch is not None:
        after = rollback(device)
        row.result, row.why = "rolled-back", f"version {bundle.version} failed validation ({mismatch}): rolled back"
        row.model_version, row.model_sha256, row.slot = after.model_version, after.model_sha256, after.slot
        return
    row.result, row.slot = "updated", report.slot
    row.model_version, row.model_sha256 = report.version, report.model_sha256


def fleet_update(bundle: Bundle, coordinator: str | None, matches: list[str], canary: int = 1, parallel: int = 1,
                 allow_downgrade: bool = False, progress: Callable[[PlaceRow], None] | None = None) -> FleetReport:
    """Roll `bundle` out to every matching place: `canary` places one by one first, then the rest
    `parallel` at a time; no new place is started after a failure (those rows say `skipped`)."""
    if canary < 0 or parallel < 1:
        raise TinyedgeError("--canary must be 0 or more and --parallel at least 1.")
    address = coordinator_address(coordinator)
    started = time.monotonic()
    places = [p.name for p in matching_places(address, matches)]
    rows = {name: PlaceRow(name, result="skipped") for name in places}
    waves = [[name] for name in places[:canary]]
    rest = places[canary:]
    waves += [rest[i:i + parallel] for i in range(0, len(rest), parallel)]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for wave in waves:
            for row in pool.map(lambda name: _update_row(name, address, bundle, allow_downgrade), wave):
                rows[row.place] = row
                if progress:
                    progress(row)
            if any(rows[name].result != "updated" for name in wave):
                break
    for row in rows.values():
        if row.result == "skipped":
            row.why = "not started: the rollout stopped at the first failure"
    return FleetReport(address, [rows[name] for name in places], bundle.version, time.monotonic() - started)


def write_fleet_reports(report: FleetReport, json_path: Path | None, junit_path: Path | None) -> None:
    if json_path:
        write_atomically(json_path, (json.dumps(report.as_dict(), indent=2) + "\n").encode(), "--json")
    if junit_path:
        suite = ET.Element("testsuite", name="tinyedge fleet", tests=str(len(report.rows)),
                           failures=str(len(report.failed)),
                           skipped=str(sum(r.result == "skipped" for r in report.rows)), time=f"{report.seconds:.2f}")
        for row in report.rows:
            case = ET.SubElement(suite, "testcase", classname="fleet", name=row.place, time=f"{row.seconds:.2f}")
            properties = ET.SubElement(case, "properties")
            for key in ("board", "model_version", "model_sha256", "slot", "previous_version"):
                ET.SubElement(properties, "property", name=key, value=str(getattr(row, key)))
            if row.result == "skipped":
                ET.SubElement(case, "skipped", message=row.why or "")
            elif row.result in ("failed", "rolled-back", "unreachable"):
                ET.SubElement(case, "failure", message=row.why or row.result)
        write_atomically(junit_path, ET.tostring(suite, encoding="utf-8", xml_declaration=True), "--junit")
