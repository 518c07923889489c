"""Preparation passes: cuts, constant folding, folds into Conv, sibling fusion, Resize sizes→scales; the engine."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from dlakit.analysis import fix_model
from dlakit.errors import DlakitError
from dlakit.model import load_model
from dlakit.rewrite import FixOptions, random_inputs, verify
from dlakit.rewrite.testing import one_op_model, run_rules

F32 = np.float32
RNG = np.random.default_rng(2)


def init(name, array):
    return onnx.numpy_helper.from_array(np.asarray(array), name)


def model_of(nodes, inputs, initializers=(), outputs=("y",), opset=17):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, 1, s) for n, s in inputs],
                              [helper.make_empty_tensor_value_info(o) for o in outputs], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def conv_then(op_nodes, extra_inits=(), channels=4, conv_out="c"):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], [conv_out], name="conv", kernel_shape=[3, 3], pads=[1] * 4),
             *op_nodes]
    inits = [init("w", RNG.standard_normal((channels, 3, 3, 3)).astype(F32)),
             init("b", RNG.standard_normal(channels).astype(F32)), *extra_inits]
    return model_of(nodes, [("x", [1, 3, 8, 8])], inits)


# --- fold-mul-add-into-conv ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("op", "shape"), [("Mul", (4, 1, 1)), ("Mul", (1, 4, 1, 1)), ("Add", (4, 1, 1)),
                                           ("Sub", (1, 4, 1, 1)), ("Mul", ()), ("Add", (1,))])
def test_fold_per_channel_constant(op, shape):
    model = conv_then([helper.make_node(op, ["c", "k"], ["y"], name="op")],
                      [init("k", RNG.uniform(0.5, 2, shape).astype(F32))])
    run = run_rules(model, ["fold-mul-add-into-conv"])
    assert run.ops == ["Conv"] and run.verification.passed


def test_fold_batchnorm():
    bn = helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["y"], name="bn", epsilon=1e-3)
    inits = [init("g", RNG.uniform(0.5, 2, 4).astype(F32)), init("be", RNG.standard_normal(4).astype(F32)),
             init("m", RNG.standard_normal(4).astype(F32)), init("v", RNG.uniform(0.1, 2, 4).astype(F32))]
    run = run_rules(conv_then([bn], inits), ["fold-mul-add-into-conv"])
    assert run.ops == ["Conv"] and run.verification.passed


def test_no_fold_when_constant_varies_spatially_or_conv_is_shared():
    spatial = conv_then([helper.make_node("Mul", ["c", "k"], ["y"], name="op")],
                        [init("k", RNG.standard_normal((4, 8, 8)).astype(F32))])
    run = run_rules(spatial, ["fold-mul-add-into-conv"])
    assert run.applied == [] and "one value per output channel" in run.reasons[0]
    shared_bn = conv_then([helper.make_node("BatchNormalization", ["c", "g", "g", "g", "g"], ["n"], name="bn"),
                           helper.make_node("Add", ["c", "n"], ["y"], name="add")],
                          [init("g", np.ones(4, F32))])
    run = run_rules(shared_bn, ["fold-mul-add-into-conv"])
    assert run.applied == [] and "also used elsewhere" in run.reasons[0]


# --- fold-pad-into-conv --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pads", [[0, 0, 1, 1, 0, 0, 1, 1], [0, 0, 0, 1, 0, 0, 2, 0], [0, 0, 2, 2, 0, 0, 0, 0]])
@pytest.mark.parametrize("op", ["Conv", "AveragePool"])
def test_fold_zero_pad(pads, op):
    nodes = [helper.make_node("Pad", ["x", "p"], ["px"], name="pad"),
             helper.make_node(op, ["px", "w"] if op == "Conv" else ["px"], ["y"], name="op", kernel_shape=[3, 3])]
    inits = [init("p", np.array(pads, np.int64)), init("w", RNG.standard_normal((2, 3, 3, 3)).astype(F32))]
    run = run_rules(model_of(nodes, [("x", [1, 3, 7, 7])], inits if op == "Conv" else inits[:1]),
                    ["fold-pad-into-conv"])
    assert run.ops == [op] and run.verification.passed


def test_fold_pad_at_opset_9_attribute_form():
    nodes = [helper.make_node("Pad", ["x"], ["px"], name="pad", pads=[0, 0, 1, 1, 0, 0, 1, 1]),
             helper.make_node("Conv", ["px", "w"], ["y"], name="conv", kernel_shape=[3, 3])]
    run = run_rules(model_of(nodes, [("x", [1, 3, 5, 5])], [init("w", np.ones((2, 3, 3, 3), F32))], opset=9),
                    ["fold-pad-into-conv"])
    assert run.ops == ["Conv"] and run.verification.passed


@pytest.mark.parametrize(("pads", "mode", "fragment"), [
    ([0, 0, 3, 3, 0, 0, 3, 3], "constant", "below the kernel"),
    ([0, 0, 1, 1, 0, 0, 1, 1], "reflect", "mode 'reflect'"),
    ([0, 1, 0, 0, 0, 0, 0, 0], "constant", "batch/channel"),
])
def test_fold_pad_refusals(pads, mode, fragment):
    nodes = [helper.make_node("Pad", ["x", "p"], ["px"], name="pad", mode=mode),
             helper.make_node("Conv", ["px", "w"], ["y"], name="conv", kernel_shape=[3, 3])]
    channels = 4 if pads[1] else 3
    inits = [init("p", np.array(pads, np.int64)), init("w", np.ones((2, channels, 3, 3), F32))]
    run = run_rules(model_of(nodes, [("x", [1, 3, 7, 7])], inits), ["fold-pad-into-conv"])
    assert run.applied == [] and fragment in run.reasons[0]


# --- resize-sizes-to-scales ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "sizes"), [("nearest", [1, 2, 8, 12]), ("linear", [1, 2, 12, 6]),
                                             ("nearest", [1, 2, 3, 3])])
def test_resize_sizes_to_scales(mode, sizes):
    model = one_op_model("Resize", {"x": ((1, 2, 4, 6), F32)}, {"sizes": np.array(sizes, np.int64)},
                         order=["x", "", "", "sizes"], mode=mode)
    run = run_rules(model, ["resize-sizes-to-scales"])
    proto = run.result.proto()
    assert run.ops == ["Resize"] and proto.graph.node[0].input[2] and len(proto.graph.node[0].input) == 3
    assert run.verification.passed


# --- fuse-sibling-convs, constant-folding ----------------------------------------------------------------------
def test_fuse_sibling_head_convs():
    nodes = [helper.make_node("Conv", ["x", f"w{i}", f"b{i}"], [f"y{i}"], name=f"head{i}", kernel_shape=[3, 3],
                              pads=[1] * 4) for i in range(3)]
    inits = [init(f"w{i}", RNG.standard_normal((k, 4, 3, 3)).astype(F32)) for i, k in enumerate((2, 5, 3))]
    inits += [init(f"b{i}", RNG.standard_normal(k).astype(F32)) for i, k in enumerate((2, 5, 3))]
    model = model_of(nodes, [("x", [1, 4, 6, 6])], inits, outputs=("y0", "y1", "y2"))
    run = run_rules(model, ["fuse-sibling-convs"])
    assert run.ops.count("Conv") == 1 and run.ops.count("Slice") == 3
    assert [o.name for o in run.result.proto().graph.output] == ["y0", "y1", "y2"]
    assert run.verification.passed


def test_constant_folding_materialises_constant_of_shape_weights():
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["w"], name="make_w",
                              value=onnx.numpy_helper.from_array(np.array([0.5], F32))),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[1, 1])]
    model = model_of(nodes, [("x", [1, 3, 4, 4])], [init("shape", np.array([2, 3, 1, 1], np.int64))])
    run = run_rules(model, ["constant-folding"])
    assert run.ops == ["Conv"] and run.result.folded_nodes == 1 and run.verification.passed


# --- cuts ----------------------------------------------------------------------------------------------------------
def detector():
    """Conv head → decode (Sigmoid, Reshape, Transpose, Mul) → TopK; plus a second, untouched output."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["head"], name="head", kernel_shape=[1, 1]),
             helper.make_node("Relu", ["head"], ["feat"], name="relu"),
             helper.make_node("Sigmoid", ["head"], ["prob"], name="sigmoid"),
             helper.make_node("Reshape", ["prob", "flat"], ["scores"], name="reshape"),
             helper.make_node("Mul", ["scores", "scale"], ["scaled"], name="scale"),
             helper.make_node("TopK", ["scaled", "k"], ["y", "idx"], name="topk")]
    inits = [init("w", RNG.standard_normal((4, 3, 1, 1)).astype(F32)), init("flat", np.array([1, -1], np.int64)),
             init("scale", np.array(2.0, F32)), init("k", np.array([5], np.int64))]
    return model_of(nodes, [("x", [1, 3, 4, 4])], inits, outputs=("y", "feat"))


