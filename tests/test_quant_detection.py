"""`dlakit eval --coco`: COCO AP of a tiny synthetic detector whose boxes are exact (or not) for the ground truth."""

from __future__ import annotations

import json
import sys
from importlib.util import find_spec

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from dlakit.errors import DlakitError
from dlakit.quantize.cache import CalibrationCache, write_cache
from dlakit.quantize.data import PRESETS
from dlakit.quantize.detection import evaluate_detection
from tests.cli import run

needs_coco = pytest.mark.skipif(find_spec("pycocotools") is None, reason="pycocotools not installed")
SIZE = 32  # model input is SIZE x SIZE
IMAGES = {"a.png": (64, 48), "b.png": (40, 80), "c.png": (100, 60)}  # width, height: each its own scale
# boxes relative to the image, (x1, y1, x2, y2), and their COCO category ids (non-contiguous on purpose)
BOXES = np.array([[0.25, 0.25, 0.75, 0.75], [0.125, 0.5, 0.5, 0.875]])
CATEGORIES = [1, 3]


def detector(boxes: np.ndarray, classes: list[float], layout: str = "three", count: int | None = None,
             unit: float = SIZE) -> onnx.ModelProto:
    """A Conv feeding constant detections (in input pixels): the same relative boxes in every image."""
    k = len(boxes)
    init = [numpy_helper.from_array(np.full((1, 3, 1, 1), 1 / 3, np.float32), "w"),
            numpy_helper.from_array(np.zeros((), np.float32), "zero"),
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3"),
            numpy_helper.from_array(np.array([-1, 1], np.int64), "shape2")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["feat"], name="conv"),
             helper.make_node("ReduceMean", ["feat"], ["m"], name="mean", axes=[1, 2, 3], keepdims=1),
             helper.make_node("Mul", ["m", "zero"], ["z"], name="mul"),
             helper.make_node("Reshape", ["z", "shape3"], ["z3"], name="r3"),
             helper.make_node("Reshape", ["z", "shape2"], ["z2"], name="r2")]
    scores = np.linspace(0.9, 0.8, k, dtype=np.float32)
    outputs = []
    if layout == "three":
        consts = {"boxes": (boxes * unit)[None].astype(np.float32), "scores": scores[None],
                  "classes": np.array(classes, np.float32)[None]}
        for name, value in consts.items():
            if name == "boxes":  # a DLA box head: zero-weight conv whose bias is the boxes, reshaped to [N,K,4]
                init += [numpy_helper.from_array(np.zeros((4 * k, 3, SIZE, SIZE), np.float32), "boxes_w"),
                         numpy_helper.from_array(value.reshape(-1), "boxes_b"),
                         numpy_helper.from_array(np.array([-1, k, 4], np.int64), "boxes_shape")]
                nodes += [helper.make_node("Conv", ["x", "boxes_w", "boxes_b"], ["boxes4"], name="box_head"),
                          helper.make_node("Reshape", ["boxes4", "boxes_shape"], ["boxes"], name="box_reshape")]
            else:
                init.append(numpy_helper.from_array(value, f"{name}_c"))
                nodes.append(helper.make_node("Add", ["z2", f"{name}_c"], [name], name=f"add_{name}"))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, *value.shape[1:]]))
        if count is not None:
            init.append(numpy_helper.from_array(np.array([[count]], np.float32), "count_c"))
            nodes.append(helper.make_node("Add", ["z2", "count_c"], ["num_dets"], name="add_count"))
            outputs.append(helper.make_tensor_value_info("num_dets", TensorProto.FLOAT, [2, 1]))
    else:
        columns = [boxes * SIZE, scores[:, None], np.array(classes)[:, None]]
        if layout == "seven":
            columns.insert(0, np.zeros((k, 1)))
        dets = np.concatenate(columns, axis=1)[None].astype(np.float32)
        init.append(numpy_helper.from_array(dets, "dets_c"))
        nodes.append(helper.make_node("Add", ["z3", "dets_c"], ["dets"], name="add_dets"))
        outputs.append(helper.make_tensor_value_info("dets", TensorProto.FLOAT, [2, k, dets.shape[2]]))
    graph = helper.make_graph(nodes, "detector", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                               [2, 3, SIZE, SIZE])], outputs, init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture
def dataset(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    coco: dict = {"images": [], "annotations": [],
                  "categories": [{"id": c, "name": f"c{c}"} for c in CATEGORIES]}
    rng = np.random.default_rng(0)
    for number, (name, (width, height)) in enumerate(IMAGES.items(), start=1):
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(images / name)
        coco["images"].append({"id": number, "file_name": f"val/{name}", "width": width, "height": height})
        for (x1, y1, x2, y2), category in zip(BOXES, CATEGORIES, strict=True):
            coco["annotations"].append({"image_id": number, "category_id": category,
                                        "bbox": [x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height]})
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    model = tmp_path / "det.onnx"
    onnx.save(detector(BOXES, CATEGORIES), model)
    return model, images, tmp_path / "instances.json", tmp_path


def eval_json(*args: str) -> dict:
    result = run("eval", *args, "--preset", "unit", "--no-progress", "-f", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_coco
def test_exact_detector_scores_ap_one_with_boxes_scaled_back(dataset):
    model, images, coco, _ = dataset
    out = eval_json(str(model), "--data", str(images), "--coco", str(coco))
    detection = out["detection"]
    assert detection["fp32"] == {"ap": 1.0, "ap50": 1.0, "ap75": 1.0}
    assert detection["images"] == 3 and detection["annotations"] == 6 and detection["detections"] == {"fp32": 6}
    assert detection["outputs"] == ["boxes", "scores", "classes"] and "int8_emulated" not in detection


@needs_coco
@pytest.mark.parametrize("layout", ["six", "seven"])
def test_single_detection_tensor_and_class_indices(dataset, tmp_path, layout):
    _, images, coco, _ = dataset
    model = tmp_path / f"{layout}.onnx"
    onnx.save(detector(BOXES, [0, 1], layout), model)  # indices into the sorted category ids [1, 3]
    out = eval_json(str(model), "--data", str(images), "--coco", str(coco), "--class-ids", "index")
    assert out["detection"]["fp32"]["ap"] == 1.0 and out["detection"]["outputs"] == ["dets"]
    # read as category ids, index 0 is no category and index 1 the wrong one: nothing matches
    out = eval_json(str(model), "--data", str(images), "--coco", str(coco), "--detections", "dets")
    assert out["detection"]["fp32"]["ap"] == 0.0


@needs_coco
def test_perturbed_detector_loses_ap75_not_ap50_and_count_drops_detections(dataset, tmp_path):
    _, images, coco, _ = dataset
    shifted = BOXES.copy()
    shifted[0, [0, 2]] += 4 / SIZE  # 4 input pixels right: IoU 0.6
    model = tmp_path / "shifted.onnx"
    onnx.save(detector(shifted, CATEGORIES), model)
    ap = eval_json(str(model), "--data", str(images), "--coco", str(coco))["detection"]["fp32"]
    assert ap["ap50"] == 1.0 and ap["ap75"] == 0.5 and ap["ap"] < 0.8
    counted = tmp_path / "counted.onnx"
    onnx.save(detector(BOXES, CATEGORIES, count=1), counted)  # only the first (category 1) detection is valid
    out = eval_json(str(counted), "--data", str(images), "--coco", str(coco))["detection"]
    assert out["outputs"] == ["boxes", "scores", "classes", "num_dets"]  # guessed from the names
    assert out["fp32"]["ap"] == 0.5 and out["detections"] == {"fp32": 3}


@needs_coco
def test_tensorflow_style_normalized_yxyx_boxes(dataset, tmp_path):
    _, images, coco, _ = dataset
    model = tmp_path / "tf.onnx"
    onnx.save(detector(BOXES[:, [1, 0, 3, 2]], CATEGORIES, unit=1.0), model)  # normalized y1, x1, y2, x2
    ap = eval_json(str(model), "--data", str(images), "--coco", str(coco), "--box-format", "yxyx-normalized")
    assert ap["detection"]["fp32"]["ap"] == 1.0 and ap["detection"]["box_format"] == "yxyx-normalized"
    # read as pixels in xyxy the same numbers are boxes of a pixel or two: nothing matches
    assert eval_json(str(model), "--data", str(images), "--coco", str(coco))["detection"]["fp32"]["ap"] == 0.0


@needs_coco
def test_int8_column_side_by_side_with_a_cache_and_table(dataset):
    model, images, coco, tmp = dataset
    cache = tmp / "det.cache"
    write_cache(cache, CalibrationCache.from_amax({"x": 1.0, "feat": 1.0}, 8600))
    out = eval_json(str(model), "--data", str(images), "--coco", str(coco), "--calib-cache", str(cache))
    detection = out["detection"]
    assert set(detection["int8_emulated"]) == {"ap", "ap50", "ap75"}
    assert 0.9 <= detection["int8_emulated"]["ap50"] <= 1.0 and detection["detections"]["int8_emulated"] == 6
    # a coarse INT8 scale on the DLA box head's output (step 8 input pixels) moves the small box: the INT8 column
    # shows it (the rank-3 Adds of scores and classes run on the GPU, as dlakit check places them, and stay float)
    write_cache(cache, CalibrationCache.from_amax({"x": 1.0, "feat": 1.0, "boxes4": 127 * 8.0}, 8600))
    detection = eval_json(str(model), "--data", str(images), "--coco", str(coco), "--calib-cache",
                          str(cache))["detection"]
    assert detection["fp32"]["ap75"] == 1.0 and detection["int8_emulated"] == {"ap": 0.6, "ap50": 1.0, "ap75": 0.5}
    table = run("eval", str(model), "--data", str(images), "--coco", str(coco), "--calib-cache", str(cache),
                "--preset", "unit", "--no-progress")
    assert table.returncode == 0 and "int8_emulated" in table.stdout and "AP75" in table.stdout


@needs_coco
@pytest.mark.parametrize("case", ["no-file", "not-coco", "stray-image", "no-output", "ambiguous", "labels",
                                  "class-ids", "box-format"])
def test_bad_inputs_are_one_line_errors(dataset, tmp_path, case):
    model, images, coco, _ = dataset
    args = ["eval", str(model), "--data", str(images), "--coco", str(coco), "--no-progress"]
    expected = {"no-file": "annotation file not found", "not-coco": "not COCO instances JSON",
                "stray-image": "extra.png: image not listed", "no-output": "no output nope",
                "ambiguous": "--detections", "labels": "--labels", "class-ids": "--class-ids",
                "box-format": "--box-format"}[case]
    if case == "no-file":
        args[5] = str(tmp_path / "missing.json")
    elif case == "not-coco":
        (tmp_path / "list.json").write_text("[]")
        args[5] = str(tmp_path / "list.json")
    elif case == "stray-image":
        Image.new("RGB", (8, 8)).save(images / "extra.png")
    elif case == "no-output":
        args += ["--detections", "nope,scores,classes"]
    elif case == "ambiguous":
        bad = detector(BOXES, CATEGORIES)
        for output, name in zip(bad.graph.output, ("o1", "o2", "o3"), strict=True):
            for node in bad.graph.node:
                node.output[:] = [name if o == output.name else o for o in node.output]
            output.name = name
        onnx.save(bad, tmp_path / "anon.onnx")
        args[1] = str(tmp_path / "anon.onnx")
    elif case == "labels":
        args += ["--labels", str(coco)]
    elif case == "class-ids":
        args += ["--class-ids", "name"]
    else:
        args += ["--box-format", "cxcywh"]
    result = run(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr


def test_missing_pycocotools_says_how_to_install(dataset, monkeypatch):
    model, images, coco, _ = dataset
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    with pytest.raises(DlakitError, match="pip install pycocotools"):
        evaluate_detection(onnx.load(model), None, images, coco, "x", (3, SIZE, SIZE), PRESETS["unit"], 2)
