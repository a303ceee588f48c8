"""Models with several inputs or outputs: `deploy`/`validate` take one array per input (`--data a.npy
--data b.npy` in the order `inspect` lists them, or one .npz keyed by input name), INFER carries them
all concatenated, every output is compared bit for bit, and data that does not fit is refused before
anything is generated, built or flashed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import multi_io_models
from conftest import require_tools, requires_tflm, run_tinyedge
from tinyedge.tflite_model import load_tflite

QEMU_TOOLS = ("arm-none-eabi-gcc", "make", "qemu-system-arm")
SAMPLES = 12


@pytest.fixture(scope="module")
def add_model(tmp_path_factory) -> Path:
    """The two-input ADD model, with one .npy per input (in the .tflite's order) and an .npz of both."""
    folder = tmp_path_factory.mktemp("two-inputs")
    model = multi_io_models.two_input_add(folder / "add.tflite")
    names = [t.name for t in load_tflite(model).input_tensors]
    arrays = multi_io_models.inputs_for(names, SAMPLES, seed=5)
    for i, name in enumerate(names):
        np.save(folder / f"input{i}.npy", arrays[name])
    np.savez(folder / "inputs.npz", **arrays)
    return model


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("two-outputs")
    model = multi_io_models.two_outputs(folder / "heads.tflite")
    np.save(folder / "x.npy", multi_io_models.inputs_for(["a"], SAMPLES, seed=6)["a"])
    return model


def deploy(model: Path, board: str, runtime: str, data: list[Path], out: Path, *extra: str):
    args = [a for path in data for a in ("--data", path)]
    return run_tinyedge("deploy", model, "--board", board, "--runtime", runtime, *args, "-o", out,
                        "--json", out.parent / f"{out.name}.json", *extra,
                        timeout=1800 if runtime == "tflm" else 600)   # TFLM's first build is long on a busy machine


def passed_report(result, out: Path) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out.parent / f"{out.name}.json").read_text())
    assert report["passed"] and report["bit_exact"] == 1.0 and report["samples"] == SAMPLES
    return report


def test_a_two_input_model_validates_on_the_host_board_with_one_array_per_input(add_model, tmp_path):
    folder = add_model.parent
    inputs = [folder / "input0.npy", folder / "input1.npy"]
    by_order = passed_report(deploy(add_model, "host", "aot", inputs, tmp_path / "npy"), tmp_path / "npy")
    by_name = passed_report(deploy(add_model, "host", "aot", [folder / "inputs.npz"], tmp_path / "npz"), tmp_path / "npz")
    assert by_order["data_sha256"] == by_name["data_sha256"], "the same inputs, given either way"
    journal = (tmp_path / "npy" / "validate.jsonl").read_text().splitlines()
    assert len(journal) == 1 + SAMPLES


def test_swapped_inputs_are_a_different_run(add_model, tmp_path):
    """The two inputs have different scales: given in the other order, the run is another one (and
    still bit-exact, the host reference taking the same bytes)."""
    folder = add_model.parent
    swapped = passed_report(deploy(add_model, "host", "aot", [folder / "input1.npy", folder / "input0.npy"],
                                   tmp_path / "swapped"), tmp_path / "swapped")
    ordered = passed_report(deploy(add_model, "host", "aot", [folder / "input0.npy", folder / "input1.npy"],
                                   tmp_path / "ordered"), tmp_path / "ordered")
    assert swapped["data_sha256"] != ordered["data_sha256"]


def test_a_two_output_model_is_compared_output_by_output_on_the_host_board(two_heads, tmp_path):
    report = passed_report(deploy(two_heads, "host", "aot", [two_heads.parent / "x.npy"], tmp_path / "out"),
                           tmp_path / "out")
    row = json.loads((tmp_path / "out" / "validate.jsonl").read_text().splitlines()[1])
    assert len(row["output"]) == 3 + 2, "both heads, concatenated in the .tflite's output order"
    assert report["top1_agreement"] is not None


def refused_before_building(result, out: Path, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert message.startswith("error:") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in message
    assert not (out / "firmware").exists(), "refused before generate, build and flash"


def test_data_that_does_not_fit_the_inputs_is_refused_before_anything_is_built(add_model, tmp_path):
    folder = add_model.parent
    names = [t.name for t in load_tflite(add_model).input_tensors]
    refused_before_building(deploy(add_model, "host", "aot", [folder / "input0.npy"], tmp_path / "one"), tmp_path / "one",
                            f"the model takes 2 input(s) ({names[0]}, {names[1]}) but 1 --data array(s) were given",
                            "or one .npz keyed by input name")
    np.save(tmp_path / "short.npy", np.zeros((SAMPLES, 5), np.float32))
    refused_before_building(deploy(add_model, "host", "aot", [folder / "input0.npy", tmp_path / "short.npy"],
                                   tmp_path / "shape"), tmp_path / "shape",
                            f"--data #2 ({names[1]}) samples have shape (5,), but the model expects (8,)")
    np.save(tmp_path / "fewer.npy", np.zeros((3, 8), np.float32))
    refused_before_building(deploy(add_model, "host", "aot", [folder / "input0.npy", tmp_path / "fewer.npy"],
                                   tmp_path / "count"), tmp_path / "count", f"hold {SAMPLES}, 3 samples")
    np.savez(tmp_path / "misnamed.npz", x=np.zeros((3, 8)), y=np.zeros((3, 8)))
    refused_before_building(deploy(add_model, "host", "aot", [tmp_path / "misnamed.npz"], tmp_path / "npz"),
                            tmp_path / "npz", f"has no array named {names[0]!r} (it holds x, y)")


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["aot", pytest.param("tflm", marks=requires_tflm)])
def test_several_inputs_and_outputs_run_bit_exact_on_qemu(add_model, two_heads, tmp_path, runtime):
    require_tools(*QEMU_TOOLS)
    passed_report(deploy(add_model, "qemu-cortex-m4", runtime, [add_model.parent / "inputs.npz"], tmp_path / "add"),
                  tmp_path / "add")
    passed_report(deploy(two_heads, "qemu-cortex-m4", runtime, [two_heads.parent / "x.npy"], tmp_path / "heads"),
                  tmp_path / "heads")


def test_a_two_input_run_cut_short_resumes_from_its_journal(add_model, tmp_path):
    """The journal names the run by all its inputs: a run given as two .npy resumes when given as the .npz."""
    from tinyedge.deploy import DeployPlan, deployed
    from tinyedge.validate import ReportFiles, validate_and_report

    folder = add_model.parent
    plan = DeployPlan(add_model, "host", tmp_path / "out", data=[folder / "input0.npy", folder / "input1.npy"],
                      runtime="aot")
    with deployed(plan) as result:
        assert result.validation.passed
        journal = tmp_path / "out" / "validate.jsonl"
        kept = journal.read_text().splitlines()[:1 + SAMPLES // 2]
        journal.write_text("\n".join(kept) + "\n")   # as an interrupted run leaves it
        run = validate_and_report(result.port, add_model, folder / "inputs.npz", reports=ReportFiles(journal=journal),
                                  resume=True, baud=result.baud)
    assert run.passed and run.report.samples == SAMPLES and run.report.resumed_samples == SAMPLES // 2
