"""The `dlakit check` command line: output formats, exit codes and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.cli import run, run_subprocess
from tests.graphs import conv_model, make_model, tensor, unary_model


def test_entry_point_runs_as_a_program(tmp_path):
    path = tmp_path / "conv.onnx"
    onnx.save(conv_model(), path)
    result = run_subprocess("check", str(path), "--format", "json")
    assert result.returncode == 0 and json.loads(result.stdout)["summary"]["dla_nodes"] == 1
    assert_one_line_error(run_subprocess("check", str(tmp_path / "missing.onnx")), "missing.onnx")


@pytest.fixture
def conv_file(tmp_path):
    path = tmp_path / "conv.onnx"
    onnx.save(conv_model(), path)
    return path


@pytest.fixture
def mixed_file(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("Elu", ["a"], ["y"], name="elu")]
    path = tmp_path / "mixed.onnx"
    onnx.save(make_model(nodes, [tensor("x", [1, 4, 8, 8])], [tensor("y", None)],
                         [onnx.numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")]), path)
    return path


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_json_output_has_documented_fields(mixed_file):
    result = run("check", str(mixed_file), "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["summary"]) >= {"dla_nodes", "gpu_nodes", "folded_nodes", "fixable_nodes", "dla_subgraphs",
                                    "transitions", "dla_mac_fraction", "within_loadable_limit"}
    elu = next(n for n in data["nodes"] if n["name"] == "elu")
    assert elu["placement"] == "gpu" and elu["layer"] == "activation"
    assert set(elu["reasons"][0]) >= {"rule", "message", "value", "allowed"}
    assert elu["reasons"][0]["rule"] == "activation.type"
    assert data["subgraphs"][0]["nodes"] == ["conv"]
    assert data["target"]["platform"] == "agx-orin-64gb" and data["target"]["defaulted"] == ["platform", "release"]


def test_table_and_markdown_name_the_reason(mixed_file):
    table = run("check", str(mixed_file))
    assert table.returncode == 0 and "activation.type" in table.stdout and "defau" in table.stdout
    markdown = run("check", str(mixed_file), "--format", "markdown", "--all")
    assert markdown.returncode == 0
    assert "| gpu | Elu | activation.type |" in markdown.stdout


def test_require_full_dla_exit_codes(conv_file, mixed_file):
    assert run("check", str(conv_file), "--require-full-dla", "--format", "json").returncode == 0
    assert run("check", str(mixed_file), "--require-full-dla", "--format", "json").returncode == 3


def test_platform_and_release_options(conv_file):
    data = json.loads(run("check", str(conv_file), "-p", "agx-xavier", "-r", "jp5.1.1", "-f", "json").stdout)
    assert data["target"]["tensorrt"] == "8.5.2" and data["target"]["platform"] == "agx-xavier"


def test_missing_file():
    assert_one_line_error(run("check", "no/such/model.onnx"), "no/such/model.onnx", "no such file")


def test_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n" * 20)
    assert_one_line_error(run("check", str(path)), str(path), "ONNX")


def test_truncated_protobuf(tmp_path, conv_file):
    data = conv_file.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    assert_one_line_error(run("check", str(path)), str(path))


def test_dynamic_dims_without_shapes(tmp_path):
    path = tmp_path / "dynamic.onnx"
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [tensor("x", ["N", 3, 8, 8])],
                         [tensor("y", None)]), path)
    # Stated behaviour change (issue 15): check no longer refuses a dynamic model. TensorRT builds it with the
    # affected layers on the GPU ("DLA Layer ... does not support dynamic shapes in any dimension", tensorflow-onnx
    # issue 1632), so check places them there and keeps the hint how to set --shapes as a report note.
    dynamic = run("check", str(path), "-f", "json")
    assert dynamic.returncode == 0, dynamic.stderr
    data = json.loads(dynamic.stdout)
    node = data["nodes"][0]
    assert node["placement"] == "gpu" and node["reasons"][0]["rule"] == "general.static-shape"
    assert "does not support dynamic shapes in any dimension" in node["reasons"][0]["message"]
    assert any("input 'x' has dynamic shape" in n and "--shapes x:1x3x8x8" in n for n in data["notes"])
    spatial = tmp_path / "spatial.onnx"  # unknown height/width: named for the user to fill in, not guessed as 1
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [tensor("x", ["N", 3, "h", None])],
                         [tensor("y", None)]), spatial)
    assert "--shapes x:1x3x<h>x<W> (replace each <...>" in " ".join(run("check", str(spatial)).stdout.split())
    # commands that need a static graph (estimate) still refuse it, with the same hint
    assert_one_line_error(run("estimate", str(path)), "input 'x' has dynamic shape", "--shapes x:1x3x8x8")
    ok = run("check", str(path), "--shapes", "x:2x3x8x8", "-f", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["summary"]["dla_nodes"] == 1


def test_shapes_for_unknown_input_and_bad_syntax(conv_file):
    assert_one_line_error(run("check", str(conv_file), "--shapes", "image:1x3x8x8"), "'image' is not an input",
                          "x")
    assert_one_line_error(run("check", str(conv_file), "--shapes", "x:1xAx8x8"), "x")


def test_opset_newer_than_supported(tmp_path):
    model = unary_model("Relu")
    model.opset_import[0].version = onnx.defs.onnx_opset_version() + 5
    path = tmp_path / "future.onnx"
    onnx.save(model, path)
    assert_one_line_error(run("check", str(path)), "opset", "re-export")


def test_custom_domain_op(tmp_path):
    model = make_model([helper.make_node("FusedConv", ["x"], ["y"], name="fused", domain="com.microsoft")],
                       [tensor("x", [1, 3, 8, 8])], [tensor("y", None)])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    path = tmp_path / "custom.onnx"
    onnx.save(model, path)
    assert_one_line_error(run("check", str(path)), "'fused'", "com.microsoft::FusedConv", "plugin")


def test_control_flow(tmp_path):
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "b", [], [tensor("z", [1, 3, 8, 8])])
    node = helper.make_node("If", ["c"], ["y"], name="branch", then_branch=branch, else_branch=branch)
    model = make_model([node], [tensor("c", [], onnx.TensorProto.BOOL), tensor("x", [1, 3, 8, 8])],
                       [tensor("y", None)])
    path = tmp_path / "if.onnx"
    onnx.save(model, path)
    assert_one_line_error(run("check", str(path)), "'branch'", "If", "control flow")


def test_missing_external_data(tmp_path):
    model = conv_model()
    path = tmp_path / "external.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
              size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    assert_one_line_error(run("check", str(path)), "weights.bin", "copy it next to the model")


def test_external_data_is_loaded(tmp_path):
    path = tmp_path / "external.onnx"
    onnx.save(conv_model(), path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    result = run("check", str(path), "-f", "json")
    assert result.returncode == 0 and json.loads(result.stdout)["summary"]["dla_nodes"] == 1


def test_platforms_without_dla_and_unknown_names(conv_file):
    assert_one_line_error(run("check", str(conv_file), "-p", "orin-nano"), "Orin Nano has no DLA")
    assert_one_line_error(run("check", str(conv_file), "-p", "thor"), "Thor has no DLA")
    assert_one_line_error(run("check", str(conv_file), "-p", "pi5"), "unknown platform", "agx-orin-64gb")
    assert_one_line_error(run("check", str(conv_file), "-p", "agx-xavier", "-r", "jp6.2"), "Xavier")
    assert_one_line_error(run("check", str(conv_file), "--precision", "int4"), "--precision")


def test_input_model_is_not_modified(conv_file):
    before = conv_file.read_bytes()
    run("check", str(conv_file), "--shapes", "x:1x16x32x32")
    assert conv_file.read_bytes() == before


def test_debug_shows_traceback(tmp_path):
    result = run_subprocess("--debug", "check", "missing.onnx")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_targets_lists_platforms_and_releases():
    result = run("targets", "--format", "json")
    data = json.loads(result.stdout)
    keys = {p["key"] for p in data["platforms"]}
    assert {"agx-orin-64gb", "orin-nx-16gb", "agx-xavier", "orin-nano", "thor", "drive-orin"} <= keys
    assert {r["tensorrt"] for r in data["releases"]} >= {"8.5.2", "8.6.11", "10.3.0", "11.4.1"}
    # releases in the field (JetPack 4.6/4.6.1 on Xavier, DRIVE OS on TensorRT 10.x), each with its evidence level
    assert {r["tensorrt"] for r in data["releases"]} >= {"8.0.1", "8.2.1", "10.10.10", "10.15.3"}
    assert all(r["evidence"] and r["confidence"] in ("high", "medium", "low") for r in data["releases"])
    by_key = {r["key"]: r for r in data["releases"]}
    assert by_key["jetpack-5.0.2"]["loadable_limit"] == "soft" and by_key["jetpack-6.2"]["loadable_limit"] == "hard"


def test_json_carries_the_sparsity_column(tmp_path):
    path = tmp_path / "wide.onnx"
    onnx.save(conv_model(c=128, k=16, hw=(8, 8)), path)
    data = json.loads(run("check", str(path), "-f", "json").stdout)
    conv = data["nodes"][0]
    assert conv["sparsity"]["eligible"] is True and conv["sparsity"]["has_2to4_pattern"] is False
    assert data["summary"]["sparse_eligible_convs"] == 1
    xavier = json.loads(run("check", str(path), "-p", "agx-xavier", "-f", "json").stdout)
    assert xavier["nodes"][0]["sparsity"]["eligible"] is False
    assert "sparsity" in run("check", str(path)).stdout


def test_minus_one_dims_count_as_dynamic(tmp_path):
    path = tmp_path / "minus_one.onnx"
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [tensor("x", [-1, 3, 8, 8])],
                         [tensor("y", None)]), path)
    # check places instead of refusing (issue 15); the note names the dynamic dims as before
    notes = json.loads(run("check", str(path), "-f", "json").stdout)["notes"]
    assert any("input 'x' has dynamic shape ?x3x8x8" in n for n in notes)
    result = run("check", str(path), "--shapes", "x:1x3x8x8", "-f", "json")
    assert result.returncode == 0 and json.loads(result.stdout)["summary"]["dla_nodes"] == 1
