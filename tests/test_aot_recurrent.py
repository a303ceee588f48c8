"""SVDF and UNIDIRECTIONAL_SEQUENCE_LSTM in the AOT runtime: the keyword models of the real corpus,
op by op and whole, give the same bytes as tflite-micro's interpreter over several invocations in a
row (their state tensors persist between invocations, in TFLM and in the AOT arena alike)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from aot_harness import NativeModel, random_inputs
from conftest import REAL_MODELS
from tinyedge.aot.compiler import compile_model
from tinyedge.reference import Reference
from tinyedge.tflite_model import TfliteModel, load_tflite, parse_tflite

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (or beside the folder of worktrees that holds it)
REAL = REAL_MODELS
KEYWORD = REAL / "keyword_scrambled_8bit.tflite"
LSTM = REAL / "trained_lstm_int8.tflite"


def _real(path: Path) -> TfliteModel:
    if not path.exists():
        pytest.skip(f"{path} is absent (the real-model corpus lives in ../shared/models/real/)")
    return load_tflite(path)


def sub_model(model: TfliteModel, first: int, last: int | None = None) -> TfliteModel:
    """The model cut down to its operators first..last (one operator by default), with only the tensors
    they use: the first one's first input is the model's input, the last one's output its output."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(bytearray(model.data), 0)
    graph = raw.subgraphs[0]
    ops = graph.operators[first:(first if last is None else last) + 1]
    used = sorted({int(i) for op in ops for i in [*op.inputs, *op.outputs, *(op.intermediates if op.intermediates is not None else [])]
                   if i >= 0})
    renumber = {old: new for new, old in enumerate(used)}
    graph.tensors = [graph.tensors[i] for i in used]
    for op in ops:
        op.inputs = [renumber[int(i)] if i >= 0 else -1 for i in op.inputs]
        op.outputs = [renumber[int(i)] for i in op.outputs]
        if op.intermediates is not None:
            op.intermediates = [renumber[int(i)] for i in op.intermediates]
    graph.operators = ops
    graph.inputs, graph.outputs = [ops[0].inputs[0]], [ops[-1].outputs[0]]
    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return parse_tflite(bytes(builder.Output()))


def rewritten(model: TfliteModel, scales: dict[int, float] | None = None,
              data: dict[int, np.ndarray] | None = None) -> TfliteModel:
    """The model with the scales of some tensors multiplied (tensor index -> factor) and the values of
    some constant tensors replaced (tensor index -> array of its dtype)."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(bytearray(model.data), 0)
    tensors = raw.subgraphs[0].tensors
    for index, factor in (scales or {}).items():
        quantization = tensors[index].quantization
        quantization.scale = [float(np.float32(s * factor)) for s in quantization.scale]
    for index, values in (data or {}).items():
        raw.buffers[tensors[index].buffer].data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)
    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return parse_tflite(bytes(builder.Output()))


def assert_sequence_matches_reference(model: TfliteModel, native: NativeModel, invocations: int, seed: int) -> None:
    """Invocations in a row on random inputs (then all-min, all-max): every output equals tflite-micro's,
    whose state, like the AOT program's, carries from one invocation to the next."""
    reference = Reference(model)
    rng = np.random.default_rng(seed)
    cases = [random_inputs(model, rng) for _ in range(invocations)]
    for t in model.input_tensors:
        info = np.iinfo(t.dtype)
        cases += [[np.full(t.shape, info.min, t.dtype)], [np.full(t.shape, info.max, t.dtype)]]
    for case, inputs in enumerate(cases):
        want, got = reference.run(inputs), native.run(inputs)
        for out, (w, g) in enumerate(zip(want, got)):
            diff = np.flatnonzero(w.ravel() != g.ravel())
            assert diff.size == 0, (f"invocation {case}, output {out}: {diff.size}/{w.size} values differ, first at "
                                    f"{diff[0]}: tflm {w.ravel()[diff[0]]} vs aot {g.ravel()[diff[0]]}")


