"""Eligibility with reasons, pruning a model, the round trip through check, and the gain hook (with a stub)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from dlakit.check import check_model
from dlakit.errors import DlakitError
from dlakit.model import load_model
from dlakit.sparsity import (
    GainEstimate,
    LayerGain,
    has_2to4,
    prune,
    sparse_nodes,
    sparsify_model,
    sparsity_column,
    sparsity_info,
)
from dlakit.targets import resolve_target
from tests.graphs import conv_model, make_model, tensor
from tests.test_sparsity_support import ELIGIBLE, chain_model, constant_of_shape_model, shared_weight_model


def infos(model: onnx.ModelProto, platform=None, precision="int8"):
    report = check_model(load_model(model), resolve_target(platform, None), precision)
    return {i.name: i for i in sparsity_info(report)}, report


def run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def weights_of(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            out[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return out


# --- eligibility -------------------------------------------------------------------------------------------

def test_eligible_layers_on_orin_int8():
    found, _ = infos(chain_model())
    assert [n for n, i in found.items() if i.eligible] == list(ELIGIBLE)
    for name in ELIGIBLE:
        assert found[name].reason is None and found[name].weight == f"{name}.weight"
        assert found[name].has_2to4_pattern is False and found[name].density == 1.0


@pytest.mark.parametrize("name, fragment", [("conv0", "C = 3 input channels ≤ 64"),
                                            ("conv4", "C = 64 input channels ≤ 64"),
                                            ("conv2", "depthwise convolution (group = 128")])
def test_ineligible_layers_say_why(name, fragment):
    found, _ = infos(chain_model())
    assert not found[name].eligible and fragment in found[name].reason


def test_xavier_has_no_sparsity():
    found, _ = infos(chain_model(), platform="agx-xavier")
    assert not any(i.eligible for i in found.values())
    assert "structured sparsity is Orin only" in found["conv1"].reason
    assert "Orin only" in found["conv0"].reason and "C = 3" in found["conv0"].reason  # every reason, not the first


def test_fp16_is_not_eligible():
    found, _ = infos(chain_model(), precision="fp16")
    assert "FP16 build" in found["conv1"].reason and not found["conv1"].eligible


def test_grouped_convolution_is_not_eligible():
    found, _ = infos(conv_model(c=256, k=256, group=2))
    assert "grouped convolution (group = 2, C = 128 per group)" in found["conv"].reason


def test_runtime_weights_are_not_eligible():
    from onnx import helper
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[1, 1])
    model = make_model([node], [tensor("x", [1, 128, 8, 8]), tensor("w", [128, 128, 1, 1])], [tensor("y", None)])
    found, _ = infos(model)
    assert "run-time tensor" in found["conv"].reason


def test_build_time_weights_are_eligible_but_not_prunable():
    found, report = infos(constant_of_shape_model())
    info = found["conv"]
    assert info.eligible and info.weight is None and "ConstantOfShape" in info.not_prunable
    result = sparsify_model(constant_of_shape_model(), report)
    assert result.layers[0].action == "skipped" and "cannot prune" in result.layers[0].reason


def test_sparsity_column_is_json_ready():
    import json
    _, report = infos(chain_model())
    column = sparsity_column(report)
    assert set(column) == set(CHAIN_NAMES)
    assert set(column["conv1"]) == {"eligible", "reason", "rules", "has_2to4_pattern", "density", "in_channels",
                                    "groups", "prunable", "not_prunable"}
    assert column["conv2"]["rules"] == ["depthwise"] and column["conv0"]["rules"] == ["channels"]
    json.dumps(column)


CHAIN_NAMES = ("conv0", "conv1", "conv2", "conv3", "conv4")


# --- pruning and the round trip through check ----------------------------------------------------------------

@pytest.mark.parametrize("weight_kind", ["initializer", "constant"])
@pytest.mark.parametrize("mode", ["magnitude", "force"])
def test_round_trip_through_check(weight_kind, mode):
    proto = chain_model(weight_kind=weight_kind)
    original = proto.SerializeToString()
    loaded = load_model(proto)
    report = check_model(loaded, resolve_target(None, None))
    result = sparsify_model(proto, report, mode)
    assert proto.SerializeToString() == original  # the input is never modified
    assert [x.name for x in result.pruned] == list(ELIGIBLE)
    # check on the written model: exactly the pruned layers hold the pattern
    again = check_model(load_model(result.model), resolve_target(None, None))
    assert sparse_nodes(again) == set(ELIGIBLE)
    column = sparsity_column(again)
    assert column["conv1"]["has_2to4_pattern"] and column["conv1"]["density"] == pytest.approx(0.5)
    # only the pruned tensors changed, to exactly prune(w)
    before, after = weights_of(proto), weights_of(result.model)
    for name, array in before.items():
        layer = name.split(".")[0]
        expected = prune(array, mode) if layer in ELIGIBLE else array
        np.testing.assert_array_equal(after[name], expected)
    # and the model computes what a convolution with those weights computes
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    assert run(result.model, x).shape == run(proto, x).shape
    # sparsifying again changes nothing (magnitude) and says so
    result2 = sparsify_model(result.model, again, mode)
    assert all(x.action == "already 2:4" for x in result2.layers if x.info.eligible)
    assert result2.model.SerializeToString() == result.model.SerializeToString()


def test_energy_kept_and_summary():
    proto = chain_model()
    loaded = load_model(proto)
    result = sparsify_model(proto, check_model(loaded, resolve_target(None, None)))
    w = numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == "conv1.weight"))
    layer = next(x for x in result.layers if x.name == "conv1")
    assert layer.energy_kept == pytest.approx(float((prune(w) ** 2).sum() / (w ** 2).sum()))
    summary = result.summary()
    assert summary["pruned"] == 2 and summary["skipped"] == 3 and summary["eligible"] == 2
    assert summary["weights_zeroed"] == w.size // 2 + 64 * 128 * 9 // 2
    assert 0.5 < summary["energy_kept"] < 1.0


def test_layers_selection_and_unknown_names():
    proto = chain_model()
    loaded = load_model(proto)
    report = check_model(loaded, resolve_target(None, None))
    result = sparsify_model(proto, report, layers=["conv3", "conv0"])
    actions = {x.name: (x.action, x.reason) for x in result.layers}
    assert actions["conv3"][0] == "pruned"
    assert actions["conv1"] == ("skipped", "not selected (--layers)")
    assert actions["conv0"][0] == "skipped" and "C = 3" in actions["conv0"][1]  # selected but refused, with why
    with pytest.raises(DlakitError, match="conv9 is not a convolution of this model"):
        sparsify_model(proto, report, layers=["conv9"])


def test_shared_weights():
    proto = shared_weight_model()
    loaded = load_model(proto)
    report = check_model(loaded, resolve_target(None, None))
    both = sparsify_model(proto, report)
    assert [x.action for x in both.layers] == ["pruned", "pruned"]
    assert has_2to4(numpy_helper.to_array(both.model.graph.initializer[0]))
    one = sparsify_model(proto, report, layers=["conv_a"])
    assert one.layers[0].action == "skipped" and "shared with conv_b" in one.layers[0].reason
    assert one.model.SerializeToString() == proto.SerializeToString()


def test_min_gain_uses_the_gain_model():
    proto = chain_model()
    loaded = load_model(proto)
    report = check_model(loaded, resolve_target(None, None))
    stub = GainEstimate("15W", 1.0, {"conv1": LayerGain("conv1", 100.0, 95.0, "memory"),
                                     "conv3": LayerGain("conv3", 100.0, 60.0, "compute")})
    result = sparsify_model(proto, report, min_gain=1.1, gains=stub)
    layers = {x.name: x for x in result.layers}
    assert layers["conv3"].action == "pruned" and layers["conv3"].speedup == pytest.approx(100 / 60)
    assert layers["conv1"].action == "skipped" and "< --min-gain 1.1, memory-bound" in layers["conv1"].reason
    summary = result.summary()
    assert summary["sparse_latency_ms"] == pytest.approx(1.0 - 0.040)
    with pytest.raises(DlakitError, match="needs the performance model"):
        sparsify_model(proto, report, min_gain=1.1)


def test_perf_model_gains_on_orin():
    pytest.importorskip("dlakit.perf")
    from dlakit.sparsity import perf_gains
    proto = chain_model(hw=64)
    loaded = load_model(proto)
    report = check_model(loaded, resolve_target(None, None))
    gains = perf_gains(loaded, report, "15W")
    assert {"conv1", "conv3"} <= set(gains.layers)
    assert all(g.speedup >= 1.0 for g in gains.layers.values())
    assert gains.latency_with(ELIGIBLE) <= gains.dense_latency_ms
