/* The audio front end's kernels (te_signal.h): the integer arithmetic of tflite-micro's signal library,
 * bit for bit, including its wrap-arounds (sums of int16 truncated to int16, uint32 products modulo 2^32)
 * as GCC compiles the reference. */
#include "te_signal.h"

#include <string.h>


typedef struct {
  int16_t re;
  int16_t im;
} te_cplx16;

/* Bits needed to hold x; 32 (64) for 0, as the reference's __builtin_clz path gives. */
static uint32_t te_bit_length32(uint32_t x) {
#if defined(__GNUC__)
  return x ? 32u - (uint32_t)__builtin_clz(x) : 32u;   /* CLZ on Arm */
#else
  uint32_t bits = 0;
  if (x == 0) {
    return 32;
  }
  while (x) {
    x >>= 1;
    ++bits;
  }
  return bits;
#endif
}

static uint32_t te_bit_length64(uint64_t x) {
  uint32_t high = (uint32_t)(x >> 32);
  if (x == 0) {
    return 64;
  }
  return high ? 32u + te_bit_length32(high) : te_bit_length32((uint32_t)x);
}

/* ------------------------------------------------------------------ window, auto scale, energy */

void te_signal_window(int16_t *out, const int16_t *in, const int16_t *window, int32_t count, int32_t window_len,
                      int32_t shift) {
  int32_t i, j;
  for (i = 0; i < count; i += window_len) {
    for (j = 0; j < window_len; ++j) {
      int32_t v = ((int32_t)in[i + j] * TE_RD_S16(window + j)) >> shift;
      out[i + j] = (int16_t)(v < -32768 ? -32768 : v > 32767 ? 32767 : v);
    }
  }
}

void te_signal_fft_auto_scale(int16_t *out, int32_t *scale_bits, const int16_t *in, int32_t count) {
  int16_t peak = 0;   /* int16: the magnitude of -32768 wraps to -32768, as in the reference */
  int32_t i, bits;
  for (i = 0; i < count; ++i) {
    int16_t v = in[i];
    if (v > peak) {
      peak = v;
    } else if (-v > peak) {
      peak = (int16_t)-v;
    }
  }
  bits = 16 - (int32_t)te_bit_length32((uint32_t)(int32_t)peak) - 1;
  if (bits < 0) {
    bits = 0;
  }
  for (i = 0; i < count; ++i) {
    out[i] = (int16_t)(in[i] * ((int32_t)1 << bits));
  }
  *scale_bits = bits;
}

void te_signal_energy(uint32_t *out, const int16_t *spectrum, int32_t start, int32_t end, int32_t count) {
  int32_t i;
  for (i = 0; i < count; ++i) {
    if (i >= start && i < end) {
      int32_t re = spectrum[2 * i], im = spectrum[2 * i + 1];
      out[i] = (uint32_t)(re * re) + (uint32_t)(im * im);
    } else {
      out[i] = 0;
    }
  }
}

/* ------------------------------------------------------------------ 16-bit fixed-point FFT */

/* Round a Q30 product to Q15 and keep 16 bits. */
static int16_t te_q15_round(uint32_t product) {
  return (int16_t)((int32_t)(product + (1u << 14)) >> 15);
}

static int16_t te_q15_mul(int16_t a, int16_t b) {
  return te_q15_round((uint32_t)((int32_t)a * b));
}

