"""`tinyedge update`: a bundle onto a board running updatable firmware, without reflashing.

The image for the board's runtime (tinyedge.slots: the AOT data of the bundle's model compiled for
the board, or for TFLM the .tflite itself, plus the bundle's self-test vectors) goes in chunks into the inactive slot; the board
checks its size and SHA-256, runs the vectors on the new model bit for bit and only then makes it
active (docs/protocol.md, "Updates"). A transfer cut off is resumed where it stopped. Any failure
leaves the old model active and raises UpdateFailed (exit 3) saying why.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from tinyedge.boards import get_board
from tinyedge.bundle import Bundle, verify
from tinyedge.errors import DeviceError, TinyedgeError
from tinyedge.paths import cache_dir
from tinyedge.protocol import (BAD_SEQUENCE, BAD_TYPE, MSG_ROLLBACK, MSG_UPDATE_BEGIN, MSG_UPDATE_COMMIT,
                               MSG_UPDATE_DATA, MSG_UPDATE_SIGNATURE, STATUS_OK, Device, DeviceStats)
from tinyedge.runtimes.aot import compile_for
from tinyedge.runtimes.viper import slot_modules
from tinyedge.sections import MicropythonSettings
from tinyedge.plugins import RUNTIMES
from tinyedge.slots import (SLOT_COMPILED, SLOT_FLATBUFFER, SLOT_MODULE, ModuleSlotLayout, SlotLayout, TflmSlotLayout,
                            slot_content, slot_layout, vectors_bytes)
from tinyedge.tflite_model import builtin_op_name

FLAG_ALLOW_DOWNGRADE = 1
COMMIT_SHADOW = 1
# Time a board may take to verify a signature beyond the link's timeout: MicroPython's pure-Python
# Ed25519 takes ~1.3 s on a 125 MHz Pico, several seconds on a busy emulator.
VERIFY_SECONDS = 30.0

(NO_SLOTS, DOWNGRADE, TOO_BIG, BAD_HASH, OTHER_GRAPH, SELF_TEST, NO_UPDATE, STORE, BAD_IMAGE, NO_PREVIOUS,
 MISSING_OP, ARENA, BAD_SIGNATURE) = range(0x20, 0x2D)
DETAILED = (SELF_TEST, MISSING_OP, ARENA)   # a COMMIT refused with these says which vector, op or arena

REASONS = {
    NO_SLOTS: "the firmware on {url} has no model slots: generate it with --updatable and deploy it",
    DOWNGRADE: "version {version} is not above version {active} that {url} runs: bundle a higher version, "
               "or pass --allow-downgrade to go back",
    TOO_BIG: "the model's image ({image_bytes:,} bytes) does not fit a slot of {url}: deploy it instead",
    BAD_HASH: "the image arrived on {url} with another SHA-256 than it was sent with: run the update again",
    OTHER_GRAPH: "this firmware was compiled for another graph: deploy it",
    SELF_TEST: "the new model's outputs on {url} differ from the host reference's for self-test vector {vector}: "
               "the old model stays active; check the bundle's model and this board's firmware",
    NO_UPDATE: "{url} lost the update (it reset in between): run the update again",
    STORE: "the persistent store of {url} failed to read or write: check the board's flash",
    BAD_IMAGE: "{url} refused the image as malformed: update tinyedge and make the bundle again",
    NO_PREVIOUS: "{url} has no previous model to roll back to",
    MISSING_OP: "the new model needs the {detail} op, which the firmware on {url} was not built with: "
                "the old model stays active; deploy the new model instead",
    ARENA: "the new model does not fit the {detail:,}-byte tensor arena of the firmware on {url}: "
           "the old model stays active; deploy the new model instead",
    BAD_SIGNATURE: "{url} refused the bundle: it is not signed with the key its firmware was generated with, "
                   "by its own check; the old model stays active; make it with `tinyedge bundle --sign KEY`",
}


class UpdateFailed(DeviceError):
    """The board refused or could not complete the update; its old model stays active."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class UpdateReport:
    url: str
    board: str
    version: int
    model_sha256: str
    previous_version: int
    previous_model_sha256: str
    slot: int
    image_bytes: int
    sent_bytes: int          # image bytes sent this time (less than image_bytes when resumed)
    resumed_from: int
    transfer_s: float
    commit_s: float
    shadow: int | None = None         # the model runs beside the old one on this many live inferences first
    min_agreement: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Image:
    layout: SlotLayout | TflmSlotLayout | ModuleSlotLayout
    data: bytes

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.data).digest()


def _io_sizes(bundle: Bundle) -> tuple[int, int]:
    """(input bytes, output bytes) of the bundle's model, all tensors."""
    model = bundle.model
    return sum(t.nbytes for t in model.input_tensors), sum(t.nbytes for t in model.output_tensors)


