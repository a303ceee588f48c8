/* AOT kernels of the audio front end: TFLM's signal-library ops (SignalWindow, SignalFftAutoScale,
 * SignalRfft, SignalEnergy, SignalFilterBank, SignalFilterBankSquareRoot,
 * SignalFilterBankSpectralSubtraction, SignalPCAN, SignalFilterBankLog) with the integer arithmetic of
 * tflite-micro's signal/src (and, for the RFFT, the 16-bit fixed-point kiss_fft it wraps), plus the plain
 * integer ops such graphs use around them (CAST, int32 ADD/MUL/DIV/MINIMUM/MAXIMUM).
 *
 * Options, tables (twiddles, radix factors) and geometry come from tinyedge/ops/signal_*.py at generation
 * time. Arrays marked TE_CONST may live in program memory (AVR). The spectral subtraction's noise
 * estimate is its second output tensor, kept in the arena for the program's life (the compiler never
 * reuses its bytes) and zeroed by te_runtime_reset_state. */
#ifndef TE_SIGNAL_H
#define TE_SIGNAL_H

#include <stdint.h>

#include "te_params.h"
#include "te_pgm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SignalWindow: out = saturate16((in * window) >> shift), the window repeated every window_len samples. */
void te_signal_window(int16_t *out, const int16_t *in, const int16_t *window, int32_t count, int32_t window_len,
                      int32_t shift);

/* SignalFftAutoScale: in shifted left so its largest magnitude fills 15 bits; *scale_bits the shift. */
void te_signal_fft_auto_scale(int16_t *out, int32_t *scale_bits, const int16_t *in, int32_t count);

/* SignalRfft (int16): each frame of p->input_length samples, zero-padded to p->fft_length, to
 * p->output_bins complex bins (fft_length / 2 + 1, interleaved real, imaginary). The half-length complex
 * FFT runs by the radix stages of `factors` ({radix, remaining length} pairs) with `twiddles`
 * (fft_length / 2 of them) and the split into the real spectrum with `split_twiddles` (fft_length / 4),
 * each a Q15 {cos, sin} pair (TE_CONST). work: fft_length int16 for the padded frame (the half-length
 * spectrum is computed in `out` and split there in place). */
void te_signal_rfft_s16(int16_t *out, const int16_t *in, const te_rfft_params_t *p, const int16_t *factors,
                       const int16_t *twiddles, const int16_t *split_twiddles, int16_t *work);

/* SignalIrfft (int16): each frame of p->input_bins complex bins (fft_length / 2 + 1) to
 * p->output_length (fft_length) samples, by the inverse of te_signal_rfft_s16's steps with the
 * conjugate twiddles. work: fft_length / 2 complex int16. */
void te_signal_irfft_s16(int16_t *out, const int16_t *in, const te_irfft_params_t *p, const int16_t *factors,
                        const int16_t *twiddles, const int16_t *split_twiddles, int16_t *work);

/* SignalEnergy: out[i] = re^2 + im^2 of complex bin i for start <= i < end; 0 elsewhere (count bins). */
void te_signal_energy(uint32_t *out, const int16_t *spectrum, int32_t start, int32_t end, int32_t count);

/* SignalFilterBank: the triangular mel filters as weighted (weights) and complementary (unweights)
 * sums over the energy bins; channel c starts at bin starts[c] and weight weight_starts[c], widths[c]
 * wide. num_channels outputs (channel 0 of the tables is only the unweighted half of output 0). */
void te_signal_filter_bank(uint64_t *out, const uint32_t *in, const int16_t *weights, const int16_t *unweights,
                           const int16_t *starts, const int16_t *weight_starts, const int16_t *widths,
                           int32_t num_channels);

/* SignalFilterBankSquareRoot: out = isqrt(in) >> *scale_bits (rounded integer square root). */
void te_signal_filter_bank_sqrt(uint32_t *out, const uint64_t *in, const int32_t *scale_bits, int32_t count);

/* SignalFilterBankSpectralSubtraction: a smoothed noise estimate (kept in `noise` across invocations)
 * subtracted from each channel, with a floor of min_signal_remaining of the signal; noise_out gets the
 * estimate too (it may be `noise` itself). */
void te_signal_spectral_subtraction(uint32_t *out, uint32_t *noise_out, uint32_t *noise, const uint32_t *in,
                                    const te_spectral_subtraction_params_t *p);

/* SignalPCAN: per-channel automatic gain from the noise estimate through the gain table, then the
 * shrink (x^2/4 below 2, x - 1 above). */
void te_signal_pcan(uint32_t *out, const uint32_t *in, const uint32_t *noise, const int16_t *gain_lut,
                    int32_t count, int32_t snr_shift);

/* SignalFilterBankLog: out = min(output_scale * ln(in << correction_bits), 32767), 0 for inputs <= 1. */
void te_signal_filter_bank_log(int16_t *out, const uint32_t *in, int32_t count, int32_t output_scale,
                               int32_t correction_bits);

/* SignalDelay (int16): each of `rows` rows of `frame` samples delayed by `delay` samples across
 * invocations; history holds each row's last `delay` samples (zeroed on reset). */
void te_signal_delay(int16_t *out, const int16_t *in, int16_t *history, int32_t rows, int32_t frame, int32_t delay);

/* SignalStacker (int16): frames of `channels` samples stacked `width` frames deep (left context + 1 +
 * right context; the first frame repeated left-context times), out every `step` frames once `width` are
 * in; *valid says whether out was written. state: [0] samples held, [1] first frame seen, then the
 * width * channels samples (zeroed on reset). */
void te_signal_stacker(int16_t *out, uint8_t *valid, const int16_t *in, int16_t *state, int32_t channels,
                       int32_t left_context, int32_t width, int32_t step);

/* SignalFramer (int16): each of `rows` rows of n_frames * step new samples cut into n_frames frames of
 * frame_size samples, step apart, across invocations; *valid is 0 when a frame was not yet complete
 * (that frame's output left as it was). state per row: [0] samples held less `prefill` (so zeroed state
 * is the prefilled one: prefill zeros held), then `capacity` samples. */
void te_signal_framer(int16_t *out, uint8_t *valid, const int16_t *in, int16_t *state, int32_t rows,
                      int32_t n_frames, int32_t frame_size, int32_t step, int32_t prefill, int32_t capacity);

/* SignalOverlapAdd (int16): each row's frames of frame_size samples added (saturating) into the row's
 * running sum (`sums`, frame_size per row, zeroed on reset), frame_step samples out per frame. */
void te_signal_overlap_add(int16_t *out, const int16_t *in, int16_t *sums, int32_t rows, int32_t n_frames,
                           int32_t frame_size, int32_t frame_step);

/* CAST between integer types of 1, 2 or 4 bytes (C conversions: sign-extend, truncate). */
void te_cast(void *out, const void *in, int32_t count, int8_t out_bytes, int8_t out_signed, int8_t in_bytes,
             int8_t in_signed);

/* The int32 elementwise ops (no quantization): out[i] = clamp(a[i] op b[i * b_step]). */
#define TE_I32_ADD 0
#define TE_I32_MUL 1
#define TE_I32_DIV 2
#define TE_I32_MIN 3
#define TE_I32_MAX 4
void te_elementwise_s32(int32_t *out, const int32_t *a, const int32_t *b, int32_t count, int32_t b_step,
                        uint8_t b_const, int8_t kind, int32_t act_min, int32_t act_max);

#ifdef __cplusplus
}
#endif

#endif
