"""`tinyedge fleet` on a real labgrid lab on loopback: a coordinator, three exporters each serving a
host board running updatable firmware (each with its own flash file), and places tagged board=host.
A retrained model goes out canary first; every place is released on every way out; a failing
canary stops the rollout; a place whose exporter disappears is reported, not waited for."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from conftest import quantized_session_model, require_tools, run_tinyedge
from fixtures.posix_firmware import start_firmware
from remote_rigs import (free_port, labgrid_client, labgrid_exporter, labgrid_tool, stop_service, wait_listening,
                         wait_until)

from tinyedge.build import build
from tinyedge.bundle import load_bundle, make_bundle
from tinyedge.generate import generate

PLACES = ("edge-a", "edge-b", "edge-c")


def holders(coordinator: str) -> list[str]:
    shown = labgrid_client(coordinator, "places", "-v").stdout
    return [line for line in shown.splitlines() if "acquired:" in line and "None" not in line]


class Coordinator:
    """labgrid-coordinator on a fixed loopback port and working directory, so it can be restarted."""

    def __init__(self, workdir: Path) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.workdir / "coordinator.log").open("a")
        self.process = subprocess.Popen([labgrid_tool("labgrid-coordinator"), "--listen", self.address],
                                        cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        wait_listening(int(self.address.rsplit(":", 1)[1]), self.process, "labgrid-coordinator")

    def stop(self) -> None:
        if self.process is not None:
            stop_service(self.process)


@contextmanager
def coordinator_at(workdir: Path):
    coordinator = Coordinator(workdir)
    coordinator.start()
    try:
        yield coordinator
    finally:
        coordinator.stop()


@pytest.fixture(scope="module")
def lab(sine_model, tmp_path_factory):
    require_tools("cc", "make")
    out = tmp_path_factory.mktemp("fleet")
    project = out / "fw"
    generate(sine_model.int8, "host", project, runtime="aot", updatable=True)
    build(project)
    with ExitStack() as stack:
        service = stack.enter_context(coordinator_at(out / "coordinator"))
        coordinator = service.address
        exporters, boards = {}, {}
        for index, place in enumerate(PLACES):
            board = stack.enter_context(start_firmware(project / "build" / "firmware",
                                                       env={"TE_POSIX_FLASH": str(out / f"{place}.flash")}))
            boards[place] = board.url
            exporters[place] = ExitStack()
            exporters[place].enter_context(labgrid_exporter(coordinator, board.url, out / f"exporter-{place}",
                                                            exporter_name=f"rig{index}"))
        stack.callback(lambda: [exporter.close() for exporter in exporters.values()])   # those running at the end
        wait_until(lambda: all(f"rig{i}/board" in labgrid_client(coordinator, "resources").stdout
                               for i in range(len(PLACES))), 30, "the exporters' resources")
        for index, place in enumerate(PLACES):
            for command in (("create",), ("add-match", f"rig{index}/board/NetworkSerialPort"),
                            ("set-tags", "board=host")):
                made = labgrid_client(coordinator, "-p", place, *command)
                assert made.returncode == 0, made.stderr
        yield {"coordinator": coordinator, "service": service, "exporters": exporters, "boards": boards, "out": out}


@pytest.fixture(scope="module")
def retrained_bundle(sine_model, tmp_path_factory) -> Path:
    import models

    x, y = models.sine_data(300, seed=5)
    out = tmp_path_factory.mktemp("fleet-retrained")
    model = quantized_session_model(out, "sine", models.sine_mlp(epochs=60), x, y, 200).int8
    return make_bundle(model, 2, out / "v2.bundle", data=sine_model.eval_x, vectors=4).path


def _model_file(bundle: Path, tmp_path: Path) -> Path:
    model = tmp_path / "model.tflite"
    model.write_bytes(load_bundle(bundle).model_bytes)
    return model


def fleet(coordinator: str, *args: str):
    return run_tinyedge("fleet", *args, "--coordinator", coordinator, timeout=600)


def test_1_fleet_status_lists_every_place_and_releases_them(lab):
    result = fleet(lab["coordinator"], "status", "--match", "board=host", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["place"]: row for row in json.loads(result.stdout)["places"]}
    assert set(rows) == set(PLACES)
    assert all(row["board"] == "host" and row["model_version"] == 0 and row["slot"] == 0 for row in rows.values())
    assert holders(lab["coordinator"]) == []


def test_1b_status_of_one_place(lab):
    result = run_tinyedge("status", "--place", PLACES[1], "--coordinator", lab["coordinator"], "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model_version"] == 0
    assert f"released labgrid place {PLACES[1]}" in " ".join(result.stderr.split())
    assert holders(lab["coordinator"]) == []


def test_2_a_canary_then_the_rest_two_at_a_time(lab, retrained_bundle, tmp_path):
    junit = tmp_path / "fleet.xml"
    result = fleet(lab["coordinator"], "update", str(retrained_bundle), "--match", "board=host", "--canary", "1",
                   "--parallel", "2", "--json", "--junit", str(junit))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert [row["result"] for row in report["places"]] == ["updated"] * 3
    assert all(row["model_version"] == 2 and row["previous_version"] == 0 for row in report["places"])
    assert junit.read_text().count("<testcase") == 3 and "<failure" not in junit.read_text()
    assert holders(lab["coordinator"]) == []

    status = json.loads(fleet(lab["coordinator"], "status", "--json").stdout)
    for row in status["places"]:
        assert row["model_version"] == 2 and row["slot"] == 1
        assert row["last_validation"]["passed"] is True and row["last_validation"]["version"] == 2


def lying_bundle(bundle: Path, out: Path, version: int) -> Path:
    """A bundle whose expected outputs the model does not produce (a wrong reference)."""
    with zipfile.ZipFile(bundle) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(files["manifest.json"])
    vectors = bytearray(files["vectors.bin"])
    step = manifest["input_bytes"] + manifest["output_bytes"]
    for start in range(0, len(vectors), step):
        vectors[start + manifest["input_bytes"]] ^= 0x01
    manifest.update(version=version, vectors_sha256=hashlib.sha256(bytes(vectors)).hexdigest())
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        archive.writestr("model.tflite", files["model.tflite"])
        archive.writestr("vectors.bin", bytes(vectors))
    return out


def test_3_a_failing_canary_stops_the_rollout(lab, retrained_bundle, tmp_path):
    bad = lying_bundle(retrained_bundle, tmp_path / "bad.bundle", 3)
    result = fleet(lab["coordinator"], "update", str(bad), "--match", "board=host", "--canary", "1", "--json")
    assert result.returncode == 3
    rows = json.loads(result.stdout)["places"]
    assert rows[0]["result"] == "failed" and "self-test vector 0" in rows[0]["why"]
    assert rows[0]["model_version"] is None or rows[0]["model_version"] == 2
    assert [row["result"] for row in rows[1:]] == ["skipped", "skipped"]
    assert holders(lab["coordinator"]) == []
    status = json.loads(fleet(lab["coordinator"], "status", "--json").stdout)
    assert [row["model_version"] for row in status["places"]] == [2, 2, 2], "every board keeps a working model"


def test_4_a_place_that_disappears_mid_rollout_is_reported_with_what_each_board_runs(lab, retrained_bundle, tmp_path):
    lab["exporters"][PLACES[2]].close()   # its exporter stops: the place has no serial port any more
    v3 = make_bundle(_model_file(retrained_bundle, tmp_path), 3,
                     tmp_path / "v3.bundle", vectors=2).path
    result = fleet(lab["coordinator"], "update", str(v3), "--match", "board=host", "--canary", "1", "--parallel", "2",
                   "--json")
    assert result.returncode == 3, result.stderr
    rows = {row["place"]: row for row in json.loads(result.stdout)["places"]}
    assert rows[PLACES[0]]["result"] == rows[PLACES[1]]["result"] == "updated"
    assert rows[PLACES[2]]["result"] == "unreachable" and rows[PLACES[2]]["why"]
    assert holders(lab["coordinator"]) == []
    status = {row["place"]: row for row in json.loads(fleet(lab["coordinator"], "status", "--json").stdout)["places"]}
    assert [status[p]["model_version"] for p in PLACES[:2]] == [3, 3]
    assert status[PLACES[2]]["result"] == "unreachable"


def test_5_a_coordinator_restart_loses_no_place_and_no_board(lab):
    lab["service"].stop()
    down = fleet(lab["coordinator"], "status", "--json")
    assert down.returncode == 3 and "cannot reach the labgrid coordinator" in down.stderr
    assert "Traceback" not in down.stderr
    lab["service"].start()   # the same address and working directory: its places come back
    orphaned = fleet(lab["coordinator"], "status", "--json")   # labgrid's exporters do not reconnect by themselves
    rows = {row["place"]: row for row in json.loads(orphaned.stdout)["places"]}
    assert orphaned.returncode == 3 and set(rows) == set(PLACES)
    assert all(row["result"] == "unreachable" and row["why"] for row in rows.values())
    for index, place in enumerate(PLACES[:2]):   # the lab restarts its exporters
        restarted = ExitStack()
        restarted.enter_context(labgrid_exporter(lab["coordinator"], lab["boards"][place],
                                                 lab["out"] / f"exporter-{place}-again", exporter_name=f"rig{index}"))
        lab["exporters"][place] = restarted
    wait_until(lambda: all(f"rig{i}/board" in labgrid_client(lab["coordinator"], "resources").stdout
                           for i in range(2)), 60, "the restarted exporters")
    result = fleet(lab["coordinator"], "status", "--json")
    rows = {row["place"]: row for row in json.loads(result.stdout)["places"]}
    assert [rows[p]["model_version"] for p in PLACES[:2]] == [3, 3], "every board kept its model"
    assert holders(lab["coordinator"]) == []
