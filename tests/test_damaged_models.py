"""A damaged .tflite is refused in one sentence by every command before anything reads it (issue 17,
item 4): no segfault in `inspect`, no internal error in `generate`, no firmware declaring a
negative input size. Each model here is a real flatbuffer with one field broken."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from conftest import run_tinyedge
from models import edit_flatbuffer

Damage = Callable[[schema.ModelT], None]


def damaged(model_bytes: bytes, damage: Damage) -> bytes:
    return edit_flatbuffer(model_bytes, damage)


def first_weights(model: schema.ModelT) -> schema.TensorT:
    return next(t for t in model.subgraphs[0].tensors if 0 < t.buffer < len(model.buffers)
                and model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data) > 4)


def set_op_input(model: schema.ModelT) -> None:
    model.subgraphs[0].operators[0].inputs[0] = 999


def set_op_output(model: schema.ModelT) -> None:
    model.subgraphs[0].operators[-1].outputs[0] = 1 << 20


def set_negative_dim(model: schema.ModelT) -> None:
    sub = model.subgraphs[0]
    sub.tensors[sub.inputs[0]].shape[-1] = -80


def set_opcode(model: schema.ModelT) -> None:
    model.subgraphs[0].operators[0].opcodeIndex = 77


def set_buffer(model: schema.ModelT) -> None:
    first_weights(model).buffer = 4096


def cut_buffer(model: schema.ModelT) -> None:
    buffer = model.buffers[first_weights(model).buffer]
    buffer.data = buffer.data[: len(buffer.data) // 2]


def set_graph_output(model: schema.ModelT) -> None:
    model.subgraphs[0].outputs[0] = 500


DAMAGES: dict[str, tuple[Damage, str]] = {
    "op input out of range": (set_op_input, "operator 0 names tensor 999 of"),
    "op output out of range": (set_op_output, f"names tensor {1 << 20} of"),
    "negative dimension": (set_negative_dim, "has a negative dimension in its shape"),
    "opcode out of range": (set_opcode, "operator 0 names opcode 77 of"),
    "buffer out of range": (set_buffer, "names buffer 4096 of"),
    "buffer shorter than its tensor": (cut_buffer, "but its buffer holds"),
    "graph output out of range": (set_graph_output, "the graph's outputs name tensor 500 of"),
}


@pytest.fixture(params=list(DAMAGES))
def broken(request, cnn_model, tmp_path) -> tuple[Path, str]:
    damage, says = DAMAGES[request.param]
    path = tmp_path / "broken.tflite"
    path.write_bytes(damaged(Path(cnn_model.int8).read_bytes(), damage))
    return path, says


def refused(*args: str | Path, says: str, cwd: Path) -> None:
    result = run_tinyedge(*args, cwd=cwd)
    assert result.returncode == 1, (result.returncode, result.stderr)
    message = " ".join(result.stderr.split())
    assert "is a damaged .tflite" in message and says in message, message
    assert "Traceback" not in result.stderr and "internal error" not in message


def test_inspect_refuses_a_damaged_model(broken, tmp_path):
    path, says = broken
    refused("inspect", path, says=says, cwd=tmp_path)


def test_generate_refuses_a_damaged_model(broken, tmp_path):
    path, says = broken
    refused("generate", path, "--board", "host", "--runtime", "aot", "-o", tmp_path / "fw", says=says, cwd=tmp_path)
    assert not (tmp_path / "fw").exists()


def test_emit_and_validate_refuse_a_negative_dimension(cnn_model, tmp_path):
    path = tmp_path / "negative.tflite"
    path.write_bytes(damaged(Path(cnn_model.int8).read_bytes(), set_negative_dim))
    np.save(tmp_path / "x.npy", np.load(cnn_model.eval_x)[:2])
    says = "has a negative dimension in its shape"
    refused("emit", path, "-o", tmp_path / "out", "--test-vectors", "1", "--data", "x.npy", says=says, cwd=tmp_path)
    refused("validate", "--port", "/dev/ttyNOPE0", "--model", path, "--data", "x.npy", says=says, cwd=tmp_path)
    refused("deploy", path, "--data", "x.npy", "--board", "host", "-o", tmp_path / "d", says=says, cwd=tmp_path)
