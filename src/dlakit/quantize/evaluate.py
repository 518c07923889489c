"""Top-1 / top-5 classification over a labelled image folder, FP32 and emulated DLA INT8 side by side.

Labels come from a folder per class (``DATA/<class>/*.jpg``; class index = the folder name when it is an integer,
else its position among the sorted folder names, which is the ImageNet convention) or from a labels file with lines
``<relative path> <class index>`` (comma or whitespace separated).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from dlakit.errors import DlakitError
from dlakit.quantize.data import IMAGE_SUFFIXES, DataSource, Preset
from dlakit.quantize.emulate import run_model
from dlakit.quantize.numerics import sqnr_db


def labelled_images(folder: str | os.PathLike[str], labels_file: str | os.PathLike[str] | None = None
                    ) -> tuple[list[Path], np.ndarray]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DlakitError(f"{folder}: not a folder of labelled images")
    if labels_file is not None:
        path = Path(labels_file)
        if not path.is_file():
            raise DlakitError(f"{path}: labels file not found")
        files, labels = [], []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = re.split(r"[,\s]+", line.strip())
            if len(parts) < 2 or not parts[-1].lstrip("-").isdigit():
                raise DlakitError(f"{path}:{number}: '{line[:80]}' is not '<image path> <class index>'")
            image = folder / " ".join(parts[:-1])
            if not image.is_file():
                raise DlakitError(f"{path}:{number}: image {image} not found")
            files.append(image)
            labels.append(int(parts[-1]))
        if not files:
            raise DlakitError(f"{path}: no labelled images listed")
        return files, np.array(labels)
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DlakitError(f"{folder}: no class folders; give DATA/<class>/<image> or --labels FILE")
    numeric = all(c.name.isdigit() for c in classes)
    files, labels = [], []
    for index, directory in enumerate(classes):
        for image in sorted(directory.rglob("*")):
            if image.suffix.lower() in IMAGE_SUFFIXES:
                files.append(image)
                labels.append(int(directory.name) if numeric else index)
    if not files:
        raise DlakitError(f"{folder}: the class folders hold no images ({', '.join(IMAGE_SUFFIXES)})")
    return files, np.array(labels)


@dataclass
class Accuracy:
    top1: float
    top5: float

    def as_dict(self) -> dict[str, float]:
        return {"top1": round(self.top1, 4), "top5": round(self.top5, 4)}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> Accuracy:
    logits = logits.reshape(len(labels), -1)
    k = min(5, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return Accuracy(float(np.mean(top[:, 0] == labels)), float(np.mean(np.any(top == labels[:, None], axis=1))))


def evaluate(model: onnx.ModelProto, emulated: onnx.ModelProto | None, files: list[Path], labels: np.ndarray,
             input_name: str, sample_shape: tuple[int, ...], preset: Preset, batch_size: int,
             progress: bool = True) -> dict[str, object]:
    """Accuracy of the FP32 model and (when given) the emulated INT8 model on the same images."""
    fp32, int8 = logits(model, emulated, files, input_name, sample_shape, preset, batch_size, progress)
    return summarize(fp32, int8, labels)


def logits(model: onnx.ModelProto, emulated: onnx.ModelProto | None, files: list[Path], input_name: str,
           sample_shape: tuple[int, ...], preset: Preset, batch_size: int, progress: bool = True
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """The first output of the FP32 model and of the emulated INT8 model (None if not given) over ``files``."""
    source = DataSource(files[0].parent, {input_name: sample_shape}, files, "images", preset)
    fp32 = run_model(model, source, batch_size, quantized=False, progress=progress)[0]
    int8 = None if emulated is None else run_model(emulated, source, batch_size, quantized=True,
                                                   progress=progress)[0]
    return fp32, int8


def summarize(fp32: np.ndarray, int8: np.ndarray | None, labels: np.ndarray) -> dict[str, object]:
    """``evaluate``'s result from the logits of every image (in the order of ``labels``)."""
    result: dict[str, object] = {"samples": len(labels), "fp32": accuracy(fp32, labels).as_dict()}
    if int8 is not None:
        result["int8_emulated"] = accuracy(int8, labels).as_dict()
        flat32, flat8 = fp32.reshape(len(labels), -1), int8.reshape(len(labels), -1)
        result["top1_agreement"] = round(float(np.mean(flat32.argmax(1) == flat8.argmax(1))), 4)
        result["logit_sqnr_db"] = round(sqnr_db(flat32, flat8), 2)
    return result
