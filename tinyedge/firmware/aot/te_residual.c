/* See te_residual.h. */
#include "te_residual.h"

#include <string.h>

te_dim te_row_window(te_window_t *row, const te_window_t *w, te_dim oy) {
  const int16_t start = (int16_t)(oy * w->stride_h - w->pad_h);
  const int16_t end = (int16_t)(start + w->dil_h * (w->k_h - 1) + 1);
  const int16_t first = start < 0 ? 0 : start;
  const int16_t last = end > w->in_h ? w->in_h : end;
  memcpy(row, w, sizeof *row);
  row->pad_h = (int8_t)(first - start);
  row->in_h = (te_dim)(last - first);
  row->out_h = 1;
  return (te_dim)first;
}

te_dim te_band_advance(te_window_t *row, const te_window_t *w, te_dim r, int8_t *band, int32_t row_bytes,
                       te_dim *lo, te_dim *hi) {
  const te_dim first = te_row_window(row, w, r);
  if (first > *lo) {
    if (*hi > first) {
      memmove(band, band + (int32_t)(first - *lo) * row_bytes, (size_t)((int32_t)(*hi - first) * row_bytes));
    } else {
      *hi = first;
    }
    *lo = first;
  }
  return (te_dim)(first + row->in_h);
}

te_dim te_rows_end(const te_window_t *w, te_dim oy) {
  const int16_t end = (int16_t)(oy * w->stride_h - w->pad_h + w->dil_h * (w->k_h - 1) + 1);
  return (te_dim)(end > w->in_h ? w->in_h : end);
}

void te_row_pointers(const int8_t **out, const te_window_t *w, te_dim oy, const int8_t *in, int32_t row_bytes,
                     te_dim ring) {
  const int16_t start = (int16_t)(oy * w->stride_h - w->pad_h);
  te_dim ky;
  for (ky = 0; ky < w->k_h; ++ky) {
    const int16_t iy = (int16_t)(start + w->dil_h * ky);
    out[ky] = iy < 0 || iy >= w->in_h ? 0 : in + (int32_t)(ring ? iy % ring : iy) * row_bytes;
  }
}
