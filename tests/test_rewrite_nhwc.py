"""NHWC exports (TF/Keras converters): a Transpose around every convolution, batch norm as Sub/Mul/Add in NHWC,
no-op Casts. The Transposes move through the element-wise chains and cancel, the arithmetic folds into the
convolutions, the Casts go. Every rewrite is run against the original in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from dlakit.rewrite.testing import one_op_model, run_rules

F32 = np.float32
RNG = np.random.default_rng(11)
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def init(name, array):
    return onnx.numpy_helper.from_array(np.asarray(array), name)


def nhwc_resnet(blocks=2, channels=16, size=16):
    """NHWC input; per block: Transpose→Conv→Transpose, batch norm as Sub/Mul/Add on [C], Relu, a residual Add,
    a no-op Cast; the way tf2onnx writes a Keras ResNet without its layout optimiser."""
    nodes, inits = [], []
    x = "x"
    for b in range(blocks):
        skip = x
        for j in range(2):
            n = f"b{b}c{j}"
            w = RNG.standard_normal((channels, channels, 3, 3)).astype(F32) * 0.1
            inits += [init(f"{n}_w", w), init(f"{n}_mean", RNG.standard_normal(channels).astype(F32)),
                      init(f"{n}_scale", RNG.uniform(0.5, 1.5, channels).astype(F32)),
                      init(f"{n}_shift", RNG.standard_normal(channels).astype(F32))]
            nodes += [helper.make_node("Transpose", [x], [f"{n}_in"], perm=TO_NCHW, name=f"{n}/to_nchw"),
                      helper.make_node("Conv", [f"{n}_in", f"{n}_w"], [f"{n}_conv"], kernel_shape=[3, 3],
                                       pads=[1] * 4, name=f"{n}/conv"),
                      helper.make_node("Transpose", [f"{n}_conv"], [f"{n}_out"], perm=TO_NHWC, name=f"{n}/to_nhwc"),
                      helper.make_node("Sub", [f"{n}_out", f"{n}_mean"], [f"{n}_sub"], name=f"{n}/bn_sub"),
                      helper.make_node("Mul", [f"{n}_sub", f"{n}_scale"], [f"{n}_mul"], name=f"{n}/bn_mul"),
                      helper.make_node("Add", [f"{n}_mul", f"{n}_shift"], [f"{n}_bn"], name=f"{n}/bn_add")]
            x = f"{n}_bn"
            if j == 0:
                nodes.append(helper.make_node("Relu", [x], [f"{n}_relu"], name=f"{n}/relu"))
                x = f"{n}_relu"
        nodes += [helper.make_node("Add", [x, skip], [f"b{b}_sum"], name=f"b{b}/residual"),
                  helper.make_node("Relu", [f"b{b}_sum"], [f"b{b}_act"], name=f"b{b}/relu"),
                  helper.make_node("Cast", [f"b{b}_act"], [f"b{b}_cast"], to=onnx.TensorProto.FLOAT, name=f"b{b}/cast")]
        x = f"b{b}_cast"
    nodes.append(helper.make_node("Identity", [x], ["y"], name="out"))
    graph = helper.make_graph(nodes, "nhwc", [helper.make_tensor_value_info("x", 1, [1, size, size, channels])],
                              [helper.make_tensor_value_info("y", 1, [1, size, size, channels])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def test_nhwc_resnet_loses_its_transposes_and_batch_norm_arithmetic():
    run = run_rules(nhwc_resnet(), tolerance=1e-4)
    assert run.verification.passed, run.verification.outputs
    ops = run.ops
    # one Transpose at the input and one at the output remain (the model's interface is NHWC), nothing between
    assert ops.count("Transpose") == 2 and ops[0] == "Transpose" and ops[-1] == "Transpose"
    assert not {"Sub", "Mul", "Cast"} & set(ops) and ops.count("Conv") == 4
    assert {"transpose-through-elementwise", "transpose-merge", "fold-mul-add-into-conv",
            "cast-removal"} <= set(run.applied)


def test_nhwc_resnet_placement_and_estimate_improve():
    pytest.importorskip("dlakit.check")
    from dlakit.analysis import fix_model, images_per_second
    from dlakit.check import check_model
    from dlakit.model import load_model
    from dlakit.rewrite import FixOptions
    from dlakit.targets import resolve_target

    target = resolve_target(None, None)
    loaded = load_model(nhwc_resnet())
    result = fix_model(loaded, FixOptions(target=target))
    before, after = (check_model(m, target, "int8").summary for m in (loaded, result.model))
    assert after["transitions"] <= before["transitions"] and after["dla_nodes"] < before["dla_nodes"]
    assert images_per_second(result.model, target, "int8") > images_per_second(loaded, target, "int8")


def conv_then(nodes, shape, constants=None):
    """x → 1x1 Conv → ``nodes`` (reading "c0"): a Transpose at the model input itself stays where it is."""
    weight = init("w0", RNG.standard_normal((shape[1], shape[1], 1, 1)).astype(F32))
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w0"], ["c0"], kernel_shape=[1, 1], name="conv0"),
                               *nodes], "g", [helper.make_tensor_value_info("x", 1, list(shape))],
                              [helper.make_empty_tensor_value_info("y")],
                              [weight, *(init(n, a) for n, a in (constants or {}).items())])
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "LeakyRelu", "Clip"])
def test_unary_op_moves_past_the_transpose(op):
    model = conv_then([helper.make_node("Transpose", ["c0"], ["t"], perm=TO_NHWC, name="t1"),
                       helper.make_node(op, ["t"], ["a"], name="act"),
                       helper.make_node("Transpose", ["a"], ["y"], perm=TO_NCHW, name="t2")], (1, 3, 4, 5))
    run = run_rules(model, ["transpose-through-elementwise", "transpose-merge"], tolerance=0.0)
    assert run.ops == ["Conv", op] and run.verification.passed


@pytest.mark.parametrize("shape", [(5,), (1, 1, 5), (4, 1, 5), (1,), ()])
def test_constants_are_permuted_with_their_broadcast(shape):
    model = conv_then([helper.make_node("Transpose", ["c0"], ["t"], perm=TO_NHWC, name="t1"),
                       helper.make_node("Mul", ["t", "c"], ["y"], name="mul")], (2, 5, 4, 3),
                      {"c": RNG.standard_normal(shape).astype(F32)})
    run = run_rules(model, ["transpose-through-elementwise"], tolerance=0.0)
    assert run.applied == ["transpose-through-elementwise"] and run.ops == ["Conv", "Mul", "Transpose"]
    assert run.verification.passed


def test_a_transpose_at_the_model_input_stays():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=TO_NHWC, name="t1"),
             helper.make_node("Relu", ["t"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 3, 4, 5])],
                              [helper.make_empty_tensor_value_info("y")])
    run = run_rules(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                    ["transpose-through-elementwise"])
    assert run.applied == []


def test_a_transpose_read_by_a_convolution_stays():
    """Moving it would leave one Transpose for the Conv and add one behind the Relu."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 1, 3, 2], name="t1"),
             helper.make_node("Relu", ["t"], ["r"], name="relu"),
             helper.make_node("Conv", ["t", "w"], ["c"], kernel_shape=[1, 1], name="conv"),
             helper.make_node("Add", ["r", "c"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 2, 4, 4])],
                              [helper.make_empty_tensor_value_info("y")],
                              [init("w", RNG.standard_normal((2, 2, 1, 1)).astype(F32))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    run = run_rules(model, ["transpose-through-elementwise"])
    assert run.applied == []


def test_transposes_merge_into_one():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1], name="t1"),
             helper.make_node("Transpose", ["t"], ["y"], perm=[0, 2, 1, 3], name="t2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 2, 3, 4])],
                              [helper.make_empty_tensor_value_info("y")])
    run = run_rules(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), ["transpose-merge"],
                    tolerance=0.0)
    assert run.applied == ["transpose-merge"] and run.ops == ["Transpose"] and run.verification.passed


