"""--cut-postprocess on detectors exported without NMS: the decode tail is found by structure, cut off, and kept
as a second model; head model then tail model equals the original (ONNX Runtime)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from dlakit.model import load_model
from dlakit.rewrite.fix import FixOptions, fix_model

F32 = np.float32
RNG = np.random.default_rng(3)


def _const(name, array, inits):
    inits.append(onnx.numpy_helper.from_array(np.asarray(array), name))
    return name


def yolo_like(classes: int = 2, anchors: int = 3, dfl: bool = False) -> onnx.ModelProto:
    """Stem conv, two head levels (8×8, 4×4), each: conv → Reshape 5-D → Transpose → Sigmoid → grid math →
    Reshape [1, -1, 5+classes]; the levels are concatenated (YOLOv5's Detect without NMS). With ``dfl`` a third,
    YOLOv8-style branch adds Softmax and a 1x1 constant conv inside the tail."""
    nodes, inits = [], []
    per = 5 + classes
    nodes.append(helper.make_node("Conv", ["x", _const("w0", RNG.standard_normal((8, 3, 3, 3)).astype(F32), inits)],
                                  ["f0"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], name="stem"))
    nodes.append(helper.make_node("Relu", ["f0"], ["f1"], name="act"))
    levels = []
    for level, (stride, size) in enumerate(((1, 8), (2, 4))):
        w = RNG.standard_normal((anchors * per, 8, 1, 1)).astype(F32)
        src = "f1"
        if stride == 2:
            nodes.append(helper.make_node("MaxPool", ["f1"], [f"p{level}"], kernel_shape=[2, 2], strides=[2, 2]))
            src = f"p{level}"
        nodes.append(helper.make_node("Conv", [src, _const(f"hw{level}", w, inits)], [f"h{level}"],
                                      kernel_shape=[1, 1], name=f"head{level}"))
        shape5 = _const(f"s5_{level}", np.array([1, anchors, per, size, size], np.int64), inits)
        nodes.append(helper.make_node("Reshape", [f"h{level}", shape5], [f"r{level}"]))
        nodes.append(helper.make_node("Transpose", [f"r{level}"], [f"t{level}"], perm=[0, 1, 3, 4, 2]))
        nodes.append(helper.make_node("Sigmoid", [f"t{level}"], [f"g{level}"]))
        grid = RNG.standard_normal((1, anchors, size, size, per)).astype(F32)
        nodes.append(helper.make_node("Mul", [f"g{level}", _const(f"two{level}", np.array(2.0, F32), inits)],
                                      [f"m{level}"]))
        nodes.append(helper.make_node("Add", [f"m{level}", _const(f"grid{level}", grid, inits)], [f"a{level}"]))
        flat = _const(f"s3_{level}", np.array([1, -1, per], np.int64), inits)
        nodes.append(helper.make_node("Reshape", [f"a{level}", flat], [f"o{level}"]))
        levels.append(f"o{level}")
    if dfl:
        nodes.append(helper.make_node("Conv", ["f1", _const("dw", RNG.standard_normal((16, 8, 1, 1)).astype(F32),
                                                                inits)], ["d0"], kernel_shape=[1, 1]))
        nodes.append(helper.make_node("Reshape", ["d0", _const("dflat", np.array([1, 16, 64], np.int64), inits)],
                                      ["dd"]))  # as YOLOv8: boxes leave NCHW before the DFL
        nodes.append(helper.make_node("Reshape", ["dd", _const("ds", np.array([1, 16, 1, 64], np.int64), inits)],
                                      ["d1"]))
        nodes.append(helper.make_node("Softmax", ["d1"], ["d2"], axis=1))
        arange = np.arange(16, dtype=F32).reshape(1, 16, 1, 1)
        nodes.append(helper.make_node("Conv", ["d2", _const("dflw", arange, inits)], ["d3"], kernel_shape=[1, 1]))
        nodes.append(helper.make_node("Reshape", ["d3", _const("ds2", np.array([1, 64, 1], np.int64), inits)],
                                      ["d4"]))
        nodes.append(helper.make_node("Tile", ["d4", _const("rep", np.array([1, 1, per], np.int64), inits)],
                                      ["d5"]))
        levels.append("d5")
    nodes.append(helper.make_node("Concat", levels, ["output"], axis=1, name="detect_cat"))
    graph = helper.make_graph(nodes, "yolo", [helper.make_tensor_value_info("x", 1, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("output", 1, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _run(model: onnx.ModelProto, feeds: dict) -> dict:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))


def _check_split(original: onnx.ModelProto) -> tuple:
    result = fix_model(load_model(original), FixOptions(cut_postprocess=True, rules=[]))
    assert result.cut is not None and result.cut.tail is not None
    head = result.proto()
    x = RNG.standard_normal((1, 3, 16, 16)).astype(F32)
    want = _run(original, {"x": x})
    middle = _run(head, {"x": x})
    got = _run(result.cut.tail, {name: middle[name] for name in [i.name for i in result.cut.tail.graph.input]})
    np.testing.assert_allclose(got["output"], want["output"], rtol=1e-5, atol=1e-5)
    return result, head


def test_yolo_decode_tail_is_cut_at_the_head_convs_and_kept_as_a_model():
    result, head = _check_split(yolo_like())
    assert sorted(result.cut.outputs) == ["h0", "h1"]
    assert {n.op_type for n in head.graph.node} == {"Conv", "Relu", "MaxPool"}
    assert result.cut.dropped_outputs == ["output"] and "decode tail" in result.cut.reason
    onnx.checker.check_model(result.cut.tail)


def test_yolov8_style_dfl_branch_goes_with_the_tail():
    result, head = _check_split(yolo_like(dfl=True))
    assert sorted(result.cut.outputs) == ["d0", "h0", "h1"]
    assert "Softmax" not in {n.op_type for n in head.graph.node}


def test_classifier_and_unet_are_not_cut():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Flatten", ["c"], ["f"]), helper.make_node("Softmax", ["f"], ["y"])]
    graph = helper.make_graph(nodes, "cls", [helper.make_tensor_value_info("x", 1, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", 1, None)],
                              [onnx.numpy_helper.from_array(np.ones((2, 3, 1, 1), F32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = fix_model(load_model(model), FixOptions(cut_postprocess=True, rules=[]))
    assert result.cut is None


def test_cli_writes_the_postprocess_model_next_to_the_output(tmp_path, capsys):
    from dlakit.cli import main

    source, out = tmp_path / "yolo.onnx", tmp_path / "fixed.onnx"
    onnx.save(yolo_like(), source)
    try:
        main(["fix", str(source), "-o", str(out), "--cut-postprocess", "--format", "json"])
    except SystemExit as exit_info:
        assert exit_info.code in (0, None), capsys.readouterr().err
    import json

    data = json.loads(capsys.readouterr().out)
    tail = tmp_path / "fixed_postprocess.onnx"
    assert data["cut"]["postprocess_model"] == str(tail) and tail.exists() and out.exists()
    x = RNG.standard_normal((1, 3, 16, 16)).astype(F32)
    middle = _run(onnx.load(out), {"x": x})
    tail_model = onnx.load(tail)
    got = _run(tail_model, {i.name: middle[i.name] for i in tail_model.graph.input})
    np.testing.assert_allclose(got["output"], _run(onnx.load(source), {"x": x})["output"], rtol=1e-4, atol=1e-4)
