/* SHA-256 (FIPS 180-4): the straightforward, small implementation. */
#include "te_sha256.h"

#include <string.h>

#if !defined(TE_LIFECYCLE) && !defined(__AVR__)
#define TE_LIFECYCLE 1
#endif

#if TE_LIFECYCLE

static const uint32_t K[64] = {
  0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
  0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
  0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
  0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
  0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
  0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
  0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
  0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32u - (n))))

static void compress(te_sha256_t *ctx) {
  uint32_t w[64];
  uint32_t s[8];
  uint8_t i;
  for (i = 0; i < 16u; i++) {
    const uint8_t *p = ctx->block + 4u * i;
    w[i] = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
  }
  for (i = 16; i < 64u; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  memcpy(s, ctx->state, sizeof s);
  for (i = 0; i < 64u; i++) {
    uint32_t t1 = s[7] + (ROR(s[4], 6) ^ ROR(s[4], 11) ^ ROR(s[4], 25)) + ((s[4] & s[5]) ^ (~s[4] & s[6])) + K[i] + w[i];
    uint32_t t2 = (ROR(s[0], 2) ^ ROR(s[0], 13) ^ ROR(s[0], 22)) + ((s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]));
    memmove(s + 1, s, 7u * sizeof s[0]);
    s[4] += t1;
    s[0] = t1 + t2;
  }
  for (i = 0; i < 8u; i++) {
    ctx->state[i] += s[i];
  }
}

void te_sha256_init(te_sha256_t *ctx) {
  static const uint32_t initial[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                      0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
  memcpy(ctx->state, initial, sizeof initial);
  ctx->length = 0;
  ctx->fill = 0;
}

void te_sha256_update(te_sha256_t *ctx, const void *data, uint32_t len) {
  const uint8_t *p = (const uint8_t *)data;
  ctx->length += len;
  while (len--) {
    ctx->block[ctx->fill++] = *p++;
    if (ctx->fill == 64u) {
      compress(ctx);
      ctx->fill = 0;
    }
  }
}

void te_sha256_final(te_sha256_t *ctx, uint8_t digest[32]) {
  uint64_t bits = ctx->length * 8u;
  uint8_t i;
  ctx->block[ctx->fill++] = 0x80;
  if (ctx->fill > 56u) {
    memset(ctx->block + ctx->fill, 0, 64u - ctx->fill);
    compress(ctx);
    ctx->fill = 0;
  }
  memset(ctx->block + ctx->fill, 0, 56u - ctx->fill);
  for (i = 0; i < 8u; i++) {
    ctx->block[63u - i] = (uint8_t)(bits >> (8u * i));
  }
  compress(ctx);
  for (i = 0; i < 32u; i++) {
    digest[i] = (uint8_t)(ctx->state[i / 4u] >> (24u - 8u * (i % 4u)));
  }
}

#endif
