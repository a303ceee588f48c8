/* AOT kernels for the nonlinear and elementwise int8 ops, bit-exact with TFLM's reference kernels.
 *
 * The fixed-point helpers (te_fixedpoint.h and the few below) reproduce gemmlowp's scalar int32 code
 * (fixedpoint.h) and TFLM's double-rounding MultiplyByQuantizedMultiplier. Only fixed-width types are used, so the same
 * arithmetic holds where int is 16 bits (AVR). */
#include "te_nonlinear.h"

#include "te_fixedpoint.h"

#define TE_NL_I32_MIN ((int32_t)(-2147483647L - 1L))
#define TE_NL_I32_MAX ((int32_t)2147483647L)

#define TE_NL_LOAD_S8(p, in_const) ((in_const) ? TE_RD_S8(p) : *(p))

static int32_t te_nl_clamp(int32_t x, int32_t lo, int32_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

/* gemmlowp::SaturatingRoundingMultiplyByPOT with a positive exponent: saturating left shift. */
static int32_t te_nl_sat_shl(int32_t x, int32_t exponent) {
  const int32_t threshold = (int32_t)(((int32_t)1 << (31 - exponent)) - 1);
  if (x > threshold) {
    return TE_NL_I32_MAX;
  }
  if (x < -threshold) {
    return TE_NL_I32_MIN;
  }
  return x * ((int32_t)1 << exponent);
}

/* x * 2^left_shift with the two's-complement wrap that TFLM's int multiply has in practice. */
static int32_t te_nl_shl_wrap(int32_t x, int32_t left_shift) {
  return (int32_t)((uint32_t)x << left_shift);
}

/* TFLM MultiplyByQuantizedMultiplierSmallerThanOneExp. */
static int32_t te_nl_mbqm_lt1(int32_t x, int32_t multiplier, int32_t left_shift) {
  return te_rounding_divide_by_pot(te_srdhm(x, multiplier), -left_shift);
}

/* gemmlowp::RoundingHalfSum for int32. */
static int32_t te_nl_rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + (int64_t)b;
  const int64_t sign = sum >= 0 ? 1 : -1;
  return (int32_t)((sum + sign) / 2);
}

