"""`tinyedge monitor`: two boards' telemetry served as OpenMetrics and scraped by a real Prometheus
(Debian's `prometheus`), queried over its HTTP API the way a dashboard would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from conftest import REPO, require_tools

from tinyedge.build import build
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.protocol import Device


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 5.0, accept: str | None = None) -> str:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return reply.read().decode()


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:.0f} s (last: {last})")


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("needs Prometheus (`apt-get install prometheus`, in install.sh's list) to scrape the exporter")
    return binary


@pytest.fixture
def two_boards(sine_model, tmp_path):
    require_tools("cc", "make")
    project = tmp_path / "fw"
    generate(sine_model.int8, "host", project, runtime="aot")
    build(project)
    with flash(project) as first, flash(project) as second:
        for url, count in ((first, 3), (second, 5)):
            with Device(url) as device:
                for value in range(count):
                    device.infer(bytes((value,)))
        yield {first: 3, second: 5}


def test_prometheus_scrapes_one_series_per_board(two_boards, prometheus_binary, tmp_path):
    exporter_port, prometheus_port = free_port(), free_port()
    command = [sys.executable, "-m", "tinyedge", "monitor", *(arg for url in two_boards for arg in ("--port", url)),
               "--prometheus", f"127.0.0.1:{exporter_port}", "--interval", "0.5"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    exporter = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tinyedge\n"
                      f"    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n")
    prometheus = subprocess.Popen([prometheus_binary, f"--config.file={config}",
                                   f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        exposition = wait_for(lambda: "tinyedge_inferences_total" in (text := get(
            f"http://127.0.0.1:{exporter_port}/metrics", accept="application/openmetrics-text")) and text,
            60, "the exporter served its metrics")
        assert exposition.rstrip().endswith("# EOF"), "OpenMetrics, as Prometheus asks for it"

        def scraped() -> dict[str, float] | None:
            query = urllib.parse.quote("tinyedge_inferences_total")
            answer = json.loads(get(f"http://127.0.0.1:{prometheus_port}/api/v1/query?query={query}"))
            series = {r["metric"]["port"]: float(r["value"][1]) for r in answer["data"]["result"]}
            return series if len(series) == 2 else None
        series = wait_for(scraped, 90, "Prometheus scraped both boards")
        assert series == {url: float(count) for url, count in two_boards.items()}
        info = json.loads(get(f"http://127.0.0.1:{prometheus_port}/api/v1/query?query=tinyedge_model_info"))
        assert {r["metric"]["board"] for r in info["data"]["result"]} == {"host"}
    finally:
        prometheus.terminate()
        exporter.send_signal(signal.SIGTERM)
        prometheus.wait(timeout=30)
        exporter.wait(timeout=30)


def test_monitor_refuses_a_bad_address_in_one_sentence():
    from conftest import run_tinyedge

    result = run_tinyedge("monitor", "--port", "/dev/null", "--prometheus", "nowhere")
    assert result.returncode == 1 and "--prometheus must be HOST:PORT" in result.stderr
