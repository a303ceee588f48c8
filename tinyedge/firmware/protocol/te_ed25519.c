/* Ed25519 verification and SHA-512, written from RFC 8032 and FIPS 180-4 (te_ed25519.h).
 *
 * Field elements mod p = 2^255 - 19 are 16 signed 64-bit limbs of 16 bits (radix 2^16), reduced
 * lazily: 2^256 = 38 (mod p) folds a product's upper half back. Points are in extended twisted
 * Edwards coordinates (X:Y:Z:T), x = X/Z, y = Y/Z, xy = T/Z, added with the unified formula for
 * a = -1 (which also doubles). Scalars are reduced mod the group order L bit by bit. */
#include "te_ed25519.h"

/* Compiled into firmware generated with --signing-key only (its flash cost is nobody else's). */
#ifdef TE_SIGNED_UPDATES

#include <string.h>

/* ---- SHA-512 ---- */

/* The first 64 bits of the fractional parts of the cube roots of the first 80 primes. */
static const uint64_t K512[80] = {
0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL,
0xe9b5dba58189dbbcULL, 0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL,
0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL, 0xd807aa98a3030242ULL,
0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL,
0xc19bf174cf692694ULL, 0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL,
0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL, 0x2de92c6f592b0275ULL,
0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL,
0xbf597fc7beef0ee4ULL, 0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL,
0x06ca6351e003826fULL, 0x142929670a0e6e70ULL, 0x27b70a8546d22ffcULL,
0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL,
0x92722c851482353bULL, 0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL,
0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL, 0xd192e819d6ef5218ULL,
0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL,
0x34b0bcb5e19b48a8ULL, 0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL,
0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL, 0x748f82ee5defb2fcULL,
0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL,
0xc67178f2e372532bULL, 0xca273eceea26619cULL, 0xd186b8c721c0c207ULL,
0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL, 0x06f067aa72176fbaULL,
0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL,
0x431d67c49c100d4cULL, 0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL,
0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL
};

static uint64_t ror(uint64_t x, unsigned n) { return (x >> n) | (x << (64u - n)); }

static uint64_t load_be64(const uint8_t *p) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

static void sha512_block(te_sha512_t *sha, const uint8_t *block) {
  uint64_t w[80], s[8], t1, t2;
  int i;
  for (i = 0; i < 16; i++) w[i] = load_be64(block + 8 * i);
  for (i = 16; i < 80; i++) {
    uint64_t s0 = ror(w[i - 15], 1) ^ ror(w[i - 15], 8) ^ (w[i - 15] >> 7);
    uint64_t s1 = ror(w[i - 2], 19) ^ ror(w[i - 2], 61) ^ (w[i - 2] >> 6);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  memcpy(s, sha->state, sizeof s);
  for (i = 0; i < 80; i++) {
    t1 = s[7] + (ror(s[4], 14) ^ ror(s[4], 18) ^ ror(s[4], 41)) + ((s[4] & s[5]) ^ (~s[4] & s[6])) + K512[i] + w[i];
    t2 = (ror(s[0], 28) ^ ror(s[0], 34) ^ ror(s[0], 39)) + ((s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]));
    memmove(s + 1, s, 7 * sizeof s[0]);
    s[4] += t1;
    s[0] = t1 + t2;
  }
  for (i = 0; i < 8; i++) sha->state[i] += s[i];
}

void te_sha512_init(te_sha512_t *sha) {
  /* The first 64 bits of the fractional parts of the square roots of the first 8 primes. */
  static const uint64_t initial[8] = {0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};
  memcpy(sha->state, initial, sizeof initial);
  sha->bytes = 0;
}

void te_sha512_update(te_sha512_t *sha, const void *data, uint32_t len) {
  const uint8_t *p = (const uint8_t *)data;
  while (len) {
    uint32_t used = (uint32_t)(sha->bytes & 127u);
    uint32_t n = 128u - used < len ? 128u - used : len;
    memcpy(sha->block + used, p, n);
    sha->bytes += n;
    p += n;
    len -= n;
    if ((sha->bytes & 127u) == 0) sha512_block(sha, sha->block);
  }
}

