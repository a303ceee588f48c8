"""SignalOverlapAdd (int16), as TFLM's signal/src/overlap_add.cc: each row's frames added, saturating,
into a running sum of frame_size samples, frame_step samples out per frame. The running sums are the
op's own state array, zeroed by RESET_STATE."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import CallData
from tinyedge.ops.signal_common import VIPER_REFUSAL, option, require_tensor_types
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SignalOverlapAdd", "signal", ("int16 (state: int16 sums)",), viper=VIPER_REFUSAL,
                      viper_variants=()),)

TENSOR_TYPE_INT16 = 7   # the "T" option: TensorType.INT16


def prepare(model: TfliteModel, op: Operator) -> CallData:
    require(option(op, "T") == TENSOR_TYPE_INT16, op, "is not the int16 variant (its float32 one is not compiled)")
    require_tensor_types(model, op, ("INT16",), ("INT16",))
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    require(len(in_t.shape) >= 2, op, "has an input that is not frames of samples")
    n_frames, frame_size = in_t.shape[-2], in_t.shape[-1]
    step = option(op, "frame_step")
    rows = in_t.size // (n_frames * frame_size)
    require(1 <= step <= frame_size and out_t.size == rows * n_frames * step, op,
            "has a step outside 1..its frame size or an output that is not a step per frame")
    return CallData("te_signal_overlap_add", ("{out0}", "{in0}", "{p}state", rows, n_frames, frame_size, step),
                    state=("int16_t", rows * frame_size))
