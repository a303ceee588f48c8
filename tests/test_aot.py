"""The AOT compiler, op by op: each single-op int8 model, compiled to C and built natively with
-Wall -Wextra -Werror, gives the same bytes as tflite-micro's interpreter on random inputs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aot_harness import NativeModel, assert_matches_reference, reshape_to_squeeze, to_int8
from tinyedge.aot.compiler import compile_model, tensor_label
from tinyedge.aot.ops import check_supported
from tinyedge.aot.planner import Buffer, find_conflicts, plan_memory
from tinyedge.aot.quant import multiply_by_quantized_multiplier, quantize_multiplier
from tinyedge.errors import TinyedgeError


def _bias():
    import tensorflow as tf

    return tf.keras.initializers.RandomNormal(stddev=0.2)


def _model(input_shape, *layers, seed: int = 3):
    import tensorflow as tf

    k = tf.keras
    k.utils.set_random_seed(seed)
    return k.Sequential([k.Input(input_shape), *layers])


def _conv_valid_relu(k):
    return _model((10, 9, 3), k.layers.Conv2D(4, 3, padding="valid", activation="relu", bias_initializer=_bias()))


def _conv_same_stride2_relu6(k):
    return _model((11, 10, 2), k.layers.Conv2D(6, (3, 2), strides=2, padding="same", activation="relu6",
                                               bias_initializer=_bias()))


def _conv_dilated(k):
    return _model((12, 12, 2), k.layers.Conv2D(3, 3, dilation_rate=2, padding="same", bias_initializer=_bias()))


def _conv_valid_stride3(k):
    return _model((13, 11, 3), k.layers.Conv2D(5, (4, 3), strides=(3, 2), padding="valid", bias_initializer=_bias()))


def _depthwise_multiplier2(k):
    return _model((9, 9, 3), k.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same",
                                                      activation="relu", bias_initializer=_bias()))


def _depthwise_dilated_valid(k):
    return _model((10, 10, 4), k.layers.DepthwiseConv2D(3, dilation_rate=2, padding="valid", activation="relu6",
                                                        bias_initializer=_bias()))


def _fully_connected(k):
    return _model((20,), k.layers.Dense(10, activation="relu", bias_initializer=_bias()))


def _fully_connected_per_tensor(k):
    """One output unit: the converter gives it one filter scale, TFLM's per-tensor FC path."""
    return _model((24,), k.layers.Dense(1, bias_initializer=_bias()))


def _flatten_fully_connected(k):
    return _model((4, 3, 2), k.layers.Flatten(), k.layers.Dense(7, bias_initializer=_bias()))


def _average_pool(k):
    return _model((9, 7, 3), k.layers.AveragePooling2D(3, strides=2, padding="same"))


def _max_pool(k):
    return _model((9, 8, 3), k.layers.MaxPooling2D(2))


def _max_pool_same(k):
    return _model((7, 7, 2), k.layers.MaxPooling2D(3, strides=2, padding="same"))


def _pad(k):
    return _model((5, 4, 3), k.layers.ZeroPadding2D(((1, 2), (0, 1))))


def _concat(k):
    inputs = k.Input((6, 5, 2))
    a = k.layers.Conv2D(3, 1, bias_initializer=_bias())(inputs)
    b = k.layers.Conv2D(2, 3, padding="same", bias_initializer=_bias())(inputs)
    return k.Model(inputs, k.layers.Concatenate()([a, b]))


def _reshape_squeeze(k):
    inputs = k.Input((1, 6, 4))
    x = k.layers.Conv2D(4, 1, bias_initializer=_bias())(inputs)
    x = k.layers.Lambda(lambda t: k.ops.squeeze(t, axis=1))(x)
    x = k.layers.Reshape((4, 6))(x)
    return k.Model(inputs, x)


def _squeeze(k):
    inputs = k.Input((1, 6, 4))
    return k.Model(inputs, k.layers.Reshape((6, 4))(k.layers.Conv2D(4, 1, bias_initializer=_bias())(inputs)))