def test_cut_postprocess_removes_topk_and_its_decoding():
    loaded = load_model(detector())
    result = fix_model(loaded, FixOptions(cut_postprocess=True))
    cut = result.cut
    assert sorted(op for _, op in cut.removed) == ["Mul", "Reshape", "Sigmoid", "TopK"]
    assert cut.outputs == ["feat", "head"] and cut.dropped_outputs == ["y"]
    assert verify(loaded, result.proto(), random_inputs(loaded), 0.0).passed


def test_cut_at_named_outputs_and_unknown_name():
    loaded = load_model(detector())
    result = fix_model(loaded, FixOptions(outputs=["prob"]))
    assert [o.name for o in result.proto().graph.output] == ["prob"]
    assert verify(loaded, result.proto(), random_inputs(loaded), 0.0).passed
    with pytest.raises(DlakitError, match="'nope' is not in the model"):
        fix_model(loaded, FixOptions(outputs=["nope"]))


def test_cut_postprocess_without_postprocessing_changes_nothing():
    result = fix_model(load_model(one_op_model("Relu", {"x": ((1, 2), F32)})), FixOptions(cut_postprocess=True))
    assert result.cut is None


# --- engine --------------------------------------------------------------------------------------------------------
def test_fix_never_touches_the_input_model_and_rejects_unknown_rules():
    model = one_op_model("Neg", {"x": ((2, 2), F32)})
    before = model.SerializeToString()
    loaded = load_model(model)
    loaded_before = [n.op_type for n in loaded.graph]
    fix_model(loaded)
    assert model.SerializeToString() == before and [n.op_type for n in loaded.graph] == loaded_before
    with pytest.raises(DlakitError, match="unknown rule 'no-such-rule'"):
        fix_model(loaded, FixOptions(rules=["no-such-rule"]))