def test_identity_transpose_and_noop_cast_go():
    run = run_rules(one_op_model("Transpose", {"x": ((1, 2, 3), F32)}, perm=[0, 1, 2]), ["transpose-merge"])
    assert run.applied == []  # input straight to output: kept, the interface would change
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Cast", ["r"], ["c"], to=onnx.TensorProto.FLOAT, name="cast"),
             helper.make_node("Transpose", ["c"], ["t"], perm=[0, 1, 2], name="t"),
             helper.make_node("Cast", ["t"], ["y"], to=onnx.TensorProto.FLOAT16, name="to_half")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 2, 3])],
                              [helper.make_empty_tensor_value_info("y")])
    run = run_rules(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                    ["cast-removal", "transpose-merge"], tolerance=0.0)
    assert run.ops == ["Relu", "Cast"] and sorted(run.applied) == ["cast-removal", "transpose-merge"]
    assert run.verification.passed


def normalised_nhwc_input(pads=3, groups=1):
    """x (NHWC, 3 colours) → Sub(mean) → Div(std) → Transpose → Conv: input normalisation in a TF export."""
    nodes = [helper.make_node("Sub", ["x", "mean"], ["s"], name="norm/sub"),
             helper.make_node("Div", ["s", "std"], ["d"], name="norm/div"),
             helper.make_node("Transpose", ["d"], ["t"], perm=TO_NCHW, name="to_nchw"),
             helper.make_node("Conv", ["t", "w", "b"], ["y"], kernel_shape=[7, 7], strides=[2, 2], pads=[pads] * 4,
                              group=groups, name="stem")]
    inits = [init("mean", np.array([0.485, 0.456, 0.406], F32)), init("std", np.array([0.229, 0.224, 0.225], F32)),
             init("w", RNG.standard_normal((6, 3 // groups, 7, 7)).astype(F32) * 0.1),
             init("b", RNG.standard_normal(6).astype(F32))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 32, 32, 3])],
                              [helper.make_empty_tensor_value_info("y")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


@pytest.mark.parametrize(("pads", "groups", "ops"), [
    (3, 1, ["Transpose", "Sub", "Conv"]),  # the scale folds; a shift before a padded conv is not exact at borders
    (0, 1, ["Transpose", "Conv"]),
    (0, 3, ["Transpose", "Conv"]),
])
def test_input_normalisation_moves_to_nchw_and_folds(pads, groups, ops):
    run = run_rules(normalised_nhwc_input(pads, groups), tolerance=1e-4)
    assert run.ops == ops and run.verification.passed, run.verification.outputs
    assert {"transpose-through-elementwise", "fold-mul-add-before-conv"} <= set(run.applied)


@pytest.mark.parametrize("axis", [3, -1, 1])
def test_concat_of_transposed_branches_concatenates_before_the_transpose(axis):
    """Two NHWC branches concatenated (axis 3 = channels), then back to NCHW for the next conv."""
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], kernel_shape=[1, 1], name="a"),
             helper.make_node("Conv", ["x", "wb"], ["b"], kernel_shape=[3, 3], pads=[1] * 4, name="b"),
             helper.make_node("Transpose", ["a"], ["ta"], perm=TO_NHWC, name="ta"),
             helper.make_node("Transpose", ["b"], ["tb"], perm=TO_NHWC, name="tb"),
             helper.make_node("Concat", ["ta", "tb"], ["cat"], axis=axis, name="cat"),
             helper.make_node("Transpose", ["cat"], ["y"], perm=TO_NCHW, name="back")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 4, 6, 6])],
                              [helper.make_empty_tensor_value_info("y")],
                              [init("wa", RNG.standard_normal((4, 4, 1, 1)).astype(F32)),
                               init("wb", RNG.standard_normal((4, 4, 3, 3)).astype(F32))])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    run = run_rules(model, ["transpose-through-elementwise", "transpose-merge"], tolerance=0.0)
    assert run.ops == ["Conv", "Conv", "Concat"] and run.verification.passed
    concat = next(n for n in run.result.proto().graph.node if n.op_type == "Concat")
    assert concat.attribute[0].i == TO_NHWC[axis % 4]
