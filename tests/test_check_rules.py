"""Every numeric limit at, inside and outside its boundary, and the per-release differences."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from tests.graphs import (
    binary_model,
    const,
    conv_model,
    make_model,
    place,
    rules_of,
    tensor,
    unary_model,
    weights,
)


@pytest.mark.parametrize(("kernel", "ok"), [((1, 1), True), ((32, 1), True), ((33, 1), False), ((3, 33), False)])
def test_conv_kernel(kernel, ok):
    node, _ = place(conv_model(c=4, k=4, hw=(40, 40), kernel=kernel))
    assert (node.placement == "dla") == ok
    if not ok:
        assert "conv.kernel" in rules_of(node)
        reason = next(r for r in node.reasons if r.rule == "conv.kernel")
        assert reason.allowed == [1, 32] and 33 in reason.value


@pytest.mark.parametrize(("stride", "ok"), [(1, True), (8, True), (9, False)])
def test_conv_stride(stride, ok):
    node, _ = place(conv_model(c=4, k=4, hw=(64, 64), kernel=(3, 3), strides=[stride, stride]))
    assert (node.placement == "dla") == ok
    assert ok or rules_of(node) == {"conv.stride"}


@pytest.mark.parametrize(("pads", "kernel", "ok"), [(2, 3, True), (3, 3, False), (31, 32, True), (32, 33, False)])
def test_conv_padding_below_kernel_and_limit(pads, kernel, ok):
    node, _ = place(conv_model(c=4, k=4, hw=(64, 64), kernel=(kernel, kernel), pads=[pads] * 4))
    assert (node.placement == "dla") == ok, node.reasons
    if not ok:
        assert "conv.padding" in rules_of(node)


def test_conv_same_upper_padding_is_resolved():
    node, _ = place(conv_model(c=4, k=4, hw=(16, 16), kernel=(3, 3), auto_pad="SAME_UPPER"))
    assert node.placement == "dla"


@pytest.mark.parametrize(("dilation", "ok"), [(32, True), (33, False)])
def test_conv_dilation(dilation, ok):
    node, _ = place(conv_model(c=4, k=4, hw=(80, 80), kernel=(2, 2), dilations=[dilation, 1]))
    assert (node.placement == "dla") == ok
    assert ok or "conv.dilation" in rules_of(node)


@pytest.mark.parametrize(("k", "ok"), [(8192, True), (8193, False)])
def test_conv_output_maps(k, ok):
    node, _ = place(conv_model(c=1, k=k, hw=(1, 1), kernel=(1, 1)))
    assert (node.placement == "dla") == ok
    assert ok or "conv.output-maps" in rules_of(node)


def test_conv_1d_is_fixable_by_lifting_to_4d():
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv1d", kernel_shape=[3])],
                       [tensor("x", [1, 8, 100])], [tensor("y", None)], [weights("w", [8, 8, 3])])
    node, _ = place(model)
    assert node.placement == "fixable"
    assert node.fix == "lift-to-4d"


def test_conv_with_runtime_weights_falls_back():
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])],
                       [tensor("x", [1, 4, 8, 8]), tensor("w", [4, 4, 3, 3])], [tensor("y", None)])
    node, _ = place(model)
    assert node.placement == "gpu" and "conv.constant-weights" in rules_of(node)


def test_cbuf_int8_passes_where_fp16_fails():
    model = conv_model(c=256, k=16, hw=(8, 352), kernel=(3, 3), pads=[1, 1, 1, 1])
    int8, _ = place(model, precision="int8")
    fp16, _ = place(model, precision="fp16")
    assert int8.placement == "dla"
    assert fp16.placement == "gpu" and rules_of(fp16) == {"conv.cbuf"}
    reason = fp16.reasons[0]
    assert reason.value == 18 and reason.allowed == [1, 15]  # exactly full (16) fails too: TensorRT issue 3499


def test_cbuf_large_input_rejected_in_int8():
    node, _ = place(conv_model(c=512, k=8, hw=(4, 1280), kernel=(3, 3), pads=[1, 1, 1, 1]))
    assert node.placement == "gpu" and "conv.cbuf" in rules_of(node)


@pytest.mark.parametrize(("op", "window", "ok"), [("MaxPool", 8, True), ("MaxPool", 9, False),
                                                    ("AveragePool", 8, True), ("AveragePool", 9, False)])
def test_pool_window(op, window, ok):
    node, _ = place(unary_model(op, shape=(1, 4, 32, 32), kernel_shape=[window, window]))
    assert (node.placement == "dla") == ok
    assert ok or rules_of(node) == {"pool.window"}


@pytest.mark.parametrize(("stride", "ok"), [(16, True), (17, False)])
def test_pool_stride(stride, ok):
    node, _ = place(unary_model("MaxPool", shape=(1, 4, 64, 64), kernel_shape=[2, 2], strides=[stride, stride]))
    assert (node.placement == "dla") == ok


@pytest.mark.parametrize(("pad", "ok"), [(7, True), (8, False)])
def test_pool_padding(pad, ok):
    node, _ = place(unary_model("MaxPool", shape=(1, 4, 16, 16), kernel_shape=[8, 8], pads=[pad] * 4))
    assert (node.placement == "dla") == ok
    assert ok or "pool.padding" in rules_of(node)


def test_exclusive_average_pool_runs_on_orin_not_xavier():
    model = unary_model("AveragePool", shape=(1, 4, 16, 16), kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    orin, _ = place(model)
    xavier, _ = place(model, platform="agx-xavier")
    inclusive, _ = place(unary_model("AveragePool", shape=(1, 4, 16, 16), kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                     count_include_pad=1), platform="agx-xavier")
    assert orin.placement == "dla"
    assert xavier.placement == "gpu" and rules_of(xavier) == {"pool.xavier-exclusive-average"}
    assert inclusive.placement == "dla"


def test_lp_pool_is_not_dla():
    node, _ = place(unary_model("LpPool", shape=(1, 4, 16, 16), kernel_shape=[2, 2]))
    assert node.placement == "gpu" and "pool.type" in rules_of(node)


def _clip(low, high):
    inputs = ["x", "lo" if low is not None else "", "hi" if high is not None else ""]
    inits = [const(n, np.float32(v)) for n, v in (("lo", low), ("hi", high)) if v is not None]
    return make_model([helper.make_node("Clip", inputs, ["y"], name="clip")], [tensor("x", [1, 4, 8, 8])],
                      [tensor("y", None)], inits)


@pytest.mark.parametrize(("low", "high", "ok"), [(0, 6, True), (0, 127, True), (0, 128, False), (-1, 1, False),
                                                 (0, None, True), (0, 0.5, False)])
def test_clip_as_clipped_relu(low, high, ok):
    node, _ = place(_clip(low, high))
    assert (node.placement == "dla") == ok, node.reasons
    assert ok or rules_of(node) == {"activation.clip"}


@pytest.mark.parametrize(("op", "verdict"), [("Relu", "dla"), ("Sigmoid", "dla"), ("Tanh", "dla"),
                                             ("LeakyRelu", "dla"), ("Elu", "gpu"), ("Softplus", "gpu"),
                                             ("HardSwish", "fixable"), ("HardSigmoid", "fixable")])
def test_activation_types(op, verdict):
    node, _ = place(unary_model(op))
    assert node.placement == verdict


def test_sigmoid_notes_fp16_upgrade_in_int8():
    node, _ = place(unary_model("Sigmoid"))
    assert any(n.rule == "activation.int8-upgrade" for n in node.notes)


# JetPack 6.2 (TensorRT 10.3): no DLA Div (10.3.0 header; SAM2 build log on Orin NX refused every Div)
@pytest.mark.parametrize(("release", "verdict"), [("jetpack-5.1.1", "gpu"), ("jetpack-6.0", "gpu"),
                                                  ("drive-os-6.0.9", "dla"), ("jetpack-6.2", "gpu")])
def test_div_between_tensors_depends_on_release(release, verdict):
    platform = "drive-orin" if release.startswith("drive") else None
    node, _ = place(binary_model("Div"), platform=platform, release=release)
    assert node.placement == verdict
    assert verdict == "dla" or rules_of(node) == {"eltwise.op"}


@pytest.mark.parametrize(("op", "verdict"), [("Add", "dla"), ("Sub", "dla"), ("Mul", "dla"), ("Max", "dla"),
                                             ("Min", "dla")])
def test_elementwise_ops_on_every_release(op, verdict):
    node, _ = place(binary_model(op), release="jetpack-5.1.1")
    assert node.placement == verdict


def test_xavier_sub_notes_two_operations():
    node, _ = place(binary_model("Sub"), platform="agx-xavier")
    assert node.placement == "dla"
    assert any(n.rule == "eltwise.xavier-sub" for n in node.notes)


@pytest.mark.parametrize(("b", "ok"), [((1, 8, 16, 16), True), ((1, 8, 1, 1), True), ((1, 1, 1, 1), True),
                                       ((1, 1, 16, 1), False), ((1, 8, 1, 16), False)])
def test_elementwise_broadcast(b, ok):
    node, _ = place(binary_model("Add", b=b))
    assert (node.placement == "dla") == ok
    assert ok or rules_of(node) == {"eltwise.broadcast"}


def test_integer_tensors_are_not_dla():
    node, _ = place(binary_model("Add", dtype=TensorProto.INT32))
    assert node.placement == "gpu" and "general.precision" in rules_of(node)


@pytest.mark.parametrize(("shape", "ok"), [((1, 8, 1, 1), True), ((8,), True), ((1, 1, 16, 1), False)])
def test_mul_by_constant_is_a_scale_layer(shape, ok):
    model = make_model([helper.make_node("Mul", ["x", "s"], ["y"], name="mul")], [tensor("x", [1, 8, 16, 16])],
                       [tensor("y", None)], [const("s", np.ones(shape, np.float32))])
    if shape == (8,):  # broadcast along W of size 16 is invalid ONNX; use a per-W vector instead
        model = make_model([helper.make_node("Mul", ["x", "s"], ["y"], name="mul")], [tensor("x", [1, 8, 16, 8])],
                           [tensor("y", None)], [const("s", np.ones(shape, np.float32))])
        ok = False
    node, _ = place(model)
    assert node.layer == "scale"
    assert (node.placement == "dla") == ok


@pytest.mark.parametrize(("op", "release", "verdict"), [
    ("Abs", "jetpack-5.1.1", "dla"), ("Sin", "jetpack-5.1.1", "gpu"), ("Sin", "drive-os-6.0.9", "dla"),
    ("Ceil", "jetpack-6.2", "gpu"), ("Exp", "jetpack-6.2", "gpu"), ("Neg", "jetpack-6.2", "fixable"),
])
def test_unary_ops_per_release(op, release, verdict):
    platform = "drive-orin" if release.startswith("drive") else None
    node, _ = place(unary_model(op), platform=platform, release=release)
    assert node.placement == verdict
    if op == "Ceil":
        assert "Unary operation: CEIL is not supported on DLA" in node.reasons[0].message


def test_softmax_runs_on_orin_not_on_xavier():
    model = unary_model("Softmax", shape=(1, 1000), axis=1)
    orin, _ = place(model)
    xavier, _ = place(model, platform="agx-xavier")
    assert orin.placement == "dla"
    assert xavier.placement == "gpu" and "softmax.platform" in rules_of(xavier)


@pytest.mark.parametrize(("shape", "axis", "ok"), [((1, 8192, 1, 1), 1, True), ((1, 8193, 1, 1), 1, False),
                                                   ((1, 1024, 4, 4), 1, True), ((1, 1025, 4, 4), 1, False),
                                                   ((2, 16, 4, 4), 0, False)])
def test_softmax_axis_limits(shape, axis, ok):
    node, _ = place(unary_model("Softmax", shape=shape, axis=axis))
    assert (node.placement == "dla") == ok, node.reasons


def test_softmax_batch_one_only_on_trt_8_4():
    model = unary_model("Softmax", shape=(2, 10, 1, 1), axis=1)
    old, _ = place(model, release="jetpack-5.0.2")
    new, _ = place(model, release="jetpack-5.1.1")
    assert old.placement == "gpu" and "softmax.batch" in rules_of(old)
    assert new.placement == "dla"


@pytest.mark.parametrize(("axis", "ok"), [(1, True), (-3, True), (2, False), (3, False)])
def test_concat_axis(axis, ok):
    node = helper.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=axis)
    model = make_model([node], [tensor("a", [1, 4, 8, 8]), tensor("b", [1, 4, 8, 8])], [tensor("y", None)])
    placed, _ = place(model)
    assert (placed.placement == "dla") == ok
    assert ok or "DLA only concatenates on the channel axis" in placed.reasons[0].message


def _resize(scales=None, sizes=None, mode="nearest", **attrs):
    inputs = ["x", "", "scales" if scales is not None else "", "sizes" if sizes is not None else ""]
    inits = []
    if scales is not None:
        inits.append(const("scales", np.asarray(scales, np.float32)))
    if sizes is not None:
        inits.append(const("sizes", np.asarray(sizes, np.int64)))
    node = helper.make_node("Resize", [i for i in inputs if True], ["y"], name="resize", mode=mode, **attrs)
    while node.input and node.input[-1] == "":
        node.input.pop()
    return make_model([node], [tensor("x", [1, 4, 8, 8])], [tensor("y", None)], inits)


@pytest.mark.parametrize(("model", "verdict", "rule"), [
    (_resize([1, 1, 2, 2], coordinate_transformation_mode="asymmetric", nearest_mode="floor"), "dla", None),
    (_resize([1, 1, 2, 2]), "dla", None),
    (_resize([1, 1, 32, 32]), "dla", None),
    (_resize([1, 1, 33, 33]), "gpu", "resize.scale-range"),
    (_resize([1, 1, 0.5, 0.5]), "gpu", "resize.scale-range"),
    (_resize([1, 1, 4, 4], mode="linear"), "dla", None),
    (_resize([1, 1, 5, 5], mode="linear"), "gpu", "resize.scale-range"),
    (_resize([1, 1, 2, 2], mode="linear", coordinate_transformation_mode="align_corners"), "gpu", "resize.mode"),
    (_resize([1, 1, 2, 2], mode="cubic"), "gpu", "resize.mode"),
    (_resize([1, 2, 2, 2]), "gpu", "resize.scales"),
    (_resize(sizes=[1, 4, 16, 16]), "fixable", "resize.scales"),
])
def test_resize(model, verdict, rule):
    node, _ = place(model)
    assert node.placement == verdict, node.reasons
    if rule:
        assert rule in rules_of(node)
    if verdict == "fixable":
        assert node.fix == "resize-sizes-to-scales"


def _slice(shape, starts, ends, axes, steps=None):
    inits = [const("s", np.array(starts)), const("e", np.array(ends)), const("a", np.array(axes))]
    inputs = ["x", "s", "e", "a"]
    if steps is not None:
        inits.append(const("st", np.array(steps)))
        inputs.append("st")
    return make_model([helper.make_node("Slice", inputs, ["y"], name="slice")], [tensor("x", shape)],
                      [tensor("y", None)], inits)


@pytest.mark.parametrize(("model", "ok", "rule"), [
    (_slice([1, 8, 16, 16], [0], [4], [1]), True, None),
    (_slice([1, 8, 16, 16], [2, 2], [10, 10], [2, 3]), True, None),
    (_slice([1, 8, 16], [0], [4], [1]), False, "slice.rank"),
    (_slice([1, 8, 16, 16], [0], [8], [1], [2]), False, "slice.static"),
    (_slice([2, 8, 16, 16], [0], [1], [0]), False, "slice.static"),
])
def test_slice(model, ok, rule):
    node, _ = place(model)
    assert (node.placement == "dla") == ok, node.reasons
    if rule:
        assert rule in rules_of(node)


def test_transpose_of_batch_axis_and_shuffle_release():
    ok = unary_model("Transpose", shape=(1, 8, 16, 4), perm=[0, 1, 3, 2])
    bad = unary_model("Transpose", shape=(1, 8, 16, 4), perm=[1, 0, 2, 3])
    assert place(ok)[0].placement == "dla"
    assert place(ok, release="jetpack-5.0.2")[0].placement == "gpu"
    node, _ = place(bad)
    assert node.placement == "gpu" and "shuffle.batch-axis" in rules_of(node)


def test_reshape_next_to_concat_is_refused():
    nodes = [helper.make_node("Concat", ["a", "b"], ["c"], name="cat", axis=1),
             helper.make_node("Reshape", ["c", "shape"], ["y"], name="reshape")]
    model = make_model(nodes, [tensor("a", [1, 4, 8, 8]), tensor("b", [1, 4, 8, 8])], [tensor("y", None)],
                       [const("shape", np.array([1, 8, 64, 1]))])
    node, _ = place(model, node="reshape")
    assert node.placement == "gpu" and "shuffle.slice-concat-neighbour" in rules_of(node)


@pytest.mark.parametrize(("size", "ok"), [(3, True), (5, True), (9, True), (4, False), (11, False)])
def test_lrn_window(size, ok):
    node, _ = place(unary_model("LRN", size=size))
    assert (node.placement == "dla") == ok


def _deconv(kernel, strides=None, group=1, pads=None):
    attrs = {"kernel_shape": list(kernel), "group": group}
    if strides:
        attrs["strides"] = list(strides)
    if pads:
        attrs["pads"] = list(pads)
    return make_model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv", **attrs)],
                      [tensor("x", [1, 4, 8, 8])], [tensor("y", None)], [weights("w", [4, 4 // group, *kernel])])


@pytest.mark.parametrize(("model", "ok", "rule"), [
    (_deconv((2, 2), (2, 2)), True, None),
    (_deconv((1, 64), (1, 64)), True, None),
    (_deconv((64, 64)), False, "deconv.kernel"),
    (_deconv((24, 24)), False, "deconv.kernel"),
    (_deconv((3, 3), pads=(1, 1, 1, 1)), False, "deconv.padding"),
    (_deconv((2, 2), group=2), False, "deconv.groups"),
])
def test_deconvolution(model, ok, rule):
    node, _ = place(model)
    assert (node.placement == "dla") == ok, node.reasons
    if rule:
        assert rule in rules_of(node)


def test_gather_is_fixable_and_topk_is_gpu():
    gather = make_model([helper.make_node("Gather", ["x", "i"], ["y"], name="gather", axis=1)],
                        [tensor("x", [1, 8, 4, 4])], [tensor("y", None)], [const("i", np.array([0, 2]))])
    node, _ = place(gather)
    assert node.placement == "fixable" and node.fix == "gather-to-conv"
    topk = make_model([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk", axis=1)],
                      [tensor("x", [1, 1000])], [tensor("v", None), tensor("i", None)], [const("k", np.array([5]))])
    node, _ = place(topk)
    assert node.placement == "gpu" and node.reasons[0].rule == "op.unsupported"


def _compare(op, cast_to=TensorProto.FLOAT16):
    nodes = [helper.make_node(op, ["a", "b"], ["c"], name="cmp"), helper.make_node("Cast", ["c"], ["y"], name="cast",
                                                                                     to=cast_to)]
    return make_model(nodes, [tensor("a", [1, 4, 8, 8]), tensor("b", [1, 4, 8, 8])], [tensor("y", None)])


def test_comparison_int8_only_and_cast_immediately():
    assert place(_compare("Equal"), node="cmp")[0].placement == "dla"
    assert place(_compare("Equal"), node="cast")[0].placement == "dla"
    assert place(_compare("Equal"), node="cmp", precision="fp16")[0].placement == "gpu"
    assert place(_compare("Equal", TensorProto.INT32), node="cmp")[0].placement == "gpu"
    assert place(_compare("Greater"), node="cmp", release="jetpack-5.1.1")[0].placement == "gpu"
    # Greater is DRIVE OS 8.6.12 evidence only; TensorRT 10.3's header never lists it (trt_headers_dla.md 1.7)
    assert place(_compare("Greater"), node="cmp", release="jetpack-6.2")[0].placement == "gpu"
    assert place(_compare("Greater"), node="cmp", platform="drive-orin",
                 release="drive-os-6.0.9")[0].placement == "dla"


@pytest.mark.parametrize(("n", "ok"), [(4096, True), (4097, False)])
def test_batch_limit(n, ok):
    node, _ = place(unary_model("Relu", shape=(n, 1, 1, 1)))
    assert (node.placement == "dla") == ok
    assert ok or rules_of(node) == {"general.batch"}


@pytest.mark.parametrize(("w", "ok"), [(8192, True), (8193, False)])
def test_dimension_limit(w, ok):
    node, _ = place(unary_model("Relu", shape=(1, 1, 1, w)))
    assert (node.placement == "dla") == ok
    assert ok or rules_of(node) == {"general.dims"}


def test_qdq_runs_on_dla_only_when_strongly_typed():
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq")]
    model = make_model(nodes, [tensor("x", [1, 4, 8, 8])], [tensor("y", None)],
                       [const("s", np.float32(0.1)), const("z", np.int8(0))])
    assert place(model, node="q", release="jetpack-6.2")[0].placement == "gpu"
    assert place(model, node="q", release="jetpack-7.2.2")[0].placement == "dla"


def test_shape_arithmetic_is_folded():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "rest"], ["target"], name="cat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
    ]
    model = make_model(nodes, [tensor("x", [1, 8, 4, 4])], [tensor("y", None)],
                       [const("zero", np.array(0)), const("axes", np.array([0])),
                        const("rest", np.array([8, 16, 1]))])
    node, report = place(model, node="reshape")
    assert node.placement == "dla"
    assert [n.placement for n in report.nodes[:4]] == ["folded"] * 4
    assert report.nodes[-1].node.outputs[0].shape.dims == (1, 8, 16, 1)


@pytest.mark.parametrize(("c", "ok"), [(8192, True), (8193, False)])
def test_conv_input_channels(c, ok):
    node, _ = place(conv_model(c=c, k=1, hw=(1, 1), kernel=(1, 1)))
    assert (node.placement == "dla") == ok
    assert ok or "conv.input-channels" in rules_of(node)


@pytest.mark.parametrize(("group", "ok"), [(8192, True), (8193, False)])
def test_conv_groups(group, ok):
    node, _ = place(conv_model(c=group, k=group, hw=(1, 1), kernel=(1, 1), group=group), precision="fp16")
    assert ("conv.groups" not in rules_of(node)) == ok


@pytest.mark.parametrize(("n", "ok"), [(8192, True), (8193, False)])
def test_fully_connected_output_features(n, ok):
    model = make_model([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)], [tensor("x", [1, 16])],
                       [tensor("y", None)], [weights("w", [n, 16])])
    node, _ = place(model)
    assert node.layer == "fully_connected"
    assert (node.placement == "dla") == ok
    assert ok or "conv.output-maps" in rules_of(node)


def test_matmul_with_two_runtime_inputs_and_3d_matmul():
    dynamic = make_model([helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")],
                         [tensor("a", [1, 16]), tensor("b", [16, 8])], [tensor("y", None)])
    node, _ = place(dynamic)
    assert node.placement == "gpu" and "conv.constant-weights" in rules_of(node)
    tokens = make_model([helper.make_node("MatMul", ["a", "w"], ["y"], name="mm")], [tensor("a", [1, 50, 16])],
                        [tensor("y", None)], [weights("w", [16, 8])])
    node, _ = place(tokens)
    assert node.placement == "fixable" and node.fix == "matmul-to-conv"


@pytest.mark.parametrize(("stride", "ok"), [(32, True), (33, False)])
def test_deconvolution_stride(stride, ok):
    model = make_model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv", kernel_shape=[1, 1],
                                         strides=[stride, stride])],
                       [tensor("x", [1, 4, 2, 2])], [tensor("y", None)], [weights("w", [4, 4, 1, 1])])
    node, _ = place(model)
    assert (node.placement == "dla") == ok
    assert ok or "deconv.stride" in rules_of(node)


def test_int8_grouped_conv_channel_note():
    node, _ = place(conv_model(c=6, k=6, hw=(8, 8), kernel=(3, 3), group=2))
    assert node.placement == "dla"
    assert any(n.rule == "conv.int8-group-channels" for n in node.notes)


def test_legacy_resize_and_upsample_read_scales_from_input_1():
    scales = const("s", np.array([1, 1, 2, 2], np.float32))
    for op, opset in (("Upsample", 9), ("Resize", 10)):
        model = make_model([helper.make_node(op, ["x", "s"], ["y"], name="up", mode="nearest")],
                           [tensor("x", [1, 4, 8, 8])], [tensor("y", None)], [scales], opset=opset)
        node, _ = place(model)
        assert node.placement == "dla", (op, node.reasons)


def test_softmax_default_axis_before_opset_13_flattens_trailing_dims():
    model = make_model([helper.make_node("Softmax", ["x"], ["y"], name="sm")], [tensor("x", [1, 8, 32, 32])],
                       [tensor("y", None)], opset=11)
    node, _ = place(model)  # axis 1 over 8*32*32 = 8192 values with no other non-batch dims: the exact limit
    assert node.placement == "dla"
    bigger = make_model([helper.make_node("Softmax", ["x"], ["y"], name="sm")], [tensor("x", [1, 8, 32, 33])],
                        [tensor("y", None)], opset=11)
    node, _ = place(bigger)
    assert node.placement == "gpu" and "softmax.axis" in rules_of(node)
