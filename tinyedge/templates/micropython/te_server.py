"""tinyedge's serial protocol on MicroPython (docs/protocol.md), served over the REPL's stdin/stdout.

The host enters the raw REPL and runs `import te_server; te_server.serve()`. Frames are
rCOBS(type, request id u32 LE, body, CRC-32 LE) + 0x00, exactly as the C firmware speaks them: every
reply echoes its request's id, and a re-sent INFER (same id and CRC) is answered from the outputs
already computed. Ctrl-C is
disabled while serving (frames may hold 0x03); a QUIT request (0x7E) hands the REPL back.

STATS answers on every board. Updatable firmware (`generate --updatable`: UPDATABLE below) also runs
te_slots.py: two model slots in the board's filesystem (docs/protocol.md, "Updates on MicroPython
boards").
"""
import sys
import time

import micropython

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
BAD_SIGNATURE = 0x2C
BUILT_IN = 0xFF
# Updatable firmware: `generate --updatable` sets these lines (the last, the raw Ed25519 public key in
# hex, with --signing-key: te_slots.py then takes only updates signed with it, checked by te_ed25519.py).
UPDATABLE = False
BUILTIN_SHA256 = ""
SIGNING_KEY = ""


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
        shadowing = self.slots is not None and self.slots.shadowing()
        if shadowing:     # the input, for the model on trial: the active model's run may overwrite it
            inputs = b"".join(bytes(self.model.A[o:o + n]) for o, n in self.model.INPUTS)
        t0 = time.ticks_us()
        self.model.invoke()
        micros = time.ticks_diff(time.ticks_us(), t0)
        self.count_inference(micros)
        outputs = b"".join(bytes(self.model.A[o:o + n]) for o, n in self.model.OUTPUTS)
        self.replay = b"\x00" + _u32(micros) + _u32(micros) + outputs
        if shadowing:
            self.slots.after_inference(self, inputs, outputs)
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
                + _u32(arena) + _u32(arena) + (self.slots.shadow_report() if self.slots else bytes(21))
                + (b"\x01" + unhexlify(SIGNING_KEY) if SIGNING_KEY else b"\x00"))

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


def serve():
    """Answer requests on stdin/stdout until QUIT."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    if UPDATABLE:
        import te_slots
        server = Server(stdout, slots=te_slots.Slots(BUILTIN_SHA256))
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
