"""The protocol's framing and message encoding, checked as properties (host side, pure Python)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyedge.protocol import (
    DTYPES,
    DeviceInfo,
    FrameError,
    MSG_PING,
    FrameSplitter,
    TensorInfo,
    crc32,
    decode_frame,
    encode_frame,
    encode_info,
    max_chunk_for_rx_buffer,
    parse_info,
    rcobs_decode,
    rcobs_encode,
    request_wire_bytes,
)

REPO = Path(__file__).resolve().parent.parent


def test_crc32_is_the_ieee_crc_with_its_check_value():
    assert crc32(b"123456789") == 0xCBF43926


def test_rcobs_known_encodings():
    assert rcobs_encode(b"") == b"\x01"
    assert rcobs_encode(b"\x00") == b"\x01\x01"
    assert rcobs_encode(b"A\x00B") == b"A\x02B\x02"
    assert rcobs_encode(b"A" * 254 + b"B") == b"A" * 254 + b"\xff" + b"B\x02"


@given(st.binary(max_size=2000))
def test_rcobs_round_trips_without_zeros_and_with_bounded_overhead(data):
    encoded = rcobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + 1 + len(data) // 254
    assert rcobs_decode(encoded) == data


@given(st.binary(min_size=1, max_size=600).filter(lambda b: 0 not in b))
def test_rcobs_decode_of_garbage_raises_only_frame_errors(garbage):
    try:
        rcobs_decode(garbage)
    except FrameError:
        pass


@given(st.integers(0, 255), st.integers(0, 2**32 - 1), st.binary(max_size=1500))
def test_frames_round_trip(msg_type, request_id, body):
    wire = encode_frame(msg_type, request_id, body)
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    frame = decode_frame(wire[:-1])
    assert (frame.type, frame.request_id, frame.body) == (msg_type, request_id, body)


@given(st.integers(1, 255), st.binary(max_size=300), st.data())
def test_any_single_bit_flip_is_detected(msg_type, body, data):
    wire = bytearray(encode_frame(msg_type, 7, body)[:-1])
    position = data.draw(st.integers(0, len(wire) - 1))
    wire[position] ^= 1 << data.draw(st.integers(0, 7))
    for piece in bytes(wire).split(b"\x00"):
        if piece:
            with pytest.raises(FrameError):
                decode_frame(piece)


@given(st.binary(max_size=400))
def test_decode_frame_on_garbage_raises_only_frame_errors(garbage):
    for piece in garbage.split(b"\x00"):
        try:
            decode_frame(piece)
        except FrameError:
            pass


@given(st.lists(st.binary(max_size=80), max_size=8), st.binary(max_size=200), st.data())
def test_splitter_finds_frames_after_boot_text_however_the_bytes_arrive(bodies, boot_text, data):
    frames = [encode_frame(0x82, n, body) for n, body in enumerate(bodies)]
    stream = boot_text + b"\x00" + b"".join(frames)
    splitter = FrameSplitter()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        splitter.feed(stream[start:end])
    decoded = []
    for piece in splitter.frames:
        try:
            decoded.append(decode_frame(piece))
        except FrameError:
            continue
    assert [f.body for f in decoded if f.type == 0x82] == bodies


tensors = st.builds(
    TensorInfo,
    dtype=st.sampled_from(sorted(DTYPES.values())),
    shape=st.lists(st.integers(-2**31, 2**31 - 1), max_size=6).map(tuple),
    scale=st.floats(width=32, allow_nan=False),
    zero_point=st.integers(-2**31, 2**31 - 1),
    nbytes=st.integers(0, 2**32 - 1),
)
u32 = st.integers(0, 2**32 - 1)
names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40).filter(
    lambda s: len(s.encode()) <= 255)
infos = st.builds(
    DeviceInfo, protocol_version=st.integers(0, 255), board_id=names, runtime=names, runtime_version=names,
    model_sha256=st.binary(min_size=32, max_size=32).map(bytes.hex),
    inputs=st.lists(tensors, max_size=4), outputs=st.lists(tensors, max_size=4),
    arena_used=u32, arena_size=u32, clock_hz=u32, cycle_hz=u32, max_chunk=u32,
    runtime_status=st.integers(0, 255))


@given(infos)
def test_info_bodies_round_trip(info):
    assert parse_info(encode_info(info)) == info


@given(st.binary(max_size=300))
def test_parse_info_on_garbage_raises_only_frame_errors(garbage):
    try:
        parse_info(garbage)
    except FrameError:
        pass


@settings(max_examples=300)
@given(st.integers(17, 200_000))
def test_max_chunk_fills_but_never_overruns_the_receive_buffer(rx_buffer):
    chunk = max_chunk_for_rx_buffer(rx_buffer)
    assert chunk >= 1
    assert request_wire_bytes(chunk) <= rx_buffer < request_wire_bytes(chunk + 1)


def test_a_64_byte_uart_buffer_gets_48_byte_chunks():
    assert max_chunk_for_rx_buffer(64) == 48
    assert request_wire_bytes(48) == 64


@pytest.mark.parametrize("rx_buffer", [24, 64, 256, 1024, 4096, 65_000, 200_000])
def test_device_derives_the_same_chunk_from_its_rx_buffer(rx_buffer, tmp_path):
    program = tmp_path / "chunk.c"
    program.write_text('#include <stdio.h>\n#include "te_protocol.h"\n'
                       'int main(void) { printf("%ld\\n", (long)(TE_PROTO_MAX_CHUNK)); return 0; }\n')
    subprocess.run(["cc", f"-I{REPO / 'tinyedge' / 'firmware' / 'protocol'}", f"-DTE_PROTO_RX_BUFFER={rx_buffer}",
                    str(program), "-o", str(tmp_path / "chunk")], check=True)
    announced = int(subprocess.run([str(tmp_path / "chunk")], capture_output=True, text=True, check=True).stdout)
    assert request_wire_bytes(announced) <= rx_buffer
    assert announced >= max_chunk_for_rx_buffer(rx_buffer) - 1


def test_frame_crc_is_little_endian_over_type_request_id_and_body():
    wire = encode_frame(0x04, 0x0A0B0C09, b"\x01\x02")
    raw = rcobs_decode(wire[:-1])
    assert raw[:7] == b"\x04\x09\x0c\x0b\x0a\x01\x02"
    assert struct.unpack("<I", raw[7:])[0] == zlib.crc32(b"\x04\x09\x0c\x0b\x0a\x01\x02")


def test_the_link_counters_are_the_reports_contract():
    from tinyedge.protocol import LinkStats

    assert list(LinkStats().as_dict()) == ["retries", "crc_errors", "resyncs", "timeouts", "stale"]


def test_a_frame_whose_end_was_lost_can_be_dropped_before_the_next_one():
    splitter = FrameSplitter()
    splitter.feed(encode_frame(MSG_PING, 1)[:5])
    assert splitter.pending
    splitter.drop_pending()
    splitter.feed(b"\x00" + encode_frame(MSG_PING, 2))
    assert not splitter.pending
    assert [decode_frame(f).request_id for f in splitter.frames] == [2]
