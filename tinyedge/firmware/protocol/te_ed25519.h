/* Ed25519 signature verification (RFC 8032, section 5.1.7) and SHA-512 (FIPS 180-4): what a board
 * needs to check that an update was signed with the key its firmware was generated with. Small and
 * slow on purpose (no tables; public inputs only, so nothing needs to run in constant time). */
#ifndef TE_ED25519_H
#define TE_ED25519_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  uint64_t state[8];
  uint64_t bytes;
  uint8_t block[128];
} te_sha512_t;

void te_sha512_init(te_sha512_t *sha);
void te_sha512_update(te_sha512_t *sha, const void *data, uint32_t len);
void te_sha512_final(te_sha512_t *sha, uint8_t digest[64]);

/* 1 when `signature` is a valid Ed25519 signature of `message` by `public_key`, else 0. */
int te_ed25519_verify(const uint8_t signature[64], const uint8_t public_key[32], const uint8_t *message,
                      uint32_t len);

#ifdef __cplusplus
}
#endif

#endif
