"""Per-release DLA layer support, each release from its own evidence (shared/facts/trt_headers_dla.md, logs).

Every test builds the layer as a tiny ONNX model and asserts the verdict and the rule per release."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tests.graphs import binary_model, const, conv_model, make_model, place, rules_of, tensor, unary_model

JETSON_10_3 = "jetpack-6.2"
DRIVE_8_6_12 = "drive-os-6.0.9"


def _platform(release: str) -> str | None:
    if release.startswith("drive"):
        return "drive-orin"
    if release.startswith("jetpack-4"):
        return "agx-xavier"
    return None


def _place(model, release, node=None, **kw):
    return place(model, node=node, platform=_platform(release), release=release, **kw)[0]


def _compare(op):
    nodes = [helper.make_node(op, ["a", "b"], ["c"], name="cmp"),
             helper.make_node("Cast", ["c"], ["y"], name="cast", to=10)]
    return make_model(nodes, [tensor("a", [1, 4, 8, 8]), tensor("b", [1, 4, 8, 8])], [tensor("y", None)])


# TensorRT 10.3 (JetPack 6.2): the header says ElementWise "only kSUM, kPROD, kMAX, kMIN, and kSUB", Unary kABS only;
# the SAM2 build on Orin NX (10.3.0.30) refused every Div and Pow. The DRIVE OS 8.6.12 set is DRIVE-only evidence.
@pytest.mark.parametrize(("model", "rule"), [
    (binary_model("Div"), "eltwise.op"),
    (binary_model("Pow"), "eltwise.op"),
    (unary_model("Sin"), "unary.op"),
    (unary_model("Cos"), "unary.op"),
    (unary_model("Atanh"), "unary.op"),
    (unary_model("ReduceMax", axes=[2, 3], keepdims=1), "reduce.op"),
])
def test_jetpack_6_2_lacks_the_drive_8_6_12_set(model, rule):
    jetson = _place(model, JETSON_10_3)
    assert jetson.placement in ("gpu", "fixable") and rule in rules_of(jetson), jetson.reasons
    assert "TensorRT 10.3.0" in next(r for r in jetson.reasons if r.rule == rule).message
    drive = _place(model, DRIVE_8_6_12, precision="fp16")
    assert drive.placement == "dla", drive.reasons


@pytest.mark.parametrize("op", ["Greater", "Less"])
def test_greater_less_only_on_drive(op):
    jetson = _place(_compare(op), JETSON_10_3, node="cmp")
    assert jetson.placement == "gpu" and rules_of(jetson) == {"comparison.op"}
    assert _place(_compare(op), DRIVE_8_6_12, node="cmp").placement == "dla"
    assert _place(_compare("Equal"), JETSON_10_3, node="cmp").placement == "dla"


@pytest.mark.parametrize(("release", "verdict"), [
    ("jetpack-4.6", "gpu"), ("jetpack-4.6.1", "dla"), ("jetpack-5.1.1", "dla"), ("jetpack-6.2", "dla"),
])
def test_sub_between_tensors_from_8_2(release, verdict):
    """kSUB first appears in the 8.2.1 header; 8.0.1 lists kSUM, kPROD, kMAX, kMIN only."""
    node = _place(binary_model("Sub"), release)
    assert node.placement == verdict
    assert verdict == "dla" or rules_of(node) == {"eltwise.op"}


def _slice():
    node = helper.make_node("Slice", ["x", "s", "e", "a"], ["y"], name="slice")
    return make_model([node], [tensor("x", [1, 8, 16, 16])], [tensor("y", None)],
                      [const("s", np.array([2])), const("e", np.array([6])), const("a", np.array([1]))])


@pytest.mark.parametrize(("release", "verdict"), [("jetpack-4.6", "gpu"), ("jetpack-4.6.1", "gpu"),
                                                  ("jetpack-5.0.2", "dla"), ("jetpack-5.1.1", "dla")])
def test_slice_from_8_4_1(release, verdict):
    """No DLA Slice before the 8.4.1 header; TensorRT 7.1.3 on Xavier: '[Slice] is not supported on DLA'."""
    node = _place(_slice(), release, precision="fp16")
    assert node.placement == verdict, node.reasons
    assert verdict == "dla" or rules_of(node) == {"slice.release"}


@pytest.mark.parametrize(("release", "verdict"), [("jetpack-4.6", "gpu"), ("jetpack-4.6.1", "gpu"),
                                                  ("jetpack-5.0.2", "dla"), ("jetpack-6.2", "dla")])
def test_leaky_relu_only_where_evidenced(release, verdict):
    """Leaky ReLU: the 8.4+ guide lists it; TensorRT 7.1.3 refused LEAKY_RELU; 8.0/8.2 have no evidence."""
    node = _place(unary_model("LeakyRelu", alpha=0.1), release)
    assert node.placement == verdict
    if verdict == "gpu":
        assert rules_of(node) == {"activation.type"}
        assert "LEAKY_RELU" in node.reasons[0].message and not node.reasons[0].fix


def _resize(mode, transform):
    node = helper.make_node("Resize", ["x", "", "sc"], ["y"], name="resize", mode=mode,
                            coordinate_transformation_mode=transform, nearest_mode="floor")
    return make_model([node], [tensor("x", [1, 4, 8, 8])], [tensor("y", None)],
                      [const("sc", np.array([1, 1, 2, 2], np.float32))])


def test_resize_modes_per_release():
    """8.2.1 header: nearest asymmetric only; 8.4.1 adds linear (half-pixel); 8.0.1 has no DLA Resize note."""
    linear = _resize("linear", "half_pixel")
    assert _place(linear, "jetpack-4.6.1").placement == "gpu"
    assert rules_of(_place(linear, "jetpack-4.6.1")) == {"resize.mode"}
    assert _place(linear, "jetpack-5.0.2").placement == "dla"
    nearest = _resize("nearest", "asymmetric")
    assert _place(nearest, "jetpack-4.6.1").placement == "dla"
    assert _place(nearest, "jetpack-4.6").placement == "gpu"


def test_new_releases_resolve_with_their_evidence():
    from dlakit.targets import load_catalog, resolve_target

    catalog = load_catalog()
    for key in ("jetpack-4.6", "jetpack-4.6.1", "drive-os-7.0.3", "drive-os-10.15", "jetpack-7.2.2"):
        release = catalog.releases[key]
        assert release.evidence and release.confidence == "low"
    assert catalog.releases["jetpack-7.2.2"].elementwise_ops == frozenset({"SUM", "SUB", "PROD", "MAX", "MIN"})
    assert catalog.releases["jetpack-6.2"].slice_modes == frozenset({"DEFAULT"})
    assert resolve_target("xavier-nx", "jp4.6.1").release.tensorrt == "8.2.1"
    assert resolve_target("drive-orin", "drive-7.0.3").release.tensorrt == "10.10.10"


def _by_constant(op, value, shape=(), first=False):
    inputs = ["c", "x"] if first else ["x", "c"]
    return make_model([helper.make_node(op, inputs, ["y"], name="node")], [tensor("x", [1, 8, 16, 16])],
                      [tensor("y", None)], [const("c", np.full(shape, value, np.float32))])


# Div by a constant is not a Scale: "DLA cores do not support DIV ElementWise operation. Layer '/model.22/Div'
# (ELEMENTWISE): Unsupported on DLA" (TensorRT 8.6, ultralytics PR 16449); the same on 8.5.2 and 10.3.0.
@pytest.mark.parametrize(("release", "verdict"), [("jetpack-5.1.1", "gpu"), ("jetpack-6.0", "gpu"),
                                                  ("jetpack-6.2", "gpu"), ("drive-os-6.0.9", "dla")])
@pytest.mark.parametrize(("op", "value", "first"), [("Div", 2.0, False), ("Div", 2.0, True), ("Pow", 2.0, False)])
def test_div_and_pow_by_a_constant_meet_the_elementwise_list(op, value, first, release, verdict):
    node = _place(_by_constant(op, value, first=first), release)
    assert node.layer == "elementwise"
    # x / c is fixable (div-to-mul: a Mul by 1/c); c / x and x ** c are not
    expected = "fixable" if verdict == "gpu" and op == "Div" and not first else verdict
    assert node.placement == expected, node.reasons
    if verdict == "gpu":
        assert rules_of(node) == {"eltwise.op"}
        assert "with a constant operand" in node.reasons[0].message
        assert node.reasons[0].fix == ("div-to-mul" if expected == "fixable" else "")


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
@pytest.mark.parametrize("shape", [(), (1, 8, 1, 1)])
def test_add_sub_mul_by_a_constant_are_scale_layers(op, shape):
    for release in ("jetpack-4.6.1", "jetpack-5.1.1", "jetpack-6.2"):
        node = _place(_by_constant(op, 0.5, shape), release)
        assert node.layer == "scale" and node.placement == "dla", (release, node.reasons)


def test_max_with_a_constant_stays_elementwise():
    node = _place(_by_constant("Max", 0.0, (1, 8, 1, 1)), JETSON_10_3)
    assert node.layer == "elementwise" and node.placement == "dla"


@pytest.mark.parametrize(("op", "out", "verdict"), [("Flatten", None, "gpu"), ("Reshape", [1, 2048], "gpu"),
                                                    ("Reshape", [1, 64, 32], "gpu"), ("Reshape", [1, 64, 4, 8], "dla")])
@pytest.mark.parametrize("release", ["jetpack-5.1.1", "jetpack-6.2"])
def test_shuffle_output_must_be_4d(op, out, verdict, release):
    """TensorRT 10.3, ResNet-50's head: "Layer '/Flatten' (SHUFFLE): Unsupported on DLA. Switching this layer's
    device type to GPU." The 4-D rule applies to a layer's outputs too."""
    if op == "Flatten":
        nodes, inits = [helper.make_node("Flatten", ["x"], ["y"], name="flat", axis=1)], []
    else:
        nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="flat")]
        inits = [const("shape", np.array(out))]
    model = make_model(nodes, [tensor("x", [1, 2048, 1, 1])], [tensor("y", None)], inits)
    node = _place(model, release)
    assert node.placement == verdict, node.reasons
    if verdict == "gpu":
        assert rules_of(node) == {"general.rank"} and not node.reasons[0].fix
        assert "output" in node.reasons[0].message


