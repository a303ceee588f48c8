/* int8 kernels of the AOT runtime: TFLM's reference kernels, bit for bit, in C99.
 * Every quantization parameter (per-channel multipliers and shifts, offsets, activation clamps)
 * is computed by the generator ahead of time; constants are read through te_pgm.h so they may
 * live in flash (PROGMEM) on AVR. Sizes use int16_t dims and int32_t offsets: `int` is 16 bits
 * on AVR. */
#ifndef TE_KERNELS_H
#define TE_KERNELS_H

#include <stdint.h>

#include "te_params.h"
#include "te_pgm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TFLM's MultiplyByQuantizedMultiplier (double rounding: SaturatingRoundingDoublingHighMul then
 * RoundingDivideByPOT). `shift` > 0 shifts left. */
int32_t te_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int8_t shift);

/* te_window_t, te_requant_t and te_add_params_t: te_params.h. */

void te_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
               const te_window_t *w, const te_requant_t *q);

/* CONV_2D with groups (TFLM's ConvPerChannel with filter depth in_c / groups): output channel oc reads
 * the input channels of its group, (oc / (out_c / groups)) * depth onwards. */
void te_conv2d_grouped(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                       const te_window_t *w, int16_t groups, const te_requant_t *q);

void te_depthwise_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                         const te_window_t *w, int16_t depth_multiplier, const te_requant_t *q);

/* In-place variants: the output overwrites the input's bytes (`data`), with `scratch` as the only
 * extra memory. The generator picks them only when the geometry allows it (see each kernel). */

/* depth_multiplier 1 (out_c == in_c), any stride/padding/dilation, output no larger than the input:
 * each channel's in_h*in_w plane is gathered into `scratch` (in_h*in_w bytes) before its outputs,
 * which only touch that channel's slots, are written. */
void te_depthwise_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                                 const te_window_t *w, const te_requant_t *q);

/* stride 1, dilation 1, out_h == in_h, out_w == in_w, out_c == in_c: rows top to bottom; `scratch`
 * holds the pad_h input rows above the current one (a ring) and one output row: (pad_h + 1) rows. */
void te_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                       const te_window_t *w, const te_requant_t *q);

/* 1x1, stride 1, no padding, out_c <= in_c: pixel by pixel through `scratch` (out_c bytes). */
void te_pointwise_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                                 const te_window_t *w, const te_requant_t *q);

/* out[batches][out_depth] from in[batches][accum_depth] and filter[out_depth][accum_depth]. */
void te_fully_connected(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                        int16_t batches, int16_t accum_depth, int16_t out_depth, const te_requant_t *q);

void te_average_pool(int8_t *out, const int8_t *in, const te_window_t *w, int8_t act_min, int8_t act_max);
void te_max_pool(int8_t *out, const int8_t *in, const te_window_t *w, int8_t act_min, int8_t act_max);

/* 4-D pad: in_dims/pad_before give the shape and leading padding per dimension, out_dims the result. */
void te_pad(int8_t *out, const int8_t *in, const te_dim *in_dims, const te_dim *out_dims,
            const te_dim *pad_before, int8_t pad_value);

/* Copy `outer` blocks of `block` bytes from src (contiguous) into dst, `dst_stride` bytes apart:
 * one input of a CONCATENATION, or a plain copy when outer is 1. */
void te_copy_blocks(uint8_t *dst, const uint8_t *src, int32_t outer, int32_t block, int32_t dst_stride);
/* The same with src a TE_CONST array. */
void te_copy_blocks_const(uint8_t *dst, const uint8_t *src, int32_t outer, int32_t block, int32_t dst_stride);

/* TRANSPOSE_CONV (reference_integer_ops::TransposeConv): every input pixel's products scattered into
 * `scratch` (an int32 per output element, out_h * out_w * out_c), then each requantized. The window's
 * in_* are the input's, out_* the output's; dilation 1. */
void te_transpose_conv(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                       const te_window_t *w, const te_requant_t *q, int32_t *scratch);

/* out row i = in row rows[i] (rows: TE_CONST), row_bytes bytes each: RESIZE_NEAREST_NEIGHBOR, GATHER,
 * DEPTH_TO_SPACE and SPACE_TO_DEPTH. */
void te_gather_rows(uint8_t *out, const uint8_t *in, const int32_t *rows, int32_t count, int32_t row_bytes);

/* 4-D transpose: out[a][b][c][d] = in[a*in_strides[0] + b*in_strides[1] + c*in_strides[2] + d*in_strides[3]],
 * the input's strides taken in the permutation's order. */
void te_transpose(int8_t *out, const int8_t *in, const te_dim *out_dims, const int32_t *in_strides);

#ifdef __cplusplus
}
#endif

#endif
