"""The AOT kernels for SOFTMAX, LOGISTIC, TANH, MEAN, ADD, MUL, QUANTIZE and DEQUANTIZE, proved
bit-exact against tflite-micro's reference kernels.

Each case converts a tiny TF graph to full int8 with the real TFLite converter, lowers every operator
with their op modules (tinyedge/ops/), compiles the generated C with te_nonlinear.c into a native program
(cc -O2 -Wall -Wextra -Werror), feeds it hundreds of random inputs including the int8 extremes, and
compares every output byte with what tflite-micro's interpreter answers for the same input. The same
generated code then runs on a simulated ATmega328P (simavr) and Cortex-M4 (qemu mps2-an386) against
the same expected bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
from aot_harness import kernel_objects

from tinyedge.aot.lowering import Lowered
from tinyedge.aot.ops import lowerings
from tinyedge.aot.quant import quantize_multiplier
from tinyedge.ops.broadcast import broadcast_geometry
from tinyedge.ops.logistic import logistic_table
from tinyedge.ops.mean import mean_geometry
from tinyedge.ops.softmax import softmax_parameters
from tinyedge.errors import TinyedgeError
from tinyedge.paths import FIRMWARE_DIR
from tinyedge.reference import Reference
from tinyedge.tflite_model import Operator, TfliteModel, parse_tflite

AOT_DIR = FIRMWARE_DIR / "aot"
KERNELS_C = AOT_DIR / "te_nonlinear.c"
FIXED_POINT_C = AOT_DIR / "te_kernels.c"   # te_mul_by_quantized_multiplier, which te_nonlinear.c calls
CC = os.environ.get("CC", shutil.which("cc") or "gcc")
HOST_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]
SAMPLES = 300
LOWERINGS = lowerings()
C_TYPES = {"INT8": "int8_t", "FLOAT32": "float", "INT32": "int32_t"}


# ---------------------------------------------------------------------------------------------
# Models: tiny TF graphs through the real converter, batch fixed to 1

@dataclass(frozen=True)
class Case:
    fn: Callable
    shapes: list[tuple[int, ...]]
    ranges: list[float | tuple[float, float]]  # r means (-r, r)
    float_io: bool = False
    edit: Callable | None = None  # changes the converted flatbuffer (schema ModelT) in place


def _tf():
    import tensorflow as tf

    return tf


def _softmax(x):
    return _tf().nn.softmax(x)


def _set_softmax_beta(beta: float):
    def edit(model) -> None:
        for op in model.subgraphs[0].operators:
            if getattr(op.builtinOptions, "beta", None) is not None:
                op.builtinOptions.beta = beta
    return edit


def _make_input_int8(scale: float, zero_point: int):
    """Turn a float model input into an int8 one, so the QUANTIZE after it becomes an int8 requantize."""
    def edit(model) -> None:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

        tensor = model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]]
        tensor.type = schema.TensorType.INT8
        quant = schema.QuantizationParametersT()
        quant.scale, quant.zeroPoint = [scale], [zero_point]
        tensor.quantization = quant
    return edit


def _gap(x):
    return _tf().keras.layers.GlobalAveragePooling2D()(x)


def _const(values):
    return _tf().constant(np.asarray(values, dtype=np.float32))


CASES: dict[str, Case] = {
    # SOFTMAX: depths 2..33, input scales from ~0.008 to ~40 (the last caps the multiplier)
    "softmax_d2": Case(_softmax, [(2,)], [1.0]),
    "softmax_d10": Case(_softmax, [(10,)], [8.0]),
    "softmax_4x33": Case(_softmax, [(4, 33)], [60.0]),
    "softmax_capped": Case(_softmax, [(16,)], [5000.0]),
    "softmax_asymmetric": Case(_softmax, [(12,)], [(0.0, 5.0)]),
    "softmax_beta_0.37": Case(_softmax, [(10,)], [8.0], edit=_set_softmax_beta(0.37)),
    "softmax_beta_2.5": Case(_softmax, [(3, 7)], [3.0], edit=_set_softmax_beta(2.5)),
    # LOGISTIC / TANH over several input scales
    "logistic_r0.5": Case(lambda x: _tf().nn.sigmoid(x), [(3, 7)], [0.5]),
    "logistic_r4": Case(lambda x: _tf().nn.sigmoid(x), [(21,)], [4.0]),
    "logistic_r20": Case(lambda x: _tf().nn.sigmoid(x), [(21,)], [20.0]),
    "logistic_asymmetric": Case(lambda x: _tf().nn.sigmoid(x), [(21,)], [(-1.0, 7.0)]),
    "tanh_r0.5": Case(lambda x: _tf().nn.tanh(x), [(3, 7)], [0.5]),
    "tanh_r3": Case(lambda x: _tf().nn.tanh(x), [(21,)], [3.0]),
    "tanh_r12": Case(lambda x: _tf().nn.tanh(x), [(21,)], [12.0]),
    "tanh_asymmetric": Case(lambda x: _tf().nn.tanh(x), [(21,)], [(-0.5, 4.0)]),
    # MEAN: GlobalAveragePooling2D and tf.reduce_mean over other axes
    "mean_gap": Case(_gap, [(6, 7, 8)], [2.0]),
    "mean_gap_asymmetric": Case(_gap, [(3, 4, 5)], [(0.0, 3.0)]),
    "mean_axes12_keepdims": Case(lambda x: _tf().reduce_mean(x, axis=[1, 2], keepdims=True), [(4, 5, 3)], [1.0]),
    "mean_last_axis": Case(lambda x: _tf().reduce_mean(x, axis=[-1]), [(4, 5, 3)], [3.0]),
    "mean_axis1_of_3d": Case(lambda x: _tf().reduce_mean(x, axis=[1]), [(5, 6)], [1.0]),
    "mean_axes_1_3": Case(lambda x: _tf().reduce_mean(x, axis=[1, 3]), [(4, 5, 3)], [1.5]),
    # ADD
    "add_same_shape": Case(lambda x, y: x + y, [(3, 6), (3, 6)], [1.0, 4.0]),
    "add_broadcast_row": Case(lambda x, y: x + y, [(3, 6), (1, 6)], [2.0, 0.5]),
    "add_broadcast_both": Case(lambda x, y: x + y, [(4, 1, 3), (1, 5, 3)], [1.0, 1.0]),
    "add_5d": Case(lambda x, y: x + y, [(2, 3, 4, 5), (1, 3, 1, 5)], [1.0, 3.0]),
    "add_const": Case(lambda x: x + _const(np.linspace(-1, 1, 6)), [(3, 6)], [1.0]),
    "add_const_scalar": Case(lambda x: x + 0.75, [(12,)], [2.0]),
    "add_relu": Case(lambda x, y: _tf().nn.relu(x + y), [(12,), (12,)], [1.0, 2.0]),
    "add_asymmetric": Case(lambda x, y: x + y, [(3, 6), (3, 6)], [(0.0, 2.0), (-3.0, 0.5)]),
    # MUL
    "mul_same_shape": Case(lambda x, y: x * y, [(3, 6), (3, 6)], [1.0, 4.0]),
    "mul_broadcast_row": Case(lambda x, y: x * y, [(3, 6), (1, 6)], [2.0, 0.5]),
    "mul_broadcast_both": Case(lambda x, y: x * y, [(4, 1, 3), (1, 5, 3)], [1.0, 2.0]),
    "mul_const": Case(lambda x: x * _const(np.linspace(-2, 3, 6)), [(3, 6)], [1.0]),
    "mul_const_scalar": Case(lambda x: x * 3.0, [(12,)], [1.0]),
    "mul_relu6": Case(lambda x, y: _tf().nn.relu6(x * y), [(12,), (12,)], [3.0, 2.0]),
    "mul_asymmetric": Case(lambda x, y: x * y, [(3, 6), (1, 6)], [(0.0, 1.0), (-0.5, 2.0)]),
    # QUANTIZE / DEQUANTIZE: models whose I/O stayed float, and an int8 -> int8 requantize
    "float_io_logistic": Case(lambda x: _tf().nn.sigmoid(x), [(16,)], [3.0], float_io=True),
    "float_io_add": Case(lambda x, y: x + y, [(8,), (8,)], [1.0, 5.0], float_io=True),
    "requantize": Case(lambda x: _tf().nn.sigmoid(x), [(16,)], [3.0], float_io=True,
                       edit=_make_input_int8(0.0372, 9)),
}


def convert(case: Case) -> TfliteModel:
    tf = _tf()
    specs = [tf.TensorSpec([1, *shape], tf.float32) for shape in case.shapes]
    concrete = tf.function(case.fn).get_concrete_function(*specs)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(64):
            yield [rng.uniform(*_bounds(r), size=(1, *s)).astype(np.float32) for s, r in zip(case.shapes, case.ranges)]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not case.float_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    data = converter.convert()
    if case.edit is not None:
        data = _edit_flatbuffer(data, case.edit)
    return parse_tflite(data)


def _bounds(r: float | tuple[float, float]) -> tuple[float, float]:
    return r if isinstance(r, tuple) else (-r, r)


def _edit_flatbuffer(data: bytes, edit: Callable) -> bytes:
    from models import edit_flatbuffer

    return edit_flatbuffer(data, edit)


class Zoo:
    """Every case's converted model, made once per test session, on first use."""

    def __init__(self):
        self._models: dict[str, TfliteModel] = {}

    def __getitem__(self, name: str) -> TfliteModel:
        if name not in self._models:
            self._models[name] = convert(CASES[name])
        return self._models[name]


