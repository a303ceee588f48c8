"""The protocol end to end: the real C implementation (firmware/protocol + the posix port, over the
test-fixture runtime) on a pseudo-terminal, driven by tinyedge.protocol.Device as validate/deploy do."""

from __future__ import annotations

import hashlib
import os
import random
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from fixtures.posix_firmware import FixtureModel, build_firmware, start_firmware
from tinyedge.errors import DeviceError
from tinyedge.protocol import (
    BAD_CRC,
    BAD_SEQUENCE,
    BAD_TYPE,
    MSG_BOOT,
    MSG_INFO,
    MSG_NAK,
    MSG_PING,
    MSG_REPLY,
    MSG_WRITE,
    PROTOCOL_VERSION,
    Device,
    FrameError,
    FrameSplitter,
    decode_frame,
    encode_frame,
    max_chunk_for_rx_buffer,
)

UNO_RX_BUFFER = 64
UNO_CHUNK = max_chunk_for_rx_buffer(UNO_RX_BUFFER)
HOST_CHUNK = max_chunk_for_rx_buffer(4096)
FIXTURE_SHA256 = hashlib.sha256(b"tinyedge fixture model").hexdigest()


class FirmwareBuilds:
    """Host firmware builds shared by the session, one per (model, defines)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[tuple, Path] = {}

    def get(self, model: FixtureModel = FixtureModel(), **defines: int | str) -> Path:
        key = (model, tuple(sorted(defines.items())))
        if key not in self._built:
            name = f"fw{len(self._built)}"
            self._built[key] = build_firmware(self.root / name, model, extra_defines=defines)
        return self._built[key]


@pytest.fixture(scope="session")
def builds(tmp_path_factory) -> FirmwareBuilds:
    return FirmwareBuilds(tmp_path_factory.mktemp("protocol-firmware"))


@pytest.fixture(scope="session")
def uno_like(builds) -> Path:
    """Default fixture model, chunks sized for a 64-byte UART receive buffer like the Uno's."""
    return builds.get(TE_PROTO_RX_BUFFER=UNO_RX_BUFFER)


def open_device(url: str, **kwargs) -> Device:
    return Device(url, **{"timeout": 2.0, "boot_timeout": 5.0, **kwargs})


def random_input(model: FixtureModel, seed: int) -> bytes:
    return random.Random(seed).randbytes(model.input_bytes)


def test_info_describes_board_runtime_and_model(uno_like):
    with start_firmware(uno_like) as fw, open_device(fw.url) as device:
        info = device.info()
    assert info.protocol_version == PROTOCOL_VERSION
    assert (info.board_id, info.runtime, info.runtime_version) == ("host", "fixture", "1.0.0")
    assert info.model_sha256 == FIXTURE_SHA256
    assert [(t.dtype, t.shape, t.scale, t.zero_point, t.nbytes) for t in info.inputs] == [
        ("int8", (1, 100), 0.5, -3, 100), ("float32", (1, 4, 1, 1), 0.0, 0, 16)]
    assert [(t.dtype, t.shape, t.scale, t.zero_point, t.nbytes) for t in info.outputs] == [
        ("int8", (1, 100), 0.25, 5, 100), ("int32", (1,), 0.0, 0, 4)]
    assert (info.arena_used, info.arena_size) == (220, 16384)
    assert (info.clock_hz, info.cycle_hz) == (48_000_000, 1_000_000_000)
    assert info.max_chunk == UNO_CHUNK == 48
    assert info.runtime_status == 0


@pytest.mark.parametrize("model", [
    FixtureModel(in0_bytes=1, in1_floats=0, out0_bytes=1),
    FixtureModel(in0_bytes=50, in1_floats=0),
    FixtureModel(in0_bytes=48, in1_floats=0),
    FixtureModel(in0_bytes=52, in1_floats=0),
    FixtureModel(in0_bytes=100, in1_floats=4),
    FixtureModel(in0_bytes=1024, in1_floats=0, out0_bytes=12),
    FixtureModel(in0_bytes=3000, in1_floats=37, out0_bytes=2000),
], ids=lambda m: f"in{m.input_bytes}-out{m.out0 + 4}")
def test_infer_round_trips_inputs_of_any_size_in_chunks(builds, model):
    firmware = builds.get(model, TE_PROTO_RX_BUFFER=UNO_RX_BUFFER)
    inputs = [bytes(model.input_bytes), b"\xff" * model.input_bytes,
              *(random_input(model, seed) for seed in range(3))]
    with start_firmware(firmware) as fw, open_device(fw.url) as device:
        for data in inputs:
            result = device.infer(data)
            assert result.output == model.expected_output(data)
            assert result.cycles > 0
            assert result.micros is not None
        assert device.retransmissions == 0
        assert device.payload_sent == len(inputs) * model.input_bytes
    assert "overrun" not in fw.stderr()


