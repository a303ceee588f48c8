"""Residual blocks fused into one row-streamed op, so a block never holds its input and its first
convolution's whole output at once (ResNet's peak: two same-size tensors alive together).

The pattern: CONV_2D (any window, stride and SAME/VALID padding) -> CONV_2D (stride 1) -> ADD of that with
the block's input x, or with a CONV_2D of x (the "shortcut", e.g. 1x1 stride 2), each intermediate read by
the next op alone. The block runs where the ADD stands, one output row at a time (firmware/aot/te_residual.c):
the first conv's rows go into a band of the second conv's k_h rows in te_scratch, each computed once (on DSP
cores a ring, read through row pointers by te_dsp_conv2d_row, so no row is moved); the
second conv's row, the shortcut's row and the ADD's row follow, and the row is stored, over x's own bytes
when no later row reads them (checked here for the block's strides). Every call is the op's own kernel
(its lowering, as it renders alone) on whole rows: the same int32 sums and requantization in
another order, bit for bit. The compiler plans with and without fusion and keeps the smaller memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyedge.aot.lowering import Lowered, Lowering, PointerOf, Table, op_prefix, table, uses_dsp
from tinyedge.aot.quant import same_or_valid_padding
from tinyedge.ops import add as add_op
from tinyedge.ops.broadcast import broadcast_geometry
from tinyedge.tflite_model import PADDINGS, Operator, TfliteModel

RESIDUAL_FILES = ("te_residual.h", "te_residual.c")
# The kernels a conv of a block may render to (its lowering with its output apart from its input).
ROW_KERNELS = ("te_conv2d(", "te_dsp_conv2d(", "te_dsp_pointwise_conv2d(")


class NotFusable(Exception):
    """A block whose convolution lowers to a kernel the row loop cannot call (the compiler then runs it op by op)."""


@dataclass(frozen=True)
class ResidualBlock:
    conv1: Operator
    conv2: Operator
    shortcut: Operator | None   # None: the ADD reads x itself
    add: Operator
    x: int                      # the block's input tensor

    @property
    def inner(self) -> tuple[Operator, ...]:
        """The ops the block computes before (and inside) its ADD."""
        return (self.conv1, self.conv2) + ((self.shortcut,) if self.shortcut else ())


def find_blocks(model: TfliteModel) -> list[ResidualBlock]:
    """Every residual block of the model the fused kernel covers (see the module's docstring)."""
    producer = {t: op for op in model.operators for t in op.outputs}
    readers: dict[int, list[Operator]] = {}
    for op in model.operators:
        for t in set(op.inputs):
            readers.setdefault(t, []).append(op)
    blocks, used = [], set()
    for add in model.operators:
        if add.kind != "ADD" or not _plain_add(model, add):
            continue
        for position in (0, 1):
            block = _block_at(model, add, position, producer, readers)
            if block is not None and not {op.index for op in (*block.inner, add)} & used:
                blocks.append(block)
                used |= {op.index for op in (*block.inner, add)}
                break
    return blocks


def _plain_add(model: TfliteModel, add: Operator) -> bool:
    tensors = [model.tensors[t] for t in (*add.inputs, *add.outputs)]
    return (len(add.inputs) == 2 and all(t.type_name == "INT8" and not t.is_constant and not t.is_variable
                                         for t in tensors)
            and len({t.shape for t in tensors}) == 1 and len(tensors[0].shape) == 4 and tensors[0].shape[0] == 1)


def _block_at(model: TfliteModel, add: Operator, position: int, producer: dict[int, Operator],
              readers: dict[int, list[Operator]]) -> ResidualBlock | None:
    def only_feeds(tensor: int, op: Operator) -> bool:
        return [r.index for r in readers.get(tensor, [])] == [op.index] and tensor not in model.outputs

    y2, other = add.inputs[position], add.inputs[1 - position]
    conv2 = producer.get(y2)
    if conv2 is None or not _row_conv(model, conv2) or not only_feeds(y2, add) or _stride(conv2) != 1:
        return None
    y1 = conv2.inputs[0]
    conv1 = producer.get(y1)
    if conv1 is None or not _row_conv(model, conv1) or not only_feeds(y1, conv2):
        return None
    x = conv1.inputs[0]
    if model.tensors[x].is_variable or model.tensors[x].is_constant:
        return None
    if other == x:
        return ResidualBlock(conv1, conv2, None, add, x)
    shortcut = producer.get(other)
    if shortcut is None or not _row_conv(model, shortcut) or shortcut.inputs[0] != x or not only_feeds(other, add):
        return None
    return ResidualBlock(conv1, conv2, shortcut, add, x)


def _row_conv(model: TfliteModel, op: Operator) -> bool:
    """An int8 CONV_2D (not grouped, dilation 1, SAME/VALID, constant filter) of a batch-1 NHWC tensor."""
    if op.kind != "CONV_2D":
        return False
    in_t, filter_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]], model.tensors[op.outputs[0]]
    o = op.options
    return (in_t.type_name == out_t.type_name == "INT8" and not out_t.is_variable and len(in_t.shape) == 4
            and in_t.shape[0] == 1 and filter_t.data is not None and filter_t.shape[3] == in_t.shape[3]
            and (int(o.dilationHFactor), int(o.dilationWFactor)) == (1, 1)
            and PADDINGS.get(o.padding) in ("SAME", "VALID"))


