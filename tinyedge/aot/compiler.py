"""Compile an int8 .tflite ahead of time into one C99 function over one statically planned arena."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from tinyedge import __version__
from tinyedge.aot import TFLM_COMMIT
from tinyedge.aot.lowering import Lowered, Lowering, PointerOf, Table
from tinyedge.aot.ops import ALIAS_OPS, check_supported, lowerings
from tinyedge.aot.planner import Buffer, MemoryPlan, plan_memory, shared_buffer
from tinyedge.aot.residual import RESIDUAL_FILES, NotFusable, ResidualBlock, find_blocks, render_block
from tinyedge.errors import TinyedgeError
from tinyedge.ops import registry
from tinyedge.ops.cstructs import DoesNotFit
from tinyedge.paths import FIRMWARE_DIR
from tinyedge.templating import c_comment, render
from tinyedge.tflite_model import Operator, Tensor, TfliteModel

C_TYPES = {"INT8": "int8_t", "UINT8": "uint8_t", "INT16": "int16_t", "INT32": "int32_t", "INT64": "int64_t",
           "UINT32": "uint32_t", "UINT64": "uint64_t", "BOOL": "uint8_t", "FLOAT32": "float"}
MODEL_SOURCE = "te_model.c"
MODEL_HEADER = "te_model.h"
KERNEL_FILES = ("te_params.h", "te_fixedpoint.h", "te_pgm.h", "te_dsp_insn.h", "te_kernels.h", "te_kernels.c")
NONLINEAR_FILES = ("te_nonlinear.h", "te_nonlinear.c", "te_recurrent.h", "te_recurrent.c", "te_int16.h", "te_int16.c",
                   "te_shape.h", "te_shape.c", "te_elementwise.h", "te_elementwise.c", "te_signal.h", "te_signal.c")
DSP_FILES = ("te_dsp.h", "te_dsp.c")
AVR_POINTER_BYTES = 2


@dataclass
class AotStats:
    arena_bytes: int
    tensor_bytes_total: int       # every activation tensor in its own buffer: the no-reuse bound
    constant_bytes: int           # weights, biases and per-op tables (multipliers, shifts, geometry): flash
    op_count: int
    progmem: bool
    scratch_bytes: int = 0        # the one scratch buffer of the in-place convolutions (0: none)
    ram_table_bytes: int = 0      # constant tables that still land in RAM (AVR's arrays of pointers)
    state_bytes: int = 0          # ops' own state arrays outside the arena (e.g. SignalDelay's history)

    @property
    def ram_bytes(self) -> int:
        """Static RAM the model needs: the arena, the scratch and the few constant tables kept in RAM.
        Weights and the other TE_CONST tables are read from flash on every target (`const` data in
        .rodata on Arm, RISC-V and Xtensa, PROGMEM on AVR), so they count against flash only."""
        return self.arena_bytes + self.scratch_bytes + self.ram_table_bytes + self.state_bytes


@dataclass
class AotProgram:
    source: str                   # te_model.c
    header: str                   # te_model.h
    plan: MemoryPlan
    buffers: list[Buffer]
    tensor_offsets: dict[int, int]   # tensor index -> arena offset, for every activation tensor
    stats: AotStats
    uses_nonlinear: bool = False
    uses_dsp: bool = False        # te_dsp.c's kernels (cores with the Arm DSP extension)
    op_lines: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)   # every constant array of te_model.c, as data
    op_scratch_bytes: list[int] = field(default_factory=list)   # bytes of te_scratch each op's call uses
    uses_residual: bool = False   # te_residual.c's row loop helpers (fused residual blocks)


def compile_model(model: TfliteModel, progmem: bool = False, inplace_with_scratch: bool = True,
                  dsp: bool = False, fuse_residual_blocks: bool = True) -> AotProgram:
    """C for the whole model. `progmem` says the target is AVR, whose `const` data not marked
    TE_CONST (PROGMEM) is copied to RAM: the arrays of pointers to tables then count in `stats`' RAM.
    The C is the same either way.
    Convolutions that can write over their input do so (with one shared scratch buffer) when that
    takes less RAM than running them out of place; `inplace_with_scratch=False` never lets them.
    `dsp` lowers the convolutions and FC to te_dsp.c (the target has the Arm DSP extension).
    Residual blocks run as one row-streamed op (tinyedge.aot.residual) when that takes less RAM, unless
    `fuse_residual_blocks` is False."""
    check_supported(model)
    _check_io(model)
    out_of_place = _compile(model, progmem, inplace_with_scratch=False, dsp=dsp)
    if not inplace_with_scratch:
        return out_of_place
    best = out_of_place
    # A growing in-place op makes its whole buffer group as large as its output: tried with and without;
    # residual blocks fused into row loops (not on AVR, whose kernels read their windows from flash) too.
    fusing = (False, True) if fuse_residual_blocks and not progmem and find_blocks(model) else (False,)
    for fuse in fusing:
        for grow in (False, True):
            in_place = _compile(model, progmem, inplace_with_scratch=True, dsp=dsp, grow=grow, fuse=fuse)
            if _planned_ram(in_place) < _planned_ram(best):
                best = in_place
    return best


def _planned_ram(program: AotProgram) -> int:
    return program.stats.arena_bytes + program.stats.scratch_bytes


def _lower(available: dict[str, Lowering], model: TfliteModel, op: Operator, ptr: PointerOf,
           fused: dict[int, Lowering] | None = None) -> Lowered:
    """The op's C (its fused block's, for an op of `fused`), or one sentence when one of its numbers does
    not fit the C type its kernel holds it in."""
    try:
        return (fused or {}).get(op.index, available[op.kind])(model, op, ptr)
    except DoesNotFit as exc:
        raise TinyedgeError(f"{op.kind} (operator {op.index}) cannot be compiled by the AOT runtime: {exc}; build the "
                            "model with `--runtime tflm` instead.") from None


def _fused_lowerings(available: dict[str, Lowering], blocks: list[ResidualBlock]) -> dict[int, Lowering]:
    """op index -> the lowering of the residual blocks' ops: the ADD's runs the block, the others' outputs
    are never stored."""
    by_op: dict[int, Lowering] = {}
    for block in blocks:
        for inner in block.inner:
            by_op[inner.index] = lambda model, op, ptr, at=block.add.index: Lowered(
                call=f"/* computed by op {at}'s residual block */", streams_output=True)
        by_op[block.add.index] = lambda model, op, ptr, b=block: render_block(b, model, available["CONV_2D"], ptr)
    return by_op


def _fusable(model: TfliteModel, available: dict[str, Lowering], probe: "_Pointers") -> list[ResidualBlock]:
    blocks = []
    for block in find_blocks(model):
        try:
            render_block(block, model, available["CONV_2D"], probe)
        except (NotFusable, TinyedgeError, DoesNotFit):   # it then runs op by op, or says why not
            continue
        blocks.append(block)
    return blocks


def _compile(model: TfliteModel, progmem: bool, inplace_with_scratch: bool, dsp: bool, grow: bool = False,
             fuse: bool = False) -> AotProgram:
    available = lowerings()
    probe = _Pointers(model, {}, probing=True, dsp=dsp)
    blocks = _fusable(model, available, probe) if fuse else []
    fused = _fused_lowerings(available, blocks)
    first_pass = [_lower(available, model, op, probe, fused) for op in model.operators]
    if not inplace_with_scratch:
        for low in first_pass:
            low.inplace_ok = low.inplace_ok and low.scratch_bytes == 0
    for low in first_pass:
        low.grows_in_place = low.grows_in_place and grow
    streamed = {op.outputs[0] for op, low in zip(model.operators, first_pass) if low.streams_output}
    kept = {t for low in first_pass for t in low.kept_tensors}
    reads = {op.index: low.reads for op, low in zip(model.operators, first_pass) if low.reads}
    grouped = _buffer_groups(model, first_pass, kept, reads)
    groups = {t: root for t, (root, _) in grouped.items() if t not in streamed}
    deltas = {t: delta for t, (_, delta) in grouped.items()}
    buffers = _buffers(model, groups, deltas, kept, reads)
    plan = plan_memory(buffers)
    offsets = {t: plan.offsets[root] + deltas[t] for t, root in groups.items()}
    pointers = _Pointers(model, offsets, dsp=dsp)
    lowered = [_lower(available, model, op, pointers, fused) for op in model.operators]
    check_kernel_families(model, lowered)
    constants = _constant_tables(model, sorted(pointers.constants_used))
    tables = [t for low in lowered for t in low.tables]
    op_lines = [_op_line(model, op, low) for op, low in zip(model.operators, lowered)]
    uses_nonlinear = (any(registry.OPS[op.kind].family != "core" for op in model.operators)
                      or any(declared_kernels().get(k) in NONLINEAR_FILES for low in lowered
                             for k in re.findall(r"\b(te_\w+)\(", low.call)))
    scratch = max((low.scratch_bytes for low in lowered), default=0)
    state_arrays = [low.state for low in lowered if low.state is not None]
    source = _render("te_model.c.j2", plan,
                     version=__version__, model_name=model.path.name if model.path else "model", sha256=model.sha256,
                     uses_nonlinear=uses_nonlinear, uses_dsp=dsp, uses_residual=bool(blocks), scratch_bytes=scratch,
                     constants=constants,
                     tables=tables, op_lines=op_lines, states=state_tensors(model, offsets, kept),
                     state_arrays=state_arrays, reset_each_inference=model.resets_state_each_inference,
                     input_offsets=[offsets[i] for i in model.inputs], output_offsets=[offsets[i] for i in model.outputs])
    stats = AotStats(
        arena_bytes=plan.arena_bytes,
        tensor_bytes_total=sum(model.tensors[t].nbytes for t in groups),
        constant_bytes=sum(t.nbytes for t in constants + tables),
        op_count=len(model.operators), progmem=progmem, scratch_bytes=scratch,
        ram_table_bytes=sum(AVR_POINTER_BYTES * len(t.values) for t in tables if not t.in_flash) if progmem else 0,
        state_bytes=sum(a.nbytes for a in state_arrays),
    )
    return AotProgram(source, _render("te_model.h.j2", plan), plan, buffers, offsets, stats, uses_nonlinear, dsp, op_lines,
                      constants + tables, [low.scratch_bytes for low in lowered], bool(blocks))


@lru_cache(maxsize=1)
def declared_kernels() -> dict[str, str]:
    """Every function firmware/aot's headers declare -> its header."""
    declared = {}
    for header in sorted((FIRMWARE_DIR / "aot").glob("te_*.h")):
        for name in re.findall(r"^[a-z][\w ]*?\**\s*\b(te_\w+)\(", header.read_text(), re.MULTILINE):
            declared[name] = header.name
    return declared


