"""SignalFramer (int16), as TFLM's signal/micro/kernels/framer.cc: each row's new samples (its last
dimension, `frame_step` per frame) cut into frames of `frame_size` across invocations, prefilled with
frame_size - frame_step zeros when `prefill`; its second output says whether every frame was complete.
The samples held are the op's own state array, back to the prefilled state on RESET_STATE."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import CallData
from tinyedge.ops.signal_common import VIPER_REFUSAL, option, options, require_tensor_types
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SignalFramer", "signal", ("int16 (state: int16 samples)",), viper=VIPER_REFUSAL,
                      viper_variants=()),)


def prepare(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("INT16",), ("INT16", "BOOL"))
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    frame_size, step = option(op, "frame_size"), option(op, "frame_step")
    require(frame_size >= 1 and 1 <= step <= frame_size and in_t.shape, op, "has a step outside 1..its frame size")
    width = in_t.shape[-1]
    rows, n_frames = in_t.size // width, width // step
    require(n_frames * step == width and out_t.size == rows * n_frames * frame_size, op,
            "has tensors that are not whole steps and frames")
    capacity = -(-frame_size // step) * step
    prefill = frame_size - step if bool(options(op).get("prefill", False)) else 0
    require((1 + capacity) * rows < 32768, op, "holds more than 32,767 samples")
    return CallData("te_signal_framer", ("{out0}", "{out1}", "{in0}", "{p}state", rows, n_frames, frame_size, step,
                                         prefill, capacity), state=("int16_t", (1 + capacity) * rows))
