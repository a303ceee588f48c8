"""A user validates a flashed board against the host reference, and a rig reads the reports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from xml.etree import ElementTree as ET

from pathlib import Path

import numpy as np
import pytest

from conftest import TINYEDGE, require_tools, run_tinyedge
from tinyedge.build import build
from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.flash import flash
from tinyedge.generate import generate
from tinyedge.validate import validate

CONTRACT_KEYS = {"samples", "bit_exact", "max_abs_diff_lsb", "mean_abs_diff_lsb", "rmse", "cosine", "top1_agreement",
                 "arena_bytes", "model_sha256", "board", "runtime", "passed"}


def test_validation_passes_bit_exact_and_writes_rig_reports(host_board, cnn_model, tmp_path):
    result = run_tinyedge("validate", "--port", host_board, "--model", cnn_model.int8, "--data", cnn_model.eval_x,
                          "--labels", cnn_model.eval_y, "--float-model", cnn_model.keras,
                          "--json", tmp_path / "report.json", "--junit", tmp_path / "report.xml",
                          "--plot", tmp_path / "report.png")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and "bit-exact" in result.stdout

    report = json.loads((tmp_path / "report.json").read_text())
    assert CONTRACT_KEYS <= set(report)
    samples = len(np.load(cnn_model.eval_x))
    assert report["samples"] == samples and report["bit_exact"] == 1.0 and report["passed"] is True
    assert report["max_abs_diff_lsb"] == 0 and report["mean_abs_diff_lsb"] == 0
    assert report["cosine"] == pytest.approx(1.0) and report["rmse"] == 0
    assert report["top1_agreement"] == 1.0
    assert set(report["accuracy"]) == {"board", "host_int8", "float"}
    assert report["accuracy"]["board"] == report["accuracy"]["host_int8"]
    assert set(report["latency_us"]) == {"min", "median", "max"}
    assert report["board"] == "host" and report["runtime"] == "aot"
    assert report["arena_bytes"] > 0

    suite = ET.parse(tmp_path / "report.xml").getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "0" and int(suite.get("tests")) >= 2
    journal = (tmp_path / "report.jsonl").read_text().splitlines()
    assert len(journal) == samples + 1
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_an_interrupted_run(host_board, cnn_model, tmp_path):
    data = np.load(cnn_model.eval_x)
    journal = tmp_path / "run.jsonl"
    first = validate(host_board, cnn_model.int8, data[:20], journal_path=journal)
    assert first.samples == 20
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:11]) + "\n" + lines[11][:15])  # 10 results, then a line cut short
    resumed = validate(host_board, cnn_model.int8, data[:20], journal_path=journal, resume=True)
    assert resumed.samples == 20 and resumed.passed
    indices = [json.loads(line)["index"] for line in journal.read_text().splitlines()[1:] if line.endswith("}")]
    assert sorted(indices) == list(range(20))


def test_ctrl_c_leaves_a_valid_partial_report(host_board, cnn_model, tmp_path):
    many = np.repeat(np.load(cnn_model.eval_x), 400, axis=0)
    np.save(tmp_path / "many.npy", many)
    process = subprocess.Popen(
        [*TINYEDGE, "validate", "--port", host_board, "--model", str(cnn_model.int8), "--data", str(tmp_path / "many.npy"),
         "--json", str(tmp_path / "partial.json"), "--junit", str(tmp_path / "partial.xml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    journal = tmp_path / "partial.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 51):  # a header and 50 results
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    report = json.loads((tmp_path / "partial.json").read_text())
    assert report["interrupted"] is True and report["passed"] is False
    assert 50 <= report["samples"] < len(many) and report["bit_exact"] == 1.0
    suite = ET.parse(tmp_path / "partial.xml").getroot()
    assert suite.get("failures") == "1"


def test_a_board_running_another_model_is_refused(host_board, sine_model, tmp_path):
    result = run_tinyedge("validate", "--port", host_board, "--model", sine_model.int8, "--data", sine_model.eval_x)
    assert result.returncode == 3
    assert "the board runs a different model — flash it first" in " ".join(result.stderr.split())


def test_wrong_data_shape_is_one_sentence(host_board, cnn_model, sine_model):
    with pytest.raises(TinyedgeError, match="expects"):
        validate(host_board, cnn_model.int8, np.load(sine_model.eval_x))


def test_no_such_port(cnn_model, tmp_path):
    result = run_tinyedge("validate", "--port", "/dev/ttyNOPE0", "--model", cnn_model.int8, "--data", cnn_model.eval_x)
    assert result.returncode == 3
    assert "/dev/ttyNOPE0" in result.stderr and "Traceback" not in result.stderr


def test_a_silent_device(cnn_model):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        with pytest.raises(DeviceError, match="no answer|silent|did not answer"):
            validate(f"socket://127.0.0.1:{port}", cnn_model.int8, np.load(cnn_model.eval_x)[:2])
    finally:
        listener.close()


def test_deploy_the_sine_model_to_an_emulated_arduino_uno(sine_model, tmp_path):
    require_tools("avr-gcc", "avrdude", "pkg-config")
    result = run_tinyedge("deploy", sine_model.keras, "--board", "arduino-uno", "--calibration", sine_model.calibration,
                          "--data", sine_model.eval_x, "-o", tmp_path / "uno", "--json", tmp_path / "uno.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "uno.json").read_text())
    assert report["board"] == "arduino-uno" and report["runtime"] == "aot"
    assert report["bit_exact"] == 1.0 and report["passed"]
    assert "simavr emulator" in result.stdout + result.stderr


def test_deploy_needs_calibration_for_a_float_model(sine_model, tmp_path):
    result = run_tinyedge("deploy", sine_model.keras, "--board", "host", "--data", sine_model.eval_x, "-o", tmp_path)
    assert result.returncode == 1
    assert "give --calibration" in " ".join(result.stderr.split())


@pytest.mark.skipif(not os.environ.get("TINYEDGE_TFLM_DIR"), reason="needs a TFLM source tree: set TINYEDGE_TFLM_DIR to a tree made with TFLM's create_tflm_tree.py")
def test_fit_arena_finds_the_smallest_working_arena_on_the_emulated_cortex_m4(cnn_model, tmp_path):
    result = run_tinyedge("deploy", cnn_model.int8, "--board", "qemu-cortex-m4", "--runtime", "tflm", "--fit-arena",
                          "--data", cnn_model.eval_x, "-o", tmp_path / "fit", "--json", tmp_path / "fit.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "fit.json").read_text())
    fitted, built = report["arena_fitted_bytes"], report["arena_built_bytes"]
    assert fitted % 16 == 0 and report["arena_bytes"] <= fitted < built
    assert built - fitted >= 256
    assert report["runtime"] == "tflm" and report["bit_exact"] == 1.0
    from tinyedge.reference import measure_arena
    from tinyedge.tflite_model import load_tflite

    assert fitted < measure_arena(load_tflite(cnn_model.int8)), "a 32-bit target needs less than the 64-bit host"
    assert "smallest working arena on the target" in " ".join(result.stdout.split())


def float_io_model(sine_model, path: Path) -> Path:
    """The sine model with int8 inside and float at the edges (QUANTIZE in, DEQUANTIZE out)."""
    import tensorflow as tf

    keras_model = tf.keras.models.load_model(sine_model.keras)
    inp = tf.keras.Input(batch_shape=(1, 1))
    converter = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, keras_model(inp)))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    calibration = np.load(sine_model.calibration)
    converter.representative_dataset = lambda: ([calibration[i:i + 1]] for i in range(50))
    path.write_bytes(converter.convert())
    return path


def test_a_model_whose_io_stayed_float_runs_and_validates_in_lsb(sine_model, tmp_path):
    """int8 inside, float at the edges (QUANTIZE in, DEQUANTIZE out): the AOT runtime runs it and |Δ| is
    still counted in output LSB."""
    from tinyedge.tflite_model import load_tflite

    path = float_io_model(sine_model, tmp_path / "float_io.tflite")
    model = load_tflite(path)
    assert model.io_types() == ["FLOAT32", "FLOAT32"] and {"QUANTIZE", "DEQUANTIZE"} <= set(model.op_names())
    generate(path, "host", tmp_path / "fw", runtime="aot")
    build(tmp_path / "fw")
    with flash(tmp_path / "fw") as url:
        report = validate(url, path, np.load(sine_model.eval_x), journal_path=tmp_path / "j.jsonl")
    assert report.passed and report.bit_exact == 1.0 and report.max_abs_diff_lsb == 0
    assert report.samples == len(np.load(sine_model.eval_x))


def test_a_nan_from_the_board_fails_its_sample_and_is_named_not_counted_as_lsb(sine_model, tmp_path):
    """A float output that is NaN or infinite has no LSB distance: it fails its sample, is counted as such,
    and the figures are the real outputs' (not 9223372036854775680 LSB)."""
    from types import SimpleNamespace

    from tinyedge.tflite_model import load_tflite
    from tinyedge.validate import SampleResult, summarize

    model = load_tflite(float_io_model(sine_model, tmp_path / "float_io.tflite"))
    results = [SampleResult(0, [0.5], [0.5], 0, 10, None), SampleResult(1, [float("nan")], [0.25], 0, 10, None),
               SampleResult(2, [float("inf")], [0.75], 0, 10, None)]
    report = summarize(model, SimpleNamespace(cycle_hz=0, clock_hz=0, board_id="host", runtime="aot", arena_used=0,
                                              runtime_version="", model_sha256=model.sha256),
                       results, 0, None, None, 3, False)
    assert report.failures == [1, 2] and not report.passed
    assert report.non_finite_outputs == 2
    assert report.max_abs_diff_lsb == 0 and report.rmse == 0.0


