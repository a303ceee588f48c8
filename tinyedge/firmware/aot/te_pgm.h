/* Reading constants (weights, biases, multipliers): plain loads everywhere, but from
 * program memory on AVR, where const data must stay in flash (PROGMEM) to fit in 2 KiB RAM. */
#ifndef TE_PGM_H
#define TE_PGM_H

#include <stdint.h>

#ifdef __AVR__
#include <avr/pgmspace.h>
#define TE_CONST PROGMEM
#define TE_RD_S8(p) ((int8_t)pgm_read_byte(p))
#define TE_RD_U8(p) ((uint8_t)pgm_read_byte(p))
#define TE_RD_S16(p) ((int16_t)pgm_read_word(p))
#define TE_RD_U16(p) ((uint16_t)pgm_read_word(p))
#define TE_RD_S32(p) ((int32_t)pgm_read_dword(p))
#else
#define TE_CONST
#define TE_RD_S8(p) (*(const int8_t *)(p))
#define TE_RD_U8(p) (*(const uint8_t *)(p))
#define TE_RD_S16(p) (*(const int16_t *)(p))
#define TE_RD_U16(p) (*(const uint16_t *)(p))
#define TE_RD_S32(p) (*(const int32_t *)(p))
#endif

#endif
