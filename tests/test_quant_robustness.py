"""Regression tests from the INT8 crash hunt: graphs real exporters write, and inputs users get wrong."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dlakit.model import load_model
from dlakit.quantize.cache import CalibrationCache, amax_to_scale, read_cache, write_cache
from dlakit.quantize.emulate import TensorError
from dlakit.quantize.plan import build_plan
from dlakit.quantize.qdq import insert_qdq
from dlakit.quantize.runtime import session, to_proto
from tests.test_quant_cli import assert_one_line_error, run, write_small
from tests.test_quant_plan import small_model


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _nms_model() -> onnx.ModelProto:
    """Conv → Sigmoid scores → NonMaxSuppression: one float output and one data-dependent int64 output."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w[:1], "w_s"),
             numpy_helper.from_array(np.array([10], np.int64), "max_out"),
             numpy_helper.from_array(np.array([0.5], np.float32), "iou"),
             numpy_helper.from_array(np.array([0.5], np.float32), "score_th"),
             numpy_helper.from_array(np.array([1, 16, 4], np.int64), "box_shape"),
             numpy_helper.from_array(np.array([1, 1, 16], np.int64), "score_shape")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Conv", ["x", "w_s"], ["cs"], name="conv_scores"),
             helper.make_node("Sigmoid", ["cs"], ["s"], name="sigmoid"),
             helper.make_node("Reshape", ["c", "box_shape"], ["boxes"], name="boxes_reshape"),
             helper.make_node("Reshape", ["s", "score_shape"], ["scores"], name="scores_reshape"),
             helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score_th"], ["selected"],
                              name="nms")]
    graph = helper.make_graph(nodes, "nms", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 1, 4, 4]),
                               helper.make_tensor_value_info("selected", TensorProto.INT64, ["n", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture
def files(tmp_path):
    return write_small(tmp_path)


def test_data_dependent_integer_outputs_are_not_scored(tmp_path, capsys):
    model = tmp_path / "nms.onnx"
    onnx.save(_nms_model(), model)
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(1).normal(size=(6, 3, 4, 4)).astype(np.float32))
    assert run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "q"), "--no-progress")[0] == 0
    code, out, err = run(capsys, "emulate", str(model), "--calib-cache", str(tmp_path / "q" / "nms.cache"), "-i",
                         str(data), "--no-progress", "-f", "json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)["outputs"]}
    assert rows["selected"]["sqnr_db"] is None and "not compared" in rows["selected"]["note"]
    assert rows["s"]["sqnr_db"] is not None
    code, _, err = run(capsys, "recover", str(model), "--calib", str(data), "-o", str(tmp_path / "r"))
    assert code == 0, err


def test_weights_in_constant_nodes_are_quantized_like_initializers():
    """PaddlePaddle exports store conv weights as Constant nodes: they must get INT8 weights too."""
    plain = small_model()
    const = small_model()
    weight = next(i for i in const.graph.initializer if i.name == "w2")
    const.graph.initializer.remove(weight)
    const.graph.node.insert(0, helper.make_node("Constant", [], ["w2"], name="w2_const", value=weight))
    amax = {"x": 3.0, "r1": 4.0, "a": 6.0, "s": 1.0, "cat": 6.0, "y": 6.0}
    outputs = []
    for model in (plain, const):
        plan = build_plan(load_model(model).graph)
        qdq = insert_qdq(model, plan, amax, weights="int8").model
        weight_dq = [n for n in qdq.graph.node if n.op_type == "DequantizeLinear"
                     and any(a.name == "axis" for a in n.attribute)]
        assert len(weight_dq) == 2  # conv1's and conv2's weights, per output channel
        x = np.random.default_rng(2).normal(size=(1, 3, 8, 8)).astype(np.float32)
        outputs.append(session(qdq, quantized=True).run(None, {"x": x})[0])
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("opset", [11, 12])
def test_models_below_opset_13_get_a_valid_qdq_model(files, capsys, opset):
    model, data, tmp = files
    old = small_model()
    old.opset_import[0].version = opset
    onnx.save(old, model)
    code, out, err = run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp / "q"), "--no-progress",
                         "-f", "json")
    assert code == 0, err
    qdq = onnx.load(json.loads(out)["files"]["qdq"])
    assert qdq.opset_import[0].version >= 13
    onnx.checker.check_model(qdq)
    session(qdq, quantized=True)  # ONNX Runtime accepts it


def test_ir3_model_with_an_unused_initializer_quantizes(files, capsys):
    model, data, tmp = files
    old = small_model()
    old.ir_version = 3
    old.graph.initializer.append(numpy_helper.from_array(np.zeros(3, np.float32), "unused"))
    for init in old.graph.initializer:  # IR 3: every initializer is also a graph input
        old.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    onnx.save(old, model)
    code, _, err = run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp / "q"), "--no-progress")
    assert code == 0, err
    assert session(to_proto(load_model(model)))  # the serialized graph runs


