"""The static memory plan: one arena, every intermediate tensor at a fixed offset.

Buffers whose lifetimes (first and last op that touches them) overlap never share bytes. Placement
is greedy first-fit, like TFLM's GreedyMemoryPlanner, but tried in several orders (TFLM's own,
largest-first, is one of them) keeping the smallest arena, and without TFLM's 16-byte rounding.

A buffer shared by an in-place chain (a convolution writing over its input, a reshape aliasing it)
holds tensors of different sizes at different times: it is planned by size over time, as the
`segments` of its members (each alive from its first to its last op, from the buffer's offset), so
its bytes past the current member's size are free for other buffers meanwhile.
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
    segments: tuple[tuple[int, int, int], ...] = ()   # (first, last, size) of each member; () = one

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last

    @property
    def extents(self) -> tuple[tuple[int, int, int], ...]:
        """(first, last, size) rectangles the buffer occupies from its offset."""
        return self.segments or ((self.first, self.last, self.size),)

    def clashes(self, offset: int, other: "Buffer", other_offset: int) -> bool:
        """Whether the two buffers, at these offsets, share a byte at some time."""
        return any(f <= ol and of <= l and offset < other_offset + osize and other_offset < offset + size
                   for f, l, size in self.extents for of, ol, osize in other.extents if size and osize)


def shared_buffer(key: int, members: Sequence[tuple[int, int, int]], align: int = 1) -> Buffer:
    """The buffer of an in-place group from its members' (first, last, size)."""
    return Buffer(key, max(m[2] for m in members), min(m[0] for m in members), max(m[1] for m in members), align,
                  tuple(sorted(set(members))) if len(set(members)) > 1 else ())


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
        offsets[buffer.key] = _first_fit(buffer, [interval for p in placed if p.overlaps_in_time(buffer)
                                                  for interval in _forbidden(buffer, p, offsets[p.key])])
        placed.append(buffer)
    arena = max((offsets[b.key] + b.size for b in buffers), default=0)
    return MemoryPlan(offsets, arena)


def _forbidden(buffer: Buffer, placed: Buffer, at: int) -> list[tuple[int, int]]:
    """Half-open ranges of offsets at which `buffer` would share bytes with `placed` (at `at`) at some
    time: each pair of their rectangles alive together forbids (at - size, at + placed size)."""
    return [(at - size + 1, at + psize) for f, l, size in buffer.extents for pf, pl, psize in placed.extents
            if size and psize and f <= pl and pf <= l]


def _first_fit(buffer: Buffer, forbidden: list[tuple[int, int]]) -> int:
    """The lowest aligned offset in none of the forbidden [start, end) ranges."""
    offset = 0
    moved = True
    while moved:
        moved = False
        for start, end in sorted(forbidden):
            if start <= offset < end:
                offset = _align_up(end, buffer.align)
                moved = True
    return offset


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def find_conflicts(buffers: Sequence[Buffer], plan: MemoryPlan) -> list[tuple[int, int]]:
    """Pairs of buffers that are alive together and share bytes: empty for a correct plan."""
    conflicts = []
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if a.overlaps_in_time(b) and a.clashes(plan.offsets[a.key], b, plan.offsets[b.key]):
                conflicts.append((a.key, b.key))
    return conflicts
