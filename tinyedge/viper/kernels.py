"""The viper kernel module (te_kernels.py on the board): TFLM reference-kernel arithmetic, bit for bit.

Viper ints are machine words: 32 bits on ESP32 and RP2040, 64 on the unix port. The code below is
exact on both because no intermediate leaves int32 (the generator proves the accumulator ranges and
refuses a layer that could overflow), and because:
- SaturatingRoundingDoublingHighMul's 64-bit product is built from 16-bit limbs (`requant_lines`);
- int32 constants are read byte by byte and sign-extended (`rd32`), never through ptr32 (which
  zero-extends on 64-bit and needs alignment on armv6m);
- no literal reaches 2**30 (armv6m and xtensawin refuse such viper constants).
Every buffer goes in as `ptr8`: the arena (a bytearray), the weights and the packed int32 tables
(bytes). Each kernel takes its geometry as one packed int32 table `P`.
"""

from __future__ import annotations

import ast
import functools
import re
import textwrap
from dataclasses import dataclass
from typing import Mapping

KERNEL_MODULE = "te_kernels"
# A kernel's leading int arguments that only seed locals viper keeps in registers: the caller passes 0.
REGISTER_ARGS = ("p", "acc")


def rd32(buf: str, at: str) -> str:
    """The int32 stored little-endian at byte `at` of `buf`, sign-extended."""
    return (f"({buf}[{at}] | ({buf}[{at} + 1] << 8) | ({buf}[{at} + 2] << 16) "
            f"| ((({buf}[{at} + 3] ^ 128) - 128) << 24))")


def requant_lines(acc: str, mh: str, ml: str, shift: str, indent: str) -> list[str]:
    """TFLM's MultiplyByQuantizedMultiplier(acc, M, shift) in place on `acc`, with M = mh * 2**16 + ml
    (0 <= M < 2**31, mh and ml precomputed), inside int32: the high half of the doubled product
    comes from 16-bit limbs of acc and M, its rounding (+2**30, floor) from the carries of the parts."""
    body = [
        f"if {shift} > 0:",
        f"    {acc} = {acc} << {shift}",
        "    t_rs = 0",
        "else:",
        f"    t_rs = 0 - {shift}",
        f"t_ah = {acc} >> 16",
        f"t_al = {acc} & 65535",
        f"t_p = t_ah * {ml}",
        f"t_q = t_al * {mh}",
        f"t_lh = ((t_al >> 8) * {ml} + (((t_al & 255) * {ml}) >> 8)) >> 8",
        f"{acc} = 2 * t_ah * {mh} + (t_p >> 15) + (t_q >> 15) + (t_lh >> 15) "
        "+ (((t_p & 32767) + (t_q & 32767) + (t_lh & 32767) + 16384) >> 15)",
        "if t_rs > 0:",
        "    t_mask = ((1 << (t_rs - 1)) - 1) * 2 + 1",
        f"    t_rem = {acc} & t_mask",
        "    t_thr = t_mask >> 1",
        f"    if {acc} < 0:",
        "        t_thr += 1",
        f"    {acc} = {acc} >> t_rs",
        "    if t_rem > t_thr:",
        f"        {acc} += 1",
    ]
    return [indent + line for line in body]


def _requant_from_table(acc: str, table: str, at: str, indent: str) -> list[str]:
    """Requantize with the (mh, ml, shift) triple stored at byte `at` of `table`."""
    return [f"{indent}t_mh = {rd32(table, at)}", f"{indent}t_ml = {rd32(table, at + ' + 4')}",
            f"{indent}t_sh = {rd32(table, at + ' + 8')}"] + requant_lines(acc, "t_mh", "t_ml", "t_sh", indent)


def _store(acc: str, dst: str, indent: str) -> list[str]:
    """acc + output zero point, clamped to the activation range, stored as one byte."""
    return [f"{indent}{acc} += ozp", f"{indent}if {acc} < lo:", f"{indent}    {acc} = lo",
            f"{indent}if {acc} > hi:", f"{indent}    {acc} = hi", f"{indent}A[{dst}] = {acc}"]


def _load(buf: str, at: str, size: int) -> str:
    """The int8 (size 1) or int16 (size 2) at byte `at` of `buf`, sign-extended."""
    return f"(({buf}[{at}] ^ 128) - 128)" if size == 1 else _s16(buf, at)


def _store16(acc: str, dst: str, indent: str) -> list[str]:
    """acc + output zero point, clamped to the activation range, stored as an int16 at byte `dst`."""
    return [f"{indent}{acc} += ozp", f"{indent}if {acc} < lo:", f"{indent}    {acc} = lo",
            f"{indent}if {acc} > hi:", f"{indent}    {acc} = hi", f"{indent}A[{dst}] = {acc}",
            f"{indent}A[{dst} + 1] = {acc} >> 8"]


def _store_sized(acc: str, dst: str, indent: str, size: int) -> list[str]:
    """_store (int8 at element `dst`) or _store16 (int16 at byte `dst`)."""
    return _store(acc, dst, indent) if size == 1 else _store16(acc, dst, indent)


def _code(text: str, indent: int) -> list[str]:
    """The lines of an indented block of viper code, re-indented to start `indent` spaces in."""
    return [" " * indent + line for line in textwrap.dedent(text).strip("\n").splitlines()]


def _params(names: str) -> list[str]:
    return [f"    {name} = {rd32('P', str(4 * i))}" for i, name in enumerate(names.split())]


def _flip(region: str, count: str, indent: str) -> list[str]:
    """XOR a region of the arena with 128: int8 <-> offset binary (x + 128), in place; it is its own inverse."""
    return [f"{indent}for c in range({count}):", f"{indent}    A[{region} + c] = A[{region} + c] ^ 128"]


def _dot(indent: str) -> list[str]:
    """acc += sum(x_u * w_u) over the bytes p .. e (x_u: the input in offset binary, w_u: the weights stored
    as w + 128, at p + dd). p and acc are the kernel's first two locals, which viper keeps in registers;
    four MACs a turn."""
    return [f"{indent}e4 = e - ((e - p) & 3)",
            f"{indent}while p < e4:",
            f"{indent}    q = ptr8(p + dd)",
            *[f"{indent}    acc += ptr8(p)[{i}] * q[{i}]" for i in range(4)],
            f"{indent}    p += 4",
            f"{indent}while p < e:",
            f"{indent}    acc += ptr8(p)[0] * ptr8(p + dd)[0]",
            f"{indent}    p += 1"]


MAC_ARGS = "p: int, acc: int, A: ptr8, W: ptr8, B: ptr8, Q: ptr8, P: ptr8"


def _mac_kernel(name: str, params: str, region: str, body: list[str]) -> list[str]:
    """A multiply-accumulate kernel: p and acc first (viper keeps them in registers), its geometry read
    from P, and the input region flipped to offset binary around the body and back after it."""
    lines = ["@micropython.viper", f"def {name}({MAC_ARGS}):"]
    lines += _params(params)
    lines += _flip("src", region, "    ")
    return lines + body + _flip("src", region, "    ")


def _output(channel: str, dst: str, indent: str, input_sum: bool = False) -> list[str]:
    """acc + the channel's bias (less 128 * sum(x_u) where the input ran in offset binary), requantized
    with the channel's triple and stored."""
    centre = " - 128 * sx" if input_sum else ""
    lines = [f"{indent}acc += {rd32('B', f'4 * {channel}')}{centre}", f"{indent}qa = 12 * {channel} * pc"]
    return lines + _requant_from_table("acc", "Q", "qa", indent) + _store("acc", dst, indent)


def _dot_run(start: str, length: str, weights: str, indent: str) -> list[str]:
    """acc += the dot product of `length` arena bytes from address `start` with the weights at `weights`."""
    return [f"{indent}p = {start}", f"{indent}e = p + {length}", f"{indent}dd = {weights} - p"] + _dot(indent)


