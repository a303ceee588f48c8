"""Telemetry: what a board runs and how it has done since boot (the STATS request), as the
`status` report a person or a rig reads, and as Prometheus/OpenMetrics series (`monitor`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.protocol import Device, DeviceInfo, DeviceStats


@dataclass(frozen=True)
class BoardStatus:
    url: str
    info: DeviceInfo
    stats: DeviceStats

    def as_dict(self) -> dict[str, Any]:
        """The `tinyedge status --json` report."""
        stats = self.stats
        mean = stats.latency_mean_us
        return {
            "port": self.url,
            "board": self.info.board_id,
            "runtime": self.info.runtime,
            "runtime_version": self.info.runtime_version,
            "model_sha256": stats.model_sha256,
            "model_version": stats.model_version,
            "slot": stats.slot,
            "firmware_version": stats.firmware_version,
            "uptime_s": stats.uptime_ms / 1000,
            "resets": stats.resets,
            "resets_persist": stats.persistent,
            "inferences": stats.inferences,
            "errors": stats.errors,
            "latency": {
                "count": stats.latency_count,
                "min_us": stats.latency_min_us,
                "mean_us": None if mean is None else round(mean, 1),
                "max_us": stats.latency_max_us,
            },
            "arena_high_water_bytes": stats.arena_high_water,
            "arena_bytes": stats.arena_size,
            "shadow": stats.shadow.as_dict() if stats.shadow else None,
        }


def read_status(device: Device) -> BoardStatus:
    """INFO and STATS from an open device."""
    return BoardStatus(device.url, device.info(refresh=True), device.stats())


def board_status(url: str, baud: int = 115200, timeout: float = 5.0) -> BoardStatus:
    """Open the board at `url`, read its status and close it again."""
    with Device(url, baud=baud, timeout=timeout) as device:
        return read_status(device)


# ---- `tinyedge monitor`: the boards' telemetry as Prometheus / OpenMetrics series ----

class BoardsCollector:
    """A prometheus_client collector over the last STATS of each board (polled by `poll`), one series
    per board, labelled with its port and board id. A board that did not answer its last poll has
    `tinyedge_up 0` and no other series."""

    def __init__(self, urls: list[str], baud: int = 115200, timeout: float = 5.0) -> None:
        self.urls = urls
        self.baud = baud
        self.timeout = timeout
        self.last: dict[str, BoardStatus | None] = {url: None for url in urls}
        self.errors: dict[str, str] = {}
        self._devices: dict[str, Device] = {}

    def poll(self) -> None:
        """Read every board's status once; a board that fails is reopened at the next poll."""
        for url in self.urls:
            try:
                device = self._devices.get(url) or self._devices.setdefault(
                    url, Device(url, baud=self.baud, timeout=self.timeout))
                self.last[url] = read_status(device)
                self.errors.pop(url, None)
            except DeviceError as exc:
                self.last[url] = None
                self.errors[url] = str(exc)
                self._close(url)

    def close(self) -> None:
        for url in list(self._devices):
            self._close(url)

    def _close(self, url: str) -> None:
        device = self._devices.pop(url, None)
        if device is not None:
            device.close()

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        labels = ["port", "board"]
        up = GaugeMetricFamily("tinyedge_up", "1 when the board answered its last STATS", labels=labels)
        info = InfoMetricFamily("tinyedge_model", "The model a board runs",
                                labels=[*labels, "model_sha256", "model_version", "slot", "firmware_version"])
        inferences = CounterMetricFamily("tinyedge_inferences", "Inferences run since boot", labels=labels)
        errors = CounterMetricFamily("tinyedge_errors", "Inferences that failed since boot", labels=labels)
        resets = GaugeMetricFamily("tinyedge_resets", "Boots recorded in the board's store, minus one", labels=labels)
        uptime = GaugeMetricFamily("tinyedge_uptime_seconds", "Seconds since boot", labels=labels)
        latency = GaugeMetricFamily("tinyedge_latency_microseconds", "Inference latency since boot",
                                    labels=[*labels, "stat"])
        arena = GaugeMetricFamily("tinyedge_arena_high_water_bytes", "Tensor arena high-water mark", labels=labels)
        for url, status in self.last.items():
            board = status.info.board_id if status else ""
            up.add_metric([url, board], 1 if status else 0)
            if status is None:
                continue
            report = status.as_dict()
            info.add_metric([url, board], {"model_sha256": report["model_sha256"],
                                           "model_version": str(report["model_version"]),
                                           "slot": "builtin" if report["slot"] is None else str(report["slot"]),
                                           "firmware_version": report["firmware_version"]})
            inferences.add_metric([url, board], report["inferences"])
            errors.add_metric([url, board], report["errors"])
            resets.add_metric([url, board], report["resets"])
            uptime.add_metric([url, board], report["uptime_s"])
            for stat in ("min", "mean", "max"):
                value = report["latency"][f"{stat}_us"]
                if value is not None:
                    latency.add_metric([url, board, stat], value)
            arena.add_metric([url, board], report["arena_high_water_bytes"])
        yield from (up, info, inferences, errors, resets, uptime, latency, arena)


def parse_listen_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise TinyedgeError(f"--prometheus must be HOST:PORT, such as 127.0.0.1:9464 (got {address!r}).")
    return host, int(port)


def serve_metrics(collector: BoardsCollector, address: str, interval: float, stop: threading.Event,
                  on_listen: Callable[[str], None] | None = None,
                  on_poll: Callable[[BoardsCollector], None] | None = None) -> None:
    """Serve `collector` over HTTP at `address` (OpenMetrics when the scraper asks for it) and poll
    the boards every `interval` seconds until `stop` is set."""
    from prometheus_client import start_http_server
    from prometheus_client.core import CollectorRegistry

    host, port = parse_listen_address(address)
    if interval <= 0:
        raise TinyedgeError(f"--interval must be a positive number of seconds (got {interval:g}).")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise TinyedgeError(f"cannot listen on {address} ({exc.strerror or exc}): choose a free HOST:PORT.") from None
    if on_listen:
        on_listen(f"http://{host}:{server.server_address[1]}/metrics")
    try:
        while not stop.is_set():
            collector.poll()
            if on_poll:
                on_poll(collector)
            stop.wait(interval)
    finally:
        server.shutdown()
        collector.close()