SINGLE_OP_MODELS = {
    "conv_valid_relu": (_conv_valid_relu, "CONV_2D"),
    "conv_same_stride2_relu6": (_conv_same_stride2_relu6, "CONV_2D"),
    "conv_dilated": (_conv_dilated, "CONV_2D"),
    "conv_valid_stride3x2": (_conv_valid_stride3, "CONV_2D"),
    "depthwise_multiplier2": (_depthwise_multiplier2, "DEPTHWISE_CONV_2D"),
    "depthwise_dilated_valid": (_depthwise_dilated_valid, "DEPTHWISE_CONV_2D"),
    "fully_connected": (_fully_connected, "FULLY_CONNECTED"),
    "fully_connected_per_tensor": (_fully_connected_per_tensor, "FULLY_CONNECTED"),
    "flatten_fully_connected": (_flatten_fully_connected, "RESHAPE"),
    "average_pool_same": (_average_pool, "AVERAGE_POOL_2D"),
    "max_pool": (_max_pool, "MAX_POOL_2D"),
    "max_pool_same": (_max_pool_same, "MAX_POOL_2D"),
    "pad": (_pad, "PAD"),
    "concatenation": (_concat, "CONCATENATION"),
    "reshape_squeeze": (_reshape_squeeze, "RESHAPE"),
    "squeeze": (_squeeze, "SQUEEZE"),
}


@pytest.fixture(scope="session")
def single_op_models():
    """Each single-op model converted to full int8 once per session (on first use)."""
    import tensorflow as tf

    cache = {}

    def get(name: str):
        if name not in cache:
            build, _ = SINGLE_OP_MODELS[name]
            cache[name] = to_int8(build(tf.keras))
            if name == "squeeze":
                cache[name] = reshape_to_squeeze(cache[name], [1])
        return cache[name]

    return get


@pytest.mark.parametrize("name", sorted(SINGLE_OP_MODELS))
def test_single_op_is_bit_exact_with_tflite_micro(name, single_op_models, tmp_path):
    model = single_op_models(name)
    assert SINGLE_OP_MODELS[name][1] in model.op_names()
    native = NativeModel(model, tmp_path)
    assert_matches_reference(model, native, samples=6)


def test_generated_code_names_every_op_and_its_tensors(single_op_models):
    model = single_op_models("concatenation")
    source = compile_model(model).source
    for op in model.operators:
        line = next(line for line in source.splitlines() if f"/* {op.index}: {op.opcode} (" in line)
        assert all(tensor_label(model.tensors[i]) in line for i in op.inputs + op.outputs)
    assert "malloc" not in source and "#include <stdlib.h>" not in source


def test_fully_connected_covers_per_channel_and_per_tensor_weights(single_op_models):
    def filter_scales(name):
        model = single_op_models(name)
        return model.tensors[model.operators[-1].inputs[1]].scale.size

    assert filter_scales("fully_connected") == 10
    assert filter_scales("fully_connected_per_tensor") == 1


@pytest.mark.parametrize("name", ["reshape_squeeze", "squeeze"])
def test_reshape_and_squeeze_share_their_input_bytes(name, single_op_models):
    model = single_op_models(name)
    program = compile_model(model)
    aliases = [op for op in model.operators if op.opcode in ("RESHAPE", "SQUEEZE")]
    assert aliases
    for op in aliases:
        assert program.tensor_offsets[op.inputs[0]] == program.tensor_offsets[op.outputs[0]]
    conv_out = model.tensors[model.operators[0].outputs[0]]
    assert program.plan.arena_bytes == model.input_tensors[0].nbytes + conv_out.nbytes


def test_runtime_reports_aot_name_and_version(single_op_models, tmp_path):
    import tinyedge

    native = NativeModel(single_op_models("fully_connected"), tmp_path)
    assert native.lib.te_runtime_name() == b"aot"
    assert native.lib.te_runtime_version() == tinyedge.__version__.encode()
    assert native.lib.te_runtime_set_arena(4096) == 3  # TE_ERR_UNSUPPORTED: the arena is planned statically
    assert native.lib.te_runtime_arena_used() == compile_model(native.model).plan.arena_bytes


def test_model_with_an_unsupported_op_is_refused_with_a_pointer_to_tflm():
    import tensorflow as tf

    k = tf.keras
    model = to_int8(_model((8,), k.layers.Dense(8, bias_initializer=_bias()), k.layers.Activation(tf.nn.log_softmax)))
    assert "LOG_SOFTMAX" in model.op_names()
    with pytest.raises(TinyedgeError, match=r"LOG_SOFTMAX.*--runtime tflm"):
        check_supported(model)
    with pytest.raises(TinyedgeError, match="LOG_SOFTMAX"):
        compile_model(model)


