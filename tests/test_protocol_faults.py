"""The link under faults: the real C protocol (host firmware over the fixture runtime, and the AOT
firmware of real models on the host board, QEMU and the simavr Uno) driven through the
fault-injecting proxy (tests/fixtures/fault_proxy.py) at fixed seeds. A result is the board's own
output or a link failure, never a wrong value."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REAL_MODELS, require_tools, requires_tflm, tflm_tree
from fixtures.fault_proxy import FaultProxy
from fixtures.posix_firmware import FixtureModel, build_firmware, start_firmware
from tinyedge.errors import DeviceError
from tinyedge.protocol import (MSG_INFER, MSG_INFO, MSG_REPLY, MSG_WRITE, Device, decode_frame, encode_frame,
                               infer_timeout, parse_info)

INFER_REPLY = MSG_INFER | MSG_REPLY
# Seven 48-byte chunks on a 64-byte receive buffer (the Uno's), and a runtime that reuses the input's
# memory during Invoke, as TFLM's and the AOT's arena planners do.
MODEL = FixtureModel(in0_bytes=300, in1_floats=0, out0_bytes=12)


@pytest.fixture(scope="module")
def reusing_firmware(tmp_path_factory) -> Path:
    return build_firmware(tmp_path_factory.mktemp("faults"), MODEL,
                          extra_defines={"TE_PROTO_RX_BUFFER": 64, "FIXTURE_REUSES_INPUT": 1})


def sample(seed: int) -> bytes:
    return random.Random(seed).randbytes(MODEL.input_bytes)


def open_device(url: str, **kwargs) -> Device:
    return Device(url, **{"timeout": 5.0, "boot_timeout": 5.0, **kwargs})


def test_a_corrupted_infer_reply_gets_the_outputs_the_board_computed(reusing_firmware):
    """The host sends the INFER again; the device must not run the model again on input memory its
    arena reused, but answer with the outputs it computed."""
    with start_firmware(reusing_firmware) as fw, FaultProxy(fw.url, corrupt_replies={INFER_REPLY: 3}) as proxy, \
            open_device(proxy.url) as device:
        for seed in range(5):
            data = sample(seed)
            assert device.infer(data).output == MODEL.expected_output(data)
        assert proxy.corrupter.done[INFER_REPLY] == 3
        assert device.link.crc_errors >= 3
        assert device.link.retries >= 3


# ---- a relay that replays the board's old genuine replies ----

SMALL = FixtureModel(in0_bytes=24, in1_floats=0, out0_bytes=12)  # one INFER frame per sample


@pytest.fixture(scope="module")
def small_firmware(tmp_path_factory) -> Path:
    return build_firmware(tmp_path_factory.mktemp("replay"), SMALL, extra_defines={"TE_PROTO_RX_BUFFER": 64})


def test_a_relay_replaying_old_infer_replies_never_becomes_the_boards_output(small_firmware):
    """Before every INFER reply the relay sends an old genuine one, with the same seq once protocol 1's
    8-bit seq has wrapped (300 samples): each is discarded as stale and counted, never recorded."""
    with start_firmware(small_firmware) as fw, FaultProxy(fw.url, replay_replies=(INFER_REPLY,)) as proxy, \
            open_device(proxy.url) as device:
        for index in range(300):
            data = random.Random(index).randbytes(SMALL.input_bytes)
            assert device.infer(data).output == SMALL.expected_output(data), f"sample {index}"
        assert proxy.replayer.replayed == 299
        assert device.link.stale == proxy.replayer.replayed


def test_a_relay_that_replaces_replies_with_old_ones_gets_the_request_asked_again(small_firmware):
    """Instead of a quarter of the INFER replies the relay sends an old genuine one: the host discards
    it, asks again (the board answers a repeated INFER from the outputs it computed) and records the
    board's own output, or fails the link; never an old output."""
    exact = failed = 0
    with start_firmware(small_firmware) as fw, \
            FaultProxy(fw.url, seed=3, replay_replies=(INFER_REPLY,), replay_rate=0.25, replay_replace=True) as proxy, \
            open_device(proxy.url, timeout=0.5) as device:
        for index in range(40):
            data = random.Random(1000 + index).randbytes(SMALL.input_bytes)
            try:
                output = device.infer(data).output
            except DeviceError as exc:
                assert "no answer" in str(exc)
                failed += 1
                continue
            assert output == SMALL.expected_output(data), f"sample {index}"
            exact += 1
        assert proxy.replayer.replayed > 5
        assert device.link.stale > 5
        assert device.link.retries > 5
    assert exact >= 35