def test_chunks_never_overrun_a_64_byte_receive_fifo(builds):
    model = FixtureModel(in0_bytes=1024, in1_floats=0, out0_bytes=12)
    firmware = builds.get(model, TE_PROTO_RX_BUFFER=UNO_RX_BUFFER)
    with start_firmware(firmware, env={"TE_POSIX_RX_FIFO": "64"}) as fw, open_device(fw.url) as device:
        for seed in range(5):
            data = random_input(model, seed)
            assert device.infer(data).output == model.expected_output(data)
        assert device.retransmissions == 0
        assert device.resets_seen == 0
    assert "overrun" not in fw.stderr()


def test_chunks_too_big_for_the_fifo_overrun_it_and_the_host_shrinks_them(builds):
    """The control experiment: the emulated FIFO really drops bytes when a frame does not fit; the
    host then halves its chunks until they arrive whole, so the results are still exact."""
    model = FixtureModel(in0_bytes=1024, in1_floats=0, out0_bytes=12)
    firmware = builds.get(model, TE_PROTO_MAX_CHUNK=200)
    with start_firmware(firmware, env={"TE_POSIX_RX_FIFO": "64"}) as fw, \
            open_device(fw.url, timeout=0.5, retries=2) as device:
        for seed in range(3):
            data = random_input(model, seed)
            assert device.infer(data).output == model.expected_output(data)
        assert device.link.crc_errors > 0
    assert "UART overrun" in fw.stderr()


def test_without_shrinking_chunks_an_overrunning_fifo_ends_in_a_clear_error(builds):
    model = FixtureModel(in0_bytes=1024, in1_floats=0, out0_bytes=12)
    firmware = builds.get(model, TE_PROTO_MAX_CHUNK=200)
    with start_firmware(firmware, env={"TE_POSIX_RX_FIFO": "64"}) as fw, \
            open_device(fw.url, timeout=0.5, retries=2) as device:
        device.info()
        device._chunk = 200
        with pytest.raises(DeviceError, match="kept corrupting frames"):
            device._checked(MSG_WRITE, struct.pack("<I", 0) + random_input(model, 0)[:200], "WRITE")
    assert "UART overrun" in fw.stderr()


def test_corrupted_frames_in_both_directions_are_retried(uno_like):
    model = FixtureModel()
    # Bytes 11-24 sent by the device answer the opening PING; flip bits in later replies, and
    # in the requests' WRITE chunks.
    env = {"TE_POSIX_FLIP_TX": "40,400,800,1200", "TE_POSIX_FLIP_RX": "30,300,700,1100"}
    with start_firmware(uno_like, env=env) as fw, open_device(fw.url) as device:
        for seed in range(10):
            data = random_input(model, seed)
            assert device.infer(data).output == model.expected_output(data)
        assert device.retransmissions >= 6
        assert device.link.crc_errors >= 6
    assert device.info().board_id == "host"


def test_a_noisy_line_still_gives_exact_results(uno_like):
    model = FixtureModel()
    env = {"TE_POSIX_NOISE": "400,7"}  # a flipped bit in about one byte in 400, both ways
    with start_firmware(uno_like, env=env) as fw, open_device(fw.url, timeout=1.0, retries=6) as device:
        for seed in range(15):
            data = random_input(model, seed)
            assert device.infer(data).output == model.expected_output(data)
        assert device.retransmissions > 0


def test_repeated_crc_failures_end_in_a_clear_error(uno_like):
    flips = ",".join(str(n) for n in range(32, 160, 2))  # the replies after BOOT and the first PING
    with start_firmware(uno_like, env={"TE_POSIX_FLIP_TX": flips}) as fw, \
            open_device(fw.url, timeout=0.5, retries=3, corruption_retries=3) as device:
        with pytest.raises(DeviceError, match=r"the link to .* kept corrupting frames .*check the cable"):
            device.ping()


def test_boot_noise_before_the_first_frame_is_skipped(uno_like):
    model = FixtureModel()
    env = {"TE_POSIX_BOOT_DELAY_MS": "800", "TE_POSIX_BOOT_NOISE": "1"}
    with start_firmware(uno_like, env=env) as fw, open_device(fw.url) as device:
        data = random_input(model, 1)
        assert device.info().runtime == "fixture"
        assert device.infer(data).output == model.expected_output(data)


def test_a_reset_in_the_middle_of_an_input_is_detected_and_the_request_redone(builds):
    model = FixtureModel(in0_bytes=1024, in1_floats=0, out0_bytes=12)
    firmware = builds.get(model, TE_PROTO_RX_BUFFER=UNO_RX_BUFFER)
    with start_firmware(firmware, env={"TE_POSIX_RESET_AT_RX": "400"}) as fw, open_device(fw.url) as device:
        device.info()
        data = random_input(model, 2)
        assert device.infer(data).output == model.expected_output(data)
        assert device.infer(data[::-1]).output == model.expected_output(data[::-1])
    assert "simulated reset" in fw.stderr()
    assert device.resets_seen >= 1 or device.retransmissions >= 1