def test_write_sources_lays_out_a_self_contained_c_project(single_op_models, tmp_path):
    from tinyedge.boards import get_board
    from tinyedge.runtimes import get_runtime

    model = single_op_models("depthwise_multiplier2")
    sources = get_runtime("aot").write_sources(model, get_board("qemu-cortex-m4"), tmp_path, None, None)
    assert sources.uses_cpp is False and sources.needs_tflm_tree is False
    assert sources.arena_bytes == compile_model(model).plan.arena_bytes
    assert "aot/te_model.c" in sources.sources and "aot/te_kernels.c" in sources.sources
    assert all((tmp_path / s).exists() for s in sources.sources)
    assert (tmp_path / "aot" / "te_pgm.h").exists() and sources.include_dirs == ["aot"]
    with pytest.raises(TinyedgeError, match="arena"):
        get_runtime("aot").write_sources(model, get_board("qemu-cortex-m4"), tmp_path, 16, None)


@pytest.mark.parametrize("real", [0.5, 1.0, 0.75, 3.2e-5, 1e-12, 123.456, 0.0])
def test_quantize_multiplier_follows_tflm(real):
    multiplier, shift = quantize_multiplier(real)
    if real < 2.0**-31 * 0.5:
        assert (multiplier, shift) == (0, 0)
    else:
        assert 2**30 <= multiplier < 2**31
        assert multiplier * 2.0 ** (shift - 31) == pytest.approx(real, rel=1e-9)


def test_requantization_matches_gemmlowp_rounding():
    multiplier, shift = quantize_multiplier(0.5)
    # SaturatingRoundingDoublingHighMul's nudge sends -1.5 to -1; RoundingDivideByPOT sends ties away from 0.
    assert [multiply_by_quantized_multiplier(x, multiplier, shift) for x in (3, -3, 5, -5, 4)] == [2, -1, 3, -2, 2]
    multiplier, shift = quantize_multiplier(0.25)
    assert [multiply_by_quantized_multiplier(x, multiplier, shift) for x in (6, -6, 2, -2)] == [2, -2, 1, -1]


def test_c_requantization_agrees_with_the_python_model_on_random_values(tmp_path):
    import ctypes

    from aot_harness import CC
    from tinyedge.paths import FIRMWARE_DIR

    library = tmp_path / "libkernels.so"
    subprocess.run([CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
                    str(FIRMWARE_DIR / "aot" / "te_kernels.c"), "-o", str(library)], check=True)
    c_function = ctypes.CDLL(str(library)).te_mul_by_quantized_multiplier
    c_function.argtypes = [ctypes.c_int32, ctypes.c_int32, ctypes.c_int8]
    c_function.restype = ctypes.c_int32
    rng = np.random.default_rng(7)
    for _ in range(3000):
        multiplier, shift = quantize_multiplier(float(np.exp(rng.uniform(-20, 2))))
        x = int(rng.integers(-(2**31) >> max(shift, 0), (2**31 - 1) >> max(shift, 0)))
        assert c_function(x, multiplier, shift) == multiply_by_quantized_multiplier(x, multiplier, shift), (x, multiplier, shift)


