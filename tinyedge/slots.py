"""Updatable firmware: the model's data separated from the code it was compiled for.

The AOT runtime compiles a graph to C. In updatable firmware (`generate --updatable`) the data an
update may change — every numeric constant array (weights, biases, multipliers, shifts, tables),
the numbers inside the per-op parameter structs (zero points, activation ranges, rescalings) and
the integer literals of the op calls but the arena offsets — lives in RAM, loaded at boot from the active slot of the board's persistent store
(firmware/protocol/te_slots.c). What remains (the op calls, the arena plan, the geometry) is the
*graph*: its SHA-256 is compiled in, and an image for another graph is refused.

The TFLM runtime is not compiled for a graph: its slot holds the .tflite flatbuffer itself, read at
boot (and after an update) into a RAM buffer the interpreter is rebuilt on; a model whose ops the
firmware's op resolver lacks, or that does not fit its tensor arena, is refused by the board.

A slot image is: header (magic "TESL", kind u8 = 1 (aot) or 2 (tflm), 3 reserved, graph SHA-256
(zeros for tflm), array bytes u32 (tflm: the flatbuffer's length), scalar count u32), each array's
bytes padded to 4, the scalars as i32, then the self-test vectors (count u32, input bytes u32, output bytes u32, then each vector's inputs and expected
outputs, all concatenated). docs/protocol.md, "Updates", describes how it travels.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tinyedge.aot.compiler import MODEL_SOURCE, AotProgram
from tinyedge.aot.lowering import Table
from tinyedge.boards import Board
from tinyedge.errors import TinyedgeError
from tinyedge.paths import FIRMWARE_DIR, TEMPLATES_DIR
from tinyedge.plugins import RUNTIMES, get_runtime
from tinyedge.reference import measure_arena
from tinyedge.sections import StoreSettings
from tinyedge.tflite_model import TfliteModel

IMAGE_MAGIC = b"TESL"
KIND_AOT = 1
KIND_TFLM = 2
KIND_MODULE = 3
SLOT_COMPILED, SLOT_FLATBUFFER, SLOT_MODULE = "compiled", "flatbuffer", "module"
MODULE_SLOTS_FILE = "te_slots.py"   # the MicroPython server's slots, in updatable firmware only
MODULE_VERIFIER_FILE = "te_ed25519.py"   # its Ed25519 verifier, in firmware generated with --signing-key only
NO_GRAPH = bytes(32)
# Updatable TFLM firmware: room for a model this many times the built-in one (at least the minimum),
# and an arena this many times what the built-in model measures, so a retrained or reshaped model fits.
TFLM_GROWTH = 4
TFLM_MIN_SLOT_MODEL = 64 * 1024
TFLM_MIN_ARENA = 32 * 1024
HEADER = struct.Struct("<4sB3x32sII")
VECTORS_HEADER = struct.Struct("<III")

# Numeric arrays whose values an update replaces, by C type (numpy dtype for the image's bytes).
SLOT_DTYPES = {"int8_t": "<i1", "uint8_t": "<u1", "int16_t": "<i2", "uint16_t": "<u2", "int32_t": "<i4",
               "uint32_t": "<u4"}
# Structs that are geometry, hence graph: kept as compiled.
GRAPH_STRUCTS = frozenset({"te_window_t"})
INT32 = (-(1 << 31), (1 << 31) - 1)


# An integer literal in an op's call (a softmax's rescaling, a pooling's activation range, a dimension),
# except an arena offset, which belongs to the graph's memory plan.
OP_LITERAL = re.compile(r"(?<![\w.])(?<!te_arena \+ )(?<!te_scratch \+ )-?\d+(?![\w.])")
COMMENT = re.compile(r"(/\*.*?\*/)", re.S)


@dataclass(frozen=True)
class SlotLayout:
    """The data of one compiled model that goes into a slot, and the graph it belongs to. `scalars`
    holds the numbers of the parameter structs, then the integer literals of the op calls."""
    graph_sha256: bytes
    arrays: list[Table]
    structs: list[Table]
    scalars: list[int]
    op_lines: list[str]

    @property
    def array_bytes(self) -> int:
        return sum(_padded(len(_array_bytes(t))) for t in self.arrays)

    def manifest(self) -> dict[str, object]:
        """What tinyedge.json records of an updatable project."""
        return {"graph_sha256": self.graph_sha256.hex(), "payload_bytes": len(self.payload()),
                "arrays": len(self.arrays), "scalars": len(self.scalars)}

    def payload(self) -> bytes:
        """The image without its self-test vectors."""
        header = HEADER.pack(IMAGE_MAGIC, KIND_AOT, self.graph_sha256, self.array_bytes, len(self.scalars))
        arrays = b"".join(_array_bytes(t).ljust(_padded(len(_array_bytes(t))), b"\0") for t in self.arrays)
        return header + arrays + struct.pack(f"<{len(self.scalars)}i", *self.scalars)


@dataclass(frozen=True)
class TflmSlotLayout:
    """A TFLM slot: the flatbuffer itself, with no graph to match."""
    model: bytes
    graph_sha256: bytes = NO_GRAPH

    def payload(self) -> bytes:
        header = HEADER.pack(IMAGE_MAGIC, KIND_TFLM, NO_GRAPH, len(self.model), 0)
        return header + self.model.ljust(_padded(len(self.model)), b"\0")


@dataclass(frozen=True)
class ModuleSlotLayout:
    """A MicroPython board's slot: the model's two modules compiled to .mpy for the board (te_model,
    whose `import te_kernels` the board binds to the slot's own kernels module, and te_kernels)."""
    model_mpy: bytes
    kernels_mpy: bytes
    graph_sha256: bytes = NO_GRAPH

    def payload(self) -> bytes:
        modules = struct.pack("<II", len(self.model_mpy), len(self.kernels_mpy)) + self.model_mpy + self.kernels_mpy
        return HEADER.pack(IMAGE_MAGIC, KIND_MODULE, NO_GRAPH, len(modules), 0) + modules.ljust(_padded(len(modules)), b"\0")


def make_module_server_updatable(server: Path, builtin_sha256: str, signing_key: Path | None = None) -> list[str]:
    """Switch the MicroPython server (templates/micropython/te_server.py, copied into the project) to
    two model slots in the board's filesystem, kept by te_slots.py (copied beside it) and, with a
    signing key, checked by te_ed25519.py (copied too); returns the modules it added."""
    key = raw_public_key(signing_key).hex() if signing_key else ""
    added = [MODULE_SLOTS_FILE, MODULE_VERIFIER_FILE] if signing_key else [MODULE_SLOTS_FILE]
    for name in added:
        shutil.copyfile(TEMPLATES_DIR / "micropython" / name, Path(server).parent / name)
    text = Path(server).read_text()
    for line, value in (("UPDATABLE = False", "UPDATABLE = True"),
                        ('BUILTIN_SHA256 = ""', f'BUILTIN_SHA256 = "{builtin_sha256}"'),
                        ('SIGNING_KEY = ""', f'SIGNING_KEY = "{key}"')):
        if line not in text:
            raise TinyedgeError(f"{server} is not tinyedge's MicroPython server: generate the project again.")
        text = text.replace(line, value, 1)
    Path(server).write_text(text)
    return added


MODULE_SLOTS_MANIFEST = {"runtime": "viper", "slots": "te_slot0_*.mpy, te_slot1_*.mpy",
                         "boot_record": "te_boot0.rec, te_boot1.rec"}


def tflm_slot_sizes(model: TfliteModel, arena_bytes: int | None) -> tuple[int, int]:
    """(model buffer bytes, arena bytes) of updatable TFLM firmware: both grown beyond the built-in
    model's needs (an explicit --arena-kb wins for the arena), in multiples of 16."""
    def align(n: int) -> int:
        return (n + 15) // 16 * 16
    buffer = align(max(TFLM_GROWTH * len(model.data), TFLM_MIN_SLOT_MODEL))
    if arena_bytes:
        return buffer, align(arena_bytes)
    return buffer, align(max(TFLM_GROWTH * measure_arena(model), TFLM_MIN_ARENA))


def tflm_slot_defines(buffer_bytes: int) -> dict[str, str]:
    """The build defines that make te_tflm_runtime.cc updatable (a slot's model read into RAM)."""
    return {"TE_TFLM_SLOT_MODEL_BYTES": f"{buffer_bytes}u"}


def write_signing_key(out_dir: Path, signing_key: Path) -> str:
    """te_model_signing_key() in its own source file (TFLM firmware); returns its path in out_dir."""
    name = "te_signing_key.cc"
    (Path(out_dir) / name).write_text('#include "te_lifecycle.h"\n' + signing_key_source(signing_key))
    return name


def slot_content(runtime: str) -> str:
    """What the runtime's model slot holds: SLOT_COMPILED, SLOT_FLATBUFFER, or "" (no slots)."""
    return get_runtime(runtime).slot_content


def check_updatable(board: Board, runtime: str, port: str) -> None:
    """Refuse, in one sentence, the boards and runtimes without model slots."""
    if slot_content(runtime) == SLOT_MODULE:
        return     # MicroPython boards keep their slots in their own filesystem
    if board.framework == "avr" or board.progmem:
        raise TinyedgeError(f"the {board.id} board has no room for updatable firmware (two model slots): "
                            "drop --updatable and re-flash to change its model.")
    # The port's te_store_<port>.c, or the one the profile's `store.source` names (a port serving several chips).
    source = board.settings(StoreSettings).source if board.has_section(StoreSettings) else ""
    if not port or not (FIRMWARE_DIR / "ports" / port / f"te_store_{source or port}.c").is_file():
        stored = ", ".join(sorted(p.parent.name for p in (FIRMWARE_DIR / "ports").glob("*/te_store_*.c")))
        raise TinyedgeError(f"the {board.id} board's port ({port or 'none'}) has no persistent store for model slots yet "
                            f"(the ports with one: {stored}): drop --updatable and re-flash to change its model.")
    if not slot_content(runtime):
        updatable = " or ".join(name for name in RUNTIMES if slot_content(name))
        raise TinyedgeError(f"updatable firmware is built for the {updatable} runtime, not {runtime}: "
                            f"pass --runtime {updatable}, or drop --updatable.")


def _padded(n: int) -> int:
    return (n + 3) & ~3


def _array_bytes(table: Table) -> bytes:
    return np.asarray(table.values, dtype=SLOT_DTYPES[table.c_type]).tobytes()


def _is_slot_array(table: Table) -> bool:
    return (not table.struct and table.in_flash and table.c_type in SLOT_DTYPES
            and all(isinstance(v, int) for v in table.values))


def _is_slot_struct(table: Table) -> bool:
    return table.struct and table.in_flash and table.c_type not in GRAPH_STRUCTS


def _numbers(values: Sequence) -> list[int]:
    found: list[int] = []
    for value in values:
        if isinstance(value, tuple):
            found += _numbers(value)
        elif isinstance(value, int):
            found.append(value)
    return found


def _initializer(values: Sequence, number: "callable") -> str:
    parts = []
    for value in values:
        if isinstance(value, tuple):
            parts.append(_initializer(value, number))
        elif isinstance(value, int):
            parts.append(number(value))
        else:
            parts.append(str(value))
    return "{" + ", ".join(parts) + "}"


def _op_literals(line: str, replace: "callable") -> str:
    """`line` with each int32 literal of its code (not its comments) replaced by replace(value)."""
    def one(match: re.Match) -> str:
        value = int(match.group())
        return replace(value) if INT32[0] <= value <= INT32[1] else match.group()
    return "".join(part if COMMENT.fullmatch(part) else OP_LITERAL.sub(one, part) for part in COMMENT.split(line))


def slot_layout(program: AotProgram) -> SlotLayout:
    arrays = [t for t in program.tables if _is_slot_array(t)]
    structs = [t for t in program.tables if _is_slot_struct(t)]
    scalars = [v for t in structs for v in _numbers(t.values)]
    if any(not INT32[0] <= v <= INT32[1] for v in scalars):
        raise TinyedgeError("this model has a parameter outside the int32 range, which a slot cannot carry: "
                            "generate it without --updatable.")
    for line in program.op_lines:
        _op_literals(line, lambda v: scalars.append(v) or "")
    graph = hashlib.sha256(_graph_text(program, arrays, structs).encode()).digest()
    return SlotLayout(graph, arrays, structs, scalars, list(program.op_lines))


def _graph_text(program: AotProgram, arrays: list[Table], structs: list[Table]) -> str:
    """te_model.c and .h with every number a slot carries elided and the comments (model name, hash,
    tensor names) dropped: two models with the same graph give the same text."""
    text = program.source
    for table in arrays:
        text = text.replace(table.render(), f"{table.c_type} {table.name}[{len(table.values)}];\n")
    for table in structs:
        text = text.replace(table.render(), f"{table.c_type} {table.name} = {_initializer(table.values, lambda v: '#')};\n")
    for line in program.op_lines:
        text = text.replace(line, _op_literals(line, lambda v: "#"))
    return re.sub(r"/\*.*?\*/", "", text + program.header, flags=re.S)


def updatable_source(program: AotProgram, layout: SlotLayout) -> str:
    """te_model.c whose slot data lives in RAM (initialised with this model: the built-in one) and
    that describes it to te_slots.c through te_model_slot_layout()."""
    text = program.source
    for table in layout.arrays:
        text = text.replace(table.render(), table.render().replace("static const ", "static ").replace(" TE_CONST", ""))
    for table in layout.structs:
        text = text.replace(table.render(), table.render().replace("static const ", "static ").replace(" TE_CONST", ""))
    count = max(1, len(layout.scalars))
    text = text.replace("void te_model_invoke(void) {",
                        f"/* The slot's numbers: the structs' fields, then the op calls' literals. */\n"
                        f"static int32_t te_slot_scalars[{count}];\n\nvoid te_model_invoke(void) {{", 1)
    in_structs = sum(len(_numbers(t.values)) for t in layout.structs)
    in_ops = iter(range(in_structs, len(layout.scalars)))
    for line in layout.op_lines:
        text = text.replace(line, _op_literals(line, lambda v: f"te_slot_scalars[{next(in_ops)}]"))
    counter = iter(range(in_structs))
    assignments = "\n".join(
        f"  {t.name} = ({t.c_type}){_initializer(t.values, lambda v: f'te_slot_scalars[{next(counter)}]')};"
        for t in layout.structs)
    arrays = ",\n".join(f"  {{{t.name}, sizeof {t.name}}}" for t in layout.arrays) or "  {0, 0}"
    graph = ", ".join(f"0x{b:02x}" for b in layout.graph_sha256)
    scalars = ", ".join(map(str, layout.scalars)) or "0"
    return text + f"""
/* ---- updatable firmware: the data a model update replaces (tinyedge/slots.py, te_slots.c) ---- */
#include "te_lifecycle.h"

static int32_t te_slot_scalars[{max(1, len(layout.scalars))}] = {{{scalars}}};

static const te_slot_array_t te_slot_arrays[] = {{
{arrays}
}};

static void te_slot_apply_scalars(void) {{
{assignments}
}}

static const te_slot_layout_t te_slot_layout = {{
  {{{graph}}},
  te_slot_arrays, {len(layout.arrays)}u, te_slot_scalars, {len(layout.scalars)}u, te_slot_apply_scalars,
  TE_SLOT_KIND_AOT, 0, 0u, 0, 0
}};

const te_slot_layout_t *te_model_slot_layout(void) {{ return &te_slot_layout; }}
"""


def signing_key_source(key_path: Path) -> str:
    """te_model_signing_key() returning the raw Ed25519 public key read from a PEM file."""
    raw = ", ".join(f"0x{b:02x}" for b in raw_public_key(key_path))
    return ("\n/* Updates must be signed with this Ed25519 key (generate --signing-key). */\n"
            f"static const uint8_t te_signing_key[32] = {{{raw}}};\n"
            "const uint8_t *te_model_signing_key(void) { return te_signing_key; }\n")


def raw_public_key(key_path: Path) -> bytes:
    """The 32 raw bytes of the Ed25519 public key in a PEM file."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

    try:
        key = load_pem_public_key(Path(key_path).read_bytes())
    except (OSError, ValueError, UnsupportedAlgorithm) as exc:
        raise TinyedgeError(f"cannot read the public key {key_path} ({exc}): give an Ed25519 public key in PEM "
                            "(`openssl pkey -in KEY -pubout`).") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TinyedgeError(f"{key_path} is not an Ed25519 public key: make one with `openssl pkey -in KEY -pubout`.")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def write_updatable_source(program: AotProgram, out_dir: Path, signing_key: Path | None = None,
                           subdir: str = "aot") -> SlotLayout:
    """Rewrite the generated te_model.c as updatable firmware; returns its slot layout."""
    layout = slot_layout(program)
    key = signing_key_source(signing_key) if signing_key else ""
    (Path(out_dir) / subdir / MODEL_SOURCE).write_text(updatable_source(program, layout) + key)
    return layout


def vectors_bytes(inputs: list[bytes], outputs: list[bytes], input_bytes: int, output_bytes: int) -> bytes:
    """The image's self-test section: each input followed by the outputs the host reference computed."""
    if any(len(x) != input_bytes for x in inputs) or any(len(y) != output_bytes for y in outputs):
        raise TinyedgeError("the bundle's self-test vectors do not match the model's input and output sizes: "
                            "make the bundle again with `tinyedge bundle`.")
    return VECTORS_HEADER.pack(len(inputs), input_bytes, output_bytes) + b"".join(
        x + y for x, y in zip(inputs, outputs))