static te_cplx16 te_cmul(te_cplx16 a, int16_t b_re, int16_t b_im) {
  te_cplx16 r;
  r.re = te_q15_round((uint32_t)((int32_t)a.re * b_re) - (uint32_t)((int32_t)a.im * b_im));
  r.im = te_q15_round((uint32_t)((int32_t)a.re * b_im) + (uint32_t)((int32_t)a.im * b_re));
  return r;
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* te_cmul by a twiddle read as one word: SMUSD gives re*re - im*im and SMUADX re*im + im*re, each
 * the exact 32-bit sum te_cmul wraps to (the only overflow, 2^31, wraps alike). */
static te_cplx16 te_cmul_packed(te_cplx16 a, const int16_t *twiddle) {
  uint32_t x, w, re, im;
  te_cplx16 r;
  memcpy(&x, &a, sizeof x);
  memcpy(&w, twiddle, sizeof w);
  __asm__("smusd %0, %1, %2" : "=r"(re) : "r"(x), "r"(w));
  __asm__("smuadx %0, %1, %2" : "=r"(im) : "r"(x), "r"(w));
  r.re = te_q15_round(re);
  r.im = te_q15_round(im);
  return r;
}
#define TE_TWIDDLE(x, twiddles, k) te_cmul_packed((x), (twiddles) + 2 * (k))
#else
#define TE_TWIDDLE(x, twiddles, k) te_cmul((x), TE_RD_S16((twiddles) + 2 * (k)), TE_RD_S16((twiddles) + 2 * (k) + 1))
#endif

static te_cplx16 te_cadd(te_cplx16 a, te_cplx16 b) {
  te_cplx16 r;
  r.re = (int16_t)(a.re + b.re);
  r.im = (int16_t)(a.im + b.im);
  return r;
}

static te_cplx16 te_csub(te_cplx16 a, te_cplx16 b) {
  te_cplx16 r;
  r.re = (int16_t)(a.re - b.re);
  r.im = (int16_t)(a.im - b.im);
  return r;
}

/* Divide by `radix` in Q15 before a butterfly (keeps the transform in range). */
static void te_cscale(te_cplx16 *c, int32_t radix) {
  int16_t factor = (int16_t)(32767 / radix);
  c->re = te_q15_mul(c->re, factor);
  c->im = te_q15_mul(c->im, factor);
}

typedef struct {
  const int16_t *twiddles;   /* n complex: cos, sin of -/+2 pi k / n in Q15 (TE_CONST) */
  int32_t inverse;           /* the inverse transform (its twiddles are the conjugates) */
} te_fft_plan;

static te_cplx16 te_twiddled(const te_fft_plan *plan, te_cplx16 x, int32_t k) {
  return TE_TWIDDLE(x, plan->twiddles, k);
}

static void te_radix2(te_cplx16 *f, int32_t stride, int32_t m, const te_fft_plan *plan) {
  int32_t j;
  for (j = 0; j < m; ++j) {
    te_cplx16 t;
    te_cscale(&f[j], 2);
    te_cscale(&f[j + m], 2);
    t = te_twiddled(plan, f[j + m], j * stride);
    f[j + m] = te_csub(f[j], t);
    f[j] = te_cadd(f[j], t);
  }
}

static void te_radix3(te_cplx16 *f, int32_t stride, int32_t m, const te_fft_plan *plan) {
  int16_t rot = TE_RD_S16(plan->twiddles + 2 * (stride * m) + 1);   /* sin(-2 pi / 3) */
  int32_t j;
  for (j = 0; j < m; ++j) {
    te_cplx16 *a = &f[j], *b = &f[j + m], *c = &f[j + 2 * m];
    te_cplx16 tb, tc, sum, diff;
    te_cscale(a, 3);
    te_cscale(b, 3);
    te_cscale(c, 3);
    tb = te_twiddled(plan, *b, j * stride);
    tc = te_twiddled(plan, *c, 2 * j * stride);
    sum = te_cadd(tb, tc);
    diff = te_csub(tb, tc);
    b->re = (int16_t)(a->re - (sum.re >> 1));
    b->im = (int16_t)(a->im - (sum.im >> 1));
    diff.re = te_q15_mul(diff.re, rot);
    diff.im = te_q15_mul(diff.im, rot);
    *a = te_cadd(*a, sum);
    c->re = (int16_t)(b->re + diff.im);
    c->im = (int16_t)(b->im - diff.re);
    b->re = (int16_t)(b->re - diff.im);
    b->im = (int16_t)(b->im + diff.re);
  }
}

static void te_radix4(te_cplx16 *f, int32_t stride, int32_t m, const te_fft_plan *plan) {
  int32_t j;
  for (j = 0; j < m; ++j) {
    te_cplx16 *a = &f[j], *b = &f[j + m], *c = &f[j + 2 * m], *d = &f[j + 3 * m];
    te_cplx16 tb, tc, td, near, sum, diff;
    te_cscale(a, 4);
    te_cscale(b, 4);
    te_cscale(c, 4);
    te_cscale(d, 4);
    tb = te_twiddled(plan, *b, j * stride);
    tc = te_twiddled(plan, *c, 2 * j * stride);
    td = te_twiddled(plan, *d, 3 * j * stride);
    near = te_csub(*a, tc);
    *a = te_cadd(*a, tc);
    sum = te_cadd(tb, td);
    diff = te_csub(tb, td);
    *c = te_csub(*a, sum);
    *a = te_cadd(*a, sum);
    if (plan->inverse) {   /* the quarter turn the other way */
      diff.re = (int16_t)-diff.re;
      diff.im = (int16_t)-diff.im;
    }
    b->re = (int16_t)(near.re + diff.im);
    b->im = (int16_t)(near.im - diff.re);
    d->re = (int16_t)(near.re - diff.im);
    d->im = (int16_t)(near.im + diff.re);
  }
}

static void te_radix5(te_cplx16 *f, int32_t stride, int32_t m, const te_fft_plan *plan) {
  const int16_t *w = plan->twiddles;
  int16_t y1_re = TE_RD_S16(w + 2 * (stride * m)), y1_im = TE_RD_S16(w + 2 * (stride * m) + 1);
  int16_t y2_re = TE_RD_S16(w + 4 * (stride * m)), y2_im = TE_RD_S16(w + 4 * (stride * m) + 1);
  int32_t u;
  for (u = 0; u < m; ++u) {
    te_cplx16 *x0 = &f[u], *x1 = &f[u + m], *x2 = &f[u + 2 * m], *x3 = &f[u + 3 * m], *x4 = &f[u + 4 * m];
    te_cplx16 a, t1, t2, t3, t4, s14, d14, s23, d23, p, q, r, s;
    te_cscale(x0, 5);
    te_cscale(x1, 5);
    te_cscale(x2, 5);
    te_cscale(x3, 5);
    te_cscale(x4, 5);
    a = *x0;
    t1 = te_twiddled(plan, *x1, u * stride);
    t2 = te_twiddled(plan, *x2, 2 * u * stride);
    t3 = te_twiddled(plan, *x3, 3 * u * stride);
    t4 = te_twiddled(plan, *x4, 4 * u * stride);
    s14 = te_cadd(t1, t4);
    d14 = te_csub(t1, t4);
    s23 = te_cadd(t2, t3);
    d23 = te_csub(t2, t3);
    x0->re = (int16_t)(x0->re + (s14.re + s23.re));
    x0->im = (int16_t)(x0->im + (s14.im + s23.im));
    p.re = (int16_t)(a.re + te_q15_mul(s14.re, y1_re) + te_q15_mul(s23.re, y2_re));
    p.im = (int16_t)(a.im + te_q15_mul(s14.im, y1_re) + te_q15_mul(s23.im, y2_re));
    q.re = (int16_t)(te_q15_mul(d14.im, y1_im) + te_q15_mul(d23.im, y2_im));
    q.im = (int16_t)(-te_q15_mul(d14.re, y1_im) - te_q15_mul(d23.re, y2_im));
    *x1 = te_csub(p, q);
    *x4 = te_cadd(p, q);
    r.re = (int16_t)(a.re + te_q15_mul(s14.re, y2_re) + te_q15_mul(s23.re, y1_re));
    r.im = (int16_t)(a.im + te_q15_mul(s14.im, y2_re) + te_q15_mul(s23.im, y1_re));
    s.re = (int16_t)(-te_q15_mul(d14.im, y2_im) + te_q15_mul(d23.im, y1_im));
    s.im = (int16_t)(te_q15_mul(d14.re, y2_im) - te_q15_mul(d23.re, y1_im));
    *x2 = te_cadd(r, s);
    *x3 = te_csub(r, s);
  }
}

/* The decimation-in-time FFT of `in` (read every `stride` points) into `out`, by the radix stages of
 * `factors` ({radix, remaining length} pairs), depth first. */
static void te_fft_stage(te_cplx16 *out, const te_cplx16 *in, int32_t stride, const int16_t *factors,
                         const te_fft_plan *plan) {
  int32_t radix = TE_RD_S16(factors), m = TE_RD_S16(factors + 1), k;
  if (m == 1) {
    for (k = 0; k < radix; ++k) {
      out[k] = in[k * stride];
    }
  } else {
    for (k = 0; k < radix; ++k) {
      te_fft_stage(out + k * m, in + k * stride, stride * radix, factors + 2, plan);
    }
  }
  switch (radix) {
    case 2: te_radix2(out, stride, m, plan); break;
    case 3: te_radix3(out, stride, m, plan); break;
    case 4: te_radix4(out, stride, m, plan); break;
    default: te_radix5(out, stride, m, plan); break;   /* radices are 2..5 (tinyedge/ops/signal_fft.py) */
  }
}

/* One real frame of p->fft_length samples (`frame`) to p->fft_length / 2 + 1 bins in `bins`: the
 * half-length complex FFT of the even/odd pairs into `bins` itself, then the split into the real
 * signal's spectrum in place (bin k and bin n - k are read from the half-length spectrum's k and n - k
 * before either is written). */
static void te_real_fft(te_cplx16 *bins, const int16_t *frame, int32_t n, const int16_t *factors,
                        const int16_t *twiddles, const int16_t *split_twiddles) {
  te_fft_plan plan;
  const te_cplx16 *half = bins;
  int32_t k;
  te_cplx16 dc;
  plan.twiddles = twiddles;
  plan.inverse = 0;
  te_fft_stage(bins, (const te_cplx16 *)(const void *)frame, 1, factors, &plan);
  dc = half[0];
  te_cscale(&dc, 2);
  bins[0].re = (int16_t)(dc.re + dc.im);
  bins[n].re = (int16_t)(dc.re - dc.im);
  bins[0].im = bins[n].im = 0;
  for (k = 1; k <= n / 2; ++k) {
    te_cplx16 fk = half[k], fnk, even, odd, tw;
    fnk.re = half[n - k].re;
    fnk.im = (int16_t)-half[n - k].im;
    te_cscale(&fk, 2);
    te_cscale(&fnk, 2);
    even = te_cadd(fk, fnk);
    odd = te_csub(fk, fnk);
    tw = te_cmul(odd, TE_RD_S16(split_twiddles + 2 * (k - 1)), TE_RD_S16(split_twiddles + 2 * (k - 1) + 1));
    bins[k].re = (int16_t)((even.re + tw.re) >> 1);
    bins[k].im = (int16_t)((even.im + tw.im) >> 1);
    bins[n - k].re = (int16_t)((even.re - tw.re) >> 1);
    bins[n - k].im = (int16_t)((tw.im - even.im) >> 1);
  }
}

void te_signal_rfft_s16(int16_t *out, const int16_t *in, const te_rfft_params_t *p, const int16_t *factors,
                       const int16_t *twiddles, const int16_t *split_twiddles, int16_t *work) {
  int32_t fft_length = TE_RD_S32(&p->fft_length), input_length = TE_RD_S32(&p->input_length);
  int32_t frames = TE_RD_S32(&p->frames), bins = TE_RD_S32(&p->output_bins), frame;
  for (frame = 0; frame < frames; ++frame) {
    memcpy(work, in + frame * input_length, sizeof(int16_t) * (size_t)input_length);
    memset(work + input_length, 0, sizeof(int16_t) * (size_t)(fft_length - input_length));
    te_real_fft((te_cplx16 *)(void *)(out + 2 * frame * bins), work, fft_length / 2, factors, twiddles, split_twiddles);
  }
}

/* The inverse of te_real_fft: n + 1 bins (`bins`) to 2n samples, through the half-length inverse
 * complex FFT of the recombined even/odd spectra (`half`, n complex). */
static void te_real_ifft(int16_t *samples, const te_cplx16 *bins, te_cplx16 *half, int32_t n, const int16_t *factors,
                         const int16_t *twiddles, const int16_t *split_twiddles) {
  te_fft_plan plan;
  int32_t k;
  half[0].re = (int16_t)(bins[0].re + bins[n].re);
  half[0].im = (int16_t)(bins[0].re - bins[n].re);
  te_cscale(&half[0], 2);
  for (k = 1; k <= n / 2; ++k) {
    te_cplx16 fk = bins[k], fnk, even, odd;
    fnk.re = bins[n - k].re;
    fnk.im = (int16_t)-bins[n - k].im;
    te_cscale(&fk, 2);
    te_cscale(&fnk, 2);
    even = te_cadd(fk, fnk);
    odd = te_cmul(te_csub(fk, fnk), TE_RD_S16(split_twiddles + 2 * (k - 1)),
                  TE_RD_S16(split_twiddles + 2 * (k - 1) + 1));
    half[k] = te_cadd(even, odd);
    half[n - k] = te_csub(even, odd);
    half[n - k].im = (int16_t)-half[n - k].im;
  }
  plan.twiddles = twiddles;
  plan.inverse = 1;
  te_fft_stage((te_cplx16 *)(void *)samples, half, 1, factors, &plan);
}

void te_signal_irfft_s16(int16_t *out, const int16_t *in, const te_irfft_params_t *p, const int16_t *factors,
                        const int16_t *twiddles, const int16_t *split_twiddles, int16_t *work) {
  int32_t fft_length = TE_RD_S32(&p->fft_length), bins = TE_RD_S32(&p->input_bins);
  int32_t frames = TE_RD_S32(&p->frames), length = TE_RD_S32(&p->output_length), frame;
  for (frame = 0; frame < frames; ++frame) {
    te_real_ifft(out + frame * length, (const te_cplx16 *)(const void *)(in + 2 * frame * bins), (te_cplx16 *)(void *)work,
                 fft_length / 2, factors, twiddles, split_twiddles);
  }
}


/* ------------------------------------------------------------------ filter bank and after */

void te_signal_filter_bank(uint64_t *out, const uint32_t *in, const int16_t *weights, const int16_t *unweights,
                           const int16_t *starts, const int16_t *weight_starts, const int16_t *widths,
                           int32_t num_channels) {
  uint64_t carried = 0;   /* the unweighted sum of the channel before, which opens this one */
  int32_t c, j;
  for (c = 0; c <= num_channels; ++c) {
    uint64_t weighted = carried, unweighted = 0;
    int32_t first = TE_RD_S16(starts + c), w0 = TE_RD_S16(weight_starts + c), width = TE_RD_S16(widths + c);
    for (j = 0; j < width; ++j) {
      uint64_t x = in[first + j];
      weighted += (uint64_t)(int64_t)TE_RD_S16(weights + w0 + j) * x;
      unweighted += (uint64_t)(int64_t)TE_RD_S16(unweights + w0 + j) * x;
    }
    if (c > 0) {
      out[c - 1] = weighted;
    }
    carried = unweighted;
  }
}

/* The rounded integer square root, digit by digit from the highest even bit of a `width`-bit x (32 or
 * 64: the reference's 32-bit variant, used whenever x fits, caps its root at 0xFFFF). */
static uint32_t te_isqrt(uint64_t x, int32_t width) {
  uint64_t root = 0, bit, cap = width == 32 ? 0xFFFFu : 0xFFFFFFFFu;
  int32_t top, steps;
  if (x == 0) {
    return 0;
  }
  top = (int32_t)((uint32_t)width - te_bit_length64(x)) | 1;
  bit = (uint64_t)1 << (width - 1 - top);
  steps = (width - 1 - top) / 2 + 1;
  while (steps--) {
    if (x >= root + bit) {
      x -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
    bit >>= 2;
  }
  if (x > root && root != cap) {
    ++root;
  }
  return (uint32_t)(root & cap);
}

static uint32_t te_isqrt64(uint64_t x) {
  return te_isqrt(x, (x >> 32) == 0 ? 32 : 64);
}

void te_signal_filter_bank_sqrt(uint32_t *out, const uint64_t *in, const int32_t *scale_bits, int32_t count) {
  int32_t i, shift = *scale_bits;
  for (i = 0; i < count; ++i) {
    out[i] = te_isqrt64(in[i]) >> shift;
  }
}

void te_signal_spectral_subtraction(uint32_t *out, uint32_t *noise_out, uint32_t *noise, const uint32_t *in,
                                    const te_spectral_subtraction_params_t *p) {
  uint32_t scale_bits = (uint32_t)TE_RD_S32(&p->spectral_subtraction_bits);
  uint32_t smoothing_bits = (uint32_t)TE_RD_S32(&p->smoothing_bits);
  uint32_t min_remaining = (uint32_t)TE_RD_S32(&p->min_signal_remaining);
  int32_t channels = (int32_t)(uint32_t)TE_RD_S32(&p->num_channels), i;
  int32_t clamping = TE_RD_S32(&p->clamping);
  for (i = 0; i < channels; ++i) {
    uint32_t alpha = (uint32_t)TE_RD_S32(i & 1 ? &p->alternate_smoothing : &p->smoothing);
    uint32_t beta = (uint32_t)TE_RD_S32(i & 1 ? &p->alternate_one_minus_smoothing : &p->one_minus_smoothing);
    uint32_t signal = in[i] << smoothing_bits;
    uint32_t estimate, floor, subtracted;
    noise[i] = (uint32_t)(((uint64_t)signal * alpha + (uint64_t)noise[i] * beta) >> scale_bits);
    estimate = noise[i];
    if (estimate > signal) {
      estimate = signal;
      if (clamping) {
        noise[i] = estimate;
      }
    }
    floor = (uint32_t)(((uint64_t)in[i] * min_remaining) >> scale_bits);
    subtracted = (signal - estimate) >> smoothing_bits;
    out[i] = subtracted > floor ? subtracted : floor;
  }
  if (noise_out != noise) {
    memcpy(noise_out, noise, sizeof(uint32_t) * (size_t)channels);
  }
}

#define TE_PCAN_SNR_BITS 12
#define TE_PCAN_OUTPUT_BITS 6

/* The gain for a noise level: piecewise quadratic through the table, 4 entries per octave. */
static int16_t te_pcan_gain(uint32_t x, const int16_t *lut) {
  int32_t octave, frac, acc;
  const int16_t *seg;
  if (x <= 2) {
    return TE_RD_S16(lut + x);
  }
  octave = (int32_t)te_bit_length32(x);
  seg = lut + 4 * octave - 6;
  frac = (int16_t)(((octave < 11) ? (x << (11 - octave)) : (x >> (octave - 11))) & 0x3FF);
  acc = ((int32_t)TE_RD_S16(seg + 2) * frac) >> 5;
  acc = (int32_t)((uint32_t)acc + ((uint32_t)(int32_t)TE_RD_S16(seg + 1) << 5));
  acc = (int32_t)((uint32_t)acc * (uint32_t)frac);
  acc = (int32_t)((uint32_t)acc + (1u << 14)) >> 15;
  acc += TE_RD_S16(seg);
  return (int16_t)acc;
}

static uint32_t te_pcan_shrink(uint32_t snr) {
  if (snr < (2u << TE_PCAN_SNR_BITS)) {
    return (snr * snr) >> (2 + 2 * TE_PCAN_SNR_BITS - TE_PCAN_OUTPUT_BITS);
  }
  return (snr >> (TE_PCAN_SNR_BITS - TE_PCAN_OUTPUT_BITS)) - (1u << TE_PCAN_OUTPUT_BITS);
}

void te_signal_pcan(uint32_t *out, const uint32_t *in, const uint32_t *noise, const int16_t *gain_lut,
                    int32_t count, int32_t snr_shift) {
  int32_t i;
  for (i = 0; i < count; ++i) {
    uint32_t gain = (uint32_t)(int32_t)te_pcan_gain(noise[i], gain_lut);
    uint32_t snr = (uint32_t)(((uint64_t)in[i] * gain) >> snr_shift);
    out[i] = te_pcan_shrink(snr);
  }
}

/* ln by log2 = octave + a table-corrected linear fraction (129 segments of the octave, in Q16): the
 * correction table of tflite-micro's signal/src/log.cc, whose values define the reference's results. */
static const uint16_t te_log2_correction[130] TE_CONST = {
  0,    224,  442,  654,  861,  1063, 1259, 1450, 1636, 1817, 1992, 2163, 2329, 2490, 2646, 2797,
  2944, 3087, 3224, 3358, 3487, 3611, 3732, 3848, 3960, 4068, 4172, 4272, 4368, 4460, 4549, 4633,
  4714, 4791, 4864, 4934, 5001, 5063, 5123, 5178, 5231, 5280, 5326, 5368, 5408, 5444, 5477, 5507,
  5533, 5557, 5578, 5595, 5610, 5622, 5631, 5637, 5640, 5641, 5638, 5633, 5626, 5615, 5602, 5586,
  5568, 5547, 5524, 5498, 5470, 5439, 5406, 5370, 5332, 5291, 5249, 5203, 5156, 5106, 5054, 5000,
  4944, 4885, 4825, 4762, 4697, 4630, 4561, 4490, 4416, 4341, 4264, 4184, 4103, 4020, 3935, 3848,
  3759, 3668, 3575, 3481, 3384, 3286, 3186, 3084, 2981, 2875, 2768, 2659, 2549, 2437, 2323, 2207,
  2090, 1971, 1851, 1729, 1605, 1480, 1353, 1224, 1094, 963,  830,  695,  559,  421,  282,  142,
  0,    0};

static uint32_t te_scaled_ln(uint32_t x, uint32_t scale) {
  uint32_t octave = te_bit_length32(x) - 1, seg, log2;
  int32_t frac = (int32_t)((int64_t)x - ((int64_t)1 << octave)), c0, c1, rel;
  if (octave < 16) {
    frac = (int32_t)((uint32_t)frac << (16 - octave));
  } else {
    frac >>= octave - 16;
  }
  seg = (uint32_t)frac >> 9;
  c0 = TE_RD_U16(te_log2_correction + seg);
  c1 = TE_RD_U16(te_log2_correction + seg + 1);
  rel = ((c1 - c0) * (frac - (int32_t)(512u * seg))) >> 16;
  log2 = (octave << 16) + (uint32_t)(frac + c0 + rel);
  log2 = (uint32_t)(((uint64_t)45426 * log2 + 32768u) >> 16);   /* ln 2 in Q16 */
  return (scale * log2 + 32768u) >> 16;
}

void te_signal_filter_bank_log(int16_t *out, const uint32_t *in, int32_t count, int32_t output_scale,
                               int32_t correction_bits) {
  int32_t i;
  for (i = 0; i < count; ++i) {
    uint32_t x = in[i] << correction_bits;
    if (x > 1) {
      uint32_t v = te_scaled_ln(x, (uint32_t)output_scale);
      out[i] = (int16_t)(v < 32767u ? v : 32767u);
    } else {
      out[i] = 0;
    }
  }
}

void te_signal_delay(int16_t *out, const int16_t *in, int16_t *history, int32_t rows, int32_t frame, int32_t delay) {
  int32_t r, j;
  for (r = 0; r < rows; ++r, in += frame, out += frame, history += delay) {
    /* The row as it streams: the history, then the new frame; out is its first `frame` samples and the
     * history becomes its last `delay`. */
    for (j = 0; j < frame; ++j) {
      out[j] = j < delay ? history[j] : in[j - delay];
    }
    if (frame >= delay) {
      memcpy(history, in + frame - delay, sizeof(int16_t) * (size_t)delay);
    } else {
      memmove(history, history + frame, sizeof(int16_t) * (size_t)(delay - frame));
      memcpy(history + delay - frame, in, sizeof(int16_t) * (size_t)frame);
    }
  }
}

void te_signal_stacker(int16_t *out, uint8_t *valid, const int16_t *in, int16_t *state, int32_t channels,
                       int32_t left_context, int32_t width, int32_t step) {
  int16_t *held = state + 2;
  int32_t count = state[0], size = width * channels, k;
  memcpy(held + count, in, sizeof(int16_t) * (size_t)channels);
  count += channels;
  if (!state[1]) {   /* the first frame padded to the left by itself */
    for (k = 0; k < left_context; ++k, count += channels) {
      memcpy(held + count, in, sizeof(int16_t) * (size_t)channels);
    }
    state[1] = 1;
  }
  *valid = (uint8_t)(count >= size);
  if (count >= size) {
    memcpy(out, held, sizeof(int16_t) * (size_t)size);
    memmove(held, held + step * channels, sizeof(int16_t) * (size_t)(count - step * channels));
    count -= step * channels;
  }
  state[0] = (int16_t)count;
}

void te_signal_framer(int16_t *out, uint8_t *valid, const int16_t *in, int16_t *state, int32_t rows,
                      int32_t n_frames, int32_t frame_size, int32_t step, int32_t prefill, int32_t capacity) {
  int32_t r, f;
  *valid = 1;
  for (r = 0; r < rows; ++r, state += 1 + capacity) {
    int16_t *held = state + 1;
    int32_t count = state[0] + prefill;
    for (f = 0; f < n_frames; ++f, in += step) {
      memcpy(held + count, in, sizeof(int16_t) * (size_t)step);
      count += step;
      if (count >= frame_size) {
        memcpy(out + (r * n_frames + f) * frame_size, held, sizeof(int16_t) * (size_t)frame_size);
        memmove(held, held + step, sizeof(int16_t) * (size_t)(count - step));
        count -= step;
      } else {
        *valid = 0;
      }
    }
    state[0] = (int16_t)(count - prefill);
  }
}

void te_signal_overlap_add(int16_t *out, const int16_t *in, int16_t *sums, int32_t rows, int32_t n_frames,
                           int32_t frame_size, int32_t frame_step) {
  int32_t r, f, i;
  for (r = 0; r < rows; ++r, sums += frame_size) {
    for (f = 0; f < n_frames; ++f, in += frame_size, out += frame_step) {
      for (i = 0; i < frame_size; ++i) {
        int32_t v = (int32_t)in[i] + sums[i];
        sums[i] = (int16_t)(v < -32768 ? -32768 : v > 32767 ? 32767 : v);
      }
      memcpy(out, sums, sizeof(int16_t) * (size_t)frame_step);
      memmove(sums, sums + frame_step, sizeof(int16_t) * (size_t)(frame_size - frame_step));
      memset(sums + frame_size - frame_step, 0, sizeof(int16_t) * (size_t)frame_step);
    }
  }
}

/* ------------------------------------------------------------------ the integer glue */

static int32_t te_load_int(const void *p, int32_t i, int8_t bytes, int8_t is_signed) {
  switch (bytes) {
    case 1: return is_signed ? (int32_t)((const int8_t *)p)[i] : (int32_t)((const uint8_t *)p)[i];
    case 2: return is_signed ? (int32_t)((const int16_t *)p)[i] : (int32_t)((const uint16_t *)p)[i];
    default: return ((const int32_t *)p)[i];
  }
}

void te_cast(void *out, const void *in, int32_t count, int8_t out_bytes, int8_t out_signed, int8_t in_bytes,
             int8_t in_signed) {
  int32_t i;
  (void)out_signed;   /* a conversion keeps the low bytes either way */
  for (i = 0; i < count; ++i) {
    uint32_t v = (uint32_t)te_load_int(in, i, in_bytes, in_signed);
    switch (out_bytes) {
      case 1: ((uint8_t *)out)[i] = (uint8_t)v; break;
      case 2: ((uint16_t *)out)[i] = (uint16_t)v; break;
      default: ((uint32_t *)out)[i] = v; break;
    }
  }
}

void te_elementwise_s32(int32_t *out, const int32_t *a, const int32_t *b, int32_t count, int32_t b_step,
                        uint8_t b_const, int8_t kind, int32_t act_min, int32_t act_max) {
  int32_t i;
  for (i = 0; i < count; ++i) {
    int32_t x = a[i], y = b_const ? TE_RD_S32(b + i * b_step) : b[i * b_step], r;
    switch (kind) {
      case TE_I32_ADD: r = (int32_t)((uint32_t)x + (uint32_t)y); break;
      case TE_I32_MUL: r = (int32_t)((uint32_t)x * (uint32_t)y); break;
      case TE_I32_DIV: r = x / y; break;
      case TE_I32_MIN: r = x < y ? x : y; break;
      default: r = x > y ? x : y; break;
    }
    out[i] = r < act_min ? act_min : r > act_max ? act_max : r;
  }
}