lifetimes = st.lists(
    st.tuples(st.integers(1, 400), st.integers(-1, 12), st.integers(0, 6), st.sampled_from([1, 1, 4])),
    min_size=1, max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(lifetimes)
def test_memory_plan_never_overlaps_live_tensors_and_never_exceeds_the_sum(specs):
    buffers = [Buffer(i, size, first, first + length, align) for i, (size, first, length, align) in enumerate(specs)]
    plan = plan_memory(buffers)
    assert find_conflicts(buffers, plan) == []
    assert all(plan.offsets[b.key] % b.align == 0 for b in buffers)
    assert plan.arena_bytes <= sum(b.size + b.align - 1 for b in buffers)
    peak_live = max(sum(b.size for b in buffers if b.first <= t <= b.last) for t in range(-1, 20))
    assert plan.arena_bytes >= peak_live


def test_memory_plan_reuses_dead_tensors():
    chain = [Buffer(i, 100, i - 1, i) for i in range(6)]   # t0 -> t1 -> ... each read by the next op only
    plan = plan_memory(chain)
    assert plan.arena_bytes == 200
    assert find_conflicts(chain, plan) == []


def _avr_size(elf: Path) -> dict[str, int]:
    out = subprocess.run(["avr-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\w+)\s+(\d+)", out, re.M)}


AVR_MAIN = """#include <stdint.h>
#include "tinyedge_runtime.h"
int main(void) {
  volatile uint8_t sink;
  uint8_t *in = te_runtime_input(0);
  te_runtime_init();
  in[0] = 42;
  te_runtime_invoke();
  sink = te_runtime_output(0)[0];
  (void)sink;
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("avr-gcc") is None, reason="avr-gcc is not installed")
def test_sine_mlp_fits_an_arduino_uno(sine_model, tmp_path):
    from tinyedge.boards import get_board
    from tinyedge.paths import FIRMWARE_DIR
    from tinyedge.runtimes.aot import write_sources
    from tinyedge.tflite_model import load_tflite

    board = get_board("arduino-uno")
    sources = write_sources(load_tflite(sine_model.int8), board, tmp_path, None, None)
    (tmp_path / "main.c").write_text(AVR_MAIN)
    elf = tmp_path / "sine.elf"
    subprocess.run(["avr-gcc", *board.cpu_flags, "-Os", "-std=c99", "-Wall", "-Wextra", "-Werror",
                    "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "-I", str(tmp_path / "aot"), "-I", str(FIRMWARE_DIR / "common"),
                    str(tmp_path / "main.c"), *[str(tmp_path / s) for s in sources.sources], "-o", str(elf)],
                   check=True, capture_output=True, text=True)
    sizes = _avr_size(elf)
    flash = sizes.get(".text", 0) + sizes.get(".data", 0)
    ram = sizes.get(".data", 0) + sizes.get(".bss", 0)
    assert flash < 28 * 1024, sizes
    assert ram < 1536, sizes
    assert sources.arena_bytes < 64


@pytest.mark.skipif(shutil.which("simavr") is None or shutil.which("avr-gcc") is None, reason="needs avr-gcc and simavr")
@pytest.mark.parametrize("name", ["conv_same_stride2_relu6", "depthwise_multiplier2", "average_pool_same",
                                  "pad", "concatenation", "fully_connected"])
def test_ops_are_bit_exact_on_an_emulated_atmega328p(name, single_op_models, tmp_path):
    """On AVR `int` is 16 bits and constants are read from flash: the same bytes must come out."""
    from aot_harness import random_inputs, run_on_simavr
    from tinyedge.reference import Reference

    model = single_op_models(name)
    rng = np.random.default_rng(11)
    inputs = [random_inputs(model, rng)[0] for _ in range(3)] + [np.full(model.input_tensors[0].shape, -128, np.int8)]
    reference = Reference(model)
    outputs = run_on_simavr(model, inputs, tmp_path)
    for x, got in zip(inputs, outputs):
        np.testing.assert_array_equal(got, reference.run([x])[0])


@pytest.mark.skipif(shutil.which("simavr") is None or shutil.which("avr-gcc") is None, reason="needs avr-gcc and simavr")
def test_sine_mlp_is_bit_exact_on_an_emulated_atmega328p(sine_model, tmp_path):
    from aot_harness import run_on_simavr
    from tinyedge.reference import Reference
    from tinyedge.tflite_model import load_tflite

    model = load_tflite(sine_model.int8)
    inputs = [np.array([[v]], dtype=np.int8) for v in (-128, -60, 0, 33, 127)]
    reference = Reference(model)
    for x, got in zip(inputs, run_on_simavr(model, inputs, tmp_path)):
        np.testing.assert_array_equal(got, reference.run([x])[0])


def _pointwise_depthwise(strides: int, dilation: int, padding: str, kernel: int = 3):
    """A narrow input widened by a 1x1 conv: the depthwise conv is where RAM peaks out of place."""
    def build(k):
        return _model((9, 8, 1),
                      k.layers.Conv2D(12, 1, activation="relu", bias_initializer=_bias()),
                      k.layers.DepthwiseConv2D(kernel, strides=strides, dilation_rate=dilation, padding=padding,
                                               activation="relu6", bias_initializer=_bias()),
                      k.layers.Conv2D(4, 1, bias_initializer=_bias()))
    return build


def _residual_block(k):
    inputs = k.Input((7, 6, 3))
    x = k.layers.Conv2D(5, 3, padding="same", activation="relu", bias_initializer=_bias())(inputs)
    y = k.layers.Conv2D(5, 3, padding="same", activation="relu", bias_initializer=_bias())(x)
    y = k.layers.Conv2D(5, 3, padding="same", bias_initializer=_bias())(y)
    x = k.layers.ReLU()(k.layers.Add()([x, y]))
    return k.Model(inputs, k.layers.Conv2D(2, 1, bias_initializer=_bias())(x))


def _conv_kernel_shapes(k):
    """Ring depths 2 (5x5), 0 (2x3: SAME pads only below) and 1 (3x1), then a narrowing 1x1."""
    return _model((8, 7, 2),
                  k.layers.Conv2D(4, 1, bias_initializer=_bias()),
                  k.layers.Conv2D(4, 5, padding="same", activation="relu", bias_initializer=_bias()),
                  k.layers.Conv2D(4, (2, 3), padding="same", bias_initializer=_bias()),
                  k.layers.Conv2D(4, (3, 1), padding="same", activation="relu6", bias_initializer=_bias()),
                  k.layers.Conv2D(3, 1, bias_initializer=_bias()),
                  k.layers.Flatten(), k.layers.Dense(5, bias_initializer=_bias()))


# name -> (builder, the in-place kernels the generated C must call)
INPLACE_MODELS = {
    "depthwise_stride1": (_pointwise_depthwise(1, 1, "same"),
                          ["te_depthwise_conv2d_inplace", "te_pointwise_conv2d_inplace"]),
    "depthwise_stride2": (_pointwise_depthwise(2, 1, "same"), ["te_depthwise_conv2d_inplace"]),
    "depthwise_dilated": (_pointwise_depthwise(1, 2, "valid"), ["te_depthwise_conv2d_inplace"]),
    "depthwise_5x5_stride2": (_pointwise_depthwise(2, 1, "same", kernel=5), ["te_depthwise_conv2d_inplace"]),
    "residual_block": (_residual_block, ["te_band_advance"]),   # fused: tests/test_residual_fusion.py
    "conv_kernel_shapes": (_conv_kernel_shapes, ["te_conv2d_inplace", "te_pointwise_conv2d_inplace"]),
}


@pytest.fixture(scope="session")
def inplace_models():
    import tensorflow as tf

    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = to_int8(INPLACE_MODELS[name][0](tf.keras))
        return cache[name]

    return get


@pytest.mark.parametrize("name", sorted(INPLACE_MODELS))
def test_convolutions_written_over_their_input_are_bit_exact(name, inplace_models, tmp_path):
    model = inplace_models(name)
    native = NativeModel(model, tmp_path)
    program = native.program
    for kernel in INPLACE_MODELS[name][1]:
        assert f"{kernel}(" in program.source
    assert "te_scratch_mem" in program.source and program.stats.scratch_bytes > 0
    out_of_place = compile_model(model, inplace_with_scratch=False)
    assert "_inplace(" not in out_of_place.source and out_of_place.stats.scratch_bytes == 0
    assert program.plan.arena_bytes < out_of_place.plan.arena_bytes
    assert program.stats.ram_bytes == program.plan.arena_bytes + program.stats.scratch_bytes   # constants: flash
    assert_matches_reference(model, native, samples=6)


def test_in_place_convolutions_share_their_input_buffer_and_size_the_scratch(inplace_models):
    model = inplace_models("residual_block")
    program = compile_model(model, fuse_residual_blocks=False)
    convs = [op for op in model.operators if op.opcode == "CONV_2D"]
    first, block_conv1, block_conv2 = convs[:3]
    offsets = program.tensor_offsets
    # The block's input x is read again by ADD: conv1 must not write over it; conv2 may write over conv1's output.
    assert offsets[block_conv1.outputs[0]] != offsets[block_conv1.inputs[0]]
    assert offsets[block_conv2.outputs[0]] == offsets[block_conv2.inputs[0]]
    assert offsets[first.outputs[0]] != offsets[first.inputs[0]]   # the model input stays intact
    assert program.stats.scratch_bytes == (1 + 1) * 6 * 5        # one ring row and one output row of 6x5


def test_depthwise_scratch_is_one_channel_plane(inplace_models):
    program = compile_model(inplace_models("depthwise_stride2"))
    assert program.stats.scratch_bytes == 9 * 8
    assert "static union { int8_t bytes[72]; int32_t align; } te_scratch_mem;" in program.source


def test_models_without_in_place_convolutions_declare_no_scratch(single_op_models):
    program = compile_model(single_op_models("depthwise_multiplier2"))
    assert program.stats.scratch_bytes == 0 and "te_scratch" not in program.source


@pytest.mark.skipif(shutil.which("simavr") is None or shutil.which("avr-gcc") is None, reason="needs avr-gcc and simavr")
@pytest.mark.parametrize("name", ["depthwise_stride2", "conv_kernel_shapes"])
def test_in_place_convolutions_are_bit_exact_on_an_emulated_atmega328p(name, inplace_models, tmp_path):
    from aot_harness import random_inputs, run_on_simavr
    from tinyedge.reference import Reference

    model = inplace_models(name)
    rng = np.random.default_rng(5)
    inputs = [random_inputs(model, rng)[0] for _ in range(2)] + [np.full(model.input_tensors[0].shape, 127, np.int8)]
    reference = Reference(model)
    for x, got in zip(inputs, run_on_simavr(model, inputs, tmp_path)):
        np.testing.assert_array_equal(got, reference.run([x])[0])
