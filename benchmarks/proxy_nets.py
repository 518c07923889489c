"""Public network architectures as ONNX models, to cross-check dlakit's DLA performance model.

Not zoo networks: random but seeded weights (``dlakit.zoo.weights``), float32, opset 17, static NCHW shapes, one
input named ``input``, and no BatchNormalization (each conv carries a bias, as a folded BN leaves it). Each
builder takes ``batch`` and returns an ``onnx.ModelProto``.

    PYTHONPATH=src python benchmarks/proxy_nets.py    # params, GMACs, nodes and DRIVE Orin DLA estimates
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import shape_inference

from dlakit import zoo
from dlakit.zoo.heads import classifier
from dlakit.zoo.layers import GraphBuilder, Tensor, conv_size
from dlakit.zoo.weights import ParamSource, he, normal

INPUT = "input"
SEED = 0


def _builder(name: str) -> GraphBuilder:
    return GraphBuilder(name, "prepared", ParamSource(seed=SEED, network=name))


def _input(g: GraphBuilder, batch: int, size: int) -> Tensor:
    return g.add_input(INPUT, (batch, 3, size, size))


def concat(g: GraphBuilder, parts: list[Tensor], name: str) -> Tensor:
    shape = (parts[0].shape[0], sum(p.channels for p in parts), *parts[0].hw)
    return g.op("Concat", parts, name, shape, axis=1)


def pool(g: GraphBuilder, op: str, x: Tensor, kernel: int, stride: int, pad: int, name: str) -> Tensor:
    """MaxPool or AveragePool (padding counted in the average, as torch's default)."""
    if op == "MaxPool":
        return g.max_pool(x, kernel, stride, pad, name)
    n, c, h, w = x.shape
    shape = (n, c, conv_size(h, kernel, stride, pad, pad), conv_size(w, kernel, stride, pad, pad))
    return g.op("AveragePool", [x], name, shape, kernel_shape=[kernel, kernel], strides=[stride, stride],
                pads=[pad] * 4, count_include_pad=1)


# -- YOLOv5s ------------------------------------------------------------------------------------------------------
def silu_conv(g: GraphBuilder, x: Tensor, cout: int, kernel: int, name: str, stride: int = 1,
              pad: int | None = None) -> Tensor:
    """Ultralytics ``Conv``: convolution then SiLU written as x * Sigmoid(x), as the exported ONNX has it."""
    y = g.conv(x, cout, kernel, name, stride=stride, pads=pad)
    s = g.op("Sigmoid", [y], f"{name}_sigmoid", y.shape)
    return g.op("Mul", [y, s], f"{name}_silu", y.shape)


def c3(g: GraphBuilder, x: Tensor, cout: int, n: int, name: str, shortcut: bool = True) -> Tensor:
    hidden = cout // 2
    y = silu_conv(g, x, hidden, 1, f"{name}.cv1")
    for i in range(n):
        b = silu_conv(g, y, hidden, 1, f"{name}.m.{i}.cv1")
        b = silu_conv(g, b, hidden, 3, f"{name}.m.{i}.cv2")
        y = g.add(y, b, f"{name}.m.{i}") if shortcut else b
    side = silu_conv(g, x, hidden, 1, f"{name}.cv2")
    return silu_conv(g, concat(g, [y, side], f"{name}.cat"), cout, 1, f"{name}.cv3")


def sppf(g: GraphBuilder, x: Tensor, cout: int, name: str) -> Tensor:
    y = silu_conv(g, x, x.channels // 2, 1, f"{name}.cv1")
    pools = [y]
    for i in range(3):
        pools.append(g.max_pool(pools[-1], 5, 1, 2, f"{name}.m{i}"))
    return silu_conv(g, concat(g, pools, f"{name}.cat"), cout, 1, f"{name}.cv2")


def upsample(g: GraphBuilder, x: Tensor, name: str) -> Tensor:
    n, c, h, w = x.shape
    return g.upsample_to(x, Tensor("", (n, c, 2 * h, 2 * w)), name)


def yolov5s(batch: int = 1, size: int = 672) -> onnx.ModelProto:
    """YOLOv5s v6.x as NVIDIA's cuDLA-samples deploys it: ends at the three 1x1 Detect convs (255 channels)."""
    g = _builder("yolov5s")
    y = silu_conv(g, _input(g, batch, size), 32, 6, "model.0", stride=2, pad=2)
    y = silu_conv(g, y, 64, 3, "model.1", stride=2)
    y = c3(g, y, 64, 1, "model.2")
    y = silu_conv(g, y, 128, 3, "model.3", stride=2)
    p3 = c3(g, y, 128, 2, "model.4")
    y = silu_conv(g, p3, 256, 3, "model.5", stride=2)
    p4 = c3(g, y, 256, 3, "model.6")
    y = silu_conv(g, p4, 512, 3, "model.7", stride=2)
    y = sppf(g, c3(g, y, 512, 1, "model.8"), 512, "model.9")
    h10 = silu_conv(g, y, 256, 1, "model.10")
    y = c3(g, concat(g, [upsample(g, h10, "model.11"), p4], "model.12"), 256, 1, "model.13", shortcut=False)
    h14 = silu_conv(g, y, 128, 1, "model.14")
    out3 = c3(g, concat(g, [upsample(g, h14, "model.15"), p3], "model.16"), 128, 1, "model.17", shortcut=False)
    y = silu_conv(g, out3, 128, 3, "model.18", stride=2)
    out4 = c3(g, concat(g, [y, h14], "model.19"), 256, 1, "model.20", shortcut=False)
    y = silu_conv(g, out4, 256, 3, "model.21", stride=2)
    out5 = c3(g, concat(g, [y, h10], "model.22"), 512, 1, "model.23", shortcut=False)
    for i, feature in enumerate((out3, out4, out5)):
        g.add_output(g.conv(feature, 255, 1, f"model.24.m.{i}"))
    return g.model()


# -- ResNet-50, Res2Net-50 ----------------------------------------------------------------------------------------
def resnet50_timm(batch: int = 1) -> onnx.ModelProto:
    """torchvision/timm ResNet-50 (v1.5) at 224: the zoo's MLPerf ResNet-50 with 1000 classes."""
    return zoo.build("resnet50", form="prepared", batch=batch, classes=1000)


def res2net_block(g: GraphBuilder, x: Tensor, planes: int, width: int, stride: int, first: bool,
                  name: str, scale: int = 4) -> Tensor:
    """timm ``Bottle2neck``: 1x1 to width*scale, hierarchical 3x3s over the splits, 1x1 to planes*4, residual.

    ``first`` (stride or downsample) is timm's 'stage' type: every split but the last is convolved on its own and
    the last one is average-pooled instead of passed through."""
    y = g.conv(x, width * scale, 1, f"{name}.conv1", act="relu")
    split = g.constant(f"{name}.split", [width] * scale, np.int64)
    names = [f"{name}.spx{i}" for i in range(scale)]
    g.op("Split", [y, split], names[0], y.shape, extra_outputs=names[1:], axis=1)
    spx = [Tensor(n, (*y.shape[:1], width, *y.hw)) for n in names]
    outs: list[Tensor] = []
    for i in range(scale - 1):
        sp = spx[i] if i == 0 or first else g.add(outs[-1], spx[i], f"{name}.sum{i}")
        outs.append(g.conv(sp, width, 3, f"{name}.convs.{i}", stride=stride, act="relu"))
    outs.append(pool(g, "AveragePool", spx[-1], 3, stride, 1, f"{name}.pool") if first else spx[-1])
    y = g.conv(concat(g, outs, f"{name}.cat"), planes * 4, 1, f"{name}.conv3", bn=f"{name}.bn3", bn_gain=0.3)
    short = x
    if first:
        short = g.conv(x, planes * 4, 1, f"{name}.downsample", stride=stride, pads=0)
    return g.add(y, short, name, act="relu")


def res2net50_26w_4s(batch: int = 1) -> onnx.ModelProto:
    """timm res2net50_26w_4s at 224: ResNet-50 layout (3, 4, 6, 3) with Res2Net's split 3x3 convolutions."""
    g = _builder("res2net50_26w_4s")
    y = g.conv(_input(g, batch, 224), 64, 7, "conv1", stride=2, pads=3, act="relu")
    y = g.max_pool(y, 3, 2, 1, "maxpool")
    for stage, depth in enumerate((3, 4, 6, 3)):
        for i in range(depth):
            stride = 2 if stage and i == 0 else 1
            y = res2net_block(g, y, 64 * 2**stage, 26 * 2**stage, stride, i == 0, f"layer{stage + 1}.{i}")
    classifier(g, y, 1000)
    return g.model()


# -- Inception-v3 -------------------------------------------------------------------------------------------------
def rect_conv(g: GraphBuilder, x: Tensor, cout: int, kernel: int | tuple[int, int], name: str,
              stride: int = 1, pad: int | tuple[int, int] = 0) -> Tensor:
    """torchvision ``BasicConv2d`` (conv, folded BN, ReLU) with the rectangular kernels Inception uses."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    ph, pw = (pad, pad) if isinstance(pad, int) else pad
    weight = g.params.take(f"{name}.weight", (cout, x.channels, kh, kw), he(x.channels * kh * kw))
    bias = g.params.take(f"{name}.bias", (cout,), normal(0.05))
    n, _, h, w = x.shape
    shape = (n, cout, conv_size(h, kh, stride, ph, ph), conv_size(w, kw, stride, pw, pw))
    y = g.op("Conv", [x, g.initializer(f"{name}.weight", weight), g.initializer(f"{name}.bias", bias)], name,
             shape, kernel_shape=[kh, kw], strides=[stride, stride], pads=[ph, pw, ph, pw])
    return g.activation(y, "relu", f"{name}_relu")


def inception_a(g: GraphBuilder, x: Tensor, pool_features: int, name: str) -> Tensor:
    b1 = rect_conv(g, x, 64, 1, f"{name}.branch1x1")
    b5 = rect_conv(g, rect_conv(g, x, 48, 1, f"{name}.branch5x5_1"), 64, 5, f"{name}.branch5x5_2", pad=2)
    b3 = rect_conv(g, x, 64, 1, f"{name}.branch3x3dbl_1")
    b3 = rect_conv(g, b3, 96, 3, f"{name}.branch3x3dbl_2", pad=1)
    b3 = rect_conv(g, b3, 96, 3, f"{name}.branch3x3dbl_3", pad=1)
    bp = rect_conv(g, pool(g, "AveragePool", x, 3, 1, 1, f"{name}.avgpool"), pool_features, 1,
                   f"{name}.branch_pool")
    return concat(g, [b1, b5, b3, bp], name)


def inception_b(g: GraphBuilder, x: Tensor, name: str) -> Tensor:
    b3 = rect_conv(g, x, 384, 3, f"{name}.branch3x3", stride=2)
    bd = rect_conv(g, x, 64, 1, f"{name}.branch3x3dbl_1")
    bd = rect_conv(g, bd, 96, 3, f"{name}.branch3x3dbl_2", pad=1)
    bd = rect_conv(g, bd, 96, 3, f"{name}.branch3x3dbl_3", stride=2)
    return concat(g, [b3, bd, pool(g, "MaxPool", x, 3, 2, 0, f"{name}.maxpool")], name)


def conv_chain(g: GraphBuilder, x: Tensor, layers: list[tuple[int, int | tuple[int, int], int | tuple[int, int]]],
               name: str, first: int = 1) -> Tensor:
    """Convolutions ``(cout, kernel, pad)`` in sequence, named ``{name}_{first}``, ``{name}_{first + 1}`` ..."""
    for i, (cout, kernel, pad) in enumerate(layers):
        x = rect_conv(g, x, cout, kernel, f"{name}_{first + i}", pad=pad)
    return x


def inception_c(g: GraphBuilder, x: Tensor, c7: int, name: str) -> Tensor:
    row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
    b1 = rect_conv(g, x, 192, 1, f"{name}.branch1x1")
    b7 = conv_chain(g, x, [(c7, 1, 0), (c7, *row), (192, *col)], f"{name}.branch7x7")
    bd = conv_chain(g, x, [(c7, 1, 0), (c7, *col), (c7, *row), (c7, *col), (192, *row)], f"{name}.branch7x7dbl")
    bp = rect_conv(g, pool(g, "AveragePool", x, 3, 1, 1, f"{name}.avgpool"), 192, 1, f"{name}.branch_pool")
    return concat(g, [b1, b7, bd, bp], name)


def inception_d(g: GraphBuilder, x: Tensor, name: str) -> Tensor:
    b3 = rect_conv(g, rect_conv(g, x, 192, 1, f"{name}.branch3x3_1"), 320, 3, f"{name}.branch3x3_2", stride=2)
    b7 = conv_chain(g, x, [(192, 1, 0), (192, (1, 7), (0, 3)), (192, (7, 1), (3, 0))], f"{name}.branch7x7x3")
    b7 = rect_conv(g, b7, 192, 3, f"{name}.branch7x7x3_4", stride=2)
    return concat(g, [b3, b7, pool(g, "MaxPool", x, 3, 2, 0, f"{name}.maxpool")], name)


def inception_e(g: GraphBuilder, x: Tensor, name: str) -> Tensor:
    def fork(y: Tensor, branch: str) -> Tensor:
        a = rect_conv(g, y, 384, (1, 3), f"{branch}a", pad=(0, 1))
        b = rect_conv(g, y, 384, (3, 1), f"{branch}b", pad=(1, 0))
        return concat(g, [a, b], f"{branch}cat")

    b1 = rect_conv(g, x, 320, 1, f"{name}.branch1x1")
    b3 = fork(rect_conv(g, x, 384, 1, f"{name}.branch3x3_1"), f"{name}.branch3x3_2")
    bd = conv_chain(g, x, [(448, 1, 0), (384, 3, 1)], f"{name}.branch3x3dbl")
    bd = fork(bd, f"{name}.branch3x3dbl_3")
    bp = rect_conv(g, pool(g, "AveragePool", x, 3, 1, 1, f"{name}.avgpool"), 192, 1, f"{name}.branch_pool")
    return concat(g, [b1, b3, bd, bp], name)


def inception_v3(batch: int = 1) -> onnx.ModelProto:
    """torchvision Inception-v3 at 299x299 without the aux head: Mixed_5b..Mixed_7c, avgpool, FC 1000."""
    g = _builder("inception_v3")
    y = rect_conv(g, _input(g, batch, 299), 32, 3, "Conv2d_1a_3x3", stride=2)
    y = rect_conv(g, y, 32, 3, "Conv2d_2a_3x3")
    y = rect_conv(g, y, 64, 3, "Conv2d_2b_3x3", pad=1)
    y = rect_conv(g, g.max_pool(y, 3, 2, 0, "maxpool1"), 80, 1, "Conv2d_3b_1x1")
    y = g.max_pool(rect_conv(g, y, 192, 3, "Conv2d_4a_3x3"), 3, 2, 0, "maxpool2")
    for mixed, features in (("5b", 32), ("5c", 64), ("5d", 64)):
        y = inception_a(g, y, features, f"Mixed_{mixed}")
    y = inception_b(g, y, "Mixed_6a")
    for mixed, c7 in (("6b", 128), ("6c", 160), ("6d", 160), ("6e", 192)):
        y = inception_c(g, y, c7, f"Mixed_{mixed}")
    y = inception_e(g, inception_e(g, inception_d(g, y, "Mixed_7a"), "Mixed_7b"), "Mixed_7c")
    classifier(g, y, 1000)
    return g.model()


# -- MobileNetV2 --------------------------------------------------------------------------------------------------
#: torchvision's inverted residual settings: expansion t, channels c, repeats n, first stride s
MOBILENETV2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1))


def inverted_residual(g: GraphBuilder, x: Tensor, expand: int, cout: int, stride: int, name: str) -> Tensor:
    hidden = x.channels * expand
    y = g.conv(x, hidden, 1, f"{name}.expand", act="relu6") if expand != 1 else x
    y = g.conv(y, hidden, 3, f"{name}.dw", stride=stride, groups=hidden, act="relu6")
    y = g.conv(y, cout, 1, f"{name}.project", bn=f"{name}.project_bn", bn_gain=0.3)
    return g.add(x, y, name) if stride == 1 and x.channels == cout else y


def mobilenetv2(batch: int = 1) -> onnx.ModelProto:
    """torchvision MobileNetV2 1.0 at 224: ReLU6 as Clip(0, 6), 1x1 to 1280, global average pool, FC 1000."""
    g = _builder("mobilenetv2")
    y = g.conv(_input(g, batch, 224), 32, 3, "features.0", stride=2, act="relu6")
    index = 1
    for expand, cout, repeats, stride in MOBILENETV2:
        for i in range(repeats):
            y = inverted_residual(g, y, expand, cout, stride if i == 0 else 1, f"features.{index}")
            index += 1
    classifier(g, g.conv(y, 1280, 1, f"features.{index}", act="relu6"), 1000)
    return g.model()


NETWORKS = {"yolov5s": yolov5s, "resnet50_timm": resnet50_timm, "res2net50_26w_4s": res2net50_26w_4s,
            "inception_v3": inception_v3, "mobilenetv2": mobilenetv2}


# -- statistics and the table -------------------------------------------------------------------------------------
def parameters(model: onnx.ModelProto) -> int:
    """Weights and biases of the convolutions and FC layers (not Resize scales or Split sizes)."""
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.name.endswith((".weight", ".bias")))


def macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of the convolutions, from the inferred output shapes (the FC is a 1x1 conv here)."""
    inferred = shape_inference.infer_shapes(model)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*inferred.graph.value_info, *inferred.graph.output)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    return sum(int(np.prod(dims[node.output[0]])) * int(np.prod(weights[node.input[1]][1:]))
               for node in model.graph.node if node.op_type == "Conv")


def estimate_ms(model: onnx.ModelProto, precision: str) -> tuple[float, float]:
    """Latency (ms) and images/s on one DRIVE Orin DLA core, placement from dlakit check."""
    from dlakit.model import load_model
    from dlakit.perf import conditions_for, evaluate, prepare
    from dlakit.targets import resolve_target

    target = resolve_target("drive-orin")
    est = evaluate(prepare(load_model(model), target, precision), *conditions_for(target, cores=1,
                                                                                  precision=precision))
    return est.latency_ms, est.images_per_second


def main() -> None:
    yolo640 = yolov5s(size=640)
    print(f"yolov5s at 640: {parameters(yolo640) / 1e6:.2f} M parameters (Ultralytics 7.2), "
          f"{macs(yolo640) / 1e9:.2f} GMACs (Ultralytics 16.5 GFLOPs = 8.2 GMACs)\n")
    head = f"{'network':18s} {'input':>9s} {'params M':>8s} {'GMACs':>6s} {'nodes':>5s} {'INT8 ms':>8s} " \
           f"{'FP16 ms':>8s}"
    print("one DRIVE Orin DLA core, batch 1, default power mode\n" + head + "\n" + "-" * len(head))
    for name, build in NETWORKS.items():
        model = build()
        shape = model.graph.input[0].type.tensor_type.shape.dim
        int8, _ = estimate_ms(model, "int8")
        fp16, _ = estimate_ms(model, "fp16")
        print(f"{name:18s} {shape[2].dim_value:>4d}x{shape[3].dim_value:<4d} {parameters(model) / 1e6:8.2f} "
              f"{macs(model) / 1e9:6.2f} {len(model.graph.node):5d} {int8:8.3f} {fp16:8.3f}")
    ips = {b: estimate_ms(yolov5s(batch=b), "int8")[1] for b in (1, 4, 16)}
    print("\nyolov5s 672, INT8, one DRIVE Orin DLA core, images/s at batch 1 / 4 / 16: "
          + " / ".join(f"{v:.1f}" for v in ips.values()))


if __name__ == "__main__":
    main()
