"""The tflm runtime: op resolver generation, TFLM source selection, the cached library build, and
the glue running real models natively, bit for bit against tflite-micro's Python interpreter."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_tflm, tflm_tree

from tinyedge.boards import load_boards
from tinyedge.errors import TinyedgeError
from tinyedge.paths import FIRMWARE_DIR
from tinyedge.sections import EmulatorSettings
from tinyedge.reference import Reference, measure_arena
from tinyedge.runtimes import get_runtime
from tinyedge.tflite_model import load_tflite
from tinyedge import tflm_tree as tflm

HOST_CFLAGS = ["-O2", "-ffunction-sections", "-fdata-sections", "-DTF_LITE_STATIC_MEMORY"]
HOST_CXXFLAGS = HOST_CFLAGS + ["-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"]
M4_CPU = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
M4_CFLAGS = M4_CPU + ["-Os", "-ffunction-sections", "-fdata-sections", "-DTF_LITE_STATIC_MEMORY",
                      "-DTF_LITE_STRIP_ERROR_STRINGS", "-DNDEBUG"]
M4_CXXFLAGS = M4_CFLAGS + ["-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"]

# A test-local main: a line protocol on stdin/stdout driving te_runtime_* (the real serial
# protocol and board ports are tested elsewhere).
TEST_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tinyedge_runtime.h"

static unsigned char hex_nibble(char c) {
  return (unsigned char)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
}

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  unsigned long in_bytes = strtoul(argv[1], 0, 10), out_bytes = strtoul(argv[2], 0, 10);
  static char line[1 << 16];
  int status = te_runtime_init();
  printf("init %d %s %s %u %u\n", status, te_runtime_name(), te_runtime_version(),
         (unsigned)te_runtime_arena_size(), (unsigned)te_runtime_arena_used());
  fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "run ", 4) == 0) {
      unsigned char *in = te_runtime_input(0);
      if (!in) { printf("err %d\n", TE_ERR_INIT); fflush(stdout); continue; }
      for (unsigned long i = 0; i < in_bytes; ++i)
        in[i] = (unsigned char)(hex_nibble(line[4 + 2 * i]) << 4 | hex_nibble(line[5 + 2 * i]));
      int rc = te_runtime_invoke();
      if (rc != TE_OK) { printf("err %d\n", rc); fflush(stdout); continue; }
      const unsigned char *out = te_runtime_output(0);
      printf("ok ");
      for (unsigned long i = 0; i < out_bytes; ++i) printf("%02x", out[i]);
      printf("\n");
    } else if (strncmp(line, "arena ", 6) == 0) {
      int rc = te_runtime_set_arena((uint32_t)strtoul(line + 6, 0, 10));
      printf("%d %u\n", rc, (unsigned)te_runtime_arena_used());
    }
    fflush(stdout);
  }
  return 0;
}
"""


# ---------------------------------------------------------------- no tree needed


def test_resolver_lists_exactly_the_models_ops(sine_model, cnn_model, tmp_path):
    boards = load_boards()
    runtime = get_runtime("tflm")
    for files, expected in ((sine_model, {"FULLY_CONNECTED"}),
                            (cnn_model, {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D",
                                         "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"})):
        model = load_tflite(files.int8)
        assert set(model.op_names()) == expected
        out = tmp_path / files.int8.stem
        # ESP32 brings TFLM as an IDF component, so no tree is needed to generate its sources.
        sources = runtime.write_sources(model, boards["esp32-devkitc"], out, 8192, None)
        assert sources.needs_tflm_tree is False and sources.uses_cpp and sources.arena_bytes == 8192
        text = (out / "te_tflm_ops.cc").read_text()
        assert f"tflite::MicroMutableOpResolver<{len(expected)}>" in text
        registered = re.findall(r"resolver\.(Add\w+)\(\)", text)
        assert registered == [tflm.OP_TABLE[op][0] for op in sorted(expected)]
        assert "#define TE_TFLM_ARENA_BYTES 8192u" in (out / "te_tflm_config.h").read_text()
        assert '"espressif/esp-tflite-micro ^1.3.3"' in (out / "te_tflm_config.h").read_text()
        assert sorted(p.name for p in out.iterdir()) == sorted(
            ["te_tflm_model_data.cc", "te_tflm_model_data.h", "te_tflm_ops.cc", "te_tflm_ops.h",
             "te_tflm_config.h", "te_tflm_runtime.cc"])
        assert (out / "te_tflm_model_data.cc").read_text().count("0x") == len(model.data)