def test_a_reset_between_requests_is_detected(uno_like):
    model = FixtureModel()
    with start_firmware(uno_like) as fw, open_device(fw.url) as device:
        data = random_input(model, 3)
        assert device.infer(data).output == model.expected_output(data)
        fw.reset()
        time.sleep(0.3)
        assert device.infer(data).output == model.expected_output(data)
        assert device.resets_seen == 1


def test_set_arena_finds_the_smallest_working_arena(uno_like):
    model = FixtureModel()
    with start_firmware(uno_like) as fw, open_device(fw.url) as device:
        full = device.info().arena_size
        low, high = 0, full  # invariant: low fails, high works
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if device.set_arena(middle) else (middle, high)
        assert high == 220
        assert not device.set_arena(high - 1)
        with pytest.raises(DeviceError, match="'arena too small'"):
            device.infer(random_input(model, 0))
        assert device.set_arena(full)
        assert device.info().arena_size == full
        data = random_input(model, 4)
        assert device.infer(data).output == model.expected_output(data)


def test_device_errors_come_back_as_named_codes(uno_like):
    model = FixtureModel()
    with start_firmware(uno_like) as fw, open_device(fw.url) as device:
        with pytest.raises(DeviceError, match=r"answered INFER with error 'invoke failed' \(code 0x02\)"):
            device.infer(b"FAIL" + bytes(model.input_bytes - 4))
        with pytest.raises(DeviceError, match="takes 116 input bytes but 3 were given"):
            device.infer(b"abc")
        data = random_input(model, 5)
        assert device.infer(data).output == model.expected_output(data)


def test_reset_state_is_answered_repeatably_and_ends_a_partial_input(uno_like):
    model = FixtureModel()
    data = random_input(model, 6)
    with start_firmware(uno_like) as fw, open_device(fw.url) as device:
        device.reset_state()
        device.reset_state()
        assert device.infer(data).output == model.expected_output(data)
        device._checked(MSG_WRITE, struct.pack("<I", 0) + data[:8], "WRITE")
        device.reset_state()
        status, _ = device._exchange(MSG_WRITE, struct.pack("<I", 8) + data[8:16], "WRITE")
        assert status == BAD_SEQUENCE
        assert device.infer(data).output == model.expected_output(data)


def test_a_runtime_that_failed_to_start_is_reported(builds):
    firmware = builds.get(FixtureModel(), FIXTURE_INIT_FAILS=1)
    with start_firmware(firmware) as fw, open_device(fw.url) as device:
        assert device.info().runtime_status == 1
        with pytest.raises(DeviceError, match="'runtime init failed'.*larger arena"):
            device.infer(bytes(116))


def test_a_missing_port_says_which_and_what_to_check():
    with pytest.raises(DeviceError) as error:
        Device("/dev/tinyedge-no-such-port")
    message = str(error.value)
    assert "/dev/tinyedge-no-such-port" in message and "no such port" in message
    assert "`tinyedge ports`" in message


def test_a_silent_device_times_out_with_advice():
    controller, silent = os.openpty()
    try:
        started = time.monotonic()
        with pytest.raises(DeviceError) as error:
            Device(os.ttyname(silent), boot_timeout=1.0)
        assert 0.9 < time.monotonic() - started < 3
        assert str(error.value) == (f"no answer from {os.ttyname(silent)} within 1s: "
                                    "is the firmware flashed and the baud rate right?")
    finally:
        os.close(controller)
        os.close(silent)


def test_a_device_that_stops_answering_mid_run_times_out(uno_like):
    with start_firmware(uno_like) as fw, open_device(fw.url, retries=1) as device:
        device.info()
        device.timeout = 0.3
        fw.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(DeviceError, match=r"no answer from .* within 0.3s"):
                device.infer(bytes(116))
        finally:
            fw.process.send_signal(signal.SIGCONT)


def test_efficiency_of_a_1_kib_input_on_the_host_board(builds):
    model = FixtureModel(in0_bytes=1024, in1_floats=0, out0_bytes=12)
    firmware = builds.get(model, TE_PROTO_RX_BUFFER=4096)
    with start_firmware(firmware) as fw, open_device(fw.url) as device:
        device.info()
        sent, received = device.bytes_sent, device.bytes_received
        data = random_input(model, 9)
        output = device.infer(data).output
        wire = device.bytes_sent - sent + device.bytes_received - received
    assert device.info is not None and len(output) == 16
    assert (len(data) + len(output)) / wire >= 0.9
    assert len(data) / (device.bytes_sent - sent) >= 0.98


