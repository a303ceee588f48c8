"""The AOT's DSP kernels (te_dsp.c, for armv7e-m cores): the same bytes as tflite-micro on the real
models and on small models that reach every kernel path. On the host they run with portable C
versions of SXTB16/SXTAB16/SMLAD; on the emulated Cortex-M4 with the instructions themselves."""

from __future__ import annotations


from pathlib import Path

import numpy as np
import pytest

from aot_harness import NativeModel, assert_matches_reference, to_int8
from conftest import REAL_MODELS
from tinyedge.aot.compiler import compile_model
from tinyedge.tflite_model import load_tflite

REPO = Path(__file__).resolve().parent.parent
REAL = REAL_MODELS
REAL_MODELS = ["kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8", "micro_speech_quantized",
               "person_detect", "str_ww_ref_model", "hello_world_int8"]


def _real(name: str):
    path = REAL / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"the real models are not in {REAL} (see the team's shared models README)")
    return load_tflite(path)


@pytest.mark.parametrize("name", REAL_MODELS)
def test_real_model_on_dsp_kernels_matches_tflite_micro(name, tmp_path):
    model = _real(name)
    native = NativeModel(model, tmp_path, dsp=True)
    assert native.program.uses_dsp and "te_dsp_" in native.program.source
    assert_matches_reference(model, native, samples=2)
    real_inputs = sorted((REAL / "inputs").glob(f"{name}_real*.npy"))
    for path in (p for p in real_inputs if not p.stem.endswith("_labels")):
        from tinyedge.reference import Reference

        reference = Reference(model)
        for x in np.load(path):
            x = x.reshape(model.input_tensors[0].shape).astype(np.int8)
            assert np.array_equal(native.run([x])[0], reference.run([x])[0])


def test_dsp_lowering_is_only_asked_for(tmp_path):
    model = _real("kws_ref_model")
    assert "te_dsp_" not in compile_model(model).source
    assert not compile_model(model).uses_dsp


def _keras_odd_shapes():
    """Convolutions whose sizes are not multiples of four, odd channel and pixel counts, padding,
    strides, dilation and a depthwise multiplier: every tail of the DSP kernels."""
    import tensorflow as tf

    x = inputs = tf.keras.Input((11, 9, 3))
    x = tf.keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu")(x)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = tf.keras.layers.DepthwiseConv2D((5, 3), strides=(2, 1), padding="valid", activation="relu")(x)
    x = tf.keras.layers.Conv2D(7, 1)(x)
    x = tf.keras.layers.Conv2D(9, 1, activation="relu")(x)
    x = tf.keras.layers.Conv2D(6, 2, dilation_rate=2, padding="same")(x)
    x = tf.keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(7)(x)
    return tf.keras.Model(inputs, x)


def _keras_single_channel():
    import tensorflow as tf

    inputs = tf.keras.Input((13, 8, 1))
    x = tf.keras.layers.DepthwiseConv2D((4, 3), strides=2, depth_multiplier=6, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = tf.keras.layers.DepthwiseConv2D((3, 5), padding="same", activation="relu")(x)   # a tall, narrow plane
    x = tf.keras.layers.DepthwiseConv2D((2, 3), strides=(1, 2), padding="same")(x)
    y = tf.keras.layers.Conv2D(8, 3, padding="same")(x)
    x = tf.keras.layers.ReLU()(tf.keras.layers.Add()([x, y]))   # a residual ADD
    x = tf.keras.layers.Flatten()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3)(x))


def _keras_wide_windows():
    """3x3 windows over 144 channels: two im2col columns would exceed the scratch budget, so these
    convolutions run one pixel at a time (in place through the row ring, and out of place)."""
    import tensorflow as tf

    inputs = tf.keras.Input((6, 5, 144))
    x = tf.keras.layers.Conv2D(144, 3, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.Conv2D(7, 3, strides=2, padding="same")(x)
    x = tf.keras.layers.Flatten()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3)(x))


@pytest.mark.parametrize("build", [_keras_odd_shapes, _keras_single_channel, _keras_wide_windows])
def test_dsp_kernel_tails_match_tflite_micro(build, tmp_path):
    model = to_int8(build(), samples=8)
    native = NativeModel(model, tmp_path, dsp=True)
    if build is _keras_wide_windows:
        assert native.program.source.count("te_dsp_conv2d(") == native.program.source.count("te_scratch, 1);") == 2
    assert_matches_reference(model, native, samples=4)


def test_conv_streams_into_the_fully_connected_after_it(tmp_path):
    """micro_speech: its DEPTHWISE_CONV_2D (one input channel) feeds a FULLY_CONNECTED directly, so the
    4000-byte feature map is never stored: the arena holds little more than the 1960-byte input."""
    model = _real("micro_speech_quantized")
    program = compile_model(model, dsp=True)
    assert "te_dsp_conv2d_fc(" in program.source
    assert program.stats.arena_bytes < 1960 + 4000
    assert program.stats.arena_bytes + program.stats.scratch_bytes < 3000
    native = NativeModel(model, tmp_path, dsp=True)
    assert_matches_reference(model, native, samples=3)


def test_pruned_channels_keep_the_short_requantization():
    """vww_96_int8 has pruned channels (all-zero weights, bias ±2^30) in most pointwise convolutions: their
    biases are replaced by ±(2^30 - 1), which requantize to the same output, so every DSP convolution
    keeps TE_REQUANT_BOUNDED (the short exact requantization) and the outputs stay tflite-micro's."""
    import re

    source = compile_model(_real("vww_96_int8"), dsp=True).source
    flags = dict(re.findall(r"te_requant_t (op\d+)_q TE_CONST = \{[^}]*\.per_channel = (\d+)", source))
    convs = re.findall(r"te_dsp_(?:pointwise_)?conv2d\([^;]*&(op\d+)_q", source)
    assert len(convs) > 10
    assert {op: int(flags[op]) & 2 for op in convs} == {op: 2 for op in convs}


@pytest.mark.parametrize("build", [_keras_odd_shapes, _keras_single_channel, _keras_wide_windows])
def test_dsp_assembly_on_the_emulated_m4_matches_tflite_micro(build, tmp_path):
    """The same models on qemu-cortex-m4, where te_dsp.c's loops are the assembly ones (on the host they
    are C): every tail of the dot, requantization, im2col, depthwise, FULLY_CONNECTED and ADD loops."""
    from conftest import require_tools
    from tinyedge.build import build as build_firmware
    from tinyedge.flash import flash
    from tinyedge.generate import generate
    from tinyedge.protocol import Device
    from tinyedge.reference import Reference

    require_tools("arm-none-eabi-gcc", "make", "qemu-system-arm")
    model = to_int8(build(), samples=8)
    path = tmp_path / "model.tflite"
    path.write_bytes(model.data)
    generate(path, "qemu-cortex-m4", tmp_path / "fw", runtime="aot")
    build_firmware(tmp_path / "fw")
    reference, rng = Reference(model), np.random.default_rng(3)
    with flash(tmp_path / "fw", icount=True) as url, Device(url, timeout=120) as device:
        for _ in range(4):
            x = [rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in model.input_tensors]
            assert device.infer(x[0].tobytes()).output == reference.run(x)[0].tobytes()
