"""`tinyedge ports` / `tinyedge doctor`, and picking a board's serial port by its USB ids."""

from __future__ import annotations

import json
import os
import sys

import pytest

from conftest import run_tinyedge
from tinyedge.boards import get_board, load_boards
from tinyedge.errors import TinyedgeError
from tinyedge.ports import PortInfo, boards_for_usb_id, choose_port, find_board_port, wait_for_port

CP2102 = PortInfo("/dev/ttyUSB0", 0x10C4, 0xEA60, "0001", "CP2102 USB to UART Bridge Controller", "Silicon Labs")
NANO = PortInfo("/dev/ttyACM0", 0x2341, 0x805A, "A1B2C3", "Nano 33 BLE", "Arduino")
PICO = PortInfo("/dev/ttyACM1", 0x2E8A, 0x000A, "E660", "Pico", "Raspberry Pi")
ONBOARD = PortInfo("/dev/ttyS0")


def test_the_one_matching_port_is_chosen():
    assert choose_port(get_board("arduino-nano-33-ble"), [ONBOARD, CP2102, NANO, PICO]) == "/dev/ttyACM0"
    assert choose_port(get_board("raspberry-pi-pico"), [ONBOARD, CP2102, NANO, PICO]) == "/dev/ttyACM1"


def test_no_matching_port_names_the_board_and_its_usb_ids():
    board = get_board("esp32-devkitc")
    with pytest.raises(TinyedgeError) as error:
        choose_port(board, [ONBOARD, NANO])
    message = str(error.value)
    assert message.startswith(f"no {board.name} found (USB ids 10C4:EA60, 1A86:7523, 1A86:55D4)")
    assert message.endswith("connect it or pass --port.")


def test_several_matching_ports_are_listed_and_ask_for_port():
    second = PortInfo("/dev/ttyUSB1", 0x1A86, 0x7523, None, "USB Serial", "QinHeng")
    with pytest.raises(TinyedgeError) as error:
        choose_port(get_board("esp32-devkitc"), [CP2102, second])
    message = str(error.value)
    assert "/dev/ttyUSB0 (10C4:EA60, CP2102 USB to UART Bridge Controller, 0001)" in message
    assert "/dev/ttyUSB1 (1A86:7523, USB Serial)" in message
    assert message.endswith("pass --port with one of them.")


def test_an_emulated_board_has_no_usb_ids_to_look_for():
    with pytest.raises(TinyedgeError, match="lists no USB ids to look for: pass --port"):
        choose_port(get_board("qemu-cortex-m4"), [CP2102])


def test_find_board_port_on_this_machine_finds_no_nano():
    # No Nano 33 BLE is attached to the machines running this suite: the real port scan says so.
    with pytest.raises(TinyedgeError, match=r"no Arduino Nano 33 BLE \(Sense\) found .*connect it or pass --port"):
        find_board_port(get_board("arduino-nano-33-ble"))


def test_usb_ids_shared_by_several_profiles_list_them_all():
    boards = load_boards()
    assert set(boards_for_usb_id("10C4:EA60", boards)) == {"esp32-devkitc", "esp32-s3-devkitc", "esp32-micropython",
                                                           "esp32-s3-micropython"}
    assert set(boards_for_usb_id("1a86:7523", boards)) == {"esp32-devkitc", "arduino-uno", "esp32-micropython"}
    assert boards_for_usb_id(None, boards) == ()


def test_wait_for_port_sees_a_device_that_exists_and_times_out_on_one_that_does_not(tmp_path):
    master, slave = os.openpty()
    try:
        assert wait_for_port(os.ttyname(slave), timeout_s=1)
    finally:
        os.close(master)
        os.close(slave)
    assert not wait_for_port(str(tmp_path / "ttyACM9"), timeout_s=0.3)
    assert wait_for_port("socket://127.0.0.1:9", timeout_s=0)


def test_ports_json_lists_the_serial_ports_pyserial_sees():
    from serial.tools import list_ports

    result = run_tinyedge("ports", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [p["device"] for p in listed] == sorted(p.device for p in list_ports.comports())
    for port in listed:
        assert set(port) >= {"device", "usb_id", "serial_number", "description", "boards"}


def test_doctor_reports_present_and_missing_tools_with_install_lines_and_exits_0():
    result = run_tinyedge("doctor", "--json", env={"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    tools = {tool["command"].rsplit("/", 1)[-1]: tool for tool in report["tools"]}

    esptool = tools["esptool"]
    assert esptool["present"] and esptool["version"].startswith("esptool v")
    assert esptool["needed_by"] == ["flasher esptool: esp32-devkitc", "flasher esptool: esp32-s3-devkitc"]

    idf = tools["idf.py"]
    assert not idf["present"] and "export.sh" in idf["install"] and "install.sh" in idf["install"]
    assert "framework espidf: esp32-s3-devkitc" in idf["needed_by"]
    assert not tools["arduino-cli"]["present"] and "arduino-cli" in tools["arduino-cli"]["install"]
    assert not tools["pio"]["present"] and "pip install platformio" in tools["pio"]["install"]
    assert {"idf.py", "arduino-cli", "pio"} <= {m.rsplit("/", 1)[-1] for m in report["missing"]}

    qemu = tools.get("qemu-system-arm")
    if qemu is not None and qemu["present"]:
        assert "QEMU" in qemu["version"]
    assert report["serial"]["message"]


def test_doctor_says_how_to_make_a_tflm_tree_when_the_one_set_is_not(tmp_path):
    result = run_tinyedge("doctor", "--json", env={"TINYEDGE_TFLM_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    tflm = json.loads(result.stdout)["tflm"]
    assert tflm["configured"] and not tflm["valid"]
    assert "create_tflm_tree.py" in tflm["message"]


def test_doctor_table_for_people():
    result = run_tinyedge("doctor")
    assert result.returncode == 0, result.stderr
    assert "Tools" in result.stdout and "TFLM tree" in result.stdout and "serial access" in result.stdout
    assert "idf.py" in result.stdout
