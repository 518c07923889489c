"""Selections with constant indices: Where, Gather*, ScatterElements, CumSum, DepthToSpace, SpaceToDepth."""

from __future__ import annotations

import numpy as np
import pytest

from dlakit.model import load_model
from dlakit.rewrite import FixOptions, fix_model
from dlakit.rewrite.testing import one_op_model, run_rules

F32 = np.float32
RNG = np.random.default_rng(0)


# --- Where ---------------------------------------------------------------------------------------------------------
def test_where_per_channel_condition_becomes_concat_and_selector_conv():
    cond = np.array([True, False, True, False]).reshape(1, 4, 1, 1)
    model = one_op_model("Where", {"a": ((1, 4, 5, 5), F32), "b": ((1, 4, 5, 5), F32)}, {"c": cond},
                         order=["c", "a", "b"])
    run = run_rules(model, ["where-to-conv"], tolerance=0.0)
    assert run.applied == ["where-to-conv"]
    assert run.ops == ["Concat", "Conv"]
    assert run.verification.passed


@pytest.mark.parametrize(("cond_shape", "shape"), [((3, 4), (2, 3, 4)), ((1, 1, 6, 6), (1, 2, 6, 6)), ((5,), (5,))])
def test_where_elementwise_mask_becomes_masked_sum(cond_shape, shape):
    cond = RNG.integers(0, 2, size=cond_shape).astype(bool)
    model = one_op_model("Where", {"a": (shape, F32), "b": (shape, F32)}, {"c": cond}, order=["c", "a", "b"])
    run = run_rules(model, ["where-to-conv"], tolerance=0.0)
    assert run.applied == ["where-to-conv"] and "Where" not in run.ops
    assert run.verification.passed


def test_where_with_constant_branch():
    cond = RNG.integers(0, 2, size=(1, 2, 3, 3)).astype(bool)
    model = one_op_model("Where", {"a": ((1, 2, 3, 3), F32)}, {"c": cond, "zero": np.zeros(1, F32)},
                         order=["c", "a", "zero"])
    assert run_rules(model, ["where-to-conv"], tolerance=0.0).verification.passed


@pytest.mark.parametrize(("inputs", "constants", "fragment"), [
    ({"c": ((4,), bool), "a": ((4,), F32), "b": ((4,), F32)}, {}, "computed at run time"),
    ({"a": ((4,), np.int64), "b": ((4,), np.int64)}, {"c": np.ones(4, bool)}, "INT64"),
    ({"a": ((4,), F32)}, {"c": np.ones(4, bool), "b": np.full(4, -np.inf, F32)}, "inf/NaN"),
])
def test_where_refusals(inputs, constants, fragment):
    model = one_op_model("Where", inputs, constants, order=["c", "a", "b"])
    run = run_rules(model, ["where-to-conv"])
    assert run.applied == [] and fragment in run.reasons[0]


# --- Gather / GatherElements / GatherND ---------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1])
@pytest.mark.parametrize("indices", [[2, 0, 1], [1], [0, 1, 2], [[0, 2], [1, 1]], -1])
def test_gather_any_axis(axis, indices):
    shape = (3, 4, 3, 5)
    model = one_op_model("Gather", {"x": (shape, F32)}, {"i": np.array(indices, dtype=np.int64)}, axis=axis)
    run = run_rules(model, ["gather-to-conv"], tolerance=0.0)
    assert run.applied == ["gather-to-conv"] and "Gather" not in run.ops
    assert run.verification.passed


def test_gather_channels_of_nchw_is_one_selection_conv():
    model = one_op_model("Gather", {"x": ((1, 8, 4, 4), F32)}, {"i": np.array([7, 0, 3], np.int64)}, axis=1)
    run = run_rules(model, ["gather-to-conv"], tolerance=0.0)
    assert run.ops == ["Conv"] and run.verification.passed


def test_gather_contiguous_spatial_run_is_a_slice():
    model = one_op_model("Gather", {"x": ((1, 2, 6, 6), F32)}, {"i": np.array([2, 3, 4], np.int64)}, axis=2)
    run = run_rules(model, ["gather-to-conv"], tolerance=0.0)
    assert run.ops == ["Slice"] and run.verification.passed


@pytest.mark.parametrize(("inputs", "constants", "fragment"), [
    ({"x": ((2, 3), F32), "i": ((2,), np.int64)}, {}, "computed at run time"),
    ({"x": ((2, 3), np.int64)}, {"i": np.array([0])}, "INT64"),
    ({"x": ((2, 3), F32)}, {"i": np.array([5])}, "outside"),
])
def test_gather_refusals(inputs, constants, fragment):
    model = one_op_model("Gather", inputs, constants, order=["x", "i"], axis=1)
    result = fix_model(load_model(model), FixOptions(rules=["gather-to-conv"]))
    assert result.applied == [] and fragment in result.refused[0].reason


def test_gather_elements_uniform_indices():
    indices = np.broadcast_to(np.array([3, 1, 1, 0]).reshape(1, 4, 1, 1), (2, 4, 3, 3)).astype(np.int64)
    model = one_op_model("GatherElements", {"x": ((2, 4, 3, 3), F32)}, {"i": indices}, axis=1)
    run = run_rules(model, ["gather-to-conv"], tolerance=0.0)
    assert run.applied == ["gather-to-conv"] and run.verification.passed


@pytest.mark.parametrize(("shape", "index_shape", "axis"), [((2, 2), (2, 2), 1), ((3, 4, 5), (3, 2, 5), 1),
                                                         ((3, 4), (2, 4), 0)])
