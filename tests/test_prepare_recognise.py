"""Recognition by structure: renamed graphs, exporter variants of the MLPerf heads, generic models, --network."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from dlakit import zoo
from dlakit.errors import DlakitError
from dlakit.model import load_model
from dlakit.prepare import prepare_model
from dlakit.prepare.recognise import GENERIC, recognise
from dlakit.prepare.structure import analyse

WIDTH = 0.25


def small(name: str, form: str = "published") -> onnx.ModelProto:
    return zoo.build(name, form=form, width=WIDTH, input_size=zoo.NETWORKS[name].small_hw, batch=1)


def rename_everything(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every node, tensor, initializer, input and output gets an opaque name; graph and docs lose theirs."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    names: dict[str, str] = {}

    def new(name: str) -> str:
        if not name:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for value in [*g.input, *g.output, *g.value_info]:
        value.name = new(value.name)
    for init in g.initializer:
        init.name = new(init.name)
    for index, node in enumerate(g.node):
        node.name = f"n{index}"
        node.input[:] = [new(n) for n in node.input]
        node.output[:] = [new(n) for n in node.output]
    g.name, g.doc_string, out.doc_string, out.producer_name = "g", "", "", "x"
    return out


@pytest.mark.parametrize("name", list(zoo.NETWORKS))
def test_renaming_every_node_and_tensor_changes_nothing(name):
    published = small(name)
    renamed = rename_everything(published)
    assert not {n.name for n in published.graph.node} & {n.name for n in renamed.graph.node}
    original = recognise(analyse(load_model(published).graph))
    again = recognise(analyse(load_model(renamed).graph))
    assert again.network == original.network == name
    assert [s.text for s in again.evidence] == [s.text for s in original.evidence]


@pytest.mark.parametrize("name", ["ssd-resnet34", "retinanet-resnet34"])
def test_renamed_graph_prepares_to_the_same_structure(name):
    result = prepare_model(rename_everything(small(name)))
    assert result.recognition.network == name and result.verification.passed
    assert result.ops_after == Counter(n.op_type for n in small(name, "prepared").graph.node)


@pytest.mark.parametrize("name", list(zoo.NETWORKS))
def test_prepared_forms_are_recognised_too(name):
    assert recognise(analyse(load_model(small(name, "prepared")).graph)).network == name


def _replace_classifier(model: onnx.ModelProto, nhwc_input: bool = False) -> onnx.ModelProto:
    """ResNet-50 as MLPerf's TF export ends: ReduceMean → Squeeze → MatMul → Add → Softmax and ArgMax (no TopK);
    optionally with its NHWC input and a Transpose in front of the first convolution."""
    g = model.graph
    nodes = list(g.node)
    pool = next(n for n in nodes if n.op_type == "ReduceMean")
    gemm = next(n for n in nodes if n.op_type == "Gemm")
    weights = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    w, b = weights[gemm.input[1]], weights[gemm.input[2]]
    body = nodes[:nodes.index(pool) + 1]
    head = [
        helper.make_node("Squeeze", [pool.output[0], "sq_axes"], ["squeezed"], name="sq"),
        helper.make_node("MatMul", ["squeezed", "dense_w"], ["dense_mm"], name="mm"),
        helper.make_node("Add", ["dense_mm", "dense_b"], ["dense_logits"], name="bias"),
        helper.make_node("Softmax", ["dense_logits"], ["softmax_tensor"], name="softmax", axis=-1),
        helper.make_node("ArgMax", ["dense_logits"], ["classes"], name="argmax", axis=1, keepdims=0),
    ]
    inits = [i for i in g.initializer if i.name not in (gemm.input[1], gemm.input[2])]
    inits += [numpy_helper.from_array(np.array([2, 3], np.int64), "sq_axes"),
              numpy_helper.from_array(np.ascontiguousarray(w.T), "dense_w"), numpy_helper.from_array(b, "dense_b")]
    inputs = list(g.input)
    if nhwc_input:
        n, c, h, wd = (d.dim_value for d in g.input[0].type.tensor_type.shape.dim)
        inputs = [helper.make_tensor_value_info("input_tensor", onnx.TensorProto.FLOAT, [n, h, wd, c])]
        body.insert(0, helper.make_node("Transpose", ["input_tensor"], [g.input[0].name], name="tr",
                                        perm=[0, 3, 1, 2]))
    outputs = [helper.make_tensor_value_info("softmax_tensor", onnx.TensorProto.FLOAT, None),
               helper.make_tensor_value_info("classes", onnx.TensorProto.INT64, None)]
    graph = helper.make_graph(body + head, "resnet50_v1", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)


def test_mlperf_style_resnet50_head_becomes_pool_and_1x1_conv():
    variant = _replace_classifier(small("resnet50"))
    result = prepare_model(variant)
    assert result.recognition.network == "resnet50"
    assert "ReduceMean" in result.recognition.evidence[1].text
    assert result.verification.passed
    assert result.sources == {"dense_logits": ["dense_logits"]}
    assert result.ops_after == Counter(n.op_type for n in small("resnet50", "prepared").graph.node)
    assert result.check_after["fully_on_dla"]


def test_mlperf_style_nhwc_input_is_recognised():
    result = prepare_model(_replace_classifier(small("resnet50"), nhwc_input=True))
    assert result.recognition.network == "resnet50" and result.verification.passed
    assert result.ops_after["Transpose"] == 1  # the layout change at the input stays, as in the original


def _tiny_cnn() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1] * 4, strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
             helper.make_node("Flatten", ["gap"], ["flat"]),
             helper.make_node("Gemm", ["flat", "fw", "fb"], ["logits"], transB=1),
             helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0)]
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("w1", rng.standard_normal((8, 3, 3, 3))), ("b1", rng.standard_normal(8)),
        ("w2", rng.standard_normal((16, 8, 3, 3))), ("b2", rng.standard_normal(16)),
        ("fw", rng.standard_normal((10, 16))), ("fb", rng.standard_normal(10)))]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", 1, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("label", onnx.TensorProto.INT64, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_unknown_model_gets_the_generic_recipe_with_evidence():
    result = prepare_model(_tiny_cnn())
    rec = result.recognition
    assert rec.network == GENERIC and result.recipe.name == GENERIC
    assert "no reference network matched" in rec.reason and rec.closest in zoo.NETWORKS
    assert rec.evidence and any(not s.ok for s in rec.evidence if s.required)
    assert result.verification.passed
    assert [o.name for o in result.proto.graph.output] == ["logits"]  # fix's automatic cut before ArgMax


def test_network_option_forces_or_refuses():
    backbone = small("resnet34-backbone")
    with pytest.raises(DlakitError, match="no head layers"):
        prepare_model(backbone, network="ssd-resnet34")
    with pytest.raises(DlakitError, match="--network: 'yolo' is not one of"):
        prepare_model(backbone, network="yolo")
    forced = prepare_model(small("resnet50"), network="generic")
    assert forced.recognition.network == GENERIC and forced.verification.passed
    chosen = prepare_model(backbone, network="resnet34-backbone")
    assert chosen.recognition.reason == "chosen with --network" and chosen.verification.passed


def _explicit_pads(model: onnx.ModelProto) -> onnx.ModelProto:
    """TF-style export: strided convolutions get their padding from a separate Pad node (tf.pad + VALID conv)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = []
    for node in out.graph.node:
        pads = next((a for a in node.attribute if a.name == "pads"), None)
        strides = next((list(a.ints) for a in node.attribute if a.name == "strides"), [1, 1])
        if node.op_type == "Conv" and pads is not None and any(pads.ints) and strides[0] > 1:
            p = list(pads.ints)
            name = f"{node.output[0]}_padamounts"
            out.graph.initializer.append(numpy_helper.from_array(np.array([0, 0, *p[:2], 0, 0, *p[2:]], np.int64),
                                                                 name))
            nodes.append(helper.make_node("Pad", [node.input[0], name], [f"{node.output[0]}_padded"]))
            node.input[0] = f"{node.output[0]}_padded"
            pads.ints[:] = [0, 0, 0, 0]
        nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def test_tf_style_explicit_pads_are_recognised_and_folded():
    variant = _explicit_pads(small("resnet50"))
    assert sum(n.op_type == "Pad" for n in variant.graph.node) >= 4
    result = prepare_model(variant)
    assert result.recognition.network == "resnet50" and result.verification.passed
    assert any(step.name == "fold-pad-into-conv" for step in result.steps)
    assert result.ops_after == Counter(n.op_type for n in small("resnet50", "prepared").graph.node)


def test_caffe2_resnet50_with_sum_residuals_is_recognised_and_prepared():
    """onnx's light_resnet50 (a Caffe2 export) writes the residual adds as two-input Sum."""
    from tests.assets import light_model

    path = light_model("light_resnet50")
    assert Counter(n.op_type for n in onnx.load(path).graph.node)["Sum"] == 16
    result = prepare_model(path)
    assert result.recognition.network == "resnet50"
    assert len(analyse(load_model(path).graph).blocks) == 16
    assert result.verification.passed and result.check_after["fully_on_dla"]
    assert result.ops_after["BatchNormalization"] == 0 and result.ops_after["Softmax"] == 0
    assert result.ops_after["Conv"] == 54 and result.ops_after["AveragePool"] == 1
