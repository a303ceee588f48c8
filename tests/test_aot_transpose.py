"""TRANSPOSE in the AOT runtime (what an ONNX model's Flatten after NCHW convolutions leaves in the
graph): compiled to C and run natively, it gives the same bytes as tflite-micro's interpreter."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from aot_harness import NativeModel, assert_matches_reference, to_int8
from tinyedge.aot.compiler import compile_model


def _nhwc_to_nchw_then_dense(k):
    k.utils.set_random_seed(5)
    inputs = k.Input((6, 5, 3))
    x = k.layers.Conv2D(4, 3, padding="same")(inputs)
    x = k.layers.Permute((3, 1, 2))(x)
    x = k.layers.Flatten()(x)
    return k.Model(inputs, k.layers.Dense(5)(x))


def _swap_last_two_of_three(k):
    k.utils.set_random_seed(6)
    inputs = k.Input((7, 6))
    x = k.layers.Dense(4)(inputs)
    return k.Model(inputs, k.layers.Permute((2, 1))(x))


def _odd_permutation(k):
    k.utils.set_random_seed(7)
    inputs = k.Input((3, 5, 4))
    x = k.layers.Conv2D(2, 1)(inputs)
    return k.Model(inputs, k.layers.Permute((2, 3, 1))(x))


MODELS = {
    "nhwc_to_nchw_then_dense": _nhwc_to_nchw_then_dense,
    "swap_last_two_of_three": _swap_last_two_of_three,
    "odd_permutation": _odd_permutation,
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_transpose_is_bit_exact_with_tflite_micro(name, tmp_path):
    import tensorflow as tf

    model = to_int8(MODELS[name](tf.keras))
    assert "TRANSPOSE" in model.op_names()
    assert "te_transpose(" in compile_model(model).source
    assert_matches_reference(model, NativeModel(model, tmp_path), samples=6)


@pytest.mark.skipif(shutil.which("simavr") is None or shutil.which("avr-gcc") is None, reason="needs avr-gcc and simavr")
def test_transpose_is_bit_exact_on_an_emulated_atmega328p(tmp_path):
    """16-bit `int` and strides read from flash (PROGMEM): the same bytes must come out."""
    import tensorflow as tf

    from aot_harness import random_inputs, run_on_simavr
    from tinyedge.reference import Reference

    model = to_int8(_nhwc_to_nchw_then_dense(tf.keras))
    rng = np.random.default_rng(12)
    inputs = [random_inputs(model, rng)[0] for _ in range(3)]
    reference = Reference(model)
    for x, got in zip(inputs, run_on_simavr(model, inputs, tmp_path)):
        np.testing.assert_array_equal(got, reference.run([x])[0])


def test_a_transpose_of_up_to_6_dimensions_is_simplified_to_the_same_permutation():
    """ShuffleNet's channel shuffle is a 5-D TRANSPOSE; dropping size-1 dimensions and merging input
    dimensions that stay neighbours gives the same bytes in at most 4 whenever that is possible."""
    import math

    from tinyedge.ops.transpose import simplified

    assert simplified([1, 4, 4, 2, 3], [0, 1, 2, 4, 3]) == ([16, 2, 3], [0, 2, 1])
    rng = np.random.default_rng(0)
    for _ in range(2000):
        rank = int(rng.integers(1, 7))
        shape = [int(rng.integers(1, 4)) for _ in range(rank)]
        axes = [int(a) for a in rng.permutation(rank)]
        x = np.arange(math.prod(shape)).reshape(shape)
        sizes, order = simplified(shape, axes)
        assert np.array_equal(np.transpose(x, axes).ravel(), np.transpose(x.reshape(sizes), order).ravel())


def test_merged_transpose_dimensions_stay_within_the_kernels_int16_dims():
    """A PyTorch NCHW input at 224×224 (TFLM's MobileNetV2) transposed to NHWC: 224*224 would overflow
    te_dim (int16), so those dimensions stay apart (merging them made 965 of 1,000 outputs wrong)."""
    from tinyedge.ops.transpose import simplified

    sizes, order = simplified([1, 3, 224, 224], [0, 2, 3, 1])
    assert max(sizes) <= 32767 and sizes == [3, 224, 224] and order == [1, 2, 0]
    assert simplified([1, 3, 100, 100], [0, 2, 3, 1]) == ([3, 10000], [1, 0])
