"""``dlakit prepare`` on the command line: table and JSON, atomic and verified writes, one-line errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from dlakit import zoo

WIDTH = 0.25


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlakit", "prepare", *args], capture_output=True, text=True,
                          timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prep") / "ssd_mobilenet.onnx"
    onnx.save(zoo.build("ssd-mobilenetv1", form="published", width=WIDTH, batch=1), str(path))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_json_report_and_input_left_untouched(published, tmp_path):
    before = digest(published)
    out = tmp_path / "out" / "prepared.onnx"
    proc = run(str(published), "-o", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["written"] and out.exists() and digest(published) == before
    assert data["recognition"]["network"] == "ssd-mobilenetv1" and data["recipe"]["name"] == "ssd-mobilenetv1"
    assert any(e["required"] and e["ok"] for e in data["recognition"]["evidence"])
    assert [s["step"] for s in data["steps"]][-2:] == ["fuse-head-siblings", "expose-fused-heads"]
    assert data["nodes"]["after"] < data["nodes"]["before"]
    assert data["verification"]["passed"] and len(data["verification"]["outputs"]) == 6
    assert data["outputs"][0]["equals"] == ["box_predictor.0.box", "box_predictor.0.class"]
    assert data["check"]["after"]["fully_on_dla"] and not data["check"]["before"]["fully_on_dla"]
    assert data["target"] == {"platform": "agx-orin-64gb", "release": data["target"]["release"]}
    written = onnx.load(str(out))
    assert [o.name for o in written.graph.output] == [o["name"] for o in data["outputs"]]
    assert not list(out.parent.glob(".*.tmp"))


def test_table_names_recipe_and_evidence(tmp_path):
    onnx.save(zoo.build("resnet50", form="published", width=WIDTH, input_size=(64, 64), batch=1),
              str(tmp_path / "r50.onnx"))
    proc = run(str(tmp_path / "r50.onnx"), "-o", str(tmp_path / "p.onnx"))
    assert proc.returncode == 0, proc.stderr
    for fragment in ("recognised as: resnet50", "bottleneck", "recipe: resnet50", "matmul-to-conv",
                     "four-d-outputs", "dla_node_fraction", "100.0%"):
        assert fragment in proc.stdout


def test_given_inputs_are_used(published, tmp_path):
    arrays = tmp_path / "inputs.npz"
    np.savez(arrays, input=np.random.default_rng(1).uniform(0, 1, (1, 3, 300, 300)).astype(np.float32))
    proc = run(str(published), "-o", str(tmp_path / "p.onnx"), "--inputs", str(arrays), "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verification"]["inputs"] == str(arrays)


def test_refuses_to_write_beyond_tolerance(published, tmp_path):
    out = tmp_path / "p.onnx"
    proc = run(str(published), "-o", str(out), "--tolerance", "1e-12")
    assert_one_line_error(proc, "verification failed", "not written")
    assert not out.exists()


def test_missing_file(tmp_path):
    assert_one_line_error(run(str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "o.onnx")), "no such file")


def test_dynamic_shape_needs_shapes(tmp_path):
    model = zoo.build("resnet34-backbone", form="published", width=WIDTH, input_size=(64, 64), batch=1)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, str(path))
    assert_one_line_error(run(str(path), "-o", str(tmp_path / "o.onnx")), "dynamic shape", "--shapes")
    proc = run(str(path), "-o", str(tmp_path / "o.onnx"), "--shapes", "input:1x3x64x64", "-f", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["recognition"]["network"] == "resnet34-backbone"


def test_unknown_network_and_overwrite(published, tmp_path):
    assert_one_line_error(run(str(published), "-o", str(tmp_path / "o.onnx"), "--network", "yolov5"),
                          "--network", "yolov5", "ssd-resnet34")
    assert_one_line_error(run(str(published), "-o", str(published)), "refusing to overwrite")
    assert_one_line_error(run("not-a-network", "-o", str(tmp_path / "o.onnx")), "no such file")
