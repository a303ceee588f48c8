"""The audio front end in the AOT runtime: TFLM's signal-library ops (window, FFT auto-scale, int16 RFFT,
energy, filter bank, square root, spectral subtraction, PCAN, log) and the int32 glue of
`audio_preprocessor_int8.tflite`, compiled to C (te_signal.c) and bit-exact with tflite-micro's Python
interpreter at every stage: on the 49 windows of `yes_1000ms.wav`, on noise, silence and full-scale
tones (the saturating paths), with the spectral subtraction's noise estimate carried across windows and
reset by RESET_STATE. Then the preprocessor deployed with `--runtime aot` on qemu-cortex-m4 feeds
micro_speech on the board, which hears "yes"."""

from __future__ import annotations

import json
from pathlib import Path

import flatbuffers
import numpy as np
import pytest

from aot_harness import NativeModel, SanitizedModel, sanitized_kernels
from conftest import real_model, require_tools, run_tinyedge
from test_audio_frontend import WINDOW, assert_micro_speech_hears_yes, audio_windows, features_on_the_board
from tinyedge.reference import Reference
from tinyedge.tflite_model import TfliteModel, load_tflite, parse_tflite

PREPROCESSOR = "audio_preprocessor_int8.tflite"
# SignalEnergy writes only its bins start_index..end_index (5..241 here); TFLM leaves the others as the
# arena held them, and the graph slices them off. Those stages are compared on the bins written.
ENERGY_BINS = slice(5, 241)
ENERGY_STAGES = ("signal_energy", "Cast")


def every_stage_model(path: Path, leave_out: tuple[str, ...] = (), carried_only: bool = False) -> TfliteModel:
    """The model with every operator's outputs (but those named in `leave_out`, and with `carried_only`
    those of types the serial protocol does not carry: uint32, uint64) made model outputs, so each stage
    can be compared."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    sub = raw.subgraphs[0]
    carried = {schema.TensorType.INT8, schema.TensorType.INT16, schema.TensorType.INT32}
    sub.outputs = [int(o) for op in sub.operators for o in op.outputs
                   if sub.tensors[int(o)].name.decode() not in leave_out
                   and (not carried_only or sub.tensors[int(o)].type in carried)]
    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return parse_tflite(bytes(builder.Output()))


def with_custom_code(path: Path, old: bytes, new: bytes) -> bytes:
    """The model's bytes with one custom op's code renamed (another signal-library op the AOT does not run)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    for code in raw.operatorCodes:
        if code.customCode == old:
            code.customCode = new
    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def one_custom_op_model(code: bytes, options: dict, shape: tuple[int, ...],
                        outputs: tuple[tuple[tuple[int, ...], str], ...] = ()) -> TfliteModel:
    """A model of one signal-library op from an int16 tensor of `shape` to `outputs` ((shape, TFLite type)
    each; by default one int16 tensor of `shape`), its options written as the flexbuffer map TFLM reads."""
    from flatbuffers import flexbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    code_t = schema.OperatorCodeT()
    code_t.builtinCode, code_t.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM, schema.BuiltinOperator.CUSTOM
    code_t.customCode, code_t.version = code, 1
    tensors = []
    for index, (tensor_shape, type_name) in enumerate(((shape, "INT16"), *(outputs or ((shape, "INT16"),)))):
        t = schema.TensorT()
        t.shape, t.type = list(tensor_shape), getattr(schema.TensorType, type_name)
        t.buffer, t.name = index + 1, f"t{index}".encode()
        tensors.append(t)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], list(range(1, len(tensors)))
    op.customOptions = list(flexbuffers.Dumps(options))
    sub = schema.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs = tensors, [op], [0], op.outputs
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code_t], [sub]
    model.buffers = [schema.BufferT() for _ in range(len(tensors) + 1)]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return parse_tflite(bytes(builder.Output()))


def clips() -> dict[str, np.ndarray]:
    """Sequences of 480-sample windows: speech, noise, silence, and tones that saturate."""
    rng = np.random.default_rng(16)
    t = np.arange(WINDOW * 12)
    sine = np.round(32767 * np.sin(2 * np.pi * 1000 * t / 16000)).astype(np.int16)
    square = np.where(np.sin(2 * np.pi * 440 * t / 16000) >= 0, 32767, -32768).astype(np.int16)
    return {
        "yes": audio_windows(real_model("inputs/yes_1000ms.wav")),
        "noise": rng.integers(-32768, 32768, size=(12, WINDOW), dtype=np.int16),
        "quiet noise": rng.integers(-40, 41, size=(12, WINDOW), dtype=np.int16),
        "silence": np.zeros((6, WINDOW), dtype=np.int16),
        "full-scale sine": sine.reshape(12, WINDOW),
        "full-scale square": square.reshape(12, WINDOW),
        "most negative": np.full((4, WINDOW), -32768, dtype=np.int16),
    }


