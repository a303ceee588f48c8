/* SHA-256 (FIPS 180-4), streaming, for the lifecycle's image checks. */
#ifndef TE_SHA256_H
#define TE_SHA256_H

#include <stdint.h>

typedef struct {
  uint32_t state[8];
  uint64_t length;
  uint8_t block[64];
  uint8_t fill;
} te_sha256_t;

void te_sha256_init(te_sha256_t *ctx);
void te_sha256_update(te_sha256_t *ctx, const void *data, uint32_t len);
void te_sha256_final(te_sha256_t *ctx, uint8_t digest[32]);

#endif