void te_sha512_final(te_sha512_t *sha, uint8_t digest[64]) {
  uint64_t bits = sha->bytes * 8u;
  uint8_t pad[144];
  uint32_t used = (uint32_t)(sha->bytes & 127u);
  uint32_t n = (used < 112u ? 112u : 240u) - used;
  int i;
  memset(pad, 0, sizeof pad);
  pad[0] = 0x80;
  for (i = 0; i < 8; i++) pad[n + 8 + i] = (uint8_t)(bits >> (56 - 8 * i));   /* a 128-bit length */
  te_sha512_update(sha, pad, n + 16u);
  for (i = 0; i < 64; i++) digest[i] = (uint8_t)(sha->state[i / 8] >> (56 - 8 * (i % 8)));
}

/* ---- the field GF(2^255 - 19) ---- */

typedef int64_t gf[16];

static void gf_set(gf r, int64_t v) {
  memset(r, 0, sizeof(gf));
  r[0] = v;
}

static void gf_copy(gf r, const gf a) { memcpy(r, a, sizeof(gf)); }

/* Bring every limb to 0..65535 (once; the top limb's carry folds into the bottom as 38 times it). */
static void gf_carry(gf a) {
  int i;
  for (i = 0; i < 16; i++) {
    int64_t c = a[i] >> 16;   /* floor division: negative limbs borrow */
    a[i] -= c * 65536;
    if (i < 15) a[i + 1] += c; else a[0] += 38 * c;
  }
}

static void gf_add(gf r, const gf a, const gf b) {
  int i;
  for (i = 0; i < 16; i++) r[i] = a[i] + b[i];
}

static void gf_sub(gf r, const gf a, const gf b) {
  int i;
  for (i = 0; i < 16; i++) r[i] = a[i] - b[i];
}

static void gf_mul(gf r, const gf a, const gf b) {
  int64_t t[31];
  int i, j;
  memset(t, 0, sizeof t);
  for (i = 0; i < 16; i++)
    for (j = 0; j < 16; j++) t[i + j] += a[i] * b[j];
  for (i = 16; i < 31; i++) t[i - 16] += 38 * t[i];
  memcpy(r, t, sizeof(gf));
  gf_carry(r);
  gf_carry(r);
}

/* a^e for a little-endian 256-bit exponent. */
static void gf_pow(gf r, const gf a, const uint8_t e[32]) {
  gf t;
  int i;
  gf_set(t, 1);
  for (i = 255; i >= 0; i--) {
    gf_mul(t, t, t);
    if ((e[i >> 3] >> (i & 7)) & 1) gf_mul(t, t, a);
  }
  gf_copy(r, t);
}

/* The exponents p - 2 (inverse), (p - 5) / 8 (square roots) and (p - 1) / 4 (sqrt(-1) = 2^that):
 * each is 0xff bytes between a low and a high byte. */
static void gf_pow_special(gf r, const gf a, uint8_t low, uint8_t high) {
  uint8_t e[32];
  memset(e, 0xff, sizeof e);
  e[0] = low;
  e[31] = high;
  gf_pow(r, a, e);
}

static void gf_invert(gf r, const gf a) { gf_pow_special(r, a, 0xeb, 0x7f); }

/* The unique representative in 0..p-1, little-endian. */
static void gf_pack(uint8_t out[32], const gf a) {
  gf t, m;
  int i, k;
  gf_copy(t, a);
  for (k = 0; k < 4; k++) gf_carry(t);
  for (k = 0; k < 2; k++) {   /* t < 2^256 < 3p: subtract p while it does not go negative */
    m[0] = t[0] - 0xffed;
    for (i = 1; i < 16; i++) {
      m[i] = t[i] - (i == 15 ? 0x7fff : 0xffff) - ((m[i - 1] >> 16) & 1);
      m[i - 1] &= 0xffff;
    }
    if (!((m[15] >> 16) & 1)) gf_copy(t, m);
  }
  for (i = 0; i < 16; i++) {
    out[2 * i] = (uint8_t)t[i];
    out[2 * i + 1] = (uint8_t)(t[i] >> 8);
  }
}