def stage_mismatches(model: TfliteModel, native: NativeModel, windows: np.ndarray) -> dict[str, int]:
    """Per stage (output tensor name), how many windows differ from tflite-micro's interpreter; both
    run the windows in order from a fresh state."""
    reference = Reference(model)
    names = [model.tensors[i].name for i in model.outputs]
    wrong: dict[str, int] = {}
    for window in windows:
        expected, actual = reference.run([window.reshape(1, WINDOW)]), native.run([window.reshape(1, WINDOW)])
        for name, want, got in zip(names, expected, actual):
            if name in ENERGY_STAGES:
                want, got = want.ravel()[ENERGY_BINS], got.ravel()[ENERGY_BINS]
            if not np.array_equal(want, got):
                wrong[name] = wrong.get(name, 0) + 1
    return wrong


def test_every_stage_of_the_preprocessor_is_bit_exact_with_tflite_micro(tmp_path):
    model = every_stage_model(real_model(PREPROCESSOR))
    assert {"SignalRfft", "SignalPCAN", "SignalFilterBankLog"} <= set(model.op_names())
    for name, windows in clips().items():
        native = NativeModel(model, tmp_path / name.replace(" ", "_"))   # a fresh state per clip
        assert stage_mismatches(model, native, windows) == {}, name


def test_the_dsp_build_is_bit_exact_too(tmp_path):
    model = every_stage_model(real_model(PREPROCESSOR))
    native = NativeModel(model, tmp_path / "dsp", dsp=True)
    assert stage_mismatches(model, native, clips()["yes"]) == {}


def test_each_op_stays_in_its_own_bytes_under_the_sanitizers(tmp_path):
    """ASan + UBSan (misaligned uint64 loads, overflow, shifts), each op held to its own tensors' arena
    bytes and its declared share of the scratch, on speech and the saturating clips."""
    model = every_stage_model(real_model(PREPROCESSOR))
    sanitized = SanitizedModel(model, tmp_path / "model", sanitized_kernels(tmp_path / "kernels"))
    for name in ("yes", "full-scale square", "most negative", "noise"):
        windows = clips()[name]
        outputs = sanitized.run([[w.reshape(1, WINDOW)] for w in windows])
        reference = Reference(model)
        for window, got in zip(windows, outputs):
            for k, (want, have) in enumerate(zip(reference.run([window.reshape(1, WINDOW)]), got)):
                if model.tensors[model.outputs[k]].name in ENERGY_STAGES:
                    want, have = want.ravel()[ENERGY_BINS], have.ravel()[ENERGY_BINS]
                assert np.array_equal(want, have), (name, model.tensors[model.outputs[k]].name)


@pytest.mark.parametrize("shape, delay", [((2, 8), 3), ((8,), 8), ((3, 4), 10), ((1, 480), 160)])
def test_signal_delay_is_bit_exact_across_invocations_and_reset(tmp_path, shape, delay):
    model = one_custom_op_model(b"SignalDelay", {"delay_length": delay}, shape)
    native = NativeModel(model, tmp_path / "delay")
    rng = np.random.default_rng(delay)
    frames = [rng.integers(-32768, 32768, size=shape, dtype=np.int16) for _ in range(6)]
    reference = Reference(model)
    for frame in frames:
        assert np.array_equal(native.run([frame])[0], reference.run([frame])[0])
    assert native.lib.te_runtime_reset_state() == 0
    fresh = Reference(model)
    for frame in frames[:3]:
        assert np.array_equal(native.run([frame])[0], fresh.run([frame])[0])
    assert native.program.stats.state_bytes == 2 * delay * (shape[0] if len(shape) == 2 else 1)


