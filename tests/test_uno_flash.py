"""The emulated Uno flashes the same on a busy machine as on an idle one, and a failed flash says
why (issue 17, item 8): Optiboot's one-second window is the board's, not the host's scheduler's, and
avrdude's pty modem-line noise is never given as the reason."""

from __future__ import annotations

import os
import time
import tty

import pytest
import serial

from conftest import require_tools
from tinyedge.boards import get_board
from tinyedge.errors import TinyedgeError
from tinyedge.flashers.avrdude import emulated_uno, run_avrdude

STK_GET_SYNC, CRC_EOP = b"\x30", b"\x20"
STK_INSYNC_OK = b"\x14\x10"


def get_sync(port: serial.Serial) -> bytes:
    port.reset_input_buffer()
    port.write(STK_GET_SYNC + CRC_EOP)
    return port.read(2)


def test_the_bootloader_waits_for_a_programmer_stalled_by_a_busy_host():
    require_tools("pkg-config", "cc")
    board = get_board("arduino-uno")
    with emulated_uno(board) as pty, serial.serial_for_url(pty, baudrate=115200, timeout=3) as port:
        for attempt in range(5):          # the first bytes may arrive while Optiboot starts
            if get_sync(port) == STK_INSYNC_OK:
                break
        else:
            pytest.fail("Optiboot never answered STK_GET_SYNC")
        time.sleep(2.5)                   # avrdude descheduled for longer than the 1 s window
        assert get_sync(port) == STK_INSYNC_OK, "the bootloader gave up while the host was busy"


def test_a_bootloader_that_never_answers_is_named_not_the_ptys_modem_lines(tmp_path):
    require_tools("avrdude")
    controller, device = os.openpty()
    tty.setraw(device)
    hex_path = tmp_path / "firmware.hex"
    hex_path.write_text(":00000001FF\n")
    try:
        with pytest.raises(TinyedgeError) as refused:
            run_avrdude(get_board("arduino-uno"), os.ttyname(device), hex_path, None)
    finally:
        os.close(controller)
        os.close(device)
    message = str(refused.value)
    assert "did not answer avrdude" in message and "TIOCM" not in message, message