def _fully_connected() -> list[str]:
    """sum((x + off) * w) + bias = sum(x_u * w_u) - 128 * sum(x_u) + bias', bias' = bias + (off - 128) * sum(w)
    folded by the generator, sum(x_u) once per input row."""
    body = _code("""
        base_a = int(A)
        base_w = int(W)
        for b in range(batches):
            x0 = src + b * depth
            sx = 0
            for c in range(depth):
                sx += A[x0 + c]
            for o in range(n_out):
                acc = 0
        """, 4)
    body += _dot_run("base_a + x0", "depth", "base_w + o * depth", " " * 12)
    body += _output("o", "dst + b * n_out + o", " " * 12, input_sum=True)
    return _mac_kernel("fully_connected", "src dst batches depth n_out zpu ozp lo hi pc", "batches * depth", body)


_WINDOW = "src dst in_h in_w in_c out_h out_w out_c k_h k_w s_h s_w d_h d_w pad_h pad_w"


def _conv2d() -> list[str]:
    """As FULLY_CONNECTED per output pixel; a tap in the padding reads as the input zero point (zpu in
    offset binary), whose (x + off) is 0, which is exactly TFLM's skipping it. With dilation 1 across, a
    row of taps inside the input is one contiguous run of k_w * in_c bytes in both input and weights."""
    body = _code("""
        base_a = int(A)
        base_w = int(W)
        for oy in range(out_h):
            iy0 = oy * s_h - pad_h
            for ox in range(out_w):
                ix0 = ox * s_w - pad_w
                sx = 0
                for ky in range(k_h):
                    iy = iy0 + d_h * ky
                    for kx in range(k_w):
                        ix = ix0 + d_w * kx
                        if iy < 0 or iy >= in_h or ix < 0 or ix >= in_w:
                            sx += zpu * in_c
                            continue
                        x0 = src + (iy * in_w + ix) * in_c
                        for c in range(in_c):
                            sx += A[x0 + c]
                row_inside = d_w == 1 and ix0 >= 0 and ix0 + k_w <= in_w
                for oc in range(out_c):
                    acc = 0
                    for ky in range(k_h):
                        iy = iy0 + d_h * ky
                        if row_inside and iy >= 0 and iy < in_h:
        """, 4)
    body += _dot_run("base_a + src + (iy * in_w + ix0) * in_c", "k_w * in_c", "base_w + (oc * k_h + ky) * k_w * in_c",
                     " " * 24)
    body += _code("""
        continue
    for kx in range(k_w):
        ix = ix0 + d_w * kx
        w0 = ((oc * k_h + ky) * k_w + kx) * in_c
        if iy < 0 or iy >= in_h or ix < 0 or ix >= in_w:
            for c in range(in_c):
                acc += zpu * W[w0 + c]
            continue
        """, 20)
    body += _dot_run("base_a + src + (iy * in_w + ix) * in_c", "in_c", "base_w + w0", " " * 24)
    body += _output("oc", "dst + (oy * out_w + ox) * out_c + oc", " " * 16, input_sum=True)
    return _mac_kernel("conv2d", _WINDOW + " zpu ozp lo hi pc", "in_h * in_w * in_c", body)


def _depthwise_conv2d() -> list[str]:
    """Depth multiplier 1: the input in offset binary (x_u), signed weights, acc = sum(x_u * w) per channel
    plus the generator's bias' = bias + (off - 128) * sum(w); a tap in the padding reads the input zero
    point (zpu), whose (x + off) is 0, as TFLM's skipping it. A row of taps inside the input runs with
    p (input) and acc in registers; the weight sits at p + dd."""
    body = ["    base_a = int(A) + src",
              "    base_w = int(W)",
              "    step = d_w * in_c",
              "    ds = out_c - step",
              "    span = d_w * (k_w - 1)",
              "    for oy in range(out_h):",
              "        iy0 = oy * s_h - pad_h",
              "        for ox in range(out_w):",
              "            ix0 = ox * s_w - pad_w",
              "            inside_x = ix0 >= 0 and ix0 + span < in_w",
              "            for c in range(out_c):",
              "                acc = 0",
              "                for ky in range(k_h):",
              "                    iy = iy0 + d_h * ky",
              "                    w0 = ky * k_w * out_c + c",
              "                    if iy < 0 or iy >= in_h:",
              "                        for kx in range(k_w):",
              "                            acc += zpu * ((W[w0 + kx * out_c] ^ 128) - 128)",
              "                        continue",
              "                    if inside_x:",
              "                        p = base_a + (iy * in_w + ix0) * in_c + c",
              "                        e = p + k_w * step",
              "                        dd = base_w + w0 - p",
              "                        while p < e:",
              "                            acc += ptr8(p)[0] * ((ptr8(p + dd)[0] ^ 128) - 128)",
              "                            p += step",
              "                            dd += ds",
              "                        continue",
              "                    for kx in range(k_w):",
              "                        ix = ix0 + d_w * kx",
              "                        wv = (W[w0 + kx * out_c] ^ 128) - 128",
              "                        if ix < 0 or ix >= in_w:",
              "                            acc += zpu * wv",
              "                        else:",
              "                            acc += A[src + (iy * in_w + ix) * in_c + c] * wv"]
    body += _output("c", "dst + (oy * out_w + ox) * out_c + c", " " * 16)
    return _mac_kernel("depthwise_conv2d", _WINDOW + " zpu ozp lo hi pc", "in_h * in_w * in_c", body)


def _depthwise_multiplier() -> list[str]:
    """Any depth multiplier: TFLM's loop order, taps inside the input only, (x + 128 + k) * w."""
    lines = ["@micropython.viper", "def depthwise_multiplier(A: ptr8, W: ptr8, B: ptr8, Q: ptr8, P: ptr8):"]
    lines += _params(_WINDOW + " k ozp lo hi pc dm")
    lines += ["    for oy in range(out_h):",
              "        iy0 = oy * s_h - pad_h",
              "        for ox in range(out_w):",
              "            ix0 = ox * s_w - pad_w",
              "            for oc in range(out_c):",
              "                ic = oc // dm",
              "                acc = 0",
              "                for ky in range(k_h):",
              "                    iy = iy0 + d_h * ky",
              "                    if iy < 0 or iy >= in_h:",
              "                        continue",
              "                    for kx in range(k_w):",
              "                        ix = ix0 + d_w * kx",
              "                        if ix < 0 or ix >= in_w:",
              "                            continue",
              "                        acc += ((A[src + (iy * in_w + ix) * in_c + ic] ^ 128) + k) * "
              "((W[(ky * k_w + kx) * out_c + oc] ^ 128) - 128)"]
    return lines + _output("oc", "dst + (oy * out_w + ox) * out_c + oc", " " * 16)


def _signed(buf: str, at: str) -> str:
    """The int8 at byte `at` of `buf`, sign-extended."""
    return f"(({buf}[{at}] ^ 128) - 128)"


def _signed_tap(start: str, ky: str, kx: str, depth: str) -> list[str]:
    """The innermost loop of the signed-weight convolutions: acc += (x + ioff) * w over the `depth` input
    channels from `start` at input pixel (iy, ix) and filter tap (ky, kx) of channel oc; then, once the
    taps are summed, the output."""
    return _code(f"""
        x0 = {start} + (iy * in_w + ix) * in_c
        w0 = ((oc * k_h + {ky}) * k_w + {kx}) * {depth}
        for c in range({depth}):
            acc += ({_signed('A', 'x0 + c')} + ioff) * {_signed('W', 'w0 + c')}
        """, 24) + _output("oc", "dst + (oy * out_w + ox) * out_c + oc", " " * 16)


def _conv2d_grouped() -> list[str]:
    """CONV_2D with groups (TFLM's reference conv): output channel oc reads the fd input channels of its
    group oc // fpg; acc = sum((x + ioff) * w) over the taps inside the input (a tap in the padding adds 0)."""
    return _window_taps("conv2d_grouped", " ioff ozp lo hi pc fd fpg", "g0 = src + (oc // fpg) * fd") + \
        _signed_tap("g0", "ky", "kx", "fd")