def check_kernel_families(model: TfliteModel, lowered: list[Lowered]) -> None:
    """Every kernel an op's call names is declared by a header of its family in the op registry (or
    te_dsp.h for an op with a DSP kernel): an op lowered in the wrong family fails here, not at link time."""
    for op, low in zip(model.operators, lowered):
        support = registry.OPS[op.kind]
        files = support.c_files + tuple(f for kind in low.fused for f in registry.OPS[kind].c_files)
        headers = {name for name in files + (RESIDUAL_FILES if low.fused else ()) if name.endswith(".h")}
        for kernel in re.findall(r"\b(te_\w+)\(", low.call):
            if declared_kernels().get(kernel) not in headers:
                raise registry.OpRegistryError(
                    f"{op.kind} calls {kernel}, declared in {declared_kernels().get(kernel, 'no header')}, but the op "
                    f"registry gives it the files {', '.join(support.c_files)}: fix its family in tinyedge/ops/registry.py.")


def _check_io(model: TfliteModel) -> None:
    too_big = [t for t in model.tensors if not t.is_constant and any(d > 32767 for d in t.shape)]
    if too_big:
        raise TinyedgeError(f"tensor '{tensor_label(too_big[0])}' has a dimension above 32767, more than the AOT "
                            "kernels index: build the model with `--runtime tflm` instead.")
    for index in model.inputs + model.outputs:
        t = model.tensors[index]
        if t.is_constant or t.type_name not in C_TYPES:
            raise TinyedgeError(f"model I/O tensor '{t.name}' is {t.type_name.lower()}"
                                f"{' and constant' if t.is_constant else ''}, which the AOT runtime cannot serve: "
                                "build it with `--runtime tflm` instead.")


