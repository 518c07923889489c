"""The check rules no other test named: each triggered on a small graph, with the finding asserted (and a graph
just inside the rule where there is one)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from tests.graphs import binary_model, const, conv_model, make_model, place, rules_of, tensor, unary_model, weights


def notes_of(placement) -> set[str]:
    return {r.rule for r in placement.notes}


def reason(placement, rule: str):
    return next(r for r in (*placement.reasons, *placement.notes) if r.rule == rule)


def test_op_unknown():
    node, _ = place(unary_model("Hardmax", axis=1))
    assert node.placement == "gpu" and rules_of(node) == {"op.unknown"}
    assert reason(node, "op.unknown").value == "Hardmax"


@pytest.mark.parametrize(("kernel", "spatial", "fix"), [((3,), 1, "lift-to-4d"), ((3, 3, 3), 3, "conv3d-to-2d")])
def test_conv_spatial_dims(kernel, spatial, fix):
    node, _ = place(conv_model(c=4, k=4, hw=(8,) * len(kernel), kernel=kernel))
    assert "conv.spatial-dims" in rules_of(node)
    found = reason(node, "conv.spatial-dims")
    assert (found.value, found.allowed, found.fix) == (spatial, 2, fix)
    assert node.placement != "dla"


def test_conv_spatial_dims_accepts_2d():
    node, _ = place(conv_model(c=4, k=4, hw=(8, 8), kernel=(3, 3)))
    assert "conv.spatial-dims" not in rules_of(node)


def _matmul(shape):
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    return make_model([node], [tensor("x", shape)], [tensor("y", None)], [weights("w", [shape[-1], 4])])


def test_fc_input_rank():
    node, _ = place(_matmul([1, 8, 16]))
    assert "fc.input-rank" in rules_of(node)
    assert reason(node, "fc.input-rank").value == [1, 8, 16]
    flat, _ = place(_matmul([1, 16]))
    assert "fc.input-rank" not in rules_of(flat)


@pytest.mark.parametrize("trans_a", [0, 1])
def test_fc_transpose_a(trans_a):
    shape = [16, 1] if trans_a else [1, 16]
    gemm = helper.make_node("Gemm", ["a", "b"], ["y"], name="gemm", transA=trans_a)
    node, _ = place(make_model([gemm], [tensor("a", shape)], [tensor("y", None)], [weights("b", [16, 4])]))
    assert ("fc.transpose-a" in rules_of(node)) == bool(trans_a)
    if trans_a:
        assert node.placement == "gpu" and reason(node, "fc.transpose-a").value == 1


@pytest.mark.parametrize(("c", "ok"), [(8192, True), (8193, False)])
def test_deconv_channels(c, ok):
    deconv = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv", kernel_shape=[1, 1])
    model = make_model([deconv], [tensor("x", [1, c, 2, 2])], [tensor("y", None)], [weights("w", [c, 1, 1, 1])])
    node, _ = place(model)
    assert ("deconv.channels" in rules_of(node)) == (not ok)
    if not ok:
        assert reason(node, "deconv.channels").allowed == [1, 8192]


def _pool(op="MaxPool", hw=(64, 64), outputs=("y",), **attrs):
    node = helper.make_node(op, ["x"], list(outputs), name="pool", **attrs)
    return make_model([node], [tensor("x", [1, 8, *hw])], [tensor(o, None) for o in outputs])


@pytest.mark.parametrize(("stride", "ok"), [(16, True), (17, False)])
def test_pool_stride(stride, ok):
    node, _ = place(_pool(kernel_shape=[2, 2], strides=[stride, stride], hw=(72, 72)))
    assert ("pool.stride" in rules_of(node)) == (not ok)
    if not ok:
        assert node.placement == "gpu" and reason(node, "pool.stride").allowed == [1, 16]


def test_pool_attributes_dilation_and_index_output():
    dilated, _ = place(_pool(kernel_shape=[2, 2], dilations=[2, 2]))
    assert "pool.attributes" in rules_of(dilated) and reason(dilated, "pool.attributes").value == [2, 2]
    indexed, _ = place(_pool(kernel_shape=[2, 2], outputs=("y", "indices")))
    assert "pool.attributes" in rules_of(indexed)
    assert reason(indexed, "pool.attributes").value == "Indices"
    plain, _ = place(_pool(kernel_shape=[2, 2]))
    assert "pool.attributes" not in rules_of(plain) and plain.placement == "dla"


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_pool_int8_equal_scales_is_a_note_in_int8(precision):
    node, _ = place(_pool(kernel_shape=[2, 2], strides=[2, 2]), precision=precision)
    assert node.placement == "dla"
    assert ("pool.int8-equal-scales" in notes_of(node)) == (precision == "int8")


def test_prelu_constant_slope():
    runtime, _ = place(binary_model("PRelu", b=(1, 8, 1, 1)))
    assert "prelu.constant-slope" in rules_of(runtime) and runtime.placement == "gpu"
    prelu = helper.make_node("PRelu", ["x", "slope"], ["y"], name="prelu")
    model = make_model([prelu], [tensor("x", [1, 8, 16, 16])], [tensor("y", None)],
                       [const("slope", np.full((8, 1, 1), 0.1, np.float32))])
    constant, _ = place(model)
    assert "prelu.constant-slope" not in rules_of(constant)


def test_eltwise_and_concat_int8_equal_scales():
    add, _ = place(binary_model("Add"))
    assert add.placement == "dla" and "eltwise.int8-equal-scales" in notes_of(add)
    assert "inputs to share one scale" in reason(add, "eltwise.int8-equal-scales").message
    concat = helper.make_node("Concat", ["a", "b"], ["y"], name="concat", axis=1)
    model = make_model([concat], [tensor("a", [1, 8, 16, 16]), tensor("b", [1, 8, 16, 16])], [tensor("y", None)])
    node, _ = place(model)
    assert "inputs and output" in reason(node, "eltwise.int8-equal-scales").message
    fp16, _ = place(binary_model("Add"), precision="fp16")
    assert "eltwise.int8-equal-scales" not in notes_of(fp16)


@pytest.mark.parametrize(("shape", "ok"), [((1,), True), ((1, 8, 1, 1), True), ((1, 8, 16, 16), True),
                                           ((1, 1, 16, 1), False)])
def test_scale_mode(shape, ok):
    mul = helper.make_node("Mul", ["x", "c"], ["y"], name="mul")
    model = make_model([mul], [tensor("x", [1, 8, 16, 16])], [tensor("y", None)],
                       [const("c", np.full(shape, 2.0, np.float32))])
    node, _ = place(model)
    assert node.layer == "scale"
    assert ("scale.mode" in rules_of(node)) == (not ok)


def _batchnorm(outputs=("y",), **attrs):
    bn = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], list(outputs), name="bn", **attrs)
    params = [const(n, np.ones(8, np.float32)) for n in ("s", "b", "m", "v")]
    return make_model([bn], [tensor("x", [1, 8, 16, 16])], [tensor(o, None) for o in outputs], params)


def test_scale_training():
    node, _ = place(_batchnorm(outputs=("y", "mean", "var"), training_mode=1))
    assert "scale.training" in rules_of(node) and reason(node, "scale.training").value == "training"
    inference, _ = place(_batchnorm())
    assert "scale.training" not in rules_of(inference)


@pytest.mark.parametrize(("size", "ok"), [(5, True), (4, False), (11, False)])
def test_lrn_window(size, ok):
    node, _ = place(unary_model("LRN", size=size), precision="fp16")
    assert ("lrn.window" in rules_of(node)) == (not ok)
    if not ok:
        assert reason(node, "lrn.window").allowed == [3, 5, 7, 9]


def _slice():
    node = helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"], name="slice")
    return make_model([node], [tensor("x", [1, 8, 16, 16])], [tensor("y", None)],
                      [const("starts", np.array([0], np.int64)), const("ends", np.array([8], np.int64)),
                       const("axes", np.array([2], np.int64))])


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_slice_fp16_is_a_note_in_int8(precision):
    node, _ = place(_slice(), precision=precision)
    assert ("slice.fp16" in notes_of(node)) == (precision == "int8")


def _reshape(shape_const: bool = True):
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")
    if shape_const:
        return make_model([node], [tensor("x", [1, 8, 16, 16])], [tensor("y", None)],
                          [const("shape", np.array([1, 16, 8, 16], np.int64))])
    return make_model([node], [tensor("x", [1, 8, 16, 16]), tensor("shape", [4], TensorProto.INT64)],
                      [tensor("y", None)])


def test_shuffle_release():
    old, _ = place(_reshape(), platform="agx-xavier", release="jetpack-5.0.2")
    assert "shuffle.release" in rules_of(old) and reason(old, "shuffle.release").allowed == ">= 8.5"
    new, _ = place(_reshape(), release="jetpack-5.1.1")
    assert "shuffle.release" not in rules_of(new)


def test_shuffle_static():
    node, _ = place(_reshape(shape_const=False))
    assert "shuffle.static" in rules_of(node) and reason(node, "shuffle.static").value == "run-time"
    static, _ = place(_reshape())
    assert "shuffle.static" not in rules_of(static)


def _compare(cast_to: int):
    equal = helper.make_node("Equal", ["a", "b"], ["e"], name="equal")
    cast = helper.make_node("Cast", ["e"], ["y"], name="cast", to=cast_to)
    return make_model([equal, cast], [tensor("a", [1, 8, 16, 16]), tensor("b", [1, 8, 16, 16])],
                      [tensor("y", None, cast_to)])


def test_comparison_int8_cast():
    fp16, _ = place(_compare(TensorProto.FLOAT16), node="equal", precision="fp16")
    assert "comparison.int8-cast" in rules_of(fp16) and reason(fp16, "comparison.int8-cast").value == "fp16"
    to_int, _ = place(_compare(TensorProto.INT32), node="equal")
    assert "comparison.int8-cast" in rules_of(to_int) and reason(to_int, "comparison.int8-cast").value == "Cast"
    ok, _ = place(_compare(TensorProto.FLOAT16), node="equal")
    assert "comparison.int8-cast" not in rules_of(ok)


def _quantize():
    q = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q")
    return make_model([q], [tensor("x", [1, 8, 16, 16])], [tensor("y", None)],
                      [const("s", np.array(0.1, np.float32)), const("z", np.array(0, np.int8))], opset=13)


def test_quantize_release():
    implicit, _ = place(_quantize(), release="jetpack-6.2")
    assert "quantize.release" in rules_of(implicit) and reason(implicit, "quantize.release").value == "QuantizeLinear"
    strongly_typed, _ = place(_quantize(), release="jetpack-7.2.2")
    assert "quantize.release" not in rules_of(strongly_typed)


@pytest.mark.parametrize(("to", "ok"), [(TensorProto.FLOAT16, True), (TensorProto.INT32, False)])
def test_cast_type(to, ok):
    cast = helper.make_node("Cast", ["x"], ["y"], name="cast", to=to)
    node, _ = place(make_model([cast], [tensor("x", [1, 8, 16, 16])], [tensor("y", None, to)]))
    assert ("cast.type" in rules_of(node)) == (not ok)
    if not ok:
        assert node.placement == "gpu" and reason(node, "cast.type").value == "INT32"
