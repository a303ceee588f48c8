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

from conftest import require_tools
from fixtures.fault_proxy import FaultProxy
from fixtures.posix_firmware import FixtureModel, build_firmware, start_firmware
from tinyedge.errors import DeviceError
from tinyedge.protocol import MSG_INFER, MSG_REPLY, MSG_WRITE, Device, infer_timeout

INFER_REPLY = MSG_INFER | MSG_REPLY
# Six 51-byte chunks on a 64-byte receive buffer (the Uno's), and a runtime that reuses the input's
# memory during Invoke, as TFLM's and the AOT's arena planners do.
MODEL = FixtureModel(in0_bytes=300, in1_floats=0, out0_bytes=12)
REAL_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "real"


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


def test_the_device_refuses_an_infer_whose_earlier_chunks_an_invoke_consumed(reusing_firmware):
    """Without a reply to replay (another request came between), the last chunk alone is refused as
    out of sequence, so the host starts the input over instead of getting outputs of a reused input."""
    data = sample(7)
    last = (len(data) - 1) // 51 * 51
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


def test_the_infer_timeout_follows_the_models_cost():
    # ResNet-8 (12.5 M MACs) on a 25 MHz board: far beyond the 5 s a PING gets.
    assert infer_timeout(5.0, 12_500_000, 25_000_000) > 40
    assert infer_timeout(5.0, 1_000, 25_000_000) == pytest.approx(5.0, abs=0.01)
    # 2,000 output bytes at 9,600 baud take 2.3 s on the wire.
    assert infer_timeout(5.0, 0, 16_000_000, wire_bytes=2000, baud=9600) == pytest.approx(7.29, abs=0.01)