def test_gather_elements_elementwise_is_a_masked_sum(shape, index_shape, axis):
    indices = RNG.integers(-shape[axis], shape[axis], size=index_shape)
    model = one_op_model("GatherElements", {"x": (shape, F32)}, {"i": indices}, axis=axis)
    run = run_rules(model, ["gather-to-conv"], tolerance=0.0)
    assert run.applied == ["gather-to-conv"] and "GatherElements" not in run.ops
    assert run.verification.passed


def test_gather_elements_elementwise_on_a_long_axis_is_refused():
    indices = RNG.integers(0, 40, size=(2, 40))
    model = one_op_model("GatherElements", {"x": ((2, 40), F32)}, {"i": indices}, axis=1)
    run = run_rules(model, ["gather-to-conv"])
    assert run.applied == [] and "element-wise gather" in run.reasons[0]


@pytest.mark.parametrize(("shape", "indices", "batch_dims"), [
    ((2, 3, 4), [[1], [0]], 0),
    ((2, 3, 4), [[0, 1], [1, 2]], 0),
    ((2, 3, 4), [[[1], [0]], [[1], [0]]], 1),
])
def test_gather_nd(shape, indices, batch_dims):
    model = one_op_model("GatherND", {"x": (shape, F32)}, {"i": np.array(indices, np.int64)}, batch_dims=batch_dims)
    run = run_rules(model, ["gather-to-conv"], tolerance=0.0)
    assert run.applied == ["gather-to-conv"] and run.verification.passed


def test_gather_nd_batch_dependent_is_refused():
    model = one_op_model("GatherND", {"x": ((2, 3), F32)}, {"i": np.array([[1], [0]], np.int64)}, batch_dims=1)
    run = run_rules(model, ["gather-to-conv"])
    assert run.applied == [] and "batch dims" in run.reasons[0]


# --- ScatterElements ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "axis", "picked", "reduction"), [
    ((1, 6, 3, 3), 1, [4, 1], "none"),
    ((1, 6, 3, 3), 1, [4, 4], "none"),
    ((2, 5), 1, [1, 3], "add"),
    ((3, 2, 4), 2, [0, -1], "none"),
    ((4, 3), 0, [2], "none"),
])
def test_scatter_elements(shape, axis, picked, reduction):
    upd_shape = list(shape)
    upd_shape[axis] = len(picked)
    view = [1] * len(shape)
    view[axis] = len(picked)
    indices = np.broadcast_to(np.array(picked).reshape(view), upd_shape).astype(np.int64)
    model = one_op_model("ScatterElements", {"x": (shape, F32), "u": (upd_shape, F32)}, {"i": indices},
                         order=["x", "i", "u"], axis=axis, reduction=reduction)
    run = run_rules(model, ["scatter-elements-to-conv"], tolerance=1e-6)
    assert run.applied == ["scatter-elements-to-conv"] and "ScatterElements" not in run.ops
    assert run.verification.passed


def test_scatter_elements_refuses_nonlinear_reduction():
    model = one_op_model("ScatterElements", {"x": ((2, 3), F32), "u": ((2, 1), F32)}, {"i": np.zeros((2, 1), int)},
                         order=["x", "i", "u"], axis=1, reduction="max")
    run = run_rules(model, ["scatter-elements-to-conv"])
    assert run.applied == [] and "not linear" in run.reasons[0]


# --- CumSum --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize(("exclusive", "reverse"), [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumsum(axis, exclusive, reverse):
    model = one_op_model("CumSum", {"x": ((2, 5, 3), F32)}, {"axis": np.array(axis, np.int64)},
                         exclusive=exclusive, reverse=reverse)
    run = run_rules(model, ["cumsum-to-conv"])
    assert run.applied == ["cumsum-to-conv"] and "CumSum" not in run.ops
    assert run.verification.passed


def test_cumsum_with_runtime_axis_is_refused():
    model = one_op_model("CumSum", {"x": ((2, 5), F32), "axis": ((), np.int64)})
    run = run_rules(model, ["cumsum-to-conv"])
    assert run.applied == [] and "run time" in run.reasons[0]


# --- DepthToSpace / SpaceToDepth -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize(("block", "channels"), [(2, 4), (2, 8), (3, 9), (4, 16)])
def test_depth_to_space(mode, block, channels):
    model = one_op_model("DepthToSpace", {"x": ((2, channels, 3, 4), F32)}, blocksize=block, mode=mode)
    run = run_rules(model, ["depth-to-space-to-deconv"], tolerance=0.0)
    assert run.ops == ["ConvTranspose"] and run.verification.passed


def test_depth_to_space_refuses_huge_block():
    model = one_op_model("DepthToSpace", {"x": ((1, 33 * 33, 1, 1), F32)}, blocksize=33)
    run = run_rules(model, ["depth-to-space-to-deconv"])
    assert run.applied == [] and "blocksize 33" in run.reasons[0]


@pytest.mark.parametrize(("block", "channels", "size"), [(2, 1, 4), (2, 3, 6), (3, 2, 9), (4, 4, 8)])
def test_space_to_depth(block, channels, size):
    model = one_op_model("SpaceToDepth", {"x": ((2, channels, size, size), F32)}, blocksize=block)
    run = run_rules(model, ["space-to-depth-to-conv"], tolerance=0.0)
    assert run.ops == ["Conv"] and run.verification.passed


def test_space_to_depth_refuses_stride_above_8():
    model = one_op_model("SpaceToDepth", {"x": ((1, 1, 9, 9), F32)}, blocksize=9)
    run = run_rules(model, ["space-to-depth-to-conv"])
    assert run.applied == [] and "stride limit of 8" in run.reasons[0]
