"""SignalEnergy (signal/src/energy.cc): re^2 + im^2 of the complex bins from `start_index` to
`end_index` (bins outside are written as 0: TFLM leaves them as they were)."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import CallData
from tinyedge.ops.signal_common import VIPER_REFUSAL, option, require_tensor_types
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SignalEnergy", "signal", ("int16->uint32",), viper=VIPER_REFUSAL, viper_variants=()),)


def prepare(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("INT16",), ("UINT32",))
    bins = model.tensors[op.outputs[0]].size
    start, end = option(op, "start_index"), option(op, "end_index")
    require(0 <= start <= end <= bins and 2 * bins <= model.tensors[op.inputs[0]].size, op,
            "has a bin range outside its spectrum")
    return CallData("te_signal_energy", ("{out0}", "{in0}", start, end, bins))
