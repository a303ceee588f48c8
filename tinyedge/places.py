"""labgrid places: hold a lab's board for the length of one command.

A labgrid lab runs a coordinator; exporters on the machines that hold boards publish each board's
serial port (served by ser2net as a `NetworkSerialPort`); a *place* groups one board's resources
and is acquired by one user at a time. `acquired_place` acquires the place through labgrid's own
client session (gRPC, labgrid >= 24), resolves its NetworkSerialPort to a pyserial URL
(`rfc2217://host:port`, or `socket://` for a raw port), and releases the place on every way out —
errors, Ctrl-C and SIGTERM included. A place this user already holds is used and left held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.events import Say

DEFAULT_COORDINATOR = "127.0.0.1:20408"   # labgrid's own default
SERIAL_PORT_WAIT_S = 10.0


@dataclass
class Lease:
    place: str
    coordinator: str
    url: str
    acquired_here: bool   # False: this user already held the place, so it stays held afterwards
    released: bool = False


def coordinator_address(coordinator: str | None = None) -> str:
    """--coordinator, else $LG_COORDINATOR, else labgrid's default; HOST or HOST:PORT."""
    address = coordinator or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR
    host, colon, port = address.rpartition(":") if not address.endswith("]") else ("", "", "")
    if colon and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        origin = "--coordinator" if coordinator else "LG_COORDINATOR"
        raise TinyedgeError(f"{origin} must be HOST:PORT, such as lab:20408 (got {address!r}).")
    return address


@contextlib.contextmanager
def acquired_place(place: str, coordinator: str | None = None,
                   wait_s: float = SERIAL_PORT_WAIT_S) -> Iterator[Lease]:
    """Hold `place` while the body runs; yields its serial port URL in a Lease."""
    address = coordinator_address(coordinator)
    with _released_on_sigterm():
        attempt = _Attempt()
        try:
            with _session(address, place) as session:
                _acquire(session, place, address, attempt)
                url = _serial_url(session, place, address, wait_s)
        except BaseException:
            if attempt.acquiring:
                _release_quietly(place, address)
            raise
        lease = Lease(place, address, url, attempt.acquiring)
        try:
            yield lease
        except BaseException:
            if attempt.acquiring:
                lease.released = _release_quietly(place, address)
            raise
        if attempt.acquiring:
            _release(place, address)
            lease.released = True


@dataclass
class _Attempt:
    acquiring: bool = False   # set just before the acquire request goes out: from then on, release


@contextlib.contextmanager
def port_or_place(port: str | None, place: str | None, coordinator: str | None = None,
                  say: Say | None = None) -> Iterator[str | None]:
    """The CLI's --port/--place pair: the port as given, or the held place's serial URL."""
    if port and place:
        raise TinyedgeError("give --port or --place, not both.")
    if coordinator and not place:
        raise TinyedgeError("--coordinator only applies with --place: add --place NAME or drop it.")
    if not place:
        yield port
        return
    lease: Lease | None = None
    try:
        with acquired_place(place, coordinator) as lease:
            if say:
                held = "holding" if lease.acquired_here else "using (already held by you)"
                say(f"{held} labgrid place {lease.place} via {lease.coordinator}: {lease.url}")
            yield lease.url
    finally:
        if say and lease is not None and lease.acquired_here:
            say(f"released labgrid place {lease.place}" if lease.released else
                f"could not release labgrid place {lease.place}: run `labgrid-client -p {lease.place} release`")


@dataclass(frozen=True)
class PlaceSummary:
    name: str
    tags: dict[str, str]
    acquired: str | None   # who holds it, or None


def list_places(coordinator: str | None = None) -> list[PlaceSummary]:
    """Every place on the coordinator, by name, with its tags (`labgrid-client -p P set-tags KEY=VALUE`)."""
    address = coordinator_address(coordinator)
    with _session(address, "") as session:
        places = [PlaceSummary(p.name, dict(p.tags), p.acquired or None) for p in session.places.values()]
    return sorted(places, key=lambda p: p.name)


# ---------------------------------------------------------------- labgrid session


@contextlib.contextmanager
def _session(address: str, place: str) -> Iterator[Any]:
    """A labgrid ClientSession on its own event loop, its log and prints kept off our output."""
    try:
        from labgrid.remote.client import Error, start_session
    except ImportError:
        raise TinyedgeError("--place needs labgrid: install it with `pip install 'tinyedge[labgrid]'`.") from None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)   # grpc.aio binds its channel to the current loop
    previous_disable = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    session = None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                session = start_session(address, loop=loop, extra={
                    "args": argparse.Namespace(place=place, allow_unmatched=False, kick=False)})
            except (Error, OSError) as exc:
                raise DeviceError(f"cannot reach the labgrid coordinator at {address} ({labgrid_message(exc)}): check --coordinator "
                                  "(or LG_COORDINATOR) and that labgrid-coordinator runs there.") from None
            yield session
    finally:
        if session is not None:
            with contextlib.suppress(Error, OSError, asyncio.CancelledError):
                loop.run_until_complete(session.stop())
                loop.run_until_complete(session.close())
        loop.close()
        asyncio.set_event_loop(None)
        logging.disable(previous_disable)