def _issue_3499():
    """TensorRT issue 3499 (8.5.2.2, Orin): Conv 512->256, 3x3, pad 1 on 1x512x80x160 failed to build with
    --int8 --fp16 --useDLACore=0; the guide's CBUF formula gives 9/16 banks in INT8 and exactly 16/16 in FP16."""
    return conv_model(c=512, k=256, hw=(80, 160), kernel=(3, 3), pads=[1, 1, 1, 1])


@pytest.mark.parametrize("release", ["jetpack-5.1.1", "jetpack-6.2"])
def test_cbuf_issue_3499_is_not_a_plain_dla(release):
    fp16 = _place(_issue_3499(), release, precision="fp16")
    assert fp16.placement == "gpu" and rules_of(fp16) == {"conv.cbuf"}
    assert fp16.reasons[0].value == 16 and "exactly fills" in fp16.reasons[0].message
    int8 = _place(_issue_3499(), release, precision="int8")
    assert int8.placement == "dla"  # the formula passes it in INT8 ...
    risk = next(n for n in int8.notes if n.rule == "conv.cbuf-margin")  # ... but it is reported as a risk
    assert risk.value == {"int8": 9, "fp16": 16} and "3499" in risk.message and not risk.blocking


@pytest.mark.parametrize(("width", "note"), [(250, False), (280, True)])
def test_cbuf_margin_note_near_the_limit(width, note):
    # FP16, 256 channels, 3x3: 1 weight bank + ceil(ceil(16 * width / 4) * 3 / 256) data banks (13 / 15 of 16)
    node = _place(conv_model(c=256, k=16, hw=(8, width), kernel=(3, 3), pads=[1, 1, 1, 1]), JETSON_10_3,
                  precision="fp16")
    assert node.placement == "dla"
    assert any(n.rule == "conv.cbuf-margin" for n in node.notes) == note


