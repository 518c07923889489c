"""Calibration and evaluation data: image folders and tensor files, streamed in batches.

Calibration sets are often thousands of images; decoding them all up front would cost gigabytes, so a source only
lists its files and yields one model-shaped batch at a time. Preprocessing follows named presets (the zoo networks'
published transforms) that a user can override field by field, because a wrong mean/std or channel order silently
yields wrong ranges, and the scales are then wrong on the device too.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dlakit.errors import DlakitError, OptionError, numpy_file_problem

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
TENSOR_SUFFIXES = (".npy", ".npz")
#: the largest image decoded (width x height): 64 megapixels, 8192 x 8192. A PNG or JPEG header can declare
#: 100,000 x 100,000 pixels in a few bytes (a decompression bomb), which would need 30 GB to decode.
MAX_IMAGE_PIXELS = 1 << 26
#: what numpy raises on a file that is not an .npy/.npz (truncated, zero bytes, garbage, a pickle)
_NUMPY_FILE_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError)


@dataclass(frozen=True)
class Preset:
    """``x = (pixel · scale − mean) / std`` per channel, after resizing (and centre-cropping when ``crop``)."""

    name: str
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    channels: str = "RGB"
    layout: str = "NCHW"
    crop: float | None = 0.875  # centre crop fraction after resizing the short side; None: resize to the input
    interpolation: str = "bilinear"


_IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "scale": 1 / 255}
PRESETS: dict[str, Preset] = {
    "imagenet": Preset("imagenet", **_IMAGENET),
    "resnet50": Preset("resnet50", **_IMAGENET),
    "resnet34-backbone": Preset("resnet34-backbone", **_IMAGENET),
    "efficientnet-lite": Preset("efficientnet-lite", (127.0,) * 3, (128.0,) * 3, interpolation="bicubic"),
    "ssd-mobilenetv1": Preset("ssd-mobilenetv1", (127.5,) * 3, (127.5,) * 3, crop=None),
    "ssd-resnet34": Preset("ssd-resnet34", **_IMAGENET, crop=None),
    "retinanet-resnext50": Preset("retinanet-resnext50", **_IMAGENET, crop=None),
    "retinanet-resnet34": Preset("retinanet-resnet34", **_IMAGENET, crop=None),
    "unit": Preset("unit", scale=1 / 255, crop=None),
}


def make_preset(
    name: str = "imagenet",
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    scale: float | None = None,
    channels: str | None = None,
    layout: str | None = None,
    crop: float | str | None = "preset",
) -> Preset:
    """A named preset with the user's overrides; bad values are one-line errors naming the option."""
    if name not in PRESETS:
        raise OptionError(f"{{preset}}: unknown preset '{name}'; choose one of: {', '.join(PRESETS)}", "preset")
    preset = PRESETS[name]
    changes: dict[str, object] = {}
    for option, value in (("mean", mean), ("std", std)):
        if value is not None:
            if len(value) == 1:
                value = tuple(value) * 3
            if len(value) != 3:
                raise OptionError(f"{{{option}}}: give 1 or 3 comma-separated numbers, not {len(value)}", option)
            changes[option] = tuple(float(v) for v in value)
    if std is not None and any(v == 0 for v in changes["std"]):  # type: ignore[union-attr]
        raise OptionError("{std}: values must be non-zero", "std")
    for option in ("mean", "std"):
        if option in changes and not np.isfinite(changes[option]).all():  # type: ignore[arg-type]
            raise OptionError(f"{{{option}}}: {','.join(map(str, changes[option]))} holds NaN or "  # type: ignore[arg-type]
                              "infinity; give finite numbers", option)
    if scale is not None and not (np.isfinite(scale) and scale != 0):
        raise OptionError(f"{{scale}}: {scale} is not a finite non-zero factor; e.g. 0.0039216 (1/255)", "scale")
    if scale is not None:
        changes["scale"] = float(scale)
    if channels is not None:
        if channels.upper() not in ("RGB", "BGR"):
            raise OptionError(f"{{channels}}: '{channels}' is not RGB or BGR", "channels")
        changes["channels"] = channels.upper()
    if layout is not None:
        if layout.upper() not in ("NCHW", "NHWC"):
            raise OptionError(f"{{layout}}: '{layout}' is not NCHW or NHWC", "layout")
        changes["layout"] = layout.upper()
    if crop != "preset":
        changes["crop"] = crop
    return replace(preset, name=name if not changes else f"{name}+custom", **changes)


