"""Whole models through the AOT compiler: MLPerf-Tiny-shaped networks and tinyedge's own small CNN,
bit-exact with tflite-micro, with an arena no larger than the one tflite-micro needs."""

from __future__ import annotations

import pytest

import mlperf_models
from aot_harness import NativeModel, assert_matches_reference, tflm_planned_tensor_bytes, to_int8
from tinyedge.aot.compiler import compile_model
from tinyedge.aot.planner import find_conflicts
from tinyedge.reference import measure_arena

BUILDERS = {
    "ds_cnn": lambda: mlperf_models.ds_cnn(),
    "ds_cnn_backbone": lambda: mlperf_models.ds_cnn(head=False),
    "mobilenet_v1": lambda: mlperf_models.mobilenet_v1(),
    "mobilenet_v1_backbone": lambda: mlperf_models.mobilenet_v1(head=False),
    "resnet8": lambda: mlperf_models.resnet8(),
    "autoencoder": lambda: mlperf_models.autoencoder(),
}


@pytest.fixture(scope="session")
def mlperf_tflite():
    """Each model converted to full int8 once per session (on first use)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = to_int8(BUILDERS[name](), samples=16)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(BUILDERS))
def test_mlperf_shaped_model_is_bit_exact_with_tflite_micro(name, mlperf_tflite, tmp_path):
    model = mlperf_tflite(name)
    native = NativeModel(model, tmp_path)
    assert_matches_reference(model, native, samples=3)


@pytest.mark.parametrize("name", ["ds_cnn_backbone", "mobilenet_v1_backbone", "autoencoder", "resnet8"])
def test_arena_plan_is_valid_and_smaller_than_tflite_micros(name, mlperf_tflite):
    model = mlperf_tflite(name)
    program = compile_model(model)
    assert find_conflicts(program.buffers, program.plan) == []
    assert program.plan.arena_bytes <= program.stats.tensor_bytes_total
    assert program.plan.arena_bytes <= tflm_planned_tensor_bytes(model)
    assert program.plan.arena_bytes <= measure_arena(model)


def test_small_cnn_runs_bit_exact(cnn_model, tmp_path):
    from tinyedge.tflite_model import load_tflite

    model = load_tflite(cnn_model.int8)
    native = NativeModel(model, tmp_path)
    assert_matches_reference(model, native, samples=5)
    assert compile_model(model).plan.arena_bytes <= tflm_planned_tensor_bytes(model)