def _trt(node):
    return node.reasons[0].trt_message


def test_trt_message_div_by_a_constant_as_in_the_yolov8_log():
    """JetPack 6.0 / TensorRT 8.6 (ultralytics PR 16449): "DLA cores do not support DIV ElementWise operation.
    Layer '/model.22/Div' (ELEMENTWISE): Unsupported on DLA." """
    model = _by_constant("Div", 2.0)
    model.graph.node[0].name = "/model.22/Div"
    node = _place(model, "jetpack-6.0")
    assert _trt(node) == ("DLA cores do not support DIV ElementWise operation. Layer '/model.22/Div' (ELEMENTWISE): "
                          "Unsupported on DLA. Switching this layer's device type to GPU.")
    assert node.reasons[0].as_dict()["trt_message"] == _trt(node)


def test_trt_message_flatten_and_legacy_wording():
    model = make_model([helper.make_node("Flatten", ["x"], ["y"], name="/Flatten", axis=1)],
                       [tensor("x", [1, 2048, 1, 1])], [tensor("y", None)])
    node = _place(model, JETSON_10_3)
    assert _trt(node) == "Layer '/Flatten' (SHUFFLE): Unsupported on DLA. Switching this layer's device type to GPU."
    old = _place(_slice(), "jetpack-4.6.1", precision="fp16")  # TensorRT 7.1-8.2 logs use the older wording
    assert _trt(old) == "Default DLA is enabled but layer slice is not supported on DLA, falling back to GPU."


@pytest.mark.parametrize(("model", "expected"), [
    (unary_model("Sin"), "Unary operation: SIN is not supported on DLA. Layer 'node' (UNARY): Unsupported on DLA."),
    (unary_model("Relu", shape=("N", 8, 4, 4)),
     "DLA Layer node does not support dynamic shapes in any dimension. Layer 'node' (ACTIVATION): Unsupported"),
])
def test_trt_message_per_rule(model, expected):
    from dlakit.check import check_model
    from dlakit.model import load_model
    from dlakit.targets import resolve_target

    report = check_model(load_model(model, allow_dynamic=True), resolve_target(None, JETSON_10_3))
    node = next(n for n in report.nodes if n.name == "node")
    assert _trt(node).startswith(expected)


def test_trt_message_loadable_limit_and_notes():
    ops = []
    for i in range(18):
        ops += [helper.make_node("Relu", [f"t{i}"], [f"r{i}"], name=f"relu{i}"),
                helper.make_node("Elu", [f"r{i}"], [f"t{i + 1}"], name=f"elu{i}")]
    model = make_model(ops, [tensor("t0", [1, 4, 8, 8])], [tensor("t18", None)])
    _, report = place(model)
    switched = next(n for n in report.nodes if n.reasons and n.reasons[0].rule == "general.loadable-limit")
    assert _trt(switched) == f"DLA supports only 16 subgraphs per DLA core. Switching to GPU for layer {switched.name}"
    sigmoid, _ = place(unary_model("Sigmoid"))
    assert sigmoid.notes and sigmoid.notes[0].trt_message is None  # a note: TensorRT prints nothing for it
