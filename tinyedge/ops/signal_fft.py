"""SignalFftAutoScale, SignalRfft and SignalIrfft (int16), as TFLM's signal library computes them.

FftAutoScale shifts the frame left until its largest magnitude fills 15 bits and outputs the shift.
Rfft is the 16-bit fixed-point real FFT TFLM wraps (kiss_fft with FIXED_POINT=16, kiss_fftr): a complex
FFT of half the length over the even/odd sample pairs, decimation in time by the radix stages 4, 2, 3
and 5 (each stage divides its inputs by its radix in Q15, so the output is the spectrum
divided by the FFT length), then the split of that into the real signal's bins; Irfft joins the bins
back and runs the inverse with the conjugate twiddles (kiss_fftri). The radix plan and the
Q15 twiddles (round(32767 cos), round(32767 sin), in double as the reference computes them) are made
here, at generation time, and go to flash."""

from __future__ import annotations

import math

from tinyedge.aot.lowering import require
from tinyedge.ops.opdata import CallData, ConstArray
from tinyedge.ops.signal_common import VIPER_REFUSAL, option, require_tensor_types
from tinyedge.ops.support import OpSupport
from tinyedge.tflite_model import Operator, TfliteModel

SUPPORTS = (OpSupport("SignalFftAutoScale", "signal", ("int16",), viper=VIPER_REFUSAL, viper_variants=()),
            OpSupport("SignalIrfft", "signal", ("int16",), viper=VIPER_REFUSAL, viper_variants=()),
            OpSupport("SignalRfft", "signal", ("int16",), viper=VIPER_REFUSAL, viper_variants=()))

TENSOR_TYPE_INT16 = 7   # the Rfft's "T" option: TensorType.INT16
MAX_RADIX = 5   # TFLM's kiss_fft runs larger primes with a heap buffer TFLM does not have (it crashes)
Q15_MAX = 32767


def radix_plan(n: int) -> list[int]:
    """{radix, remaining length} pairs: powers of 4 first, then 2, then odd primes (kiss_fft's order)."""
    plan, radix, limit = [], 4, math.floor(math.sqrt(n))
    while True:
        while n % radix:
            radix = 2 if radix == 4 else 3 if radix == 2 else radix + 2
            if radix > limit:
                radix = n
        n //= radix
        plan += [radix, n]
        if n <= 1:
            return plan


def q15_rotation(phase: float) -> tuple[int, int]:
    return math.floor(0.5 + Q15_MAX * math.cos(phase)), math.floor(0.5 + Q15_MAX * math.sin(phase))


def twiddles(n: int, inverse: bool = False) -> list[int]:
    """e^(-/+2 pi i k / n) for k < n, as interleaved Q15 {cos, sin}."""
    pi, sign = 3.141592653589793, -1 if inverse else 1
    return [v for k in range(n) for v in q15_rotation(sign * (-2 * pi * k / n))]


def split_twiddles(n: int, inverse: bool = False) -> list[int]:
    """The rotations that split a half-length complex FFT of n points into the real spectrum (or join it)."""
    sign = -1 if inverse else 1
    return [v for k in range(n // 2)
            for v in q15_rotation(sign * (-3.14159265358979323846264338327 * ((k + 1) / n + 0.5)))]


def _prepare_auto_scale(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("INT16",), ("INT16", "INT32"))
    return CallData("te_signal_fft_auto_scale", ("{out0}", "{out1}", "{in0}", model.tensors[op.outputs[0]].size))


def _fft_plan(op: Operator, inverse: bool) -> tuple[int, tuple[ConstArray, ...]]:
    """(fft_length, the radix plan and twiddle tables) of an int16 Rfft or Irfft."""
    require(option(op, "T") == TENSOR_TYPE_INT16, op, "is not the int16 variant (its int32 and float32 ones are not "
                                                       "compiled)")
    fft_length = option(op, "fft_length")
    require(fft_length >= 4 and fft_length % 2 == 0, op, "has an FFT length that is odd or tiny")
    n = fft_length // 2
    plan = radix_plan(n)
    require(max(plan[0::2]) <= MAX_RADIX, op, f"has an FFT length with a prime factor above {MAX_RADIX}, which TFLM's "
                                               "kiss_fft cannot run either")
    return fft_length, (ConstArray("int16_t", "radix", tuple(plan)),
                        ConstArray("int16_t", "twiddles", tuple(twiddles(n, inverse))),
                        ConstArray("int16_t", "split", tuple(split_twiddles(n, inverse))))


def _prepare_rfft(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("INT16",), ("INT16",))
    fft_length, arrays = _fft_plan(op, inverse=False)
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    input_length, bins, n = in_t.shape[-1], out_t.shape[-1] // 2, fft_length // 2
    frames = in_t.size // input_length
    require(input_length <= fft_length, op, "has frames longer than its FFT")
    require(bins == n + 1 and frames * bins * 2 == out_t.size, op, "has an output that is not fft_length / 2 + 1 "
                                                                     "bins per frame")
    return CallData("te_signal_rfft_s16", ("{out0}", "{in0}", "&{p}params", "{p}radix", "{p}twiddles", "{p}split",
                                           "(int16_t *)te_scratch"),
                    arrays, "te_rfft_params_t", "params", (fft_length, input_length, frames, bins),
                    scratch_bytes=2 * fft_length)


def _prepare_irfft(model: TfliteModel, op: Operator) -> CallData:
    require_tensor_types(model, op, ("INT16",), ("INT16",))
    fft_length, arrays = _fft_plan(op, inverse=True)
    in_t, out_t = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    bins, length, n = in_t.shape[-1] // 2, out_t.shape[-1], fft_length // 2
    frames = in_t.size // (2 * bins) if bins else 0
    require(bins == n + 1 and length == fft_length and frames * length == out_t.size, op,
            "has frames that are not fft_length / 2 + 1 bins in and fft_length samples out")
    return CallData("te_signal_irfft_s16", ("{out0}", "{in0}", "&{p}params", "{p}radix", "{p}twiddles", "{p}split",
                                            "(int16_t *)te_scratch"),
                    arrays, "te_irfft_params_t", "params", (fft_length, bins, frames, length), scratch_bytes=4 * n)


PREPARE = {"SignalFftAutoScale": _prepare_auto_scale, "SignalRfft": _prepare_rfft, "SignalIrfft": _prepare_irfft}


def prepare(model: TfliteModel, op: Operator) -> CallData:
    return PREPARE[op.kind](model, op)
