"""Calibration data: image folders with presets, .npy/.npz tensors, batching, and one-line errors for bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from dlakit.errors import DlakitError
from dlakit.quantize.data import make_preset, open_source
from dlakit.quantize.torchload import MAGIC_NUMBER, PROTOCOL_VERSION, load_torch_legacy

SHAPE = {"input": (3, 16, 16)}


def _images(folder, count=3, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(
            folder / f"img{i}.{'png' if i % 2 else 'jpg'}")
    return folder


def test_image_folder_streams_preprocessed_batches(tmp_path):
    source = open_source(_images(tmp_path / "calib"), SHAPE, make_preset("imagenet"))
    assert len(source) == 3
    batches = list(source.batches(2))
    assert [valid for _, valid in batches] == [2, 1]
    first = batches[0][0]["input"]
    assert first.shape == (2, 3, 16, 16) and first.dtype == np.float32
    assert np.array_equal(batches[1][0]["input"][0], batches[1][0]["input"][1])  # padding repeats the last sample


def test_presets_and_overrides(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    pixels = np.zeros((20, 20, 3), np.uint8)
    pixels[..., 0] = 200  # red
    Image.fromarray(pixels).save(folder / "red.png")
    lite = next(open_source(folder, SHAPE, make_preset("efficientnet-lite")).samples())["input"]
    assert np.allclose(lite[0], (200 - 127) / 128) and np.allclose(lite[1], -127 / 128)
    custom = make_preset("unit", mean=(0.5,), std=(0.5,), channels="BGR", layout="NHWC")
    nhwc = next(open_source(folder, {"input": (16, 16, 3)}, custom).samples())["input"]
    assert nhwc.shape == (16, 16, 3) and np.allclose(nhwc[..., 2], (200 / 255 - 0.5) / 0.5)
    with pytest.raises(DlakitError, match=r"^mean: give 1 or 3"):  # the parameter; the CLI shows --mean
        make_preset("imagenet", mean=(1.0, 2.0))
    with pytest.raises(DlakitError, match=r"^preset: unknown preset"):
        make_preset("yolo")


def test_tensor_files_and_num_samples(tmp_path):
    data = np.random.default_rng(0).normal(size=(5, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "calib.npy", data)
    source = open_source(tmp_path / "calib.npy", SHAPE, num_samples=4)
    assert len(source) == 4
    stacked = np.concatenate([b["input"][:v] for b, v in source.batches(3)])
    assert np.array_equal(stacked, data[:4])
    folder = tmp_path / "npz"
    folder.mkdir()
    for i in range(2):
        np.savez(folder / f"s{i}.npz", input=data[i], extra=np.zeros(1))
    assert len(open_source(folder, SHAPE)) == 2


@pytest.mark.parametrize("case", ["missing", "empty", "unreadable", "shape", "npz-key", "mixed", "multi-input"])
def test_bad_calibration_data_is_one_line_error(tmp_path, case):
    shapes = SHAPE
    if case == "missing":
        path, fragment = tmp_path / "nope", "not found"
    elif case == "empty":
        path, fragment = tmp_path / "empty", "no images"
        path.mkdir()
    elif case == "unreadable":
        path = tmp_path / "bad"
        path.mkdir()
        (path / "broken.jpg").write_bytes(b"not a jpeg")
        fragment = "broken.jpg: cannot read this image"
    elif case == "shape":
        path, fragment = tmp_path / "x.npy", "x.npy: array for input 'input' has shape [2, 3, 8, 8]"
        np.save(path, np.zeros((2, 3, 8, 8), np.float32))
    elif case == "npz-key":
        path, fragment = tmp_path / "x.npz", "no array for model input(s) input"
        np.savez(path, data=np.zeros((3, 16, 16), np.float32))
    elif case == "mixed":
        path = _images(tmp_path / "mixed", 1)
        np.save(path / "t.npy", np.zeros((3, 16, 16), np.float32))
        fragment = "mixes images"
    else:
        path, fragment = _images(tmp_path / "imgs", 1), "one input"
        shapes = {"a": (3, 16, 16), "b": (3, 16, 16)}
    with pytest.raises(DlakitError) as info:
        source = open_source(path, shapes)
        list(source.batches(1))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_restricted_unpickler_refuses_code(tmp_path):
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(MAGIC_NUMBER) + pickle.dumps(PROTOCOL_VERSION) + pickle.dumps({})
                     + b"\x80\x02cos\nsystem\nX\x05\x00\x00\x00touch\x85R.")
    with pytest.raises(DlakitError, match=r"refuses to load 'os\.system'"):
        load_torch_legacy(evil)
    (tmp_path / "zip.pth").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(DlakitError, match="zip-format"):
        load_torch_legacy(tmp_path / "zip.pth")
