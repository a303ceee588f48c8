"""SignalWindow (TFLM's signal library, signal/src/window.cc): each sample times its window coefficient,
shifted right by the `shift` option and saturated to int16; the window repeats over longer inputs."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import CallData
from tinyedge.ops.signal_common import VIPER_REFUSAL, option, require_tensor_types
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SignalWindow", "signal", ("int16",), viper=VIPER_REFUSAL, viper_variants=()),)


def prepare(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("INT16", "INT16"), ("INT16",))
    size, window_len = model.tensors[op.inputs[0]].size, model.tensors[op.inputs[1]].size
    require(window_len > 0 and size % window_len == 0, op, "has an input that is not whole windows")
    return CallData("te_signal_window", ("{out0}", "{in0}", "{in1}", size, window_len, option(op, "shift")))