def _window_taps(name: str, fields: str, setup: str) -> list[str]:
    """A convolution kernel up to its innermost loop (at 24 spaces): per output pixel and channel oc,
    `setup`, then every filter tap (ky, kx) inside the input (iy, ix); a tap in the padding is skipped."""
    lines = ["@micropython.viper", f"def {name}(A: ptr8, W: ptr8, B: ptr8, Q: ptr8, P: ptr8):"]
    lines += _params(_WINDOW + fields)
    return lines + _code(f"""
        for oy in range(out_h):
            iy0 = oy * s_h - pad_h
            for ox in range(out_w):
                ix0 = ox * s_w - pad_w
                for oc in range(out_c):
                    {setup}
                    acc = 0
                    for ky in range(k_h):
                        iy = iy0 + d_h * ky
                        if iy < 0 or iy >= in_h:
                            continue
                        for kx in range(k_w):
                            ix = ix0 + d_w * kx
                            if ix < 0 or ix >= in_w:
                                continue
        """, 4)


def _transposed_tap(index: str, position: str, stride: str, size: str, indent: int) -> list[str]:
    """`index` = the input row (or column) whose stride lands `position` on the tap, or the next tap when
    none does or it is outside the input."""
    return _code(f"""
        t = {position}
        if t < 0:
            continue
        {index} = t // {stride}
        if {index} * {stride} != t or {index} >= {size}:
            continue
        """, indent)


def _transpose_conv() -> list[str]:
    """TRANSPOSE_CONV (TFLM's reference transpose_conv), gathered per output element instead of scattered
    into a scratch buffer: output (oy, ox) takes filter tap (fy, fx) from input (iy, ix) where
    iy * s_h - pad_h + fy = oy, ix * s_w - pad_w + fx = ox; the same integer sum in another order."""
    return _transposed_taps("transpose_conv", " ioff ozp lo hi pc") + _signed_tap("src", "fy", "fx", "in_c")


def _transposed_taps(name: str, fields: str) -> list[str]:
    """A TRANSPOSE_CONV kernel up to its innermost loop (at 24 spaces): per output element, each filter
    tap (fy, fx) and the input pixel (iy, ix) it takes."""
    lines = ["@micropython.viper", f"def {name}(A: ptr8, W: ptr8, B: ptr8, Q: ptr8, P: ptr8):"]
    lines += _params(_WINDOW + fields)
    lines += _code("""
        for oy in range(out_h):
            for ox in range(out_w):
                for oc in range(out_c):
                    acc = 0
                    for fy in range(k_h):
        """, 4)
    lines += _transposed_tap("iy", "oy + pad_h - fy", "s_h", "in_h", 20) + [" " * 20 + "for fx in range(k_w):"]
    return lines + _transposed_tap("ix", "ox + pad_w - fx", "s_w", "in_w", 24)


def _clamp(var: str, lo: str, hi: str, indent: str) -> list[str]:
    return [f"{indent}if {var} < {lo}:", f"{indent}    {var} = {lo}", f"{indent}if {var} > {hi}:",
            f"{indent}    {var} = {hi}"]


def _svdf_feature(name: str, accumulators: tuple[str, ...], state_range: tuple[str, str]) -> list[str]:
    """An SVDF kernel's start: its fields, its output range, its zeroed `accumulators`, and per filter f the
    feature dot product requantized and clamped to `state_range` in `dot`."""
    lines = ["@micropython.viper", f"def {name}(A: ptr8, WF: ptr8, WT: ptr8, B: ptr8, P: ptr8):"]
    lines += _params("src state dst n_input n_filter n_memory rank izp szp ozp m1h m1l s1 m2h m2l s2")
    lines += ["    lo = -128", "    hi = 127", "    unit = 0", "    done = 0"]
    lines += [f"    {var} = 0" for var in accumulators]
    lines += _code(f"""
        for f in range(n_filter):
            dot = 0
            w0 = f * n_input
            for j in range(n_input):
                dot += {_signed('WF', 'w0 + j')} * ({_signed('A', 'src + j')} - izp)
        """, 4)
    indent = " " * 8
    return lines + requant_lines("dot", "m1h", "m1l", "s1", indent) + _clamp("dot", *state_range, indent)


def _svdf() -> list[str]:
    """int8 SVDF (TFLM's EvalIntegerSvdfReference), per filter: the feature dot product requantized and
    clamped to int8, plus the state zero point, appended to the filter's state row after shifting it left
    by one, then the time dot product; every `rank` filters' sums plus the unit's bias requantized into
    one output."""
    lines = _svdf_feature("svdf", ("acc",), ("lo", "hi"))
    indent = " " * 8
    lines += _code(f"""
        r0 = state + f * n_memory
        for j in range(n_memory - 1):
            A[r0 + j] = A[r0 + j + 1]
        A[r0 + n_memory - 1] = dot + szp
        t0 = f * n_memory
        if done == 0:
            acc = {rd32('B', '4 * unit')}
        for j in range(n_memory):
            acc += {_signed('WT', 't0 + j')} * ({_signed('A', 'r0 + j')} - szp)
        done += 1
        if done == rank:
        """, 8)
    lines += requant_lines("acc", "m2h", "m2l", "s2", indent + "    ") + _store("acc", "dst + unit", indent + "    ")
    return lines + [f"{indent}    unit += 1", f"{indent}    done = 0"]


def _s16(buf: str, at: str) -> str:
    """The int16 stored little-endian at byte `at` of `buf`, sign-extended."""
    return f"({buf}[{at}] | ({_signed(buf, f'{at} + 1')} << 8))"


def _svdf_s16() -> list[str]:
    """SVDF with int16 time weights and state (TFLM's EvalIntegerSvdfReference<int16_t>, te_svdf_s16): the
    feature dot product requantized and clamped to int16 into the newest slot of the filter's state row, then
    the time dot product, summed with the unit's bias as the C kernel does, in wrapping int32 arithmetic:
    each product (inside int32, the generator proves it) is added as its high and low 16 bits apart, and
    the sum is put back together modulo 2**32."""
    lines = _svdf_feature("svdf_s16", ("ah", "al"), ("-32768", "32767"))
    indent = " " * 8
    lines += _code(f"""
        r0 = state + 2 * f * n_memory
        for j in range(2 * n_memory - 2):
            A[r0 + j] = A[r0 + j + 2]
        dot += szp
        A[r0 + 2 * n_memory - 2] = dot
        A[r0 + 2 * n_memory - 1] = dot >> 8
        if done == 0:
            acc = {rd32('B', '4 * unit')}
            ah = acc >> 16
            al = acc & 65535
        t0 = 2 * f * n_memory
        for j in range(n_memory):
            t = {_s16('WT', 't0 + 2 * j')} * ({_s16('A', 'r0 + 2 * j')} - szp)
            ah += t >> 16
            al += t & 65535
        done += 1
        if done == rank:
            ah += al >> 16
            acc = ((((ah & 65535) ^ 32768) - 32768) << 16) + (al & 65535)
        """, 8)
    lines += requant_lines("acc", "m2h", "m2l", "s2", indent + "    ") + _store("acc", "dst + unit", indent + "    ")
    return lines + [f"{indent}    unit += 1", f"{indent}    done = 0"]


def _u16(buf: str, at: str) -> str:
    return f"({buf}[{at}] | ({buf}[{at} + 1] << 8))"


def _lut16(inp: str, bits: int, saturated: str, rounded: tuple[str, str], out: str, out_shift: int,
           indent: str) -> list[str]:
    """TFLM's int16 table interpolation (te_sigmoid16, te_tanh16): |inp| split into the table index
    (above `bits` bits) and the fraction, `saturated` from index 255 on, then the sign's own rounding
    (`rounded`: for inp >= 0, for inp < 0, of res) shifted right by `out_shift` into `out`."""
    return _code(f"""
        mag = {inp}
        if {inp} < 0:
            mag = 0 - {inp}
        uh = mag >> {bits}
        if uh >= 255:
            res = {saturated}
        else:
            ua = {_u16('L', '2 * uh')}
            res = (ua << {bits}) + (mag & {(1 << bits) - 1}) * ({_u16('L', '2 * uh + 2')} - ua)
        if {inp} >= 0:
            res = {rounded[0]}
        else:
            res = {rounded[1]}
        {out} = res >> {out_shift}
        """, len(indent))


