"""Residual blocks fused into one row-streamed op (tinyedge/aot/residual.py, firmware/aot/te_residual.c):
a user's ResNet-style model compiles to less RAM than its ops one by one (the block never holds its input
and its first conv's whole output together) and still gives tflite-micro's bytes, on the portable kernels
and on the Cortex-M4 DSP kernels (run on the host with their portable instruction stand-ins)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aot_harness import NativeModel, assert_matches_reference, to_int8
from tinyedge.aot.compiler import compile_model
from tinyedge.tflite_model import TfliteModel, load_tflite


def _identity_block(relu: bool):
    """conv stem -> [3x3 conv, relu -> 3x3 conv] + x (ADD, with or without a RELU the converter fuses), 7x9."""
    import tensorflow as tf

    inputs = tf.keras.Input((7, 9, 3))
    x = tf.keras.layers.Conv2D(24, 3, padding="same", activation="relu")(inputs)
    y = tf.keras.layers.Conv2D(24, 3, padding="same", activation="relu")(x)
    y = tf.keras.layers.Conv2D(24, 3, padding="same")(y)
    out = tf.keras.layers.Add()([x, y])
    if relu:
        out = tf.keras.layers.ReLU()(out)
    out = tf.keras.layers.GlobalAveragePooling2D()(out)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(5)(out))


def _strided_block(relu: bool):
    """conv stem -> [3x3 stride-2 conv, relu -> 3x3 conv] + 1x1 stride-2 conv of x, 9x7 (odd: SAME pads
    the bottom and right), then a second, identity block."""
    import tensorflow as tf

    inputs = tf.keras.Input((9, 7, 2))
    x = tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    y = tf.keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    y = tf.keras.layers.Conv2D(32, 3, padding="same")(y)
    shortcut = tf.keras.layers.Conv2D(32, 1, strides=2)(x)
    out = tf.keras.layers.Add()([shortcut, y])
    if relu:
        out = tf.keras.layers.ReLU()(out)
    y = tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu")(out)
    y = tf.keras.layers.Conv2D(32, (3, 1), padding="same")(y)
    out = tf.keras.layers.Add()([out, y])
    out = tf.keras.layers.GlobalAveragePooling2D()(out)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(5)(out))


def _valid_block(relu: bool):
    """[3x3 stride-2 VALID conv -> 1x1 conv] + a 3x3 stride-2 VALID conv of x, 13x10 (rows read overlap)."""
    import tensorflow as tf

    inputs = tf.keras.Input((13, 10, 1))
    x = tf.keras.layers.Conv2D(12, 3, padding="same", activation="relu")(inputs)
    y = tf.keras.layers.Conv2D(20, 3, strides=2, padding="valid", activation="relu")(x)
    y = tf.keras.layers.Conv2D(20, 1)(y)
    out = tf.keras.layers.Add()([y, tf.keras.layers.Conv2D(20, 3, strides=2, padding="valid")(x)])
    if relu:
        out = tf.keras.layers.ReLU()(out)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3)(tf.keras.layers.Flatten()(out)))


MODELS = {
    "identity, ADD with RELU": (_identity_block, True),
    "identity, ADD without RELU": (_identity_block, False),
    "stride 2 + 1x1 shortcut, ADD with RELU": (_strided_block, True),
    "stride 2 + 1x1 shortcut, ADD without RELU": (_strided_block, False),
    "VALID stride 2 + 3x3 shortcut, 1x1 second conv": (_valid_block, True),
}


@pytest.fixture(scope="module", params=list(MODELS), ids=list(MODELS))
def residual_model(request) -> TfliteModel:
    pytest.importorskip("tensorflow")
    make, relu = MODELS[request.param]
    return to_int8(make(relu))


def _ram(model: TfliteModel, dsp: bool, fuse: bool = True) -> int:
    stats = compile_model(model, dsp=dsp, fuse_residual_blocks=fuse).stats
    return stats.arena_bytes + stats.scratch_bytes


def _first_block_tensors(model: TfliteModel) -> int:
    """Bytes of the first residual block's input x and its first conv's output: what running the block op
    by op holds at once (the ADD reads x, or a conv of x, beside conv(conv(x)))."""
    producer = {t: op for op in model.operators for t in op.outputs}
    add = next(op for op in model.operators if op.kind == "ADD")
    for y2, other in (add.inputs, add.inputs[::-1]):
        conv1 = producer.get(producer[y2].inputs[0])
        if conv1 is not None and (other == conv1.inputs[0] or producer[other].inputs[0] == conv1.inputs[0]):
            return model.tensors[conv1.inputs[0]].nbytes + model.tensors[conv1.outputs[0]].nbytes
    raise AssertionError("the model has no residual block")


@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
def test_a_residual_block_runs_bit_exact_in_less_ram(residual_model, dsp, tmp_path):
    native = NativeModel(residual_model, tmp_path, dsp=dsp)
    assert native.program.uses_residual, "no residual block was fused"
    assert "residual block" in native.program.source
    assert_matches_reference(residual_model, native, samples=4)
    fused, unfused = _ram(residual_model, dsp), _ram(residual_model, dsp, fuse=False)
    assert native.program.stats.arena_bytes + native.program.stats.scratch_bytes == fused
    assert fused < unfused, f"fused {fused} B, op by op {unfused} B"


def test_the_fused_block_never_holds_its_input_and_its_first_conv_output(residual_model):
    arena = compile_model(residual_model, dsp=True).stats.arena_bytes
    assert arena < _first_block_tensors(residual_model)


def test_without_fusion_the_plan_is_the_op_by_op_one(residual_model):
    program = compile_model(residual_model, fuse_residual_blocks=False)
    assert not program.uses_residual and "residual block" not in program.source


def _real_resnet8() -> TfliteModel:
    folder = os.environ.get("TINYEDGE_REAL_MODELS")
    if not folder:
        pytest.skip("TINYEDGE_REAL_MODELS is not set: the real ResNet-8 (MLPerf Tiny) lives in ../shared/models/real")
    path = Path(folder) / "pretrainedResnet_quant.tflite"
    if not path.is_file():
        pytest.skip(f"{path} is absent (see the real models' README)")
    return load_tflite(path)


@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
def test_real_resnet8_fuses_its_three_blocks_bit_exact(dsp, tmp_path):
    model = _real_resnet8()
    native = NativeModel(model, tmp_path, dsp=dsp)
    assert native.program.source.count("residual block (ops") == 3
    assert_matches_reference(model, native, samples=2)
    fused, unfused = _ram(model, dsp), _ram(model, dsp, fuse=False)
    # op by op a block holds two 16 KiB tensors; fused, the stem's input and output are the peak
    assert fused <= 0.7 * unfused, f"fused {fused} B, op by op {unfused} B"