def load_image(path: Path, preset: Preset, height: int, width: int) -> np.ndarray:
    """One image as a float32 array in the preset's layout (without the batch dimension)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below, in one line
            with Image.open(path) as raw:  # reads the header only
                w, h = raw.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise DlakitError(f"{path}: declares {w} x {h} pixels, over dlakit's limit of "
                                      f"{MAX_IMAGE_PIXELS:,} pixels (a decompression bomb, or a huge image); "
                                      "resize it or remove it from the data folder")
                if w * h == 0:
                    raise DlakitError(f"{path}: declares an empty {w} x {h} image; remove or re-save it")
                image = raw.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise DlakitError(f"{path}: cannot read this image ({type(exc).__name__}); remove or re-save it") from exc
    resample = Image.BICUBIC if preset.interpolation == "bicubic" else Image.BILINEAR
    if preset.crop:
        # resize the short side so that the centre crop of the input size covers `crop` of it (256 → 224)
        w, h = image.size
        factor = max(height, width) / preset.crop / min(w, h)
        image = image.resize((max(width, round(w * factor)), max(height, round(h * factor))), resample)
        w, h = image.size
        left, top = (w - width) // 2, (h - height) // 2
        image = image.crop((left, top, left + width, top + height))
    else:
        image = image.resize((width, height), resample)
    pixels = np.asarray(image, dtype=np.float32)
    if preset.channels == "BGR":
        pixels = pixels[..., ::-1]
    pixels = (pixels * np.float32(preset.scale) - np.asarray(preset.mean, np.float32)) / np.asarray(
        preset.std, np.float32
    )
    return np.ascontiguousarray(pixels.transpose(2, 0, 1) if preset.layout == "NCHW" else pixels)


@dataclass
class DataSource:
    """A sized stream of samples for the model's inputs; files are read only when a batch is requested."""

    path: Path
    inputs: dict[str, tuple[int, ...]]  # input name -> per-sample shape (without batch)
    files: list[Path]
    kind: str  # "images" | "tensors"
    preset: Preset | None = None
    num_samples: int | None = None
    _counts: list[int] | None = None

    def __len__(self) -> int:
        total = sum(self._counts) if self._counts is not None else len(self.files)
        return min(total, self.num_samples) if self.num_samples else total

    def samples(self) -> Iterator[dict[str, np.ndarray]]:
        """Samples one at a time (dicts of input name -> array without batch dimension)."""
        produced = 0
        limit = len(self)
        for path in self.files:
            for sample in self._read(path):
                if produced >= limit:
                    return
                produced += 1
                yield sample

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], int]]:
        """``(batch, valid)``: full batches; the last is padded by repeating its last sample (``valid`` says how
        many are real) because models exported with a static batch accept nothing else."""
        pending: list[dict[str, np.ndarray]] = []
        for sample in self.samples():
            pending.append(sample)
            if len(pending) == batch_size:
                yield _stack(pending), batch_size
                pending = []
        if pending:
            valid = len(pending)
            pending += [pending[-1]] * (batch_size - valid)
            yield _stack(pending), valid

    def _read(self, path: Path) -> Iterator[dict[str, np.ndarray]]:
        if self.kind == "images":
            (name, shape), = self.inputs.items()
            assert self.preset is not None
            h, w = (shape[1], shape[2]) if self.preset.layout == "NCHW" else (shape[0], shape[1])
            yield {name: load_image(path, self.preset, h, w)}
            return
        yield from _read_tensor_file(path, self.inputs)


def _stack(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.stack([s[name] for s in samples]) for name in samples[0]}