def _sigmoid16(x: str, out: str, indent: str) -> list[str]:
    """reference_integer_ops::Logistic on int16 with TFLM's power-of-two input (te_sigmoid16): L is
    TFLM's sigmoid_table_uint16."""
    return [f"{indent}inp = {x} * 3"] + _lut16("inp", 9, "32767 << 10", ("res + 512", "(1 << 25) - res + 511"),
                                              out, 10, indent)


def _tanh16(x: str, multiplier: str, right_shift: str, out: str, indent: str) -> list[str]:
    """reference_integer_ops::Tanh on int16 (te_tanh16): the input scaled, rounded, looked up."""
    return _code(f"""
        rnd = 0
        if {right_shift} > 0:
            rnd = 1 << ({right_shift} - 1)
        inp = ({x} * {multiplier} + rnd) >> {right_shift}
        """, len(indent)) + _lut16("inp", 8, "65535 << 8",
                                                 ("res - (1 << 23) + 128", "(1 << 23) + 127 - res"), out, 8, indent)


LSTM_PARAMS = ("src hid cell dst steps n_input n_state "
               + " ".join(f"x{g}h x{g}l x{g}s r{g}h r{g}l r{g}s" for g in range(4))
               + " fmh fml fsh imh iml ish omh oml osh hzp clip tm ts sig")


def _lstm_gate(g: int, indent: str) -> list[str]:
    """Gate g's pre-activation (its input and recurrent FCs, each requantized to int16, summed), then its
    activation into a{g}: the sigmoid, or for the cell gate (2) tanh unless `sig`."""
    lines = _code(f"""
        gx = {rd32('G', f'4 * ({g} * n_state + u)')}
        w0 = ({g} * n_state + u) * n_input
        for j in range(n_input):
            gx += {_signed('W', 'w0 + j')} * {_signed('A', 'x0 + j')}
        gh = {rd32('G', f'4 * ({4 + g} * n_state + u)')}
        w0 = xw + ({g} * n_state + u) * n_state
        for j in range(n_state):
            gh += {_signed('W', 'w0 + j')} * {_signed('A', 'hid + j')}
        """, len(indent))
    lines += requant_lines("gx", f"x{g}h", f"x{g}l", f"x{g}s", indent) + _clamp("gx", "-32768", "32767", indent)
    lines += requant_lines("gh", f"r{g}h", f"r{g}l", f"r{g}s", indent) + _clamp("gh", "-32768", "32767", indent)
    lines += [f"{indent}v = gx + gh"] + _clamp("v", "-32768", "32767", indent)
    if g != 2:
        return lines + _sigmoid16("v", f"a{g}", indent)
    return (lines + [f"{indent}if sig == 1:"] + _sigmoid16("v", "a2", indent + "    ") + [f"{indent}else:"]
            + _tanh16("v", "3", "0", "a2", indent + "    "))


def _lstm() -> list[str]:
    """int8 UNIDIRECTIONAL_SEQUENCE_LSTM with an int16 cell state, as te_lstm_s8 (TFLM's lstm_eval.cc):
    per step and unit the four gates (biases with the input offsets folded in, G), the cell update with its
    clip, the new hidden value written to the output row; the hidden state copied from it after the step.
    W: the four gates' input weights, then their recurrent weights; L: TFLM's sigmoid table."""
    lines = ["@micropython.viper", "def lstm(A: ptr8, W: ptr8, G: ptr8, L: ptr8, P: ptr8):", *_params(LSTM_PARAMS)]
    lines += _code("""
        lo = -128
        hi = 127
        xw = 4 * n_state * n_input
        for step in range(steps):
            x0 = src + step * n_input
            h0 = dst + step * n_state
            for u in range(n_state):
        """, 4)
    indent = " " * 12
    for g in range(4):
        lines += _lstm_gate(g, indent)
    lines += _code(f"""
        cu = cell + 2 * u
        c = a1 * (A[cu] | ({_signed('A', 'cu + 1')} << 8))
        """, 12)
    lines += requant_lines("c", "fmh", "fml", "fsh", indent) + _clamp("c", "-32768", "32767", indent)
    lines += [f"{indent}d = a0 * a2"] + requant_lines("d", "imh", "iml", "ish", indent)
    lines += _clamp("d", "-32768", "32767", indent) + [f"{indent}c = c + d"] + _clamp("c", "-32768", "32767", indent)
    lines += [f"{indent}if clip > 0:"] + _clamp("c", "0 - clip", "clip", indent + "    ")
    lines += [f"{indent}A[cu] = c", f"{indent}A[cu + 1] = c >> 8"] + _tanh16("c", "tm", "ts", "th", indent)
    lines += [f"{indent}acc = th * a3"] + requant_lines("acc", "omh", "oml", "osh", indent)
    lines += [f"{indent}ozp = hzp"] + _store("acc", "h0 + u", indent)
    return lines + _code("""
        for u in range(n_state):
            A[hid + u] = A[h0 + u]
        """, 8)


def _pool(name: str, average: bool, size: int = 1) -> list[str]:
    """AVERAGE_POOL_2D / MAX_POOL_2D over int8 (size 1) or int16 (size 2) elements."""
    lines = ["@micropython.viper", f"def {name}(A: ptr8, P: ptr8):"]
    lines += _params(_WINDOW + " ozp lo hi")
    lines += ["    ozp = 0",
              "    for oy in range(out_h):",
              "        iy0 = oy * s_h - pad_h",
              "        y0 = 0",
              "        if iy0 < 0:",
              "            y0 = 0 - iy0",
              "        y1 = in_h - iy0",
              "        if k_h < y1:",
              "            y1 = k_h",
              "        for ox in range(out_w):",
              "            ix0 = ox * s_w - pad_w",
              "            x0 = 0",
              "            if ix0 < 0:",
              "                x0 = 0 - ix0",
              "            x1 = in_w - ix0",
              "            if k_w < x1:",
              "                x1 = k_w",
              "            for c in range(in_c):",
              "                acc = 0" if average else f"                acc = {-128 if size == 1 else -32768}",
              "                count = 0",
              "                fy = y0",
              "                while fy < y1:",
              "                    fx = x0",
              "                    while fx < x1:",
              f"                        v = {_pool_load(size)}"]
    if average:
        lines += ["                        acc += v",
                  "                        count += 1",
                  "                        fx += 1",
                  "                    fy += 1",
                  "                if count > 0:",
                  "                    if acc > 0:",
                  "                        acc = (acc + count // 2) // count",
                  "                    else:",
                  "                        acc = 0 - ((count // 2 - acc) // count)"]
    else:
        lines += ["                        if v > acc:",
                  "                            acc = v",
                  "                        fx += 1",
                  "                    fy += 1"]
    at = "(oy * out_w + ox) * out_c + c"
    lines += _store_sized("acc", f"dst + {at}" if size == 1 else f"dst + 2 * ({at})", " " * 16, size)
    return lines


def _pool_load(size: int) -> str:
    at = "((iy0 + fy) * in_w + ix0 + fx) * in_c + c"
    return f"(A[src + {at}] ^ 128) - 128" if size == 1 else _s16("A", f"src + 2 * ({at})")


BROADCAST_WALK = "xa ya dst n0 n1 n2 n3 xs0 xs1 xs2 xs3 ys0 ys1 ys2 ys3"


def _broadcast(name: str, params: str, body: list[str], size: int = 1) -> list[str]:
    """A binary elementwise kernel over up to 4 merged broadcast dims: X and Y are the arena or a
    constant's bytes; `body` (at the innermost loop's indentation) reads X[xi] and Y[yi] and stores A[d].
    Elements of `size` bytes (int16: 2): offsets and strides in bytes."""
    lines = ["@micropython.viper", f"def {name}(A: ptr8, X: ptr8, Y: ptr8, P: ptr8):", *_params(f"{BROADCAST_WALK} {params}")]
    lines += ["    d = dst",
              "    for i0 in range(n0):",
              "        for i1 in range(n1):",
              "            for i2 in range(n2):",
              "                xi = xa + i0 * xs0 + i1 * xs1 + i2 * xs2",
              "                yi = ya + i0 * ys0 + i1 * ys1 + i2 * ys2",
              "                for i3 in range(n3):"]
    return lines + body + [f"{WALK_INDENT}d += {size}", f"{WALK_INDENT}xi += xs3", f"{WALK_INDENT}yi += ys3"]


