"""RetinaNet detectors: MLPerf's ResNeXt-50 32x4d FPN (800x800, 264 classes) and a ResNet-34 FPN (1280x768).

Structure follows torchvision's ``retinanet_resnet50_fpn`` (v1), on which MLPerf's reference is built: FPN over
C3-C5 with 1x1 lateral and 3x3 output convolutions, nearest top-down upsampling, P6 from P5 by a 3x3/2 conv and P7
from ReLU(P6); a classification and a regression tower of four 3x3 conv + ReLU each, then 3x3 convolutions to
9·classes logits and 9·4 box deltas. The towers' weights are shared by the five levels in the original; the ONNX
export (like MLPerf's) runs them once per level with the same initializers, and so do both forms here.
"""

from __future__ import annotations

import math

from dlakit.zoo.heads import detection_postprocess, retinanet_anchors
from dlakit.zoo.layers import BuildConfig, GraphBuilder, Tensor
from dlakit.zoo.resnet import body

ANCHORS_PER_CELL = 9
FPN_CHANNELS = 256
LEVELS = ("p3", "p4", "p5", "p6", "p7")
#: torchvision's BoxCoder clamps the exp() argument of size deltas at log(1000 / 16)
WH_CLAMP = math.log(1000.0 / 16)


def fpn(g: GraphBuilder, c3: Tensor, c4: Tensor, c5: Tensor) -> list[Tensor]:
    """P3-P7 as torchvision's FeaturePyramidNetwork + LastLevelP6P7(256, 256) compute them."""
    ch = g.ch(FPN_CHANNELS)
    inner = [g.conv(c, ch, 1, f"backbone.fpn.inner_blocks.{i}", pads=0) for i, c in enumerate((c3, c4, c5))]
    last = inner[2]
    results = [g.conv(last, ch, 3, "backbone.fpn.layer_blocks.2")]
    for i in (1, 0):
        top_down = g.upsample_to(last, inner[i], f"backbone.fpn.upsample.{i}")
        last = g.add(inner[i], top_down, f"backbone.fpn.merge.{i}")
        results.insert(0, g.conv(last, ch, 3, f"backbone.fpn.layer_blocks.{i}"))
    p6 = g.conv(results[-1], ch, 3, "backbone.fpn.extra_blocks.p6", stride=2)
    p6_relu = g.activation(p6, "relu", "backbone.fpn.extra_blocks.p6_relu")
    p7 = g.conv(p6_relu, ch, 3, "backbone.fpn.extra_blocks.p7", stride=2)
    return [*results, p6, p7]


def heads(g: GraphBuilder, levels: list[Tensor], classes: int) -> tuple[list[Tensor], list[Tensor]]:
    """Classification and regression towers applied to every level with shared weights."""
    logits, deltas = [], []
    for level, x in zip(LEVELS, levels, strict=True):
        for tower, out, store in (("classification_head", classes, logits), ("regression_head", 4, deltas)):
            y = x
            for i in range(4):
                name = f"head.{tower}.conv.{2 * i}"
                y = g.conv(y, x.channels, 3, name, act="relu", out_name=f"{name}.{level}")
            last = "cls_logits" if tower == "classification_head" else "bbox_reg"
            store.append(g.conv(y, ANCHORS_PER_CELL * out, 3, f"head.{tower}.{last}", out_name=f"{last}.{level}"))
    return logits, deltas


def _build(g: GraphBuilder, cfg: BuildConfig, kind: str) -> None:
    x = g.add_input(cfg.input_name, cfg.input_shape)
    _, c3, c4, c5 = body(g, x, kind, prefix="backbone.body.")
    levels = fpn(g, c3, c4, c5)
    logits, deltas = heads(g, levels, cfg.classes)
    if not g.published:
        for t in (*logits, *deltas):
            g.add_output(t)
        return
    anchors = retinanet_anchors(cfg.input_hw, [t.hw for t in levels])
    detection_postprocess(g, deltas, logits, anchors=anchors, layout="anchor_major", score_fn="sigmoid",
                          variances=(1.0, 1.0), wh_clamp=WH_CLAMP, max_detections=300, iou_threshold=0.5,
                          score_threshold=0.05)


def build_retinanet_resnext50(g: GraphBuilder, cfg: BuildConfig) -> None:
    """MLPerf RetinaNet: ResNeXt-50 32x4d body, 800x800 input, 264 OpenImages-MLPerf classes."""
    _build(g, cfg, "resnext50_32x4d")


def build_retinanet_resnet34(g: GraphBuilder, cfg: BuildConfig) -> None:
    """ResNet-34 FPN RetinaNet at 1280x768 (the Waymo 2D detection set-up of NVIDIA's DLA sparsity study)."""
    _build(g, cfg, "resnet34")