static void gf_unpack(gf r, const uint8_t in[32]) {
  int i;
  for (i = 0; i < 16; i++) r[i] = in[2 * i] | ((int64_t)in[2 * i + 1] << 8);
  r[15] &= 0x7fff;
}

static int gf_equal(const gf a, const gf b) {
  uint8_t x[32], y[32];
  gf_pack(x, a);
  gf_pack(y, b);
  return memcmp(x, y, 32) == 0;
}

static int gf_is_odd(const gf a) {
  uint8_t x[32];
  gf_pack(x, a);
  return x[0] & 1;
}

/* ---- the curve -x^2 + y^2 = 1 + d x^2 y^2 ---- */

typedef struct {
  gf x, y, z, t;
} point;

static gf curve_d, curve_2d, sqrt_minus_1;

static void curve_constants(void) {
  gf n, m;
  gf_set(n, -121665);
  gf_set(m, 121666);
  gf_invert(m, m);
  gf_mul(curve_d, n, m);
  gf_add(curve_2d, curve_d, curve_d);
  gf_set(n, 2);
  gf_pow_special(sqrt_minus_1, n, 0xfb, 0x1f);
}

static void point_add(point *r, const point *p, const point *q) {
  gf a, b, c, d, e, f, g, h, t;
  gf_sub(a, p->y, p->x);
  gf_sub(t, q->y, q->x);
  gf_mul(a, a, t);
  gf_add(b, p->y, p->x);
  gf_add(t, q->y, q->x);
  gf_mul(b, b, t);
  gf_mul(c, p->t, q->t);
  gf_mul(c, c, curve_2d);
  gf_mul(d, p->z, q->z);
  gf_add(d, d, d);
  gf_sub(e, b, a);
  gf_sub(f, d, c);
  gf_add(g, d, c);
  gf_add(h, b, a);
  gf_mul(r->x, e, f);
  gf_mul(r->y, g, h);
  gf_mul(r->t, e, h);
  gf_mul(r->z, f, g);
}

/* [k]p for a little-endian 256-bit scalar, by double and add. */
static void point_multiply(point *r, const point *p, const uint8_t k[32]) {
  point acc;
  int i;
  gf_set(acc.x, 0);
  gf_set(acc.y, 1);
  gf_set(acc.z, 1);
  gf_set(acc.t, 0);
  for (i = 255; i >= 0; i--) {
    point_add(&acc, &acc, &acc);
    if ((k[i >> 3] >> (i & 7)) & 1) point_add(&acc, &acc, p);
  }
  *r = acc;
}

static void point_encode(uint8_t out[32], const point *p) {
  gf zi, x, y;
  gf_invert(zi, p->z);
  gf_mul(x, p->x, zi);
  gf_mul(y, p->y, zi);
  gf_pack(out, y);
  out[31] ^= (uint8_t)(gf_is_odd(x) << 7);
}

/* RFC 8032 5.1.3; 0 when the bytes are no point's encoding. */
static int point_decode(point *r, const uint8_t in[32]) {
  gf u, v, v3, w, check;
  uint8_t canonical[32];
  int sign = in[31] >> 7;
  gf_unpack(r->y, in);
  gf_pack(canonical, r->y);
  canonical[31] |= (uint8_t)(sign << 7);
  if (memcmp(canonical, in, 32) != 0) return 0;   /* y >= p */
  gf_set(r->z, 1);
  gf_mul(u, r->y, r->y);
  gf_mul(v, u, curve_d);
  gf_sub(u, u, r->z);            /* u = y^2 - 1 */
  gf_add(v, v, r->z);            /* v = d y^2 + 1 */
  gf_mul(v3, v, v);
  gf_mul(v3, v3, v);             /* v^3 */
  gf_mul(w, v3, v3);
  gf_mul(w, w, v);
  gf_mul(w, w, u);               /* u v^7 */
  gf_pow_special(w, w, 0xfd, 0x0f);
  gf_mul(w, w, v3);
  gf_mul(r->x, w, u);            /* x = u v^3 (u v^7)^((p-5)/8) */
  gf_mul(check, r->x, r->x);
  gf_mul(check, check, v);
  if (!gf_equal(check, u)) {
    gf_set(w, 0);
    gf_sub(w, w, u);
    if (!gf_equal(check, w)) return 0;
    gf_mul(r->x, r->x, sqrt_minus_1);
  }
  gf_set(w, 0);
  if (gf_equal(r->x, w) && sign) return 0;
  if (gf_is_odd(r->x) != sign) gf_sub(r->x, w, r->x);
  gf_mul(r->t, r->x, r->y);
  return 1;
}