WALK_INDENT = " " * 20


def _add(name: str = "add", combine: str = "+", size: int = 1) -> list[str]:
    """ADD (SUB: `combine` "-"): both inputs rescaled onto twice the larger scale, combined, rescaled;
    int8 or int16 (`size` 2) elements."""
    body = [f"{WALK_INDENT}r1 = ({_load('X', 'xi', size)} + aoff) << lsh",
            f"{WALK_INDENT}r2 = ({_load('Y', 'yi', size)} + boff) << lsh"]
    body += requant_lines("r1", "amh", "aml", "ash", WALK_INDENT)
    body += requant_lines("r2", "bmh", "bml", "bsh", WALK_INDENT)
    body += [f"{WALK_INDENT}acc = r1 {combine} r2"]
    body += requant_lines("acc", "omh", "oml", "osh", WALK_INDENT) + _store_sized("acc", "d", WALK_INDENT, size)
    return _broadcast(name, "aoff amh aml ash boff bmh bml bsh lsh omh oml osh ozp lo hi", body, size)


def _squared_difference() -> list[str]:
    """SQUARED_DIFFERENCE: SUB's kernel with the difference squared before the output rescaling."""
    lines = _add("squared_difference", "-")
    at = lines.index(f"{WALK_INDENT}acc = r1 - r2") + 1
    return lines[:at] + [f"{WALK_INDENT}acc = acc * acc"] + lines[at:]


def _l2_normalization() -> list[str]:
    """L2_NORMALIZATION: per row the sum of squares (viper), its inverse square root `_inv_sqrt` (plain
    Python, once per row) and each offset input rescaled by it onto the output scale 1/128 (viper)."""
    lines = ["@micropython.viper", "def _l2_sum(A: ptr8, x0: int, depth: int, zp: int) -> int:",
             "    s = 0",
             "    for c in range(depth):",
             "        v = ((A[x0 + c] ^ 128) - 128) - zp",
             "        s += v * v",
             "    return s",
             "",
             "@micropython.viper",
             "def _l2_out(A: ptr8, x0: int, y0: int, depth: int, zp: int, mh: int, ml: int, sh: int):",
             "    ozp = 0",
             "    lo = -128",
             "    hi = 127",
             "    for c in range(depth):",
             "        acc = ((A[x0 + c] ^ 128) - 128) - zp"]
    lines += requant_lines("acc", "mh", "ml", "sh", " " * 8) + _store("acc", "y0 + c", " " * 8)
    return lines + ["", "def l2_normalization(A, outer, src, dst, depth, zp):",
                    "    for row in range(outer):",
                    "        m, sh = _inv_sqrt(_l2_sum(A, src + row * depth, depth, zp))",
                    "        _l2_out(A, src + row * depth, dst + row * depth, depth, zp, m >> 16, m & 65535, sh + 7)"]


INV_SQRT = '''
def _inv_sqrt(v):
    """GetInvSqrtQuantizedMultiplierExp(v, kReverseShift): (Q31 multiplier, MultiplyByQuantizedMultiplier shift)."""
    if v <= 1:
        return _I32_MAX, 0
    s = 11
    while v >= 536870912:
        v //= 4
        s += 1
    p = (32 - (len(bin(v)) - 2) - 1) // 2 - 1
    s -= p
    v <<= 2 * p
    h = v >> 1
    h = (h >> 1) + (h & 1)
    x = 268435456
    for _ in range(5):
        x3 = _sat_shl(_srdhm(_srdhm(x, x), x), 6)
        x = _sat_shl(_wrap32(_srdhm(402653184, x) - _srdhm(h, x3)), 3)
    x = _srdhm(x, 1518500250)
    if s < 0:
        x = _wrap32(x << -s)
        s = 0
    return x, -s
'''


def _lut() -> list[str]:
    return ["@micropython.viper", "def lut(A: ptr8, T: ptr8, P: ptr8):",
            *_params("src dst n"),
            "    for i in range(n):",
            "        A[dst + i] = T[A[src + i] ^ 128]"]


def _softmax() -> list[str]:
    """int8 SOFTMAX: E[-diff] holds exp_on_negative_values of the rescaled diff (0 below diff_min),
    precomputed for the 256 possible diffs; the per-row reciprocal runs in `_reciprocal` (plain
    Python, arbitrary-precision ints, once per row)."""
    lines = ["@micropython.viper", "def _softmax_sum(A: ptr8, E: ptr8, x0: int, depth: int) -> int:",
             "    mx = -128",
             "    for c in range(depth):",
             "        v = (A[x0 + c] ^ 128) - 128",
             "        if v > mx:",
             "            mx = v",
             "    s = 0",
             "    for c in range(depth):",
             "        v = (A[x0 + c] ^ 128) - 128",
             f"        e = {rd32('E', '4 * (mx - v)')}",
             "        s += (e >> 12) + (1 if (e & 4095) > 2047 else 0)",
             "    return s",
             "",
             *_softmax_out("_softmax_out", 1),
             "", "def softmax(A, E, outer, src, dst, depth):",
              "    for row in range(outer):",
              "        s = _softmax_sum(A, E, src + row * depth, depth)",
              "        scale, ex = _reciprocal(s)",
              "        _softmax_out(A, E, src + row * depth, dst + row * depth, depth, scale >> 16, scale & 65535, ex)"]
    return lines


def _softmax_out(name: str, size: int) -> list[str]:
    """The outputs of one softmax row, int8 (size 1) or int16 (size 2, at byte y0 + 2 * c): the exp of each
    diff times the row's reciprocal, shifted right by ex, plus the output zero point (the type's minimum)."""
    low, high = (-128, 127) if size == 1 else (-32768, 32767)
    lines = ["@micropython.viper",
             f"def {name}(A: ptr8, E: ptr8, x0: int, y0: int, depth: int, scale_h: int, scale_l: int, ex: int):",
             "    mx = -128",
             "    for c in range(depth):",
             "        v = (A[x0 + c] ^ 128) - 128",
             "        if v > mx:",
             "            mx = v",
             f"    ozp = {low}",
             f"    lo = {low}",
             f"    hi = {high}",
             "    for c in range(depth):",
             "        v = (A[x0 + c] ^ 128) - 128",
             f"        acc = {rd32('E', '4 * (mx - v)')}",
             "        sh = 0 - ex"]
    lines += requant_lines("acc", "scale_h", "scale_l", "sh", " " * 8)
    return lines + _store_sized("acc", "y0 + c" if size == 1 else "y0 + 2 * c", " " * 8, size)


def _softmax16() -> list[str]:
    """SOFTMAX int8 -> int16 (TFLM's int8 softmax with an int16 output: scale 1/65536, zero point -32768):
    the int8 one's sums and reciprocal, 8 bits more of the output kept."""
    return _softmax_out("_softmax_out16", 2) + [
        "", "def softmax16(A, E, outer, src, dst, depth):",
        "    for row in range(outer):",
        "        s = _softmax_sum(A, E, src + row * depth, depth)",
        "        scale, ex = _reciprocal(s)",
        "        _softmax_out16(A, E, src + row * depth, dst + 2 * row * depth, depth, scale >> 16, scale & 65535, "
        "ex - 8)"]


def _prelu() -> list[str]:
    """PRELU: Y is alpha; the input's sign picks the identity or the alpha rescaling."""
    body = [f"{WALK_INDENT}acc = ((X[xi] ^ 128) - 128) + aoff", f"{WALK_INDENT}if acc >= 0:"]
    body += requant_lines("acc", "m1h", "m1l", "s1", WALK_INDENT + "    ")
    body += [f"{WALK_INDENT}else:", f"{WALK_INDENT}    acc = acc * (((Y[yi] ^ 128) - 128) + boff)"]
    body += requant_lines("acc", "m2h", "m2l", "s2", WALK_INDENT + "    ")
    body += [f"{WALK_INDENT}lo = -128", f"{WALK_INDENT}hi = 127"] + _store("acc", "d", WALK_INDENT)
    return _broadcast("prelu", "aoff boff ozp m1h m1l s1 m2h m2l s2", body)