def build_image(bundle: Bundle, board_id: str, input_bytes: int, output_bytes: int,
                content: str = SLOT_COMPILED) -> Image:
    """The slot image of the bundle's model for this board: its AOT data (for TFLM, the .tflite; for a
    MicroPython board, its modules compiled for the board) and the self-test vectors."""
    model = bundle.model
    sizes = _io_sizes(bundle)
    if content == SLOT_MODULE:
        # The modules carry their own INFO: another graph, other inputs and outputs are all welcome.
        board = get_board(board_id)
        modules = ModuleSlotLayout(*slot_modules(model, board, board.settings(MicropythonSettings).arch))
        return Image(modules, modules.payload() + vectors_bytes(bundle.inputs, bundle.outputs, *sizes))
    if sizes != (input_bytes, output_bytes) and content == SLOT_FLATBUFFER:
        raise UpdateFailed(f"the bundle's model takes {sizes[0]:,} input bytes and gives {sizes[1]:,} output bytes, "
                           f"this firmware's model {input_bytes:,} and {output_bytes:,}: deploy it instead.", BAD_IMAGE)
    if sizes != (input_bytes, output_bytes):
        raise UpdateFailed("this firmware was compiled for another graph: deploy it", OTHER_GRAPH)
    if content == SLOT_FLATBUFFER:
        layout = TflmSlotLayout(bundle.model_bytes)
    else:
        layout = slot_layout(compile_for(model, get_board(board_id)))
    return Image(layout, layout.payload() + vectors_bytes(bundle.inputs, bundle.outputs, input_bytes, output_bytes))


def _failure(status: int, url: str, **facts: Any) -> UpdateFailed:
    template = REASONS.get(status)
    if template is None:
        return UpdateFailed(f"{url} refused the update with status 0x{status:02x}: update tinyedge and the "
                            "board's firmware together.", status)
    return UpdateFailed(template.format(url=url, **facts) + ".", status)


def board_stats(device: Device) -> DeviceStats:
    """STATS, or the sentence that the firmware has no model slots."""
    try:
        stats = device.stats()
    except DeviceError as exc:
        if exc.status == BAD_TYPE:
            raise _failure(NO_SLOTS, device.url) from None
        raise
    if stats.slot is None:
        raise _failure(NO_SLOTS, device.url)
    return stats


@contextlib.contextmanager
def one_update_at_a_time(url: str) -> Iterator[None]:
    """Hold this host's lock on the board at `url` for an update, from before the port is opened (two
    programs reading one port steal each other's replies): a second update started meanwhile is
    refused in one sentence. (Updates from other hosts are kept apart by the board itself: an image
    mixed from two transfers fails its SHA-256 check and is never activated.)"""
    locks = cache_dir() / "update-locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / hashlib.sha256(url.encode()).hexdigest()[:16]
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpdateFailed(f"another update of the board on {url} is running: wait for it to finish, "
                               "then check `tinyedge status`.") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_board(device: Device, bundle: Bundle, allow_downgrade: bool = False,
                 progress: Callable[[int, int], None] | None = None, shadow: int | None = None,
                 min_agreement: float = 1.0, host_check: bool = True) -> UpdateReport:
    """Send `bundle` to the board on `device` and make it active there, or raise UpdateFailed.
    With `shadow`, the board keeps the old model active and runs the new one beside it on its next
    `shadow` live inferences, then promotes it when they agreed on at least `min_agreement` of them
    (top-1 of the first output for a classifier, every byte for a single-value output), else drops
    it (STATS' `shadow` says how it went). Firmware generated with a key gets the bundle's signature and
    verifies it itself; `host_check=False` leaves that check to the board alone.
    Hold one_update_at_a_time(url) around opening the Device."""
    if shadow is not None and shadow < 1:
        raise UpdateFailed("--shadow must be at least 1 inference.")
    if not 0.0 <= min_agreement <= 1.0:
        raise UpdateFailed(f"--min-agreement must be between 0 and 1 (got {min_agreement:g}).")
    info = device.info(refresh=True)
    before = board_stats(device)
    if before.signing_key is not None and host_check:
        try:
            verify(bundle, before.signing_key)
        except TinyedgeError as exc:
            raise UpdateFailed(str(exc)) from None
    content = slot_content(info.runtime) if info.runtime in RUNTIMES else ""
    if not content:
        raise UpdateFailed(f"updates of the {info.runtime} runtime are not supported yet: deploy the model instead.")
    image = build_image(bundle, info.board_id, info.input_bytes, info.output_bytes, content)
    if shadow is not None and content == SLOT_MODULE:
        _check_shadow_sizes(bundle, info.input_bytes, info.output_bytes)
    if not allow_downgrade and bundle.version <= before.model_version:
        raise _failure(DOWNGRADE, device.url, version=bundle.version, active=before.model_version)
    started = time.monotonic()
    slot, resumed_from = _begin(device, bundle, image, allow_downgrade)
    if before.signing_key is not None and bundle.signature is not None:
        _send_signature(device, bundle)
    _send(device, image.data, resumed_from, progress)
    transfer_s = time.monotonic() - started
    started = time.monotonic()
    mode = b"" if shadow is None else struct.pack("<BIH", COMMIT_SHADOW, shadow, round(min_agreement * 1000))
    _commit(device, bundle, len(bundle.inputs), mode)
    return UpdateReport(device.url, info.board_id, bundle.version, bundle.model_sha256, before.model_version,
                        before.model_sha256, slot, len(image.data), len(image.data) - resumed_from, resumed_from,
                        round(transfer_s, 3), round(time.monotonic() - started, 3), shadow,
                        None if shadow is None else min_agreement)


