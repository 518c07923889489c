"""The real-photo calibration/evaluation split of ``facts/int8_baseline.md``, from images bundled with libraries
(scikit-image, scikit-learn, matplotlib: development dependencies, so this lives with the tests).

Used by the recovery benchmark and tests so that every figure is measured on the same, disjoint-by-photo data.
Two photos of the original split come from packages that are not installed here (mahotas' DepartmentStore and
luispedro for calibration, imgaug's quokka for evaluation); they are replaced by scikit-image's ``cell`` and
``page`` and matplotlib's ``Minduka_Present_Blue_Pack.png`` (listed in :data:`SUBSTITUTES`).
"""

from __future__ import annotations

import numpy as np

SUBSTITUTES = {"mahotas DepartmentStore": "skimage cell", "mahotas luispedro": "skimage page",
               "imgaug quokka": "matplotlib Minduka_Present_Blue_Pack.png"}
CALIBRATION = ("astronaut", "rocket", "hubble_deep_field", "retina", "immunohistochemistry", "camera", "coins",
               "brick", "gravel", "moon", "cell", "page")
EVALUATION = ("coffee", "chelsea", "motorcycle_left", "motorcycle_right", "grass", "clock", "china", "flower",
              "grace_hopper", "Minduka_Present_Blue_Pack")


def _image(name: str) -> np.ndarray:
    import skimage.data as data

    if name.startswith("motorcycle"):
        left, right, _ = data.stereo_motorcycle()
        return left if name.endswith("left") else right
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_images

        images = load_sample_images()
        return next(img for f, img in zip(images.filenames, images.images, strict=True) if name in f)
    if name in ("grace_hopper", "Minduka_Present_Blue_Pack"):
        import matplotlib.cbook as cbook
        from PIL import Image

        suffix = ".jpg" if name == "grace_hopper" else ".png"
        with Image.open(cbook.get_sample_data(name + suffix)) as img:
            return np.asarray(img.convert("RGB"))
    return getattr(data, name)()


def variants(image: np.ndarray, count: int, seed: int, size: int = 224, mean: float = 127.0, std: float = 128.0,
             channel_mean: tuple[float, ...] | None = None, channel_std: tuple[float, ...] | None = None
             ) -> list[np.ndarray]:
    """``count`` crops (4 scales, random positions) with every other group of 4 flipped, NCHW float32."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    pil = Image.fromarray(arr[..., :3].astype(np.uint8))
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        w, h = pil.size
        side = int(min(w, h) * (1.0, 0.875, 0.75, 0.625)[k % 4])
        x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        a = np.asarray(pil.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BICUBIC), np.float32)
        if (k // 4) % 2:
            a = a[:, ::-1]
        if channel_mean is not None and channel_std is not None:
            a = (a / 255.0 - np.asarray(channel_mean, np.float32)) / np.asarray(channel_std, np.float32)
        else:
            a = (a - mean) / std
        out.append(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))
    return out


def split(calibration_variants: int = 8, evaluation_variants: int = 16, **preprocess: object
          ) -> tuple[np.ndarray, np.ndarray]:
    """(calibration [96,3,224,224], evaluation [160,3,224,224]) with the Lite0 preprocessing by default."""
    cal = [v for i, n in enumerate(CALIBRATION) for v in variants(_image(n), calibration_variants, i, **preprocess)]
    ev = [v for i, n in enumerate(EVALUATION) for v in variants(_image(n), evaluation_variants, 100 + i,
                                                                 **preprocess)]
    return np.stack(cal), np.stack(ev)