def _maxmin() -> list[str]:
    """MAXIMUM (mx 1) or MINIMUM (mx 0) of the raw values."""
    return _broadcast("maxmin", "mx", _code("""
        x = (X[xi] ^ 128) - 128
        y = (Y[yi] ^ 128) - 128
        if mx == 1:
            if y > x:
                x = y
        elif y < x:
            x = y
        A[d] = x
        """, 20))


def _gather_rows() -> list[str]:
    """out row i = in row R[i] (R: packed int32), `row` bytes each."""
    return ["@micropython.viper", "def gather_rows(A: ptr8, R: ptr8, P: ptr8):", *_params("src dst count row"),
            "    for i in range(count):",
            f"        x = src + {rd32('R', '4 * i')} * row",
            "        d = dst + i * row",
            "        for c in range(row):",
            "            A[d + c] = A[x + c]"]


def _copy_blocks() -> list[str]:
    """CONCATENATION, one input at a time: `outer` blocks of `block` bytes from X (the arena or a
    constant's bytes) into the arena, `stride` bytes apart."""
    return ["@micropython.viper", "def copy_blocks(A: ptr8, X: ptr8, P: ptr8):", *_params("dst src outer block stride"),
            *_code("""
                for o in range(outer):
                    d = dst + o * stride
                    x = src + o * block
                    for i in range(block):
                        A[d + i] = X[x + i]
                """, 4)]


def _resize_bilinear() -> list[str]:
    """RESIZE_BILINEAR int8 (ResizeBilinearInteger): Y and X hold per output row and column (lower, upper,
    input position - 1024 * lower) as packed int32; the weighted sum (below 2**29 in magnitude) is rounded
    half away from zero at 2**20."""
    lines = ["@micropython.viper", "def resize_bilinear(A: ptr8, Y: ptr8, X: ptr8, P: ptr8):",
             *_params("src dst batches in_h in_w out_h out_w ch"), "    d = dst",
             "    for b in range(batches):", "        img = src + b * in_h * in_w * ch", "        for y in range(out_h):"]
    lines += [f"            {name} = {rd32('Y', f'12 * y + {4 * i}')}" for i, name in enumerate(("y0", "y1", "dy"))]
    lines += ["            for x in range(out_w):"]
    lines += [f"                {name} = {rd32('X', f'12 * x + {4 * i}')}" for i, name in enumerate(("x0", "x1", "dx"))]
    return lines + _code("""
        w00 = (1024 - dy) * (1024 - dx)
        w10 = dy * (1024 - dx)
        w01 = (1024 - dy) * dx
        w11 = dy * dx
        p00 = img + (y0 * in_w + x0) * ch
        p10 = img + (y1 * in_w + x0) * ch
        p01 = img + (y0 * in_w + x1) * ch
        p11 = img + (y1 * in_w + x1) * ch
        for c in range(ch):
            s = (((A[p00 + c] ^ 128) - 128) * w00 + ((A[p10 + c] ^ 128) - 128) * w10
                 + ((A[p01 + c] ^ 128) - 128) * w01 + ((A[p11 + c] ^ 128) - 128) * w11)
            if s > 0:
                A[d] = (s + 524288) >> 20
            else:
                A[d] = 0 - ((524288 - s) >> 20)
            d += 1
        """, 16)


def _batch_matmul() -> list[str]:
    """BATCH_MATMUL int8 (reference_ops::BatchMatMul): L and R are the arena or a constant's bytes, O the
    per-batch (lhs, rhs) element offsets as packed int32; the generator proves the sums stay in int32."""
    lines = ["@micropython.viper", "def batch_matmul(A: ptr8, L: ptr8, R: ptr8, O: ptr8, P: ptr8):",
             *_params("lhs rhs dst batches rows cols depth lrs lds rds rcs loff roff ozp mh ml sh"),
             "    lo = -128", "    hi = 127", "    d = dst", "    for b in range(batches):",
             f"        lb = lhs + {rd32('O', '8 * b')}", f"        rb = rhs + {rd32('O', '8 * b + 4')}"]
    lines += _code("""
        for m in range(rows):
            for n in range(cols):
                acc = 0
                for k in range(depth):
                    acc += (((L[lb + m * lrs + k * lds] ^ 128) - 128) + loff) * (((R[rb + k * rds + n * rcs] ^ 128) - 128) + roff)
        """, 8)
    return lines + requant_lines("acc", "mh", "ml", "sh", " " * 16) + _store("acc", "d", " " * 16) + ["                d += 1"]


def _mean() -> list[str]:
    """MEAN (QuantizedMeanOrSum) over up to 3 reduced dims for each of up to 3 kept dims (merged and
    padded with size-1 dims by the generator); izc is the input zero point times the count."""
    lines = ["@micropython.viper", "def mean(A: ptr8, P: ptr8):",
             *_params("src dst k0 k1 k2 ks0 ks1 ks2 r0 r1 r2 rs0 rs1 rs2 izc mh ml sh ozp"),
             *_code("""
                lo = -128
                hi = 127
                d = dst
                for a in range(k0):
                    for b in range(k1):
                        for c in range(k2):
                            base = src + a * ks0 + b * ks1 + c * ks2
                            acc = 0
                            for x in range(r0):
                                for y in range(r1):
                                    for z in range(r2):
                                        acc += (A[base + x * rs0 + y * rs1 + z * rs2] ^ 128) - 128
                            acc -= izc
                """, 4)]
    indent = " " * 16
    return lines + requant_lines("acc", "mh", "ml", "sh", indent) + _store("acc", "d", indent) + [f"{indent}d += 1"]


def _reduce_minmax() -> list[str]:
    """REDUCE_MAX (mx 1) or REDUCE_MIN (mx 0) over MEAN's kept/reduced walk: input and output share their
    quantization, so the extreme byte is the result."""
    return ["@micropython.viper", "def reduce_minmax(A: ptr8, P: ptr8):",
            *_params("src dst k0 k1 k2 ks0 ks1 ks2 r0 r1 r2 rs0 rs1 rs2 mx"),
            *_code("""
                d = dst
                for a in range(k0):
                    for b in range(k1):
                        for c in range(k2):
                            base = src + a * ks0 + b * ks1 + c * ks2
                            best = 127 - 255 * mx
                            for x in range(r0):
                                for y in range(r1):
                                    for z in range(r2):
                                        v = (A[base + x * rs0 + y * rs1 + z * rs2] ^ 128) - 128
                                        if (mx and v > best) or (not mx and v < best):
                                            best = v
                            A[d] = best
                            d += 1
                """, 4)]


def _arg_minmax() -> list[str]:
    """ARG_MAX (mx 1) or ARG_MIN (mx 0): per (outer, inner) the index along the axis of the first extreme
    value, stored as a little-endian int32."""
    return ["@micropython.viper", "def arg_minmax(A: ptr8, P: ptr8):", *_params("src dst outer axis inner mx"),
            *_code("""
                d = dst
                for o in range(outer):
                    for j in range(inner):
                        row = src + o * axis * inner + j
                        best = (A[row] ^ 128) - 128
                        index = 0
                        for i in range(1, axis):
                            v = (A[row + i * inner] ^ 128) - 128
                            if (mx and v > best) or (not mx and v < best):
                                best = v
                                index = i
                        A[d] = index & 255
                        A[d + 1] = (index >> 8) & 255
                        A[d + 2] = (index >> 16) & 255
                        A[d + 3] = (index >> 24) & 255
                        d += 4
                """, 4)]


def _mul(name: str = "mul", size: int = 1) -> list[str]:
    """MUL (MulElementwise), int8 or int16 (`size` 2) elements."""
    body = [f"{WALK_INDENT}acc = ({_load('X', 'xi', size)} + aoff) * ({_load('Y', 'yi', size)} + boff)"]
    body += requant_lines("acc", "mh", "ml", "sh", WALK_INDENT) + _store_sized("acc", "d", WALK_INDENT, size)
    return _broadcast(name, "aoff boff mh ml sh ozp lo hi", body, size)


