/* A residual block row by row (tinyedge/aot/residual.py): CONV_2D -> CONV_2D (stride 1) -> ADD with the
 * block's input or with a CONV_2D of it, computed one output row at a time by the same kernels the ops
 * run alone (te_kernels.c / te_dsp.c), each called on a window of whole rows. The first conv's rows go
 * into a band of k_h rows (each computed once; on DSP cores a ring read through row pointers by
 * te_dsp_conv2d_row, so no row is moved), so its whole output never exists, and the block's
 * output may be written over its input row by row: the same arithmetic in another order, bit for bit.
 * Not for AVR: the row windows are built in RAM, where its kernels read their window from flash. */
#ifndef TE_RESIDUAL_H
#define TE_RESIDUAL_H

#include <stdint.h>

#include "te_params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* `row` = convolution `w`'s window for its output row `oy` alone, over the input rows that row reads
 * (its padding rows left as padding); returns the first of those input rows. */
te_dim te_row_window(te_window_t *row, const te_window_t *w, te_dim oy);

/* For output row `r` of the second convolution `w`, whose input rows [*lo, *hi) are the band's rows
 * (`row_bytes` each, from `band`): drops the rows before the first one row r reads (moving the rest to
 * the band's start), sets `row` to row r's window over the band and returns the end of the input rows
 * it reads (rows from *hi up to it are then computed into the band). */
te_dim te_band_advance(te_window_t *row, const te_window_t *w, te_dim r, int8_t *band, int32_t row_bytes,
                       te_dim *lo, te_dim *hi);

/* The end of the input rows that output row `oy` of convolution `w` reads. */
te_dim te_rows_end(const te_window_t *w, te_dim oy);

/* out[ky] = the input row output row `oy` of convolution `w` reads at tap row ky, 0 for a padding row:
 * input row iy at in + iy * row_bytes, or with `ring` rows in a ring, at in + (iy % ring) * row_bytes
 * (for te_dsp_conv2d_row). */
void te_row_pointers(const int8_t **out, const te_window_t *w, te_dim oy, const int8_t *in, int32_t row_bytes,
                     te_dim ring);

#ifdef __cplusplus
}
#endif

#endif
