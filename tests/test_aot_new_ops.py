"""The ops added as one module each (tinyedge/ops/*.py): SUB, RELU, RELU6, LEAKY_RELU, HARD_SWISH, MAXIMUM,
MINIMUM, PRELU, STRIDED_SLICE, SLICE, RESIZE_NEAREST_NEIGHBOR, GATHER, DEPTH_TO_SPACE, SPACE_TO_DEPTH,
TRANSPOSE_CONV and grouped CONV_2D, compiled by the AOT runtime and run natively (portable and DSP paths),
give the bytes tflite-micro's interpreter gives; models with all of them deploy bit-exact on qemu-cortex-m4."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from aot_harness import NativeModel, assert_matches_reference, to_int8
from conftest import run_tinyedge
from test_aot_nonlinear import Case, convert

from tinyedge.ops.registry import runtime_ops


def _tf():
    import tensorflow as tf

    return tf


def _leaky(alpha: float):
    return lambda x: _tf().nn.leaky_relu(x, alpha=alpha)


CASES: dict[str, tuple[str, Case]] = {
    "sub_same_shape": ("SUB", Case(lambda x, y: x - y, [(3, 6), (3, 6)], [1.0, 4.0])),
    "sub_broadcast": ("SUB", Case(lambda x, y: x - y, [(4, 1, 3), (1, 5, 3)], [(0.0, 2.0), (-3.0, 0.5)])),
    "sub_const_relu": ("SUB", Case(lambda x: _tf().nn.relu(x - np.linspace(-1, 1, 6).astype(np.float32)), [(3, 6)], [1.0])),
    "relu": ("RELU", Case(lambda x: _tf().nn.relu(_tf().reshape(x, (4, 5))), [(20,)], [(-1.0, 3.0)])),
    "relu6": ("RELU6", Case(lambda x: _tf().nn.relu6(_tf().reshape(x, (4, 5))), [(20,)], [(-2.0, 9.0)])),
    "leaky_relu": ("LEAKY_RELU", Case(_leaky(0.1), [(3, 7)], [(-4.0, 2.0)])),
    "leaky_relu_wide_alpha": ("LEAKY_RELU", Case(_leaky(1.7), [(21,)], [3.0])),
    "hard_swish": ("HARD_SWISH", Case(lambda x: x * _tf().nn.relu6(x + 3.0) / 6.0, [(4, 9)], [(-5.0, 5.0)])),
    "hard_swish_narrow": ("HARD_SWISH", Case(lambda x: x * _tf().nn.relu6(x + 3.0) / 6.0, [(21,)], [0.5])),
    "maximum": ("MAXIMUM", Case(lambda x, y: _tf().maximum(x, y), [(3, 6), (1, 6)], [1.0, 1.0])),
    "minimum_const": ("MINIMUM", Case(lambda x: _tf().minimum(x, 0.25), [(12,)], [1.0])),
    "strided_slice": ("STRIDED_SLICE", Case(lambda x: x[:, 1:6:2, ::-1, 1:], [(7, 5, 4)], [1.0])),
    "strided_slice_shrink": ("STRIDED_SLICE", Case(lambda x: x[:, 2, -3:], [(5, 6)], [1.0])),
    "resize_nearest": ("RESIZE_NEAREST_NEIGHBOR", Case(lambda x: _tf().image.resize(x, (7, 10), "nearest") * 2.0,
                                                       [(3, 4, 5)], [1.0])),
    "resize_nearest_half_pixel": ("RESIZE_NEAREST_NEIGHBOR", Case(
        lambda x: _tf().compat.v1.image.resize_nearest_neighbor(x, (8, 5), half_pixel_centers=True) + 0.5,
        [(4, 3, 2)], [1.0])),
    "resize_nearest_align_corners": ("RESIZE_NEAREST_NEIGHBOR", Case(
        lambda x: _tf().compat.v1.image.resize_nearest_neighbor(x, (9, 7), align_corners=True) - 0.5,
        [(4, 3, 2)], [1.0])),
    "gather_channels": ("GATHER", Case(lambda x: _tf().gather(x * 2.0, [3, 0, 2, 2], axis=2), [(4, 5)], [1.0])),
    "gather_rows": ("GATHER", Case(lambda x: _tf().gather(x * 2.0, [1, 0, 4], axis=1), [(5, 3)], [1.0])),
    "depth_to_space": ("DEPTH_TO_SPACE", Case(lambda x: _tf().nn.depth_to_space(x * 2.0, 2), [(3, 2, 8)], [1.0])),
    "space_to_depth": ("SPACE_TO_DEPTH", Case(lambda x: _tf().nn.space_to_depth(x * 2.0, 2), [(4, 6, 3)], [1.0])),
    "slice": ("SLICE", Case(lambda x: _tf().slice(x, [0, 1, 2], [1, 3, -1]), [(4, 6)], [1.0])),
}


def assert_deploys_bit_exact_on_qemu_cortex_m4(model, x: np.ndarray, tmp_path) -> None:
    """`tinyedge deploy --runtime aot` on qemu-cortex-m4 with float inputs x: every output bit-exact."""
    (tmp_path / "model.tflite").write_bytes(model.data)
    np.save(tmp_path / "x.npy", np.asarray(x, dtype=np.float32))
    result = run_tinyedge("deploy", tmp_path / "model.tflite", "--board", "qemu-cortex-m4", "--runtime", "aot",
                          "-o", tmp_path / "out", "--data", tmp_path / "x.npy", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["runtime"], report["passed"], report["bit_exact"]) == ("aot", True, 1.0)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
def test_new_ops_are_bit_exact_with_tflite_micro(name: str, dsp: bool, tmp_path):
    assert_op_bit_exact(*CASES[name], tmp_path, dsp)


def assert_op_bit_exact(opcode: str, case: Case, tmp_path, dsp: bool = False):
    """The case's model uses the op, the AOT runtime runs it, and its C gives tflite-micro's bytes."""
    model = convert(case)
    assert opcode in model.op_names() and opcode in runtime_ops("aot")
    assert_matches_reference(model, NativeModel(model, tmp_path, dsp=dsp), samples=8)
    return model


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_a_model_with_every_new_op_deploys_bit_exact_on_qemu_cortex_m4(tmp_path):
    tf = _tf()

    def every_new_op(x):
        a, b = x[:, :, :4], x[:, :, 4:]
        mixed = tf.maximum(a, b) - tf.minimum(a, 0.5)
        leaky = tf.nn.leaky_relu(mixed, alpha=0.2)
        swish = leaky * tf.nn.relu6(leaky + 3.0) / 6.0
        clipped = tf.nn.relu6(swish[:, ::-1, :]) + tf.nn.relu(tf.reshape(b, (1, 6, 4)))
        return tf.slice(clipped[:, 1::2, :], [0, 0, 1], [1, -1, 2])

    model = convert(Case(every_new_op, [(6, 8)], [2.0]))
    assert {"SUB", "MAXIMUM", "MINIMUM", "LEAKY_RELU", "HARD_SWISH", "RELU", "RELU6", "STRIDED_SLICE",
            "SLICE"} <= set(model.op_names()), model.op_names()
    assert_deploys_bit_exact_on_qemu_cortex_m4(model, np.random.default_rng(4).uniform(-2, 2, (6, 6, 8)), tmp_path)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_the_row_gathering_ops_deploy_bit_exact_on_qemu_cortex_m4(tmp_path):
    tf = _tf()

    def rearranged(x):
        up = tf.image.resize(x, (8, 8), "nearest")
        shuffled = tf.gather(tf.nn.space_to_depth(up, 2), [3, 1, 0, 2, 7, 5, 4, 6], axis=3)
        return tf.nn.depth_to_space(shuffled * 2.0, 2)

    model = convert(Case(rearranged, [(4, 4, 2)], [1.0]))
    assert {"RESIZE_NEAREST_NEIGHBOR", "GATHER", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE"} <= set(model.op_names())
    assert_deploys_bit_exact_on_qemu_cortex_m4(model, np.random.default_rng(8).uniform(-1, 1, (5, 4, 4, 2)), tmp_path)


def _transpose_convolutions():
    """A U-Net-style decoder: strided transposed convolutions, SAME and VALID, with and without bias."""
    k = _tf().keras
    k.utils.set_random_seed(4)
    inputs = k.Input((5, 4, 3))
    x = k.layers.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(inputs)
    x = k.layers.Conv2DTranspose(4, (2, 3), strides=(1, 2), padding="valid", use_bias=False)(x)
    return to_int8(k.Model(inputs, x))


def _grouped_convolutions():
    """PyTorch's Conv2d/Conv1d with groups, as Keras writes them: 3x3 with 4 groups, then 1x1 with 2, then a
    1-D convolution (kernel 3, 3 groups) over the flattened rows."""
    k = _tf().keras
    k.utils.set_random_seed(3)
    inputs = k.Input((6, 6, 8))
    x = k.layers.Conv2D(12, 3, padding="same", groups=4, activation="relu")(inputs)
    x = k.layers.Conv2D(6, 1, groups=2)(x)
    x = k.layers.Conv1D(9, 3, groups=3, padding="same")(k.layers.Reshape((36, 6))(x))
    return to_int8(k.Model(inputs, x))


def _prelu():
    """Keras' PReLU: one learned slope per channel (a constant alpha broadcast over the pixels)."""
    k = _tf().keras
    k.utils.set_random_seed(5)
    inputs = k.Input((5, 6, 4))
    x = k.layers.Conv2D(4, 3, padding="same")(inputs)
    slopes = k.initializers.Constant(np.array([0.05, -0.4, 0.9, 2.5], dtype=np.float32))
    x = k.layers.PReLU(alpha_initializer=slopes, shared_axes=[1, 2])(x)
    return to_int8(k.Model(inputs, k.layers.Conv2D(3, 1)(x)))