def tamed(model: TfliteModel, output_scale: float = 10.0) -> TfliteModel:
    """The keyword model's weights are scrambled and its biases random int32s, so every op saturates
    to -128/127: with biases shifted right by 16 and SVDF outputs scaled by `output_scale` (and the
    scales of the FC biases after them, which TFLM checks against input times weights scale), the same
    weights give outputs across the whole int8 range."""
    weighted = [op for op in model.operators if op.opcode in ("SVDF", "FULLY_CONNECTED")]
    bias_of = {op.index: op.inputs[3 if op.opcode == "SVDF" else 2] for op in weighted}
    biases = {bias_of[op.index]: (model.tensors[bias_of[op.index]].data >> 16).astype(np.int32) for op in weighted}
    scales = {op.outputs[0]: output_scale for op in model.operators if op.opcode == "SVDF"}
    scales.update({bias_of[op.index]: output_scale for op in weighted
                   if op.opcode == "FULLY_CONNECTED" and op.inputs[0] in scales})
    return rewritten(model, scales, biases)


def _distinct_outputs(model: TfliteModel, invocations: int = 12) -> int:
    reference, rng = Reference(model), np.random.default_rng(0)
    return len(np.unique([reference.run(random_inputs(model, rng))[0] for _ in range(invocations)]))


def test_every_svdf_of_the_keyword_model_is_bit_exact_across_invocations(tmp_path):
    model = _real(KEYWORD)
    svdfs = [op.index for op in model.operators if op.opcode == "SVDF"]
    assert len(svdfs) == 7
    for index in svdfs:
        for variant, op_model in (("as is", sub_model(model, index)), ("tamed", tamed(sub_model(model, index)))):
            assert op_model.op_names() == ["SVDF"]
            assert "te_svdf_s8(" in compile_model(op_model).source
            if variant == "tamed":
                assert _distinct_outputs(op_model) > 20
            native = NativeModel(op_model, tmp_path / f"svdf{index}{variant[-1]}")
            # The state holds 8 (or 32) frames: 40 invocations shift every slot out several times.
            assert_sequence_matches_reference(op_model, native, invocations=40, seed=index)


def test_svdf_state_carries_over_from_one_invocation_to_the_next(tmp_path):
    model = tamed(sub_model(_real(KEYWORD), 1))
    native = NativeModel(model, tmp_path)
    x = random_inputs(model, np.random.default_rng(1))
    first, second = native.run(x)[0], native.run(x)[0]
    assert not np.array_equal(first, second)
    reference = Reference(model)
    assert np.array_equal(reference.run(x)[0], first) and np.array_equal(reference.run(x)[0], second)


def test_svdf_state_is_never_shared_with_other_tensors():
    model = sub_model(_real(KEYWORD), 1)
    program = compile_model(model)
    state = model.operators[0].inputs[4]
    state_range = range(program.tensor_offsets[state], program.tensor_offsets[state] + model.tensors[state].nbytes)
    for index, offset in program.tensor_offsets.items():
        if index != state:
            assert offset + model.tensors[index].nbytes <= state_range.start or offset >= state_range.stop


def test_the_keyword_model_is_bit_exact_end_to_end_across_invocations(tmp_path):
    """int16 in (QUANTIZE to int8), 7 SVDF + 5 FC, SOFTMAX to int16, QUANTIZE to an int32 out. Its
    scrambled weights always answer [0, 32767], so the output of its last SVDF is compared too, with
    the biases tamed."""
    model = _real(KEYWORD)
    source = compile_model(model).source
    assert "te_requantize_int(" in source and "te_softmax_s8_s16(" in source
    assert_sequence_matches_reference(model, NativeModel(model, tmp_path / "whole"), invocations=30, seed=3)
    last_svdf = max(op.index for op in model.operators if op.opcode == "SVDF")
    features = tamed(sub_model(model, 0, last_svdf), output_scale=1.0)
    assert _distinct_outputs(features) > 20
    assert features.input_tensors[0].type_name == "INT16" and features.output_tensors[0].type_name == "INT8"
    assert_sequence_matches_reference(features, NativeModel(features, tmp_path / "features"), invocations=30, seed=4)


