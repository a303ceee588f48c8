"""Telemetry: what a board runs and how it has done since boot (the STATS request), as the
`status` report a person or a rig reads, and as Prometheus/OpenMetrics series (`monitor`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        }


def read_status(device: Device) -> BoardStatus:
    """INFO and STATS from an open device."""
    return BoardStatus(device.url, device.info(refresh=True), device.stats())


def board_status(url: str, baud: int = 115200, timeout: float = 5.0) -> BoardStatus:
    """Open the board at `url`, read its status and close it again."""
    with Device(url, baud=baud, timeout=timeout) as device:
        return read_status(device)