def _stride(op: Operator) -> int:
    return int(op.options.strideH)


class _Renamed:
    """A PointerOf giving some tensors other C expressions (the block's row pointers)."""

    def __init__(self, base: PointerOf, names: dict[int, str]):
        self.base, self.names = base, names
        self.dsp = getattr(base, "dsp", False)
        self.probing = getattr(base, "probing", True)
        self.offsets = getattr(base, "offsets", {})

    def __call__(self, index: int) -> str:
        return self.names[index] if index in self.names else self.base(index)


@dataclass(frozen=True)
class _Geometry:
    """Rows of each tensor of a block, as its kernels walk them."""
    out_h: int
    out_row: int       # bytes of one output row (also the second conv's and the shortcut's)
    x_row: int
    x_h: int
    y1_row: int
    y1_h: int
    band_rows: int


def _geometry(model: TfliteModel, block: ResidualBlock) -> _Geometry:
    _, x_h, x_w, x_c = model.tensors[block.x].shape
    _, y1_h, y1_w, y1_c = model.tensors[block.conv1.outputs[0]].shape
    _, out_h, out_w, out_c = model.tensors[block.add.outputs[0]].shape
    k2 = model.tensors[block.conv2.inputs[1]].shape[1]
    return _Geometry(out_h, out_w * out_c, x_w * x_c, x_h, y1_w * y1_c, y1_h, min(k2, y1_h))


def _rows_read(model: TfliteModel, op: Operator, oy: int) -> int:
    """The first input row that output row `oy` of convolution `op` reads."""
    in_h, k_h = model.tensors[op.inputs[0]].shape[1], model.tensors[op.inputs[1]].shape[1]
    out_h = model.tensors[op.outputs[0]].shape[1]
    return max(oy * _stride(op) - same_or_valid_padding(in_h, k_h, _stride(op), 1, out_h), 0)


def writes_over_input_safely(model: TfliteModel, block: ResidualBlock) -> bool:
    """Whether output row r may be stored over x's bytes from x's start: after it, no later row of the
    block reads an input byte below the bytes rows 0..r took."""
    g = _geometry(model, block)
    if g.out_h * g.out_row > g.x_h * g.x_row:
        return False
    k2 = model.tensors[block.conv2.inputs[1]].shape[1]
    pad2 = same_or_valid_padding(g.y1_h, k2, 1, 1, g.out_h)
    computed = 0   # conv1 rows computed so far
    for r in range(g.out_h):
        computed = max(computed, min(r - pad2 + k2, g.y1_h))
        later = [_rows_read(model, block.conv1, computed)] if computed < g.y1_h else []
        if r + 1 < g.out_h:
            later.append(_rows_read(model, block.shortcut, r + 1) if block.shortcut else r + 1)
        if (r + 1) * g.out_row > min(later, default=g.x_h) * g.x_row:
            return False
    return True


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def render_block(block: ResidualBlock, model: TfliteModel, conv: Lowering, ptr: PointerOf) -> Lowered:
    """The block's C (a row loop in the ADD's place), its tables and scratch: the convolutions' own scratch
    (their im2col columns) first, then the band of the first conv's rows, the second conv's row and the
    shortcut's row. On DSP cores the band is a ring the convolutions read through row pointers
    (te_dsp_conv2d_row); elsewhere the kernels take row windows over a band kept in order (te_band_advance)."""
    if uses_dsp(ptr):
        ring = _ring_convs(block, model, conv, ptr)
        if ring is not None:
            return _render(block, model, ptr, ring, _ring_loop)
    return _render(block, model, ptr, _band_convs(block, model, conv, ptr), _band_loop)


