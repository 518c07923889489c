"""Small ONNX builders for the performance-model tests (prepared form: BN folded, Conv+Relu+Add, 4-D).

Kept independent of ``dlakit.zoo`` so the per-layer model can be tested on exact, known layer shapes.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class NetBuilder:
    """Appends Conv/Relu/Add/Pool nodes to a graph, with random weights of the right shapes."""

    def __init__(self, shape: tuple[int, int, int, int]) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0
        self.shape = shape
        self.input = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))
        self.rng = np.random.default_rng(0)

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, relu: bool = True, groups: int = 1,
             residual: str | None = None) -> str:
        name = self._name("conv")
        w = numpy_helper.from_array(self.rng.standard_normal((cout, cin // groups, k, k), np.float32) * 0.01,
                                    f"{name}.w")
        b = numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}.b")
        self.inits += [w, b]
        self.nodes.append(helper.make_node("Conv", [x, w.name, b.name], [f"{name}.y"], name=name,
                                           kernel_shape=[k, k], strides=[stride, stride],
                                           pads=[k // 2] * 4, group=groups))
        out = f"{name}.y"
        if residual is not None:
            self.nodes.append(helper.make_node("Add", [out, residual], [f"{name}.add"], name=f"{name}_add"))
            out = f"{name}.add"
        if relu:
            self.nodes.append(helper.make_node("Relu", [out], [f"{name}.relu"], name=f"{name}_relu"))
            out = f"{name}.relu"
        return out

    def maxpool(self, x: str) -> str:
        name = self._name("pool")
        self.nodes.append(helper.make_node("MaxPool", [x], [f"{name}.y"], name=name, kernel_shape=[3, 3],
                                           strides=[2, 2], pads=[1, 1, 1, 1]))
        return f"{name}.y"

    def head(self, x: str, channels: int, classes: int) -> str:
        pool = self._name("gap")
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], [f"{pool}.y"], name=pool))
        flat = self._name("flatten")
        self.nodes.append(helper.make_node("Flatten", [f"{pool}.y"], [f"{flat}.y"], name=flat))
        fc = self._name("fc")
        w = numpy_helper.from_array(self.rng.standard_normal((classes, channels), np.float32) * 0.01, f"{fc}.w")
        b = numpy_helper.from_array(np.zeros(classes, np.float32), f"{fc}.b")
        self.inits += [w, b]
        self.nodes.append(helper.make_node("Gemm", [f"{flat}.y", w.name, b.name], [f"{fc}.y"], name=fc, transB=1))
        return f"{fc}.y"

    def model(self, output: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "net", [self.input],
                                  [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def resnet(depth: int = 50, hw: tuple[int, int] = (224, 224), batch: int = 1, classes: int | None = 1000,
           width: int = 64, groups: int = 1) -> onnx.ModelProto:
    """ResNet-18/34 (basic blocks) or -50 (bottlenecks); ``classes=None`` leaves the backbone (no head)."""
    blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}[depth]
    net = NetBuilder((batch, 3, *hw))
    x = net.conv("input", 3, width, 7, 2)
    x = net.maxpool(x)
    cin = width
    for stage, count in enumerate(blocks):
        mid = width * 2**stage
        cout = mid * 4 if depth == 50 else mid
        inner = mid * 2 if groups > 1 else mid
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            skip = x
            if stride != 1 or cin != cout:
                skip = net.conv(x, cin, cout, 1, stride, relu=False)
            if depth == 50:
                y = net.conv(x, cin, inner, 1)
                y = net.conv(y, inner, inner, 3, stride, groups=groups)
                x = net.conv(y, inner, cout, 1, residual=skip)
            else:
                y = net.conv(x, cin, mid, 3, stride)
                x = net.conv(y, mid, cout, 3, residual=skip)
            cin = cout
    if classes is not None:
        x = net.head(x, cin, classes)
    return net.model(x)


def mobilenet_v1(hw: tuple[int, int] = (224, 224), batch: int = 1) -> onnx.ModelProto:
    """MobileNet-V1 body: depthwise 3x3 + pointwise 1x1 pairs."""
    net = NetBuilder((batch, 3, *hw))
    x = net.conv("input", 3, 32, 3, 2)
    cin = 32
    for cout, stride in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [
            (1024, 2), (1024, 1)]:
        x = net.conv(x, cin, cin, 3, stride, groups=cin)
        x = net.conv(x, cin, cout, 1)
        cin = cout
    return net.model(x)


def single_conv(cin: int, cout: int, hw: int, k: int = 3, batch: int = 1) -> onnx.ModelProto:
    """One convolution fed by another (so its input is not the image input path)."""
    net = NetBuilder((batch, 3, hw, hw))
    x = net.conv("input", 3, cin, 3)
    return net.model(net.conv(x, cin, cout, k))