class _Pointers:
    """ptr(tensor_index) for lowerings: typed arena pointers, or TE_CONST array names."""

    def __init__(self, model: TfliteModel, offsets: dict[int, int], probing: bool = False, dsp: bool = False):
        self.model, self.offsets, self.probing, self.dsp = model, offsets, probing, dsp
        self.constants_used: set[int] = set()

    def __call__(self, index: int) -> str:
        t = self.model.tensors[index]
        if t.is_constant:
            self.constants_used.add(index)
            return constant_name(t)
        c_type = C_TYPES.get(t.type_name)
        if c_type is None:
            raise TinyedgeError(f"tensor '{t.name}' is {t.type_name.lower()}, which the AOT runtime cannot hold: "
                                "build the model with `--runtime tflm` instead.")
        offset = 0 if self.probing else self.offsets[index]
        return f"(({c_type} *)(te_arena + {offset}))"


def constant_name(t: Tensor) -> str:
    return f"te_c{t.index}"


def _activation_tensors(model: TfliteModel) -> list[int]:
    seen: dict[int, None] = {}
    for index in model.inputs:
        seen[index] = None
    for op in model.operators:
        for index in op.inputs + op.outputs:
            if index >= 0 and not model.tensors[index].is_constant:
                seen[index] = None
    return list(seen)


