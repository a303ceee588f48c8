"""Updatable MicroPython firmware's model slots (generate --updatable; docs/protocol.md, "Updates on
MicroPython boards"): two slots in the board's filesystem, each a pair of .mpy modules
(te_slotN_model.mpy, te_slotN_kernels.mpy), and the boot record, written last. te_server imports this
module only in updatable firmware and hands it the update requests, and, while a shadow trial runs
(UPDATE_COMMIT in shadow mode), every live inference's input and outputs (`Shadow`)."""
import gc
import hashlib
import json
import sys
from binascii import hexlify, unhexlify

from te_server import (BAD_HASH, BAD_IMAGE, BAD_LENGTH, BAD_SEQUENCE, BAD_SIGNATURE, BAD_TYPE, DOWNGRADE, NO_PREVIOUS,
                       NO_UPDATE, ROLLBACK, SELF_TEST, SIGNING_KEY, STORE, UPDATE_BEGIN, UPDATE_COMMIT, UPDATE_DATA,
                       UPDATE_SIGNATURE, _crc, _get32, _model_sha, _u32)

RECORDS = ("te_boot0.rec", "te_boot1.rec")
INCOMING = "te_incoming.img"
IMAGE_HEADER = 48          # "TESL", kind, 3 reserved, graph SHA-256, payload bytes, 0
VECTORS_HEADER = 12        # vector count, input bytes, output bytes
KIND_MODULE = 3
BUILT_IN_STATE = ("te_model", "te_kernels")
COMMIT_SHADOW = 1
SHADOW_RUNNING, SHADOW_PROMOTED, SHADOW_DROPPED = 1, 2, 3   # STATS: 0 is no trial
INT8 = 1                   # INFO's dtype code of an int8 tensor


def _file_sha256(name, start=0, end=None):
    digest = hashlib.sha256()
    with open(name, "rb") as f:
        f.seek(start)
        left = (end - start) if end is not None else 1 << 30
        while left > 0:
            block = f.read(min(1024, left))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest.digest()


def _copy(src, start, count, name):
    with open(src, "rb") as f, open(name, "wb") as out:
        f.seek(start)
        while count > 0:
            block = f.read(min(1024, count))
            if not block:
                raise OSError("short image")
            out.write(block)
            count -= len(block)


def _forget(name):
    if name in sys.modules:
        del sys.modules[name]


def _import_pair(model_name, kernels_name):
    """Import a slot's model module with `te_kernels` bound to the slot's own kernels module."""
    _forget(model_name)
    _forget(kernels_name)
    kernels = __import__(kernels_name)
    saved = sys.modules.get("te_kernels")
    sys.modules["te_kernels"] = kernels
    try:
        _forget(model_name)
        return __import__(model_name)
    finally:
        if saved is None:
            del sys.modules["te_kernels"]
        else:
            sys.modules["te_kernels"] = saved


def _first_output(module):
    """(bytes, signed) of a model module's first output tensor, read from its INFO."""
    info = module.INFO
    at = 54
    for _ in range(3):     # board id, runtime name, runtime version
        at += 1 + info[at]
    inputs, at = info[at], at + 2
    for _ in range(inputs):
        at += 2 + 4 * info[at + 1] + 12
    return _get32(info, at + 2 + 4 * info[at + 1]), info[at] == INT8


def _argmax(data, signed):
    best, best_value = 0, -1 << 16
    for index in range(len(data)):
        value = data[index] - 256 if signed and data[index] > 127 else data[index]
        if value > best_value:
            best, best_value = index, value
    return best


def _outputs(model):
    return b"".join(bytes(model.A[o:o + n]) for o, n in model.OUTPUTS)


def _io_bytes(model):
    return sum(n for _, n in model.INPUTS), sum(n for _, n in model.OUTPUTS)


def _put_inputs(model, inputs):
    base = 0
    for offset, n in model.INPUTS:
        model.A[offset:offset + n] = inputs[base:base + n]
        base += n