def test_validate_through_a_replaying_relay_records_only_the_boards_outputs(cnn_model, tmp_path):
    """The issue's session: `tinyedge validate` of 300 samples through a relay that sends an old genuine
    INFER reply before each one. Every recorded output is the board's, and the report says what the
    relay did (before: 345 of 600 outputs wrong, "0 errors")."""
    import json

    from conftest import run_tinyedge
    from tinyedge.flash import flash

    project = aot_project(cnn_model.int8, "host", tmp_path / "fw")
    data = tmp_path / "x.npy"
    x = np.load(cnn_model.eval_x)
    np.save(data, np.concatenate([x] * (300 // len(x) + 1))[:300])
    with flash(project) as url, FaultProxy(url, replay_replies=(INFER_REPLY,)) as proxy:
        result = run_tinyedge("validate", "--port", proxy.url, "--model", cnn_model.int8, "--data", data,
                              "--board", "host", "--json", tmp_path / "r.json", timeout=600)
        replayed = proxy.replayer.replayed
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0 and report["samples"] == 300
    assert report["link"]["stale"] >= replayed >= 299
    assert f"{report['link']['stale']} stale replies" in result.stdout


def test_the_device_refuses_an_infer_whose_earlier_chunks_an_invoke_consumed(reusing_firmware):
    """Without a reply to replay (another request came between), the last chunk alone is refused as
    out of sequence, so the host starts the input over instead of getting outputs of a reused input."""
    data = sample(7)
    last = (len(data) - 1) // 48 * 48
    with start_firmware(reusing_firmware) as fw, open_device(fw.url) as device:
        assert device.infer(data).output == MODEL.expected_output(data)
        device.ping()
        import struct

        status, _ = device._exchange(MSG_INFER, struct.pack("<I", last) + data[last:], "INFER")
        assert status == 0x14  # out of sequence
        assert device.infer(data).output == MODEL.expected_output(data)


@pytest.mark.parametrize("damage", ["break", "flip", "drop_delimiter"])
def test_an_unreadable_request_is_sent_again_at_once_not_after_the_timeout(reusing_firmware, damage):
    """A broken frame gets a NAK with seq 0 (it could not be read that far), a flipped one a NAK
    whose seq cannot be trusted, a lost delimiter no answer at all until the host ends the frame:
    each costs a moment, not the 5 s timeout."""
    data = sample(3)
    with start_firmware(reusing_firmware) as fw, \
            FaultProxy(fw.url, damage_requests={MSG_INFER: 2, MSG_WRITE: 2}, request_damage=damage) as proxy, \
            open_device(proxy.url, timeout=5.0) as device:
        device.info()
        started = time.monotonic()
        assert device.infer(data).output == MODEL.expected_output(data)
        elapsed = time.monotonic() - started
        assert proxy.request_corrupter.done[MSG_INFER] >= 1
        assert device.link.timeouts == 0
        if damage != "drop_delimiter":  # a lone 0x00 ends such a frame: no need to send it again
            assert proxy.request_corrupter.done[MSG_INFER] == 2
            assert device.link.retries >= 4
    assert elapsed < 2.5


@pytest.mark.parametrize("rate, seed", [(1e-3, 1), (3e-3, 2)])
def test_random_faults_up_to_3e_3_leave_every_result_exact(reusing_firmware, rate, seed):
    with start_firmware(reusing_firmware) as fw, FaultProxy(fw.url, rate=rate, seed=seed) as proxy, \
            open_device(proxy.url) as device:
        for index in range(40):
            data = sample(100 + index)
            assert device.infer(data).output == MODEL.expected_output(data), f"sample {index}"
        assert proxy.counts.total() > 0
        assert device.link.retries > 0


def test_at_1e_2_a_result_is_exact_or_a_link_failure_never_wrong(reusing_firmware):
    exact = failed = 0
    with start_firmware(reusing_firmware) as fw, FaultProxy(fw.url, rate=1e-2, seed=5) as proxy, \
            open_device(proxy.url, timeout=1.0) as device:
        for index in range(20):
            data = sample(200 + index)
            try:
                output = device.infer(data).output
            except DeviceError as exc:
                assert "link" in str(exc) or "no answer" in str(exc) or "resetting" in str(exc)
                failed += 1
                continue
            assert output == MODEL.expected_output(data), f"sample {index}"
            exact += 1
        assert proxy.counts.total() > 50
    assert exact + failed == 20
    assert exact > 0


@pytest.fixture(scope="module")
def uno_like_slow_firmware(tmp_path_factory) -> Path:
    """The Uno's 64-byte receive buffer, a runtime that reuses its input, and a 50 ms Invoke."""
    return build_firmware(tmp_path_factory.mktemp("slow"), MODEL,
                          extra_defines={"TE_PROTO_RX_BUFFER": 64, "FIXTURE_REUSES_INPUT": 1, "FIXTURE_INVOKE_MS": 50})


UNO_FIFO = {"TE_POSIX_RX_FIFO": "64"}


def test_inserted_zero_bytes_cost_one_retransmission_per_damaged_request(uno_like_slow_firmware):
    """A 0x00 inserted into a request splits it in two pieces, each NAKed: the host sends one new copy,
    not one per NAK (before: it ran ahead of the board, overran its 64-byte buffer, waited out timeouts
    and restarted inputs, and gave up while clean copies were queued)."""
    with start_firmware(uno_like_slow_firmware, env=UNO_FIFO) as fw, \
            FaultProxy(fw.url, rate=1e-2, seed=0, kinds=("zero",)) as proxy, open_device(proxy.url) as device:
        for index in range(10):
            data = sample(300 + index)
            assert device.infer(data).output == MODEL.expected_output(data), f"sample {index}"
        assert proxy.counts.to_device["zero"] > 20
    assert device.link.timeouts == 0
    assert device.link.resyncs <= 2


@pytest.mark.parametrize("kind", ["flip", "drop", "dup", "garbage", "zero", "delay", "split"])
def test_every_fault_kind_at_1e_2_leaves_every_result_exact(uno_like_slow_firmware, kind):
    """Each fault kind alone at 1e-2 per byte, both ways, on a board with the Uno's 64-byte buffer:
    INFO and every sample complete, each bit-exact."""
    with start_firmware(uno_like_slow_firmware, env=UNO_FIFO) as fw, \
            FaultProxy(fw.url, rate=1e-2, seed=1, kinds=(kind,)) as proxy, open_device(proxy.url) as device:
        assert device.info().runtime == "fixture"
        for index in range(8):
            data = sample(400 + index)
            assert device.infer(data).output == MODEL.expected_output(data), f"sample {index}"
        assert proxy.counts.total() > 20


def test_a_slow_inference_is_waited_for_not_sent_again(tmp_path):
    """Invoke takes 2.5 s, longer than the 1 s every other request gets: with an INFER timeout that
    follows the model's cost the host waits for it instead of re-sending it while the device works."""
    firmware = build_firmware(tmp_path, MODEL, extra_defines={"TE_PROTO_RX_BUFFER": 64, "FIXTURE_INVOKE_MS": 2500})
    data = sample(9)
    with start_firmware(firmware) as fw, open_device(fw.url, timeout=1.0, infer_timeout=4.0) as device:
        assert device.infer(data).output == MODEL.expected_output(data)
        assert device.set_arena(16384)  # runs the model once too, as TFLM's does
        assert (device.link.retries, device.link.timeouts) == (0, 0)
        device.infer_timeout = None
        assert device.infer(data).output == MODEL.expected_output(data)
        assert device.link.timeouts >= 2  # the control: re-sent after each 1 s, answered by replay


@pytest.fixture
def busy_cores():
    """Every core busy for the test's duration (a loaded CI machine), with processes this test owns."""
    import os
    import subprocess
    import sys

    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def test_a_reply_that_pauses_mid_frame_on_a_loaded_machine_is_read_not_called_corrupt(small_firmware, busy_cores):
    """Every INFO and INFER reply stops for 0.7 s halfway (an emulator descheduled mid-reply), while both
    cores are busy: the partial frame is kept and completes, so the link reports no CRC error (before:
    "13 of 13 INFO attempts failed their CRC check")."""
    with start_firmware(small_firmware) as fw, \
            FaultProxy(fw.url, stall_replies={MSG_INFO | MSG_REPLY: 0.7, INFER_REPLY: 0.7}) as proxy, \
            open_device(proxy.url) as device:
        assert device.info().runtime == "fixture"
        for index in range(3):
            data = random.Random(index).randbytes(SMALL.input_bytes)
            assert device.infer(data).output == SMALL.expected_output(data)
        assert proxy.staller.done[INFER_REPLY] >= 3
    assert device.link.crc_errors == 0


def test_info_measures_the_stack_before_its_reply_starts(small_firmware):
    """A stack scan that takes 0.6 s (a painted-stack scan under a slow emulator) happens before the
    first byte of the INFO reply, not in the middle of its frame."""
    import serial

    with start_firmware(small_firmware, env={"TE_POSIX_STACK_SCAN_MS": "600"}) as fw:
        open_device(fw.url).close()  # booted and answering
        port = serial.serial_for_url(fw.url, timeout=0.01)
        try:
            port.write(b"\x00" + encode_frame(MSG_INFO, 77) + b"\x00")
            arrivals: list[tuple[float, bytes]] = []
            wire = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and b"\x00" not in wire.lstrip(b"\x00"):
                data = port.read(4096)
                if data:
                    arrivals.append((time.monotonic(), data))
                    wire += data
        finally:
            port.close()
    info = parse_info(decode_frame(wire.strip(b"\x00")).body[1:])
    assert info.stack_used == 1024
    assert arrivals[-1][0] - arrivals[0][0] < 0.3, [(round(t - arrivals[0][0], 3), len(b)) for t, b in arrivals]


def test_the_infer_timeout_follows_the_models_cost():
    # ResNet-8 (12.5 M MACs) on a 25 MHz board: far beyond the 5 s a PING gets.
    assert infer_timeout(5.0, 12_500_000, 25_000_000) > 40
    assert infer_timeout(5.0, 1_000, 25_000_000) == pytest.approx(5.0, abs=0.01)
    # 2,000 output bytes at 9,600 baud take 2.3 s on the wire.
    assert infer_timeout(5.0, 0, 16_000_000, wire_bytes=2000, baud=9600) == pytest.approx(7.29, abs=0.01)


# ---- the real firmware: AOT builds of real models on the emulated boards ----

BOARD_TOOLS = {
    "host": ("cc", "make"),
    "qemu-cortex-m4": ("arm-none-eabi-gcc", "make", "qemu-system-arm"),
    "arduino-uno": ("avr-gcc", "make", "avrdude", "pkg-config"),
}


def aot_project(model: Path, board: str, out: Path) -> Path:
    from tinyedge.build import build
    from tinyedge.generate import generate

    require_tools(*BOARD_TOOLS[board])
    generate(model, board, out, runtime="aot")
    build(out)
    return out


def test_validate_through_a_noisy_link_reports_what_the_link_did(cnn_model, tmp_path):
    """`tinyedge validate` as a rig runs it, on the host board's AOT firmware through the proxy at
    3e-3 faults per byte: every sample bit-exact, and the link's work in the JSON, JUnit and table."""
    import json
    from xml.etree import ElementTree as ET

    from conftest import run_tinyedge
    from tinyedge.flash import flash

    project = aot_project(cnn_model.int8, "host", tmp_path / "fw")
    data = tmp_path / "x.npy"
    np.save(data, np.load(cnn_model.eval_x)[:30])
    with flash(project) as url, FaultProxy(url, rate=3e-3, seed=11) as proxy:
        result = run_tinyedge("validate", "--port", proxy.url, "--model", cnn_model.int8, "--data", data,
                              "--board", "host", "--json", tmp_path / "r.json", "--junit", tmp_path / "r.xml",
                              timeout=300)
        assert proxy.counts.total() > 0
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0 and report["samples"] == 30
    link = report["link"]
    assert set(link) >= {"retries", "crc_errors", "resyncs", "timeouts"}
    assert link["retries"] > 0 and link["crc_errors"] > 0
    assert link["baud"] == 115200
    properties = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "r.xml").getroot().iter("property")}
    assert properties["link_retries"] == str(link["retries"])
    assert properties["link_crc_errors"] == str(link["crc_errors"])
    assert f"{link['retries']} retries, {link['crc_errors']} CRC errors" in result.stdout


def test_validate_takes_the_baud_rate_and_timeout_it_is_given(cnn_model, tmp_path):
    import json

    from conftest import run_tinyedge
    from tinyedge.flash import flash

    project = aot_project(cnn_model.int8, "host", tmp_path / "fw")
    data = tmp_path / "x.npy"
    np.save(data, np.load(cnn_model.eval_x)[:2])
    with flash(project) as url:
        result = run_tinyedge("validate", "--port", url, "--model", cnn_model.int8, "--data", data,
                              "--baud", "57600", "--timeout", "7.5", "--json", tmp_path / "r.json", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    link = json.loads((tmp_path / "r.json").read_text())["link"]
    assert (link["baud"], link["infer_timeout_s"]) == (57600, 7.5)


def test_the_infer_timeout_of_a_real_model_grows_with_its_macs_on_a_slow_clock():
    from tinyedge.protocol import DeviceInfo, TensorInfo
    from tinyedge.tflite_model import load_tflite
    from tinyedge.validate import infer_timeout_for

    resnet = REAL_MODELS / "pretrainedResnet_quant.tflite"
    if not resnet.exists():
        pytest.skip(f"{REAL_MODELS} is absent (the real trained models)")
    tensor = TensorInfo("int8", (1, 32, 32, 3), 1.0, -128, 3072)
    info = DeviceInfo(1, "qemu-cortex-m4", "tflm", "", "0" * 64, [tensor], [tensor], 0, 0, 25_000_000, 25_000_000, 1007)

    class Link:
        timeout, baud = 5.0, 115200

    # ResNet-8: 12.5 M MACs; TFLM's reference kernels take ~11 s per inference under QEMU.
    assert infer_timeout_for(load_tflite(resnet), info, Link()) > 30


@pytest.mark.parametrize("board, model_name", [
    ("qemu-cortex-m4", "micro_speech_quantized.tflite"),   # 1,960 B: two 1,007-byte chunks
    ("host", "person_detect.tflite"),                      # 9,216 B: three 4,067-byte chunks
])
def test_corrupted_replies_of_a_real_multi_chunk_model_stay_exact(board, model_name, tmp_path):
    """The bug as seen on QEMU: the INFER reply of a model whose input needs several chunks is
    corrupted, the host asks again; the result must be the board's, bit for bit (before the device
    replayed its reply, person_detect's came back wrong here, and the Uno's below)."""
    from tinyedge.flash import flash
    from tinyedge.reference import Reference
    from tinyedge.tflite_model import load_tflite

    tflite = REAL_MODELS / model_name
    if not tflite.exists():
        pytest.skip(f"{REAL_MODELS} is absent (the real trained models)")
    project = aot_project(tflite, board, tmp_path / "fw")
    model = load_tflite(tflite)
    reference = Reference(model)
    shape = model.input_tensors[0].shape
    inputs = [np.random.default_rng(seed).integers(-128, 128, size=shape, dtype=np.int8) for seed in range(4)]
    with flash(project) as url, FaultProxy(url) as proxy, open_device(proxy.url) as device:
        assert device.info().max_chunk < model.input_tensors[0].nbytes
        for x in inputs:
            expected = b"".join(np.asarray(a).tobytes() for a in reference.run([x]))
            proxy.corrupter.left[INFER_REPLY] = 1  # this sample's first INFER reply
            assert device.infer(x.tobytes()).output == expected
        assert proxy.corrupter.done[INFER_REPLY] == len(inputs)


def test_corrupted_replies_on_the_simavr_uno_stay_exact(tmp_path):
    """The Uno's 64-byte receive buffer: 48-byte chunks, so the 120-byte input of this MLP takes three."""
    import models
    from tinyedge.flash import flash
    from tinyedge.quantize import quantize_model
    from tinyedge.reference import Reference
    from tinyedge.tflite_model import load_tflite

    require_tools(*BOARD_TOOLS["arduino-uno"])
    k = models.keras()
    k.utils.set_random_seed(4)
    keras_model = k.Sequential([k.Input(shape=(120,)), k.layers.Dense(16, activation="relu"), k.layers.Dense(4)])
    keras_model.save(tmp_path / "wide.keras")
    samples = np.random.default_rng(4).normal(size=(32, 120)).astype(np.float32)
    quantize_model(tmp_path / "wide.keras", samples, tmp_path / "wide_int8.tflite")
    tflite = tmp_path / "wide_int8.tflite"
    project = aot_project(tflite, "arduino-uno", tmp_path / "fw")
    model = load_tflite(tflite)
    reference = Reference(model)
    inputs = [np.random.default_rng(seed).integers(-128, 128, size=model.input_tensors[0].shape, dtype=np.int8)
              for seed in range(4)]
    with flash(project) as url, FaultProxy(url) as proxy, open_device(proxy.url) as device:
        assert device.info().max_chunk < 120
        for x in inputs:
            expected = b"".join(np.asarray(a).tobytes() for a in reference.run([x]))
            proxy.corrupter.left[INFER_REPLY] = 1  # this sample's first INFER reply
            assert device.infer(x.tobytes()).output == expected
        assert proxy.corrupter.done[INFER_REPLY] == len(inputs)


def test_deploy_opens_the_board_at_its_profiles_baud_and_takes_a_timeout(cnn_model, tmp_path):
    import json

    from conftest import run_tinyedge
    from tinyedge.boards import get_board

    require_tools(*BOARD_TOOLS["host"])
    data = tmp_path / "x.npy"
    np.save(data, np.load(cnn_model.eval_x)[:3])
    result = run_tinyedge("deploy", cnn_model.int8, "--board", "host", "--runtime", "aot", "--data", data,
                          "-o", tmp_path / "out", "--timeout", "9", "--json", tmp_path / "r.json", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    link = json.loads((tmp_path / "r.json").read_text())["link"]
    assert (link["baud"], link["infer_timeout_s"]) == (get_board("host").baud, 9.0)
    assert link["retries"] == link["crc_errors"] == link["timeouts"] == 0


def test_a_timeout_of_zero_is_refused_in_one_sentence(cnn_model, tmp_path):
    from conftest import run_tinyedge

    data = tmp_path / "x.npy"
    np.save(data, np.load(cnn_model.eval_x)[:2])
    result = run_tinyedge("validate", "--port", "/dev/null", "--model", cnn_model.int8, "--data", data,
                          "--timeout", "0")
    assert result.returncode == 1
    assert "--timeout must be more than 0 seconds" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# ---- the TFLM runtime ----

def tflm_firmware_on_qemu(model_name: str, project_dir: Path) -> Path:
    """A real model's TFLM firmware for qemu-cortex-m4, built into project_dir; returns the model."""
    from tinyedge.build import build
    from tinyedge.generate import generate

    tflite = REAL_MODELS / model_name
    if not tflite.exists():
        pytest.skip(f"{REAL_MODELS} is absent (the real trained models)")
    require_tools(*BOARD_TOOLS["qemu-cortex-m4"])
    generate(tflite, "qemu-cortex-m4", project_dir, runtime="tflm", tflm_dir=tflm_tree())
    build(project_dir)
    return tflite


@requires_tflm
def test_tflm_corrupted_replies_of_a_multi_chunk_model_stay_exact(tmp_path):
    """The same as above on TFLM's interpreter, whose arena planner reuses the input's memory:
    person_detect's 9,216-byte input takes ten chunks on QEMU."""
    from tinyedge.flash import flash
    from tinyedge.reference import Reference
    from tinyedge.tflite_model import load_tflite

    tflite = tflm_firmware_on_qemu("person_detect.tflite", tmp_path / "fw")
    model = load_tflite(tflite)
    reference = Reference(model)
    shape = model.input_tensors[0].shape
    with flash(tmp_path / "fw") as url, FaultProxy(url) as proxy, \
            open_device(proxy.url, infer_timeout=120.0) as device:  # seconds per inference under QEMU
        assert device.info().runtime == "tflm"
        assert device.info().max_chunk < model.input_tensors[0].nbytes
        for seed in range(3):
            x = np.random.default_rng(seed).integers(-128, 128, size=shape, dtype=np.int8)
            expected = b"".join(np.asarray(a).tobytes() for a in reference.run([x]))
            proxy.corrupter.left[INFER_REPLY] = 1
            assert device.infer(x.tobytes()).output == expected
        assert proxy.corrupter.done[INFER_REPLY] == 3


@requires_tflm
def test_tflm_resnet_on_qemu_is_waited_for_not_sent_again(tmp_path):
    """TFLM's reference kernels take ~11 s per ResNet-8 inference under QEMU: more than the 5 s every
    other request gets. validate's INFER timeout follows the model's MACs, so nothing is re-sent."""
    import json

    from conftest import run_tinyedge
    from tinyedge.flash import flash

    tflite = tflm_firmware_on_qemu("pretrainedResnet_quant.tflite", tmp_path / "fw")
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).integers(-128, 128, size=(1, 32, 32, 3), dtype=np.int8))
    with flash(tmp_path / "fw") as url:
        result = run_tinyedge("validate", "--port", url, "--model", tflite, "--data", data, "--board", "qemu-cortex-m4",
                              "--json", tmp_path / "r.json", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["link"]["infer_timeout_s"] > 30
    assert (report["link"]["retries"], report["link"]["timeouts"]) == (0, 0)
