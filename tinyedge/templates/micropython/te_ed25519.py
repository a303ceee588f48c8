"""Ed25519 signature verification (RFC 8032, 5.1.7) with its SHA-512 (FIPS 180-4), for MicroPython
boards whose firmware was generated with --signing-key (te_slots.py checks an update's signature with
it; it ships only in such firmware). Plain Python on MicroPython's arbitrary-precision ints: no
constant-time care is needed to verify a public signature. Written from the RFC, as te_ed25519.c is:
extended twisted Edwards coordinates, [S]B - [h]A by one shared double-and-add, compared with R's
encoding (the check te_ed25519.c makes)."""
import hashlib
from binascii import unhexlify

P = (1 << 255) - 19
L = (1 << 252) + 27742317777372353535851937790883648493
D2 = 16295367250680780974490674513165176452449235426866156013048779062215315747161   # 2d, d = -121665/121666
D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
BASE = (15112221349535400772501151409588531511454012693041857206046113283949847762202,
        46316835694926478169428394003475163141307993866256225615783033603165251855960)
M64 = (1 << 64) - 1

# The first 64 bits of the fractional parts of the cube roots of the first 80 primes (K) and of the
# square roots of the first 8 (the initial hash value).
_K = unhexlify(
    "428a2f98d728ae227137449123ef65cdb5c0fbcfec4d3b2fe9b5dba58189dbbc3956c25bf348b53859f111f1b605d019"
    "923f82a4af194f9bab1c5ed5da6d8118d807aa98a303024212835b0145706fbe243185be4ee4b28c550c7dc3d5ffb4e2"
    "72be5d74f27b896f80deb1fe3b1696b19bdc06a725c71235c19bf174cf692694e49b69c19ef14ad2efbe4786384f25e3"
    "0fc19dc68b8cd5b5240ca1cc77ac9c652de92c6f592b02754a7484aa6ea6e4835cb0a9dcbd41fbd476f988da831153b5"
    "983e5152ee66dfaba831c66d2db43210b00327c898fb213fbf597fc7beef0ee4c6e00bf33da88fc2d5a79147930aa725"
    "06ca6351e003826f142929670a0e6e7027b70a8546d22ffc2e1b21385c26c9264d2c6dfc5ac42aed53380d139d95b3df"
    "650a73548baf63de766a0abb3c77b2a881c2c92e47edaee692722c851482353ba2bfe8a14cf10364a81a664bbc423001"
    "c24b8b70d0f89791c76c51a30654be30d192e819d6ef5218d69906245565a910f40e35855771202a106aa07032bbd1b8"
    "19a4c116b8d2d0c81e376c085141ab532748774cdf8eeb9934b0bcb5e19b48a8391c0cb3c5c95a634ed8aa4ae3418acb"
    "5b9cca4f7763e373682e6ff3d6b2b8a3748f82ee5defb2fc78a5636f43172f6084c87814a1f0ab728cc702081a6439ec"
    "90befffa23631e28a4506cebde82bde9bef9a3f7b2c67915c67178f2e372532bca273eceea26619cd186b8c721c0c207"
    "eada7dd6cde0eb1ef57d4f7fee6ed17806f067aa72176fba0a637dc5a2c898a6113f9804bef90dae1b710b35131c471b"
    "28db77f523047d8432caab7b40c724933c9ebe0a15c9bebc431d67c49c100d4c4cc5d4becb3e42b6597f299cfc657e2a"
    "5fcb6fab3ad6faec6c44198c4a475817")
_H0 = unhexlify("6a09e667f3bcc908bb67ae8584caa73b3c6ef372fe94f82ba54ff53a5f1d36f1510e527fade682d19b05688c2b3e6c1f1f83d9abfb41bd6b5be0cd19137e2179")


def _words(data):
    return [int.from_bytes(data[i:i + 8], "big") for i in range(0, len(data), 8)]