@pytest.mark.parametrize("channels, left, right, step", [(4, 2, 1, 1), (40, 0, 0, 1), (3, 3, 2, 2), (2, 1, 1, 3)])
def test_signal_stacker_is_bit_exact_across_invocations_and_reset(tmp_path, channels, left, right, step):
    width = left + right + 1
    options = {"num_channels": channels, "stacker_left_context": left, "stacker_right_context": right,
               "stacker_step": step}
    model = one_custom_op_model(b"SignalStacker", options, (channels,), (((width * channels,), "INT16"), ((), "BOOL")))
    native = NativeModel(model, tmp_path / "stacker")
    rng = np.random.default_rng(channels + left)
    frames = [rng.integers(-32768, 32768, size=(channels,), dtype=np.int16) for _ in range(10)]
    for run in range(2):   # from boot, then after RESET_STATE
        reference, made = Reference(model), 0
        for frame in frames:
            (want, want_valid), (got, got_valid) = reference.run([frame]), native.run([frame])
            assert bool(got_valid) == bool(want_valid)
            if want_valid:   # (an invalid call leaves the stack as it was)
                assert np.array_equal(got, want)
                made += 1
        assert made >= 1
        assert native.lib.te_runtime_reset_state() == 0


@pytest.mark.parametrize("shape, size, step, prefill", [((1, 160), 480, 160, True), ((2, 8), 5, 2, False),
                                                         ((3, 6), 4, 3, True), ((8,), 8, 8, False)])
def test_signal_framer_is_bit_exact_across_invocations_and_reset(tmp_path, shape, size, step, prefill):
    options = {"frame_size": size, "frame_step": step, "prefill": prefill}
    rows, frames = int(np.prod(shape[:-1])), shape[-1] // step
    out_shape = (*shape[:-1], frames, size)
    model = one_custom_op_model(b"SignalFramer", options, shape, ((out_shape, "INT16"), ((), "BOOL")))
    native = NativeModel(model, tmp_path / "framer")
    rng = np.random.default_rng(size + step)
    chunks = [rng.integers(-32768, 32768, size=shape, dtype=np.int16) for _ in range(8)]
    for run in range(2):   # from boot, then after RESET_STATE
        reference, complete = Reference(model), 0
        for chunk in chunks:
            (want, want_valid), (got, got_valid) = reference.run([chunk]), native.run([chunk])
            assert bool(got_valid) == bool(want_valid)
            if want_valid:   # (an incomplete frame's output is left as it was)
                assert np.array_equal(got, want)
                complete += 1
        assert complete >= 1 and rows >= 1
        assert native.lib.te_runtime_reset_state() == 0


@pytest.mark.parametrize("shape, step", [((1, 3, 480), 160), ((2, 2, 8), 3), ((4, 5), 5)])
def test_signal_overlap_add_is_bit_exact_across_invocations_and_reset(tmp_path, shape, step):
    out_shape = (*shape[:-2], shape[-2] * step)
    model = one_custom_op_model(b"SignalOverlapAdd", {"T": 7, "frame_step": step}, shape, ((out_shape, "INT16"),))
    native = NativeModel(model, tmp_path / "overlap_add")
    rng = np.random.default_rng(step)
    frames = [rng.integers(-32768, 32768, size=shape, dtype=np.int16) for _ in range(6)]   # sums saturate
    for run in range(2):   # from boot, then after RESET_STATE
        reference = Reference(model)
        for frame in frames:
            assert np.array_equal(native.run([frame])[0], reference.run([frame])[0])
        assert native.lib.te_runtime_reset_state() == 0


@pytest.mark.parametrize("fft_length, frames", [(512, 1), (64, 3), (120, 2), (20, 1)])
def test_signal_irfft_is_bit_exact(tmp_path, fft_length, frames):
    """The inverse real FFT (radix 4, 2, 3 and 5 stages by the lengths) on random spectra, full-scale
    (saturating sums) and small."""
    bins = fft_length // 2 + 1
    model = one_custom_op_model(b"SignalIrfft", {"T": 7, "fft_length": fft_length}, (frames, 2 * bins),
                                (((frames, fft_length), "INT16"),))
    native, reference = NativeModel(model, tmp_path / "irfft"), Reference(model)
    rng = np.random.default_rng(fft_length)
    spectra = [rng.integers(-32768, 32768, size=(frames, 2 * bins), dtype=np.int16) for _ in range(4)]
    spectra += [rng.integers(-300, 301, size=(frames, 2 * bins), dtype=np.int16)]
    for spectrum in spectra:
        assert np.array_equal(native.run([spectrum])[0], reference.run([spectrum])[0])


