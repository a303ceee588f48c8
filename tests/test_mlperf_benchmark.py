"""benchmarks/mlperf_tiny.py keeps its contract: `--models DIR [--tflm-dir D] [--tflm-cmsis-dir D2]
--json OUT` prints a row per runtime and writes {"models": {STEM: {RUNTIME: {"instructions": int,
"flash_bytes": int, "ram_bytes": int, "weights_bytes": int, "bit_exact": float,
"cycles_estimate": {"low": int, "mid": int, "high": int}}}}}. Run here on the
smallest real model with the AOT runtime only (no TFLM tree needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REAL_MODELS, REPO, require_tools

REAL = REAL_MODELS


@pytest.mark.skipif(not REAL.is_dir(), reason=f"the real models are not here ({REAL} is absent)")
def test_mlperf_benchmark_writes_the_contracted_json(tmp_path):
    require_tools("arm-none-eabi-gcc", "make", "qemu-system-arm")
    out = tmp_path / "figures.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mlperf_tiny.py"), "--models", str(REAL),
                             "--json", str(out), "--only", "hello_world", "--samples", "2", "--runs", "1"],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads(out.read_text())["models"]["hello_world_int8"]["aot"]
    assert {k: type(figures[k]) for k in ("instructions", "flash_bytes", "ram_bytes", "weights_bytes", "bit_exact")} \
        == {"instructions": int, "flash_bytes": int, "ram_bytes": int, "weights_bytes": int, "bit_exact": float}
    assert figures["bit_exact"] == 1.0 and figures["weights_bytes"] > 0 and figures["instructions"] > 1000
    # estimated Cortex-M4 cycles: a range around more cycles than instructions (no M4 instruction takes < 1)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from cycle_model.trace import plugins_supported

    if not plugins_supported():
        assert figures["cycles_estimate"] is None and "cannot load TCG plugins" in result.stderr
        return
    cycles = figures["cycles_estimate"]
    assert set(cycles) == {"low", "mid", "high"}
    assert figures["instructions"] * 0.9 < cycles["low"] <= cycles["mid"] <= cycles["high"] < 4 * figures["instructions"]
    # and in energy, at the datasheet figures the JSON names
    sheet = json.loads(out.read_text())["energy_datasheet"]
    joules_per_cycle = sheet["run_current_ma"] / 1000 * sheet["supply_v"] / sheet["clock_hz"]
    assert figures["energy_uj_estimate"]["mid"] == pytest.approx(cycles["mid"] * joules_per_cycle * 1e6, abs=1e-3)
    rows = [line for line in result.stdout.splitlines() if line.startswith("hello_world_int8")]
    assert len([row for row in rows if " aot " in row]) == 1
    assert any("Estimated Cortex-M4 cycles" in line for line in result.stdout.splitlines())


# Estimated Cortex-M4 cycles (mid) per inference the AOT must stay under: 0.80x the lower of TFLM + CMSIS-NN's
# on the same emulated board and X-CUBE-AI's published cycles (issue 18). From the instruction trace, so a
# busy machine does not move them.
CYCLE_CEILINGS = {"ad01_int8": 0.80 * 739_000, "kws_ref_model": 0.80 * 9_010_000, "vww_96_int8": 0.80 * 27_660_000,
                  "pretrainedResnet_quant": 0.80 * 27_230_000}


@pytest.mark.skipif(not REAL.is_dir(), reason=f"the real models are not here ({REAL} is absent)")
@pytest.mark.parametrize("stem", sorted(CYCLE_CEILINGS))
def test_aot_leads_cmsis_nn_in_estimated_cycles(stem, tmp_path):
    require_tools("arm-none-eabi-gcc", "make", "qemu-system-arm")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from cycle_model.trace import plugins_supported

    if not plugins_supported():
        pytest.skip("the installed QEMU cannot load TCG plugins: no cycle estimate")
    out = tmp_path / "figures.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mlperf_tiny.py"), "--models", str(REAL),
                             "--json", str(out), "--only", stem, "--samples", "2", "--runs", "1"],
                            capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads(out.read_text())["models"][stem]["aot"]
    assert figures["bit_exact"] == 1.0
    assert figures["cycles_estimate"]["mid"] <= CYCLE_CEILINGS[stem]
