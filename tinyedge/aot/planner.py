"""The static memory plan: one arena, every intermediate tensor at a fixed offset.

Buffers whose lifetimes (first and last op that touches them) overlap never share bytes. Placement
is greedy first-fit, like TFLM's GreedyMemoryPlanner, but tried in several orders (TFLM's own,
largest-first, is one of them) keeping the smallest arena, and without TFLM's 16-byte rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence


@dataclass(frozen=True)
class Buffer:
    key: int          # an id chosen by the caller (the compiler uses a tensor index)
    size: int         # bytes
    first: int        # index of the first op that writes or reads it (-1: before the first op)
    last: int         # index of the last op that reads it (len(ops): after the last op)
    align: int = 1

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class MemoryPlan:
    offsets: dict[int, int]
    arena_bytes: int

    def end_of(self, buffer: Buffer) -> int:
        return self.offsets[buffer.key] + buffer.size


Ordering = Callable[[Buffer], tuple]

ORDERINGS: dict[str, Ordering] = {
    "largest-first (TFLM)": lambda b: (-b.size, b.first),
    "earliest-first": lambda b: (b.first, -b.size),
    "longest-lived-first": lambda b: (-(b.last - b.first), -b.size),
    "largest-area-first": lambda b: (-b.size * (b.last - b.first + 1), b.first),
}


def plan_memory(buffers: Iterable[Buffer]) -> MemoryPlan:
    """Offsets for every buffer such that no two buffers alive at the same time overlap."""
    buffers = list(buffers)
    plans = [_greedy(sorted(buffers, key=order), buffers) for order in ORDERINGS.values()]
    return min(plans, key=lambda p: p.arena_bytes)


def _greedy(ordered: Sequence[Buffer], buffers: Sequence[Buffer]) -> MemoryPlan:
    offsets: dict[int, int] = {}
    placed: list[Buffer] = []
    for buffer in ordered:
        offsets[buffer.key] = _first_fit(buffer, [(offsets[p.key], offsets[p.key] + p.size)
                                                  for p in placed if p.overlaps_in_time(buffer)])
        placed.append(buffer)
    arena = max((offsets[b.key] + b.size for b in buffers), default=0)
    return MemoryPlan(offsets, arena)


def _first_fit(buffer: Buffer, taken: list[tuple[int, int]]) -> int:
    offset = 0
    for start, end in sorted(taken):
        if offset + buffer.size <= start:
            break
        offset = max(offset, _align_up(end, buffer.align))
    return offset


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def find_conflicts(buffers: Sequence[Buffer], plan: MemoryPlan) -> list[tuple[int, int]]:
    """Pairs of buffers that are alive together and share bytes: empty for a correct plan."""
    conflicts = []
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if a.size and b.size and a.overlaps_in_time(b):
                a0, b0 = plan.offsets[a.key], plan.offsets[b.key]
                if a0 < b0 + b.size and b0 < a0 + a.size:
                    conflicts.append((a.key, b.key))
    return conflicts
