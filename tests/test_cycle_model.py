"""The Cortex-M4 cycle model the benchmarks price executed instructions with
(benchmarks/cycle_model/cortex_m4.py), on hand-written sequences whose cycles Arm's Cortex-M4 TRM
states (table 3-1 and the load/store pairing examples of section 3.3)."""

from __future__ import annotations

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

from cycle_model.cortex_m4 import Block, Instruction, block_cycles, sequence_cycles  # noqa: E402


def cycles(lines: str, level: str = "mid", taken: bool = True) -> int:
    return sequence_cycles([line.strip() for line in lines.strip().splitlines()], level, taken)


@pytest.mark.parametrize("lines, expected", [
    # the TRM's own pairing examples ("normally three/four cycles total")
    ("ldr r0, [r1]\nldr r1, [r2]", 3),
    ("ldr r0, [r1, r2]\nstr r0, [r3, #20]", 3),
    ("ldr r0, [r1, r2]\nstr r1, [r3, r2]", 3),
    ("ldr r0, [r1, r5]\nldr r1, [r2]\nldr r2, [r3, #4]", 4),
    # a load whose address is the previous load's result does not pipeline
    ("ldr r0, [r1]\nldr r2, [r0]", 4),
    # nothing pipelines after a store with a register offset
    ("str r0, [r1, r2]\nldr r3, [r4]", 4),
    ("ldrd r2, r3, [r0]", 3),
    ("strd r2, r3, [r0, #8]", 3),
    ("ldmia r0!, {r2, r3, r4, r5}", 5),
    ("push {r4, r5, r6, r7, lr}", 6),
    ("smlad r0, r1, r2, r0\nmul r3, r4, r5\nmla r3, r4, r5, r3\nsxtb16 r6, r7\nssat r0, #8, r0", 5),
    ("adds r0, #1\nsubs r1, r1, r2\nlsls r3, r3, #2\ncmp r0, r1", 4),
])
def test_trm_timings_for_straight_line_code(lines, expected):
    assert cycles(lines) == expected


def test_a_taken_branch_costs_one_plus_the_pipeline_refill_across_the_range():
    body = "subs r2, #1\nbne.n 0x100"
    assert [cycles(body, level) for level in ("low", "mid", "high")] == [3, 4, 5]
    assert [cycles(body, level, taken=False) for level in ("low", "mid", "high")] == [2, 2, 2]


def test_pop_with_pc_is_one_plus_n_plus_p():
    assert cycles("pop {r4, r5, pc}", "mid") == 1 + 3 + 2


def test_division_spans_the_trms_2_to_12_cycles():
    assert [cycles("sdiv r0, r1, r2", level) for level in ("low", "mid", "high")] == [2, 7, 12]


def test_the_range_brackets_the_pipelined_loads_and_ldrd():
    loop = "ldr r4, [r0], #4\nldr r5, [r1], #4\nldrd r6, r7, [r2]\nsmlad r3, r4, r5, r3\nstr r3, [r8, #4]"
    low, mid, high = (cycles(loop, level) for level in ("low", "mid", "high"))
    assert low < mid < high
    assert mid == 2 + 1 + 3 + 1 + 1
    assert high == 2 + 2 + 3 + 1 + 2


def test_an_address_computed_by_the_previous_instruction_stalls_a_cycle():
    assert cycles("add r0, r1, r2\nldr r3, [r0]") == 1 + 2 + 1
    assert cycles("add r0, r1, r2\nldr r3, [r0]", "low") == 1 + 2


def test_a_folded_it_costs_nothing_in_the_middle_estimate():
    assert cycles("cmp r0, #0\nit eq\nmoveq r0, #1") == 2
    assert cycles("cmp.w r0, #0\nit eq\nmoveq r0, #1") == 3


def test_a_block_prices_each_execution_and_its_taken_exits():
    insns = tuple(Instruction.parse(a, 2, t) for a, t in ((0, "ldr r3, [r0, #0]"), (2, "adds r1, r1, r3"),
                                                          (4, "cmp r1, r2"), (6, "bne.n 0")))
    block = Block(insns, executions=10, fell_through=1, jumped=9)
    assert block_cycles(block, "mid") == 10 * (2 + 1 + 1) + 9 * 3 + 1 * 1


def test_a_conditional_return_inside_an_it_block_is_a_conditional_branch():
    insn = Instruction.parse(0, 2, "bxeq lr")
    assert insn.is_branch and insn.is_conditional_branch
