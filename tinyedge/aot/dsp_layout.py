"""Constants re-written for te_dsp.c's fast paths, with the same outputs bit for bit.

Pruned channels: a channel whose weights are all zero accumulates its bias alone, and converters
give such channels biases of ±2^30 — which alone keep the whole op off te_dsp.c's short exact
requantization (TE_REQUANT_BOUNDED needs every accumulator below 2^30). Their output is a constant,
so any smaller bias that requantizes to the same int8 value computes the same op."""

from __future__ import annotations

import numpy as np

from tinyedge.ops.fixedpoint import multiply_by_quantized_multiplier

BOUND = 1 << 30


def _output(acc: int, multiplier: int, shift: int, output_zero_point: int, act_range: tuple[int, int]) -> int:
    low, high = act_range
    return min(high, max(low, multiply_by_quantized_multiplier(acc, multiplier, shift) + output_zero_point))


def tamed_dead_channels(bias: np.ndarray, rows: np.ndarray, multipliers: list[tuple[int, int]],
                        output_zero_point: int, act_range: tuple[int, int]) -> dict[int, int]:
    """{channel: bias} for the all-zero-weight channels whose bias is at or beyond ±2^30 and whose
    output ±(2^30 - 1) reproduces exactly (empty when there is none)."""
    dead = ~rows.reshape(rows.shape[0], -1).any(axis=1)
    tamed = {}
    for channel in np.nonzero(dead & (np.abs(np.asarray(bias, dtype=np.int64)) >= BOUND))[0]:
        multiplier, shift = multipliers[channel]
        original = int(bias[channel])
        candidate = BOUND - 1 if original > 0 else -(BOUND - 1)
        if (_output(candidate, multiplier, shift, output_zero_point, act_range)
                == _output(original, multiplier, shift, output_zero_point, act_range)):
            tamed[int(channel)] = candidate
    return tamed
