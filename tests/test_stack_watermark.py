"""The stack's high-water mark rides in INFO: the mps2 startup paints the free RAM below the stack
at reset and te_port_stack_used() finds how far down the paint was overwritten. Ports that cannot
measure it report 0, which the host reads as None."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from conftest import require_tools
from fixtures.posix_firmware import build_firmware, start_firmware

from tinyedge.boards import get_board
from tinyedge.build import build
from tinyedge.flash import flash
from tinyedge.frameworks.baremetal import memory_map
from tinyedge.generate import generate
from tinyedge.protocol import (
    Device,
    DeviceInfo,
    FrameError,
    TensorInfo,
    encode_info,
    parse_info,
)
from tinyedge.reference import Reference
from tinyedge.tflite_model import load_tflite

BOARD = "qemu-cortex-m4"


@pytest.fixture(scope="module")
def cnn_on_qemu(cnn_model, tmp_path_factory):
    require_tools("arm-none-eabi-gcc", "make", "qemu-system-arm")
    out = tmp_path_factory.mktemp("stack-watermark") / "fw"
    generate(cnn_model.int8, BOARD, out, runtime="aot")
    build(out)
    return out


def test_qemu_reports_a_stack_high_water_mark_that_grows_with_inference(cnn_on_qemu, cnn_model):
    reserved = memory_map(get_board(BOARD))["stack_bytes"]
    model = load_tflite(cnn_model.int8)
    reference = Reference(model)
    rng = np.random.default_rng(3)
    with flash(cnn_on_qemu) as url, Device(url) as device:
        at_boot = device.info().stack_used
        assert at_boot is not None and 0 < at_boot < reserved
        for _ in range(3):
            x = rng.integers(-128, 128, size=model.input_tensors[0].shape, dtype=np.int8)
            result = device.infer(x.tobytes())
            assert result.output == reference.run([x])[0].tobytes()
        after = device.info(refresh=True).stack_used
    assert after is not None and after < reserved
    assert after > at_boot, "the convolution kernels go deeper than booting and answering INFO"


def test_a_port_without_the_hook_reports_no_stack_figure(tmp_path):
    require_tools("cc")
    binary = build_firmware(tmp_path)
    with start_firmware(binary) as firmware, Device(firmware.url) as device:
        assert device.info().stack_used is None


def test_info_replies_with_and_without_the_trailing_stack_field_both_parse():
    info = DeviceInfo(1, "qemu-cortex-m4", "aot", "1", "ab" * 32, [TensorInfo("int8", (1, 4), 0.5, -3, 4)],
                      [TensorInfo("int8", (1, 2), 0.25, 0, 2)], 64, 64, 25_000_000, 25_000_000, 1007)
    older_firmware = encode_info(info)
    assert parse_info(older_firmware).stack_used is None
    assert parse_info(older_firmware + struct.pack("<I", 1234)).stack_used == 1234
    assert parse_info(older_firmware + struct.pack("<I", 0)).stack_used is None
    assert parse_info(older_firmware + struct.pack("<I", 1234) + b"later field").stack_used == 1234
    assert parse_info(encode_info(DeviceInfo(**{**info.__dict__, "stack_used": 96}))).stack_used == 96
    with pytest.raises(FrameError):
        parse_info(older_firmware + b"\x01\x02")