def _band_convs(block: ResidualBlock, model: TfliteModel, conv: Lowering, ptr: PointerOf) -> list[Lowered]:
    """The convolutions' own kernels on row windows (`w`, `w2`) over rows of x and of the band."""
    g = _geometry(model, block)
    x_rows = f"{ptr(block.x)} + (int32_t)iy * {g.x_row}"
    band_row = f"band + (int32_t)(hi - lo) * {g.y1_row}"
    y1, y2 = block.conv1.outputs[0], block.conv2.outputs[0]
    convs = [_row_call(conv, model, block.conv1, _Renamed(ptr, {block.x: x_rows, y1: band_row}), "w"),
             _row_call(conv, model, block.conv2, _Renamed(ptr, {y1: "band", y2: "y2"}), "w2")]
    if block.shortcut:
        names = {block.x: x_rows, block.shortcut.outputs[0]: "s"}
        convs.append(_row_call(conv, model, block.shortcut, _Renamed(ptr, names), "w"))
    return convs


def _row_call(conv: Lowering, model: TfliteModel, op: Operator, ptr: _Renamed, window: str) -> Lowered:
    """The conv's own lowering, called on the row window `window` instead of its whole one."""
    low = conv(model, op, ptr)
    whole = f"&{op_prefix(op)}win,"
    if not low.call.startswith(ROW_KERNELS) or low.call.count(whole) != 1:
        raise NotFusable(f"operator {op.index} renders to {low.call.split('(')[0]}, which a fused block cannot call")
    low.call = low.call.replace(whole, f"&{window},")
    return low


def _ring_convs(block: ResidualBlock, model: TfliteModel, conv: Lowering, ptr: PointerOf) -> list[Lowered] | None:
    """The convolutions' te_dsp.c kernels as te_dsp_conv2d_row calls on `rows`, or None when one of them
    does not lower to te_dsp.c's convolution."""
    g = _geometry(model, block)
    outputs = {block.conv1: f"ring + (int32_t)(hi % {g.band_rows}) * {g.y1_row}", block.conv2: "y2",
               block.shortcut: "s"}
    convs = []
    for op in block.inner:
        low = conv(model, op, _Renamed(ptr, {op.inputs[0]: "rows", op.outputs[0]: outputs[op]}))
        if low.call.startswith("te_dsp_conv2d("):
            low.call = low.call.replace("te_dsp_conv2d(", "te_dsp_conv2d_row(", 1)
        elif low.call.startswith("te_dsp_pointwise_conv2d(") and low.call.endswith(");"):
            low.call = "te_dsp_conv2d_row(" + low.call[len("te_dsp_pointwise_conv2d("):-2] + ", 0);"
        else:
            return None
        convs.append(low)
    return convs


def _band_loop(block: ResidualBlock, model: TfliteModel, ptr: PointerOf, calls: list[str], at: dict[str, int],
               add_call: str) -> list[str]:
    g = _geometry(model, block)
    return [f"    int8_t *const band = te_scratch + {at['band']};",
            *_row_buffers(block, at),
            "    te_window_t w, w2;",
            "    te_dim r, iy, need, lo = 0, hi = 0;",
            f"    for (r = 0; r < {g.out_h}; ++r) {{",
            f"      need = te_band_advance(&w2, &{op_prefix(block.conv2)}win, r, band, {g.y1_row}, &lo, &hi);",
            "      for (; hi < need; ++hi) {",
            f"        iy = te_row_window(&w, &{op_prefix(block.conv1)}win, hi);",
            f"        {calls[0]}",
            "      }",
            f"      {calls[1]}",
            *([f"      iy = te_row_window(&w, &{op_prefix(block.shortcut)}win, r);",
               f"      {calls[2]}"] if block.shortcut else []),
            f"      {add_call}",
            "    }"]


