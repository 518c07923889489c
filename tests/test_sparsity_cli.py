"""`dlakit sparsify` on the command line: JSON fields, the written model, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from dlakit.model import load_model
from dlakit.sparsity import has_2to4
from tests.test_sparsity_support import ELIGIBLE, chain_model

LAYER_FIELDS = {"name", "eligible", "action", "reason", "in_channels", "out_channels", "kernel", "groups", "weight",
                "density_before", "density_after", "energy_kept", "speedup", "dense_us", "sparse_us", "bound"}
SUMMARY_FIELDS = {"conv_layers", "eligible", "pruned", "already_2to4", "skipped", "weights_zeroed", "energy_kept",
                  "power_mode", "dense_latency_ms", "sparse_latency_ms", "estimated_speedup"}


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250"}  # rich wraps tables and notes to the terminal width
    return subprocess.run([sys.executable, "-m", "dlakit", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def chain_file(tmp_path: Path) -> Path:
    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(hw=32), path)
    return path


def test_json_fields_and_written_model(chain_file, tmp_path):
    out = tmp_path / "out" / "sparse.onnx"
    before = chain_file.read_bytes()
    result = run("sparsify", str(chain_file), "-o", str(out), "--format", "json", "--power-mode", "15W")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"model", "output", "target", "mode", "summary", "layers", "notes"}
    assert set(data["summary"]) == SUMMARY_FIELDS
    assert set(data["target"]) == {"platform", "platform_name", "release", "precision", "defaulted"}
    assert all(set(layer) == LAYER_FIELDS for layer in data["layers"])
    assert [x["name"] for x in data["layers"] if x["action"] == "pruned"] == list(ELIGIBLE)
    assert any("does not train" in note for note in data["notes"])
    assert chain_file.read_bytes() == before
    graph = load_model(out).graph
    weights = {v.name: v.const_value.numpy() for v in graph.initializers.values()}
    assert all(has_2to4(weights[f"{name}.weight"]) for name in ELIGIBLE)
    assert not has_2to4(weights["conv4.weight"])
    if data["summary"]["power_mode"] is not None:  # the performance model is installed
        assert data["summary"]["power_mode"] == "15W"
        assert data["summary"]["sparse_latency_ms"] <= data["summary"]["dense_latency_ms"]
        assert all(x["speedup"] >= 1.0 for x in data["layers"] if x["eligible"])


def test_table_output_names_the_fine_tuning_caveat(chain_file, tmp_path):
    result = run("sparsify", str(chain_file), "-o", str(tmp_path / "s.onnx"), "-p", "agx-xavier")
    assert result.returncode == 0, result.stderr
    assert "Orin only" in result.stdout and "does not train" in result.stdout
    assert "0 pruned" in result.stdout


def test_layers_and_force_mode(chain_file, tmp_path):
    result = run("sparsify", str(chain_file), "-o", str(tmp_path / "s.onnx"), "--layers", "conv3", "--mode", "force",
                 "--format", "json")
    data = json.loads(result.stdout)
    assert [x["name"] for x in data["layers"] if x["action"] == "pruned"] == ["conv3"]
    assert any("--sparsity=force" in note for note in data["notes"])


@pytest.mark.parametrize("args, fragments", [
    (["missing.onnx", "-o", "{tmp}/o.onnx"], ["missing.onnx", "no such file"]),
    (["{model}", "-o", "{model}"], ["refusing to overwrite the input model"]),
    (["{model}", "-o", "{tmp}/o.onnx", "--mode", "random"], ["--mode", "random"]),
    (["{model}", "-o", "{tmp}/o.onnx", "--layers", "conv9"], ["conv9 is not a convolution"]),
    (["{model}", "-o", "{tmp}/o.onnx", "--layers", ","], ["--layers"]),
    (["{model}", "-o", "{tmp}/o.onnx", "--min-gain", "0"], ["--min-gain"]),
    (["{model}", "-o", "{tmp}/o.onnx", "--power-mode", "99W"], ["--power-mode", "99W"]),
    (["{model}", "-o", "{tmp}", "--format", "json"], ["is a directory"]),
])
def test_bad_input_is_one_line(chain_file, tmp_path, args, fragments):
    args = [a.format(model=chain_file, tmp=tmp_path) for a in args]
    result = run("sparsify", *args)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "o.onnx").exists()


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    assert_one_line_error(run("sparsify", str(bad), "-o", str(tmp_path / "o.onnx")), "bad.onnx")


def test_compare_reports_the_accuracy_cost(chain_file, tmp_path):
    pytest.importorskip("dlakit.quantize.data")
    import numpy as np

    np.save(tmp_path / "inputs.npy", np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32))
    result = run("sparsify", str(chain_file), "-o", str(tmp_path / "s.onnx"), "--compare",
                 str(tmp_path / "inputs.npy"), "--per-layer", "--compare-int8", "--format", "json")
    assert result.returncode == 0, result.stderr
    acc = json.loads(result.stdout)["accuracy"]
    assert acc["samples"] == 3 and acc["reference"] == "dense FP32"
    assert [v["variant"] for v in acc["variants"]] == ["sparse FP32", "dense INT8 (emulated)",
                                                       "sparse INT8 (emulated)"]
    assert acc["variants"][0]["sqnr_db"] < 60  # pruning changed the output
    assert [x["layer"] for x in acc["per_layer"]] == list(ELIGIBLE)
    assert set(acc["per_layer"][0]) == {"layer", "variant", "sqnr_db", "top1_agreement", "max_abs_diff"}


def test_compare_options_need_data(chain_file, tmp_path):
    assert_one_line_error(run("sparsify", str(chain_file), "-o", str(tmp_path / "o.onnx"), "--per-layer"),
                          "--compare")
    assert_one_line_error(run("sparsify", str(chain_file), "-o", str(tmp_path / "o.onnx"), "--compare",
                              str(tmp_path / "nothing")), "nothing")
    assert not (tmp_path / "o.onnx").exists()


def test_dynamic_inputs_stay_dynamic(tmp_path):
    """--shapes is for the analysis: the written model keeps the user's dynamic batch."""
    model = chain_model(hw=16)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    path = tmp_path / "dyn.onnx"
    onnx.save(model, path)
    out = tmp_path / "s.onnx"
    result = run("sparsify", str(path), "-o", str(out), "--shapes", "x:1x3x16x16", "--format", "json")
    assert result.returncode == 0, result.stderr
    written = onnx.load(out)
    assert written.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert [n.name for n in written.graph.node] == [n.name for n in model.graph.node]
