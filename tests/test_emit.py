"""A user emits a model as a C array for the firmware, and test vectors for an on-device self-test."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from conftest import require_tools, run_tinyedge
from tinyedge.emit import c_identifier, emit_model, write_c_array
from tinyedge.errors import TinyedgeError
from tinyedge.reference import Reference
from tinyedge.tflite_model import load_tflite


def parse_array(text: str) -> bytes:
    body = text[text.index("{") + 1:text.index("};")]
    return bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body))


def test_emitted_array_round_trips_and_is_const_aligned(cnn_model, tmp_path):
    result = run_tinyedge("emit", cnn_model.int8, "-o", tmp_path, "--name", "kws-model v2")
    assert result.returncode == 0, result.stderr
    header = (tmp_path / "kws_model_v2.h").read_text()
    source = (tmp_path / "kws_model_v2.cc").read_text()
    assert "extern const unsigned char kws_model_v2[];" in header
    assert "extern const unsigned int kws_model_v2_len;" in header
    assert "const unsigned char kws_model_v2[] __attribute__((aligned(16)))" in source
    assert parse_array(source) == cnn_model.int8.read_bytes()
    assert f"kws_model_v2_len = {cnn_model.int8.stat().st_size};" in source


def test_emitted_array_compiles_into_flash_aligned(cnn_model, tmp_path):
    require_tools("arm-none-eabi-g++", "arm-none-eabi-nm")
    write_c_array(cnn_model.int8.read_bytes(), tmp_path, "model")
    obj = tmp_path / "model.o"
    subprocess.run(["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-c", tmp_path / "model.cc", "-o", obj], check=True)
    sections = subprocess.run(["arm-none-eabi-objdump", "-h", obj], capture_output=True, text=True, check=True).stdout
    rodata = next(line for line in sections.splitlines() if ".rodata" in line)
    assert "2**4" in sections.split(".rodata", 1)[1].splitlines()[0], rodata  # 16-byte alignment
    symbols = subprocess.run(["arm-none-eabi-nm", obj], capture_output=True, text=True, check=True).stdout
    assert re.search(r" R model$", symbols, re.M), symbols  # read-only data: stays in flash


def test_progmem_variant_for_avr(sine_model, tmp_path):
    require_tools("avr-g++")
    write_c_array(sine_model.int8.read_bytes(), tmp_path, "sine", progmem=True)
    source = (tmp_path / "sine.cc").read_text()
    assert "PROGMEM" in source and "<avr/pgmspace.h>" in (tmp_path / "sine.h").read_text()
    subprocess.run(["avr-g++", "-mmcu=atmega328p", "-Os", "-c", tmp_path / "sine.cc", "-o", tmp_path / "sine.o"], check=True)
    sections = subprocess.run(["avr-objdump", "-h", tmp_path / "sine.o"], capture_output=True, text=True, check=True).stdout
    assert ".progmem" in sections


def test_identifiers_are_valid_c():
    assert c_identifier("my-model v2.tflite") == "my_model_v2"
    assert c_identifier("2nd.tflite") == "model_2nd"
    assert c_identifier("int") == "int_data"
    assert c_identifier("///") == "model"


def test_test_vectors_match_the_host_reference(sine_model, tmp_path):
    data = np.load(sine_model.eval_x)
    emit_model(sine_model.int8, tmp_path, "sine", test_vectors=5, data=data)
    header = (tmp_path / "sine_test.h").read_text()
    assert "#define SINE_TEST_COUNT 5" in header
    source = (tmp_path / "sine_test.cc").read_text()
    outputs_block = source.split("sine_test_outputs")[1]
    expected = [int(v) for v in re.findall(r"-?\d+", outputs_block.split("=", 1)[1])]
    model = load_tflite(sine_model.int8)
    tin = model.input_tensors[0]
    ref = Reference(model)
    q = np.clip(np.round(data[:5] / tin.scale[0]) + tin.zero_point[0], -128, 127).astype(np.int8)
    assert expected == [int(ref.run_one(v.reshape(1, 1))[0, 0]) for v in q]


def test_test_vectors_need_data(sine_model, tmp_path):
    with pytest.raises(TinyedgeError, match="needs --data"):
        emit_model(sine_model.int8, tmp_path, test_vectors=3)


def test_a_one_megabyte_model_round_trips(tmp_path):
    """Its speed is measured in benchmarks/emit_speed.py, not timed here."""
    data = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    write_c_array(data, tmp_path, "big")
    assert parse_array((tmp_path / "big.cc").read_text()) == data


def test_emit_rejects_a_file_that_is_not_tflite(tmp_path):
    bogus = tmp_path / "model.tflite"
    bogus.write_bytes(b"\x00" * 64)
    result = run_tinyedge("emit", bogus, "-o", tmp_path / "out")
    assert result.returncode == 1
    assert "not a TensorFlow Lite model" in result.stderr and "Traceback" not in result.stderr


def test_test_vectors_refuse_uint8_data_for_an_int8_input_as_validate_does(cnn_model, tmp_path):
    data = np.load(cnn_model.eval_x)[:4]
    np.save(tmp_path / "raw.npy", np.clip(data * 255, 0, 255).astype(np.uint8))
    np.save(tmp_path / "wide.npy", (data * 1000).astype(np.int32))
    for name, says in (("raw.npy", "holds uint8 samples but the model's input is int8"),
                       ("wide.npy", "outside the int8 range")):
        result = run_tinyedge("emit", cnn_model.int8, "-o", tmp_path / "out", "--test-vectors", "2",
                              "--data", tmp_path / name)
        assert result.returncode == 1, result.stderr
        assert says in " ".join(result.stderr.split()) and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "cnn_test.cc").exists()
