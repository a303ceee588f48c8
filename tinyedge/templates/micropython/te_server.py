"""tinyedge's serial protocol on MicroPython (docs/protocol.md), served over the REPL's stdin/stdout.

The host enters the raw REPL and runs `import te_server; te_server.serve()`. Frames are
rCOBS(type, request id u32 LE, body, CRC-32 LE) + 0x00, exactly as the C firmware speaks them: every
reply echoes its request's id, and a re-sent INFER (same id and CRC) is answered from the outputs
already computed. Ctrl-C is
disabled while serving (frames may hold 0x03); a QUIT request (0x7E) hands the REPL back.

STATS answers on every board. Updatable firmware (`generate --updatable`: UPDATABLE below) keeps two
model slots in the board's filesystem, each a pair of .mpy modules (model and kernels), and a boot
record written last, in two CRC-sealed copies (docs/protocol.md, "Updates on MicroPython boards").
"""
import gc
import sys
import time

import micropython

try:
    import hashlib
except ImportError:
    hashlib = None

from binascii import hexlify, unhexlify

try:
    from binascii import crc32
except ImportError:
    crc32 = None

PING, INFO, WRITE, INFER, SET_ARENA, RESET_STATE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
QUIT, REPLY, NAK = 0x7E, 0x80, 0xFF
BAD_CRC, BAD_LENGTH, BAD_FRAME, BAD_TYPE, BAD_SEQUENCE, UNSUPPORTED = 0x10, 0x11, 0x12, 0x13, 0x14, 0x03
MAX_FRAME = 8192
STATS, UPDATE_BEGIN, UPDATE_DATA, UPDATE_COMMIT, ROLLBACK, UPDATE_SIGNATURE = 0x10, 0x11, 0x12, 0x13, 0x14, 0x15
(NO_SLOTS, DOWNGRADE, TOO_BIG, BAD_HASH, OTHER_GRAPH, SELF_TEST, NO_UPDATE, STORE, BAD_IMAGE,
 NO_PREVIOUS) = range(0x20, 0x2A)
BUILT_IN = 0xFF
# Updatable firmware: `generate --updatable` sets these two lines.
UPDATABLE = False
BUILTIN_SHA256 = ""