class Shadow:
    """A candidate model on trial beside the active one (update --shadow N --min-agreement X): it runs on
    the input of each of the next N live inferences after the active model answered, and its outputs are
    compared with the active model's — exact (every byte) and top-1 (the first output's largest element).
    RAM only: a restart drops it. The candidate is a module of its own, so it keeps its own state."""

    def __init__(self, model, state, target, permille):
        self.model, self.state = model, state
        self.outcome, self.target, self.permille = SHADOW_RUNNING, target, permille
        self.done = self.exact = self.top1 = 0

    def report(self):
        return bytes((self.outcome,)) + b"".join(_u32(v) for v in (self.state["version"], self.target, self.done,
                                                                     self.exact, self.top1))

    def run(self, inputs, expected, signed):
        """The candidate on a live inference's inputs, against the active model's outputs."""
        _put_inputs(self.model, inputs)
        self.model.invoke()
        got = _outputs(self.model)
        first = self.model.OUTPUTS[0][1]
        self.done += 1
        self.exact += got == expected
        self.top1 += _argmax(got[:first], signed) == _argmax(expected[:first], signed)

    def agreed(self, classifier):
        """Promotion needs top-1 agreement for a classifier, exact for a single-value output."""
        needed = (self.target * self.permille + 999) // 1000
        return (self.top1 if classifier else self.exact) >= needed