def _pad() -> list[str]:
    """PAD / PADV2 in 4-D: the output filled with the pad value, then each input row copied in."""
    return ["@micropython.viper", "def pad(A: ptr8, P: ptr8):",
            *_params("src dst i0 i1 i2 i3 o0 o1 o2 o3 b0 b1 b2 b3 value"),
            *_code("""
                v = value & 255
                for i in range(o0 * o1 * o2 * o3):
                    A[dst + i] = v
                for a in range(i0):
                    for b in range(i1):
                        for c in range(i2):
                            x = src + ((a * i1 + b) * i2 + c) * i3
                            d = dst + (((a + b0) * o1 + b + b1) * o2 + c + b2) * o3 + b3
                            for e in range(i3):
                                A[d + e] = A[x + e]
                """, 4)]


def _transpose(name: str = "transpose", size: int = 1) -> list[str]:
    """TRANSPOSE in 4-D: the output walked in order, the input with its strides permuted (in elements:
    int8, or int16 with `size` 2, as STRIDED_SLICE's int16 gather uses it)."""
    offset = "a * s0 + b * s1 + c * s2"
    step = "e * s3" if size == 1 else f"{size} * e * s3"
    copies = [f"A[d{f' + {k}' if k else ''}] = A[x + {step}{f' + {k}' if k else ''}]" for k in range(size)]
    return ["@micropython.viper", f"def {name}(A: ptr8, P: ptr8):",
            *_params("src dst o0 o1 o2 o3 s0 s1 s2 s3"),
            *_code(f"""
                d = dst
                for a in range(o0):
                    for b in range(o1):
                        for c in range(o2):
                            x = src + {offset if size == 1 else f"{size} * ({offset})"}
                            for e in range(o3):
                """, 4),
            *[" " * 20 + line for line in copies], " " * 20 + f"d += {size}"]


def _requantize() -> list[str]:
    """QUANTIZE int8 -> int8 (reference_ops::Requantize)."""
    lines = ["@micropython.viper", "def requantize(A: ptr8, P: ptr8):", *_params("src dst n izp mh ml sh ozp"),
             "    lo = -128", "    hi = 127", "    for i in range(n):",
             "        acc = ((A[src + i] ^ 128) - 128) - izp"]
    return lines + requant_lines("acc", "mh", "ml", "sh", " " * 8) + _store("acc", "dst + i", " " * 8)


def requant64_lines(acc: str, reduced: str, total_shift: str, indent: str) -> list[str]:
    """TFLM's MultiplyByQuantizedMultiplier(int64_t x, M, shift) of the 16x8 kernels on an int32 `acc`, in
    place: (acc * reduced + 2**(ts - 1)) >> ts with reduced (M rounded to 15 bits) and ts = 15 - shift
    precomputed (1 <= ts <= 46), from 16-bit limbs of acc so every part stays inside int32 (the generator
    proves the result does)."""
    return _code(f"""
        t_h = ({acc} >> 16) * {reduced}
        t_l = ({acc} & 65535) * {reduced}
        t_h += t_l >> 16
        t_l = t_l & 65535
        if {total_shift} >= 17:
            {acc} = (t_h + (1 << ({total_shift} - 17))) >> ({total_shift} - 16)
        elif {total_shift} == 16:
            {acc} = t_h + ((t_l + 32768) >> 16)
        else:
            {acc} = (t_h << (16 - {total_shift})) + ((t_l + (1 << ({total_shift} - 1))) >> {total_shift})
        """, len(indent))


def _output16(channel: str, dst: str, indent: str) -> list[str]:
    """A 16x8 output: acc + the channel's bias (B, int32), requantized with its row of Q — (reduced, ts, 0)
    for TFLM's int64 path (`wide`), (mh, ml, shift) for its int32 one — and stored as int16 at byte dst."""
    lines = [f"{indent}acc += {rd32('B', f'4 * {channel}')}", f"{indent}qa = 12 * {channel} * pc",
             f"{indent}if wide == 1:", f"{indent}    t_r = {rd32('Q', 'qa')}",
             f"{indent}    t_ts = {rd32('Q', 'qa + 4')}"]
    lines += requant64_lines("acc", "t_r", "t_ts", indent + "    ") + [f"{indent}else:"]
    return lines + _requant_from_table("acc", "Q", "qa", indent + "    ") + _store16("acc", dst, indent)


def _window_kernel_s16(name: str, fields: str, setup: str, tap: list[str]) -> list[str]:
    """A 16x8 window kernel: per output pixel and channel oc, `setup`, then `tap` (at 24 spaces) at every
    filter tap (ky, kx) inside the input (zero points are 0, so the padding adds nothing), then the output."""
    lines = _window_taps(name, f" ozp lo hi pc {fields} wide", setup)
    return lines + tap + _output16("oc", "dst + 2 * ((oy * out_w + ox) * out_c + oc)", " " * 16)


def _conv2d_s16() -> list[str]:
    """CONV_2D 16x8, grouped too (TFLM's reference ConvPerChannel for int16 input): output channel oc reads
    the fd input channels of its group oc // fpg."""
    return _window_kernel_s16("conv2d_s16", "fd fpg", "g0 = src + 2 * (oc // fpg) * fd", _code(f"""
        x0 = g0 + 2 * (iy * in_w + ix) * in_c
        w0 = ((oc * k_h + ky) * k_w + kx) * fd
        for c in range(fd):
            acc += {_s16('A', 'x0 + 2 * c')} * {_signed('W', 'w0 + c')}
        """, 24))


def _depthwise_conv2d_s16() -> list[str]:
    """DEPTHWISE_CONV_2D 16x8 (DepthwiseConvPerChannel for int16 input), any depth multiplier dm."""
    return _window_kernel_s16("depthwise_conv2d_s16", "dm", "ic = oc // dm", _code(f"""
        x0 = src + 2 * ((iy * in_w + ix) * in_c + ic)
        acc += {_s16('A', 'x0')} * {_signed('W', '(ky * k_w + kx) * out_c + oc')}
        """, 24))


def _transpose_conv_s16() -> list[str]:
    """TRANSPOSE_CONV 16x8, gathered per output element as `transpose_conv` (TFLM scatters into int64)."""
    lines = _transposed_taps("transpose_conv_s16", " ozp lo hi pc wide")
    lines += _code(f"""
        x0 = src + 2 * (iy * in_w + ix) * in_c
        w0 = ((oc * k_h + fy) * k_w + fx) * in_c
        for c in range(in_c):
            acc += {_s16('A', 'x0 + 2 * c')} * {_signed('W', 'w0 + c')}
        """, 24)
    return lines + _output16("oc", "dst + 2 * ((oy * out_w + ox) * out_c + oc)", " " * 16)


def _fully_connected_s16() -> list[str]:
    """FULLY_CONNECTED 16x8."""
    lines = ["@micropython.viper", "def fully_connected_s16(A: ptr8, W: ptr8, B: ptr8, Q: ptr8, P: ptr8):"]
    lines += _params("src dst batches depth n_out ozp lo hi pc wide")
    lines += _code(f"""
        for b in range(batches):
            x0 = src + 2 * b * depth
            for o in range(n_out):
                acc = 0
                w0 = o * depth
                for j in range(depth):
                    acc += {_s16('A', 'x0 + 2 * j')} * {_signed('W', 'w0 + j')}
        """, 4)
    return lines + _output16("o", "dst + 2 * (b * n_out + o)", " " * 12)


def _requantize_int() -> list[str]:
    """QUANTIZE between int8 and int16, and from them to int32 (isz: 1 or 2 bytes, osz: 1, 2 or 4;
    reference_ops::Requantize; an int32 output is stored unclamped, the generator proves it in range)."""
    lines = ["@micropython.viper", "def requantize_int(A: ptr8, P: ptr8):",
             *_params("src dst n isz osz izp mh ml sh ozp lo hi")]
    lines += _code(f"""
        for i in range(n):
            if isz == 1:
                acc = {_load('A', 'src + i', 1)}
            else:
                acc = {_s16('A', 'src + 2 * i')}
            acc -= izp
        """, 4)
    lines += requant_lines("acc", "mh", "ml", "sh", " " * 8)
    lines += [" " * 8 + "if osz == 1:"] + _store("acc", "dst + i", " " * 12) + [" " * 8 + "elif osz == 2:"]
    return lines + _store16("acc", "dst + 2 * i", " " * 12) + [" " * 8 + "else:"] + _code("""
        acc += ozp
        for b in range(4):
            A[dst + 4 * i + b] = acc >> (8 * b)
        """, 12)


