"""Regression tests from the crash hunt over check / fix / prepare / estimate / report / compare: output paths users
get wrong, odd graphs, and options that used to be accepted silently."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dlakit.atomic import write_text
from dlakit.errors import DlakitError
from dlakit.model import load_model
from dlakit.rewrite.verify import verify
from tests.cli import run

DATA = Path(__file__).parent / "data"


def _one_line(result, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _small_conv(tmp_path: Path) -> Path:
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [numpy_helper.from_array(w, "w")])
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_writing_to_a_fifo_keeps_the_special_file(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    import threading

    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    write_text(fifo, "hello\n")
    reader.join(timeout=10)
    assert received == ["hello\n"] and stat.S_ISFIFO(fifo.stat().st_mode)  # written through, not replaced


def test_a_directory_or_unwritable_output_is_a_one_line_error(tmp_path):
    with pytest.raises(DlakitError, match="is a directory"):
        write_text(tmp_path, "x")
    model = _small_conv(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    for command in (["fix", str(model), "-o", str(out)], ["zoo", "build", "resnet50", "-o", str(out)],
                    ["report", str(model), "-o", str(out)]):
        _one_line(run(*command), "is a directory")
    _one_line(run("fix", str(model), "-o", "/proc/dlakit_test/x.onnx"), "cannot write here")


def test_string_constants_load_and_fix(tmp_path):
    """A label table stored as a string initializer (classifier exports) must not stop loading."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
         helper.make_node("Identity", ["label"], ["label_out"], name="label_id")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4]),
         helper.make_tensor_value_info("label_out", TensorProto.STRING, [2])],
        [numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w"),
         numpy_helper.from_array(np.array(["cat", "dog"], dtype=object), "label")])
    path = tmp_path / "labels.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    assert run("check", str(path)).returncode in (0, 3)
    result = run("fix", str(path), "-o", str(tmp_path / "fixed.onnx"))
    assert result.returncode == 0, result.stderr


def test_fix_verifies_string_outputs_by_equality(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
         helper.make_node("Identity", ["label"], ["label_out"], name="label_id")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4]),
         helper.make_tensor_value_info("label", TensorProto.STRING, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4]),
         helper.make_tensor_value_info("label_out", TensorProto.STRING, [2])],
        [numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")])
    path = tmp_path / "strings.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    result = run("fix", str(path), "-o", str(tmp_path / "fixed.onnx"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fixed.onnx").exists()


def test_selection_outputs_are_judged_by_the_scores_they_select_from():
    """TopK indices over near-tied values can swap on a last-bit change; the values decide, not the indices."""
    def model(bias: float) -> onnx.ModelProto:
        graph = helper.make_graph(
            [helper.make_node("Add", ["x", "b"], ["s"], name="add"),
             helper.make_node("TopK", ["s", "k"], ["values", "indices"], name="topk", axis=1)], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("indices", TensorProto.INT64, [1, 1])],
            [numpy_helper.from_array(np.array([[0.0, bias, 0.0, 0.0]], np.float32), "b"),
             numpy_helper.from_array(np.array([1], np.int64), "k")])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])

    feeds = {"x": np.array([[1.0, 1.0, 0.0, 0.0]], np.float32)}
    tie_broken = verify(load_model(model(0.0)), model(1e-7), feeds)  # index 0 → 1, scores equal within tolerance
    assert tie_broken.passed and "agree" in tie_broken.outputs[0].problem
    assert not verify(load_model(model(0.0)), model(0.5), feeds).passed  # a real change of the scores still fails


def test_compare_refuses_a_build_log_of_another_model():
    _one_line(run("compare", "resnet50", "--log", str(DATA / "trt85_build.log")), "another model")


@pytest.mark.parametrize("args, fragment", [
    (["estimate", "resnet50", "--emc-mhz", "0.001"], "plausible clock"),
    (["estimate", "resnet50", "--dla-mhz", "1"], "plausible clock"),
    (["estimate", "resnet50", "--top", "-3"], "--top"),
    (["check", "resnet50", "--shapes", "input:1x3x224x224,input:2x3x224x224"], "given twice"),
    (["report", "resnet50", "--calib", "/nonexistent/dlakit", "-o", "OUT"], "--calib"),
])
def test_implausible_options_are_refused(tmp_path, args, fragment):
    out = tmp_path / "report.html"
    _one_line(run(*[str(out) if a == "OUT" else a for a in args]), fragment)
    assert not out.exists()


@pytest.mark.parametrize("tolerance", ["nan", "inf", "0"])
def test_fix_tolerance_must_be_a_positive_number(tmp_path, tolerance):
    _one_line(run("fix", str(_small_conv(tmp_path)), "-o", str(tmp_path / "f.onnx"), "--tolerance", tolerance),
              "--tolerance")


def test_fix_outputs_cuts_control_flow_off_before_loading(tmp_path):
    """check's advice for an If after the DLA part is 'cut it off with fix --outputs': that must work."""
    def branch(name: str, value: float) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("Constant", [], [f"{name}_out"], name=f"{name}_c",
                                                   value=numpy_helper.from_array(np.array([value], np.float32)))],
                                 name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1])])

    w = np.ones((2, 3, 1, 1), np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
         helper.make_node("ReduceMax", ["y"], ["m"], name="max", keepdims=0),
         helper.make_node("Greater", ["m", "zero"], ["cond"], name="greater"),
         helper.make_node("If", ["cond"], ["z"], name="branch", then_branch=branch("then", 1.0),
                          else_branch=branch("else", 0.0))], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    path = tmp_path / "if.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    _one_line(run("check", str(path)), "--outputs")  # the advice
    result = run("fix", str(path), "--outputs", "y", "-o", str(tmp_path / "cut.onnx"))
    assert result.returncode == 0, result.stderr
    cut = onnx.load(tmp_path / "cut.onnx")
    assert [o.name for o in cut.graph.output] == ["y"] and all(n.op_type != "If" for n in cut.graph.node)


def test_a_text_file_given_as_npz_is_not_met_with_pickle_advice(tmp_path):
    fake = tmp_path / "w.npz"
    fake.write_text("not an archive\n")
    model = _small_conv(tmp_path)
    for args in (["zoo", "build", "resnet50", "--weights", str(fake), "-o", str(tmp_path / "z.onnx")],
                 ["fix", str(model), "--inputs", str(fake), "-o", str(tmp_path / "f.onnx")],
                 ["quantize", str(model), "--calib", str(fake), "-o", str(tmp_path / "q")]):
        result = run(*args)
        _one_line(result, "w.npz")
        assert "pickle" not in result.stderr.replace("pickle or other file", ""), result.stderr


def test_fix_outputs_at_a_graph_input_is_refused(tmp_path):
    model = _small_conv(tmp_path)
    _one_line(run("fix", str(model), "--outputs", "x", "-o", str(tmp_path / "f.onnx")), "graph input")
    assert not (tmp_path / "f.onnx").exists()


def test_trtexec_refuses_unknown_fp16_layers_and_warns_sparse_fp16():
    _one_line(run("trtexec", "resnet50", "--fp16-layers", "no_such_layer"), "no_such_layer")
    result = run("trtexec", "resnet50", "--fp16", "--sparse", "-f", "json")
    assert result.returncode == 0, result.stderr
    import json

    assert any("INT8 convolutions only" in w for w in json.loads(result.stdout)["warnings"])
