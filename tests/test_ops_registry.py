"""The op registry as a user meets it: `tinyedge ops` says which runtime runs which op, `inspect` says it
per op of a model and counts the recurrent ops' MACs, the README's table is the registry's, and the AOT
compiler lowers every op from its one module (an op lowered in the wrong family fails in Python, not at link time)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_tinyedge
from tinyedge.aot.compiler import compile_model
from tinyedge.aot.ops import lowerings
from tinyedge.inspection import inspect_model, op_macs
from tinyedge.ops import registry
from tinyedge.paths import FIRMWARE_DIR
from tinyedge.tflite_model import load_tflite

REPO = Path(__file__).resolve().parent.parent
REAL = next((base / "shared" / "models" / "real" for base in (REPO.parent, REPO.parent.parent)
             if (base / "shared" / "models" / "real").is_dir()), REPO.parent / "shared" / "models" / "real")
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"the real models are not here ({REAL} is absent)")


def test_ops_json_lists_each_runtimes_ops_as_tflite_spells_them():
    result = run_tinyedge("ops", "--json")
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    assert {"aot", "tflm", "viper"} <= set(table)
    assert table["tflm"] == sorted(yaml.safe_load((FIRMWARE_DIR / "tflm" / "ops.yaml").read_text()))
    assert {"CONV_2D", "SVDF", "UNIDIRECTIONAL_SEQUENCE_LSTM", "CONCATENATION"} <= set(table["aot"])
    assert {"CONV_2D", "CONCATENATION", "MEAN", "SUB", "SVDF"} <= set(table["viper"])
    assert "DEQUANTIZE" not in table["viper"]
    assert table["detail"]["CONV_2D"]["aot"]["paths"] == ["portable", "dsp"]
    assert "float32" in table["detail"]["DEQUANTIZE"]["viper"]["refused"]


def test_ops_for_one_runtime_and_an_unknown_runtime():
    viper = run_tinyedge("ops", "--runtime", "viper")
    assert viper.returncode == 0 and "SOFTMAX" in viper.stdout and "DEQUANTIZE" not in viper.stdout
    unknown = run_tinyedge("ops", "--runtime", "tvm")
    assert unknown.returncode == 1 and "aot, tflm or viper" in unknown.stderr


def test_readme_op_table_is_the_registrys():
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- ops-table:begin -->\n")[1].split("<!-- ops-table:end -->")[0]
    assert table == registry.markdown_table(), "paste `python -m tinyedge.ops.registry` into README.md's op table"


def test_every_op_is_one_module_and_lowered_from_it():
    assert not hasattr(registry, "LOWERED_OPS")
    assert set(registry.PREPARED) == set(registry.OPS) == set(lowerings())
    assert all(callable(module.prepare) for module in registry.OP_MODULES)
    assert {registry.PREPARED[name].__name__ for name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")} == {
        "tinyedge.ops.conv2d", "tinyedge.ops.depthwise_conv2d", "tinyedge.ops.fully_connected"}


@needs_real
def test_an_op_registered_in_the_wrong_family_fails_in_python(monkeypatch):
    model = load_tflite(REAL / "kws_ref_model.tflite")
    monkeypatch.setitem(registry.OPS, "SOFTMAX", registry.OpSupport("SOFTMAX", "core"))
    with pytest.raises(registry.OpRegistryError, match="te_softmax_s8, declared in te_nonlinear.h"):
        compile_model(model)


@needs_real
def test_inspect_names_each_ops_runtimes_and_counts_recurrent_macs():
    svdf = inspect_model(REAL / "keyword_scrambled_8bit.tflite")
    assert svdf.runtimes["SVDF"] == ["aot", "tflm", "viper"]
    assert svdf.runtimes["FULLY_CONNECTED"] == ["aot", "tflm", "viper"]
    svdf_model = load_tflite(REAL / "keyword_scrambled_8bit.tflite")
    assert all(op_macs(svdf_model, op) > 0 for op in svdf_model.operators if op.opcode == "SVDF")
    lstm_model = load_tflite(REAL / "trained_lstm_int8.tflite")
    lstm = inspect_model(REAL / "trained_lstm_int8.tflite")
    op = next(o for o in lstm_model.operators if o.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    steps_x_input = lstm_model.tensors[op.inputs[0]].size
    n_state, n_input = lstm_model.tensors[op.inputs[1]].shape
    assert lstm.macs >= steps_x_input // n_input * 4 * n_state * (n_input + n_state)
