"""lift-to-4d and reshape-merge: 1-D convolutions, pools, element-wise chains and axis ops on a 4-D view."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from dlakit.rewrite.testing import one_op_model, run_rules

F32 = np.float32
RNG = np.random.default_rng(3)


@pytest.mark.parametrize("attrs", [{}, {"strides": [2]}, {"pads": [1, 2]}, {"dilations": [2]}, {"group": 2}])
def test_conv1d(attrs):
    group = attrs.get("group", 1)
    model = one_op_model("Conv", {"x": ((2, 4, 17), F32)}, {"w": RNG.standard_normal((6, 4 // group, 3)).astype(F32),
                                                          "b": RNG.standard_normal(6).astype(F32)}, **attrs)
    run = run_rules(model, ["lift-to-4d"])
    assert run.ops == ["Reshape", "Conv", "Reshape"]  # the weight reshape is folded into a 4-D weight
    assert run.verification.passed


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool1d(op):
    run = run_rules(one_op_model(op, {"x": ((1, 3, 16), F32)}, kernel_shape=[3], strides=[2], pads=[1, 1]),
                    ["lift-to-4d"])
    assert op in run.ops and run.verification.passed


@pytest.mark.parametrize(("a", "b"), [((2, 5), (5,)), ((2, 3, 4), (3, 1)), ((6,), ()), ((1, 8), (1, 8))])
@pytest.mark.parametrize("op", ["Add", "Mul", "Max"])
def test_elementwise_broadcasting(op, a, b):
    model = one_op_model(op, {"a": (a, F32)}, {"b": RNG.standard_normal(b).astype(F32)})
    run = run_rules(model, ["lift-to-4d"], tolerance=0.0)
    assert run.applied == ["lift-to-4d"] and run.verification.passed


@pytest.mark.parametrize(("shape", "axis"), [((2, 7), 1), ((2, 3, 5), 1), ((2, 3, 5), -1), ((9,), 0)])
def test_softmax_axis_is_remapped(shape, axis):
    run = run_rules(one_op_model("Softmax", {"x": (shape, F32)}, axis=axis), ["lift-to-4d"])
    assert run.verification.passed


def test_batchnorm_on_3d_lifts_only_the_data():
    constants = {n: RNG.uniform(0.5, 1.5, 4).astype(F32) for n in ("s", "b", "m", "v")}
    run = run_rules(one_op_model("BatchNormalization", {"x": ((2, 4, 9), F32)}, constants), ["lift-to-4d"])
    assert run.applied == ["lift-to-4d"] and run.verification.passed


def test_conv1d_chain_keeps_one_reshape_between_layers():
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="c1", kernel_shape=[3], pads=[1, 1]),
             helper.make_node("Relu", ["c1"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="c2", kernel_shape=[1])]
    inits = [onnx.numpy_helper.from_array(RNG.standard_normal((8, 4, 3)).astype(F32), "w1"),
             onnx.numpy_helper.from_array(RNG.standard_normal((2, 8, 1)).astype(F32), "w2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 4, 32])],
                              [helper.make_empty_tensor_value_info("y")], inits)
    run = run_rules(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                    ["lift-to-4d", "reshape-merge"])
    assert run.ops == ["Reshape", "Conv", "Relu", "Conv", "Reshape"]
    assert run.verification.passed
    check = pytest.importorskip("dlakit.check")
    from dlakit.targets import resolve_target

    placements = {n.op: n.placement for n in check.check_model(run.result.model, resolve_target(None, None)).nodes}
    assert placements["Conv"] == "dla" and placements["Relu"] == "dla"


def test_integer_arithmetic_is_left_alone():
    run = run_rules(one_op_model("Add", {"a": ((3,), np.int64), "b": ((3,), np.int64)}), ["lift-to-4d"])
    assert run.applied == [] and run.reasons == []


def test_reshape_merge_drops_identity_and_chains():
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["a"], name="r1"),
             helper.make_node("Reshape", ["a", "s2"], ["b"], name="r2"),
             helper.make_node("Relu", ["b"], ["y"], name="relu")]
    inits = [onnx.numpy_helper.from_array(np.array([2, 3, 4], np.int64), "s1"),
             onnx.numpy_helper.from_array(np.array([6, 4], np.int64), "s2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [6, 4])],
                              [helper.make_empty_tensor_value_info("y")], inits)
    run = run_rules(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), ["reshape-merge"])
    assert run.ops == ["Relu"] and run.verification.passed


def test_isolated_decoding_ops_are_not_lifted_but_ops_next_to_convs_are():
    """conv → reshape → relu (lifted) and slice → sigmoid → concat(axis 2) (left: lifting adds transitions)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("Reshape", ["c", "s"], ["c3"], name="to3d"),
             helper.make_node("Relu", ["c3"], ["r"], name="relu"),
             helper.make_node("Slice", ["r", "st", "en", "ax"], ["part"], name="slice"),
             helper.make_node("Sigmoid", ["part"], ["sig"], name="sigmoid"),
             helper.make_node("Concat", ["sig", "part"], ["y"], name="concat", axis=2)]
    inits = [onnx.numpy_helper.from_array(RNG.standard_normal((4, 3, 1, 1)).astype(F32), "w"),
             onnx.numpy_helper.from_array(np.array([1, 4, 16], np.int64), "s"),
             onnx.numpy_helper.from_array(np.array([0], np.int64), "st"),
             onnx.numpy_helper.from_array(np.array([8], np.int64), "en"),
             onnx.numpy_helper.from_array(np.array([2], np.int64), "ax")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 3, 4, 4])],
                              [helper.make_empty_tensor_value_info("y")], inits)
    run = run_rules(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), ["lift-to-4d"])
    lifted = {a.node for a in run.result.applied}
    assert lifted == {"relu"}
    refused = {r.node: r.reason for r in run.result.refused}
    assert "only add GPU↔DLA transitions" in refused["sigmoid"]
    assert run.verification.passed
