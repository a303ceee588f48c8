"""Board profiles are data: listed, shown, and validated with the board, field and problem."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO, run_tinyedge
from tinyedge.boards import load_boards
from tinyedge.errors import TinyedgeError
from tinyedge.plugins import get_flasher, get_framework
from tinyedge.sections import ArduinoSettings, Uf2Settings

REQUIRED_BOARDS = {"host", "qemu-cortex-m4", "esp32-devkitc", "esp32-s3-devkitc", "arduino-nano-33-ble",
                   "raspberry-pi-pico", "arduino-uno"}


def test_the_starting_boards_are_listed_with_real_figures():
    result = run_tinyedge("boards", "--json")
    assert result.returncode == 0, result.stderr
    boards = {b["id"]: b for b in json.loads(result.stdout)}
    assert REQUIRED_BOARDS <= set(boards)
    assert boards["arduino-uno"]["ram_bytes"] == 2048
    assert "2341:0043" in boards["arduino-uno"]["usb_ids"]
    assert "303A:1001" in boards["esp32-s3-devkitc"]["usb_ids"]
    assert "2E8A:000A" in boards["raspberry-pi-pico"]["usb_ids"]
    assert "2341:805A" in boards["arduino-nano-33-ble"]["usb_ids"]
    assert "10C4:EA60" in boards["esp32-devkitc"]["usb_ids"]
    assert boards["esp32-devkitc"]["esptool"]["offsets"]["bootloader"] == 0x1000
    assert boards["esp32-s3-devkitc"]["esptool"]["offsets"]["bootloader"] == 0x0
    assert boards["qemu-cortex-m4"]["emulator"]["machine"] == "mps2-an386"


def test_boards_show_one():
    result = run_tinyedge("boards", "show", "raspberry-pi-pico")
    assert result.returncode == 0, result.stderr
    assert "RP2040" in result.stdout and "uf2" in result.stdout
    missing = run_tinyedge("boards", "show", "nope")
    assert missing.returncode == 1 and "unknown board 'nope'" in missing.stderr


def _write_profiles(tmp_path, mutate) -> None:
    doc = yaml.safe_load((REPO / "tinyedge" / "boards.yaml").read_text())
    mutate(doc["boards"])
    (tmp_path / "boards.yaml").write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize("mutate, field, words", [
    (lambda b: b["arduino-uno"].pop("flash_bytes"), "flash_bytes", "is missing"),
    (lambda b: b["arduino-uno"].update(ram_bytes="2k"), "ram_bytes", "must be a int"),
    (lambda b: b["esp32-devkitc"].update(flasher="jtag"), "flasher", "must be one of"),
    (lambda b: b["host"].update(usb_ids=["2341-0043"]), "usb_ids", "VID:PID"),
    (lambda b: b["arduino-uno"].update(runtimes=["tflm"]), "tflm", "names no TFLM source"),
    (lambda b: b["arduino-uno"].update(progmem="yes"), "progmem", "must be true or false"),
    (lambda b: b["raspberry-pi-pico"]["uf2"].update(running_usb_id="2E8A"), "uf2.running_usb_id", "VID:PID"),
    (lambda b: b["esp32-devkitc"]["arduino"].update(index_url="package_esp32_index.json"), "arduino.index_url",
     "is not an http(s) URL"),
    # Every section is typed and parsed when the file loads: a typo or a wrong type is caught before any stage.
    (lambda b: b["esp32-devkitc"]["esptool"].update(flash_baud="fast"), "esptool.flash_baud", "must be a int"),
    (lambda b: b["esp32-devkitc"]["esptool"].update(chipp="esp32"), "esptool.chipp", "is not a field of `esptool`"),
    (lambda b: b["qemu-cortex-m4"]["memory"]["flash"].pop("length"), "memory.flash.length", "is missing"),
    (lambda b: b["qemu-cortex-m4"]["emulator"].update(args="-nographic"), "emulator.args", "must be a list"),
    (lambda b: b["micropython-unix"]["micropython"].pop("heap_bytes"), "micropython.heap_bytes", "is missing"),
    (lambda b: b["arduino-uno"].update(avrr={"mcu": "atmega328p"}), "avrr", "is not a profile field or section"),
    (lambda b: b["arduino-uno"].update(port=7), "port", "must be a str"),
])
def test_a_bad_profile_names_board_field_and_problem(tmp_path, mutate, field, words):
    _write_profiles(tmp_path, mutate)
    with pytest.raises(TinyedgeError) as excinfo:
        load_boards(tmp_path / "boards.yaml")
    message = str(excinfo.value)
    assert f"field '{field}'" in message and words in message


def test_a_bad_profile_from_the_cli(tmp_path):
    _write_profiles(tmp_path, lambda b: b["arduino-uno"].update(baud=0))
    result = run_tinyedge("boards", env={"TINYEDGE_BOARDS": str(tmp_path / "boards.yaml")})
    assert result.returncode == 1
    assert "board 'arduino-uno', field 'baud'" in " ".join(result.stderr.split())


def test_board_facts_live_in_the_profile():
    """What plug-ins used to hard-code per board is read from boards.yaml."""
    boards = load_boards()
    assert boards["arduino-uno"].progmem and not boards["qemu-cortex-m4"].progmem
    assert boards["raspberry-pi-pico"].settings(Uf2Settings).running_usb_id == "2E8A:000A"
    assert boards["esp32-devkitc"].settings(ArduinoSettings).index_url.endswith("/package_esp32_index.json")


def test_every_board_has_the_sections_its_plug_ins_require():
    """A profile that lacks a section its framework or flasher needs is caught here, not at a user's build."""
    for board in load_boards().values():
        for plugin in (get_framework(board.framework), get_flasher(board.flasher)):
            for section in plugin.sections:
                if section.required():
                    assert board.has_section(section), f"{board.id} lacks `{section.name}` ({plugin.name} reads it)"