def _read_tensor_file(path: Path, inputs: dict[str, tuple[int, ...]]) -> Iterator[dict[str, np.ndarray]]:
    """A .npy holds one input (one sample, or samples along axis 0); a .npz holds one array per input name."""
    try:
        if path.suffix == ".npy":
            if len(inputs) != 1:
                raise DlakitError(f"{path}: a .npy file feeds a single input; the model has {len(inputs)}, use .npz "
                                  f"with arrays named {', '.join(inputs)}")
            arrays = {next(iter(inputs)): np.load(path, mmap_mode="r", allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as npz:
                missing = [n for n in inputs if n not in npz.files]
                if missing:
                    raise DlakitError(f"{path}: no array for model input(s) {', '.join(missing)}; "
                                      f"the file has {', '.join(npz.files) or 'none'}")
                arrays = {n: npz[n] for n in inputs}
    except _NUMPY_FILE_ERRORS as exc:
        raise DlakitError(f"{path}: not a readable {path.suffix} file ({numpy_file_problem(exc)})") from exc
    count = _sample_count(path, {name: array.shape for name, array in arrays.items()}, inputs,
                          {name: array.dtype for name, array in arrays.items()})
    arrays = {name: array if array.shape != inputs[name] else array[None] for name, array in arrays.items()}
    for i in range(count):
        sample = {name: np.asarray(array[i], dtype=np.float32) for name, array in arrays.items()}
        for name, value in sample.items():
            if not np.isfinite(value).all():
                raise DlakitError(f"{path}: sample {i} of input '{name}' holds NaN or infinity; calibration and "
                                  "evaluation need finite values: remove that sample")
        yield sample


def _sample_count(path: Path, shapes: dict[str, tuple[int, ...]], inputs: dict[str, tuple[int, ...]],
                  dtypes: dict[str, np.dtype]) -> int:
    """Samples in a tensor file whose arrays have ``shapes``, or a one-line error naming what does not fit."""
    counts = set()
    for name, shape in shapes.items():
        dtype = dtypes[name]
        if dtype.kind not in "biuf":  # strings, complex, datetimes, structured records: not model inputs
            raise DlakitError(f"{path}: array for input '{name}' has dtype {dtype}; give numbers (float32, or "
                              "integers / booleans, which are converted to float32)")
        expected = inputs[name]
        if tuple(shape) == expected:
            counts.add(1)
        elif tuple(shape[1:]) == expected and len(shape) >= 1:
            counts.add(shape[0])
        else:
            raise DlakitError(f"{path}: array for input '{name}' has shape {list(shape)}, the model expects "
                              f"{list(expected)} per sample (optionally with a leading sample axis)")
    if len(counts) != 1:
        raise DlakitError(f"{path}: arrays hold different numbers of samples ({sorted(counts)})")
    count = counts.pop()
    if count == 0:
        raise DlakitError(f"{path}: holds 0 samples; give at least one")
    return count


def open_source(
    path: str | os.PathLike[str],
    inputs: dict[str, tuple[int, ...]],
    preset: Preset | None = None,
    num_samples: int | None = None,
) -> DataSource:
    """Open a calibration/evaluation source: an image folder (searched recursively), a folder of .npy/.npz files,
    or one .npy/.npz file. ``inputs`` maps each model input to its per-sample shape."""
    path = Path(path)
    if not path.exists():
        raise DlakitError(f"{path}: calibration data not found; pass a folder of images or a .npy/.npz file")
    if num_samples is not None and num_samples <= 0:
        raise OptionError(f"{{num_samples}}: must be positive, not {num_samples}", "num_samples")
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (*IMAGE_SUFFIXES,
                                                                                        *TENSOR_SUFFIXES))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    tensors = [p for p in files if p.suffix.lower() in TENSOR_SUFFIXES]
    if not files:
        raise DlakitError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) or tensors (.npy, .npz) found")
    if images and tensors:
        raise DlakitError(f"{path}: mixes images and .npy/.npz tensors; keep one kind per folder")
    if tensors:
        counts = [_count_tensor_samples(p, inputs) for p in tensors]
        return DataSource(path, inputs, tensors, "tensors", None, num_samples, counts)
    if len(inputs) != 1:
        raise DlakitError(f"{path}: images can feed a model with one input; this one has {', '.join(inputs)}; "
                          "give .npz files with one array per input")
    (name, shape), = inputs.items()
    preset = preset or PRESETS["imagenet"]
    check_image_input(name, shape, preset)
    return DataSource(path, inputs, images, "images", preset, num_samples)


def check_image_input(name: str, shape: tuple[int, ...], preset: Preset) -> None:
    """A one-line error unless the input takes 3-channel images in the preset's layout."""
    channel_axis = 0 if preset.layout == "NCHW" else 2
    if len(shape) != 3 or shape[channel_axis] != 3:
        raise OptionError(f"input '{name}' has per-sample shape {list(shape)}, not a 3-channel {preset.layout} "
                          "image; pass {layout} NHWC or feed .npy tensors", "layout")


def _npz_header(npz: np.lib.npyio.NpzFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one .npz member from its header, without decompressing the data."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with npz.zip.open(f"{name}.npy") as member:
        reader = readers.get(np.lib.format.read_magic(member))
        if reader is not None:
            shape, _, dtype = reader(member)
            return tuple(shape), np.dtype(dtype)
    array = npz[name]
    return array.shape, array.dtype


def _count_tensor_samples(path: Path, inputs: dict[str, tuple[int, ...]]) -> int:
    """Samples in one tensor file, checked (readable, numeric, shaped for the model) before any batch is run."""
    try:
        if path.suffix == ".npy":
            if len(inputs) != 1:
                raise DlakitError(f"{path}: a .npy file feeds a single input; the model has {len(inputs)}, use .npz "
                                  f"with arrays named {', '.join(inputs)}")
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            name = next(iter(inputs))
            shapes, dtypes = {name: array.shape}, {name: array.dtype}
        else:
            with np.load(path, allow_pickle=False) as npz:
                missing = [n for n in inputs if n not in npz.files]
                if missing:
                    raise DlakitError(f"{path}: no array for model input(s) {', '.join(missing)}; "
                                      f"the file has {', '.join(npz.files) or 'none'}")
                shapes, dtypes = {}, {}
                for name in inputs:
                    shapes[name], dtypes[name] = _npz_header(npz, name)
    except _NUMPY_FILE_ERRORS as exc:
        raise DlakitError(f"{path}: not a readable {path.suffix} file ({numpy_file_problem(exc)})") from exc
    return _sample_count(path, shapes, inputs, dtypes)