/* gemmlowp::exp_on_interval_between_negative_one_quarter_and_0_excl, Q0.31 in and out. */
static int32_t te_nl_exp_quarter(int32_t a) {
  const int32_t constant_term = (int32_t)1895147668L;   /* exp(-1/8) */
  const int32_t constant_1_over_3 = (int32_t)715827883L;
  const int32_t x = a + ((int32_t)1 << 28);
  const int32_t x2 = te_srdhm(x, x);
  const int32_t x3 = te_srdhm(x2, x);
  const int32_t x4 = te_srdhm(x2, x2);
  const int32_t x4_over_4 = te_rounding_divide_by_pot(x4, 2);
  const int32_t poly = te_rounding_divide_by_pot(te_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
  return constant_term + te_srdhm(constant_term, x + poly);
}

/* gemmlowp::exp_on_negative_values for FixedPoint<int32_t, 5> (softmax's Q5.26), result Q0.31. */
static int32_t te_nl_exp_on_negative_q5(int32_t a) {
  static const int32_t kFractionalBits = 26;
  static const int32_t barrel[7] TE_CONST = {
    (int32_t)1672461947L, (int32_t)1302514674L, (int32_t)790015084L, (int32_t)290630308L,
    (int32_t)39332535L, (int32_t)720401L, (int32_t)242L,
};
  const int32_t one_quarter = (int32_t)1 << (kFractionalBits - 2);
  const int32_t a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter;
  int32_t result = te_nl_exp_quarter(te_nl_sat_shl(a_mod_quarter_minus_one_quarter, 5));
  const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
  int32_t k;
  for (k = 0; k < 7; k++) {
    /* exponents -2 .. +4: bit kFractionalBits + exponent of the remainder */
    if (remainder & ((int32_t)1 << (kFractionalBits - 2 + k))) {
      result = te_srdhm(result, TE_RD_S32(barrel + k));
    }
  }
  return a == 0 ? TE_NL_I32_MAX : result;
}

/* gemmlowp::one_over_one_plus_x_for_x_in_0_1, Q0.31 in and out (Newton-Raphson in Q2.29). */
static int32_t te_nl_one_over_one_plus_x(int32_t a) {
  const int32_t f2_one = (int32_t)1 << 29;
  const int32_t half_denominator = te_nl_rounding_half_sum(a, TE_NL_I32_MAX);
  int32_t x = (int32_t)1515870810L + te_srdhm(half_denominator, (int32_t)-1010580540L);
  int32_t i;
  for (i = 0; i < 3; i++) {
    const int32_t half_denominator_times_x = te_srdhm(half_denominator, x);
    const int32_t one_minus = f2_one - half_denominator_times_x;
    x = x + te_nl_sat_shl(te_srdhm(x, one_minus), 2);
  }
  return te_nl_sat_shl(x, 1);
}

void te_lut_s8(int8_t *out, const int8_t *in, int32_t count, const int8_t *lut) {
  int32_t i;
  for (i = 0; i < count; i++) {
    out[i] = TE_RD_S8(lut + (uint8_t)((uint8_t)in[i] ^ 0x80u));
  }
}

/* reference_ops::Softmax for an int8 input: into out8 (int8, zero point -128) or, when out8 is 0,
 * into out16 (int16, zero point -32768). */
static void te_nl_softmax(int8_t *out8, int16_t *out16, const int8_t *in, int32_t outer, int32_t depth,
                          int32_t input_multiplier, int32_t input_left_shift, int32_t diff_min) {
  const int32_t out_bits = out8 ? 8 : 16;
  const int32_t out_min = out8 ? -128 : -32768, out_max = out8 ? 127 : 32767;
  int32_t row;
  for (row = 0; row < outer; row++) {
    const int8_t *x = in + row * depth;
    int32_t max_in_row = -128;
    int32_t sum_of_exps = 0;     /* Q12.19 */
    int32_t headroom_plus_one;
    int32_t shifted_scale;
    int32_t exponent;
    int32_t c;
    for (c = 0; c < depth; c++) {
      if (x[c] > max_in_row) {
        max_in_row = x[c];
      }
    }
    for (c = 0; c < depth; c++) {
      const int32_t diff = (int32_t)x[c] - max_in_row;
      if (diff >= diff_min) {
        const int32_t scaled = te_srdhm(te_nl_shl_wrap(diff, input_left_shift), input_multiplier);
        /* wraps like TFLM's int32 sum would, should a huge depth ever overflow it */
        sum_of_exps = (int32_t)((uint32_t)sum_of_exps + (uint32_t)te_rounding_divide_by_pot(te_nl_exp_on_negative_q5(scaled), 12));
      }
    }
    /* GetReciprocal(sum_of_exps, 12, &num_bits_over_unit) */
    headroom_plus_one = te_clz32((uint32_t)sum_of_exps);
    shifted_scale = te_nl_one_over_one_plus_x(
        (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - 0x80000000UL));
    exponent = (12 - headroom_plus_one) + 31 - out_bits;
    for (c = 0; c < depth; c++) {
      const int32_t diff = (int32_t)x[c] - max_in_row;
      int32_t y = out_min;
      if (diff >= diff_min) {
        const int32_t scaled = te_srdhm(te_nl_shl_wrap(diff, input_left_shift), input_multiplier);
        const int32_t exp_in_0 = te_nl_exp_on_negative_q5(scaled);
        const int32_t unsat = te_rounding_divide_by_pot(te_srdhm(shifted_scale, exp_in_0), exponent);
        y = te_nl_clamp(unsat + out_min, out_min, out_max);
      }
      if (out8) {
        out8[row * depth + c] = (int8_t)y;
      } else {
        out16[row * depth + c] = (int16_t)y;
      }
    }
  }
}

void te_softmax_s8(int8_t *out, const int8_t *in, int32_t outer, int32_t depth,
                   int32_t input_multiplier, int32_t input_left_shift, int32_t diff_min) {
  te_nl_softmax(out, 0, in, outer, depth, input_multiplier, input_left_shift, diff_min);
}

void te_softmax_s8_s16(int16_t *out, const int8_t *in, int32_t outer, int32_t depth,
                       int32_t input_multiplier, int32_t input_left_shift, int32_t diff_min) {
  te_nl_softmax(0, out, in, outer, depth, input_multiplier, input_left_shift, diff_min);
}

/* Advances a row-major multi-index by one element, keeping two flat offsets in step.
 * Returns 0 once every index has wrapped around. */
static int te_nl_step(int32_t *index, const int32_t *sizes, const int32_t *strides_a,
                      const int32_t *strides_b, int32_t *offset_a, int32_t *offset_b, int32_t ndim) {
  int32_t d;
  for (d = ndim - 1; d >= 0; d--) {
    index[d]++;
    *offset_a += strides_a[d];
    *offset_b += strides_b[d];
    if (index[d] < sizes[d]) {
      return 1;
    }
    *offset_a -= sizes[d] * strides_a[d];
    *offset_b -= sizes[d] * strides_b[d];
    index[d] = 0;
  }
  return 0;
}

static void te_nl_read_s32(int32_t *dst, const int32_t *src, int32_t n) {
  int32_t i;
  for (i = 0; i < n; i++) {
    dst[i] = TE_RD_S32(src + i);
  }
}

/* MEAN's and REDUCE_MAX/MIN's walk (geom as te_nonlinear.h says): the kept dims in order, and for each
 * kept position the reduced dims, from `base`. */
typedef struct {
  int32_t n_kept, n_red, base, unused;
  int32_t kept_sizes[TE_NL_MAX_DIMS], kept_strides[TE_NL_MAX_DIMS], kept_index[TE_NL_MAX_DIMS];
  int32_t red_sizes[TE_NL_MAX_DIMS], red_strides[TE_NL_MAX_DIMS], red_index[TE_NL_MAX_DIMS];
} te_nl_reduction;

static void te_nl_reduction_begin(te_nl_reduction *r, const int32_t *geom) {
  int32_t d;
  r->n_kept = TE_RD_S32(geom);
  r->n_red = TE_RD_S32(geom + 1);
  te_nl_read_s32(r->kept_sizes, geom + 2, r->n_kept);
  te_nl_read_s32(r->kept_strides, geom + 2 + r->n_kept, r->n_kept);
  te_nl_read_s32(r->red_sizes, geom + 2 + 2 * r->n_kept, r->n_red);
  te_nl_read_s32(r->red_strides, geom + 2 + 2 * r->n_kept + r->n_red, r->n_red);
  for (d = 0; d < r->n_kept; d++) {
    r->kept_index[d] = 0;
  }
  r->base = 0;
  r->unused = 0;
}

/* Starts the walk over the reduced dims of the current kept position. */
static void te_nl_reduced_begin(te_nl_reduction *r) {
  int32_t d;
  for (d = 0; d < r->n_red; d++) {
    r->red_index[d] = 0;
  }
}

static int32_t te_nl_reduced_next(te_nl_reduction *r, int32_t *offset, int32_t *unused) {
  return te_nl_step(r->red_index, r->red_sizes, r->red_strides, r->red_strides, offset, unused, r->n_red);
}

static int32_t te_nl_kept_next(te_nl_reduction *r) {
  return te_nl_step(r->kept_index, r->kept_sizes, r->kept_strides, r->kept_strides, &r->base, &r->unused, r->n_kept);
}

void te_mean_s8(int8_t *out, const int8_t *in, const int32_t *geom, int32_t input_zero_point,
                int32_t count, int32_t multiplier, int32_t shift, int32_t output_zero_point) {
  te_nl_reduction r;
  int32_t o = 0;
  te_nl_reduction_begin(&r, geom);
  do {
    int32_t sum = 0, offset = r.base, unused = 0;
    te_nl_reduced_begin(&r);
    do {
      sum += in[offset];
    } while (te_nl_reduced_next(&r, &offset, &unused));
    sum -= input_zero_point * count;
    out[o++] = (int8_t)te_nl_clamp(te_mul_by_quantized_multiplier(sum, multiplier, shift) + output_zero_point, -128, 127);
  } while (te_nl_kept_next(&r));
}

void te_reduce_minmax_s8(int8_t *out, const int8_t *in, const int32_t *geom, int32_t is_max) {
  te_nl_reduction r;
  int32_t o = 0;
  te_nl_reduction_begin(&r, geom);
  do {
    int32_t best = is_max ? -128 : 127, offset = r.base, unused = 0;
    te_nl_reduced_begin(&r);
    do {
      const int32_t value = in[offset];
      if (is_max ? value > best : value < best) {
        best = value;
      }
    } while (te_nl_reduced_next(&r, &offset, &unused));
    out[o++] = (int8_t)best;
  } while (te_nl_kept_next(&r));
}

void te_arg_minmax_s8(int32_t *out, const int8_t *in, int32_t outer, int32_t axis_size, int32_t inner, int32_t is_max) {
  int32_t o, j, i;
  for (o = 0; o < outer; o++) {
    for (j = 0; j < inner; j++) {
      const int8_t *row = in + o * axis_size * inner + j;
      int32_t best = row[0], index = 0;
      for (i = 1; i < axis_size; i++) {
        const int32_t value = row[i * inner];
        if (is_max ? value > best : value < best) {
          best = value;
          index = i;
        }
      }
      out[o * inner + j] = index;
    }
  }
}

/* One broadcast walk shared by ADD and MUL. */
typedef struct {
  int32_t ndim;
  int32_t sizes[TE_NL_MAX_DIMS];
  int32_t strides_a[TE_NL_MAX_DIMS];
  int32_t strides_b[TE_NL_MAX_DIMS];
  int32_t index[TE_NL_MAX_DIMS];
  int32_t offset_a, offset_b;
} te_nl_walk;

static int32_t te_nl_walk_begin(te_nl_walk *w, const int32_t *geom) {
  int32_t d, total = 1;
  w->ndim = TE_RD_S32(geom);
  te_nl_read_s32(w->sizes, geom + 1, w->ndim);
  te_nl_read_s32(w->strides_a, geom + 1 + w->ndim, w->ndim);
  te_nl_read_s32(w->strides_b, geom + 1 + 2 * w->ndim, w->ndim);
  for (d = 0; d < w->ndim; d++) {
    w->index[d] = 0;
    total *= w->sizes[d];
  }
  w->offset_a = 0;
  w->offset_b = 0;
  return total;
}

static void te_nl_walk_next(te_nl_walk *w) {
  (void)te_nl_step(w->index, w->sizes, w->strides_a, w->strides_b, &w->offset_a, &w->offset_b, w->ndim);
}

/* Runs the statements after `b` once per output element i of a broadcast ADD or MUL, with `p`
 * (a local of the params' type) read from TE_CONST and a_val, b_val the two operands plus their
 * offsets p.a_offset and p.b_offset. */
#define TE_NL_BROADCAST(p, params, geom, const_mask, a, b, ...)                                   \
  do {                                                                                            \
    te_nl_walk w;                                                                                 \
    const int32_t total = te_nl_walk_begin(&w, (geom));                                           \
    const uint8_t a_const = (const_mask) & TE_NL_A_CONST, b_const = (const_mask) & TE_NL_B_CONST; \
    int32_t i;                                                                                    \
    te_nl_read_s32(&(p).a_offset, &(params)->a_offset, (int32_t)(sizeof(p) / sizeof(int32_t)));  \
    for (i = 0; i < total; i++) {                                                                 \
      const int32_t a_val = (p).a_offset + TE_NL_LOAD_S8((a) + w.offset_a, a_const);             \
      const int32_t b_val = (p).b_offset + TE_NL_LOAD_S8((b) + w.offset_b, b_const);             \
      __VA_ARGS__                                                                                 \
      te_nl_walk_next(&w);                                                                        \
    }                                                                                             \
  } while (0)

/* ADD's (AddFunc) and SUB's (SubElementwise) arithmetic: both inputs rescaled onto twice the larger
 * input scale, then combined with `combine` (+ or -) and rescaled to the output. */
#define TE_NL_ADD_OR_SUB(out, a, b, geom, params, const_mask, combine)                                            \
  do {                                                                                                            \
    te_add_params_t p;                                                                                            \
    TE_NL_BROADCAST(p, params, geom, const_mask, a, b,                                                            \
      const int32_t scaled_a = te_nl_mbqm_lt1(a_val * ((int32_t)1 << p.left_shift), p.a_multiplier, p.a_shift);  \
      const int32_t scaled_b = te_nl_mbqm_lt1(b_val * ((int32_t)1 << p.left_shift), p.b_multiplier, p.b_shift);  \
      const int32_t raw = te_nl_mbqm_lt1(scaled_a combine scaled_b, p.out_multiplier, p.out_shift) + p.out_offset; \
      out[i] = (int8_t)te_nl_clamp(raw, p.act_min, p.act_max););                                                  \
  } while (0)

void te_add_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom,
               const te_add_params_t *params, uint8_t const_mask) {
  TE_NL_ADD_OR_SUB(out, a, b, geom, params, const_mask, +);
}