def _identity(session: Any) -> str:
    return f"{session.gethostname()}/{session.getuser()}"


def _find_place(session: Any, place: str, address: str) -> Any:
    from labgrid.remote.client import UserError

    if place in session.places:
        return session.places[place]
    try:
        return session.get_place(place)   # labgrid also matches aliases and unique name parts
    except UserError as exc:
        raise TinyedgeError(f"no single labgrid place '{place}' on the coordinator at {address} "
                            f"({labgrid_message(exc)}): list them with `labgrid-client places`.") from None


def labgrid_message(exc: Exception) -> str:
    """labgrid's error text without its "Error: " prefix."""
    return " ".join(map(str, exc.args)) or type(exc).__name__


def _acquire(session: Any, place: str, address: str, attempt: _Attempt) -> None:
    """Acquire the place, unless this user already holds it (or is allowed on it) here."""
    from labgrid.remote.client import Error

    found = _find_place(session, place, address)
    me = _identity(session)
    if found.acquired == me or (found.acquired and me in found.allowed):
        return
    if found.acquired:
        raise DeviceError(f"labgrid place '{found.name}' is held by {found.acquired}: wait until they release it, "
                          f"or ask them to run `labgrid-client -p {found.name} allow {me}`.")
    attempt.acquiring = True
    try:
        session.loop.run_until_complete(session.acquire())
    except Error as exc:
        raise DeviceError(f"could not acquire labgrid place '{found.name}' ({labgrid_message(exc)}): check its exporter with "
                          f"`labgrid-client -p {found.name} show`.") from None


def _serial_url(session: Any, place: str, address: str, wait_s: float) -> str:
    """The pyserial URL of the place's one NetworkSerialPort, once its exporter serves it."""
    from labgrid.remote.client import Error

    deadline = time.monotonic() + wait_s
    while True:
        found = session.get_place(place)
        try:
            resources = session.get_target_resources(found)
        except Error as exc:
            raise DeviceError(f"labgrid place '{found.name}' cannot be used ({labgrid_message(exc)}): check it with "
                              f"`labgrid-client -p {found.name} show`.") from None
        ports = {name: entry for (name, cls), entry in resources.items() if cls == "NetworkSerialPort"}
        if not ports:
            raise TinyedgeError(f"labgrid place '{found.name}' has no NetworkSerialPort: add the board's serial port "
                                f"with `labgrid-client -p {found.name} add-match EXPORTER/GROUP/NetworkSerialPort`.")
        if len(ports) > 1:
            raise TinyedgeError(f"labgrid place '{found.name}' has several serial ports ({', '.join(sorted(ports))}): "
                                "give the board its own place with one NetworkSerialPort.")
        entry = next(iter(ports.values()))
        if entry.avail and entry.args.get("port"):
            return port_url(entry.args)
        if time.monotonic() >= deadline:
            raise DeviceError(f"the exporter of labgrid place '{found.name}' did not serve its serial port within "
                              f"{wait_s:g} s: check that the board is connected to its exporter.")
        session.loop.run_until_complete(asyncio.sleep(0.1))


def port_url(args: dict[str, Any]) -> str:
    """pyserial URL of a NetworkSerialPort's parameters (host, port, protocol)."""
    scheme = "socket" if args.get("protocol", "rfc2217") == "raw" else "rfc2217"
    host = args["host"]
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{args['port']}"


def _release(place: str, address: str) -> None:
    from labgrid.remote.client import Error

    with _session(address, place) as session:
        try:
            if session.get_place(place).acquired != _identity(session):
                return
            session.loop.run_until_complete(session.release())
        except Error as exc:
            raise DeviceError(f"could not release labgrid place '{place}' ({labgrid_message(exc)}): release it with "
                              f"`labgrid-client -p {place} release`.") from None


def _release_quietly(place: str, address: str) -> bool:
    """Release on the way out of an error (the error in flight is the one to report); True if done."""
    from labgrid.remote.client import Error

    try:
        _release(place, address)
    except (Error, TinyedgeError, OSError):
        return False
    return True


@contextlib.contextmanager
def _released_on_sigterm() -> Iterator[None]:
    """SIGTERM (a CI job cancelled, a rig shutting down) unwinds like Ctrl-C, so the place is released;
    a handler someone else installed is left in place."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