def _crc32_slow(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _crc(data):
    return (crc32(data) if crc32 else _crc32_slow(data)) & 0xFFFFFFFF


def _u32(value):
    return bytes((value & 255, (value >> 8) & 255, (value >> 16) & 255, (value >> 24) & 255))


def _get32(data, at=0):
    return data[at] | (data[at + 1] << 8) | (data[at + 2] << 16) | (data[at + 3] << 24)


def _model_sha(module):
    """The SHA-256 (hex) of the .tflite a model module was generated from, read from its INFO."""
    return hexlify(module.INFO[22:54]).decode()


def _encode(raw):
    out = bytearray()
    run = 0
    for byte in raw:
        if byte == 0:
            out.append(run + 1)
            run = 0
            continue
        out.append(byte)
        run += 1
        if run == 254:
            out.append(0xFF)
            run = 0
    out.append(run + 1)
    return out


def _decode(enc):
    """Undo rCOBS from the end; None when malformed."""
    pieces = []
    end = len(enc)
    last_code = True
    while end > 0:
        code = enc[end - 1]
        end -= 1
        if not last_code and code != 0xFF:
            pieces.append(b"\x00")
        last_code = False
        start = end - (code - 1)
        if start < 0:
            return None
        pieces.append(bytes(enc[start:end]))
        end = start
    pieces.reverse()
    return b"".join(pieces)


class Server:
    def __init__(self, out, model=None, slots=None):
        self.out = out
        self.slots = slots
        self.model = model if model is not None else slots.model
        self.received_end = 0
        self.input_bytes = sum(n for _, n in self.model.INPUTS)
        self.last = None       # (id, CRC) of the request handled last
        self.replay = None     # the last INFER's reply body, while no other request came
        self.started = time.ticks_ms()
        self.uptime_ms = 0
        self.inferences = self.errors = self.latency_count = self.latency_sum = self.latency_max = 0
        self.latency_min = 0xFFFFFFFF

    def use(self, model):
        """Serve `model` from now on (an update made it active)."""
        self.model = model
        self.input_bytes = sum(n for _, n in model.INPUTS)
        self.received_end = 0

    def send(self, msg_type, request_id, body=b""):
        raw = bytes((msg_type,)) + _u32(request_id) + body
        self.out.write(b"\x00" + _encode(raw + _u32(_crc(raw))) + b"\x00")

    def accept_input(self, body, is_last):
        if len(body) < 4:
            return BAD_LENGTH
        offset = body[0] | (body[1] << 8) | (body[2] << 16) | (body[3] << 24)
        end = offset + len(body) - 4
        if offset == 0:
            self.received_end = 0
        if offset > self.received_end:
            return BAD_SEQUENCE
        if end > self.input_bytes or (is_last and end != self.input_bytes):
            return BAD_LENGTH
        at, base = 4, 0
        for arena_offset, n in self.model.INPUTS:
            nxt = base + n
            if offset < nxt and offset < end:
                count = min(end, nxt) - offset
                start = arena_offset + offset - base
                self.model.A[start:start + count] = body[at:at + count]
                at += count
                offset += count
            base = nxt
        self.received_end = max(self.received_end, end)
        return 0

    def infer(self, rid, body):
        status = self.accept_input(body, True)
        if status:
            self.send(INFER | REPLY, rid, bytes((status,)))
            return
        self.received_end = 0
        t0 = time.ticks_us()
        self.model.invoke()
        micros = time.ticks_diff(time.ticks_us(), t0)
        self.count_inference(micros)
        outputs = b"".join(bytes(self.model.A[o:o + n]) for o, n in self.model.OUTPUTS)
        self.replay = b"\x00" + _u32(micros) + _u32(micros) + outputs
        self.send(INFER | REPLY, rid, self.replay)

    def dispatch(self, msg_type, rid, body, check):
        if msg_type == INFER and self.replay is not None and self.last == (rid, check):
            self.send(INFER | REPLY, rid, self.replay)
            return True
        self.last, self.replay = (rid, check), None
        if msg_type == PING:
            self.send(PING | REPLY, rid, b"\x00\x02")
        elif msg_type == INFO:
            self.send(INFO | REPLY, rid, b"\x00" + self.model.INFO)
        elif msg_type == WRITE:
            self.send(WRITE | REPLY, rid, bytes((self.accept_input(body, False),)))
        elif msg_type == INFER:
            self.infer(rid, body)
        elif msg_type == SET_ARENA:
            self.send(SET_ARENA | REPLY, rid, bytes((UNSUPPORTED,)) + _u32(len(self.model.A)) * 2)
        elif msg_type == RESET_STATE:
            self.model.reset()
            self.received_end = 0
            self.send(RESET_STATE | REPLY, rid, b"\x00")
        elif msg_type == STATS:
            self.send(STATS | REPLY, rid, self.stats() if not body else bytes((BAD_LENGTH,)))
        elif UPDATE_BEGIN <= msg_type <= UPDATE_SIGNATURE and self.slots is not None:
            self.send(msg_type | REPLY, rid, self.slots.request(self, msg_type, body))
        elif msg_type == QUIT:
            self.send(QUIT | REPLY, rid, b"\x00")
            return False
        else:
            self.send(NAK, rid, bytes((BAD_TYPE,)))
        return True

    def count_inference(self, micros):
        self.inferences += 1
        self.latency_count += 1
        self.latency_sum += micros
        self.latency_min = min(self.latency_min, micros)
        self.latency_max = max(self.latency_max, micros)

    def stats(self):
        now = time.ticks_ms()
        self.uptime_ms += time.ticks_diff(now, self.started)
        self.started = now
        record = self.slots.record if self.slots else None
        active = record["active"] if record else {"version": 0, "sha": _model_sha(self.model), "slot": BUILT_IN}
        count = self.latency_count
        arena = len(self.model.A)
        firmware = "tinyedge viper"
        return (b"\x00\x01" + _u32(active["version"]) + unhexlify(active["sha"]) + bytes((active["slot"],))
                + bytes((len(firmware),)) + firmware.encode() + _u32(self.uptime_ms) + _u32(self.uptime_ms >> 32)
                + bytes((1 if record else 0,)) + _u32(record["boots"] - 1 if record else 0)
                + _u32(self.inferences) + _u32(self.errors) + _u32(count) + _u32(self.latency_min if count else 0)
                + _u32(self.latency_max) + _u32(self.latency_sum) + _u32(self.latency_sum >> 32)
                + _u32(arena) + _u32(arena) + bytes(21) + b"\x00")

    def handle(self, encoded):
        raw = _decode(encoded)
        if raw is None or len(raw) < 9:
            self.send(NAK, 0, bytes((BAD_FRAME if raw is None else BAD_LENGTH,)))
            return True
        content = raw[:-4]
        check = raw[-4] | (raw[-3] << 8) | (raw[-2] << 16) | (raw[-1] << 24)
        request_id = content[1] | (content[2] << 8) | (content[3] << 16) | (content[4] << 24)
        if _crc(content) != check:
            self.send(NAK, request_id, bytes((BAD_CRC,)))
            return True
        return self.dispatch(content[0], request_id, content[5:], check)


RECORDS = ("te_boot0.rec", "te_boot1.rec")
INCOMING = "te_incoming.img"
IMAGE_HEADER = 48          # "TESL", kind, 3 reserved, graph SHA-256, payload bytes, 0
KIND_MODULE = 3
BUILT_IN_STATE = ("te_model", "te_kernels")


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


class Slots:
    """Two model slots in the filesystem (te_slotN_model.mpy, te_slotN_kernels.mpy) and the boot record.
    The record is JSON plus its CRC-32, written alternately to two files: the newer valid one wins, so
    a power cut while one is written leaves the other in force. It is written last in an update."""

    def __init__(self):
        import json
        self.json = json
        self.update = None     # [version, image bytes, payload bytes, image sha, model sha, received, slot]
        self.record = self.read_record()
        if self.record is None or self.record["builtin"] != BUILTIN_SHA256:
            state = {"version": 0, "sha": BUILTIN_SHA256, "slot": 0, "files": "", "builtin": 1}
            self.record = {"seq": 0, "boots": 0, "builtin": BUILTIN_SHA256, "active": state, "previous": None}
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
            self.record["active"] = {"version": 0, "sha": BUILTIN_SHA256, "slot": 0, "files": "", "builtin": 1}
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
                record = self.json.loads(data[:-4])
            except ValueError:
                continue
            if best is None or record["seq"] > best["seq"]:
                best = record
        return best

    def write_record(self):
        self.record["seq"] += 1
        data = self.json.dumps(self.record).encode()
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
        u = self.update
        if u is None or u[0] != version or u[1] != image_bytes or u[3] != sha:
            slot = 1 - self.record["active"]["slot"] if not self.record["active"].get("builtin") else 1
            u = self.update = [version, image_bytes, payload, sha, model_sha, 0, slot]
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
        if body:
            self.update = None
            return BAD_IMAGE, 0     # shadow trials are not run on MicroPython boards
        self.update = None
        try:
            if _file_sha256(INCOMING, 0, u[1]) != u[3]:
                return BAD_HASH, 0
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
        if status:
            _forget(names[0])
            gc.collect()
            return status, failed
        previous = self.record["active"]
        self.record["previous"] = previous
        self.record["active"] = {"version": u[0], "sha": u[4], "slot": u[6], "files": files, "builtin": 0}
        try:
            self.write_record()
        except OSError:
            self.record["active"], self.record["previous"] = previous, None
            return STORE, 0
        self.activate(server, model)
        return 0, 0

    def self_test(self, model, at):
        """Run the image's vectors (at byte `at` of the incoming image) on `model`, bit for bit."""
        in_bytes = sum(n for _, n in model.INPUTS)
        out_bytes = sum(n for _, n in model.OUTPUTS)
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
                base = 0
                for offset, n in model.INPUTS:
                    model.A[offset:offset + n] = inputs[base:base + n]
                    base += n
                model.invoke()
                got = b"".join(bytes(model.A[o:o + n]) for o, n in model.OUTPUTS)
                if got != expected:
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


def serve():
    """Answer requests on stdin/stdout until QUIT."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    if UPDATABLE:
        server = Server(stdout, slots=Slots())
    else:
        import te_model
        server = Server(stdout, te_model)
    frame = bytearray()
    micropython.kbd_intr(-1)
    try:
        while True:
            byte = stdin.read(1)
            if not byte:
                continue
            if byte[0]:
                if len(frame) < MAX_FRAME:
                    frame.append(byte[0])
                continue
            if frame and not server.handle(frame):
                return
            frame = bytearray()
    finally:
        micropython.kbd_intr(3)
