"""A user whose model is too big for their board shrinks it: layers narrowed by L1 norm, the
narrow model distilled from the original, before/after figures, and it then runs on the board.
Zeros (magnitude pruning) are not the way, and `inspect` says so."""

from __future__ import annotations

import json

import numpy as np
import pytest

import models
from conftest import require_tools, run_tinyedge

AVR_TOOLS = ("avr-gcc", "make", "avrdude", "pkg-config", "simavr")


@pytest.fixture(scope="module")
def big_cnn(tmp_path_factory):
    """A blob classifier of 32-filter convolutions: 50 KB of int8 weights and a 8 KB activation,
    far beyond an Arduino Uno's 32 KB of flash and 2 KB of RAM."""
    out = tmp_path_factory.mktemp("big-cnn")
    k = models.keras()
    k.utils.set_random_seed(4)
    x, y = models.blobs_images(400, seed=3)
    model = k.Sequential([
        k.Input((16, 16, 1)),
        k.layers.Conv2D(32, 3, padding="same", activation="relu"), k.layers.MaxPooling2D(2),
        k.layers.Conv2D(32, 3, padding="same"), k.layers.BatchNormalization(), k.layers.ReLU(), k.layers.MaxPooling2D(2),
        k.layers.Flatten(), k.layers.Dense(64, activation="relu"), k.layers.Dense(4, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    model.save(out / "big.keras")
    np.save(out / "x.npy", x)
    np.save(out / "y.npy", y)
    np.save(out / "x8.npy", x[-8:])
    np.save(out / "y8.npy", y[-8:])
    return out


@pytest.mark.slow
def test_a_model_too_big_for_the_uno_fits_after_shrinking_and_runs_there(big_cnn, tmp_path):
    require_tools(*AVR_TOOLS)
    before = run_tinyedge("deploy", big_cnn / "big.keras", "--board", "arduino-uno", "--calibration", big_cnn / "x.npy",
                          "--data", big_cnn / "x8.npy", "-o", tmp_path / "before")
    assert before.returncode == 1 and "the arduino-uno board has 32,256 bytes of flash" in " ".join(before.stderr.split())

    result = run_tinyedge("shrink", big_cnn / "big.keras", "--data", big_cnn / "x.npy", "--labels", big_cnn / "y.npy",
                          "--board", "arduino-uno", "--epochs", "2", "-o", tmp_path / "small.keras",
                          "--json", tmp_path / "shrink.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Shrunk to fit arduino-uno" in result.stdout
    report = json.loads((tmp_path / "shrink.json").read_text())
    old, new = report["before"], report["after"]
    assert old["fits"] is False and new["fits"] is True
    assert new["ram_needed"] <= 2048 and new["flash_needed"] <= 32256
    assert new["int8_bytes"] < old["int8_bytes"] / 4 and new["macs"] < old["macs"] / 4
    assert new["accuracy_int8"] >= 0.9 and old["accuracy_int8"] >= 0.9
    assert report["keep"] < 1 and report["widths"]["dense"][0] == 64 > report["widths"]["dense"][1]

    deployed = run_tinyedge("deploy", tmp_path / "small.keras", "--board", "arduino-uno",
                            "--calibration", big_cnn / "x.npy", "--data", big_cnn / "x8.npy", "--labels", big_cnn / "y8.npy",
                            "-o", tmp_path / "after", "--json", tmp_path / "board.json")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    board = json.loads((tmp_path / "board.json").read_text())
    assert board["bit_exact"] == 1.0 and board["accuracy"]["board"] >= 0.75


@pytest.mark.slow
def test_keep_narrows_every_hidden_layer_and_keeps_the_output(big_cnn, tmp_path):
    result = run_tinyedge("shrink", big_cnn / "big.keras", "--data", big_cnn / "x.npy", "--labels", big_cnn / "y.npy",
                          "--keep", "0.5", "--epochs", "1", "-o", tmp_path / "half.keras", "--json", tmp_path / "half.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "half.json").read_text())
    assert report["widths"] == {"conv2d": [32, 16], "conv2d_1": [32, 16], "dense": [64, 32]}
    assert report["board"] is None and report["after"]["fits"] is None
    assert report["after"]["parameters"] < report["before"]["parameters"] / 2
    import keras

    half = keras.models.load_model(tmp_path / "half.keras")
    assert half.output_shape == (None, 4)


def test_narrowing_keeps_the_units_with_the_largest_l1_norm_and_their_weights():
    from tinyedge.shrink import narrow

    k = models.keras()
    model = k.Sequential([k.Input((3,)), k.layers.Dense(4, activation="relu"), k.layers.Dense(2)])
    first = np.array([[1.0, -5.0, 3.0, 0.1]] * 3, dtype=np.float32)
    second = np.arange(8, dtype=np.float32).reshape(4, 2)
    model.layers[0].set_weights([first, np.array([0.0, 1.0, 2.0, 3.0], np.float32)])
    model.layers[1].set_weights([second, np.zeros(2, np.float32)])
    student, widths = narrow(model, 0.5)
    assert widths == {model.layers[0].name: [4, 2]}
    kernel, bias = student.layers[0].get_weights()
    assert np.array_equal(kernel, first[:, [1, 2]]) and np.array_equal(bias, [1.0, 2.0])
    assert np.array_equal(student.layers[1].get_weights()[0], second[[1, 2]])


def test_zeros_do_not_shrink_the_int8_model_and_inspect_says_so(tmp_path):
    from tinyedge.quantize import quantize_model

    k = models.keras()
    k.utils.set_random_seed(8)
    model = k.Sequential([k.Input((20,)), k.layers.Dense(64, activation="relu"), k.layers.Dense(4)])
    x = np.random.default_rng(0).uniform(-1, 1, (64, 20)).astype(np.float32)
    model.save(tmp_path / "dense.keras")
    for layer in model.layers:
        kernel, bias = layer.get_weights()
        kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.6)] = 0.0
        layer.set_weights([kernel, bias])
    model.save(tmp_path / "pruned.keras")
    dense = quantize_model(tmp_path / "dense.keras", x, tmp_path / "dense.tflite")
    pruned = quantize_model(tmp_path / "pruned.keras", x, tmp_path / "pruned.tflite")
    assert pruned.int8_bytes == dense.int8_bytes, "60 % zeros, not one byte saved"

    result = run_tinyedge("inspect", tmp_path / "pruned.tflite", "--json")
    summary = json.loads(result.stdout)
    assert summary["zero_weights"] >= 0.55
    assert "save neither flash nor time" in summary["zeros_note"] and "tinyedge shrink" in summary["zeros_note"]
    assert "zero weights" in run_tinyedge("inspect", tmp_path / "pruned.tflite").stdout
    assert json.loads(run_tinyedge("inspect", tmp_path / "dense.tflite", "--json").stdout)["zeros_note"] is None


def _one_sentence(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())


def test_board_and_keep_are_one_or_the_other(big_cnn, tmp_path):
    common = ["shrink", big_cnn / "big.keras", "--data", big_cnn / "x.npy", "--labels", big_cnn / "y.npy",
              "-o", tmp_path / "s.keras"]
    both = _one_sentence(run_tinyedge(*common, "--board", "arduino-uno", "--keep", "0.5"))
    neither = _one_sentence(run_tinyedge(*common))
    assert "give either --board ID" in both and "give either --board ID" in neither


def test_a_model_with_a_skip_connection_is_refused(tmp_path):
    k = models.keras()
    inputs = k.Input((8,))
    hidden = k.layers.Dense(8, activation="relu")(inputs)
    outputs = k.layers.Dense(3)(k.layers.Add()([inputs, hidden]))
    k.Model(inputs, outputs).save(tmp_path / "skip.keras")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(-1, 1, (40, 8)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.random.default_rng(1).integers(0, 3, 40))
    message = _one_sentence(run_tinyedge("shrink", tmp_path / "skip.keras", "--data", tmp_path / "x.npy",
                                         "--labels", tmp_path / "y.npy", "--keep", "0.5", "-o", tmp_path / "s.keras"))
    assert "Add" in message and "plain stacks" in message
