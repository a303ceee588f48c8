"""The typed results of an op module's `prepare(model, op)`: what the op computes, decided once at
generation time, for the AOT C emitter (tinyedge.aot.opdata) and the viper emitter to render.

- `LutData`: an int8 -> int8 op whose output depends on the input byte alone, as its 256-entry table.
- `BroadcastData`: a binary elementwise op over a broadcast walk (tinyedge.ops.broadcast's geometry).
- `PadData`: a 4-D constant pad.
- `TransposeConvData`: TRANSPOSE_CONV's geometry (te_window_t's fields, the output as the window's
  output) and requantization.
- `RowGatherData`: a layout op that copies whole rows (runs of bytes) of its input, in any order
  (resizing, gathering, depth/space rearrangements).
- `ReduceData`: a reduction over some dimensions by max or min (TFLM's ReduceGeneric), on the
  kept/reduced geometry MEAN uses.
- `RowNormData`: an op that normalizes each row of the last dimension (L2_NORMALIZATION).
- `CallData`: one kernel call over the op's tensors, its own constant arrays and options struct (the
  signal-library ops and the integer glue around them, te_signal.c).
- `ArgData`: ARG_MAX/ARG_MIN's walk: the index of the first largest (smallest) value along one axis.
- `GatherData`: a layout op that walks its output in order and reads its input at an offset plus
  strides (slices, permutations), in 4 dimensions.
- `PoolData`, `ConcatData`, `AliasData` (RESHAPE/SQUEEZE), `MeanData`, `SoftmaxData`, `Softmax16Data`,
  `SigmoidTableData` (int16 LOGISTIC/TANH), `RequantizeData`, `FloatQuantizeData`, `SvdfData`, `LstmData`:
  one op's (or op pair's) own preparation.
- `BlockCopyData`: an op with several inputs or outputs whose every output byte is an input byte
  (SPLIT, SPLIT_V, UNPACK, PACK): strided block copies, one per (input, output) pair.
- `ResizeBilinearData`: RESIZE_BILINEAR's geometry and its integer interpolation points.
- `BatchMatMulData`: BATCH_MATMUL's geometry, rescaling and per-batch operand offsets.
- `ConvData`: CONV_2D (grouped too) or DEPTHWISE_CONV_2D: the window, the requantization and bias each kind of
  target runs it with (`ConvTarget`: portable, and cores with the Arm DSP extension), the weights per output
  channel, the in-place kernel and the FULLY_CONNECTED it may compute as its outputs come (on DSP cores).
- `FullyConnectedData`: FULLY_CONNECTED's shape, requantization and bias per kind of target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyedge.tflite_model import Operator


@dataclass(frozen=True)
class LutData:
    table: tuple[int, ...]       # out = table[in + 128]


@dataclass(frozen=True)
class BroadcastData:
    kernel: str                  # the kernel's name without its runtime's prefix, e.g. "sub_s8"
    geometry: tuple[int, ...]    # {ndim, sizes, a_strides, b_strides}
    params_type: str = ""        # a struct of tinyedge.ops.cstructs, or "" for none
    params: tuple[int, ...] = ()
    flag: int = 0                # one extra small argument (MAXIMUM: 1, MINIMUM: 0)
    dsp_kernel: str = ""         # te_dsp.c's short form (same shapes, no broadcast), on cores with the DSP extension


@dataclass(frozen=True)
class GatherData:
    out_dims: tuple[int, int, int, int]
    in_strides: tuple[int, int, int, int]   # input elements per step of each output dimension (may be negative)
    in_offset: int                          # input elements before the first one read


@dataclass(frozen=True)
class PadData:
    in_dims: tuple[int, int, int, int]
    out_dims: tuple[int, int, int, int]
    before: tuple[int, int, int, int]       # leading padding per dimension
    value: int


@dataclass(frozen=True)
class RowGatherData:
    rows: tuple[int, ...]       # output row i is input row rows[i]
    row_bytes: int


@dataclass(frozen=True)
class ConstArray:
    c_type: str
    name: str                    # without the op's prefix
    values: tuple[int, ...]


@dataclass(frozen=True)
class CallData:
    """`kernel(args)`: each arg is an integer or C text in which {inK}/{outK} stand for the op's K-th
    input/output tensor and {p} for the op's prefix of its `arrays` and `params` (e.g. "&{p}params")."""
    kernel: str
    args: tuple[str | int, ...]
    arrays: tuple[ConstArray, ...] = ()
    params_type: str = ""        # a struct of tinyedge.ops.cstructs
    params_name: str = "params"
    params: tuple[int, ...] = ()
    scratch_bytes: int = 0
    kept_outputs: tuple[int, ...] = ()   # output positions whose bytes persist across invocations (state)
    state: tuple[str, int] = ("", 0)     # (C type, count): the op's own zero-reset state array, "{p}state"
    inplace_ok: bool = False


