"""`fixable` means fixable: wherever check says "fixable by X", fix applies X or refuses it with a reason; where X
cannot work for the shapes at hand, check says `gpu` (with the rule's reason as a note)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from dlakit.analysis import fix_model
from dlakit.check import check_model
from dlakit.model import load_model
from dlakit.rewrite.fix import FixOptions
from dlakit.rewrite.testing import one_op_model, run_rules
from dlakit.targets import resolve_target

F32 = np.float32


def _pad_then(op: str, **attrs) -> onnx.ModelProto:
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
             helper.make_node(op, ["p", *(["w"] if op == "Conv" else [])], ["y"], name="after", **attrs)]
    inits = [onnx.numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")]
    if op == "Conv":
        inits.append(onnx.numpy_helper.from_array(np.ones((2, 3, 3, 3), F32), "w"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 3, 8, 8])],
                              [helper.make_empty_tensor_value_info("y")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


CASES = {
    "pad-before-conv": _pad_then("Conv", kernel_shape=[3, 3]),
    "pad-before-maxpool": _pad_then("MaxPool", kernel_shape=[3, 3]),
    "reduce-mean-13": one_op_model("ReduceMean", {"x": ((1, 4, 13, 13), F32)}, axes=[2, 3]),
    "reduce-max-13": one_op_model("ReduceMax", {"x": ((1, 4, 13, 13), F32)}, axes=[2, 3]),
    "reduce-mean-37": one_op_model("ReduceMean", {"x": ((1, 4, 37, 37), F32)}, axes=[2, 3]),
    "rank-3-relu": one_op_model("Relu", {"x": ((2, 3, 5), F32)}),
    "conv3d-depth-1": one_op_model("Conv", {"x": ((1, 2, 1, 6, 6), F32)}, {"w": np.ones((3, 2, 1, 3, 3), F32)},
                                   kernel_shape=[1, 3, 3]),
    "conv3d-depth-4": one_op_model("Conv", {"x": ((1, 2, 4, 6, 6), F32)}, {"w": np.ones((3, 2, 1, 3, 3), F32)},
                                   kernel_shape=[1, 3, 3]),
    "deconv-padded": one_op_model("ConvTranspose", {"x": ((1, 2, 4, 4), F32)}, {"w": np.ones((2, 2, 4, 4), F32)},
                                  kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_fixable_verdict_is_applied_or_refused_with_a_reason(name):
    loaded = load_model(CASES[name])
    target = resolve_target(None, None)
    report = check_model(loaded, target, "fp16")
    fixable = {n.name: n.fix for n in report.nodes if n.placement == "fixable"}
    result = fix_model(loaded, FixOptions(target=target, guard=False))
    done = {(a.rule, a.node) for a in result.applied}
    refused = {(r.rule, r.node): r.reason for r in result.refused}
    for node, rule in fixable.items():
        anchored = (rule, node) in done or any(r == rule for r, _ in done)
        assert anchored or refused.get((rule, node)), f"{node}: check says fixable by {rule}, fix did neither"
    for placement in report.nodes:
        refusal = [n for n in placement.notes if n.rule == "fix.refused"]
        if refusal:
            assert placement.placement == "gpu" and refusal[0].message


def test_verdicts_follow_the_rules():
    target = resolve_target(None, None)
    verdict = {name: {n.op: n.placement for n in check_model(load_model(m), target, "fp16").nodes}
               for name, m in CASES.items()}
    assert verdict["pad-before-conv"]["Pad"] == "fixable"
    assert verdict["pad-before-maxpool"]["Pad"] == "gpu"  # zero padding is not MaxPool's −∞ padding
    assert verdict["reduce-mean-13"]["ReduceMean"] == "fixable"  # a 13×13 depthwise mean convolution
    assert verdict["reduce-mean-37"]["ReduceMean"] == "gpu"  # 37 is prime and above the 32 kernel limit
    assert verdict["conv3d-depth-4"]["Conv"] == "gpu"


def test_reduce_mean_over_a_prime_extent_becomes_a_mean_conv():
    for op, tolerance in (("ReduceMean", 1e-5), ("ReduceSum", 1e-4)):
        for axes, keep in (([2, 3], 1), ([3], 0)):
            model = one_op_model(op, {"x": ((1, 4, 13, 11), F32)}, {"axes": np.array(axes, np.int64)},
                                 keepdims=keep, opset=18)
            run = run_rules(model, ["reduce-to-pool"], tolerance=tolerance)
            assert run.applied == ["reduce-to-pool"] and "Conv" in run.ops and run.verification.passed


def test_new_patterns_are_reported_fixable_and_get_fixed():
    target = resolve_target(None, None)
    spp = one_op_model("MaxPool", {"x": ((1, 4, 10, 10), F32)}, kernel_shape=[9, 9], pads=[4, 4, 4, 4])
    strided = one_op_model("MaxPool", {"x": ((1, 4, 20, 20), F32)}, kernel_shape=[9, 9], strides=[2, 2],
                           pads=[4, 4, 4, 4])
    for model, verdict in ((spp, "fixable"), (strided, "gpu"), (CASES["deconv-padded"], "fixable"),
                           (CASES["conv3d-depth-1"], "fixable"), (CASES["conv3d-depth-4"], "gpu")):
        loaded = load_model(model)
        node = check_model(loaded, target, "fp16").nodes[0]
        assert node.placement == verdict, (node.op, [r.message for r in (*node.reasons, *node.notes)])
        if verdict == "fixable":
            fixed = fix_model(loaded, FixOptions(target=target))
            after = check_model(fixed.model, target, "fp16").summary
            assert after["dla_mac_fraction"] == 1.0 or after["gpu_nodes"] == 0, after