K512 = _words(_K)
H512 = _words(_H0)


def _ror(x, n):
    return ((x >> n) | (x << (64 - n))) & M64


def _block(h, block):
    w = _words(block)
    for t in range(16, 80):
        a, b = w[t - 15], w[t - 2]
        s0 = _ror(a, 1) ^ _ror(a, 8) ^ (a >> 7)
        s1 = _ror(b, 19) ^ _ror(b, 61) ^ (b >> 6)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & M64)
    a, b, c, d, e, f, g, hh = h
    for t in range(80):
        t1 = (hh + (_ror(e, 14) ^ _ror(e, 18) ^ _ror(e, 41)) + ((e & f) ^ (~e & g)) + K512[t] + w[t]) & M64
        t2 = (_ror(a, 28) ^ _ror(a, 34) ^ _ror(a, 39)) + ((a & b) ^ (a & c) ^ (b & c))
        hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & M64, c, b, a, (t1 + t2) & M64
    return [(x + y) & M64 for x, y in zip(h, (a, b, c, d, e, f, g, hh))]


def sha512(data):
    """The SHA-512 digest of `data` (bytes): hashlib's when the port has it, else this module's."""
    if hasattr(hashlib, "sha512"):
        return hashlib.sha512(data).digest()
    padded = bytes(data) + b"\x80" + bytes((111 - len(data)) % 128) + (len(data) * 8).to_bytes(16, "big")
    h = H512
    for at in range(0, len(padded), 128):
        h = _block(h, padded[at:at + 128])
    return b"".join(x.to_bytes(8, "big") for x in h)


def _add(p, q):
    """p + q in extended coordinates (X:Y:Z:T) on -x^2 + y^2 = 1 + d x^2 y^2 (a unified formula: doubles too)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * D2 % P * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % P, g * h % P, f * g % P, e * h % P


def _double(p):
    x1, y1, z1, _ = p
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    s = x1 + y1
    e = h - s * s % P
    g = a - b
    f = c + g
    return e * f % P, g * h % P, f * g % P, e * h % P


def _pow(x, e):
    """x^e mod P (three-argument pow where the port has it)."""
    try:
        return pow(x, e, P)
    except (TypeError, NotImplementedError):
        result = 1
        while e:
            if e & 1:
                result = result * x % P
            x = x * x % P
            e >>= 1
        return result


def _decode(data):
    """The point encoded in 32 bytes (RFC 8032 5.1.3), or None."""
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    v3 = v * v % P * v % P
    x = u * v3 % P * _pow(u * v3 % P * v3 % P * v % P, (P - 5) // 8) % P
    vx2 = v * x % P * x % P
    if vx2 == (P - u) % P:
        x = x * SQRT_M1 % P
    elif vx2 != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return x, y, 1, x * y % P


def _encode(p):
    x, y, z, _ = p
    inverse = _pow(z, P - 2)
    x, y = x * inverse % P, y * inverse % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def verify(public_key, signature, message):
    """True when `signature` (64 bytes) is `public_key`'s (32 bytes, raw) Ed25519 signature of `message`."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decode(public_key)
    s = int.from_bytes(signature[32:], "little")
    if a is None or s >= L:
        return False
    h = int.from_bytes(sha512(bytes(signature[:32]) + bytes(public_key) + bytes(message)), "little") % L
    minus_a = ((P - a[0]) % P, a[1], 1, (P - a[3]) % P)
    base = (BASE[0], BASE[1], 1, BASE[0] * BASE[1] % P)
    both = _add(base, minus_a)
    q = (0, 1, 1, 0)
    for bit in range(252, -1, -1):     # s and h are below L < 2^253
        q = _double(q)
        pick = ((s >> bit) & 1) | (((h >> bit) & 1) << 1)
        if pick:
            q = _add(q, (base, minus_a, both)[pick - 1])
    return _encode(q) == bytes(signature[:32])