void te_mul_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom,
               const te_mul_params_t *params, uint8_t const_mask) {
  te_mul_params_t p;
  TE_NL_BROADCAST(p, params, geom, const_mask, a, b,
    const int32_t raw = p.out_offset + te_mul_by_quantized_multiplier(a_val * b_val, p.out_multiplier, p.out_shift);
    out[i] = (int8_t)te_nl_clamp(raw, p.act_min, p.act_max););
}

void te_quantize_f32_s8(int8_t *out, const float *in, int32_t count, float scale, int32_t zero_point) {
  int32_t i;
  for (i = 0; i < count; i++) {
    /* far outside int8 (or NaN): saturated */
    out[i] = (int8_t)te_nl_clamp(te_round_f32(in[i] / scale, 1024) + zero_point, -128, 127);
  }
}

void te_requantize_s8(int8_t *out, const int8_t *in, int32_t count, int32_t input_zero_point,
                      int32_t multiplier, int32_t shift, int32_t output_zero_point) {
  int32_t i;
  for (i = 0; i < count; i++) {
    const int32_t q = te_mul_by_quantized_multiplier((int32_t)in[i] - input_zero_point, multiplier, shift) + output_zero_point;
    out[i] = (int8_t)te_nl_clamp(q, -128, 127);
  }
}