@dataclass(frozen=True)
class RowNormData:
    kernel: str                  # the kernel's name without its runtime's prefix, e.g. "l2_normalization_s8"
    outer: int                   # rows
    depth: int                   # values per row (the last dimension)
    input_zero_point: int


@dataclass(frozen=True)
class ArgData:
    outer: int        # elements before the axis
    axis_size: int
    inner: int        # elements after it
    is_max: bool


@dataclass(frozen=True)
class ReduceData:
    geometry: tuple[int, ...]   # {kept count, reduced count, kept sizes, kept strides, reduced sizes, reduced strides}
    is_max: bool


@dataclass(frozen=True)
class TransposeConvData:
    window: tuple[int, ...]                  # te_window_t's fields
    multipliers: tuple[tuple[int, int], ...]
    input_offset: int
    output_offset: int
    activation_range: tuple[int, int]


@dataclass(frozen=True)
class PoolData:
    kernel: str                              # "average_pool" or "max_pool"
    window: tuple[int, ...]                  # te_window_t's fields
    activation_range: tuple[int, int]


@dataclass(frozen=True)
class ConcatData:
    outer: int                               # blocks per input (the dims before the axis)
    row_bytes: int                           # bytes of one output row (the dims from the axis)
    block_bytes: tuple[int, ...]             # bytes of each input's block, in input order


@dataclass(frozen=True)
class AliasData:
    """The output is the input's bytes under another shape: no code, unless the input is a constant."""
    copy_bytes: int                          # bytes to copy from a constant input (0: shares its input's buffer)


@dataclass(frozen=True)
class MeanData:
    kept_sizes: tuple[int, ...]
    kept_strides: tuple[int, ...]
    reduced_sizes: tuple[int, ...]
    reduced_strides: tuple[int, ...]
    count: int                               # elements averaged into each output
    input_zero_point: int
    multiplier: int
    shift: int
    output_zero_point: int
    element_type: str = "int8"               # or "int16" (te_mean_s16)

    @property
    def geometry(self) -> tuple[int, ...]:
        """te_mean_s8's `geom` table."""
        return (len(self.kept_sizes), len(self.reduced_sizes), *self.kept_sizes, *self.kept_strides,
                *self.reduced_sizes, *self.reduced_strides)


@dataclass(frozen=True)
class SoftmaxData:
    outer: int
    depth: int
    multiplier: int
    left_shift: int
    diff_min: int
    output_type: str                         # "int8", or "int16" (int8 -> int16)


@dataclass(frozen=True)
class Softmax16Data:
    """SOFTMAX int16 -> int16: TFLM's two 513-entry LUTs (computed at its Prepare) and the input rescaling."""
    outer: int
    depth: int
    input_multiplier: int
    input_left_shift: int
    exp_lut: tuple[int, ...]
    one_over_one_plus_x_lut: tuple[int, ...]


@dataclass(frozen=True)
class SigmoidTableData:
    """LOGISTIC or TANH int16 (`kernel` "logistic_s16" / "tanh_s16"): TFLM's sigmoid table, interpolated."""
    kernel: str
    input_multiplier: int                    # 0: a power-of-two input scale
    input_left_shift: int
    table: tuple[int, ...]                   # sigmoid_table_uint16


@dataclass(frozen=True)
class RequantizeData:
    """QUANTIZE between integer types: out = requantized(in - in_zp) + out_zp."""
    count: int
    input_zero_point: int
    multiplier: int
    shift: int
    output_zero_point: int
    input_bytes: int = 1
    output_bytes: int = 1


@dataclass(frozen=True)
class FloatQuantizeData:
    """QUANTIZE from float32 (`kernel` "quantize_f32_s8") or DEQUANTIZE to float32 ("dequantize_s8_f32")."""
    kernel: str
    count: int
    scale: float
    zero_point: int


