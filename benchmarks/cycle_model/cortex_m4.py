"""Cortex-M4 cycles of executed Thumb-2 instructions, priced with the timings of Arm's Cortex-M4
Technical Reference Manual (DDI 0439, section 3.3 "Instruction set summary": table 3-1 and the
load/store pairing rules), for zero wait states. An estimate, not a measurement: a range.

What the TRM states and this model uses in every case:
  data processing, MOV/MOVW/MOVT, shifts, MUL, MLA, MLS, long multiplies, SMLAD and the other DSP
  multiplies, saturation, packing, bit fields: 1 · LDM/STM/PUSH/POP: 1+N · POP or LDM with PC: 1+N+P
  B, BL, BX, BLX taken: 1+P · conditional branch, CBZ/CBNZ: 1 not taken, 1+P taken · TBB/TBH: 2+P
  LDR to PC: 2+P · MOV/ADD to PC: 1+P · VLDR/VSTR: 2 (3 for a D register) · VPUSH/VPOP/VLDM/VSTM: 1+N
  words · VMLA/VFMA family: 3 · VDIV/VSQRT: 14 · other FPU data processing: 1.

What it leaves uncertain, as a low / mid / high range:
  P (pipeline refill): 1 / 2 / 3 — "1 to 3 depending on the alignment and width of the target
    instruction, and whether the processor manages to speculate the address early".
  single LDR/STR (any width): 2, but "one cycle is removed" when it follows an LDR whose destination
    is not used in its address (pipelined: 1). low also pipelines it after a store; high never does.
    STR Rx,[Ry,#imm] "is always one cycle" (low, mid); high prices it 2 as table 3-1 does.
    A load or store whose address register the previous data-processing instruction wrote stalls
    one cycle (mid, high): "there is no forwarding path".
  LDRD/STRD: 2 / 3 / 3 (table 3-1: 1+N with N = 2; low lets its address phase overlap).
  IT: 0 / 0 or 1 / 1 — folded onto a preceding 16-bit instruction (mid: 0 only then).
  SDIV/UDIV: 2 / 7 / 12 ("2 to 12 depending on the values").
Exception entry and exit, and wait states of real flash, are not priced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LEVELS = ("low", "mid", "high")
PIPELINE_REFILL = {"low": 1, "mid": 2, "high": 3}
CONDITIONS = frozenset("eq ne cs hs cc lo mi pl vs vc hi ls ge lt gt le al".split())
WIDTH_SUFFIX = re.compile(r"\.(w|n)$")
REGISTER = re.compile(r"\b(r1[0-5]|r[0-9]|sl|fp|ip|sp|lr|pc)\b")
ALIASES = {"sl": "r10", "fp": "r11", "ip": "r12", "sp": "r13", "lr": "r14", "pc": "r15"}
LOADS = ("ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrex", "ldrexb", "ldrexh", "ldrt", "ldrbt", "ldrht",
         "ldrsbt", "ldrsht")
STORES = ("str", "strb", "strh", "strex", "strexb", "strexh", "strt", "strbt", "strht")
MULTIPLE = ("ldm", "ldmia", "ldmfd", "ldmdb", "ldmea", "stm", "stmia", "stmea", "stmdb", "stmfd")
NO_DESTINATION = ("cmp", "cmn", "tst", "teq", "it", "nop", "b", "bl", "bx", "blx", "cbz", "cbnz", "tbb", "tbh")
SLOW_FPU = {"vdiv": 14, "vsqrt": 14}
FPU_MAC = ("vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms")


@dataclass(frozen=True)
class Instruction:
    """One disassembled Thumb instruction (GNU objdump syntax): `ldr.w r3, [r1, #4]!`."""
    address: int
    size: int
    mnemonic: str      # lower case, without .w/.n
    operands: str

    @staticmethod
    def parse(address: int, size: int, text: str) -> Instruction:
        text = text.split(";")[0].split("@")[0].strip().lower()
        mnemonic, _, operands = text.replace("\t", " ").partition(" ")
        return Instruction(address, size, WIDTH_SUFFIX.sub("", mnemonic.split(".")[0] if mnemonic.startswith("v")
                                                           else mnemonic), operands.strip())

    @property
    def base(self) -> str:
        """The mnemonic without a condition code (inside an IT block) or the flag-setting S."""
        return _split_condition(self.mnemonic)[0]

    @property
    def condition(self) -> str | None:
        """The condition of an instruction inside an IT block, or of a conditional branch."""
        if self.mnemonic in ("cbz", "cbnz"):
            return "z" if self.mnemonic == "cbz" else "nz"
        return _split_condition(self.mnemonic)[1]

    @property
    def registers(self) -> list[str]:
        return [ALIASES.get(r, r) for r in REGISTER.findall(self.operands)]

    @property
    def address_registers(self) -> set[str]:
        inside = self.operands[self.operands.find("["):self.operands.find("]") + 1] if "[" in self.operands else ""
        return {ALIASES.get(r, r) for r in REGISTER.findall(inside)}

    @property
    def list_length(self) -> int:
        """N of LDM/STM/PUSH/POP (registers, ranges counted), or words of VPUSH/VPOP/VLDM/VSTM."""
        body = self.operands[self.operands.find("{") + 1:self.operands.find("}")]
        count = 0
        for item in filter(None, (part.strip() for part in body.split(","))):
            first, _, last = item.partition("-")
            count += int(last.strip()[1:]) - int(first[1:]) + 1 if last else 1
            words_per_register = 2 if first.startswith("d") else 1
        return count * (words_per_register if body.strip() else 1)

    @property
    def writes_pc(self) -> bool:
        regs = self.registers
        base = self.base
        if base in ("pop", *MULTIPLE) and base.startswith(("pop", "ldm")):
            return "{" in self.operands and "r15" in [ALIASES.get(r, r) for r in REGISTER.findall(
                self.operands[self.operands.find("{"):])]
        if base in LOADS or base in ("mov", "add"):
            return bool(regs) and regs[0] == "r15"
        return False

    @property
    def destinations(self) -> set[str]:
        base = self.base
        regs = self.registers
        if not regs or base in NO_DESTINATION or base in STORES or base in ("strd", "push", "vpush", "vstr", "vstm"):
            return set()
        if base in ("pop", "ldm", "ldmia", "ldmfd", "ldmdb", "ldmea"):
            return {ALIASES.get(r, r) for r in REGISTER.findall(self.operands[self.operands.find("{"):])}
        if base in ("ldrd", "smull", "umull", "smlal", "umlal", "smlald", "smlsld", "umaal", "vmov"):
            return set(regs[:2])
        return {regs[0]}

    @property
    def is_single_load(self) -> bool:
        return self.base in LOADS

    @property
    def is_single_store(self) -> bool:
        return self.base in STORES

    @property
    def is_conditional_branch(self) -> bool:
        return self.is_branch and self.condition not in (None, "al")

    @property
    def is_branch(self) -> bool:
        return self.base in ("b", "bl", "bx", "blx", "cbz", "cbnz", "tbb", "tbh") or self.writes_pc


def _split_condition(mnemonic: str) -> tuple[str, str | None]:
    """("ldr", "ne") for ldrne, ("b", "ls") for bls, ("add", None) for adds."""
    m, condition = mnemonic, None
    if m[-2:] in CONDITIONS and m[:-2] in KNOWN_BASES:
        m, condition = m[:-2], m[-2:]
    if m.endswith("s") and m[:-1] in KNOWN_BASES:
        m = m[:-1]
    return m, condition


KNOWN_BASES = frozenset(
    "adc add adr and asr b bfc bfi bic bl blx bx clz cmn cmp eor ldm ldr ldrb ldrh ldrsb ldrsh ldrd lsl lsr mla mls mov "
    "movt movw mul mvn orn orr pop push qadd qsub rbit rev rev16 revsh ror rrx rsb sbc sbfx sdiv sel smla smlad smlal "
    "smmul smul smulbb smlabb smuad ssat stm cbz cbnz tbb tbh str strb strh strd sub sxtb sxth sxtb16 sxtab sxtah sxtab16 teq tst ubfx "
    "udiv umlal umull usat uxtb uxth uxtb16 uxtab uxtah uxtab16 neg pkhbt pkhtb ldmia stmia stmdb".split())


def instruction_cycles(insn: Instruction, previous: Instruction | None, level: str) -> int:
    """Cycles of one instruction that does not leave its block, given the one before it in the block."""
    base = insn.base
    if base in ("ldrd", "strd"):
        return (2 if level == "low" else 3) + _address_stall(insn, previous, level)
    if insn.is_single_load or insn.is_single_store:
        return _single_load_store(insn, previous, level)
    if base in ("push", "pop", "vpush", "vpop") or base in MULTIPLE or base.startswith(("vldm", "vstm")):
        return 1 + insn.list_length
    if base in ("vldr", "vstr"):
        return 3 if "d" in insn.operands.split(",")[0] else 2
    if base in ("sdiv", "udiv"):
        return {"low": 2, "mid": 7, "high": 12}[level]
    if base.startswith("it") and set(base[2:]) <= {"t", "e"}:
        folded = previous is not None and previous.size == 2
        return {"low": 0, "mid": 0 if folded else 1, "high": 1}[level]
    if base in SLOW_FPU:
        return SLOW_FPU[base]
    if base in FPU_MAC:
        return 3
    return 1


def _single_load_store(insn: Instruction, previous: Instruction | None, level: str) -> int:
    if insn.is_single_store and "[" in insn.operands and level != "high" and not _register_offset(insn):
        return 1    # STR Rx,[Ry,#imm] "is always one cycle" (the write buffer takes the data)
    pipelined = (previous is not None and level != "high"
                 and (previous.is_single_load or (level == "low" and previous.is_single_store))
                 and not (previous.destinations & insn.address_registers))
    cycles = 1 if pipelined else 2
    if level == "high" and "[pc" in insn.operands:
        cycles += 1   # "LDR Rx,[PC,#imm] might add a cycle because of contention with the fetch unit"
    return cycles + _address_stall(insn, previous, level)


def _register_offset(insn: Instruction) -> bool:
    inside = insn.operands[insn.operands.find("["):insn.operands.find("]")]
    return len(REGISTER.findall(inside)) > 1


def _address_stall(insn: Instruction, previous: Instruction | None, level: str) -> int:
    """One cycle when the previous data-processing instruction wrote a register of this address."""
    if level == "low" or previous is None or previous.is_single_load or previous.base in ("ldrd", "pop") \
            or previous.base in MULTIPLE:
        return 0
    return 1 if previous.destinations & (insn.address_registers - {"r15"}) else 0


def branch_cycles(insn: Instruction, taken: bool, level: str) -> int:
    """Cycles of the instruction that ends a block, taken or not."""
    p = PIPELINE_REFILL[level]
    base = insn.base
    if base in ("pop", *MULTIPLE) and insn.writes_pc:
        return 1 + insn.list_length + p
    if insn.is_single_load and insn.writes_pc:
        return 2 + p
    if base in ("tbb", "tbh"):
        return 2 + p
    if insn.is_conditional_branch:
        return 1 + p if taken else 1
    return 1 + p


@dataclass(frozen=True)
class Block:
    """A translation block: its instructions, and how often it ran and left by falling through or jumping."""
    instructions: tuple[Instruction, ...]
    executions: int
    fell_through: int
    jumped: int


def block_cycles(block: Block, level: str) -> int:
    """Cycles of all the executions of a block."""
    total = 0
    previous = None
    last = block.instructions[-1]
    body = block.instructions[:-1] if last.is_branch else block.instructions
    for insn in body:
        total += instruction_cycles(insn, previous, level) * block.executions
        previous = insn
    if last.is_branch:
        taken = block.jumped if last.is_conditional_branch else block.executions
        total += branch_cycles(last, True, level) * taken
        total += branch_cycles(last, False, level) * (block.executions - taken)
    return total


def sequence_cycles(lines: list[str], level: str, taken: bool = True) -> int:
    """Cycles of straight-line assembly (one executed pass; a final branch taken or not): for tests and
    for pricing a hand-written loop body."""
    address = 0
    instructions = []
    for line in lines:
        insn = Instruction.parse(address, 4 if ".w" in line.split()[0] else 2, line)
        instructions.append(insn)
        address += insn.size
    block = Block(tuple(instructions), 1, 0 if taken else 1, 1 if taken else 0)
    return block_cycles(block, level)


def estimate(blocks: list[Block]) -> dict[str, int]:
    return {level: sum(block_cycles(b, level) for b in blocks) for level in LEVELS}