static int32_t te_nl_load(const void *p, int32_t i, uint8_t bytes) {
  return bytes == 1 ? ((const int8_t *)p)[i] : bytes == 2 ? ((const int16_t *)p)[i] : ((const int32_t *)p)[i];
}

void te_requantize_int(void *out, uint8_t out_bytes, const void *in, uint8_t in_bytes, int32_t count,
                       int32_t input_zero_point, int32_t multiplier, int32_t shift, int32_t output_zero_point) {
  const int32_t lo = out_bytes == 1 ? -128 : out_bytes == 2 ? -32768 : (-2147483647L - 1L);
  const int32_t hi = out_bytes == 1 ? 127 : out_bytes == 2 ? 32767 : 2147483647L;
  int32_t i;
  for (i = 0; i < count; i++) {
    /* int32 arithmetic wraps as TFLM's does for int32 outputs */
    const int32_t q = (int32_t)((uint32_t)te_mul_by_quantized_multiplier(te_nl_load(in, i, in_bytes) - input_zero_point, multiplier, shift)
                                + (uint32_t)output_zero_point);
    const int32_t y = te_nl_clamp(q, lo, hi);
    if (out_bytes == 1) {
      ((int8_t *)out)[i] = (int8_t)y;
    } else if (out_bytes == 2) {
      ((int16_t *)out)[i] = (int16_t)y;
    } else {
      ((int32_t *)out)[i] = y;
    }
  }
}

