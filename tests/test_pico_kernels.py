"""The Cortex-M0+ kernels (firmware/aot/te_m0plus.c) give te_kernels.c's bits: compiled for the host
(their C paths) and run side by side on random data over geometries with padding, strides, dilation,
depth multipliers, input offsets and per-channel requantization; and the aot runtime picks them, and
only them, for armv6-m boards. The Thumb-1 assembly path is checked on the emulated Pico by the
bit-exact deploys of tests/test_pico.py."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO, run_tinyedge

AOT = REPO / "tinyedge" / "firmware" / "aot"

DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "te_m0plus.h"

static uint32_t seed = 12345u;
static uint32_t next(void) { seed = seed * 1664525u + 1013904223u; return seed >> 8; }
static int8_t s8(void) { return (int8_t)(next() & 0xFF); }

static int8_t in[4096], filter[8192], out_a[8192], out_b[8192], data_a[4096], data_b[4096], scratch[4096];
static int32_t bias[64], mult[64];
static int8_t shift[64];
static long mismatches, checked;

static void compare(const int8_t *a, const int8_t *b, int n, const char *what) {
  for (int i = 0; i < n; ++i) {
    checked++;
    if (a[i] != b[i]) { if (mismatches < 5) printf("mismatch %s at %d: %d != %d\n", what, i, a[i], b[i]); mismatches++; }
  }
}

static void randomize(te_requant_t *q, int channels) {
  for (int i = 0; i < (int)sizeof in; ++i) in[i] = s8();
  for (int i = 0; i < (int)sizeof filter; ++i) filter[i] = s8();
  for (int i = 0; i < channels; ++i) {
    bias[i] = (int32_t)(next() % 20000) - 10000;
    mult[i] = (int32_t)(0x40000000u + next() % 0x3FFFFFFFu);
    shift[i] = (int8_t)(-(int)(next() % 12) + 1);
  }
  q->multiplier = mult; q->shift = shift; q->per_channel = (uint8_t)(next() & 1);
  q->input_offset = (int16_t)((next() & 1) ? 0 : (int)(next() % 256) - 127);
  q->output_offset = (int16_t)((int)(next() % 256) - 128);
  q->act_min = -128; q->act_max = (int8_t)(100 + next() % 28);
}

int main(void) {
  static const te_window_t geometries[] = {
    /* in_h in_w in_c out_h out_w out_c k_h k_w sh sw dh dw ph pw */
    {49, 10, 1, 25, 5, 16, 10, 4, 2, 2, 1, 1, 4, 1},
    {9, 7, 8, 9, 7, 8, 3, 3, 1, 1, 1, 1, 1, 1},
    {9, 7, 8, 5, 4, 8, 3, 3, 2, 2, 1, 1, 1, 1},
    {11, 9, 6, 7, 5, 6, 3, 3, 1, 1, 2, 2, 0, 0},
    {8, 8, 12, 8, 8, 12, 5, 5, 1, 1, 1, 1, 2, 2},
    {6, 5, 7, 6, 5, 7, 1, 1, 1, 1, 1, 1, 0, 0},
    {6, 5, 64, 6, 5, 48, 1, 1, 1, 1, 1, 1, 0, 0},
    {4, 4, 5, 4, 4, 5, 3, 1, 1, 1, 1, 1, 1, 0},
    {49, 40, 1, 25, 20, 1, 10, 8, 2, 2, 1, 1, 4, 3},
    /* one-channel windows from a band: odd starts (copied value by value), and a band too wide (gathered) */
    {20, 9, 1, 20, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1},
    {40, 60, 1, 20, 30, 2, 10, 8, 2, 2, 1, 1, 4, 3},
  };
  for (int round = 0; round < 40; ++round) {
    for (unsigned g = 0; g < sizeof geometries / sizeof geometries[0]; ++g) {
      te_window_t w = geometries[g];
      te_requant_t q;
      const int out_bytes = w.out_h * w.out_w * w.out_c;
      const int in_bytes = w.in_h * w.in_w * w.in_c;
      randomize(&q, 64);
      te_conv2d(out_a, in, filter, (round & 1) ? bias : 0, &w, &q);
      te_m0_conv2d(out_b, in, filter, (round & 1) ? bias : 0, &w, &q);
      compare(out_a, out_b, out_bytes, "conv2d");
      if (w.in_c == w.out_c) {
        te_depthwise_conv2d(out_a, in, filter, bias, &w, 1, &q);
        te_m0_depthwise_conv2d(out_b, in, filter, bias, &w, 1, &q);
        compare(out_a, out_b, out_bytes, "depthwise");
        memcpy(data_a, in, (size_t)in_bytes); memcpy(data_b, in, (size_t)in_bytes);
        te_depthwise_conv2d_inplace(data_a, scratch, filter, bias, &w, &q);
        te_m0_depthwise_conv2d_inplace(data_b, scratch, filter, bias, &w, &q);
        compare(data_a, data_b, in_bytes, "depthwise in place");
        w.out_c = (int16_t)(2 * w.in_c);
        te_depthwise_conv2d(out_a, in, filter, bias, &w, 2, &q);
        te_m0_depthwise_conv2d(out_b, in, filter, bias, &w, 2, &q);
        compare(out_a, out_b, w.out_h * w.out_w * w.out_c, "depthwise x2");
        w = geometries[g];
      }
      if (w.stride_h == 1 && w.stride_w == 1 && w.dil_h == 1 && w.dil_w == 1 && w.out_h == w.in_h &&
          w.out_w == w.in_w && w.out_c == w.in_c) {
        memcpy(data_a, in, (size_t)in_bytes); memcpy(data_b, in, (size_t)in_bytes);
        te_conv2d_inplace(data_a, scratch, filter, bias, &w, &q);
        te_m0_conv2d_inplace(data_b, scratch, filter, bias, &w, &q);
        compare(data_a, data_b, in_bytes, "conv2d in place");
      }
      if (w.k_h == 1 && w.k_w == 1) {
        memcpy(data_a, in, (size_t)in_bytes); memcpy(data_b, in, (size_t)in_bytes);
        te_pointwise_conv2d_inplace(data_a, scratch, filter, bias, &w, &q);
        te_m0_pointwise_conv2d_inplace(data_b, scratch, filter, bias, &w, &q);
        compare(data_a, data_b, w.in_h * w.in_w * w.out_c, "pointwise in place");
      }
      te_fully_connected(out_a, in + (round & 3), filter, bias, 2, (int16_t)(in_bytes / 4 + round), 9, &q);
      te_m0_fully_connected(out_b, in + (round & 3), filter, bias, 2, (int16_t)(in_bytes / 4 + round), 9, &q);
      compare(out_a, out_b, 18, "fully connected");
    }
  }
  for (int i = 0; i < 200000; ++i) {
    const int32_t x = (int32_t)(next() << 8) ^ (int32_t)next(), m = (int32_t)(0x40000000u + next() % 0x3FFFFFFFu);
    const int8_t s = (int8_t)((int)(next() % 40) - 31);
    checked++;
    if (te_mul_by_quantized_multiplier(x >> (s > 0 ? s : 0), m, s) != te_m0_mul_by_quantized_multiplier(x >> (s > 0 ? s : 0), m, s)) mismatches++;
  }
  printf("checked %ld mismatches %ld\n", checked, mismatches);
  return mismatches != 0;
}
"""