@pytest.fixture(scope="session")
def zoo() -> Zoo:
    return Zoo()


# ---------------------------------------------------------------------------------------------
# Inputs: random, plus the extremes

def sample_inputs(model: TfliteModel, count: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    samples = []
    for k in range(count):
        sample = []
        for tensor in model.input_tensors:
            if tensor.type_name == "FLOAT32":
                sample.append(_float_input(rng, tensor.index, k, model))
            else:
                sample.append(_int8_input(rng, tensor.shape, k))
        samples.append(sample)
    return samples


def _int8_input(rng: np.random.Generator, shape: tuple[int, ...], k: int) -> np.ndarray:
    size = int(np.prod(shape))
    specials = [np.full(size, -128), np.full(size, 127), np.zeros(size), np.resize([-128, 127], size),
                np.resize([127, -128, 0], size), np.arange(size) % 256 - 128]
    if k < len(specials):
        return np.asarray(specials[k], dtype=np.int8).reshape(shape)
    if k % 3 == 0:  # a narrow spread around one value, so no single element dominates a softmax
        center = rng.integers(-128, 128)
        return np.clip(center + rng.integers(-6, 7, size=size), -128, 127).astype(np.int8).reshape(shape)
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def _float_input(rng: np.random.Generator, index: int, k: int, model: TfliteModel) -> np.ndarray:
    """Floats around the quantizer's range, with exact half steps (to test rounding) and far outliers."""
    quantize = next(op for op in model.operators if op.opcode == "QUANTIZE" and op.inputs[0] == index)
    out, shape = model.tensors[quantize.outputs[0]], model.tensors[index].shape
    scale, zero_point = np.float32(out.scale[0]), int(out.zero_point[0])
    size = int(np.prod(shape))
    if k % 4 == 1:
        steps = rng.integers(-140 - zero_point, 140 - zero_point, size=size) + 0.5
        return (steps.astype(np.float32) * scale).reshape(shape)
    if k == 2:  # far outliers, short of 2^31 steps (beyond that TFLM's float->int32 cast is undefined)
        outliers = np.array([0.0, -0.0, 1e3, -1e3, 1e8, -1e8], dtype=np.float32) * scale
        return np.resize(outliers, size).reshape(shape)
    span = float(scale) * 160
    return rng.uniform(-span, span, size=shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The native harness: every tensor in its own static buffer (or sharing one where a lowering
# says the output may overwrite its input), the lowered calls in operator order

@dataclass
class Harness:
    model: TfliteModel
    share_inplace: bool = False
    lowered: list[Lowered] = field(default_factory=list)

    def __post_init__(self):
        self.storage = {i: i for i in range(len(self.model.tensors))}
        self._used_constants: set[int] = set()
        if self.share_inplace:
            first = [self._lower(op) for op in self.model.operators]
            for op, lowered in zip(self.model.operators, first):
                if lowered.inplace_ok:
                    self.storage[op.outputs[0]] = self.storage[op.inputs[0]]
        self.lowered = [self._lower(op) for op in self.model.operators]

    def _lower(self, op) -> Lowered:
        if op.opcode not in LOWERINGS:
            raise AssertionError(f"{op.opcode} has no AOT lowering")
        return LOWERINGS[op.opcode](self.model, op, self.ptr)

    def ptr(self, index: int) -> str:
        tensor = self.model.tensors[index]
        if tensor.is_constant:
            self._used_constants.add(index)
            return f"t{index}"
        return f"(({C_TYPES[tensor.type_name]} *)buf{self.storage[index]})"

    def source(self, standalone: bool = True) -> str:
        """The C translation unit: a stdin/stdout program, or (standalone=False) just `void te_run(void)`."""
        model = self.model
        sizes: dict[int, int] = {}
        for tensor in model.tensors:
            if not tensor.is_constant:
                slot = self.storage[tensor.index]
                sizes[slot] = max(sizes.get(slot, 0), tensor.nbytes)
        lines = ["#include <stdio.h>", '#include "te_nonlinear.h"', ""]
        lines += [f"static float buf{slot}[{(n + 3) // 4 or 1}];" for slot, n in sorted(sizes.items())]
        for index in sorted(self._used_constants):
            tensor = model.tensors[index]
            values = ", ".join(str(int(v)) for v in np.asarray(tensor.data).reshape(-1))
            lines.append(f"static const {C_TYPES[tensor.type_name]} t{index}[{tensor.size}] TE_CONST = {{{values}}};")
        lines += [lowered.decls for lowered in self.lowered]
        if not standalone:
            calls = [f"    {lowered.call}" for lowered in self.lowered]
            return "\n".join([*lines, "void te_run(void);", "void te_run(void)", "{", *calls, "}", ""])
        lines += ["int main(void)", "{", "    for (;;) {"]
        for tensor in model.input_tensors:
            lines.append(f"        if (fread({self.ptr(tensor.index)}, 1, {tensor.nbytes}, stdin) != {tensor.nbytes}) return 0;")
        lines += [f"        {lowered.call}" for lowered in self.lowered]
        for tensor in model.output_tensors:
            lines.append(f"        fwrite({self.ptr(tensor.index)}, 1, {tensor.nbytes}, stdout);")
        lines += ["    }", "}", ""]
        return "\n".join(lines)

    def build(self, workdir: Path) -> Path:
        c_file = workdir / "harness.c"
        c_file.write_text(self.source())
        exe = workdir / "harness"
        headers = [h.name for h in AOT_DIR.glob("*.h")]
        kernels = kernel_objects(AOT_DIR, [KERNELS_C.name, FIXED_POINT_C.name, *headers], [*HOST_FLAGS, "-c"],
                                 include_common=False)
        result = subprocess.run([CC, *HOST_FLAGS, "-I", str(AOT_DIR), str(c_file), *map(str, kernels), "-o", str(exe)],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"harness did not compile:\n{result.stderr}\n{self.source()}"
        return exe

    def run(self, exe: Path, samples: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        stream = b"".join(np.ascontiguousarray(x, dtype=t.dtype).tobytes()
                          for sample in samples for x, t in zip(sample, self.model.input_tensors))
        result = subprocess.run([str(exe)], input=stream, capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        outputs, offset = [], 0
        for _ in samples:
            row = []
            for tensor in self.model.output_tensors:
                row.append(np.frombuffer(result.stdout[offset:offset + tensor.nbytes], dtype=tensor.dtype).reshape(tensor.shape))
                offset += tensor.nbytes
            outputs.append(row)
        assert offset == len(result.stdout), "the harness wrote more output than the model has"
        return outputs


def reference_outputs(model: TfliteModel, samples: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    reference = Reference(model)
    return [reference.run(sample) for sample in samples]


def assert_bit_exact(model: TfliteModel, got: list[list[np.ndarray]], want: list[list[np.ndarray]],
                     samples: list[list[np.ndarray]]) -> None:
    for k, (g_row, w_row) in enumerate(zip(got, want)):
        for g, w in zip(g_row, w_row):
            if g.tobytes() != np.ascontiguousarray(w, dtype=g.dtype).tobytes():
                diff = np.flatnonzero(g.reshape(-1).view(np.uint8) != np.ascontiguousarray(w, dtype=g.dtype).reshape(-1).view(np.uint8))
                raise AssertionError(
                    f"sample {k} differs from tflite-micro at byte(s) {diff[:8].tolist()}:\n"
                    f"input  {[s.reshape(-1)[:24].tolist() for s in samples[k]]}\n"
                    f"aot    {g.reshape(-1)[:24].tolist()}\ntflm   {np.asarray(w).reshape(-1)[:24].tolist()}")


# ---------------------------------------------------------------------------------------------
# The proofs

OPS_OF_CASE = {
    "softmax": {"SOFTMAX"}, "logistic": {"LOGISTIC"}, "tanh": {"TANH"}, "mean": {"MEAN"},
    "add": {"ADD"}, "mul": {"MUL"},
}


@pytest.mark.parametrize("name", list(CASES))
def test_lowered_ops_match_tflite_micro_bit_for_bit(name: str, zoo: Zoo, tmp_path: Path):
    model = zoo[name]
    family = name.split("_")[0]
    if family in OPS_OF_CASE:
        assert {op.opcode for op in model.operators} == OPS_OF_CASE[family], model.op_names()
    samples = sample_inputs(model, SAMPLES, seed=len(name))
    want = reference_outputs(model, samples)
    harness = Harness(model)
    got = harness.run(harness.build(tmp_path), samples)
    assert_bit_exact(model, got, want, samples)


@pytest.mark.parametrize("name", ["softmax_4x33", "logistic_r4", "tanh_r3", "add_broadcast_row", "mul_same_shape",
                                  "float_io_logistic", "requantize"])
def test_inplace_lowerings_stay_exact_when_output_overwrites_input(name: str, zoo: Zoo, tmp_path: Path):
    model = zoo[name]
    harness = Harness(model, share_inplace=True)
    assert any(harness.storage[op.outputs[0]] == harness.storage[op.inputs[0]] for op in model.operators)
    samples = sample_inputs(model, 60, seed=7)
    got = harness.run(harness.build(tmp_path), samples)
    assert_bit_exact(model, got, reference_outputs(model, samples), samples)


def test_float_io_models_quantize_and_dequantize_around_int8_ops(zoo: Zoo):
    model = zoo["float_io_add"]
    assert model.io_types() == ["FLOAT32", "FLOAT32", "FLOAT32"]
    assert [op.opcode for op in model.operators].count("QUANTIZE") == 2
    assert model.operators[-1].opcode == "DEQUANTIZE"
    requantize = zoo["requantize"]
    first = requantize.operators[0]
    assert first.opcode == "QUANTIZE"
    assert requantize.tensors[first.inputs[0]].type_name == "INT8"


def test_softmax_beta_reaches_the_lowering(zoo: Zoo):
    model = zoo["softmax_beta_2.5"]
    op = model.operators[0]
    assert op.options.beta == pytest.approx(2.5)
    call = LOWERINGS["SOFTMAX"](model, op, lambda i: f"T{i}").call
    scale = float(np.float32(model.tensors[op.inputs[0]].scale[0]))
    multiplier, shift, diff_min = softmax_parameters(2.5, scale)
    assert call == f"te_softmax_s8(T{op.outputs[0]}, T{op.inputs[0]}, 3, 7, {multiplier}, {shift}, {diff_min});"
    assert softmax_parameters(1.0, scale)[0] != multiplier


def test_constant_operands_are_read_through_te_rd(zoo: Zoo):
    model = zoo["add_const"]
    op = model.operators[0]
    lowered = LOWERINGS["ADD"](model, op, lambda i: f"T{i}")
    assert "TE_NL_B_CONST" in lowered.call and "TE_NL_A_CONST" not in lowered.call
    assert "TE_CONST" in lowered.decls and lowered.decls.count(f"op{op.index}_") == 2


def test_generation_time_arithmetic_follows_tflm():
    # QuantizeMultiplier: 0.5 is 2^30 * 2^-31 * 2^0; a significand rounding up to 1.0 renormalises
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)
    # GlobalAveragePooling2D over 6x7 keeps batch and channels, reducing 42 elements per output
    geometry = mean_geometry((1, 6, 7, 8), [1, 2])
    assert (geometry.kept_sizes, geometry.reduced_sizes, geometry.reduced_strides, geometry.count) == ([8], [42], [8], 42)
    # broadcasting a row over a matrix: b does not advance along the merged outer dim
    assert broadcast_geometry((1, 3, 6), (1, 1, 6), (1, 3, 6)) == [2, 3, 6, 6, 1, 0, 1]
    assert broadcast_geometry((1, 3, 6), (1, 3, 6), (1, 3, 6)) == [1, 18, 1, 1]
    # a table of logistic outputs is monotonic and spans (nearly) the whole int8 range
    table = logistic_table(0.05, 0)
    assert table == sorted(table) and table[0] == -128 and table[-1] >= 126


def test_unsupported_inputs_fail_with_a_sentence(zoo: Zoo):
    model = zoo["float_io_logistic"]
    dequantize = model.operators[-1]
    with pytest.raises(TinyedgeError, match="full int8"):  # a float tensor where TANH needs int8
        LOWERINGS["TANH"](model, Operator(99, "TANH", 1, (dequantize.outputs[0],), (dequantize.outputs[0],), None),
                          lambda i: f"T{i}")
    with pytest.raises(TinyedgeError, match="broadcast"):
        broadcast_geometry((1, 3), (1, 4), (1, 4))


# ---------------------------------------------------------------------------------------------
# The kernels build for the real targets, warnings as errors, and so does generated code

CROSS_COMPILERS = {
    "avr": ["avr-gcc", "-std=c99", "-mmcu=atmega328p", "-Os", "-Wall", "-Wextra", "-Werror"],
    "cortex-m4": ["arm-none-eabi-gcc", "-std=c99", "-mcpu=cortex-m4", "-mthumb", "-O2", "-Wall", "-Wextra", "-Werror"],
}


@pytest.mark.parametrize("target", list(CROSS_COMPILERS))
def test_kernels_cross_compile_warning_free(target: str, zoo: Zoo, tmp_path: Path):
    command = CROSS_COMPILERS[target]
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not installed: install the {target} toolchain")
    obj = tmp_path / "te_nonlinear.o"
    result = subprocess.run([*command, "-c", str(KERNELS_C), "-o", str(obj)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert obj.stat().st_size > 0

    # generated code for every op kind, with constants in TE_CONST (PROGMEM on AVR)
    for name in ["softmax_beta_2.5", "logistic_r4", "tanh_r3", "mean_gap", "add_const", "mul_const_scalar",
                 "float_io_add", "requantize"]:
        generated = tmp_path / f"{name}.c"
        generated.write_text(Harness(zoo[name]).source(standalone=False))
        result = subprocess.run([*command, "-I", str(AOT_DIR), "-c", str(generated), "-o", str(tmp_path / f"{name}.o")],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr + generated.read_text()


# ---------------------------------------------------------------------------------------------
# Bit-exact on the real targets: the same generated code on an ATmega328P (int is 16 bits there),
# simulated by simavr, and on a Cortex-M4 (mps2-an386 in qemu, output over semihosting)

DEVICE_CASES = ["softmax_beta_2.5", "softmax_4x33", "logistic_asymmetric", "tanh_r3", "mean_axes_1_3",
                "mean_gap_asymmetric", "add_broadcast_both", "add_const", "mul_asymmetric", "mul_const_scalar",
                "float_io_add", "requantize"]
AVR_DATA_BYTES = 12000  # inputs + expected outputs, in flash next to the code

ARM_LINKER_SCRIPT = """ENTRY(te_reset)
MEMORY { CODE (rwx) : ORIGIN = 0x00000000, LENGTH = 4M }
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) } > CODE
  .data : { *(.data*) } > CODE
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > CODE
}
"""

DEVICE_PRELUDE = {
    "atmega328p": """#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/pgmspace.h>
#include <avr/sleep.h>
#define TE_DATA PROGMEM
#define TE_DATA_BYTE(p) pgm_read_byte(p)
static void te_print(const char *s)
{
    UBRR0 = 0;
    UCSR0B = (1 << TXEN0);
    while (*s) { while (!(UCSR0A & (1 << UDRE0))) {} UDR0 = *s++; }
}
static void te_stop(void) { cli(); sleep_enable(); sleep_cpu(); }
""",
    "cortex-m4": """#define TE_DATA
#define TE_DATA_BYTE(p) (*(p))
static int32_t te_semihost(int32_t op, const void *arg)
{
    register int32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
static void te_print(const char *s) { (void)te_semihost(0x04, s); }
static void te_stop(void) { for (;;) { (void)te_semihost(0x18, (const void *)0x20026u); } }
int main(void);
void te_reset(void);
void te_reset(void) { (void)main(); te_stop(); }
__attribute__((section(".vectors"), used)) static const void *const te_vectors[2] = {
    (const void *)0x20010000u, (const void *)te_reset,
};
""",
}

DEVICE_BUILD = {
    "atmega328p": lambda src, elf: [*CROSS_COMPILERS["avr"], "-ffunction-sections", "-Wl,--gc-sections", "-I",
                                    str(AOT_DIR), str(src), str(KERNELS_C), str(FIXED_POINT_C), "-o", str(elf)],
    "cortex-m4": lambda src, elf: [*CROSS_COMPILERS["cortex-m4"], "-mfloat-abi=soft", "-ffreestanding", "-nostdlib",
                                   "-ffunction-sections", "-Wl,--gc-sections",
                                   "-T", str(src.parent / "link.ld"), "-I", str(AOT_DIR), str(src), str(KERNELS_C),
                                   str(FIXED_POINT_C), "-lgcc", "-o", str(elf)],
}

DEVICE_RUN = {
    "atmega328p": lambda elf: ["simavr", "-m", "atmega328p", "-f", "16000000", str(elf)],
    "cortex-m4": lambda elf: ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-kernel", str(elf)],
}


def device_main(target: str, harness: Harness, samples: list[list[np.ndarray]], want: list[list[np.ndarray]]) -> str:
    """A main() that runs every sample from flash, compares each output byte, and prints PASS n or FAIL k."""
    model = harness.model
    inputs = b"".join(np.ascontiguousarray(x, dtype=t.dtype).tobytes()
                      for sample in samples for x, t in zip(sample, model.input_tensors))
    expected = b"".join(np.ascontiguousarray(y, dtype=t.dtype).tobytes()
                        for row in want for y, t in zip(row, model.output_tensors))
    load = [f"        for (i = 0; i < {t.nbytes}u; i++) ((uint8_t *){harness.ptr(t.index)})[i] = TE_DATA_BYTE(src++);"
            for t in model.input_tensors]
    check = [f"        for (i = 0; i < {t.nbytes}u; i++) failures += ((uint8_t *){harness.ptr(t.index)})[i] != TE_DATA_BYTE(want++);"
             for t in model.output_tensors]
    return "\n".join([
        DEVICE_PRELUDE[target],
        f"static const uint8_t te_inputs[{len(inputs)}] TE_DATA = {{{', '.join(map(str, inputs))}}};",
        f"static const uint8_t te_expected[{len(expected)}] TE_DATA = {{{', '.join(map(str, expected))}}};",
        "static void te_report(const char *word, uint32_t n)",
        "{",
        "    char text[20];",
        "    char digits[11];",
        "    int32_t k = 0, j = 0;",
        "    while (*word) text[j++] = *word++;",
        "    do { digits[k++] = (char)('0' + n % 10u); n /= 10u; } while (n);",
        "    while (k) text[j++] = digits[--k];",
        "    text[j++] = '\\n';",
        "    text[j] = 0;",
        "    te_print(text);",
        "}",
        "int main(void)",
        "{",
        "    const uint8_t *src = te_inputs, *want = te_expected;",
        "    uint32_t i, sample, failures = 0;",
        f"    for (sample = 0; sample < {len(samples)}u; sample++) {{",
        *load, "        te_run();", *check,
        "    }",
        f"    te_report(failures ? \"FAIL \" : \"PASS \", failures ? failures : {len(samples)}u);",
        "    te_stop();",
        "    return 0;",
        "}", ""])


@pytest.mark.parametrize("target", list(DEVICE_RUN))
@pytest.mark.parametrize("name", DEVICE_CASES)
def test_kernels_are_bit_exact_on_simulated_targets(name: str, target: str, zoo: Zoo, tmp_path: Path):
    tools = [DEVICE_BUILD[target](tmp_path / "x.c", tmp_path / "x.elf")[0], DEVICE_RUN[target](tmp_path)[0]]
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: install the {target} toolchain and simulator")
    model = zoo[name]
    per_sample = sum(t.nbytes for t in model.input_tensors + model.output_tensors)
    count = min(64, AVR_DATA_BYTES // per_sample) if target == "atmega328p" else 200
    samples = sample_inputs(model, count, seed=11)
    want = reference_outputs(model, samples)
    harness = Harness(model)
    (tmp_path / "link.ld").write_text(ARM_LINKER_SCRIPT)
    source = tmp_path / "device_check.c"
    source.write_text(harness.source(standalone=False) + device_main(target, harness, samples, want))
    elf = tmp_path / "device_check.elf"
    build = subprocess.run(DEVICE_BUILD[target](source, elf), capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run(DEVICE_RUN[target](elf), capture_output=True, text=True, timeout=300)
    assert f"PASS {count}" in run.stdout + run.stderr, run.stdout + run.stderr


# ---------------------------------------------------------------------------------------------
# Through the AOT compiler: a Keras model mixing the core ops with these ones, planned in one arena

def test_keras_model_mixing_core_and_nonlinear_ops_compiles_bit_exact(tmp_path: Path):
    from aot_harness import NativeModel, assert_matches_reference, to_int8

    k = _tf().keras
    k.utils.set_random_seed(3)
    image = k.Input((8, 8, 2))
    relu_branch = k.layers.Conv2D(6, 3, padding="same", activation="relu")(image)
    linear_branch = k.layers.Conv2D(6, 3, padding="same")(image)
    mixed = k.layers.Multiply()([k.layers.Add()([relu_branch, linear_branch]), linear_branch])
    pooled = k.layers.GlobalAveragePooling2D()(mixed)
    hidden = k.layers.Dense(5, activation="sigmoid")(k.layers.Dense(8, activation="tanh")(pooled))
    model = to_int8(k.Model(image, k.layers.Dense(4, activation="softmax")(hidden)))
    assert {"ADD", "MUL", "MEAN", "TANH", "LOGISTIC", "SOFTMAX"} <= set(model.op_names())

    native = NativeModel(model, tmp_path)
    assert "te_softmax_s8" in native.program.source and "te_mean_s8" in native.program.source
    assert_matches_reference(model, native, samples=100)
