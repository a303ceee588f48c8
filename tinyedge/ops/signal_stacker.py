"""SignalStacker (int16), as TFLM's signal/micro/kernels/stacker.cc: frames of `num_channels` samples
stacked with `stacker_left_context` frames before and `stacker_right_context` after (the first frame
repeated to fill the left context), one stack every `stacker_step` frames; its second output says
whether this call made one. The frames held are the op's own state array, emptied by RESET_STATE."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import CallData
from tinyedge.ops.signal_common import VIPER_REFUSAL, option, require_tensor_types
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SignalStacker", "signal", ("int16 (state: int16 frames)",), viper=VIPER_REFUSAL,
                      viper_variants=()),)


def prepare(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("INT16",), ("INT16", "BOOL"))
    channels, left = option(op, "num_channels"), option(op, "stacker_left_context")
    width = left + option(op, "stacker_right_context") + 1
    step = option(op, "stacker_step")
    require(channels > 0 and left >= 0 and 1 <= step <= width, op, "has a step outside 1..its stack's width")
    require(model.tensors[op.inputs[0]].size == channels and model.tensors[op.outputs[0]].size == width * channels,
            op, "has tensors that do not match its channels and context")
    held = width * channels   # at most a full stack is held (as TFLM's circular buffer)
    require(held < 32768, op, "holds more than 32,767 samples")
    return CallData("te_signal_stacker", ("{out0}", "{out1}", "{in0}", "{p}state", channels, left, width, step),
                    state=("int16_t", 2 + held))
