"""Logical ops and Neg on DLA arithmetic: And/Or/Xor/Not over broadcasting shapes, Neg over float types."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dlakit.rewrite.testing import one_op_model, run_rules

SHAPES = [((2, 3), (2, 3)), ((1, 3, 4, 5), (5,)), ((2, 3, 4), (3, 1)), ((1, 8, 2, 2), (1, 8, 1, 1))]


@pytest.mark.parametrize(("op", "rule"), [("And", "logical-and"), ("Or", "logical-or"), ("Xor", "logical-xor")])
@pytest.mark.parametrize(("a_shape", "b_shape"), SHAPES)
def test_binary_logic_is_exact(op, rule, a_shape, b_shape):
    model = one_op_model(op, {"a": (a_shape, bool), "b": (b_shape, bool)})
    run = run_rules(model, [rule], tolerance=0.0)
    assert run.applied == [rule]
    assert op not in run.ops
    assert run.verification.passed


def test_logic_truth_tables_exhaustive():
    a = np.array([0, 0, 1, 1], dtype=bool)
    b = np.array([0, 1, 0, 1], dtype=bool)
    for op, rule in [("And", "logical-and"), ("Or", "logical-or"), ("Xor", "logical-xor")]:
        run = run_rules(one_op_model(op, {"a": ((4,), bool), "b": ((4,), bool)}), [rule], tolerance=0.0,
                        feeds={"a": a, "b": b})
        assert run.verification.passed, op


@pytest.mark.parametrize("shape", [(4,), (2, 3), (1, 3, 4, 4)])
def test_not_is_one_minus_x(shape):
    run = run_rules(one_op_model("Not", {"x": (shape, bool)}), ["logical-not"], tolerance=0.0)
    assert run.applied == ["logical-not"]
    assert {"Mul", "Add"} <= set(run.ops) and "Not" not in run.ops
    assert run.verification.passed


def test_logic_works_at_old_opsets():
    """Before opset 9 the model is upgraded (TensorRT and ONNX Runtime start there)."""
    run = run_rules(one_op_model("Not", {"x": ((3, 4), bool)}, opset=1), ["logical-not"], tolerance=0.0)
    assert run.applied == ["logical-not"] and run.verification.passed


@pytest.mark.parametrize(("shape", "dtype"), list(itertools.product([(5,), (1, 3, 8, 8)], [np.float32, np.float16])))
def test_neg_to_scale(shape, dtype):
    run = run_rules(one_op_model("Neg", {"x": (shape, dtype)}), ["neg-to-scale"], tolerance=0.0)
    assert run.applied == ["neg-to-scale"] and run.ops == ["Mul"]
    assert run.verification.passed


def test_neg_on_integers_is_refused_with_reason():
    run = run_rules(one_op_model("Neg", {"x": ((4,), np.int32)}), ["neg-to-scale"])
    assert run.applied == []
    assert "INT32" in run.reasons[0] and "FP16/INT8" in run.reasons[0]


@pytest.mark.parametrize("divisor", [np.array(6.0, np.float32), np.array([[[[2.0]], [[-0.5]], [[1e-3]]]], np.float32),
                                     np.array(np.sqrt(2.0), np.float16)])
def test_div_by_a_constant_becomes_a_multiply(divisor):
    """x / c → x · (1/c): DLA refuses element-wise DIV but runs PROD; check marks the Div fixable and fix clears it."""
    dtype = divisor.dtype.type
    model = one_op_model("Div", {"x": ((1, 3, 8, 8), dtype)}, {"c": divisor})
    run = run_rules(model, ["div-to-mul"], tolerance=1e-3)
    assert run.applied == ["div-to-mul"] and run.ops == ["Mul"]
    assert run.verification.passed
    from tests.graphs import place, rules_of

    node, before = place(model, precision="fp16")
    assert "eltwise.op" in rules_of(node) and before.summary["fixable_nodes"] == 1
    _, after = place(run.result.proto(), precision="fp16")
    assert after.summary["gpu_nodes"] == 0


@pytest.mark.parametrize(("constants", "order", "reason"), [
    ({}, ["x", "d"], "not a constant"),
    ({"c": np.array([1.0, 0.0, 2.0], np.float32).reshape(1, 3, 1, 1)}, ["x", "c"], "zero"),
    ({"c": np.array(np.inf, np.float32)}, ["x", "c"], "non-finite"),
    ({"c": np.array(1e-45, np.float32)}, ["x", "c"], "overflows"),
])
def test_div_to_mul_refuses_what_it_cannot_invert(constants, order, reason):
    inputs = {"x": ((1, 3, 4, 4), np.float32)}
    if "d" in order:
        inputs["d"] = ((1, 3, 4, 4), np.float32)
    run = run_rules(one_op_model("Div", inputs, constants, order=order), ["div-to-mul"])
    assert run.applied == [] and reason in run.reasons[0]
