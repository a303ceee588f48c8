"""The AOT runtime computes what tflite-micro computes, on shapes nobody picked by hand: a seeded
sample of the differential shape fuzzer (tests/aot_fuzz_cases.py; benchmarks/aot_fuzz.py runs it
long), each case on the portable and the DSP kernels under AddressSanitizer and UBSan with every op
held to its own arena and scratch bytes. And the shapes it (or a user) found wrong, kept as tests."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from aot_fuzz_cases import Case, random_case, run_case
from aot_harness import NativeModel, SanitizedModel, assert_matches_reference, random_inputs, sanitized_kernels, to_int8

QUICK_SEEDS = range(1, 13)   # seed 4 is issue 17's pointwise conv over 1,024 channels


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> Path:
    if shutil.which("clang") is None:
        pytest.skip("needs clang with AddressSanitizer (apt-get install clang libclang-rt-14-dev)")
    return sanitized_kernels(tmp_path_factory.mktemp("sanitized_kernels"))


def _pointwise_576(then_3x3: bool):
    """MobileNetV2's CONV 576->96 (1x1, stride 1): two im2col columns of 576 channels exceed 2,048 bytes;
    `then_3x3` adds a conv whose own (one-column) scratch is larger than that one column."""
    import tensorflow as tf

    inputs = tf.keras.Input((5, 7, 576))
    x = tf.keras.layers.Conv2D(96, 1)(inputs)
    if then_3x3:
        x = tf.keras.layers.Conv2D(8, 3, padding="same")(x)
    return tf.keras.Model(inputs, x)


def test_pointwise_conv_over_576_channels_is_bit_exact_on_the_dsp_kernels(tmp_path):
    """Issue 17: te_dsp_pointwise_conv2d always widens two pixels, but the scratch was sized for one
    column when two exceeded 2,048 bytes, so the second column ran past te_scratch (up to 123 LSB off)."""
    model = to_int8(_pointwise_576(then_3x3=False), samples=8)
    native = NativeModel(model, tmp_path, dsp=True)
    assert "te_dsp_pointwise_conv2d(" in native.program.source
    assert_matches_reference(model, native, samples=3)


def test_pointwise_conv_over_576_channels_stays_in_its_scratch(tmp_path, kernels):
    """The same overrun where the outputs happen to come out right (it wrote into scratch bytes that
    only the next conv uses): the guarded build catches it all the same."""
    model = to_int8(_pointwise_576(then_3x3=True), samples=8)
    native = SanitizedModel(model, tmp_path, kernels, dsp=True)
    native.run([random_inputs(model, np.random.default_rng(0))])


def test_the_guard_stops_an_op_that_uses_more_scratch_than_it_declared(tmp_path, kernels):
    """The fuzzer's harness is not blind: a pointwise conv told it has one column less of scratch than
    it uses trips AddressSanitizer."""
    model = to_int8(_pointwise_576(then_3x3=True), samples=8)
    program = SanitizedModel(model, tmp_path / "honest", kernels, dsp=True).program
    lying = dataclasses.replace(program, op_scratch_bytes=[program.op_scratch_bytes[0] - 2 * 576,
                                                           *program.op_scratch_bytes[1:]])
    native = SanitizedModel(model, tmp_path / "lying", kernels, dsp=True, program=lying)
    with pytest.raises(AssertionError, match="AddressSanitizer"):
        native.run([random_inputs(model, np.random.default_rng(0))])


@pytest.mark.slow
@pytest.mark.parametrize("seed", QUICK_SEEDS)
def test_random_model_matches_tflite_micro_on_both_kernel_paths(seed, tmp_path, kernels):
    case = random_case(seed)
    findings = [f for f in run_case(case, tmp_path, kernels) if f.what != "refused"]
    assert not findings, "\n".join(str(f) for f in findings)


def test_a_printed_case_rebuilds_the_same_case():
    case = random_case(7)
    assert Case.from_json(case.to_json()) == case
