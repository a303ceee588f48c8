"""SignalDelay (int16), as TFLM's signal/micro/kernels/delay.cc: each row of the input (its last
dimension) delayed by `delay_length` samples from call to call. The history is the op's own state
array (static RAM outside the arena), zeroed by RESET_STATE as TFLM's Reset refills it with zeros."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import CallData
from tinyedge.ops.signal_common import VIPER_REFUSAL, option, require_tensor_types
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SignalDelay", "signal", ("int16 (state: int16 history)",), viper=VIPER_REFUSAL,
                      viper_variants=()),)


def prepare(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("INT16",), ("INT16",))
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    delay = option(op, "delay_length")
    frame = in_t.shape[-1] if in_t.shape else 1
    require(delay > 0 and frame > 0 and out_t.size == in_t.size, op, "has no delay or an output of another size")
    rows = in_t.size // frame
    return CallData("te_signal_delay", ("{out0}", "{in0}", "{p}state", rows, frame, delay), state=("int16_t", rows * delay))
