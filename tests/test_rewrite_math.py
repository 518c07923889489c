"""Arithmetic rewrites: MatMul/Gemm → conv, Reduce → pool/conv, global pools, activations, shape ops, Identity."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from dlakit.rewrite.testing import one_op_model, run_rules

F32 = np.float32
RNG = np.random.default_rng(1)


def weights(*shape):
    return RNG.standard_normal(shape).astype(F32)


# --- MatMul / Gemm -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a_shape", [(1, 16), (4, 16), (2, 3, 16), (2, 2, 5, 16)])
@pytest.mark.parametrize("n", [1, 10])
def test_matmul_constant_weights(a_shape, n):
    model = one_op_model("MatMul", {"a": (a_shape, F32)}, {"w": weights(16, n)})
    run = run_rules(model, ["matmul-to-conv"])
    assert run.applied == ["matmul-to-conv"] and "MatMul" not in run.ops and "Conv" in run.ops
    assert run.verification.passed


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("bias_shape", [None, (), (7,), (1, 7), (3, 7)])
def test_gemm_grid(trans_a, trans_b, bias_shape):
    constants = {"w": weights(*((7, 5) if trans_b else (5, 7)))}
    order = ["a", "w"]
    if bias_shape is not None:
        constants["c"] = weights(*bias_shape)
        order.append("c")
    model = one_op_model("Gemm", {"a": ((5, 3) if trans_a else (3, 5), F32)}, constants, order=order,
                         transA=trans_a, transB=trans_b, alpha=0.5, beta=2.0)
    run = run_rules(model, ["matmul-to-conv"])
    assert run.applied == ["matmul-to-conv"] and "Gemm" not in run.ops
    assert run.verification.passed


def test_matmul_bias_add_lands_in_the_conv():
    nodes = [helper.make_node("MatMul", ["a", "w"], ["m"], name="mm"),
             helper.make_node("Add", ["m", "b"], ["y"], name="bias")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", 1, [2, 8])],
                              [helper.make_empty_tensor_value_info("y")],
                              [onnx.numpy_helper.from_array(weights(8, 4), "w"),
                               onnx.numpy_helper.from_array(weights(4), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    run = run_rules(model, ["matmul-to-conv"])
    assert run.ops == ["Reshape", "Conv", "Reshape"]
    assert run.verification.passed


@pytest.mark.parametrize(("inputs", "constants", "fragment"), [
    ({"a": ((2, 4), F32), "w": ((4, 3), F32)}, {}, "not a build-time constant"),
    ({"a": ((2, 4, 4), F32)}, {"w": weights(2, 4, 3)}, "rank 3"),
    ({"a": ((5000, 4), F32)}, {"w": weights(4, 3)}, "above DLA's 4096"),
    ({"a": ((1, 8209), F32)}, {"w": weights(8209, 2)}, "8192"),  # 8209 is prime: no s×1 kernel fits
])
def test_matmul_refusals(inputs, constants, fragment):
    run = run_rules(one_op_model("MatMul", inputs, constants, order=["a", "w"]), ["matmul-to-conv"])
    assert run.applied == [] and fragment in run.reasons[0]


def test_matmul_with_k_above_8192_uses_a_tall_kernel():
    run = run_rules(one_op_model("MatMul", {"a": ((2, 9216), F32)}, {"w": weights(9216, 3)}), ["matmul-to-conv"])
    assert run.applied == ["matmul-to-conv"] and run.verification.passed


# --- Reduce* -------------------------------------------------------------------------------------------------------
REDUCE_CASES = [
    ((1, 4, 6, 6), [2, 3]), ((2, 3, 16, 8), [2, 3]), ((1, 2, 56, 56), [2, 3]), ((1, 3, 5, 7), [3]),
    ((1, 3, 5, 7), [2]), ((1, 6, 4, 4), [1]), ((1, 6, 4, 4), [1, 2, 3]), ((2, 3, 12), [2]), ((2, 10, 3), [-2]),
    ((3, 4), [1]),
]


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"])
@pytest.mark.parametrize(("shape", "axes"), REDUCE_CASES)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_grid(op, shape, axes, keepdims):
    model = one_op_model(op, {"x": (shape, F32)}, {"axes": np.array(axes, np.int64)}, order=["x", "axes"],
                         opset=18, keepdims=keepdims)
    run = run_rules(model, ["reduce-to-pool"])
    assert run.applied == ["reduce-to-pool"] and op not in run.ops, run.reasons
    assert run.verification.passed


def test_reduce_attribute_axes_before_opset_18():
    model = one_op_model("ReduceMean", {"x": ((1, 4, 8, 8), F32)}, opset=13, axes=[2, 3], keepdims=1)
    run = run_rules(model, ["reduce-to-pool"])
    assert run.ops == ["AveragePool"] and run.verification.passed


@pytest.mark.parametrize(("op", "shape", "axes", "fragment"), [
    ("ReduceMean", (2, 3, 4, 4), [0], "batch axis"),
    ("ReduceMean", (2, 3, 4, 4), [1, 3], "not contiguous"),
    ("ReduceMax", (1, 2, 13, 13), [2, 3], "prime factor above 8"),
])
def test_reduce_refusals(op, shape, axes, fragment):
    model = one_op_model(op, {"x": (shape, F32)}, {"axes": np.array(axes, np.int64)}, order=["x", "axes"], opset=18)
    run = run_rules(model, ["reduce-to-pool"])
    assert run.applied == [] and fragment in run.reasons[0]


# --- global pools --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("size", [(7, 7), (8, 8), (14, 14), (56, 56), (1, 64), (6, 10)])
def test_global_pool(op, size):
    run = run_rules(one_op_model(op, {"x": ((2, 3, *size), F32)}), ["global-pool-to-pool"])
    assert run.applied == ["global-pool-to-pool"] and op not in run.ops
    assert run.verification.passed


def test_global_average_pool_13x13_becomes_depthwise_conv():
    run = run_rules(one_op_model("GlobalAveragePool", {"x": ((1, 8, 13, 13), F32)}), ["global-pool-to-pool"])
    assert run.ops == ["Conv"] and run.verification.passed


@pytest.mark.parametrize(("op", "size", "fragment"), [("GlobalMaxPool", (13, 13), "prime factor"),
                                                      ("GlobalAveragePool", (37, 37), "kernel limit of 32")])
def test_global_pool_refusals(op, size, fragment):
    run = run_rules(one_op_model(op, {"x": ((1, 2, *size), F32)}), ["global-pool-to-pool"])
    assert run.applied == [] and fragment in run.reasons[0]


# --- activations, LogSoftmax ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 8, 5, 5), (3, 7)])
def test_hardswish(shape):
    run = run_rules(one_op_model("HardSwish", {"x": (shape, F32)}), ["hardswish-decompose"], tolerance=1e-6,
                    feeds={"x": np.linspace(-5, 5, int(np.prod(shape)), dtype=F32).reshape(shape)})
    assert run.ops == ["Add", "Clip", "Mul", "Mul"] and run.verification.passed


@pytest.mark.parametrize(("alpha", "beta"), [(0.2, 0.5), (1 / 6, 0.5), (0.5, 0.1)])
def test_hardsigmoid(alpha, beta):
    model = one_op_model("HardSigmoid", {"x": ((2, 4, 3, 3), F32)}, alpha=alpha, beta=beta)
    run = run_rules(model, ["hardsigmoid-decompose"], tolerance=1e-6,
                    feeds={"x": np.linspace(-6, 6, 72, dtype=F32).reshape(2, 4, 3, 3)})
    assert "HardSigmoid" not in run.ops and run.verification.passed


def test_hardswish_at_opset_14_uses_clip_inputs_and_at_opset_9_attributes():
    # HardSwish exists from opset 14; HardSigmoid at opset 9 exercises the attribute form of Clip
    run = run_rules(one_op_model("HardSigmoid", {"x": ((4, 4), F32)}, opset=9), ["hardsigmoid-decompose"])
    assert run.verification.passed


@pytest.mark.parametrize(("axis", "opset"), [(1, 11), (-1, 13), (0, 13), (2, 17)])
def test_logsoftmax(axis, opset):
    run = run_rules(one_op_model("LogSoftmax", {"x": ((2, 3, 4), F32)}, opset=opset, axis=axis),
                    ["logsoftmax-decompose"])
    assert run.ops == ["Softmax", "Log"] and run.verification.passed
    assert "stays on the GPU" in run.result.applied[0].note


# --- shape ops, Identity ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("op", "shape", "constants", "attrs"), [
    ("Squeeze", (1, 3, 1, 5), {"axes": np.array([0, 2])}, {}),
    ("Unsqueeze", (3, 5), {"axes": np.array([0, -1])}, {}),
    ("Flatten", (2, 3, 4, 5), {}, {"axis": 2}),
    ("Flatten", (2, 3, 4, 5), {}, {"axis": 0}),
])
def test_shape_ops_become_reshape(op, shape, constants, attrs):
    run = run_rules(one_op_model(op, {"x": (shape, F32)}, constants, **attrs), ["squeeze-to-reshape"], tolerance=0)
    assert run.ops == ["Reshape"] and run.verification.passed


def test_identity_between_ops_is_removed_and_output_keeps_its_name():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Identity", ["r"], ["mid"], name="id1"),
             helper.make_node("Sigmoid", ["mid"], ["s"], name="sig"),
             helper.make_node("Identity", ["s"], ["y"], name="id2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 2, 3, 3])],
                              [helper.make_empty_tensor_value_info("y")])
    run = run_rules(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), ["identity-removal"])
    proto = run.result.proto()
    assert run.ops == ["Relu", "Sigmoid"]
    assert [o.name for o in proto.graph.output] == ["y"]
    assert run.verification.passed


def test_inference_dropout_is_removed_so_reshapes_around_it_merge():
    """AlexNet/VGG heads: Reshape(2-D) → Dropout → Reshape(4-D); without the Dropout the two Reshapes are one
    (reshape-merge), and a 2-D Reshape would have stayed on the GPU."""
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["f"], name="to2d"),
             helper.make_node("Dropout", ["f"], ["d"], name="drop"),
             helper.make_node("Reshape", ["d", "back"], ["y"], name="to4d")]
    inits = [helper.make_tensor("flat", 7, [2], [1, 32]), helper.make_tensor("back", 7, [4], [1, 32, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 8, 2, 2])],
                              [helper.make_empty_tensor_value_info("y")], inits)
    run = run_rules(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                    ["identity-removal", "reshape-merge"], tolerance=0)
    assert "identity-removal" in run.applied and run.ops == ["Reshape"] and run.verification.passed


def test_dropout_whose_mask_is_read_or_that_may_train_stays():
    mask = [helper.make_node("Dropout", ["x"], ["y", "m"], name="drop"), helper.make_node("Not", ["m"], ["z"])]
    graph = helper.make_graph(mask, "g", [helper.make_tensor_value_info("x", 1, [1, 4, 2, 2])],
                              [helper.make_empty_tensor_value_info("y"), helper.make_empty_tensor_value_info("z")])
    run = run_rules(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), ["identity-removal"])
    assert run.applied == [] and "mask" in run.reasons[0]
    training = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Dropout", ["r", "", "t"], ["y"], name="drop")]
    graph = helper.make_graph(training, "g", [helper.make_tensor_value_info("x", 1, [1, 4, 2, 2]),
                                              helper.make_tensor_value_info("t", 9, [])],
                              [helper.make_empty_tensor_value_info("y")])
    run = run_rules(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), ["identity-removal"],
                    feeds={"x": np.ones((1, 4, 2, 2), np.float32), "t": np.array(False)})
    assert run.applied == [] and "training mode" in run.reasons[0]


def test_identity_from_input_to_output_is_refused():
    run = run_rules(one_op_model("Identity", {"x": ((2, 2), F32)}), ["identity-removal"])
    assert run.applied == [] and "model input" in run.reasons[0]


# --- FP16 models -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("op", "attrs", "opset"), [("HardSwish", {}, 17), ("GlobalAveragePool", {}, 17),
                                                    ("ReduceSum", {"axes": [3]}, 11), ("LogSoftmax", {"axis": 1}, 17),
                                                    ("DepthToSpace", {"blocksize": 2}, 17)])
def test_fp16_models_keep_their_type(op, attrs, opset):
    """Constants a rule adds take the model's FP16 type (ONNX Runtime rejects mixed FP16/FP32 operands)."""
    model = one_op_model(op, {"x": ((1, 8, 16, 16), np.float16)}, opset=opset, **attrs)
    run = run_rules(model)
    assert run.applied and op not in run.ops and run.verification.passed