def _leaky_relu_s16() -> list[str]:
    """LEAKY_RELU int16 (te_leaky_relu_s16): the identity or the |alpha| rescaling, negated for alpha < 0."""
    lines = ["@micropython.viper", "def leaky_relu_s16(A: ptr8, P: ptr8):",
             *_params("src dst n izp ozp imh iml ish amh aml ash neg"), "    lo = -32768", "    hi = 32767",
             "    for i in range(n):", f"        acc = {_s16('A', 'src + 2 * i')} - izp", "        if acc >= 0:"]
    lines += requant_lines("acc", "imh", "iml", "ish", " " * 12) + [" " * 8 + "else:"]
    lines += requant_lines("acc", "amh", "aml", "ash", " " * 12)
    lines += [" " * 12 + "if neg == 1:", " " * 16 + "acc = 0 - acc"]
    return lines + _store16("acc", "dst + 2 * i", " " * 8)


RECIPROCAL = '''
_I32_MAX = 2147483647


def _wrap32(x):
    return ((x + 2147483648) & 4294967295) - 2147483648


def _srdhm(a, b):
    if a == b == -2147483648:
        return _I32_MAX
    ab = a * b
    if ab >= 0:
        return (ab + 1073741824) >> 31
    return -((-ab - 1 + 1073741824) >> 31)


def _sat_shl(x, e):
    t = (1 << (31 - e)) - 1
    if x > t:
        return _I32_MAX
    if x < -t:
        return -2147483648
    return x << e


def _reciprocal(s):
    """GetReciprocal(sum_of_exps, 12): (shifted_scale, the output's right shift)."""
    hp1 = 32 - len(bin(s)) + 2
    x = _wrap32((s << hp1) - 2147483648)
    half = (x + _I32_MAX + (1 if x + _I32_MAX >= 0 else -1))
    half = half // 2 if half >= 0 else -((-half) // 2)
    r = _wrap32(1515870810 + _srdhm(half, -1010580540))
    for _ in range(3):
        r = _wrap32(r + _sat_shl(_srdhm(r, _wrap32(536870912 - _srdhm(half, r))), 2))
    return _sat_shl(r, 1), (12 - hp1) + 31 - 8
'''


def kernel_source() -> str:
    """The whole te_kernels.py module."""
    parts = ['"""Generated by tinyedge: the viper kernels of the model (TFLM reference arithmetic). Do not edit."""',
             "import micropython", RECIPROCAL.strip("\n"), INV_SQRT.strip("\n")]
    for lines in (_fully_connected(), _conv2d(), _depthwise_conv2d(), _depthwise_multiplier(), _pool("average_pool", True),
                  _pool("max_pool", False), _add(), _lut(), _softmax(), _copy_blocks(), _mean(), _reduce_minmax(), _arg_minmax(), _mul(), _pad(),
                  _transpose(), _requantize(), _add("sub", "-"), _maxmin(), _gather_rows(), _prelu(),
                  _conv2d_grouped(), _transpose_conv(), _svdf(), _lstm(), _svdf_s16(),
                  _add("add16", "+", 2), _add("sub16", "-", 2), _mul("mul16", 2), _pool("average_pool16", True, 2),
                  _pool("max_pool16", False, 2), _conv2d_s16(), _depthwise_conv2d_s16(), _fully_connected_s16(),
                  _requantize_int(), _leaky_relu_s16(), _transpose("transpose16", 2), _transpose_conv_s16(),
                  _softmax16(), _resize_bilinear(), _batch_matmul(), _squared_difference(),
                  _l2_normalization()):
        parts.append("\n".join(lines))
    return "\n\n\n".join(parts) + "\n"


class KernelContractError(Exception):
    """A bug, not a user error: the generator called a viper kernel with arguments or P fields it does not
    declare, or without ones it does."""


@dataclass(frozen=True)
class KernelSignature:
    """What a kernel of te_kernels.py takes, read from its own text: its arguments (name, annotation) and
    the fields it reads from its packed int32 table P, in order."""
    name: str
    args: tuple[tuple[str, str], ...]
    params: tuple[str, ...]


def _p_offset(node: ast.AST) -> int | None:
    """The smallest constant byte index `P[i]` the expression reads, if any."""
    offsets = [n.slice.value for n in ast.walk(node) if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name)
               and n.value.id == "P" and isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, int)]
    return min(offsets) if offsets else None


def _signature(node: ast.FunctionDef) -> KernelSignature:
    args = tuple((a.arg, ast.unparse(a.annotation) if a.annotation else "") for a in node.args.args)
    params: list[str] = []
    for statement in node.body:
        offset = _p_offset(statement.value) if isinstance(statement, ast.Assign) else None
        if offset is None or len(statement.targets) != 1 or not isinstance(statement.targets[0], ast.Name):
            break
        if offset != 4 * len(params):
            raise KernelContractError(f"viper kernel {node.name} reads P field {statement.targets[0].id} at byte "
                                      f"{offset}, not {4 * len(params)}")
        params.append(statement.targets[0].id)
    return KernelSignature(node.name, args, tuple(params))


@functools.cache
def kernel_signatures() -> dict[str, KernelSignature]:
    """Every function of te_kernels.py, by name, as its text declares it."""
    tree = ast.parse(kernel_source())
    return {node.name: _signature(node) for node in tree.body if isinstance(node, ast.FunctionDef)}


def _signature_of(kernel: str) -> KernelSignature:
    signature = kernel_signatures().get(kernel)
    if signature is None:
        raise KernelContractError(f"te_kernels.py has no kernel {kernel}")
    return signature


def _check_names(kernel: str, what: str, declared: tuple[str, ...], given: Mapping[str, object]) -> None:
    missing = [name for name in declared if name not in given]
    unknown = [name for name in given if name not in declared]
    if missing or unknown:
        raise KernelContractError(
            f"viper kernel {kernel} takes {what} ({' '.join(declared)}); the generator "
            + "; ".join(part for part in (f"left out {', '.join(missing)}" if missing else "",
                                          f"gave unknown {', '.join(unknown)}" if unknown else "") if part))


def packed_params(kernel: str, values: Mapping[str, int]) -> list[int]:
    """The kernel's P table from its fields by name, in the order the kernel reads them."""
    declared = _signature_of(kernel).params
    _check_names(kernel, "the P fields", declared, values)
    return [int(values[name]) for name in declared]


def call_text(kernel: str, args: Mapping[str, str]) -> str:
    """`k.kernel(...)` with each argument given by name (its Python text) put where the kernel declares it;
    the register seeds (REGISTER_ARGS) are passed 0."""
    names = [name for name, _ in _signature_of(kernel).args]
    _check_names(kernel, "the arguments", tuple(name for name in names if name not in REGISTER_ARGS), args)
    return f"k.{kernel}({', '.join('0' if name in REGISTER_ARGS else args[name] for name in names)})"


def _top_level_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.FunctionDef):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    return []


def kernels_for(model_source: str) -> str:
    """te_kernels.py with only the kernels a model module calls (`k.name(`) and what they use, in the
    whole module's order: the module is the largest thing on a board's heap, and most models need few."""
    source = kernel_source()
    lines = source.splitlines()
    tree = ast.parse(source)
    defined = {name: node for node in tree.body for name in _top_level_names(node)}
    wanted, pending = set(), set(re.findall(r"\bk\.(\w+)\(", model_source))
    while pending:
        name = pending.pop()
        if name in wanted or name not in defined:
            continue
        wanted.add(name)
        pending |= {n.id for n in ast.walk(defined[name]) if isinstance(n, ast.Name) and n.id in defined}
    kept = []
    for node in tree.body:
        names = _top_level_names(node)
        if names and not set(names) & wanted:
            continue
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        kept.append("\n".join(lines[start - 1:node.end_lineno]))
    return "\n\n\n".join(kept) + "\n"
