/* int8 kernels of the AOT runtime for the Cortex-M0+ (armv6-m: the RP2040), bit for bit the same
 * results as te_kernels.c (TFLM's reference kernels): only the order of exact int32 sums changes.
 * The M0+ has no DSP instructions, no hardware divide and no 32x32->64 multiply, but a one-cycle
 * 32-bit MUL: so each input is loaded once for two output channels, bounds are computed once per
 * window row instead of per tap, padded windows are gathered (offset added, zeros outside) before
 * the dot products, and the requantization's 64-bit product is built from four 16x16 MULs instead
 * of libgcc's __muldi3. Same signatures as the te_kernels.h functions they replace; the generator
 * calls them on armv6-m boards (tinyedge.aot.m0plus, applied by the aot runtime). Convolution windows
 * larger than the stack buffer (TE_M0_WINDOW_MAX values), and depthwise ones over 128 taps or whose
 * padded plane passes 3 KiB, fall back to the portable kernels. */
#ifndef TE_M0PLUS_H
#define TE_M0PLUS_H

#include <stdint.h>

#include "te_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TE_M0_WINDOW_MAX 1024

void te_m0_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                  const te_window_t *w, const te_requant_t *q);

void te_m0_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                          const te_window_t *w, const te_requant_t *q);

void te_m0_depthwise_conv2d(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                            const te_window_t *w, int16_t depth_multiplier, const te_requant_t *q);

void te_m0_depthwise_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                                    const te_window_t *w, const te_requant_t *q);

void te_m0_pointwise_conv2d_inplace(int8_t *data, int8_t *scratch, const int8_t *filter, const int32_t *bias,
                                    const te_window_t *w, const te_requant_t *q);

void te_m0_fully_connected(int8_t *out, const int8_t *in, const int8_t *filter, const int32_t *bias,
                           int16_t batches, int16_t accum_depth, int16_t out_depth, const te_requant_t *q);

/* te_mul_by_quantized_multiplier without a 64-bit multiply. */
int32_t te_m0_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int8_t shift);

#ifdef __cplusplus
}
#endif

#endif