# name -> (builder, the kernel its layers lower to, how many of them)
KERAS_MODELS = {"grouped_conv2d": (_grouped_convolutions, "te_conv2d_grouped(", 3),
                "prelu": (_prelu, "te_prelu_s8(", 1),
                "transpose_conv": (_transpose_convolutions, "te_transpose_conv(", 2)}


@pytest.mark.parametrize("name", sorted(KERAS_MODELS))
@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
def test_grouped_and_transposed_convolutions_are_bit_exact_with_tflite_micro(name: str, dsp: bool, tmp_path):
    build, kernel, count = KERAS_MODELS[name]
    model = build()
    native = NativeModel(model, tmp_path, dsp=dsp)
    assert native.program.source.count(kernel) == count
    assert_matches_reference(model, native, samples=6)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
@pytest.mark.parametrize("name", sorted(KERAS_MODELS))
def test_grouped_and_transposed_convolutions_deploy_bit_exact_on_qemu_cortex_m4(name: str, tmp_path):
    model = KERAS_MODELS[name][0]()
    x = np.random.default_rng(6).uniform(-1, 1, (5, *model.input_tensors[0].shape[1:]))
    assert_deploys_bit_exact_on_qemu_cortex_m4(model, x, tmp_path)


def test_inspect_counts_the_macs_of_transposed_convolutions():
    from tinyedge.inspection import op_macs

    model = _transpose_convolutions()
    for op in (o for o in model.operators if o.opcode == "TRANSPOSE_CONV"):
        out_c, k_h, k_w, _ = model.tensors[op.inputs[1]].shape
        assert op_macs(model, op) == model.tensors[op.inputs[2]].size * out_c * k_h * k_w > 0