@pytest.mark.parametrize("fft_length, input_length", [(64, 64), (120, 100), (20, 17), (24, 24)])
def test_signal_rfft_of_other_lengths_is_bit_exact(tmp_path, fft_length, input_length):
    """The forward real FFT by radix 2, 3 and 5 stages too (the preprocessor's 512 is all radix 4)."""
    model = one_custom_op_model(b"SignalRfft", {"T": 7, "fft_length": fft_length}, (2, input_length),
                                (((2, fft_length + 2), "INT16"),))
    native, reference = NativeModel(model, tmp_path / "rfft"), Reference(model)
    rng = np.random.default_rng(fft_length)
    for frames in [rng.integers(-32768, 32768, size=(2, input_length), dtype=np.int16) for _ in range(4)]:
        assert np.array_equal(native.run([frames])[0], reference.run([frames])[0])


def test_reset_state_forgets_the_noise_estimate(tmp_path):
    model = load_tflite(real_model(PREPROCESSOR))
    windows = clips()["yes"]
    native = NativeModel(model, tmp_path / "native")
    first = native.run([windows[0].reshape(1, WINDOW)])[0]
    later = [native.run([w.reshape(1, WINDOW)])[0] for w in windows[1:20]]
    again = native.run([windows[0].reshape(1, WINDOW)])[0]
    assert not np.array_equal(first, again)   # the estimate carried over: the same audio, other features
    assert native.lib.te_runtime_reset_state() == 0
    assert np.array_equal(native.run([windows[0].reshape(1, WINDOW)])[0], first)
    assert later   # (the windows between moved the estimate)
    assert "memset" in native.program.source.split("te_runtime_reset_state")[1].split("}")[0]


def test_the_generated_c_keeps_tables_in_flash_and_the_state_in_the_arena():
    from tinyedge.aot.compiler import compile_model

    program = compile_model(load_tflite(real_model(PREPROCESSOR)))
    source = program.source
    assert "te_signal_rfft_s16(" in source and "op3_twiddles[512] TE_CONST" in source
    assert "te_rfft_params_t op3_params TE_CONST" in source
    assert "te_spectral_subtraction_params_t op11_params TE_CONST" in source
    assert program.stats.scratch_bytes == 1024   # the padded frame (the half-length FFT runs in the output)
    reset = source.split("int te_runtime_reset_state(void) {")[1].split("}")[0]
    assert "signal_filter_bank_spectral_subtraction1" in reset and ", 0, 160);" in reset


def test_inspect_says_the_aot_runs_the_signal_ops(tmp_path):
    result = run_tinyedge("inspect", real_model(PREPROCESSOR), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert "CUSTOM" not in summary["ops"] and summary["operators"].count("SignalRfft") == 1
    for name in ("SignalWindow", "SignalRfft", "SignalFilterBankSpectralSubtraction", "SignalPCAN", "CAST", "DIV"):
        assert {"aot", "tflm"} <= set(summary["runtimes"][name]), name


def test_a_signal_op_the_aot_does_not_know_is_refused_naming_it(tmp_path):
    model = tmp_path / "mystery.tflite"
    model.write_bytes(with_custom_code(real_model(PREPROCESSOR), b"SignalWindow", b"SignalMystery"))
    result = run_tinyedge("generate", model, "--board", "qemu-cortex-m4", "--runtime", "aot", "-o", tmp_path / "out")
    assert result.returncode == 1, result.stderr
    message = " ".join(result.stderr.split())
    assert "SignalMystery" in message and "signal library" in message and "--runtime tflm" in message
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_micro_speech_runs_from_raw_audio_with_the_aot_runtime_on_the_cortex_m4(tmp_path):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    assert_micro_speech_hears_yes(features_on_the_board("aot", tmp_path), tmp_path)


def test_every_stage_runs_bit_exact_on_the_cortex_m4(tmp_path):
    """The preprocessor with each stage an output, deployed: every stage's bytes on the board equal
    tflite-micro's (validate compares every output). The stages the serial protocol carries: window,
    auto-scale (and its shift), RFFT, the sliced energies, the log filter bank (after the filter bank,
    square root, spectral subtraction and PCAN, which are uint32/uint64) and the int32 steps to int8."""
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    staged = tmp_path / "stages.tflite"
    staged.write_bytes(every_stage_model(real_model(PREPROCESSOR), ENERGY_STAGES, carried_only=True).data)
    windows = tmp_path / "windows.npy"
    np.save(windows, audio_windows(real_model("inputs/yes_1000ms.wav"))[:12])
    result = run_tinyedge("deploy", staged, "--board", "qemu-cortex-m4", "--runtime", "aot", "--data", windows,
                          "-o", tmp_path / "out", "--json", tmp_path / "report.json", timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] and report["samples"] == 12 and report["bit_exact"] == 1.0