/* ---- scalars mod L = 2^252 + 27742317777372353535851937790883648493 ---- */

static const uint32_t ORDER[8] = {0x5cf5d3edu, 0x5812631au, 0xa2f79cd6u, 0x14def9deu, 0u, 0u, 0u, 0x10000000u};

static int below_order(const uint32_t s[8]) {
  int i;
  for (i = 7; i >= 0; i--) {
    if (s[i] != ORDER[i]) return s[i] < ORDER[i];
  }
  return 0;
}

static void subtract_order(uint32_t s[8]) {
  uint64_t borrow = 0;
  int i;
  for (i = 0; i < 8; i++) {
    uint64_t d = (uint64_t)s[i] - ORDER[i] - borrow;
    s[i] = (uint32_t)d;
    borrow = (d >> 32) & 1u;
  }
}

/* A little-endian number of len bytes mod L, shifted in one bit at a time. */
static void reduce_mod_order(uint8_t out[32], const uint8_t *in, int len) {
  uint32_t r[8];
  int bit, i;
  memset(r, 0, sizeof r);
  for (bit = 8 * len - 1; bit >= 0; bit--) {
    for (i = 7; i > 0; i--) r[i] = (r[i] << 1) | (r[i - 1] >> 31);
    r[0] = (r[0] << 1) | ((in[bit >> 3] >> (bit & 7)) & 1u);
    if (!below_order(r)) subtract_order(r);
  }
  for (i = 0; i < 32; i++) out[i] = (uint8_t)(r[i / 4] >> (8 * (i % 4)));
}

int te_ed25519_verify(const uint8_t signature[64], const uint8_t public_key[32], const uint8_t *message,
                      uint32_t len) {
  static const uint8_t base_encoding[32] = {0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
                                            0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
                                            0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66};
  point a, base, sb, ha;
  te_sha512_t sha;
  uint8_t digest[64], h[32], encoded[32];
  uint32_t s[8];
  int i;
  for (i = 0; i < 8; i++) {
    s[i] = (uint32_t)signature[32 + 4 * i] | ((uint32_t)signature[33 + 4 * i] << 8) |
           ((uint32_t)signature[34 + 4 * i] << 16) | ((uint32_t)signature[35 + 4 * i] << 24);
  }
  if (!below_order(s)) return 0;   /* S must be below L (malleability) */
  curve_constants();
  if (!point_decode(&a, public_key) || !point_decode(&base, base_encoding)) return 0;
  te_sha512_init(&sha);
  te_sha512_update(&sha, signature, 32);
  te_sha512_update(&sha, public_key, 32);
  te_sha512_update(&sha, message, len);
  te_sha512_final(&sha, digest);
  reduce_mod_order(h, digest, 64);
  /* [S]B - [h]A must be R: compare encodings. */
  {
    gf zero;
    gf_set(zero, 0);
    gf_sub(a.x, zero, a.x);
    gf_sub(a.t, zero, a.t);
  }
  point_multiply(&sb, &base, signature + 32);
  point_multiply(&ha, &a, h);
  point_add(&sb, &sb, &ha);
  point_encode(encoded, &sb);
  return memcmp(encoded, signature, 32) == 0;
}

#endif
