"""Patterns with exact DLA forms found in third-party models: padded deconvolutions, SPP pools, large average
pools, YOLOv5's Focus stem, nearest Resize in floor-identical modes, Conv3d on one frame. Every rewrite is run
against the original in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from dlakit.rewrite.testing import one_op_model, run_rules

F32 = np.float32
RNG = np.random.default_rng(7)


def weights(*shape):
    return RNG.standard_normal(shape).astype(F32)


def graph_model(nodes, inputs, constants=None, opset=17):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, 1, list(s)) for n, s in inputs.items()],
                              [helper.make_empty_tensor_value_info(nodes[-1].output[0])],
                              [onnx.numpy_helper.from_array(np.asarray(a), n) for n, a in (constants or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


# --- ConvTranspose with padding ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kernel", "stride", "pads", "extra"), [
    (4, 2, [1, 1, 1, 1], [0, 0]), (3, 2, [1, 1, 1, 1], [1, 1]), (3, 1, [1, 0, 1, 2], [0, 0]),
    (5, 3, [2, 1, 0, 2], [0, 1]), (2, 2, [0, 0, 0, 0], [0, 0]),
])
def test_padded_deconv_becomes_deconv_and_crop(kernel, stride, pads, extra):
    model = one_op_model("ConvTranspose", {"x": ((1, 4, 5, 6), F32)}, {"w": weights(4, 3, kernel, kernel),
                         "b": weights(3)}, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=pads,
                         output_padding=extra)
    run = run_rules(model, ["deconv-pad-to-crop"])
    if not any(pads) and not any(extra):
        assert run.applied == [] and run.reasons == []
        return
    assert run.applied == ["deconv-pad-to-crop"] and run.ops == ["ConvTranspose", "Slice"]
    assert run.verification.passed
    deconv = run.result.proto().graph.node[0]
    assert all(a.name not in ("pads", "output_padding") for a in deconv.attribute)


def test_deconv_output_padding_beyond_the_pad_is_refused():
    model = one_op_model("ConvTranspose", {"x": ((1, 2, 4, 4), F32)}, {"w": weights(2, 2, 3, 3)},
                         kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0], output_padding=[1, 1])
    run = run_rules(model, ["deconv-pad-to-crop"])
    assert run.applied == [] and "exceeds the end padding" in run.reasons[0]


# --- large MaxPool (SPP) -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kernel", "pads", "steps"), [
    ([9, 9], [4, 4, 4, 4], 2), ([13, 13], [6, 6, 6, 6], 2), ([5, 13], [2, 6, 2, 6], 2),
    ([9, 9], [2, 6, 6, 2], 2), ([17, 17], [8, 8, 8, 8], 3),
])
def test_spp_maxpool_becomes_a_chain(kernel, pads, steps):
    model = one_op_model("MaxPool", {"x": ((1, 3, 20, 20), F32)}, kernel_shape=kernel, strides=[1, 1], pads=pads)
    run = run_rules(model, ["maxpool-chain"])
    assert run.applied == ["maxpool-chain"] and run.ops == ["MaxPool"] * steps
    for node in run.result.proto().graph.node:
        attrs = {a.name: list(a.ints) for a in node.attribute}
        assert max(attrs["kernel_shape"]) <= 8 and max(attrs["pads"]) <= 7
    assert run.verification.passed


def test_same_upper_maxpool_and_block_maxpool():
    same = one_op_model("MaxPool", {"x": ((1, 2, 11, 11), F32)}, kernel_shape=[10, 10], auto_pad="SAME_UPPER")
    run = run_rules(same, ["maxpool-chain"])
    assert run.applied == ["maxpool-chain"] and run.verification.passed
    block = one_op_model("MaxPool", {"x": ((1, 2, 33, 24), F32)}, kernel_shape=[16, 12], strides=[16, 12])
    run = run_rules(block, ["maxpool-chain"])
    assert run.applied == ["maxpool-chain"] and run.verification.passed


@pytest.mark.parametrize(("attrs", "fragment"), [
    ({"kernel_shape": [9, 9], "strides": [2, 2], "pads": [4, 4, 4, 4]}, "stride ≠ 1"),
    ({"kernel_shape": [9, 9], "strides": [1, 1]}, "does not keep the size"),
    ({"kernel_shape": [11, 11], "strides": [11, 11]}, "prime factor above 8"),
])
def test_maxpool_chain_refusals(attrs, fragment):
    run = run_rules(one_op_model("MaxPool", {"x": ((1, 2, 22, 22), F32)}, **attrs), ["maxpool-chain"])
    assert run.applied == [] and fragment in run.reasons[0]


def test_small_maxpool_is_not_this_rules_business():
    run = run_rules(one_op_model("MaxPool", {"x": ((1, 2, 8, 8), F32)}, kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
                    ["maxpool-chain"])
    assert run.applied == [] and run.reasons == []


# --- large AveragePool ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("attrs", "ops"), [
    ({"kernel_shape": [16, 16], "strides": [16, 16]}, ["AveragePool", "AveragePool"]),
    ({"kernel_shape": [12, 10], "strides": [12, 10]}, ["AveragePool", "AveragePool"]),
    ({"kernel_shape": [11, 11], "strides": [4, 4]}, ["Conv"]),
    ({"kernel_shape": [9, 9], "strides": [1, 1]}, ["Conv"]),
    ({"kernel_shape": [9, 9], "strides": [2, 2], "pads": [4, 4, 4, 4], "count_include_pad": 1}, ["Conv"]),
])
def test_large_average_pool(attrs, ops):
    model = one_op_model("AveragePool", {"x": ((1, 3, 24, 30), F32)}, **attrs)
    run = run_rules(model, ["avgpool-split"])
    assert run.applied == ["avgpool-split"] and run.ops == ops
    assert run.verification.passed


def test_large_average_pool_refusals():
    exclusive = one_op_model("AveragePool", {"x": ((1, 3, 20, 20), F32)}, kernel_shape=[9, 9], pads=[4, 4, 4, 4])
    run = run_rules(exclusive, ["avgpool-split"])
    assert run.applied == [] and "count_include_pad=0" in run.reasons[0]
    huge = one_op_model("AveragePool", {"x": ((1, 3, 40, 40), F32)}, kernel_shape=[37, 37])
    run = run_rules(huge, ["avgpool-split"])
    assert run.applied == [] and "kernel limit of 32" in run.reasons[0]


# --- Focus stem ----------------------------------------------------------------------------------------------------
def _focus(chained: bool, order=((0, 0), (1, 0), (0, 1), (1, 1)), shape=(1, 3, 8, 10), step=2):
    nodes, constants = [], {"big": np.array([2**62], np.int64), "a2": np.array([2], np.int64),
                            "a3": np.array([3], np.int64), "a23": np.array([2, 3], np.int64),
                            "s": np.array([step], np.int64), "ss": np.array([step, step], np.int64)}
    for i in range(step):
        constants[f"o{i}"] = np.array([i], np.int64)
    outs = []
    for b, (dy, dx) in enumerate(order):
        if chained:
            nodes.append(helper.make_node("Slice", ["x", f"o{dy}", "big", "a2", "s"], [f"r{b}"], name=f"sh{b}"))
            nodes.append(helper.make_node("Slice", [f"r{b}", f"o{dx}", "big", "a3", "s"], [f"p{b}"], name=f"sw{b}"))
        else:
            constants[f"st{b}"] = np.array([dy, dx], np.int64)
            constants["bb"] = np.array([2**62, 2**62], np.int64)
            nodes.append(helper.make_node("Slice", ["x", f"st{b}", "bb", "a23", "ss"], [f"p{b}"], name=f"s{b}"))
        outs.append(f"p{b}")
    nodes.append(helper.make_node("Concat", outs, ["y"], axis=1, name="cat"))
    return graph_model(nodes, {"x": shape}, constants)


@pytest.mark.parametrize("chained", [True, False])
def test_focus_stem_becomes_one_conv(chained):
    run = run_rules(_focus(chained), ["focus-to-conv"])
    assert run.applied == ["focus-to-conv"] and run.ops == ["Conv"]
    assert run.verification.passed and run.verification.worst.max_rel == 0.0


def test_focus_other_order_and_step():
    run = run_rules(_focus(False, order=((1, 1), (0, 0), (2, 1)), shape=(1, 2, 9, 6), step=3), ["focus-to-conv"])
    assert run.applied == ["focus-to-conv"] and run.verification.passed


def test_focus_on_odd_sizes_is_refused():
    model = _focus(False, order=((0, 0), (0, 0)), shape=(1, 3, 8, 9))
    run = run_rules(model, ["focus-to-conv"])
    assert run.applied == [] and "not a multiple of the step" in run.reasons[0]


def test_plain_concat_is_not_a_focus_stem():
    model = graph_model([helper.make_node("Concat", ["x", "x"], ["y"], axis=1)], {"x": (1, 2, 4, 4)})
    run = run_rules(model, ["focus-to-conv"])
    assert run.applied == [] and run.reasons == []


# --- nearest Resize ------------------------------------------------------------------------------------------------
def _resize(transform, rounding, scales=(1, 1, 2, 2), shape=(1, 2, 5, 7)):
    return one_op_model("Resize", {"x": (shape, F32)}, {"roi": np.zeros(0, F32), "scales": np.array(scales, F32)},
                        order=["x", "roi", "scales"], mode="nearest", coordinate_transformation_mode=transform,
                        nearest_mode=rounding)


@pytest.mark.parametrize(("transform", "rounding", "scales"), [
    ("tf_half_pixel_for_nn", "floor", (1, 1, 2, 2)), ("tf_half_pixel_for_nn", "floor", (1, 1, 3, 4)),
    ("asymmetric", "round_prefer_floor", (1, 1, 1, 1)), ("align_corners", "floor", (1, 1, 1, 1)),
])
def test_nearest_resize_identical_to_floor(transform, rounding, scales):
    run = run_rules(_resize(transform, rounding, scales), ["resize-nearest-to-floor"])
    assert run.applied == ["resize-nearest-to-floor"] and run.verification.worst.max_rel == 0.0
    attrs = {a.name: a.s.decode() for a in run.result.proto().graph.node[0].attribute if a.s}
    assert attrs["coordinate_transformation_mode"] == "asymmetric" and attrs["nearest_mode"] == "floor"


@pytest.mark.parametrize(("transform", "rounding"), [
    ("asymmetric", "round_prefer_ceil"), ("align_corners", "floor"), ("half_pixel", "floor"),
    ("asymmetric", "ceil"),
])
def test_nearest_resize_picking_other_pixels_is_refused(transform, rounding):
    run = run_rules(_resize(transform, rounding), ["resize-nearest-to-floor"])
    assert run.applied == [] and "picks other pixels" in run.reasons[0]


def test_supported_nearest_modes_are_left_alone():
    run = run_rules(_resize("half_pixel", "round_prefer_floor"), ["resize-nearest-to-floor"])
    assert run.applied == [] and run.reasons == []


# --- Conv3d on one frame -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kernel", "pads", "group"), [
    ([1, 3, 3], [0, 1, 1, 0, 1, 1], 1), ([3, 3, 3], [1, 1, 1, 1, 1, 1], 1), ([3, 1, 5], [2, 0, 2, 0, 0, 2], 2),
])
def test_conv3d_with_depth_one(kernel, pads, group):
    model = one_op_model("Conv", {"x": ((2, 4, 1, 6, 7), F32)},
                         {"w": weights(6, 4 // group, *kernel), "b": weights(6)}, kernel_shape=kernel, pads=pads,
                         group=group)
    run = run_rules(model, ["conv3d-to-2d"])
    assert run.applied == ["conv3d-to-2d"] and run.ops == ["Reshape", "Conv", "Reshape"]
    assert run.verification.passed


def test_pool3d_with_depth_one_and_true_3d_refused():
    pool = one_op_model("MaxPool", {"x": ((1, 3, 1, 8, 8), F32)}, kernel_shape=[1, 2, 2], strides=[1, 2, 2])
    run = run_rules(pool, ["conv3d-to-2d"])
    assert run.applied == ["conv3d-to-2d"] and run.verification.passed
    deep = one_op_model("Conv", {"x": ((1, 2, 4, 5, 5), F32)}, {"w": weights(3, 2, 1, 3, 3)},
                        kernel_shape=[1, 3, 3])
    run = run_rules(deep, ["conv3d-to-2d"])
    assert run.applied == [] and "depth is 4" in run.reasons[0]