@pytest.mark.parametrize("opcode", ["SOFTMAX", "QUANTIZE"])
def test_the_keyword_models_int16_and_int32_tail_ops_are_bit_exact(opcode, tmp_path):
    """SOFTMAX int8 -> int16 and QUANTIZE int16 -> int32 (and the int16 -> int8 one at the input)."""
    model = _real(KEYWORD)
    for op in [op for op in model.operators if op.opcode == opcode]:
        alone = sub_model(model, op.index)
        assert _distinct_outputs(alone) > 20
        assert_sequence_matches_reference(alone, NativeModel(alone, tmp_path / f"op{op.index}"), invocations=20, seed=op.index)


def test_tflm_sigmoid_table_is_read_back_from_tflite_micro():
    from tinyedge.ops.lstm import sigmoid_table

    table = sigmoid_table()
    assert len(table) == 256 and table[0] == 32768 and table[-1] == 65535
    assert all(a <= b for a, b in zip(table, table[1:]))


def test_the_lstm_alone_is_bit_exact_across_invocations(tmp_path):
    model = _real(LSTM)
    lstm = sub_model(model, 0)
    assert lstm.op_names() == ["UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert "te_lstm_s8(" in compile_model(lstm).source
    assert _distinct_outputs(lstm) > 100
    assert_sequence_matches_reference(lstm, NativeModel(lstm, tmp_path), invocations=12, seed=5)


def as_16x8_lstm(lstm: TfliteModel) -> TfliteModel:
    """The one-LSTM model as TFLite's 16x8 variant (no converter makes one here: TensorFlow's segfaults
    calibrating it): input, hidden state and output int16 with zero point 0 and 1/256 of their int8 scale,
    the biases int64 (times 256, so the same real values), weights and the int16 cell state as they are."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    op = lstm.operators[0]
    raw = schema.ModelT.InitFromPackedBuf(bytearray(lstm.data), 0)
    tensors = raw.subgraphs[0].tensors
    for index in (op.inputs[0], op.inputs[18], op.outputs[0]):
        tensors[index].type = schema.TensorType.INT16
        tensors[index].quantization.scale = [float(np.float32(tensors[index].quantization.scale[0] / 256))]
        tensors[index].quantization.zeroPoint = [0]
    for index in op.inputs[12:16]:
        bias = tensors[index]
        values = np.frombuffer(bytes(raw.buffers[bias.buffer].data), np.int32).astype(np.int64) * 256
        bias.type = schema.TensorType.INT64
        bias.quantization.scale = [float(np.float32(s / 256)) for s in bias.quantization.scale]
        raw.buffers[bias.buffer].data = np.frombuffer(values.tobytes(), np.uint8)
    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return parse_tflite(bytes(builder.Output()))


def test_a_16x8_lstm_is_bit_exact_across_invocations(tmp_path):
    """UNIDIRECTIONAL_SEQUENCE_LSTM with int16 activations (EvalLstm<int16_t, int8_t, int16_t, int64_t>)."""
    lstm = as_16x8_lstm(sub_model(_real(LSTM), 0))
    assert [t.type_name for t in lstm.input_tensors + lstm.output_tensors] == ["INT16", "INT16"]
    assert "te_lstm_s16(" in compile_model(lstm).source and "te_lstm_s16(" in compile_model(lstm, dsp=True).source
    assert _distinct_outputs(lstm) > 100
    assert_sequence_matches_reference(lstm, NativeModel(lstm, tmp_path), invocations=12, seed=6)


def test_trained_lstm_is_bit_exact_end_to_end_across_invocations(tmp_path):
    """LSTM + RESHAPE + FC + SOFTMAX; its four empty float intermediates are no tensors of the program."""
    model = _real(LSTM)
    assert _distinct_outputs(model) > 3
    assert_sequence_matches_reference(model, NativeModel(model, tmp_path), invocations=12, seed=6)


@pytest.mark.skipif(shutil.which("simavr") is None or shutil.which("avr-gcc") is None, reason="needs avr-gcc and simavr")
def test_trained_lstm_is_bit_exact_on_an_emulated_atmega328p(tmp_path):
    """16-bit `int`, weights and the sigmoid table read from flash (PROGMEM), the state across samples."""
    from aot_harness import run_on_simavr

    model = _real(LSTM)
    rng = np.random.default_rng(13)
    inputs = [random_inputs(model, rng)[0] for _ in range(3)]
    reference = Reference(model)
    for x, got in zip(inputs, run_on_simavr(model, inputs, tmp_path)):
        np.testing.assert_array_equal(got, reference.run([x])[0])


@pytest.mark.parametrize("path", [KEYWORD, LSTM], ids=lambda p: p.stem)
def test_the_keyword_models_deploy_on_the_host_board_with_the_aot_runtime(path, tmp_path):
    """As a user would: deploy builds, runs and validates 20 inferences in a row (the state carrying
    over on both sides) and reports them all bit-exact."""
    import json

    from conftest import run_tinyedge

    model = _real(path)
    if model.float_inside_problems():
        pytest.skip(f"tinyedge still calls {path.name} float for its empty intermediates (fixed on the speed-tflm branch)")
    rng = np.random.default_rng(21)
    t = model.input_tensors[0]
    low, high = (0, 3000) if t.type_name == "INT16" else (-128, 128)   # keyword: int16 audio features
    np.save(tmp_path / "x.npy", rng.integers(low, high, (20, *t.shape)).astype(t.dtype))
    result = run_tinyedge("deploy", path, "--board", "host", "--runtime", "aot", "--data", tmp_path / "x.npy",
                          "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["samples"] == 20 and report["bit_exact"] == 1.0 and report["runtime"] == "aot"


def test_recurrent_kernels_are_compiled_for_speed_on_dsp_boards_only(tmp_path):
    from tinyedge.boards import get_board
    from tinyedge.runtimes.aot import write_sources

    model = _real(KEYWORD)
    m4 = write_sources(model, get_board("qemu-cortex-m4"), tmp_path / "m4", None, None)
    host = write_sources(model, get_board("host"), tmp_path / "host", None, None)
    assert "aot/te_recurrent.c" in m4.speed_sources and "aot/te_recurrent.c" in m4.sources
    assert "aot/te_recurrent.c" not in host.speed_sources and "aot/te_recurrent.c" in host.sources


def _rank_two(model: TfliteModel) -> TfliteModel:
    """A one-SVDF model rewritten to rank 2: its 64 filters feed 32 units, two each (the bias and the
    output shrink to 32)."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(bytearray(model.data), 0)
    graph = raw.subgraphs[0]
    op = graph.operators[0]
    op.builtinOptions.rank = 2
    units = graph.tensors[op.inputs[1]].shape[0] // 2
    bias = graph.tensors[op.inputs[3]]
    bias.shape = [units]
    raw.buffers[bias.buffer].data = raw.buffers[bias.buffer].data[:4 * units]
    graph.tensors[op.outputs[0]].shape = [1, units]
    builder = flatbuffers.Builder(0)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return parse_tflite(bytes(builder.Output()))


def test_a_rank_two_svdf_is_bit_exact_across_invocations(tmp_path):
    model = tamed(_rank_two(sub_model(_real(KEYWORD), 1)))
    assert model.operators[0].options.rank == 2 and model.output_tensors[0].shape == (1, 32)
    assert _distinct_outputs(model) > 20
    assert_sequence_matches_reference(model, NativeModel(model, tmp_path), invocations=20, seed=8)


def test_the_tamed_keyword_svdfs_are_bit_exact_on_the_emulated_cortex_m4(tmp_path):
    """The SXTB16/SMLAD dot products run only on the Cortex-M4: the keyword model up to its last
    SVDF, biases tamed so outputs spread, deployed on qemu-cortex-m4 for 20 inferences in a row."""
    import json

    from conftest import require_tools, run_tinyedge

    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    model = _real(KEYWORD)
    features = tamed(sub_model(model, 0, max(op.index for op in model.operators if op.opcode == "SVDF")), 1.0)
    (tmp_path / "features.tflite").write_bytes(features.data)
    rng = np.random.default_rng(22)
    np.save(tmp_path / "x.npy", rng.integers(0, 3000, (20, 1, 96)).astype(np.int16))
    result = run_tinyedge("deploy", tmp_path / "features.tflite", "--board", "qemu-cortex-m4", "--runtime", "aot",
                          "--data", tmp_path / "x.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["samples"] == 20 and report["bit_exact"] == 1.0


@pytest.mark.skipif(shutil.which("simavr") is None or shutil.which("avr-gcc") is None, reason="needs avr-gcc and simavr")
def test_an_svdf_is_bit_exact_on_an_emulated_atmega328p(tmp_path):
    """16-bit `int`, weights and folds in flash: the keyword model's second SVDF (tamed), state across samples."""
    from aot_harness import run_on_simavr

    model = tamed(sub_model(_real(KEYWORD), 3))
    rng = np.random.default_rng(14)
    inputs = [random_inputs(model, rng)[0] for _ in range(12)]
    reference = Reference(model)
    for x, got in zip(inputs, run_on_simavr(model, inputs, tmp_path)):
        np.testing.assert_array_equal(got, reference.run([x])[0])


def test_the_lstm_is_bit_exact_on_the_emulated_cortex_m4_with_its_weights_relaid_for_smlad(tmp_path):
    """On a DSP core the gates' weights are stored once, as int16 SMLAD pairs (te_lstm_s8's `wide`, each
    unit's rows headed by its folded biases, so one pointer walks it), and the int8 originals and the
    separate bias tables are left out; 12 sequences in a row on qemu-cortex-m4, the state carrying over."""
    import json

    from conftest import require_tools, run_tinyedge

    lstm = sub_model(_real(LSTM), 0)
    dsp_source, plain_source = compile_model(lstm, dsp=True).source, compile_model(lstm).source
    assert "op0_wide[2080]" in dsp_source and "op0_wide" not in plain_source
    assert "op0_bias0" not in dsp_source and "op0_bias0" in plain_source
    assert dsp_source.count("static const int8_t") < plain_source.count("static const int8_t")
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    (tmp_path / "lstm.tflite").write_bytes(lstm.data)
    rng = np.random.default_rng(23)
    np.save(tmp_path / "x.npy", rng.integers(-128, 128, (12, 1, 28, 28)).astype(np.int8))
    result = run_tinyedge("deploy", tmp_path / "lstm.tflite", "--board", "qemu-cortex-m4", "--runtime", "aot",
                          "--data", tmp_path / "x.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["samples"] == 12 and report["bit_exact"] == 1.0


def test_a_16x8_lstm_deploys_bit_exact_on_the_emulated_cortex_m4(tmp_path):
    """The 16x8 LSTM (te_lstm_s16, portable on every core): 8 sequences in a row on qemu-cortex-m4."""
    import json

    from conftest import require_tools, run_tinyedge

    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    lstm = as_16x8_lstm(sub_model(_real(LSTM), 0))
    (tmp_path / "lstm16.tflite").write_bytes(lstm.data)
    np.save(tmp_path / "x.npy", np.random.default_rng(29).integers(-32768, 32768, (8, 1, 28, 28)).astype(np.int16))
    result = run_tinyedge("deploy", tmp_path / "lstm16.tflite", "--board", "qemu-cortex-m4", "--runtime", "aot",
                          "--data", tmp_path / "x.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["samples"] == 8 and report["bit_exact"] == 1.0
