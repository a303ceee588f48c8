/* Fast int8 kernels of the AOT runtime for cores with the Arm DSP extension (armv7e-m: SXTB16,
 * SXTAB16 and SMLAD, two 16x16 multiply-accumulates per instruction). Bit for bit the same results
 * as te_kernels.c (TFLM's reference kernels): only the order of exact int32 sums changes. Elsewhere
 * (the host tests) the same C runs with portable versions of the three instructions.
 *
 * Activations are widened once to int16 (with the input offset added) in the order SXTB16 unpacks
 * a word of weights: x0 x2 x1 x3 per group of four, so the int8 weights stay int8. The convolutions
 * take their filter re-laid by the generator (`packed`): filter rows (out_c x k_h*k_w*in_c, TFLM's
 * order) padded with zeros to whole groups of four and to an even count, then rows 2i and 2i+1
 * interleaved one int32 word (four weights) at a time. */
#ifndef TE_DSP_H
#define TE_DSP_H

#include <stdint.h>

#include "te_dsp_insn.h"
#include "te_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of the `col` buffer the convolutions need: two im2col columns of int16, then (when in_c is
 * not a multiple of four) one of int8. */
#define TE_DSP_CONV_COL_BYTES(k_h, k_w, in_c) \
  ((((in_c) & 3) ? 5 : 4) * (((int32_t)(k_h) * (k_w) * (in_c) + 3) & ~3))
#define TE_DSP_CONV_SOLO_BYTES(k_h, k_w, in_c) \
  ((((in_c) & 3) ? 3 : 2) * (((int32_t)(k_h) * (k_w) * (in_c) + 3) & ~3))

/* Any CONV_2D (stride, padding, dilation; k_h <= 16). `col` holds TE_DSP_CONV_COL_BYTES, or with
 * `solo` (one pixel at a time, for large windows) TE_DSP_CONV_SOLO_BYTES. */
void te_dsp_conv2d(int8_t *out, const int8_t *in, const int32_t *packed, const int32_t *bias,
                   const te_window_t *w, const te_requant_t *q, int16_t *col, uint8_t solo);

/* 1x1, stride 1, no padding: two pixels at a time; `out` may be `in` (a smaller output is written
 * front to back, a larger one back to front). `col` holds TE_DSP_CONV_COL_BYTES(1, 1, in_c). */
void te_dsp_pointwise_conv2d(int8_t *out, const int8_t *in, const int32_t *packed, const int32_t *bias,
                             const te_window_t *w, const te_requant_t *q, int16_t *col);

/* te_conv2d_inplace (stride 1, same height and width, out_c == in_c) with im2col: `ring` holds
 * (pad_h + 1) input rows as there, `col` as for te_dsp_conv2d. */
void te_dsp_conv2d_inplace(int8_t *data, int8_t *ring, const int32_t *packed, const int32_t *bias,
                           const te_window_t *w, const te_requant_t *q, int16_t *col, uint8_t solo);

/* One output row of te_dsp_conv2d (any stride_w, padding and dilation across; k_h <= 16) from the k_h
 * input rows its windows read: rows[ky] (0 for a padding row); w's in_h, out_h and pad_h are not used.
 * `col` and `solo` as there. The rows of a fused residual block (te_residual.h). */
void te_dsp_conv2d_row(int8_t *out, const int8_t *const *rows, const int32_t *packed, const int32_t *bias,
                       const te_window_t *w, const te_requant_t *q, int16_t *col, uint8_t solo);

/* int16 elements of the `rows` buffer te_dsp_depthwise_conv2d needs. */
#define TE_DSP_DEPTHWISE_ROWS(k_h, k_w, out_w, stride_w) \
  ((int32_t)(k_h) * (((int32_t)(out_w) - 1) * (stride_w) + (k_w) + 2))

