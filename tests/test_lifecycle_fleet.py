"""`tinyedge fleet` on a real labgrid lab on loopback: a coordinator, three exporters each serving a
host board running updatable firmware (each with its own flash file), and places tagged board=host.
A retrained model goes out canary first; every place is released on every way out; a failing
canary stops the rollout; a place whose exporter disappears is reported, not waited for."""

from __future__ import annotations

import hashlib
import json
import zipfile
from contextlib import ExitStack
from pathlib import Path

import pytest
from conftest import quantized_session_model, require_tools, run_tinyedge
from fixtures.posix_firmware import start_firmware
from remote_rigs import labgrid_client, labgrid_coordinator, labgrid_exporter, wait_until

from tinyedge.build import build
from tinyedge.bundle import make_bundle
from tinyedge.generate import generate

PLACES = ("edge-a", "edge-b", "edge-c")


def holders(coordinator: str) -> list[str]:
    shown = labgrid_client(coordinator, "places", "-v").stdout
    return [line for line in shown.splitlines() if "acquired:" in line and "None" not in line]


@pytest.fixture(scope="module")
def lab(sine_model, tmp_path_factory):
    require_tools("cc", "make")
    out = tmp_path_factory.mktemp("fleet")
    project = out / "fw"
    generate(sine_model.int8, "host", project, runtime="aot", updatable=True)
    build(project)
    with ExitStack() as stack:
        coordinator = stack.enter_context(labgrid_coordinator(out / "coordinator"))
        exporters = {}
        for index, place in enumerate(PLACES):
            board = stack.enter_context(start_firmware(project / "build" / "firmware",
                                                       env={"TE_POSIX_FLASH": str(out / f"{place}.flash")}))
            exporters[place] = ExitStack()
            exporters[place].enter_context(labgrid_exporter(coordinator, board.url, out / f"exporter-{place}",
                                                            exporter_name=f"rig{index}"))
            stack.callback(exporters[place].close)
        wait_until(lambda: all(f"rig{i}/board" in labgrid_client(coordinator, "resources").stdout
                               for i in range(len(PLACES))), 30, "the exporters' resources")
        for index, place in enumerate(PLACES):
            for command in (("create",), ("add-match", f"rig{index}/board/NetworkSerialPort"),
                            ("set-tags", "board=host")):
                made = labgrid_client(coordinator, "-p", place, *command)
                assert made.returncode == 0, made.stderr
        yield {"coordinator": coordinator, "exporters": exporters, "out": out}


@pytest.fixture(scope="module")
def retrained_bundle(sine_model, tmp_path_factory) -> Path:
    import models

    x, y = models.sine_data(300, seed=5)
    out = tmp_path_factory.mktemp("fleet-retrained")
    model = quantized_session_model(out, "sine", models.sine_mlp(epochs=60), x, y, 200).int8
    return make_bundle(model, 2, out / "v2.bundle", data=sine_model.eval_x, vectors=4).path


def fleet(coordinator: str, *args: str):
    return run_tinyedge("fleet", *args, "--coordinator", coordinator, timeout=600)


def test_1_fleet_status_lists_every_place_and_releases_them(lab):
    result = fleet(lab["coordinator"], "status", "--match", "board=host", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["place"]: row for row in json.loads(result.stdout)["places"]}
    assert set(rows) == set(PLACES)
    assert all(row["board"] == "host" and row["model_version"] == 0 and row["slot"] == 0 for row in rows.values())
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


def test_4_a_place_whose_exporter_disappears_is_reported(lab, retrained_bundle, tmp_path):
    lab["exporters"][PLACES[2]].close()   # its exporter stops: the place has no serial port any more
    result = fleet(lab["coordinator"], "status", "--json")
    assert result.returncode == 3
    rows = {row["place"]: row for row in json.loads(result.stdout)["places"]}
    assert rows[PLACES[2]]["result"] == "unreachable" and rows[PLACES[2]]["why"]
    assert [rows[p]["model_version"] for p in PLACES[:2]] == [2, 2]
    assert holders(lab["coordinator"]) == []