class StdioDevice:
    """Speak the protocol by hand to the firmware's --stdio mode, as a third-party host would."""

    def __init__(self, binary: Path) -> None:
        self.process = subprocess.Popen([str(binary), "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.splitter = FrameSplitter()

    def send(self, wire: bytes) -> None:
        assert self.process.stdin
        self.process.stdin.write(wire)
        self.process.stdin.flush()

    def next_frame(self):
        assert self.process.stdout
        while True:
            while not self.splitter.frames:
                self.splitter.feed(os.read(self.process.stdout.fileno(), 4096))
            try:
                return decode_frame(self.splitter.frames.popleft())
            except FrameError:
                continue  # boot text

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait(timeout=5)


def test_the_wire_format_by_hand_over_stdio(uno_like):
    device = StdioDevice(uno_like)
    try:
        boot = device.next_frame()  # the banner text before it is split off and fails to decode
        assert (boot.type, boot.body) == (MSG_BOOT, bytes((PROTOCOL_VERSION,)))

        device.send(b"\x00" + encode_frame(MSG_PING, 1))
        ping = device.next_frame()
        assert (ping.type, ping.request_id) == (MSG_PING | MSG_REPLY, 1)
        assert ping.body == bytes((0, PROTOCOL_VERSION)) + struct.pack("<I", UNO_CHUNK)

        corrupted = bytearray(encode_frame(MSG_INFO, 2))
        corrupted[5] ^= 0x40  # a byte of the CRC: the id still reads 2
        device.send(bytes(corrupted))
        nak = device.next_frame()
        assert (nak.type, nak.request_id, nak.body) == (MSG_NAK, 2, bytes((BAD_CRC,)))

        device.send(encode_frame(0x42, 3))
        nak = device.next_frame()
        assert (nak.type, nak.request_id, nak.body) == (MSG_NAK, 3, bytes((BAD_TYPE,)))

        device.send(encode_frame(MSG_WRITE, 4, struct.pack("<I", 10) + b"late"))
        write = device.next_frame()
        assert (write.type, write.request_id, write.body) == (MSG_WRITE | MSG_REPLY, 4, bytes((BAD_SEQUENCE,)))
    finally:
        device.close()
    assert device.process.returncode == 0


def test_every_reply_frame_starts_with_a_zero_so_printed_text_cannot_corrupt_it(uno_like):
    """Text a library prints on the protocol's port (TFLM's DebugLog on Arduino's Serial) ends up in
    a piece of its own, split off by the 0x00 that leads every frame."""
    device = StdioDevice(uno_like)
    try:
        device.next_frame()  # BOOT
        device.send(b"\x00" + encode_frame(MSG_PING, 5))
        wire = b""
        expected = b"\x00" + encode_frame(MSG_PING | MSG_REPLY, 5, bytes((0, PROTOCOL_VERSION)) + struct.pack("<I", UNO_CHUNK))
        while len(wire) < len(expected):
            wire += os.read(device.process.stdout.fileno(), 4096)
        assert wire == expected
    finally:
        device.close()
    splitter = FrameSplitter()
    splitter.feed(b"Failed to allocate tail memory. Requested: 1024\r\n" + wire)
    *text, reply = splitter.frames
    assert decode_frame(reply).request_id == 5


def serve_stdio_firmware_on_tcp(binary: Path) -> tuple[int, threading.Thread]:
    """A TCP server bridging one connection to the firmware's --stdio, as QEMU's serial socket does."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def bridge() -> None:
        connection, _ = server.accept()
        server.close()
        process = subprocess.Popen([str(binary), "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert process.stdin and process.stdout
        stdout = process.stdout.fileno()
        try:
            while True:
                ready, _, _ = select.select([connection, stdout], [], [], 10)
                if not ready:
                    break
                if connection in ready:
                    data = connection.recv(4096)
                    if not data:
                        break
                    process.stdin.write(data)
                    process.stdin.flush()
                if stdout in ready:
                    connection.sendall(os.read(stdout, 4096))
        finally:
            connection.close()
            process.stdin.close()
            process.wait(timeout=5)

    thread = threading.Thread(target=bridge, daemon=True)
    thread.start()
    return port, thread


def test_a_socket_url_works_like_qemus_serial_port(builds):
    model = FixtureModel(in0_bytes=300, in1_floats=2)
    firmware = builds.get(model, TE_PROTO_RX_BUFFER=1024)
    port, bridge = serve_stdio_firmware_on_tcp(firmware)
    with open_device(f"socket://127.0.0.1:{port}") as device:
        assert device.info().runtime == "fixture"
        for seed in range(3):
            data = random_input(model, seed)
            assert device.infer(data).output == model.expected_output(data)
    bridge.join(timeout=15)
    assert not bridge.is_alive()