def _ring_loop(block: ResidualBlock, model: TfliteModel, ptr: PointerOf, calls: list[str], at: dict[str, int],
               add_call: str) -> list[str]:
    g = _geometry(model, block)
    x = ptr(block.x)
    k_max = max(model.tensors[op.inputs[1]].shape[1] for op in block.inner)
    return [f"    int8_t *const ring = te_scratch + {at['band']};",
            *_row_buffers(block, at),
            f"    const int8_t *rows[{k_max}];",
            "    te_dim r, hi = 0, need;",
            f"    for (r = 0; r < {g.out_h}; ++r) {{",
            f"      need = te_rows_end(&{op_prefix(block.conv2)}win, r);",
            "      for (; hi < need; ++hi) {",
            f"        te_row_pointers(rows, &{op_prefix(block.conv1)}win, hi, {x}, {g.x_row}, 0);",
            f"        {calls[0]}",
            "      }",
            f"      te_row_pointers(rows, &{op_prefix(block.conv2)}win, r, ring, {g.y1_row}, {g.band_rows});",
            f"      {calls[1]}",
            *([f"      te_row_pointers(rows, &{op_prefix(block.shortcut)}win, r, {x}, {g.x_row}, 0);",
               f"      {calls[2]}"] if block.shortcut else []),
            f"      {add_call}",
            "    }"]


def _row_buffers(block: ResidualBlock, at: dict[str, int]) -> list[str]:
    """The second conv's and the shortcut's output rows in te_scratch."""
    return [f"    int8_t *const y2 = te_scratch + {at['y2']};",
            *([f"    int8_t *const s = te_scratch + {at['s']};"] if block.shortcut else [])]


def _render(block: ResidualBlock, model: TfliteModel, ptr: PointerOf, convs: list[Lowered], loop) -> Lowered:
    g = _geometry(model, block)
    y2 = block.conv2.outputs[0]
    at = {"band": _align4(max(low.scratch_bytes for low in convs))}
    at["y2"] = at["band"] + _align4(g.band_rows * g.y1_row)
    at["s"] = at["y2"] + _align4(g.out_row)
    scratch = at["s"] + (_align4(g.out_row) if block.shortcut else 0)
    x, out = ptr(block.x), ptr(block.add.outputs[0])
    other = {block.shortcut.outputs[0]: "s"} if block.shortcut else {block.x: f"{x} + (int32_t)r * {g.x_row}"}
    add_tables, add_call = _row_add(block, model, ptr, {y2: "y2", **other}, f"{out} + (int32_t)r * {g.out_row}",
                                    g.out_row)
    ops = ", ".join(str(op.index) for op in (*block.inner, block.add))
    lines = [f"{{ /* residual block (ops {ops}) row by row: te_residual.h */",
             *loop(block, model, ptr, [low.call for low in convs], at, add_call), "  }"]
    tables = [t for low in convs for t in low.tables] + add_tables
    return Lowered(tables, "\n".join(lines), inplace_ok=writes_over_input_safely(model, block), scratch_bytes=scratch,
                   inplace_source=block.x, reads=(block.x,), fused=tuple(op.kind for op in block.inner))


def _row_add(block: ResidualBlock, model: TfliteModel, ptr: PointerOf, names: dict[int, str], out: str,
             count: int) -> tuple[list[Table], str]:
    """The ADD's own kernel on one row (its parameters as the op computes them)."""
    data = add_op.prepare(model, block.add)
    prefix = op_prefix(block.add)
    a, b = (names[t] for t in block.add.inputs)
    params = Table(data.params_type, f"{prefix}params", data.params, struct=True)
    if data.dsp_kernel and uses_dsp(ptr):
        return [params], f"te_{data.dsp_kernel}({out}, {a}, {b}, {count}, &{prefix}params);"
    geometry = table("int32_t", f"{prefix}rowgeom", broadcast_geometry((count,), (count,), (count,)))
    return [geometry, params], f"te_{data.kernel}({out}, {a}, {b}, {prefix}rowgeom, &{prefix}params, 0u);"
