"""SignalFilterBank, SignalFilterBankSquareRoot and SignalFilterBankLog, as TFLM's signal library:
the mel filter bank as weighted and complementary sums (uint64), its rounded integer square root shifted
down by the FFT's auto-scale bits, and the scaled natural log (int16). The filter tables are the op's
constant inputs (flash); the options come from its flexbuffer."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import CallData
from tinyedge.ops.signal_common import VIPER_REFUSAL, option, require_tensor_types
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SignalFilterBank", "signal", ("uint32->uint64",), viper=VIPER_REFUSAL, viper_variants=()),
            OpSupport("SignalFilterBankLog", "signal", ("uint32->int16",), viper=VIPER_REFUSAL, viper_variants=()),
            OpSupport("SignalFilterBankSquareRoot", "signal", ("uint64->uint32",), viper=VIPER_REFUSAL,
                      viper_variants=()))


def _filter_bank(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("UINT32", "INT16", "INT16", "INT16", "INT16", "INT16"), ("UINT64",))
    channels = option(op, "num_channels")
    tables = [model.tensors[i] for i in op.inputs[1:6]]
    require(all(t.is_constant for t in tables), op, "has filter tables computed at run time")
    starts, weight_starts, widths = (t.data.ravel() for t in tables[2:])
    bins, weights = model.tensors[op.inputs[0]].size, tables[0].size
    require(model.tensors[op.outputs[0]].size == channels and all(t.size >= channels + 1 for t in tables[2:]), op,
            "has tables or an output that do not match its channels")
    for c in range(channels + 1):   # every tap reads inside the energy bins and the weight tables
        require(0 <= starts[c] and starts[c] + widths[c] <= bins and 0 <= weight_starts[c]
                and weight_starts[c] + widths[c] <= min(weights, tables[1].size), op, "has a filter outside its tables")
    return CallData("te_signal_filter_bank", ("{out0}", "{in0}", "{in1}", "{in2}", "{in3}", "{in4}", "{in5}", channels))


def _square_root(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("UINT64", "INT32"), ("UINT32",))
    return CallData("te_signal_filter_bank_sqrt", ("{out0}", "{in0}", "{in1}", model.tensors[op.inputs[0]].shape[0]))


def _log(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("UINT32",), ("INT16",))
    return CallData("te_signal_filter_bank_log", ("{out0}", "{in0}", model.tensors[op.inputs[0]].shape[0],
                                                  option(op, "output_scale"), option(op, "input_correction_bits")))


PREPARE = {"SignalFilterBank": _filter_bank, "SignalFilterBankSquareRoot": _square_root, "SignalFilterBankLog": _log}


def prepare(model: TfliteModel, op: Operator) -> CallData:
    return PREPARE[op.kind](model, op)
