"""`tinyedge bundle`: a model update as one file — the .tflite, its version and SHA-256, N self-test
inputs with the outputs tflite-micro (the host reference) computes for them, and optionally an
Ed25519 signature.

A bundle is a zip archive: `manifest.json` (format, version, model_sha256, vectors, input_bytes,
output_bytes, vectors_sha256), `model.tflite`, `vectors.bin` (each input's bytes followed by its
expected outputs' bytes) and, when signed, `signature.bin`: the Ed25519 signature of
manifest.json's bytes (which name the model's and the vectors' SHA-256).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyedge.errors import TinyedgeError
from tinyedge.quantize import load_array
from tinyedge.reference import Reference
from tinyedge.tflite_model import TfliteModel, load_tflite, parse_tflite
from tinyedge.validate import quantized_inputs, sample_inputs

FORMAT = 1
DEFAULT_VECTORS = 4
MANIFEST, MODEL, VECTORS, SIGNATURE = "manifest.json", "model.tflite", "vectors.bin", "signature.bin"
VECTOR_SEED = 19


@dataclass(frozen=True)
class Bundle:
    path: Path
    version: int
    model_bytes: bytes
    model_sha256: str
    inputs: list[bytes]
    outputs: list[bytes]
    manifest_bytes: bytes
    signature: bytes | None

    @property
    def model(self) -> TfliteModel:
        return parse_tflite(self.model_bytes)


def _self_test_inputs(model: TfliteModel, data: Path | None, count: int) -> list[list[np.ndarray]]:
    """`count` samples of --data (quantized as validate does), else seeded random ones over the
    input's whole range."""
    if data is not None:
        inputs = quantized_inputs(model, load_array(data, "--data"))   # one array per input tensor
        if len(inputs[0]) < count:
            raise TinyedgeError(f"--data holds {len(inputs[0])} samples but --vectors asks for {count}: "
                                "give more data or fewer vectors.")
        return [sample_inputs(inputs, index) for index in range(count)]
    rng = np.random.default_rng(VECTOR_SEED)
    vectors = []
    for _ in range(count):
        sample = []
        for t in model.input_tensors:
            info = np.iinfo(t.dtype) if np.issubdtype(t.dtype, np.integer) else None
            sample.append(rng.integers(info.min, info.max + 1, size=t.shape, dtype=t.dtype) if info
                          else rng.standard_normal(t.shape).astype(t.dtype))
        vectors.append(sample)
    return vectors


def _check_version(version: int) -> None:
    if not 0 < version < 1 << 32:
        raise TinyedgeError(f"--version must be a whole number from 1 to {(1 << 32) - 1} (got {version}).")


def make_bundle(model_path: Path, version: int, out: Path, data: Path | None = None,
                vectors: int = DEFAULT_VECTORS, sign_key: Path | None = None) -> Bundle:
    """Write the bundle for `model_path` at `version` to `out`; returns it as loaded back."""
    _check_version(version)
    if vectors < 1:
        raise TinyedgeError("--vectors must be at least 1: the board proves the model on them before using it.")
    model = load_tflite(model_path)
    model.require_int8_inside("bundling it for a board")
    reference = Reference(model)
    inputs, outputs = [], []
    for sample in _self_test_inputs(model, data, vectors):
        inputs.append(b"".join(np.ascontiguousarray(x).tobytes() for x in sample))
        outputs.append(b"".join(np.ascontiguousarray(y).tobytes() for y in reference.run(sample)))
    vectors_blob = b"".join(x + y for x, y in zip(inputs, outputs))
    manifest = json.dumps({
        "format": FORMAT, "version": version, "model_sha256": model.sha256, "model_bytes": len(model.data),
        "vectors": vectors, "input_bytes": len(inputs[0]), "output_bytes": len(outputs[0]),
        "vectors_sha256": hashlib.sha256(vectors_blob).hexdigest(),
    }, indent=2, sort_keys=True).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, manifest)
        archive.writestr(MODEL, model.data)
        archive.writestr(VECTORS, vectors_blob)
        if sign_key is not None:
            archive.writestr(SIGNATURE, sign(manifest, sign_key))
    Path(out).write_bytes(buffer.getvalue())
    return load_bundle(out)


def sign(message: bytes, key_path: Path) -> bytes:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise TinyedgeError(f"cannot read the signing key {key_path} ({exc}): give an unencrypted Ed25519 "
                            "private key in PEM.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TinyedgeError(f"{key_path} is not an Ed25519 private key: make one with "
                            "`openssl genpkey -algorithm ed25519`.")
    return key.sign(message)


def verify(bundle: Bundle, public_key: bytes) -> None:
    """Raise unless the bundle carries a valid signature by the raw Ed25519 public key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if bundle.signature is None:
        raise TinyedgeError(f"{bundle.path.name} is not signed, and the firmware was generated with a signing key: "
                            "make the bundle with `tinyedge bundle --sign KEY`.")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(bundle.signature, bundle.manifest_bytes)
    except InvalidSignature:
        raise TinyedgeError(f"{bundle.path.name}'s signature does not match the firmware's key: sign it with the "
                            "key the firmware was generated with.") from None


def _unreadable(path: Path, why: str) -> TinyedgeError:
    return TinyedgeError(f"{path} is not a readable model bundle ({why}): make it again with `tinyedge bundle`.")


def load_bundle(path: Path) -> Bundle:
    """Read and check a bundle: every hash must match what its manifest says."""
    path = Path(path)
    if not path.is_file():
        raise TinyedgeError(f"the bundle {path} does not exist: make it with `tinyedge bundle`.")
    try:
        with zipfile.ZipFile(path) as archive:
            manifest_bytes = archive.read(MANIFEST)
            model_bytes = archive.read(MODEL)
            blob = archive.read(VECTORS)
            signature = archive.read(SIGNATURE) if SIGNATURE in archive.namelist() else None
        manifest = json.loads(manifest_bytes)
        version, count = int(manifest["version"]), int(manifest["vectors"])
        in_bytes, out_bytes = int(manifest["input_bytes"]), int(manifest["output_bytes"])
        expected = (manifest["model_sha256"], manifest["vectors_sha256"])
    except (zipfile.BadZipFile, zlib.error, KeyError, ValueError, TypeError, EOFError, OSError) as exc:
        raise _unreadable(path, str(exc) or type(exc).__name__) from None
    if manifest.get("format") != FORMAT:
        raise _unreadable(path, f"format {manifest.get('format')!r}, this tinyedge reads {FORMAT}")
    if hashlib.sha256(model_bytes).hexdigest() != expected[0]:
        raise _unreadable(path, "the model's SHA-256 differs from the manifest's")
    if hashlib.sha256(blob).hexdigest() != expected[1] or len(blob) != count * (in_bytes + out_bytes):
        raise _unreadable(path, "the self-test vectors differ from the manifest's")
    step = in_bytes + out_bytes
    inputs = [blob[i * step:i * step + in_bytes] for i in range(count)]
    outputs = [blob[i * step + in_bytes:(i + 1) * step] for i in range(count)]
    return Bundle(path, version, model_bytes, expected[0], inputs, outputs, manifest_bytes, signature)