def test_skip_rules_leaves_the_op():
    model = one_op_model("Neg", {"x": ((1, 2, 2, 2), F32)})
    result = fix_model(load_model(model), FixOptions(skip_rules=["neg-to-scale"]))
    assert result.applied == [] and [n.op_type for n in result.proto().graph.node] == ["Neg"]


def test_chained_rewrites_reach_a_fixpoint():
    """Where → Mul/Add, and Neg after it, in one run; the original's output name survives."""
    nodes = [helper.make_node("Where", ["c", "x", "z"], ["w"], name="where"),
             helper.make_node("Neg", ["w"], ["n"], name="neg"),
             helper.make_node("Not", ["b"], ["nb"], name="not"),
             helper.make_node("Cast", ["nb"], ["nf"], name="cast", to=1),
             helper.make_node("Mul", ["n", "nf"], ["y"], name="mul")]
    inputs = [helper.make_tensor_value_info("x", 1, [1, 2, 3, 3]), helper.make_tensor_value_info("b", 9, [1, 2, 3, 3])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_empty_tensor_value_info("y")],
                              [init("c", RNG.integers(0, 2, (1, 2, 3, 3)).astype(bool)), init("z", np.zeros(1, F32))])
    run = run_rules(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tolerance=0.0)
    assert sorted(run.applied) == ["logical-not", "neg-to-scale", "where-to-conv"]
    assert run.verification.passed


def test_placement_guard_drops_a_rewrite_that_only_makes_an_island():
    """conv → Erf (GPU) → ReduceMean → Erf (GPU): a pool on DLA between two GPU ops only adds transitions."""
    pytest.importorskip("dlakit.check")
    from dlakit.targets import resolve_target

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Erf", ["c"], ["e"], name="erf1"),
             helper.make_node("ReduceMean", ["e"], ["m"], name="mean", axes=[2, 3], keepdims=1),
             helper.make_node("Erf", ["m"], ["y"], name="erf2")]
    model = model_of(nodes, [("x", [1, 8, 16, 16])], [init("w", RNG.standard_normal((8, 8, 3, 3)).astype(F32))],
                     opset=13)
    loaded = load_model(model)
    target = resolve_target(None, None)
    unguarded = fix_model(loaded, FixOptions(target=target, guard=False))
    guarded = fix_model(loaded, FixOptions(target=target, objective="dla-share"))
    assert [a.rule for a in unguarded.applied] == ["reduce-to-pool"]
    assert guarded.applied == [] and "transitions 3 (without: 1)" in guarded.guarded["reduce-to-pool"]
    priced = fix_model(loaded, FixOptions(target=target))  # the default objective: estimated images/s
    assert priced.applied == [] and "img/s" in priced.guarded["reduce-to-pool"]