/* DEPTHWISE_CONV_2D with depth multiplier 1, dilation 1, k_h * ceil(k_w / 2) <= 16, pad_h < k_h: channel by
 * channel through a ring of k_h widened, zero-padded input rows. `out` may be `in` when the output
 * is no larger. */
void te_dsp_depthwise_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                             const te_window_t *w, const te_requant_t *q, int16_t *rows);

/* The same with each channel's whole zero-padded plane widened into `plane` first (in_c channels
 * of ((out_h-1)*stride_h + k_h) x ((out_w-1)*stride_w + k_w + 2) int16; with `transposed`, image
 * columns are the plane's lines, for images narrower than tall). Lines are computed whole. */
void te_dsp_depthwise_conv2d_plane(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                                   const te_window_t *w, const te_requant_t *q, int16_t *plane,
                                   uint8_t transposed);

/* te_fully_connected, four output rows at a time, activations widened on the fly (no buffer). */
void te_dsp_fully_connected(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                            int16_t batches, int16_t accum_depth, int16_t out_depth, const te_requant_t *q);

/* The same for accum_depth a multiple of four with the filter re-laid by the generator: rows padded
 * with zeros to a multiple of four, rows 4i..4i+3 interleaved one int32 word at a time. */
void te_dsp_fc_packed_general(int8_t *out, const int8_t *in, const int32_t *packed, const int32_t *bias,
                              int32_t batches, int32_t accum_depth, int32_t out_depth, const te_requant_t *q);
/* Its usual case (no input offset, one per-tensor scale with the short form; DSP cores only). */
void te_dsp_fc_packed_per_tensor(int8_t *out, const int8_t *in, const int32_t *packed, const int32_t *bias,
                                 int32_t batches, int32_t groups, int32_t out_depth, const te_requant_t *q);

/* Which of the two runs is decided here, inline in the caller: no frame of a function that only
 * chooses between them sits on the stack under the kernel's. */
__attribute__((always_inline))
static inline void te_dsp_fully_connected_packed(int8_t *out, const int8_t *in, const int32_t *packed,
                                                 const int32_t *bias, int32_t batches, int32_t accum_depth,
                                                 int32_t out_depth, const te_requant_t *q) {
#if TE_DSP_INSN
  if (q->input_offset == 0 && (accum_depth >> 2) > 0 && (q->per_channel & TE_REQUANT_PER_CHANNEL) == 0 &&
      (q->per_channel & TE_REQUANT_BOUNDED) && TE_RD_S8(q->shift) < 0) {
    te_dsp_fc_packed_per_tensor(out, in, packed, bias, batches, accum_depth >> 2, out_depth, q);
    return;
  }
#endif
  te_dsp_fc_packed_general(out, in, packed, bias, batches, accum_depth, out_depth, q);
}

/* te_dsp_conv2d whose output goes straight into the FULLY_CONNECTED reading it (batch 1): the conv's
 * outputs are made two pixels at a time into `values` (2 * out_c bytes) and added into the FC's
 * `fc_acc` (fc_depth int32), so the conv's output tensor is never stored. `fc_q` is the FC's
 * requantization with its real input offset. */
void te_dsp_conv2d_fc(int8_t *fc_out, const int8_t *in, const int32_t *packed, const int32_t *bias,
                      const te_window_t *w, const te_requant_t *q, int16_t *col, const int8_t *fc_filter,
                      const int32_t *fc_bias, int16_t fc_depth, const te_requant_t *fc_q, int32_t *fc_acc,
                      int8_t *values);

/* te_add_s8 for two same-shape int8 tensors (no broadcast, no constants), params as there, with the
 * short exact form of its three rescalings: the generator checks (255 << (left_shift + 1)) < 2^31,
 * which bounds every intermediate below 2^30. */
void te_dsp_add_s8(int8_t *out, const int8_t *a, const int8_t *b, int32_t count, const te_add_params_t *params);

#ifdef __cplusplus
}
#endif

#endif