void te_dequantize_s8_f32(float *out, const int8_t *in, int32_t count, float scale, int32_t zero_point) {
  int32_t i;
  /* TFLM multiplies in double then rounds to float; the exact product of a float scale and a
   * 9-bit integer fits a double, so one float multiply rounds to the same value. */
  for (i = 0; i < count; i++) {
    out[i] = scale * (float)((int32_t)in[i] - zero_point);
  }
}

void te_sub_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom,
               const te_add_params_t *params, uint8_t const_mask) {
  TE_NL_ADD_OR_SUB(out, a, b, geom, params, const_mask, -);
}

void te_squared_difference_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom,
                              const te_add_params_t *params, uint8_t const_mask) {
  te_add_params_t p;
  TE_NL_BROADCAST(p, params, geom, const_mask, a, b,
    const int32_t diff = te_nl_mbqm_lt1(a_val * ((int32_t)1 << p.left_shift), p.a_multiplier, p.a_shift) -
                         te_nl_mbqm_lt1(b_val * ((int32_t)1 << p.left_shift), p.b_multiplier, p.b_shift);
    const int32_t raw = te_mul_by_quantized_multiplier(diff * diff, p.out_multiplier, (int8_t)p.out_shift) + p.out_offset;
    out[i] = (int8_t)te_nl_clamp(raw, p.act_min, p.act_max););
}