def test_default_arena_covers_the_measured_host_arena(sine_model, tmp_path):
    model = load_tflite(sine_model.int8)
    sources = get_runtime("tflm").write_sources(model, load_boards()["esp32-devkitc"], tmp_path, None, None)
    assert sources.arena_bytes % 16 == 0
    assert sources.arena_bytes > measure_arena(model)


def test_unknown_op_is_a_clear_error():
    with pytest.raises(TinyedgeError, match="TFLM has no kernel for NOT_AN_OP"):
        tflm.resolver_methods(["FULLY_CONNECTED", "NOT_AN_OP"])


def test_every_resolver_method_exists_in_the_resolver_header_of_a_tree():
    tree = tflm_tree()
    if tree is None:
        pytest.skip("needs TINYEDGE_TFLM_DIR (a tree made with create_tflm_tree.py) to read micro_mutable_op_resolver.h")
    header = (tree / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    for op, (method, _kernels) in tflm.OP_TABLE.items():
        body = re.search(rf"TfLiteStatus {method}\((.*?)\n  }}", header, re.S)
        registers = rf'BuiltinOperator_{op},|AddCustom\(\s*"{op}"'   # TFLM's signal library: custom ops by name
        assert body and re.search(registers, body.group(1)), f"{method} does not register {op}"
        registration = re.search(r"Register_(\w+)\(\)", body.group(1)).group(1)
        sources = "".join((tree / path).read_text() for path in tflm.kernel_sources(tree, [op]))
        assert re.search(rf"Register_{registration}\(\)\s*{{", sources), f"{op}: no kernel defines Register_{registration}"


def test_missing_tree_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYEDGE_TFLM_DIR", raising=False)
    assert tflm.find_tflm_tree(None) is None
    with pytest.raises(TinyedgeError, match="create_tflm_tree.py.*TINYEDGE_TFLM_DIR"):
        tflm.require_tflm_tree(None)
    with pytest.raises(TinyedgeError, match="is not a TFLM tree"):
        tflm.require_tflm_tree(tmp_path)
    with pytest.raises(TinyedgeError, match="does not exist"):
        tflm.require_tflm_tree(tmp_path / "nowhere")


def test_host_board_without_a_tree_is_refused(sine_model, tmp_path, monkeypatch):
    monkeypatch.delenv("TINYEDGE_TFLM_DIR", raising=False)
    with pytest.raises(TinyedgeError, match="--tflm-dir"):
        get_runtime("tflm").write_sources(load_tflite(sine_model.int8), load_boards()["host"], tmp_path, 4096, None)


class FakeArenaDevice:
    """Accepts any arena of at least `need` bytes, counting the attempts."""

    def __init__(self, need: int):
        self.need, self.calls, self.current = need, 0, None

    def set_arena(self, nbytes: int) -> bool:
        self.calls += 1
        self.current = nbytes
        return nbytes >= self.need


@pytest.mark.parametrize("need", [16, 1000, 1024, 4093, 65536])
def test_fit_arena_bisects_to_the_smallest_aligned_length(need):
    device = FakeArenaDevice(need)
    found = tflm.fit_arena(device, 0, 65536)
    assert found == (need + 15) // 16 * 16
    assert device.current == found and device.calls <= 16


def test_fit_arena_refuses_when_even_the_full_arena_fails():
    with pytest.raises(TinyedgeError, match="larger --arena"):
        tflm.fit_arena(FakeArenaDevice(10_000), 0, 4096)


# ---------------------------------------------------------------- with a TFLM tree


@requires_tflm
def test_sources_are_the_core_plus_exactly_the_ops_kernels():
    tree = tflm.require_tflm_tree(tflm_tree())
    kernels = tflm.kernel_sources(tree, ["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"])
    assert [p.name for p in kernels] == ["conv.cc", "conv_common.cc", "fully_connected.cc",
                                         "fully_connected_common.cc", "softmax.cc", "softmax_common.cc"]
    core = {p.name for p in tflm.core_sources(tree)}
    assert {"micro_interpreter.cc", "micro_allocator.cc", "greedy_memory_planner.cc", "flatbuffer_utils.cc",
            "micro_log.cc", "debug_log.cc", "system_setup.cc", "kernel_util.cc"} <= core
    assert not core & {"test_helpers.cc", "mock_micro_graph.cc", "conv.cc", "add.cc"}
    everything = tflm.library_sources(tree, ["FULLY_CONNECTED"])
    assert not [p for p in everything if p.parent.name == "kernels" and p.stem not in
                ("fully_connected", "fully_connected_common", *tflm.KERNEL_SUPPORT)]


@pytest.fixture(scope="session")
def host_library():
    tree = tflm.require_tflm_tree(tflm_tree())
    ops = ["AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "RESHAPE", "SOFTMAX"]
    return tflm.build_tflm_library(tree, ops, "gcc", "g++", "ar", HOST_CFLAGS, HOST_CXXFLAGS)


@requires_tflm
def test_library_builds_natively_and_a_rebuild_reuses_every_object(host_library):
    tree = tflm.require_tflm_tree(tflm_tree())
    assert host_library.archive.is_file()
    assert "TF_LITE_STATIC_MEMORY" in host_library.defines
    again = tflm.build_tflm_library(tree, ["AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                                           "MAX_POOL_2D", "RESHAPE", "SOFTMAX"],
                                    "gcc", "g++", "ar", HOST_CFLAGS, HOST_CXXFLAGS)
    assert again.objects_compiled == 0 and again.objects_reused == host_library.objects_compiled + host_library.objects_reused
    assert again.archive == host_library.archive
    # The sine MLP's library is a subset: nothing to compile, a different archive.
    subset = tflm.build_tflm_library(tree, ["FULLY_CONNECTED"], "gcc", "g++", "ar", HOST_CFLAGS, HOST_CXXFLAGS)
    assert subset.objects_compiled == 0 and subset.archive != host_library.archive


@requires_tflm
def test_library_builds_for_cortex_m4_and_a_model_change_compiles_only_new_kernels():
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ar"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (apt-get install gcc-arm-none-eabi)")
    tree = tflm.require_tflm_tree(tflm_tree())
    arm = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ar", M4_CFLAGS, M4_CXXFLAGS)
    first = tflm.build_tflm_library(tree, ["FULLY_CONNECTED"], *arm)
    again = tflm.build_tflm_library(tree, ["FULLY_CONNECTED"], *arm)
    assert again.objects_compiled == 0 and again.objects_reused == first.objects_compiled + first.objects_reused
    grown = tflm.build_tflm_library(tree, ["FULLY_CONNECTED", "SOFTMAX"], *arm)
    assert grown.objects_compiled in (0, 2)  # softmax.cc + softmax_common.cc, unless cached earlier
    members = subprocess.run(["arm-none-eabi-ar", "t", str(grown.archive)], capture_output=True, text=True).stdout.split()
    assert "tensorflow__lite__micro__kernels__softmax.o" in members
    arch = subprocess.run(["arm-none-eabi-readelf", "-A", str(grown.archive)], capture_output=True, text=True).stdout
    assert "Tag_CPU_arch: v7E-M" in arch and "Tag_FP_arch: VFPv4-D16" in arch and "Tag_ABI_VFP_args: VFP registers" in arch


def _build_host_runner(files_int8: Path, library, out: Path, arena_bytes: int | None = None) -> Path:
    model = load_tflite(files_int8)
    sources = get_runtime("tflm").write_sources(model, load_boards()["host"], out, arena_bytes, tflm_tree())
    assert sources.needs_tflm_tree
    (out / "test_main.c").write_text(TEST_MAIN)
    includes = [f"-I{out}", f"-I{FIRMWARE_DIR / 'common'}", *[f"-isystem{d}" for d in library.include_dirs]]
    defines = [f"-D{d}" for d in library.defines]
    objects = []
    for src in sources.sources:
        obj = out / (src + ".o")
        subprocess.run(["g++", *HOST_CXXFLAGS, "-Wall", "-Wextra", "-Werror", *defines, *includes, "-c",
                        str(out / src), "-o", str(obj)], check=True)
        objects.append(str(obj))
    subprocess.run(["gcc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", *includes, "-c", str(out / "test_main.c"),
                    "-o", str(out / "test_main.o")], check=True)
    exe = out / "runner"
    subprocess.run(["g++", "-Wl,--gc-sections", str(out / "test_main.o"), *objects, str(library.archive), "-lm",
                    "-o", str(exe)], check=True)
    return exe


class HostRunner:
    """The native runner as a device: one process, commands on stdin, answers on stdout."""

    def __init__(self, exe: Path, in_bytes: int, out_bytes: int):
        self.proc = subprocess.Popen([str(exe), str(in_bytes), str(out_bytes)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.banner = self._read()

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        assert line, "the runner exited"
        return line.strip()

    def run(self, data: bytes) -> bytes:
        self.proc.stdin.write(f"run {data.hex()}\n")
        self.proc.stdin.flush()
        status, payload = self._read().split(" ", 1)
        assert status == "ok", f"invoke failed with {payload}"
        return bytes.fromhex(payload)

    def set_arena(self, nbytes: int) -> bool:
        self.proc.stdin.write(f"arena {nbytes}\n")
        self.proc.stdin.flush()
        return self._read().split()[0] == "0"

    def close(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


def _int8_inputs(model, x: np.ndarray) -> np.ndarray:
    tensor = model.input_tensors[0]
    q = np.round(x / tensor.scale + tensor.zero_point)
    return np.clip(q, -128, 127).astype(np.int8).reshape((-1, *tensor.shape[1:]))


@requires_tflm
@pytest.mark.parametrize("which", ["sine_model", "cnn_model"])
def test_native_runtime_matches_the_reference_bit_for_bit(which, request, host_library, tmp_path):
    files = request.getfixturevalue(which)
    model = load_tflite(files.int8)
    exe = _build_host_runner(files.int8, host_library, tmp_path)
    runner = HostRunner(exe, model.input_tensors[0].nbytes, model.output_tensors[0].nbytes)
    fields = runner.banner.split()
    assert fields[:3] == ["init", "0", "tflm"] and fields[3] == tflm.tflm_version(tflm_tree().resolve())
    reference = Reference(model)
    samples = _int8_inputs(model, np.load(files.eval_x))[:40]
    rng = np.random.default_rng(3)
    samples = np.concatenate([samples, rng.integers(-128, 128, size=(10, *samples.shape[1:]), dtype=np.int8)])
    for sample in samples:
        expected = reference.run([sample[None]])[0]
        got = np.frombuffer(runner.run(sample.tobytes()), dtype=expected.dtype).reshape(expected.shape)
        assert np.array_equal(got, expected)
    runner.close()


@requires_tflm
def test_set_arena_finds_a_working_minimum(cnn_model, host_library, tmp_path):
    model = load_tflite(cnn_model.int8)
    exe = _build_host_runner(cnn_model.int8, host_library, tmp_path, arena_bytes=64 * 1024)
    runner = HostRunner(exe, model.input_tensors[0].nbytes, model.output_tensors[0].nbytes)
    assert not runner.set_arena(64 * 1024 + 16)   # beyond the static arena
    assert not runner.set_arena(32)                # below TFLM's own bookkeeping
    smallest = tflm.fit_arena(runner, 0, 64 * 1024)
    assert smallest % 16 == 0 and not runner.set_arena(smallest - 16)
    assert runner.set_arena(smallest)
    # The same interpreter works for inference over the fitted arena, bit for bit.
    sample = _int8_inputs(model, np.load(cnn_model.eval_x))[0]
    expected = Reference(model).run([sample[None]])[0]
    assert np.frombuffer(runner.run(sample.tobytes()), dtype=np.int8).tolist() == expected.reshape(-1).tolist()
    # A 64-bit build, like tflite-micro's Python interpreter, whose wrapper keeps a little more in the arena.
    assert 0.8 * measure_arena(model) < smallest <= measure_arena(model)
    runner.close()


# ---------------------------------------------------------------- on an emulated Cortex-M4

# Test-local bare-metal scaffolding for QEMU's mps2-an386 (the real board port lives in
# firmware/ports): vector table, .data/.bss set-up, FPU enable, and ARM semihosting for output.
M4_STARTUP = r"""
#include <stdint.h>
extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);
int main(void);
static int semihost(int op, const void *arg) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}
void sh_puts(const char *s) { semihost(0x04, s); }
__attribute__((noreturn)) void sh_exit(int code) {
  uint32_t args[2] = {0x20026u, (uint32_t)code};
  semihost(0x20, args);
  for (;;) {}
}
void Reset_Handler(void) {
  for (uint32_t *s = &__data_load, *d = &__data_start; d < &__data_end;) *d++ = *s++;
  for (uint32_t *d = &__bss_start; d < &__bss_end;) *d++ = 0;
  *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;  /* CPACR: full access to CP10/CP11 (the FPU) */
  __asm__ volatile("dsb\n isb");
  for (void (**f)(void) = __init_array_start; f < __init_array_end; ++f) (*f)();
  sh_exit(main());
}
void Default_Handler(void) { sh_puts("fault\n"); sh_exit(99); }
/* TFLM's kernels reference abort(); newlib's would pull in signal() and malloc(). */
void abort(void) { sh_puts("abort\n"); sh_exit(98); }
__attribute__((section(".vectors"), used)) void (*const vectors[16])(void) = {
  (void (*)(void))&__stack_top, Reset_Handler, Default_Handler, Default_Handler, Default_Handler,
  Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler,
  Default_Handler};
"""

M4_LINKER_SCRIPT = """
MEMORY { FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 4M  RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 4M }
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) . = ALIGN(4); } > FLASH
  .ARM.exidx : { *(.ARM.exidx*) } > FLASH
  .init_array : { __init_array_start = .; KEEP(*(SORT(.init_array.*))) KEEP(*(.init_array)) __init_array_end = .; } > FLASH
  .data : { __data_start = .; *(.data*) . = ALIGN(4); __data_end = .; } > RAM AT > FLASH
  __data_load = LOADADDR(.data);
  .bss (NOLOAD) : { __bss_start = .; *(.bss*) *(COMMON) . = ALIGN(4); __bss_end = .; } > RAM
  __stack_top = ORIGIN(RAM) + LENGTH(RAM);
}
"""

M4_MAIN = r"""
#include <stdint.h>
#include "tinyedge_runtime.h"
#include "vectors.h"
void sh_puts(const char *s);
static char text[N_SAMPLES * (2 * OUT_BYTES + 1) + 1];
int main(void) {
  if (te_runtime_init() != TE_OK) { sh_puts("init failed\n"); return 1; }
  char *p = text;
  const char *hex = "0123456789abcdef";
  for (unsigned s = 0; s < N_SAMPLES; ++s) {
    uint8_t *in = te_runtime_input(0);
    for (unsigned i = 0; i < IN_BYTES; ++i) in[i] = (uint8_t)test_inputs[s][i];
    if (te_runtime_invoke() != TE_OK) { sh_puts("invoke failed\n"); return 2; }
    const uint8_t *out = te_runtime_output(0);
    for (unsigned i = 0; i < OUT_BYTES; ++i) { *p++ = hex[out[i] >> 4]; *p++ = hex[out[i] & 15]; }
    *p++ = '\n';
  }
  *p = 0;
  sh_puts(text);
  return te_runtime_set_arena(16) == TE_ERR_ARENA ? 0 : 3;
}
"""


def _write_vectors(path: Path, samples: np.ndarray, out_bytes: int) -> None:
    rows = ",\n".join("{" + ",".join(map(str, s.reshape(-1))) + "}" for s in samples)
    in_bytes = samples[0].size
    path.write_text(f"#define N_SAMPLES {len(samples)}\n#define IN_BYTES {in_bytes}\n#define OUT_BYTES {out_bytes}\n"
                    f"static const int8_t test_inputs[{len(samples)}][{in_bytes}] = {{\n{rows}\n}};\n")


@requires_tflm
def test_cnn_runs_bit_exact_on_an_emulated_cortex_m4(cnn_model, tmp_path):
    for tool in ("arm-none-eabi-g++", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (apt-get install gcc-arm-none-eabi qemu-system-arm)")
    tree = tflm.require_tflm_tree(tflm_tree())
    model = load_tflite(cnn_model.int8)
    board = load_boards()["qemu-cortex-m4"]
    library = tflm.build_tflm_library(tree, model.op_names(), "arm-none-eabi-gcc", "arm-none-eabi-g++",
                                      "arm-none-eabi-ar", M4_CFLAGS, M4_CXXFLAGS)
    sources = get_runtime("tflm").write_sources(model, board, tmp_path, None, tree)
    samples = np.concatenate([_int8_inputs(model, np.load(cnn_model.eval_x))[:6],
                              np.random.default_rng(4).integers(-128, 128, size=(4, 16, 16, 1), dtype=np.int8)])
    _write_vectors(tmp_path / "vectors.h", samples, model.output_tensors[0].nbytes)
    (tmp_path / "startup.c").write_text(M4_STARTUP)
    (tmp_path / "main.c").write_text(M4_MAIN)
    (tmp_path / "link.ld").write_text(M4_LINKER_SCRIPT)
    includes = [f"-I{tmp_path}", f"-I{FIRMWARE_DIR / 'common'}", *[f"-isystem{d}" for d in library.include_dirs]]
    objects = []
    for src in sources.sources:
        objects.append(tmp_path / (src + ".o"))
        subprocess.run(["arm-none-eabi-g++", *M4_CXXFLAGS, "-Wall", "-Wextra", "-Werror",
                        *[f"-D{d}" for d in library.defines], *includes, "-c", str(tmp_path / src), "-o", str(objects[-1])],
                       check=True)
    for src in ("startup.c", "main.c"):
        objects.append(tmp_path / (src + ".o"))
        subprocess.run(["arm-none-eabi-gcc", *M4_CFLAGS, "-std=c99", "-Wall", "-Wextra", "-Werror", *includes, "-c",
                        str(tmp_path / src), "-o", str(objects[-1])], check=True)
    elf = tmp_path / "firmware.elf"
    subprocess.run(["arm-none-eabi-g++", *M4_CPU, "-nostartfiles", "--specs=nano.specs", "-T", str(tmp_path / "link.ld"),
                    "-Wl,--gc-sections", *map(str, objects), str(library.archive), "-lm", "-o", str(elf)], check=True)
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True).stdout
    assert not re.search(r" (malloc|_malloc_r|__cxa_atexit|_Znwj|_ZdlPv)$", symbols, re.M)  # no heap, no atexit
    run = subprocess.run(["qemu-system-arm", "-M", board.settings(EmulatorSettings).machine, "-nographic", "-monitor", "none",
                          "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    reference = Reference(model)
    expected = [reference.run([s[None]])[0].astype(np.int8).tobytes().hex() for s in samples]
    assert run.stderr.replace("\r", "").split() == expected  # QEMU prints semihosting output on stderr
