"""COCO-style detection mAP (AP, AP50, AP75) over an image folder, FP32 and emulated DLA INT8 side by side.

The AP itself is computed by pycocotools' ``COCOeval`` (the reference implementation; a home-made AP drifts from the
published numbers in its interpolation and crowd handling), imported only here so that classification-only users do
not need it.

The model must already output post-processed detections, in one of two layouts:

* three outputs ``boxes [N,K,4]`` (x1, y1, x2, y2), ``scores [N,K]``, ``classes [N,K]``, optionally a fourth
  ``count [N]`` / ``[N,1]`` (valid detections per image, as TensorRT's EfficientNMS gives);
* one output ``[N,K,6]`` (x1, y1, x2, y2, score, class) or ``[N,K,7]`` (a leading column, e.g. the batch index,
  ignored, then the same six).

Boxes are in pixels of the model input, x1, y1, x2, y2 (``box_format`` also takes ``yxyx`` and the
``-normalized`` variants in [0, 1], as TensorFlow's detection API exports them). Images are resized to the input
size without cropping (whatever the preset's crop), so a box maps back to the original image by scaling x by
``width/input width`` and y by ``height/input height``. Detections with a score ≤ 0 (padding) or past the count
are dropped. Classes are COCO ``category_id`` values (``class_ids="category"``) or indices into the sorted category
ids (``"index"``, the contiguous 80-class convention of most exporters).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from dlakit.errors import DlakitError, OptionError
from dlakit.quantize.data import IMAGE_SUFFIXES, DataSource, Preset
from dlakit.quantize.emulate import run_model

CLASS_IDS = ("category", "index")
#: coordinate order and units of the box outputs: NVIDIA's EfficientNMS and most exporters give xyxy in input
#: pixels; TensorFlow's Object Detection API (and tf2onnx SSD exports) gives normalized yxyx
BOX_FORMATS = ("xyxy", "yxyx", "xyxy-normalized", "yxyx-normalized")


@dataclass
class CocoImage:
    path: Path
    image_id: int
    width: int
    height: int


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise OptionError("{coco} needs pycocotools: pip install pycocotools (the coco extra: dlakit[coco])",
                          "coco") from None
    return COCO, COCOeval


def load_coco(path: str | os.PathLike[str]) -> dict:
    """The annotation file, checked, with the ``iscrowd`` / ``area`` fields COCOeval needs filled in."""
    path = Path(path)
    if not path.is_file():
        raise DlakitError(f"{path}: COCO annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DlakitError(f"{path}: not a readable JSON file ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations",
                                                                                    "categories")):
        raise DlakitError(f"{path}: not COCO instances JSON (needs 'images', 'annotations' and 'categories' lists)")
    try:
        for image in data["images"]:
            image["id"], image["file_name"] = int(image["id"]), str(image["file_name"])
            image["width"], image["height"] = int(image["width"]), int(image["height"])
        for number, ann in enumerate(data["annotations"]):
            ann.setdefault("id", number + 1)
            ann["image_id"], ann["category_id"] = int(ann["image_id"]), int(ann["category_id"])
            box = [float(v) for v in ann["bbox"]]
            if len(box) != 4:
                raise ValueError("bbox")
            ann["bbox"] = box
            ann.setdefault("iscrowd", 0)
            ann.setdefault("area", box[2] * box[3])
        for category in data["categories"]:
            category["id"] = int(category["id"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise DlakitError(f"{path}: malformed COCO entry (missing or bad {exc}); images need id, file_name, width, "
                          "height; annotations image_id, category_id, bbox [x,y,w,h]; categories id") from None
    if not data["categories"]:
        raise DlakitError(f"{path}: no categories")
    _check_coco_references(path, data)
    return data


def _check_coco_references(path: Path, data: dict) -> None:
    """Ids that are unique and resolve, sizes and boxes that are finite: pycocotools assumes all of it and fails
    with a traceback (or silently scores nonsense) otherwise."""
    image_ids: set[int] = set()
    for image in data["images"]:
        if image["id"] in image_ids:
            raise DlakitError(f"{path}: image id {image['id']} appears twice in images[]; ids must be unique")
        if image["width"] <= 0 or image["height"] <= 0:
            raise DlakitError(f"{path}: image {image['id']} ('{image['file_name']}') has size {image['width']} x "
                              f"{image['height']}; width and height must be positive")
        image_ids.add(image["id"])
    category_ids = {category["id"] for category in data["categories"]}
    if len(category_ids) != len(data["categories"]):
        raise DlakitError(f"{path}: a category id appears twice in categories[]; ids must be unique")
    for ann in data["annotations"]:
        if ann["image_id"] not in image_ids:
            raise DlakitError(f"{path}: annotation {ann['id']} refers to image_id {ann['image_id']}, which is not in "
                              "images[]")
        if ann["category_id"] not in category_ids:
            raise DlakitError(f"{path}: annotation {ann['id']} has category_id {ann['category_id']}, which is not in "
                              "categories[]")
        if not all(math.isfinite(v) for v in ann["bbox"]) or ann["bbox"][2] < 0 or ann["bbox"][3] < 0:
            raise DlakitError(f"{path}: annotation {ann['id']} has bbox {ann['bbox']}; give finite [x, y, width, "
                              "height] with width, height >= 0")


def match_images(folder: str | os.PathLike[str], coco: dict, annotations: str = "annotations") -> list[CocoImage]:
    """Every image in ``folder`` with its COCO entry, matched on ``file_name`` (relative path, else base name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DlakitError(f"{folder}: not a folder of images")
    by_name: dict[str, dict] = {}
    for image in coco["images"]:
        by_name.setdefault(image["file_name"].replace("\\", "/"), image)
        by_name.setdefault(Path(image["file_name"]).name, image)
    matched = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        entry = by_name.get(path.relative_to(folder).as_posix()) or by_name.get(path.name)
        if entry is None:
            raise DlakitError(f"{path}: image not listed in {annotations} images[].file_name; remove it or add it")
        matched.append(CocoImage(path, entry["id"], entry["width"], entry["height"]))
    if not matched:
        raise DlakitError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return matched


def output_layout(model: onnx.ModelProto, names: str | None) -> list[str]:
    """The detection outputs: one [N,K,6|7] tensor, or boxes, scores, classes[, count]; guessed when not named."""
    outputs = [o.name for o in model.graph.output]
    if names:
        chosen = [n.strip() for n in names.split(",") if n.strip()]
        missing = [n for n in chosen if n not in outputs]
        if missing:
            raise OptionError(f"{{detections}}: the model has no output {', '.join(missing)}; its outputs are "
                              f"{', '.join(outputs)}", "detections")
        if len(chosen) not in (1, 3, 4):
            raise OptionError(f"{{detections}}: give 1 output ([N,K,6|7]) or 3-4 (boxes,scores,classes[,count]), "
                              f"not {len(chosen)}", "detections")
        return chosen
    if len(outputs) == 1:
        return outputs
    guess = []
    for keys in (("box",), ("score", "conf"), ("class", "label"), ("num", "count")):
        found = [o for o in outputs if any(k in o.lower() for k in keys)]
        if len(found) == 1:
            guess.append(found[0])
    if len(guess) >= 3 and len(set(guess)) == len(guess):
        return guess
    raise OptionError(f"the model has outputs {', '.join(outputs)}; name the detections with {{detections}} "
                      "boxes,scores,classes[,count] or {detections} DETS ([N,K,6|7])", "detections")


def _as_arrays(values: list[np.ndarray], names: list[str]) -> tuple[np.ndarray, ...]:
    """(boxes [N,K,4], scores [N,K], classes [N,K], count [N] or None) from the chosen outputs."""
    if len(names) == 1:
        dets = values[0]
        if dets.ndim != 3 or dets.shape[2] not in (6, 7):
            raise OptionError(f"output '{names[0]}' has shape {list(dets.shape)}, not [N,K,6] or [N,K,7]; "
                              "or name boxes,scores,classes with {detections}", "detections")
        dets = dets[:, :, -6:]
        return dets[:, :, :4], dets[:, :, 4], dets[:, :, 5], None
    boxes, scores, classes = values[:3]
    count = values[3].reshape(len(values[3]), -1)[:, 0] if len(values) == 4 else None
    n = boxes.shape[0]
    if boxes.ndim != 3 or boxes.shape[2] != 4:
        raise DlakitError(f"output '{names[0]}' has shape {list(boxes.shape)}, not boxes [N,K,4]")
    for name, value in ((names[1], scores), (names[2], classes)):
        if value.reshape(n, -1).shape[1] != boxes.shape[1]:
            raise DlakitError(f"output '{name}' has shape {list(value.shape)}, not [N,{boxes.shape[1]}] "
                              f"like boxes '{names[0]}'")
    return boxes, scores.reshape(n, -1), classes.reshape(n, -1), count


def coco_results(values: list[np.ndarray], names: list[str], images: list[CocoImage], input_hw: tuple[int, int],
                 category_ids: list[int], class_ids: str = "category", box_format: str = "xyxy") -> list[dict]:
    """COCO result entries ``{image_id, category_id, bbox [x,y,w,h], score}`` in original image pixels."""
    boxes, scores, classes, count = _as_arrays(values, names)
    if box_format.startswith("yxyx"):
        boxes = boxes[:, :, [1, 0, 3, 2]]
    in_h, in_w = (1, 1) if box_format.endswith("-normalized") else input_hw
    results = []
    for i, image in enumerate(images):
        keep = scores[i] > 0
        if count is not None:
            keep &= np.arange(len(keep)) < int(count[i])
        sx, sy = image.width / in_w, image.height / in_h
        for box, score, cls in zip(boxes[i][keep], scores[i][keep], classes[i][keep], strict=True):
            label = round(float(cls))
            if class_ids == "index":
                if not 0 <= label < len(category_ids):
                    continue  # a class the annotations do not know cannot match anything
                label = category_ids[label]
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append({"image_id": image.image_id, "category_id": label, "score": float(score),
                            "bbox": [x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy]})
    return results


def coco_ap(coco: dict, image_ids: list[int], results: list[dict]) -> dict[str, float | None]:
    """AP@[.5:.95], AP50, AP75 by COCOeval over ``image_ids`` (None where the images have no ground truth)."""
    COCO, COCOeval = _pycocotools()
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress; keep --format json clean
        truth = COCO()
        truth.dataset = coco
        truth.createIndex()
        if not results:
            return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
        found = truth.loadRes(results)
        evaluator = COCOeval(truth, found, "bbox")
        evaluator.params.imgIds = sorted(set(image_ids))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    ap, ap50, ap75 = (float(v) for v in evaluator.stats[:3])
    return {key: (round(value, 4) if value >= 0 else None) for key, value in (("ap", ap), ("ap50", ap50),
                                                                               ("ap75", ap75))}


def evaluate_detection(model: onnx.ModelProto, emulated: onnx.ModelProto | None, data: str | os.PathLike[str],
                       annotations: str | os.PathLike[str], input_name: str, sample_shape: tuple[int, ...],
                       preset: Preset, batch_size: int, detections: str | None = None, class_ids: str = "category",
                       num_samples: int | None = None, progress: bool = True, box_format: str = "xyxy"
                       ) -> dict[str, object]:
    """COCO AP of the FP32 model and (when given) the emulated INT8 model on the same images."""
    if class_ids not in CLASS_IDS:
        raise OptionError(f"{{class_ids}}: '{class_ids}' is not one of {', '.join(CLASS_IDS)}", "class_ids")
    if box_format not in BOX_FORMATS:
        raise OptionError(f"{{box_format}}: '{box_format}' is not one of {', '.join(BOX_FORMATS)}", "box_format")
    _pycocotools()  # fail before running the model
    coco = load_coco(annotations)
    names = output_layout(model, detections)
    images = match_images(data, coco, str(annotations))
    if num_samples:
        images = images[:num_samples]
    preset = replace(preset, crop=None)  # boxes map back by scaling only
    height, width = (sample_shape[1], sample_shape[2]) if preset.layout == "NCHW" else sample_shape[:2]
    source = DataSource(Path(data), {input_name: sample_shape}, [i.path for i in images], "images", preset)
    categories = sorted(c["id"] for c in coco["categories"])
    ids = [i.image_id for i in images]
    wanted = set(ids)
    result: dict[str, object] = {"images": len(images),
                                 "annotations": sum(a["image_id"] in wanted for a in coco["annotations"]),
                                 "outputs": names, "class_ids": class_ids, "box_format": box_format}
    counts: dict[str, int] = {}
    for key, graph, quantized in (("fp32", model, False), ("int8_emulated", emulated, True)):
        if graph is None:
            continue
        values = run_model(graph, source, batch_size, quantized=quantized, progress=progress)
        outputs = [o.name for o in graph.graph.output]
        chosen = [values[outputs.index(n)] for n in names]
        found = coco_results(chosen, names, images, (height, width), categories, class_ids, box_format)
        result[key] = coco_ap(coco, ids, found)
        counts[key] = len(found)
    result["detections"] = counts
    return result