def _buffer_groups(model: TfliteModel, first_pass: list[Lowered], kept: set[int],
                   reads: dict[int, tuple[int, ...]]) -> dict[int, tuple[int, int]]:
    """tensor index -> (the tensor whose buffer it uses, its byte offset in that buffer): aliases, in-place
    outputs and views share one."""
    root = {t: t for t in _activation_tensors(model)}
    delta = {t: 0 for t in root}   # bytes from the tensor it points at
    last_reader = _last_readers(model, reads)
    model_inputs = set(model.inputs)
    for op, low in zip(model.operators, first_pass):
        for out_position, in_position, offset in low.views:
            source, out = op.inputs[in_position], op.outputs[out_position]
            if source in root and root[out] == out and not model.tensors[source].is_variable:
                root[out], delta[out] = source, offset
        source = low.inplace_source if low.inplace_source is not None else op.inputs[0] if op.inputs else -1
        if source not in root or not op.outputs:
            continue
        out = op.outputs[0]
        if op.opcode in ALIAS_OPS:
            root[out] = source
        elif low.inplace_ok and _can_share(model, op, source, out, root, last_reader, model_inputs | kept,
                                           low.grows_in_place):
            root[out] = source
    return {t: _find_with_delta(root, delta, t) for t in root}


def _find_with_delta(root: dict[int, int], delta: dict[int, int], t: int) -> tuple[int, int]:
    offset = 0
    while root[t] != t:
        offset += delta[t]
        t = root[t]
    return t, offset


def _find(root: dict[int, int], t: int) -> int:
    while root[t] != t:
        t = root[t]
    return t


def _can_share(model: TfliteModel, op: Operator, source: int, out: int, root: dict[int, int],
               last_reader: dict[int, int], model_inputs: set[int], grows: bool = False) -> bool:
    """An op that can run in place (elementwise ops, some convolutions) may write over its first input
    when nothing reads that buffer afterwards, the buffer is no model input or output (nor an op's kept
    state, which `model_inputs` includes), no other input of the op lives there, and the output is not
    larger (unless the op `grows` in place)."""
    group = _find(root, source)
    members = [t for t in root if _find(root, t) == group]
    if any(t in model_inputs or t in model.outputs or model.tensors[t].is_variable for t in members):
        return False
    if any(last_reader.get(t, -1) > op.index for t in members):
        return False
    if any(i != source and i in root and _find(root, i) == group for i in op.inputs):
        return False
    return grows or model.tensors[out].nbytes <= model.tensors[source].nbytes


def _last_readers(model: TfliteModel, reads: dict[int, tuple[int, ...]]) -> dict[int, int]:
    last: dict[int, int] = {}
    for op in model.operators:
        for index in op.inputs + reads.get(op.index, ()):
            last[index] = op.index
    for index in model.outputs:
        last[index] = len(model.operators)
    return last


