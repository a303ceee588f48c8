"""SignalFilterBankSpectralSubtraction and SignalPCAN (signal/src/filter_bank_spectral_subtraction.cc,
pcan_argc_fixed.cc): the noise estimate smoothed across invocations and subtracted from each channel,
then per-channel automatic gain from that estimate. The estimate is the subtraction's state: its second
output tensor, kept in the arena for the program's life and zeroed by RESET_STATE (as TFLM's Reset)."""

from __future__ import annotations

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import CallData
from tinyedge.ops.signal_common import VIPER_REFUSAL, option, options, require_tensor_types
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SignalFilterBankSpectralSubtraction", "signal", ("uint32 (state: uint32 noise estimate)",),
                      viper=VIPER_REFUSAL, viper_variants=()),
            OpSupport("SignalPCAN", "signal", ("uint32",), viper=VIPER_REFUSAL, viper_variants=()))

SUBTRACTION_OPTIONS = ("num_channels", "smoothing", "one_minus_smoothing", "min_signal_remaining",
                       "alternate_smoothing", "alternate_one_minus_smoothing", "smoothing_bits",
                       "spectral_subtraction_bits")   # te_spectral_subtraction_params_t's order, then clamping


def _spectral_subtraction(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("UINT32",), ("UINT32", "UINT32"))
    values = [option(op, name) for name in SUBTRACTION_OPTIONS] + [int(bool(options(op).get("clamping", False)))]
    channels = values[0]
    require(all(model.tensors[i].size == channels for i in (op.inputs[0], *op.outputs[:2])), op,
            "has tensors that do not match its channels")
    # The noise estimate lives in output 1 (kept): the kernel updates it in place.
    return CallData("te_signal_spectral_subtraction", ("{out0}", "{out1}", "{out1}", "{in0}", "&{p}params"),
                    params_type="te_spectral_subtraction_params_t", params=tuple(values), kept_outputs=(1,))


def _pcan(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("UINT32", "UINT32", "INT16"), ("UINT32",))
    lut = model.tensors[op.inputs[2]]
    channels = model.tensors[op.inputs[0]].size
    require(lut.is_constant and lut.size >= 4 * 32 - 6 + 3, op, "has a gain table that is not a constant of "
                                                                 "4 entries per octave")
    require(model.tensors[op.inputs[1]].size == channels, op, "has a noise estimate of another size")
    return CallData("te_signal_pcan", ("{out0}", "{in0}", "{in1}", "{in2}", channels, option(op, "snr_shift")))


def prepare(model: TfliteModel, op: Operator) -> CallData:
    return _spectral_subtraction(model, op) if op.kind == "SignalFilterBankSpectralSubtraction" else _pcan(model, op)
