"""Helpers shared by the lifecycle tests: Ed25519 key files, and an update cut off by killing QEMU."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tinyedge.bundle import Bundle
from tinyedge.errors import DeviceError
from tinyedge.flash import flash
from tinyedge.protocol import Device
from tinyedge.update import update_board


def ed25519_keys(folder: Path, *names: str) -> tuple[dict[str, Path], Path]:
    """A private key (PEM) per name, and the first one's public key (PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    keys = {}
    for name in names:
        keys[name] = folder / f"{name}.pem"
        keys[name].write_bytes(Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public = folder / f"{names[0]}.pub.pem"
    public.write_bytes(serialization.load_pem_private_key(keys[names[0]].read_bytes(), None).public_key()
                       .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return keys, public


def update_killed_after(project: Path, bundle: Bundle, kill_after: int) -> None:
    """Start an update in 64-byte chunks and kill QEMU (a power cut) once `kill_after` bytes (at most
    the whole image, COMMIT not yet sent) went out."""
    from pipeline_support import children_of

    with flash(project) as url, Device(url, timeout=2.0, retries=0) as device:
        device._info = device.info().__class__(**{**device.info().__dict__, "max_chunk": 64})
        emulators = children_of(os.getpid())

        def power_cut(done: int, total: int) -> None:
            if done >= min(kill_after, total):
                for pid in emulators:
                    os.kill(pid, signal.SIGKILL)
        with pytest.raises(DeviceError):
            update_board(device, bundle, progress=power_cut)
