"""The keyword spotter from raw audio, on the board: TFLM's micro_speech audio front end
(`audio_preprocessor_int8.tflite`, TFLM's signal-library custom ops: window, FFT auto-scale, RFFT,
energy, filter bank, square root, spectral subtraction, PCAN, log) runs in the tflm runtime, compiled
from the tree's signal/ sources, bit-exact with tflite-micro's interpreter (which registers those ops);
then its features, as the board computed them, feed `micro_speech_quantized` on the board. Each stage
is validated on its own."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np

from conftest import real_model, require_tools, requires_tflm, run_tinyedge
from tinyedge.tflite_model import load_tflite

WINDOW, STRIDE, WINDOWS = 480, 320, 49     # 30 ms windows every 20 ms of 16 kHz audio: 49 in one second
YES = 2                                    # micro_speech's classes: silence, unknown, yes, no


def audio_windows(wav: Path) -> np.ndarray:
    """One second of 16 kHz int16 audio cut as the micro_speech example cuts it: (49, 480) int16."""
    with wave.open(str(wav)) as clip:
        assert (clip.getframerate(), clip.getsampwidth(), clip.getnchannels()) == (16000, 2, 1)
        samples = np.frombuffer(clip.readframes(clip.getnframes()), dtype=np.int16)
    return np.stack([samples[i * STRIDE:i * STRIDE + WINDOW] for i in range(WINDOWS)])


def board_outputs(journal: Path) -> np.ndarray:
    """The outputs the board sent, as the results journal recorded them (in sample order)."""
    rows = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    return np.array([row["output"] for row in sorted(rows, key=lambda row: row["index"])], dtype=np.int8)


def test_the_preprocessor_is_stateful_because_spectral_subtraction_keeps_its_noise_estimate():
    model = load_tflite(real_model("audio_preprocessor_int8.tflite"))
    assert "SignalFilterBankSpectralSubtraction" in model.op_names() and "CUSTOM" not in model.op_names()
    assert model.is_stateful


def features_on_the_board(runtime: str, tmp_path: Path) -> np.ndarray:
    """Stage 1: raw audio (49 windows of yes_1000ms.wav) -> 49 x 40 features on qemu-cortex-m4 with the
    runtime, every window bit-exact with tflite-micro's interpreter; the features the board computed."""
    windows = tmp_path / "yes_windows.npy"
    np.save(windows, audio_windows(real_model("inputs/yes_1000ms.wav")))
    front = tmp_path / "front"
    result = run_tinyedge("deploy", real_model("audio_preprocessor_int8.tflite"), "--board", "qemu-cortex-m4",
                          "--runtime", runtime, "--data", windows, "-o", front, "--json", tmp_path / "front.json",
                          timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "front.json").read_text())
    assert report["passed"] and report["samples"] == WINDOWS and report["bit_exact"] == 1.0
    features = board_outputs(front / "validate.jsonl")
    assert features.shape == (WINDOWS, 40)
    # The features the TFLM example's own test feeds micro_speech (made with the Python interpreter).
    shipped = np.load(real_model("inputs/micro_speech_quantized_real2.npy"))[0]
    assert np.array_equal(features.reshape(-1), shipped)
    return features


def assert_micro_speech_hears_yes(features: np.ndarray, tmp_path: Path) -> None:
    """Stage 2: the board's own features -> the keyword, on the board (the default AOT runtime)."""
    spectrogram, label = tmp_path / "features.npy", tmp_path / "label.npy"
    np.save(spectrogram, features.reshape(1, -1))
    np.save(label, np.array([YES]))
    result = run_tinyedge("deploy", real_model("micro_speech_quantized.tflite"), "--board", "qemu-cortex-m4",
                          "--runtime", "aot", "--data", spectrogram, "--labels", label, "-o", tmp_path / "kws",
                          "--json", tmp_path / "kws.json", timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "kws.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0
    assert report["accuracy"]["board"] == 1.0


@requires_tflm
def test_micro_speech_runs_from_raw_audio_on_the_cortex_m4_stage_by_stage(tmp_path):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    assert_micro_speech_hears_yes(features_on_the_board("tflm", tmp_path), tmp_path)