def test_a_model_with_two_heads_validates_every_output(tmp_path):
    """A classifier head and a regression head: both travel in one INFER and both are compared."""
    import tensorflow as tf

    from tinyedge.quantize import quantize_model
    from tinyedge.tflite_model import load_tflite

    k = tf.keras
    k.utils.set_random_seed(4)
    inp = k.Input((12,))
    hidden = k.layers.Dense(16, activation="relu")(inp)
    heads = [k.layers.Dense(3, activation="softmax", name="cls")(hidden), k.layers.Dense(2, name="reg")(hidden)]
    k.Model(inp, heads).save(tmp_path / "two_heads.keras")
    data = np.random.default_rng(1).normal(size=(40, 12)).astype(np.float32)
    quantize_model(tmp_path / "two_heads.keras", data, tmp_path / "two_heads.tflite")
    model = load_tflite(tmp_path / "two_heads.tflite")
    assert len(model.outputs) == 2
    generate(tmp_path / "two_heads.tflite", "host", tmp_path / "fw", runtime="aot")
    build(tmp_path / "fw")
    with flash(tmp_path / "fw") as url:
        report = validate(url, tmp_path / "two_heads.tflite", data, journal_path=tmp_path / "j.jsonl")
    assert report.passed and report.bit_exact == 1.0 and report.samples == 40
    first = json.loads((tmp_path / "j.jsonl").read_text().splitlines()[1])
    assert len(first["output"]) == 5 == len(first["expected"])
