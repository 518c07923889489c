"""ResNet family: ResNet-50 v1.5 (MLPerf), ResNet-34 and ResNeXt-50 32x4d bodies, the ResNet-34 backbone.

Parameter names follow torchvision's state dict (``conv1.weight``, ``layer1.0.bn1.running_var``,
``layer1.0.downsample.0.weight``) under a prefix, so that a torchvision checkpoint saved with
``numpy.savez(f, **{k: v.numpy() for k, v in sd.items()})`` loads as user weights (drop ``num_batches_tracked``).
"""

from __future__ import annotations

from dlakit.zoo.heads import classifier
from dlakit.zoo.layers import BuildConfig, GraphBuilder, Tensor

#: The last BN of each residual branch starts at this fraction of the others' gain (see GraphBuilder.conv).
RESIDUAL_GAIN = 0.3

#: (block kind, blocks per stage, bottleneck groups, width per group)
BODIES = {
    "resnet34": ("basic", (3, 4, 6, 3), 1, 64),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 1, 64),
    "resnext50_32x4d": ("bottleneck", (3, 4, 6, 3), 32, 4),
}


def stem(g: GraphBuilder, x: Tensor, prefix: str) -> Tensor:
    """7x7/2 convolution, BN, ReLU and 3x3/2 max pooling: every ResNet's first quarter-resolution step."""
    y = g.conv(x, g.ch(64), 7, f"{prefix}conv1", stride=2, pads=3, bias=False, bn=f"{prefix}bn1", act="relu")
    return g.max_pool(y, 3, 2, 1, f"{prefix}maxpool")


def basic_block(g: GraphBuilder, x: Tensor, planes: int, stride: int, prefix: str) -> Tensor:
    y = g.conv(x, planes, 3, f"{prefix}.conv1", stride=stride, bias=False, bn=f"{prefix}.bn1", act="relu")
    y = g.conv(y, planes, 3, f"{prefix}.conv2", bias=False, bn=f"{prefix}.bn2", bn_gain=RESIDUAL_GAIN)
    return g.add(y, _shortcut(g, x, planes, stride, prefix), prefix, act="relu")


def bottleneck(g: GraphBuilder, x: Tensor, planes: int, stride: int, prefix: str, groups: int,
               group_width: int) -> Tensor:
    """ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution (v1 put it on the first 1x1)."""
    inner = _inner_width(g, planes, groups, group_width)
    out = planes * 4
    y = g.conv(x, inner, 1, f"{prefix}.conv1", bias=False, bn=f"{prefix}.bn1", act="relu")
    y = g.conv(y, inner, 3, f"{prefix}.conv2", stride=stride, groups=groups, bias=False, bn=f"{prefix}.bn2",
               act="relu")
    y = g.conv(y, out, 1, f"{prefix}.conv3", bias=False, bn=f"{prefix}.bn3", bn_gain=RESIDUAL_GAIN)
    return g.add(y, _shortcut(g, x, out, stride, prefix), prefix, act="relu")


def _inner_width(g: GraphBuilder, planes: int, groups: int, group_width: int) -> int:
    full = planes * group_width // 64 * groups
    if g.width == 1.0:
        return full
    return max(groups, round(full * g.width / groups) * groups)


def _shortcut(g: GraphBuilder, x: Tensor, out: int, stride: int, prefix: str) -> Tensor:
    if stride == 1 and x.channels == out:
        return x
    return g.conv(x, out, 1, f"{prefix}.downsample.0", stride=stride, pads=0, bias=False,
                  bn=f"{prefix}.downsample.1")


def body(g: GraphBuilder, x: Tensor, kind: str, prefix: str = "", stages: int = 4,
         strides: tuple[int, ...] = (1, 2, 2, 2)) -> list[Tensor]:
    """Stem and residual stages; returns each stage's output (C2, C3, C4, C5 in FPN terms)."""
    block, depths, groups, group_width = BODIES[kind]
    y = stem(g, x, prefix)
    outputs = []
    for stage in range(stages):
        planes = g.ch(64 * 2**stage)
        for i in range(depths[stage]):
            name = f"{prefix}layer{stage + 1}.{i}"
            stride = strides[stage] if i == 0 else 1
            if block == "basic":
                y = basic_block(g, y, planes, stride, name)
            else:
                y = bottleneck(g, y, planes, stride, name, groups, group_width)
        outputs.append(y)
    return outputs


def build_resnet50(g: GraphBuilder, cfg: BuildConfig) -> None:
    """MLPerf ResNet-50 v1.5 classifier (1001 classes by default, class 0 = background as in MLPerf's ONNX)."""
    x = g.add_input(cfg.input_name, cfg.input_shape)
    features = body(g, x, "resnet50")[-1]
    classifier(g, features, cfg.classes)


def build_resnet34_backbone(g: GraphBuilder, cfg: BuildConfig) -> None:
    """ResNet-34 conv1..conv5 (torchvision's layer4) without pooling or classifier: one 512-channel map."""
    x = g.add_input(cfg.input_name, cfg.input_shape)
    features = body(g, x, "resnet34")[-1]
    g.add_output(features)