def _check_shadow_sizes(bundle: Bundle, input_bytes: int, output_bytes: int) -> None:
    """A MicroPython board takes a model of another graph, but a shadow trial runs the new model on the
    active one's live inputs and compares their outputs: their sizes must match."""
    sizes = _io_sizes(bundle)
    if sizes != (input_bytes, output_bytes):
        raise UpdateFailed(f"a shadow trial runs the new model on the live inputs of the active one, but it takes "
                           f"{sizes[0]:,} input bytes and gives {sizes[1]:,} output bytes where the board's model takes "
                           f"{input_bytes:,} and gives {output_bytes:,}: update without --shadow.", BAD_IMAGE)


def _begin(device: Device, bundle: Bundle, image: Image, allow_downgrade: bool) -> tuple[int, int]:
    body = struct.pack("<IIIB", bundle.version, len(image.data), len(image.layout.payload()),
                       FLAG_ALLOW_DOWNGRADE if allow_downgrade else 0)
    body += image.sha256 + bytes.fromhex(bundle.model_sha256) + image.layout.graph_sha256
    status, rest = _request(device, MSG_UPDATE_BEGIN, body, "UPDATE_BEGIN")
    if status != STATUS_OK:
        raise _failure(status, device.url, version=bundle.version, active=device.stats().model_version,
                       image_bytes=len(image.data))
    slot, received = struct.unpack("<BI", rest[:5])
    return slot, received


def _send_signature(device: Device, bundle: Bundle) -> None:
    """The bundle's signature and the manifest it signs, for the board to verify with its own key."""
    status, _ = _request(device, MSG_UPDATE_SIGNATURE, bundle.signature + bundle.manifest_bytes, "UPDATE_SIGNATURE",
                         timeout=device.timeout + VERIFY_SECONDS)
    if status != STATUS_OK:
        raise _failure(status, device.url)


def _send(device: Device, data: bytes, offset: int, progress: Callable[[int, int], None] | None) -> None:
    # Whole 32-bit words per chunk: a flash that programs words (the nRF52840's) then programs each word once.
    chunk = max(1, device.info().max_chunk)
    chunk = chunk - chunk % 4 or chunk
    while offset < len(data):
        piece = data[offset:offset + chunk]
        status, _ = _request(device, MSG_UPDATE_DATA, struct.pack("<I", offset) + piece, "UPDATE_DATA")
        if status == BAD_SEQUENCE:
            raise _failure(NO_UPDATE, device.url)
        if status != STATUS_OK:
            raise _failure(status, device.url)
        offset += len(piece)
        if progress:
            progress(offset, len(data))


def _commit(device: Device, bundle: Bundle, vectors: int, mode: bytes = b"") -> None:
    per_inference = max(device.timeout, device.infer_timeout or 0.0)
    status, rest = _request(device, MSG_UPDATE_COMMIT, mode, "UPDATE_COMMIT",
                            timeout=device.timeout + vectors * per_inference)
    if status == NO_UPDATE:
        # The reply to a COMMIT that worked was lost and the COMMIT went again: the board says which model runs.
        after = device.stats()
        if (after.model_version, after.model_sha256) == (bundle.version, bundle.model_sha256) or (
                mode and after.shadow and after.shadow.version == bundle.version):
            return
    if status != STATUS_OK:
        detail = struct.unpack("<I", rest[:4])[0] if status in DETAILED and len(rest) >= 4 else "?"
        raise _failure(status, device.url, vector=detail,
                       detail=builtin_op_name(detail) if status == MISSING_OP and detail != "?" else detail)


def rollback(device: Device) -> DeviceStats:
    """Make the board's previous model active again (fleet update rolls back a board that failed)."""
    board_stats(device)
    status, _ = _request(device, MSG_ROLLBACK, b"", "ROLLBACK")
    if status != STATUS_OK:
        raise _failure(status, device.url)
    return device.stats()


def _request(device: Device, msg_type: int, body: bytes, op: str, timeout: float | None = None) -> tuple[int, bytes]:
    try:
        return device.request(msg_type, body, op, timeout)
    except DeviceError as exc:
        if exc.status == BAD_TYPE:
            raise _failure(NO_SLOTS, device.url) from None
        raise

