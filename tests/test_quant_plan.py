"""Which tensors get scales, DLA's equal-scale groups and fusions, and the emulator's numerics on a small graph."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from dlakit.model import load_model
from dlakit.quantize.emulate import build_emulator
from dlakit.quantize.numerics import fake_quant, fake_quant_weight, weight_scales
from dlakit.quantize.plan import build_plan
from dlakit.quantize.qdq import insert_qdq, translate_qdq
from dlakit.quantize.runtime import session, to_proto


def small_model(sigmoid_to_output: bool = False, zero_channel: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b1 = rng.normal(size=4).astype(np.float32)
    if zero_channel:  # after BatchNorm folding: (near-)zero weights, non-zero bias (int8_baseline.md pitfall 3)
        w1[0] = 0.0
        w1[1] = 1e-12
        b1[:2] = 5.0
    w2 = rng.normal(size=(4, 4, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
        helper.make_node("Add", ["c2", "r1"], ["a"], name="add"),
        helper.make_node("Sigmoid", ["a"], ["s"], name="sigmoid"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if sigmoid_to_output:
        nodes.append(helper.make_node("MaxPool", ["a"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2]))
        outputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, None))
    else:
        nodes += [helper.make_node("Concat", ["a", "s"], ["cat"], name="concat", axis=1),
                  helper.make_node("MaxPool", ["cat"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              outputs, [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
                                        numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_plan_scales_layer_boundaries_and_fuses_conv_epilogues():
    plan = build_plan(load_model(small_model()).graph)
    assert plan.tensors == ["x", "r1", "a", "s", "cat", "y"]
    assert plan.fused == {"c1": "relu1", "c2": "add"}  # conv+relu, conv+residual add: one DLA operation each
    assert plan.fp16_layers == ["sigmoid"]
    assert {w.node: w.axis for w in plan.weights} == {"conv1": 0, "conv2": 0}
    assert plan.bounded == {"s": 1.0}
    assert len({plan.group_of(n) for n in ("a", "s", "cat", "y")}) == 1  # concat in = out, pooling in = out


def test_equal_scale_constraints_take_the_larger_range_and_report_the_cost():
    plan = build_plan(load_model(small_model()).graph)
    tied, costs = plan.apply_constraints({"x": 1.0, "r1": 4.0, "a": 8.0, "s": 1.0, "cat": 8.0, "y": 8.0})
    assert tied["s"] == tied["cat"] == tied["y"] == 8.0 and tied["r1"] == 4.0
    assert [(c.tensor, c.bits_lost) for c in costs] == [("s", 3.0)]
    assert "concat" in costs[0].reason


def test_without_eltwise_fusion_the_add_inputs_share_a_scale():
    plan = build_plan(load_model(small_model()).graph, fuse_eltwise=False)
    assert "c2" in plan.tensors and plan.group_of("c2") == plan.group_of("r1")


def test_quantize_linear_rounds_half_to_even_and_saturates_like_numpy():
    scale = np.float32(0.5)
    x = (np.array([0.5, 1.5, 2.5, -0.5, -1.5, 300.0, -300.0, 63.25], np.float32) * scale).reshape(1, -1)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
                              [numpy_helper.from_array(np.array(scale), "s"),
                               numpy_helper.from_array(np.array(0, np.int8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    (y,) = session(model, quantized=True).run(None, {"x": x})
    assert np.array_equal(y, fake_quant(x, scale))
    assert y.tolist()[0][:5] == [0.0, 1.0, 1.0, -0.0, -1.0] and y[0, 5] == 63.5 and y[0, 6] == -64.0


def test_weights_quantize_per_output_channel_to_127_levels():
    weight = np.random.default_rng(1).normal(size=(6, 3, 3, 3)).astype(np.float32)
    weight[2] = 0.0
    scales = weight_scales(weight, 0)
    assert scales[2] == 1.0
    assert np.allclose(scales[[0, 1]], np.abs(weight[[0, 1]]).reshape(2, -1).max(1) / 127)
    fq = fake_quant_weight(weight, 0)
    codes = fq / scales[:, None, None, None]
    assert np.allclose(codes, np.rint(codes), atol=1e-4) and np.abs(codes).max() <= 127.0001


def _run(model: onnx.ModelProto, x: np.ndarray, level: ort.GraphOptimizationLevel | None = None) -> list:
    if level is None:
        return session(model, quantized=True).run(None, {"x": x})
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})


def test_emulator_is_the_same_with_and_without_ort_optimizations():
    loaded = load_model(small_model())
    plan = build_plan(loaded.graph)
    amax = plan.apply_constraints({"x": 3.0, "r1": 6.0, "a": 10.0, "s": 1.0, "cat": 10.0, "y": 10.0})[0]
    emulated = build_emulator(to_proto(loaded), plan, amax).model
    x = np.random.default_rng(2).normal(size=(1, 3, 8, 8)).astype(np.float32)
    assert np.array_equal(_run(emulated, x)[0], _run(emulated, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)[0])
    codes = _run(emulated, x)[0] / (10.0 / 127)
    assert np.allclose(codes, np.rint(codes), atol=1e-3)  # the output is an INT8 tensor


def test_unscaled_dla_tensors_round_trip_through_fp16():
    loaded = load_model(small_model(sigmoid_to_output=True))
    plan = build_plan(loaded.graph)
    assert "s" in plan.fp16_tensors
    emulated = build_emulator(to_proto(loaded), plan, plan.apply_constraints({"x": 3.0, "r1": 6.0, "a": 10.0,
                                                                               "y": 10.0})[0])
    x = np.random.default_rng(3).normal(size=(1, 3, 8, 8)).astype(np.float32)
    s = _run(emulated.model, x)[1]
    assert np.array_equal(s, s.astype(np.float16).astype(np.float32))
    assert not np.array_equal(s, _run(to_proto(loaded), x)[1])


def test_zero_weight_channel_with_bias_keeps_int32_bias_in_range():
    loaded = load_model(small_model(zero_channel=True))
    plan = build_plan(loaded.graph)
    amax = plan.apply_constraints({"x": 3.0, "r1": 8.0, "a": 12.0, "s": 1.0, "cat": 12.0, "y": 12.0})[0]
    integer = insert_qdq(to_proto(loaded), plan, amax, weights="int8", fp16_casts=False, int32_bias=True)
    assert integer.widened_channels == 1  # the 1e-12 channel; an all-zero channel gets scale 1 from the start
    bias = numpy_helper.to_array(next(i for i in integer.model.graph.initializer if i.name == "conv1__bias_int32"))
    assert np.abs(bias.astype(np.int64)).max() < 2**31 - 1
    x = np.random.default_rng(4).normal(size=(1, 3, 8, 8)).astype(np.float32)
    emulated = build_emulator(to_proto(loaded), plan, amax, fp16=False).model
    options = ort.SessionOptions()  # operators one by one: defined arithmetic, not the host's fused integer kernels
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    real = ort.InferenceSession(integer.model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]
    assert np.abs(real - _run(emulated, x)[0]).max() <= 12.0 / 127 * 1.01  # at most one INT8 step apart


def test_translate_recovers_scales_and_weights_of_a_written_qdq_model():
    loaded = load_model(small_model())
    plan = build_plan(loaded.graph)
    amax = plan.apply_constraints({"x": 3.0, "r1": 6.0, "a": 10.0, "s": 1.0, "cat": 10.0, "y": 10.0})[0]
    qdq = insert_qdq(to_proto(loaded), plan, amax, weights="int8", fp16_casts=False)
    translation = translate_qdq(qdq.model)
    assert translation.scales == pytest.approx({n: a / 127 for n, a in amax.items()}, rel=1e-6)
    assert translation.weights_checked == 2 and not translation.mismatches
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in translation.model.graph.node)
    w1 = numpy_helper.to_array(next(i for i in translation.model.graph.initializer if "conv1" in i.name))
    assert np.allclose(w1, fake_quant_weight(numpy_helper.to_array(small_model().graph.initializer[0]), 0))


def test_translate_reports_weight_scales_tensorrt_would_not_use():
    loaded = load_model(small_model())
    plan = build_plan(loaded.graph)
    qdq = insert_qdq(to_proto(loaded), plan, {"x": 3.0}, weights="int8", fp16_casts=False)
    for init in qdq.model.graph.initializer:
        if init.name == "conv2__weight_int8":  # QAT codes that never reach ±127: the scale is wider than TensorRT's
            init.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(init) // 2).astype(np.int8), init.name))
    translation = translate_qdq(qdq.model)
    assert [(m.layer, m.channels) for m in translation.mismatches] == [("conv2", 4)]
    assert translation.mismatches[0].worst_ratio == pytest.approx(127 / 63, rel=0.02)


def test_fp16_qdq_model_for_strongly_typed_dla_runs_and_translates_back():
    from dlakit.quantize.fp16 import to_fp16
    from dlakit.quantize.numerics import sqnr_db

    loaded = load_model(small_model())
    plan = build_plan(loaded.graph)
    amax = plan.apply_constraints({"x": 3.0, "r1": 6.0, "a": 10.0, "s": 1.0, "cat": 10.0, "y": 10.0})[0]
    fp32 = insert_qdq(to_proto(loaded), plan, amax, weights="int8", fp16_casts=False).model
    fp16, subnormal = to_fp16(fp32)
    assert subnormal == []
    assert next(o.version for o in fp16.opset_import if o.domain == "") == 19
    assert all(i.data_type != TensorProto.FLOAT for i in fp16.graph.initializer)
    x = np.random.default_rng(5).normal(size=(1, 3, 8, 8)).astype(np.float32)
    y32 = session(fp32, quantized=True).run(["y"], {"x": x})[0]
    y16 = session(fp16, quantized=True).run(["y"], {"x": x.astype(np.float16)})[0]
    assert y16.dtype == np.float16 and sqnr_db(y32, y16.astype(np.float32)) > 25
    back = translate_qdq(fp16)
    assert back.scales == pytest.approx({n: a / 127 for n, a in amax.items()}, rel=1e-3)
    assert not back.mismatches


def test_rounding_away_from_zero_differs_from_even_only_on_ties():
    from dlakit.quantize.runtime import with_outputs

    loaded = load_model(small_model())
    plan = build_plan(loaded.graph)
    amax = plan.apply_constraints({"x": 127 / 32, "r1": 6.0, "a": 10.0, "s": 1.0, "cat": 10.0, "y": 10.0})[0]
    scale = np.float32(1 / 32)  # a power of two: (k + 0.5) * scale / scale is an exact tie in float32
    codes = np.arange(-96, 96, dtype=np.float32) + 0.5  # exact ties, then values off the ties
    x = np.concatenate([codes * scale, (codes + 0.25) * scale])[:192].reshape(1, 3, 8, 8).astype(np.float32)
    results = {}
    for rounding in ("even", "away"):
        emulated = build_emulator(to_proto(loaded), plan, amax, rounding=rounding)
        name = emulated.compare_names["x"]
        results[rounding] = session(with_outputs(emulated.model, [name]), quantized=True).run([name], {"x": x})[0]
    ties = (results["even"] / scale).reshape(-1)
    away = (results["away"] / scale).reshape(-1)
    assert np.allclose(ties, np.rint(codes), atol=1e-3)  # to even: ..., -2, -2, 0, 0, 2, 2, ...
    assert np.allclose(away, np.sign(codes) * np.floor(np.abs(codes) + 0.5), atol=1e-3)
    with pytest.raises(Exception, match=r"^rounding: .up. is not one of"):
        build_emulator(to_proto(loaded), plan, amax, rounding="up")


def _big_kernel_model() -> onnx.ModelProto:
    """conv1 (3x3) → big (kernel 33, over DLA's [1, 32]: dlakit check sends it to the GPU) → relu."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c1", "w2"], ["c2"], name="big", pads=[16, 16, 16, 16]),
             helper.make_node("Relu", ["c2"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 40, 40])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1"),
                               numpy_helper.from_array(rng.normal(size=(4, 4, 33, 33)).astype(np.float32), "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_layers_check_places_on_the_gpu_get_no_dla_scales():
    from dlakit.quantize.plan import off_dla_layers
    from dlakit.targets import resolve_target

    loaded = load_model(_big_kernel_model())
    table_only = build_plan(loaded.graph)
    assert "big" in table_only.int8_layers and "c2" in table_only.fused  # the op table alone would fuse it
    off = off_dla_layers(loaded, resolve_target(None, None))
    assert off == {"big"}  # the kernel breaks DLA's limit
    plan = build_plan(loaded.graph, off_dla=off)
    assert plan.gpu_layers == ["big"] and plan.int8_layers == ["conv1", "relu"] and plan.off_dla == off
    # nothing fuses into the GPU convolution: its output is a DLA input with its own scale
    assert plan.tensors == ["x", "c1", "c2", "y"] and not plan.fused and [w.node for w in plan.weights] == ["conv1"]


def test_clip_bounds_given_as_one_element_tensors():
    """SSD-MobileNetV1's ReLU6 has min/max initializers of shape [1] (numpy refuses float() of those)."""
    model = small_model()
    model.graph.initializer.extend([numpy_helper.from_array(np.array([0.0], np.float32), "lo"),
                                    numpy_helper.from_array(np.array([6.0], np.float32), "hi")])
    model.graph.node[1].CopyFrom(helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"], name="relu1"))
    plan = build_plan(load_model(model).graph)
    assert plan.bounded["r1"] == 6.0
    from dlakit.recover.equalize import find_pairs

    del model.graph.node[3:]  # conv1 → clip → conv2 only: an equalization pair across the ReLU6
    model.graph.output[0].name = "c2"
    assert [(p.first, p.kind, p.bound) for p in find_pairs(model)] == [("conv1", "clip", 6.0)]
