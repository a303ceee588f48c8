"""The AOT planner plans a buffer shared by an in-place chain by size over time: while the chain holds
a small tensor, the bytes its larger tensors will need later hold other tensors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyedge.aot.compiler import compile_model
from tinyedge.aot.planner import Buffer, find_conflicts, plan_memory, shared_buffer
from tinyedge.tflite_model import load_tflite

REAL = Path(__file__).resolve().parents[2] / "shared" / "models" / "real"
VWW = next((p for p in (REAL, Path("/work/shared/models/real")) if (p / "vww_96_int8.tflite").exists()), REAL)


def test_a_growing_in_place_chain_lends_its_later_bytes_to_an_earlier_tensor():
    chain = shared_buffer(0, [(0, 1, 100), (1, 3, 200)])     # 100 B, then an op grows it in place to 200 B
    early = Buffer(1, 100, 0, 0)                              # alive only while the chain holds 100 B
    plan = plan_memory([chain, early])
    assert plan.arena_bytes == 200 and not find_conflicts([chain, early], plan)


def test_a_plan_by_size_over_time_still_keeps_tensors_alive_together_apart():
    chain = shared_buffer(0, [(0, 1, 100), (1, 3, 200)])
    late = Buffer(1, 100, 2, 3)                               # alive while the chain holds 200 B
    plan = plan_memory([chain, late])
    assert plan.arena_bytes == 300 and not find_conflicts([chain, late], plan)
    assert find_conflicts([chain, late], type(plan)({0: 0, 1: 150}, 300)) == [(0, 1)]


@pytest.mark.skipif(not (VWW / "vww_96_int8.tflite").exists(), reason=f"the real models are not here ({VWW})")
def test_vww_needs_9_kib_less_ram_than_a_buffer_sized_to_its_largest_tensor_for_life():
    program = compile_model(load_tflite(VWW / "vww_96_int8.tflite"), dsp=True)
    assert not find_conflicts(program.buffers, program.plan)
    assert program.stats.arena_bytes + program.stats.scratch_bytes <= 56_320 - 9_216