/* The body of te_maxmin_s8/_s16: element type T, `load` reading one (TE_CONST when is_const). */
#define TE_NL_MAXMIN(T, load)                                                                     \
  do {                                                                                            \
    te_nl_walk w;                                                                                 \
    const int32_t total = te_nl_walk_begin(&w, geom);                                             \
    const uint8_t a_const = const_mask & TE_NL_A_CONST, b_const = const_mask & TE_NL_B_CONST;     \
    int32_t i;                                                                                    \
    for (i = 0; i < total; i++) {                                                                 \
      const T x = load(a + w.offset_a, a_const), y = load(b + w.offset_b, b_const);               \
      out[i] = maximum ? (x > y ? x : y) : (x < y ? x : y);                                       \
      te_nl_walk_next(&w);                                                                        \
    }                                                                                             \
  } while (0)

#define TE_NL_LOAD_S16(p, in_const) ((in_const) ? TE_RD_S16(p) : *(p))

void te_maxmin_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom, uint8_t const_mask,
                  uint8_t maximum) {
  TE_NL_MAXMIN(int8_t, TE_NL_LOAD_S8);
}

void te_maxmin_s16(int16_t *out, const int16_t *a, const int16_t *b, const int32_t *geom, uint8_t const_mask,
                   uint8_t maximum) {
  TE_NL_MAXMIN(int16_t, TE_NL_LOAD_S16);
}

void te_prelu_s8(int8_t *out, const int8_t *a, const int8_t *b, const int32_t *geom,
                 const te_prelu_params_t *params, uint8_t const_mask) {
  te_prelu_params_t p;
  TE_NL_BROADCAST(p, params, geom, const_mask, a, b,
    const int32_t raw = a_val >= 0 ? te_mul_by_quantized_multiplier(a_val, p.multiplier_1, (int8_t)p.shift_1)
                                   : te_mul_by_quantized_multiplier(a_val * b_val, p.multiplier_2, (int8_t)p.shift_2);
    out[i] = (int8_t)te_nl_clamp(raw + p.out_offset, -128, 127););
}
