"""SVDF and UNIDIRECTIONAL_SEQUENCE_LSTM in the AOT runtime: the keyword models of the real corpus,
op by op and whole, give the same bytes as tflite-micro's interpreter over several invocations in a
row (their state tensors persist between invocations, in TFLM and in the AOT arena alike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aot_harness import NativeModel, random_inputs
from tinyedge.aot.compiler import compile_model
from tinyedge.reference import Reference
from tinyedge.tflite_model import TfliteModel, load_tflite, parse_tflite

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (or beside the folder of worktrees that holds it)
REAL = next((base / "shared" / "models" / "real" for base in (REPO.parent, REPO.parent.parent)
             if (base / "shared" / "models" / "real").is_dir()), REPO.parent / "shared" / "models" / "real")
KEYWORD = REAL / "keyword_scrambled_8bit.tflite"
LSTM = REAL / "trained_lstm_int8.tflite"


def _real(path: Path) -> TfliteModel:
    if not path.exists():
        pytest.skip(f"{path} is absent (the real-model corpus lives in ../shared/models/real/)")
    return load_tflite(path)


def single_op_model(model: TfliteModel, op_index: int) -> TfliteModel:
    """The model cut down to one of its operators, with only the tensors that operator uses:
    its first input and its output become the model's input and output."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(bytearray(model.data), 0)
    graph = raw.subgraphs[0]
    op = graph.operators[op_index]
    used = sorted({int(i) for i in list(op.inputs) + list(op.outputs) + list(op.intermediates or []) if i >= 0})
    renumber = {old: new for new, old in enumerate(used)}
    graph.tensors = [graph.tensors[i] for i in used]
    op.inputs = [renumber[int(i)] if i >= 0 else -1 for i in op.inputs]
    op.outputs = [renumber[int(i)] for i in op.outputs]
    if op.intermediates is not None:
        op.intermediates = [renumber[int(i)] for i in op.intermediates]
    graph.operators = [op]
    graph.inputs, graph.outputs = [op.inputs[0]], [op.outputs[0]]
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


def test_every_svdf_of_the_keyword_model_is_bit_exact_across_invocations(tmp_path):
    model = _real(KEYWORD)
    svdfs = [op.index for op in model.operators if op.opcode == "SVDF"]
    assert len(svdfs) == 7
    for index in svdfs:
        op_model = single_op_model(model, index)
        assert op_model.op_names() == ["SVDF"]
        assert "te_svdf_s8(" in compile_model(op_model).source
        native = NativeModel(op_model, tmp_path / f"svdf{index}")
        # The state holds 8 (or 32) frames: 40 invocations shift every slot out several times.
        assert_sequence_matches_reference(op_model, native, invocations=40, seed=index)


def test_svdf_state_is_never_shared_with_other_tensors():
    model = single_op_model(_real(KEYWORD), 1)
    program = compile_model(model)
    state = model.operators[0].inputs[4]
    state_range = range(program.tensor_offsets[state], program.tensor_offsets[state] + model.tensors[state].nbytes)
    for index, offset in program.tensor_offsets.items():
        if index != state:
            assert offset + model.tensors[index].nbytes <= state_range.start or offset >= state_range.stop
