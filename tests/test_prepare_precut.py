"""Control flow after the heads (tf2onnx's post-processing Loop) is dropped before loading; in front, it is an error."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from dlakit import zoo
from dlakit.errors import DlakitError
from dlakit.prepare import prepare_model
from dlakit.prepare.precut import drop_control_flow_tail


def nms_in_a_loop(model: onnx.ModelProto) -> onnx.ModelProto:
    """Move the published detector's NonMaxSuppression into a one-trip Loop that reads it from the outer scope."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = list(out.graph.node)
    nms = next(n for n in nodes if n.op_type == "NonMaxSuppression")
    body_nms = helper.make_node("NonMaxSuppression", list(nms.input), ["sel_body"], center_point_box=0)
    keep = helper.make_node("Identity", ["cond_in"], ["cond_out"])
    body = helper.make_graph(
        [body_nms, keep], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("sel_body", TensorProto.INT64, None)])
    out.graph.initializer.extend([onnx.numpy_helper.from_array(np.array(1, np.int64), "trips"),
                                  onnx.numpy_helper.from_array(np.array(True), "go")])
    loop = helper.make_node("Loop", ["trips", "go"], ["selected_per_trip"], name="postprocess_loop", body=body)
    del out.graph.node[:]
    out.graph.node.extend([n for n in nodes if n is not nms] + [loop])
    for o in out.graph.output:
        if o.name == nms.output[0]:
            o.name = "selected_per_trip"
            o.type.tensor_type.shape.Clear()
    return out


def test_loop_after_the_heads_is_dropped_and_the_rest_prepared():
    published = zoo.build("ssd-mobilenetv1", form="published", width=0.25, batch=1)
    looped = nms_in_a_loop(published)
    session = ort.InferenceSession(looped.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[-1].name == "selected_per_trip"  # the original runs as is
    result = prepare_model(looped)
    assert result.steps[0].name == "drop-control-flow-tail" and "Loop×1" in result.steps[0].detail
    assert result.recognition.network == "ssd-mobilenetv1" and result.verification.passed
    prepared = zoo.build("ssd-mobilenetv1", form="prepared", width=0.25, batch=1)
    assert result.ops_after == Counter(n.op_type for n in prepared.graph.node)
    assert result.ops_before["Loop"] == 1
    # the tensors at the cut points are those of the original model with its Loop
    feeds = {"input": np.random.default_rng(0).uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)}
    parts = result.sources[result.proto.graph.output[0].name]
    probe = onnx.ModelProto()
    probe.CopyFrom(looped)
    probe.graph.output.extend(helper.make_empty_tensor_value_info(p) for p in parts)
    reference = dict(zip([o.name for o in probe.graph.output],
                         ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
                         .run(None, feeds), strict=True))
    mine = ort.InferenceSession(result.proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    expected = np.concatenate([reference[p] for p in parts], axis=1)
    np.testing.assert_allclose(mine[0], expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


def test_control_flow_at_the_input_is_a_one_line_error():
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("If", ["flag"], ["y0"], name="pre", then_branch=then, else_branch=then),
             helper.make_node("Relu", ["y0"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                                           helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(DlakitError, match="sits at the model's input"):
        drop_control_flow_tail(model, "m.onnx")
    assert drop_control_flow_tail(zoo.build("resnet34-backbone", width=0.25, input_size=(64, 64)), "z")[1] is None