@dataclass(frozen=True)
class SvdfData:
    params: tuple[int, ...]                  # te_svdf_params_t's fields
    folds: tuple[int, ...] | None            # per filter: the input and state offsets times the weight sums (int8)
    int16_state: bool = False                # int16 time weights and state (te_svdf_s16)


@dataclass(frozen=True)
class LstmData:
    params: tuple[int, ...]                  # te_lstm_s8's parameters, in lstm_parameters' order
    biases: tuple[tuple[int, ...], ...]      # the eight folded gate biases (16x8: the four input biases)
    wide: tuple[int, ...] | None             # the weights as SMLAD pairs (DSP cores), None where rows are not 4n long
    sigmoid: tuple[int, ...]                 # TFLM's sigmoid_table_uint16
    activations: str = "int8"                # or "int16" (16x8: the four input biases, int64; te_lstm_s16)


@dataclass(frozen=True)
class BlockCopy:
    """`outer` blocks of `block` bytes from input `src` (its position in the op's inputs) to output `dst`."""
    dst: int
    src: int
    outer: int
    block: int
    dst_offset: int     # bytes
    dst_stride: int
    src_offset: int
    src_stride: int


@dataclass(frozen=True)
class BlockCopyData:
    copies: tuple[BlockCopy, ...]


@dataclass(frozen=True)
class ResizeBilinearData:
    geometry: tuple[int, ...]   # te_resize_bilinear_t's fields: batches in_h in_w out_h out_w channels
    ys: tuple[int, ...]         # per output row: y0, y1, input_y - 1024 * y0
    xs: tuple[int, ...]         # per output column: x0, x1, input_x - 1024 * x0


@dataclass(frozen=True)
class BatchMatMulData:
    params: tuple[int, ...]     # te_batch_matmul_t's fields
    offsets: tuple[int, ...]    # per output matrix: its lhs and its rhs element offset


@dataclass(frozen=True)
class Requant:
    """te_requant_t's values (its tables' names aside): one multiplier and shift, or one per output channel."""
    multipliers: tuple[tuple[int, int], ...]
    input_offset: int                        # the kernel's (0 where the bias has it folded in)
    output_offset: int
    activation_range: tuple[int, int]
    bounded: bool = False                    # TE_REQUANT_BOUNDED: every accumulator, shifted left, is below 2^30


@dataclass(frozen=True)
class ConvTarget:
    """How one kind of target runs a convolution or FULLY_CONNECTED: its requantization and its bias."""
    requant: Requant
    bias: tuple[int, ...] | None = None      # the op's own bias table (input offset folded in, or pruned channels'
                                             # bias tamed); None: the op's bias tensor as it is (or none)


@dataclass(frozen=True)
class ConvData:
    kind: str                                # "conv2d", "conv2d_grouped" or "depthwise_conv2d"
    window: tuple[int, ...]                  # te_window_t's fields
    portable: ConvTarget
    dsp: ConvTarget                          # on cores with the Arm DSP extension
    weights: np.ndarray | None = field(default=None, compare=False)   # per output channel; None: not constant
    groups: int = 1
    depth_multiplier: int = 1
    inplace_kernel: str = ""                 # the kernel that may write over the input, and its scratch bytes
    inplace_scratch: int = 0
    streamed_fc: Operator | None = field(default=None, compare=False)   # the FULLY_CONNECTED computed as the
    fc_requant: Requant | None = None                                   # outputs come (DSP cores), its requant


@dataclass(frozen=True)
class FullyConnectedData:
    batches: int
    accum_depth: int
    out_depth: int
    portable: ConvTarget
    dsp: ConvTarget
    weights: np.ndarray | None = field(default=None, compare=False)   # per output row; None: not constant
    streamed_by: int | None = None           # the conv whose te_dsp_conv2d_fc computes it on DSP cores


OpData = (LutData | BroadcastData | GatherData | PadData | RowGatherData | TransposeConvData | PoolData | ConcatData
          | AliasData | MeanData | SoftmaxData | Softmax16Data | SigmoidTableData | RequantizeData | FloatQuantizeData
          | SvdfData | LstmData | ReduceData | ArgData | RowNormData | CallData | BlockCopyData | ResizeBilinearData | BatchMatMulData
          | ConvData | FullyConnectedData)