def test_asymmetric_qdq_is_refused_and_uint8_zero_point_0_keeps_its_range(files, capsys):
    tmp = files[2]
    plan = build_plan(load_model(small_model()).graph)
    amax = {"x": 3.0, "r1": 4.0, "a": 6.0, "s": 1.0, "cat": 6.0, "y": 6.0}
    qdq = insert_qdq(small_model(), plan, amax, weights="int8").model
    # r1 (a ReLU output) as UINT8 with zero point 0: range 255·s; then the same with a non-zero zero point
    for zero, expect in ((0, None), (7, "zero point 7")):
        edited = onnx.ModelProto()
        edited.CopyFrom(qdq)
        q = next(n for n in edited.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "r1")
        scale = 4.0 / 255
        edited.graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), "r1_u8_scale"),
                                         numpy_helper.from_array(np.array(zero, np.uint8), "r1_u8_zero")])
        q.input[1:] = ["r1_u8_scale", "r1_u8_zero"]
        for dq in edited.graph.node:
            if dq.op_type == "DequantizeLinear" and dq.input[0] == q.output[0]:
                dq.input[1:] = ["r1_u8_scale", "r1_u8_zero"]
        path = tmp / f"u8_{zero}.onnx"
        onnx.save(edited, path)
        result = run(capsys, "qdq-translate", str(path), "-o", str(tmp / f"t{zero}"), "-f", "json")
        if expect:
            assert_one_line_error(result, expect, "symmetric")
            continue
        assert result[0] == 0, result[2]
        cache = read_cache(tmp / f"t{zero}" / "u8_0_noqdq.cache")
        assert cache.scales["r1"] * 127 == pytest.approx(4.0, rel=1e-5)  # TensorRT's range: the UINT8 range


def test_input_files_are_never_overwritten(files, capsys):
    model, data, tmp = files
    assert run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp), "--no-progress")[0] == 0
    cache = tmp / "small.cache"
    before = _digest(model), _digest(cache)
    assert_one_line_error(run(capsys, "emulate", str(model), "--calib-cache", str(cache), "-i", str(data),
                              "--save-emulated", str(model), "--no-progress"), "refusing to overwrite the input model")
    assert_one_line_error(run(capsys, "qdq-translate", str(model), "--calib-cache", str(cache), "-o", str(tmp)),
                          "overwrite the input cache")
    assert (_digest(model), _digest(cache)) == before


def test_qdq_translate_refuses_what_it_cannot_translate(files, capsys):
    model, data, tmp = files
    assert_one_line_error(run(capsys, "qdq-translate", str(model), "-o", str(tmp / "a")), "no QuantizeLinear")
    assert run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp / "q"), "--no-progress")[0] == 0
    assert_one_line_error(run(capsys, "qdq-translate", str(tmp / "q" / "small_qdq.onnx"), "--calib-cache",
                              str(tmp / "q" / "small.cache"), "-o", str(tmp / "b")), "already has Q/DQ")


def test_eval_refuses_a_non_image_input_and_non_positive_counts(tmp_path, capsys):
    seq = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")], "seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 100, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 100, 1])]),
        opset_imports=[helper.make_opsetid("", 13)])
    model = tmp_path / "seq.onnx"
    onnx.save(seq, model)
    folder = tmp_path / "lab" / "cat"
    folder.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (16, 16)).save(folder / "a.png")
    assert_one_line_error(run(capsys, "eval", str(model), "--data", str(tmp_path / "lab"), "--no-progress"),
                          "3-channel")
    onnx.save(small_model(), tmp_path / "img.onnx")
    assert_one_line_error(run(capsys, "eval", str(tmp_path / "img.onnx"), "--data", str(tmp_path / "lab"), "-n",
                              "-3", "--no-progress"), "--num-samples")


def test_cosine_of_an_all_zero_emulation_is_zero_not_one():
    err = TensorError("t")
    err.add(np.ones((2, 4), np.float32), np.zeros((2, 4), np.float32), None)
    assert err.cosine == 0.0
    both = TensorError("t")
    both.add(np.zeros((2, 4), np.float32), np.zeros((2, 4), np.float32), None)
    assert both.cosine == 1.0


def test_an_all_zero_tensor_still_gets_a_positive_cache_scale(tmp_path):
    assert amax_to_scale(0.0) > 0
    write_cache(tmp_path / "c.cache", CalibrationCache.from_amax({"h": 0.0, "x": 2.0}, 8600))
    assert read_cache(tmp_path / "c.cache").scales["h"] > 0


@pytest.mark.parametrize("args, fragment", [
    (["quantize", "MODEL", "--calib", "DATA", "-o", "OUT", "--method", "percentile", "--percentile", "150"],
     "--percentile"),
    (["quantize", "MODEL", "--calib", "DATA", "-o", "OUT", "--memory-budget-mb", "0"], "--memory-budget-mb"),
    (["qdq-translate", "MODEL", "-o", "OUT", "--rtol", "-1"], "--rtol"),
    (["recover", "MODEL", "--calib", "DATA", "-o", "OUT", "--target-sqnr", "nan"], "--target-sqnr"),
])
def test_out_of_range_options_are_refused(files, capsys, args, fragment):
    model, data, tmp = files
    names = {"MODEL": str(model), "DATA": str(data), "OUT": str(tmp / "out")}
    assert_one_line_error(run(capsys, *[names.get(a, a) for a in args]), fragment)
    assert not (tmp / "out").exists()


def test_top1_agreement_for_classifiers_ending_in_a_1x1_convolution(tmp_path, capsys):
    """Prepared classifiers (FC as 1x1 conv) output [N, C, 1, 1] scores: top-1 agreement still applies."""
    rng = np.random.default_rng(3)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["p"], name="gap"),
         helper.make_node("Conv", ["p", "w"], ["logits"], name="fc")], "cls",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10, 1, 1])],
        [numpy_helper.from_array(rng.normal(size=(10, 8, 1, 1)).astype(np.float32), "w")])
    model = tmp_path / "cls.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    data = tmp_path / "x.npy"
    np.save(data, rng.normal(size=(8, 8, 4, 4)).astype(np.float32))
    assert run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp_path), "--no-progress")[0] == 0
    code, out, err = run(capsys, "emulate", str(model), "--calib-cache", str(tmp_path / "cls.cache"), "-i",
                         str(data), "--no-progress", "-f", "json")
    assert code == 0, err
    row = json.loads(out)["outputs"][0]
    assert 0.5 <= row["top1_agreement"] <= 1.0
