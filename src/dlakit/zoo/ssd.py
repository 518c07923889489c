"""Single-shot detectors: MLPerf SSD-ResNet-34 (1200x1200) and TF OD API SSD-MobileNetV1 (300x300)."""

from __future__ import annotations

from dlakit.zoo.heads import detection_postprocess, ssd_r34_anchors, ssd_r34_boxes_per_cell, tf_ssd_anchors
from dlakit.zoo.layers import BuildConfig, GraphBuilder, Tensor, same_pads
from dlakit.zoo.resnet import body

# -- SSD-ResNet-34 ------------------------------------------------------------------------------------------------
#: MLPerf ssd_r34.py ``_build_additional_features``: (1x1 channels, 3x3 output channels, 3x3 stride, 3x3 padding)
R34_EXTRAS = ((256, 512, 2, 1), (256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 2, 0), (128, 256, 1, 0))
#: MLPerf's ``strides=[3, 3, 2, 2, 2, 2]``: the loc and conf heads are 3x3 convolutions with stride 3, which is
#: what turns the 150/75/38/19/9/7 feature maps of a 1200x1200 input into 50/25/13/7/3/3 box grids.
R34_HEAD_STRIDE = 3


def build_ssd_resnet34(g: GraphBuilder, cfg: BuildConfig) -> None:
    """ResNet-34 through conv4_x (torchvision layer3) with layer3's stride set to 1, five extra blocks of
    1x1 + 3x3 convolutions with ReLU, and per-level loc/conf 3x3 heads (4, 6, 6, 6, 4, 4 boxes per cell)."""
    x = g.add_input(cfg.input_name, cfg.input_shape)
    y = body(g, x, "resnet34", prefix="backbone.", stages=3, strides=(1, 2, 1))[-1]
    features = [y]
    for i, (mid, out, stride, pad) in enumerate(R34_EXTRAS):
        y = g.conv(y, g.ch(mid), 1, f"additional_blocks.{i}.0", pads=0, act="relu")
        y = g.conv(y, g.ch(out), 3, f"additional_blocks.{i}.2", stride=stride, pads=pad, act="relu")
        features.append(y)
    locs, confs = [], []
    for i, (feat, boxes) in enumerate(zip(features, ssd_r34_boxes_per_cell(), strict=True)):
        heads = [(f"loc.{i}", boxes * 4), (f"conf.{i}", boxes * cfg.classes)]
        outs = g.sibling_convs(feat, heads, 3, f"head.{i}", stride=R34_HEAD_STRIDE, pads=1)
        if g.published:
            locs.append(outs[0])
            confs.append(outs[1])
        else:
            g.add_output(outs[0])
    if g.published:
        anchors = ssd_r34_anchors(cfg.input_hw, [t.hw for t in locs])
        detection_postprocess(g, locs, confs, anchors=anchors, layout="coord_major", score_fn="softmax",
                              variances=(10.0, 5.0))


# -- SSD-MobileNetV1 ----------------------------------------------------------------------------------------------
#: TF-slim mobilenet_v1 conv defs after Conv2d_0: (depthwise stride, pointwise channels)
MOBILENET_BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
                    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))
#: ssd_mobilenet_v1 feature-map generator: extra layers' 3x3/2 output depths (1x1 depth is half of it)
MOBILENET_EXTRAS = (512, 256, 256, 128)


def _conv_same(g: GraphBuilder, x: Tensor, cout: int, kernel: int, name: str, stride: int = 1,
               groups: int = 1) -> Tensor:
    """TF conv + BatchNorm + ReLU6 with ``SAME`` padding (asymmetric for stride 2, as tf2onnx exports it)."""
    return g.conv(x, cout, kernel, name, stride=stride, pads=same_pads(x.hw, kernel, stride), groups=groups,
                  bias=False, bn=f"{name}.bn", act="relu6")


def build_ssd_mobilenetv1(g: GraphBuilder, cfg: BuildConfig) -> None:
    """MobileNetV1 (depth multiplier 1) to Conv2d_13, feature maps from Conv2d_11 (19x19) and Conv2d_13 (10x10),
    four extra 1x1 + 3x3/2 layers (5, 3, 2, 1), and 1x1 box predictors (3 boxes per cell on the first map, 6
    on the others); every conv of backbone and extras has BN and ReLU6."""
    x = g.add_input(cfg.input_name, cfg.input_shape)
    y = _conv_same(g, x, g.ch(32), 3, "mobilenet.conv0", stride=2)
    features = []
    for i, (stride, out) in enumerate(MOBILENET_BLOCKS, start=1):
        y = _conv_same(g, y, y.channels, 3, f"mobilenet.conv{i}.depthwise", stride=stride, groups=y.channels)
        y = _conv_same(g, y, g.ch(out), 1, f"mobilenet.conv{i}.pointwise")
        if i in (11, 13):
            features.append(y)
    for i, out in enumerate(MOBILENET_EXTRAS):
        y = _conv_same(g, y, g.ch(out // 2), 1, f"extras.{i}.1x1")
        y = _conv_same(g, y, g.ch(out), 3, f"extras.{i}.3x3", stride=2)
        features.append(y)
    boxes, classes = [], []
    for i, feat in enumerate(features):
        per_cell = 3 if i == 0 else 6
        heads = [(f"box_predictor.{i}.box", per_cell * 4), (f"box_predictor.{i}.class", per_cell * cfg.classes)]
        outs = g.sibling_convs(feat, heads, 1, f"box_predictor.{i}", pads=0)
        if g.published:
            boxes.append(outs[0])
            classes.append(outs[1])
        else:
            g.add_output(outs[0])
    if g.published:
        anchors = tf_ssd_anchors([t.hw for t in boxes])
        detection_postprocess(g, boxes, classes, anchors=anchors, layout="anchor_major", score_fn="sigmoid",
                              variances=(10.0, 5.0), max_detections=100, iou_threshold=0.6,
                              score_threshold=0.3)