def _buffers(model: TfliteModel, groups: dict[int, int], deltas: dict[int, int],
             kept: set[int] = frozenset(), reads: dict[int, tuple[int, ...]] | None = None) -> list[Buffer]:
    """One buffer per group, planned by the size of its member tensors (from the buffer's start to their
    end: a view's bytes before it count too) over their lifetimes."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(tensor: int, when: int) -> None:
        first[tensor] = min(first.get(tensor, when), when)
        last[tensor] = max(last.get(tensor, when), when)

    for index in model.inputs:
        touch(index, -1)
    for op in model.operators:
        for index in op.inputs + op.outputs + (reads or {}).get(op.index, ()):
            if index in groups:
                touch(index, op.index)
    for index in model.outputs:
        touch(index, len(model.operators))
    for index in groups:
        if model.tensors[index].is_variable or index in kept:   # state kept across invocations: never reused
            touch(index, -1)
            touch(index, len(model.operators))
    members: dict[int, list[int]] = {}
    for tensor in first:
        members.setdefault(groups[tensor], []).append(tensor)
    return [shared_buffer(g, [(first[t], last[t], deltas[t] + model.tensors[t].nbytes) for t in tensors],
                          max(model.tensors[t].dtype.itemsize for t in tensors))
            for g, tensors in sorted(members.items())]


def _constant_tables(model: TfliteModel, indices: list[int]) -> list[Table]:
    tables = []
    for index in indices:
        t = model.tensors[index]
        c_type = C_TYPES.get(t.type_name)
        if c_type is None or c_type == "float":
            raise TinyedgeError(f"constant '{t.name}' is {t.type_name.lower()}, which the AOT runtime cannot store: "
                                "build the model with `--runtime tflm` instead.")
        tables.append(Table(c_type, constant_name(t), tuple(int(v) for v in np.asarray(t.data).ravel()), per_line=20,
                            comment=f"{tensor_label(t)} {t.type_name.lower()}{list(t.shape)}"))
    return tables


def tensor_label(t: Tensor) -> str:
    """A tensor's name fit for a short C comment: the last two path parts of the first of the
    converter's ';'-joined fused names (e.g. 'conv2d_1/Relu')."""
    return c_comment("/".join(t.name.split(";")[0].split("/")[-2:]) or f"t{t.index}")


def _op_line(model: TfliteModel, op: Operator, low: Lowered) -> str:
    names = lambda indices: ", ".join(tensor_label(model.tensors[i]) for i in indices if i >= 0)  # noqa: E731
    comment = f"/* {op.index}: {op.kind} ({names(op.inputs)}) -> ({names(op.outputs)}) */"
    if not low.call:
        return f"  {comment} /* shares its input's bytes */"
    return f"  {comment}\n  {low.call}"


def _render(name: str, plan: MemoryPlan, **context) -> str:
    """templates/aot/NAME with the arena's planned and declared sizes (at least one byte)."""
    return render(f"aot/{name}", arena_bytes=plan.arena_bytes, arena_size=max(plan.arena_bytes, 1),
                  tflm_commit=TFLM_COMMIT, **context)


@dataclass(frozen=True)
class StateTensor:
    """A state (variable) tensor and the byte te_runtime_reset_state fills it with."""
    offset: int
    value: int
    nbytes: int
    label: str


def state_tensors(model: TfliteModel, offsets: dict[int, int], kept: set[int] = frozenset()) -> list[StateTensor]:
    """The state tensors, reset as TFLM's ResetVariableTensors does: every byte to an int8 tensor's
    zero point, to 0 for others; an op's kept outputs (its state, e.g. a noise estimate) to 0 as its
    Reset does."""
    states = []
    for index in sorted(t for t in offsets if model.tensors[t].is_variable or t in kept):
        t = model.tensors[index]
        value = int(t.zero_point[0]) & 0xFF if t.type_name == "INT8" and t.zero_point.size else 0
        states.append(StateTensor(offsets[index], value, t.nbytes, tensor_label(t)))
    return states
