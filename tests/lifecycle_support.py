"""Helpers shared by the lifecycle tests: Ed25519 key files, and an update cut off by killing QEMU."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fixtures.posix_firmware import start_firmware

from tinyedge.bundle import Bundle, make_bundle
from tinyedge.errors import DeviceError
from tinyedge.flash import flash
from tinyedge.protocol import Device
from tinyedge.reference import Reference
from tinyedge.tflite_model import load_tflite
from tinyedge.update import UpdateFailed, update_board

PROBES = [np.array([[v]], np.int8) for v in range(-128, 128, 17)]
RECORD_BYTES = 200   # sizeof(te_boot_record_t)


def runs_exactly(device: Device, model: Path, probes: list[np.ndarray] = PROBES) -> bool:
    reference = Reference(load_tflite(model))
    return all([device.infer(x.tobytes()).output == reference.run([x])[0].tobytes() for x in probes])


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


def kill_emulators() -> None:
    """Cut the power of the emulated board this test started (QEMU, the host board's process)."""
    from pipeline_support import children_of

    for pid in children_of(os.getpid()):
        os.kill(pid, signal.SIGKILL)


def update_killed_after(project: Path, bundle: Bundle, kill_after: int, kill: Callable[[], None] = kill_emulators,
                        chunk: int = 64, timeout: float = 2.0) -> None:
    """Start an update in `chunk`-byte chunks and cut the board's power with `kill` once `kill_after`
    bytes (at most the whole image, COMMIT not yet sent) went out."""
    with flash(project) as url, Device(url, timeout=timeout, retries=0) as device:
        device._info = device.info().__class__(**{**device.info().__dict__, "max_chunk": chunk})

        def power_cut(done: int, total: int) -> None:
            if done >= min(kill_after, total):
                kill()
        with pytest.raises(DeviceError):
            update_board(device, bundle, progress=power_cut)


def check_killed_updates(project: Path, bundle: Bundle, old: Path, new: Path, cuts: tuple[int, ...],
                         kill: Callable[[], None] = kill_emulators, chunk: int = 64, timeout: float = 2.0) -> None:
    """An update cut off by `kill` after each of `cuts` bytes boots the old model, bit for bit; then a
    whole update makes the new one active, and it stays across a restart."""
    for kill_after in cuts:
        update_killed_after(project, bundle, kill_after, kill, chunk, timeout)
        with flash(project) as url, Device(url, timeout=30) as device:
            assert device.stats().model_version == 0, f"killed after {kill_after} bytes"
            assert runs_exactly(device, old)
    with flash(project) as url, Device(url, timeout=30) as device:
        assert update_board(device, bundle).version == bundle.version
    with flash(project) as url, Device(url, timeout=30) as device:
        assert device.stats().model_version == bundle.version and runs_exactly(device, new)


def check_a_lying_bundle_is_refused(project: Path, model: Path, old: Path, folder: Path) -> None:
    """A bundle whose expected outputs the model does not produce (as if the board computed differently)
    fails its self-test on the board, and the old model stays active, now and after a restart."""
    bundle = make_bundle(model, 5, folder / "v5.bundle", vectors=3)
    lying = bundle.__class__(**{**bundle.__dict__, "outputs": [bytes((o[0] ^ 1,)) for o in bundle.outputs]})
    with flash(project) as url, Device(url) as device:
        with pytest.raises(UpdateFailed, match="self-test vector 0"):
            update_board(device, lying)
        assert device.stats().model_version == 0
        assert runs_exactly(device, old)
    with flash(project) as url, Device(url) as device:
        assert device.stats().model_version == 0 and runs_exactly(device, old)


def check_power_cuts(binary: Path, bundle: Bundle, old: Path, folder: Path, step: int = 23) -> None:
    """The host board cuts its power when the Nth byte is about to reach its flash: before the image,
    inside it, inside the activating record write, after it. Every boot afterwards runs one whole
    model: the old one until the record that activates the bundle's was written whole."""
    new = folder / "new.tflite"
    new.write_bytes(bundle.model_bytes)
    clean = folder / "clean.flash"
    with start_firmware(binary, env={"TE_POSIX_FLASH": str(clean)}) as firmware:   # first boot: built-in saved
        with Device(firmware.url) as device:
            assert device.stats().slot == 0
    with start_firmware(binary, env={"TE_POSIX_FLASH": str(shutil.copy(clean, folder / "probe.flash"))}) as fw:
        with Device(fw.url) as device:
            image_bytes = update_board(device, bundle).image_bytes
    total = RECORD_BYTES + image_bytes + RECORD_BYTES   # the boot's record, the image, the activating record
    cuts = sorted({*range(1, total + 2, step), RECORD_BYTES + 1, RECORD_BYTES + image_bytes,
                   RECORD_BYTES + image_bytes + 1, RECORD_BYTES + image_bytes + 100, total, total + 1})
    outcomes = {}
    for cut in cuts:
        store = shutil.copy(clean, folder / f"cut-{cut}.flash")
        reported_ok = False
        with start_firmware(binary, env={"TE_POSIX_FLASH": str(store), "TE_POSIX_POWER_CUT_AT": str(cut)}) as fw:
            try:
                with Device(fw.url, timeout=2.0, retries=0, boot_timeout=3.0) as device:
                    update_board(device, bundle)
                    reported_ok = True
            except DeviceError:
                pass
        with start_firmware(binary, env={"TE_POSIX_FLASH": str(store)}) as fw, Device(fw.url) as device:
            stats = device.stats()
            model = new if stats.model_version == bundle.version else old
            assert stats.model_sha256 == load_tflite(model).sha256
            assert runs_exactly(device, model), f"cut at byte {cut}: the board runs a mix of models"
        if reported_ok:
            assert stats.model_version == bundle.version, f"cut at byte {cut}: the update was reported but did not stay"
        outcomes[cut] = stats.model_version
    assert outcomes[cuts[0]] == 0 and outcomes[total + 1] == bundle.version
    assert outcomes[RECORD_BYTES + image_bytes] == 0, "the image alone never activates it"
    assert outcomes[RECORD_BYTES + image_bytes + 100] == 0, "half an activating record leaves the old model"