def test_the_m0plus_kernels_give_the_portable_kernels_bits(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("needs a host C compiler (build-essential)")
    (tmp_path / "driver.c").write_text(DRIVER)
    program = tmp_path / "driver"
    subprocess.run([compiler, "-std=c99", "-O2", "-Wall", "-I", str(AOT), str(tmp_path / "driver.c"),
                    str(AOT / "te_kernels.c"), str(AOT / "te_m0plus.c"), "-o", str(program)], check=True)
    done = subprocess.run([str(program)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    checked = int(done.stdout.split("checked ")[1].split()[0])
    assert checked > 500_000 and "mismatches 0" in done.stdout


def test_armv6m_boards_get_the_m0plus_kernels_and_no_other_board_does(tmp_path):
    model = REPO.parent / "shared" / "models" / "real" / "kws_ref_model.tflite"
    if not model.is_file():
        model = REPO.parent.parent / "shared" / "models" / "real" / "kws_ref_model.tflite"
    if not model.is_file():
        pytest.skip("needs the real models in ../shared/models/real")
    for board, expected in (("pico-emulated", True), ("qemu-riscv32", False)):
        out = tmp_path / board
        assert run_tinyedge("generate", model, "--board", board, "-o", out, "--runtime", "aot").returncode == 0
        source = (out / "aot" / "te_model.c").read_text()
        assert ("te_m0_pointwise_conv2d_inplace(" in source) is expected
        assert (out / "aot" / "te_m0plus.c").exists() is expected
        if expected:
            assert "te_pointwise_conv2d_inplace(" not in source.replace("te_m0_pointwise", "")
            assert "aligned(4)" in source
            assert "$(BUILD)/aot/te_m0plus.c.o: CFLAGS += -O2" in (out / "Makefile").read_text()