class Slots:
    """Two model slots in the filesystem (te_slotN_model.mpy, te_slotN_kernels.mpy) and the boot record.
    The record is JSON plus its CRC-32, written alternately to two files: the newer valid one wins, so
    a power cut while one is written leaves the other in force. It is written last in an update."""

    def __init__(self, builtin_sha256):
        self.builtin = builtin_sha256
        self.update = None     # [version, image bytes, payload bytes, image sha, model sha, received, slot]
        self.shadow = None     # the last shadow trial (Shadow), running or done
        self.signed = None     # (version, model sha, vectors sha) of this update's verified signed manifest
        self.record = self.read_record()
        if self.record is None or self.record["builtin"] != self.builtin:
            state = {"version": 0, "sha": self.builtin, "slot": 0, "files": "", "builtin": 1}
            self.record = {"seq": 0, "boots": 0, "builtin": self.builtin, "active": state, "previous": None}
        self.model = None
        for which in ("active", "previous"):
            state = self.record[which]
            if state is not None and self.model is None:
                self.model = self.load(state)
                if self.model is not None and which == "previous":
                    self.record["active"], self.record["previous"] = state, None
        if self.model is None:
            import te_model
            self.model = te_model
            self.record["active"] = {"version": 0, "sha": self.builtin, "slot": 0, "files": "", "builtin": 1}
            self.record["previous"] = None
        self.record["boots"] += 1
        self.write_record()

    def read_record(self):
        best = None
        for name in RECORDS:
            try:
                with open(name, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if len(data) < 5 or _crc(data[:-4]) != _get32(data, len(data) - 4):
                continue
            try:
                record = json.loads(data[:-4])
            except ValueError:
                continue
            if best is None or record["seq"] > best["seq"]:
                best = record
        return best

    def write_record(self):
        self.record["seq"] += 1
        data = json.dumps(self.record).encode()
        with open(RECORDS[self.record["seq"] & 1], "wb") as f:
            f.write(data + _u32(_crc(data)))

    def names(self, slot):
        return "te_slot%d_model" % slot, "te_slot%d_kernels" % slot

    def load(self, state):
        """The model module of a record's state, checked against the record; None when it is not whole."""
        try:
            if state.get("builtin"):
                names = BUILT_IN_STATE
            else:
                names = self.names(state["slot"])
                digest = hashlib.sha256()
                for name in names:
                    digest.update(_file_sha256(name + ".mpy"))
                if hexlify(digest.digest()).decode() != state["files"]:
                    return None
            module = _import_pair(*names)
        except (OSError, ImportError, ValueError, MemoryError, KeyError):
            return None
        return module if _model_sha(module) == state["sha"] else None

    def request(self, server, msg_type, body):
        if msg_type == UPDATE_BEGIN:
            return self.begin(body)
        if msg_type == UPDATE_DATA:
            return bytes((self.data(body),))
        if msg_type == UPDATE_COMMIT:
            status, detail = self.commit(server, body)
            return bytes((status,)) + _u32(detail)
        if msg_type == ROLLBACK:
            return bytes((self.rollback(server),))
        if msg_type == UPDATE_SIGNATURE:
            return bytes((self.accept_signature(body),))
        return bytes((BAD_TYPE,))

    def begin(self, body):
        if len(body) != 109:
            return bytes((BAD_LENGTH,))
        version, image_bytes, payload = _get32(body), _get32(body, 4), _get32(body, 8)
        if not body[12] & 1 and version <= self.record["active"]["version"]:
            return bytes((DOWNGRADE,))
        if payload < IMAGE_HEADER + 8 or image_bytes < payload + 12:
            return bytes((BAD_IMAGE,))
        sha, model_sha = bytes(body[13:45]), hexlify(body[45:77]).decode()
        if self.shadow is not None and self.shadow.outcome == SHADOW_RUNNING:
            self.drop_shadow()     # the new image goes where the candidate's modules are
        u = self.update
        if u is None or u[0] != version or u[1] != image_bytes or u[3] != sha:
            slot = 1 - self.record["active"]["slot"] if not self.record["active"].get("builtin") else 1
            u = self.update = [version, image_bytes, payload, sha, model_sha, 0, slot]
            self.signed = None
            try:
                open(INCOMING, "wb").close()
            except OSError:
                self.update = None
                return bytes((STORE,))
        return b"\x00" + bytes((u[6],)) + _u32(u[5])

    def data(self, body):
        u = self.update
        if u is None:
            return NO_UPDATE
        if len(body) < 4:
            return BAD_LENGTH
        offset = _get32(body)
        end = offset + len(body) - 4
        if offset > u[5]:
            return BAD_SEQUENCE
        if end > u[1]:
            return BAD_LENGTH
        try:
            with open(INCOMING, "r+b") as f:
                f.seek(offset)
                f.write(memoryview(body)[4:])
        except OSError:
            return STORE
        u[5] = max(u[5], end)
        return 0

    def commit(self, server, body):
        u = self.update
        if u is None:
            return NO_UPDATE, 0
        if u[5] != u[1]:
            return BAD_SEQUENCE, 0
        self.update = None
        shadowing = len(body) > 0 and body[0] == COMMIT_SHADOW
        if shadowing and (len(body) != 7 or _get32(body, 1) == 0):
            return BAD_LENGTH, 0
        try:
            if _file_sha256(INCOMING, 0, u[1]) != u[3]:
                return BAD_HASH, 0
            if not self.signed_as_sent(u):
                return BAD_SIGNATURE, 0
            with open(INCOMING, "rb") as f:
                header = f.read(IMAGE_HEADER + 8)
            if header[:4] != b"TESL" or header[4] != KIND_MODULE:
                return BAD_IMAGE, 0
            model_bytes, kernel_bytes = _get32(header, IMAGE_HEADER), _get32(header, IMAGE_HEADER + 4)
            at = IMAGE_HEADER + 8
            if at + model_bytes + kernel_bytes > u[2]:
                return BAD_IMAGE, 0
            names = self.names(u[6])
            previous = self.record["previous"]
            if previous is not None and not previous.get("builtin") and previous["slot"] == u[6]:
                self.record["previous"] = None     # its files are overwritten now
            _forget(names[0])
            _forget(names[1])
            gc.collect()
            _copy(INCOMING, at, model_bytes, names[0] + ".mpy")
            _copy(INCOMING, at + model_bytes, kernel_bytes, names[1] + ".mpy")
            digest = hashlib.sha256()
            for name in names:
                digest.update(_file_sha256(name + ".mpy"))
            files = hexlify(digest.digest()).decode()
        except OSError:
            return STORE, 0
        try:
            model = _import_pair(*names)
        except (ImportError, ValueError, MemoryError, SyntaxError):
            gc.collect()
            return BAD_IMAGE, 0
        if _model_sha(model) != u[4]:
            return BAD_IMAGE, 0
        status, failed = self.self_test(model, u[2])
        if not status and shadowing and _io_bytes(model) != _io_bytes(self.model):
            status = BAD_IMAGE     # a trial compares the two models on the same inputs and outputs
        if status:
            self.forget(names)
            return status, failed
        state = {"version": u[0], "sha": u[4], "slot": u[6], "files": files, "builtin": 0}
        if shadowing:
            self.shadow = Shadow(model, state, _get32(body, 1), body[5] | (body[6] << 8))
            return 0, 0
        if not self.make_active(server, model, state):
            return STORE, 0
        return 0, 0

    def forget(self, names):
        _forget(names[0])
        _forget(names[1])
        gc.collect()

    def make_active(self, server, model, state):
        """Write the boot record that names `state` active (the switch), then serve `model`; False when
        the record could not be written (the old model stays)."""
        previous = self.record["active"]
        self.record["previous"] = previous
        self.record["active"] = state
        try:
            self.write_record()
        except OSError:
            self.record["active"], self.record["previous"] = previous, None
            return False
        self.activate(server, model)
        return True

    def shadowing(self):
        return self.shadow is not None and self.shadow.outcome == SHADOW_RUNNING

    def shadow_report(self):
        """STATS' trial fields: outcome u8, version, target, done, exact, top-1 (u32 each)."""
        return self.shadow.report() if self.shadow is not None else bytes(21)

    def after_inference(self, server, inputs, outputs):
        """A live inference the active model answered with `outputs`: the candidate runs on its `inputs`;
        after the last one of the trial it is promoted (the boot record written, as a COMMIT) or dropped."""
        trial = self.shadow
        first_bytes, signed = _first_output(self.model)
        try:
            trial.run(inputs, outputs, signed)
        except (MemoryError, ValueError, IndexError):
            self.drop_shadow()
            return
        if trial.done < trial.target:
            return
        if trial.agreed(first_bytes > 1) and self.make_active(server, trial.model, trial.state):
            trial.outcome = SHADOW_PROMOTED
        else:
            self.drop_shadow()
        trial.model = None

    def drop_shadow(self):
        self.shadow.outcome = SHADOW_DROPPED
        if self.shadow.model is not None:
            self.forget(self.names(self.shadow.state["slot"]))
        self.shadow.model = None

    def accept_signature(self, body):
        """UPDATE_SIGNATURE: the bundle's signature (64 bytes) and the manifest it signs. With a key the
        signature must verify; what the manifest names is then checked against the image at COMMIT."""
        if self.update is None:
            return NO_UPDATE
        if not SIGNING_KEY:
            return 0       # no key: nothing to check
        self.signed = None
        import te_ed25519
        verified = len(body) > 64 and te_ed25519.verify(unhexlify(SIGNING_KEY), body[:64], body[64:])
        _forget("te_ed25519")     # ~9 KB of heap (its constants) given back to the model
        gc.collect()
        if not verified:
            return BAD_SIGNATURE
        try:
            manifest = json.loads(bytes(body[64:]))
            self.signed = (int(manifest["version"]), manifest["model_sha256"], manifest["vectors_sha256"])
        except (ValueError, KeyError, TypeError):
            return BAD_SIGNATURE
        return 0

    def signed_as_sent(self, u):
        """With a key, an update activates only what its verified manifest names: this version, the model
        announced at BEGIN (whose module's INFO must name it, and whose outputs must reproduce the signed
        self-test) and these self-test vectors."""
        if not SIGNING_KEY:
            return True
        if self.signed is None or self.signed[0] != u[0] or self.signed[1] != u[4]:
            return False
        vectors = _file_sha256(INCOMING, u[2] + VECTORS_HEADER, u[1])
        return hexlify(vectors).decode() == self.signed[2]

    def self_test(self, model, at):
        """Run the image's vectors (at byte `at` of the incoming image) on `model`, bit for bit."""
        in_bytes, out_bytes = _io_bytes(model)
        with open(INCOMING, "rb") as f:
            f.seek(at)
            header = f.read(12)
            count = _get32(header)
            if _get32(header, 4) != in_bytes or _get32(header, 8) != out_bytes:
                return BAD_IMAGE, 0
            for index in range(count):
                inputs, expected = f.read(in_bytes), f.read(out_bytes)
                if len(expected) != out_bytes:
                    return BAD_IMAGE, index
                model.reset()
                _put_inputs(model, inputs)
                model.invoke()
                if _outputs(model) != expected:
                    return SELF_TEST, index
        model.reset()
        return 0, 0

    def activate(self, server, model):
        old = self.model
        self.model = model
        server.use(model)
        if old is not model:
            for name in list(sys.modules):
                if sys.modules[name] is old:
                    del sys.modules[name]
        gc.collect()

    def rollback(self, server):
        previous, current = self.record["previous"], self.record["active"]
        if previous is None:
            return NO_PREVIOUS
        model = self.load(previous)
        if model is None:
            return STORE
        self.record["active"], self.record["previous"] = previous, current
        try:
            self.write_record()
        except OSError:
            self.record["active"], self.record["previous"] = current, previous
            return STORE
        self.activate(server, model)
        return 0
