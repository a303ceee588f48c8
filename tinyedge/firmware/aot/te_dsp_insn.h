/* The Arm DSP extension's SXTB16, SXTAB16 and SMLAD (armv7e-m: Cortex-M4, M7) as C functions, for
 * te_dsp.c and te_recurrent.c. TE_DSP_INSN is 1 where they are the instructions themselves; elsewhere
 * (the host tests) they are portable C with the same results (little-endian). */
#ifndef TE_DSP_INSN_H
#define TE_DSP_INSN_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(__AVR__)
#define TE_DSP_INSN 1
static inline int32_t te_sxtb16(int32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
  return r;
}
static inline int32_t te_sxtb16_ror8(int32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
static inline int32_t te_sxtab16(int32_t a, int32_t x) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(x));
  return r;
}
static inline int32_t te_sxtab16_ror8(int32_t a, int32_t x) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
  return r;
}
static inline int32_t te_smlad(int32_t x, int32_t y, int32_t acc) {
  int32_t r;
  __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
  return r;
}
#else
#define TE_DSP_INSN 0
static inline int32_t te_lo16(int32_t x) { return (int16_t)(uint16_t)((uint32_t)x & 0xFFFFu); }
static inline int32_t te_hi16(int32_t x) { return (int16_t)(uint16_t)((uint32_t)x >> 16); }
static inline int32_t te_byte(int32_t x, int shift) { return (int8_t)(uint8_t)((uint32_t)x >> shift); }
static inline int32_t te_pack16(int32_t lo, int32_t hi) {
  return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}
static inline int32_t te_sxtb16(int32_t x) { return te_pack16(te_byte(x, 0), te_byte(x, 16)); }
static inline int32_t te_sxtb16_ror8(int32_t x) { return te_pack16(te_byte(x, 8), te_byte(x, 24)); }
static inline int32_t te_sxtab16(int32_t a, int32_t x) {
  return te_pack16(te_lo16(a) + te_byte(x, 0), te_hi16(a) + te_byte(x, 16));
}
static inline int32_t te_sxtab16_ror8(int32_t a, int32_t x) {
  return te_pack16(te_lo16(a) + te_byte(x, 8), te_hi16(a) + te_byte(x, 24));
}
static inline int32_t te_smlad(int32_t x, int32_t y, int32_t acc) {
  return acc + te_lo16(x) * te_lo16(y) + te_hi16(x) * te_hi16(y);
}
#endif

/* Four int8 values as one little-endian word, from any alignment. */
static inline int32_t te_read_s8x4(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

#endif
