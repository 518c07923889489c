"""The six reference networks: what each one is, what it is checked against, and what is assumed.

``measured_*`` are what :func:`dlakit.zoo.build` produces (prepared form, per image, counted by
``dlakit.model``); a test rebuilds every network and insists they still hold, so ``dlakit zoo list`` can show
them without building anything. ``published_*`` are the figures the originals are known by, with their source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dlakit.zoo.layers import BuildConfig, GraphBuilder
from dlakit.zoo.resnet import build_resnet34_backbone, build_resnet50
from dlakit.zoo.retinanet import LEVELS, build_retinanet_resnet34, build_retinanet_resnext50
from dlakit.zoo.ssd import build_ssd_mobilenetv1, build_ssd_resnet34

Builder = Callable[[GraphBuilder, BuildConfig], None]


@dataclass(frozen=True)
class Network:
    """One reference network: how to build it and how to judge a build of it."""

    name: str
    title: str
    builder: Builder = field(repr=False)
    input_hw: tuple[int, int]
    default_batch: int
    classes: int
    postprocess: str
    #: prepared output -> published tensors whose channel concatenation it equals (reshaped to its shape)
    cut_points: Mapping[str, tuple[str, ...]]
    measured_params: int
    measured_gmacs: float
    published_params_m: float | None = None
    published_gmacs: float | None = None
    published_source: str = ""
    matches: str = ""
    assumptions: tuple[str, ...] = ()
    #: a reduced input size (height, width) that keeps every feature map valid, for quick runs
    small_hw: tuple[int, int] = (128, 128)
    input_name: str = "input"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.default_batch, 3, *self.input_hw)


def _levels(*kinds: str) -> dict[str, tuple[str, ...]]:
    return {f"{kind}.{level}": (f"{kind}.{level}",) for kind in kinds for level in LEVELS}



NETWORKS: dict[str, Network] = {n.name: n for n in (
    Network(
        name="resnet50", title="MLPerf ResNet-50 v1.5", builder=build_resnet50, input_hw=(224, 224),
        default_batch=2, classes=1001, postprocess="Softmax, TopK/ArgMax",
        cut_points={"logits": ("logits",)},
        measured_params=25_532_521, measured_gmacs=4.089,
        published_params_m=25.6, published_gmacs=3.9,
        published_source="MLPerf Inference paper (Reddi et al. 2019), Table 1: 25.6 M parameters, 7.8 GOPs/image",
        matches="Bottleneck [3, 4, 6, 3] with the stride on the 3x3 conv (v1.5), 1001 classes as MLPerf's ONNX.",
        assumptions=("MLPerf counts 7.8 GOPs = 3.9 G MACs; torchvision-style counting of v1.5 gives 4.1 G MACs "
                     "(the 3x3-stride change adds ~5% over v1).",),
        small_hw=(64, 64),
    ),
    Network(
        name="ssd-resnet34", title="MLPerf SSD-ResNet-34 1200x1200", builder=build_ssd_resnet34,
        input_hw=(1200, 1200), default_batch=1, classes=81,
        postprocess="Softmax, decode 15130 boxes, NMS",
        cut_points={f"head.{i}": (f"loc.{i}", f"conf.{i}") for i in range(6)},
        measured_params=19_967_606, measured_gmacs=216.416,
        published_params_m=36.3, published_gmacs=216.5,
        published_source="MLPerf Inference paper, Table 1: 36.3 M parameters, 433 GOPs/image",
        matches="MLPerf ssd_r34.py: ResNet-34 to conv4_x with its stride 1, extra layers, 3x3/3 loc and conf "
                "heads, 50/25/13/7/3/3 grids with 4/6/6/6/4/4 boxes = 15130 default boxes, 81 classes.",
        assumptions=("MACs match MLPerf's 433 GOPs to 0.05%, parameters do not: this graph has 19.97 M (prepared; "
                     "20.04 M with BN statistics) against the published 36.3 M. Weights the graph never uses "
                     "(ResNet-34's conv5_x and fc, 13.6 M, sit in the checkpoint) would explain most but not all "
                     "of the gap; unresolved.",
                     "Default boxes follow MLPerf's dboxes_R34_coco (scales 21..315 of 300, ratios 2/3) and are "
                     "ordered to match its view(N, 4, -1) flattening.",
                     "Loc and conf heads fused per level in the prepared form (one conv, loc channels first)."),
        small_hw=(400, 400),
    ),
    Network(
        name="ssd-mobilenetv1", title="MLPerf SSD-MobileNetV1 300x300 (TF OD API)",
        builder=build_ssd_mobilenetv1, input_hw=(300, 300), default_batch=2, classes=91,
        postprocess="Sigmoid, decode 1917 boxes, NMS",
        cut_points={f"box_predictor.{i}": (f"box_predictor.{i}.box", f"box_predictor.{i}.class")
                    for i in range(6)},
        measured_params=6_807_169, measured_gmacs=1.237,
        published_params_m=6.9, published_gmacs=1.235,
        published_source="MLPerf Inference paper, Table 1: 6.91 M parameters, 2.47 GOPs/image",
        matches="TF OD API ssd_mobilenet_v1_coco: MobileNetV1 to Conv2d_13, maps 19/10/5/3/2/1 with 3/6/6/6/6/6 "
                "boxes = 1917, 1x1 box predictors, 91 classes, ReLU6, TF SAME padding.",
        assumptions=("Anchors as multiple_grid_anchor_generator (scales 0.2-0.95, ratios 1/2/0.5/3/0.33); "
                     "box coder scales 10/10/5/5; NMS constants (IoU 0.6, score 0.3, 100 per class) are illustrative.",
                     "Box-encoding and class-prediction convs fused per level in the prepared form."),
        small_hw=(300, 300),
    ),
    Network(
        name="retinanet-resnext50", title="MLPerf RetinaNet ResNeXt-50 32x4d FPN 800x800",
        builder=build_retinanet_resnext50, input_hw=(800, 800), default_batch=1, classes=264,
        postprocess="Sigmoid, decode 120087 boxes, NMS", cut_points=_levels("cls_logits", "bbox_reg"),
        measured_params=37_094_772, measured_gmacs=201.208,
        published_params_m=37.97, published_gmacs=None,
        published_source="MLPerf Inference RetinaNet: 37.97 M parameters as given in the project brief "
                         "(not verified offline; no MAC figure found)",
        matches="torchvision retinanet_resnet50_fpn (v1) structure with a ResNeXt-50 32x4d body, P3-P7, "
                "9 anchors, 264 classes, towers of 4 conv3x3+ReLU shared across levels.",
        assumptions=("Parameters: 37.09 M prepared, 37.13 M counted as torchvision does (BN gamma and beta), "
                     "2.2% under the 37.97 M figure; the gap is not explained by 264 vs 265 classes or BN "
                     "statistics (P6 from C5 would overshoot by 4 M).",
                     "P6 is computed from P5 (LastLevelP6P7(256, 256)), as in torchvision v1.",
                     "The published form decodes and runs NMS over all levels at once (torchvision keeps the "
                     "top 1000 per level first).", "No head convs are fused in the prepared form: the towers "
                     "read different tensors."),
        small_hw=(256, 256),
    ),
    Network(
        name="retinanet-resnet34", title="RetinaNet ResNet-34 FPN 1280x768", builder=build_retinanet_resnet34,
        input_hw=(768, 1280), default_batch=1, classes=4, postprocess="Sigmoid, decode 184140 boxes, NMS",
        cut_points=_levels("cls_logits", "bbox_reg"),
        measured_params=29_343_312, measured_gmacs=184.655,
        published_source="NVIDIA DLA-SW sparsity case study (Waymo 2D detection); no parameter figure published",
        matches="Same FPN and heads as retinanet-resnext50 on a ResNet-34 body (C3-C5 of 128/256/512 channels).",
        assumptions=("4 classes (Waymo vehicle, pedestrian, cyclist, sign); NVIDIA does not publish the head.",
                     "Input H=768, W=1280 (NVIDIA's '1280x768' read as width x height); FPN width 256 as torchvision."),
        small_hw=(256, 384),
    ),
    Network(
        name="resnet34-backbone", title="ResNet-34 backbone 1280x768", builder=build_resnet34_backbone,
        input_hw=(768, 1280), default_batch=1, classes=0, postprocess="none",
        cut_points={"layer4.2_relu": ("layer4.2_relu",)},
        measured_params=21_276_160, measured_gmacs=71.770,
        published_source="NVIDIA DLA-SW performance table (ResNet-34 backbone 1280x768); torchvision ResNet-34 "
                         "without fc has 21.28 M parameters",
        matches="torchvision ResNet-34 conv1..layer4 (conv1..conv5_x), output 512 x 24 x 40.",
        assumptions=("Single output (C5); the FPN taps of the RetinaNet are not outputs.",),
        small_hw=(128, 128),
    ),
)}


def canonical(name: str) -> str:
    """Zoo names are matched without regard to case or to ``_`` versus ``-``."""
    return name.strip().lower().replace("_", "-")


def closest_name(text: str, names: list[str] | tuple[str, ...]) -> str | None:
    """The name ``text`` most likely meant: equal once case, ``-``, ``_``, spaces and dots are ignored
    (``resnet-50`` → ``resnet50``), else the nearest spelling; None when nothing is close."""
    import difflib

    def compact(name: str) -> str:
        return "".join(ch for ch in name.lower() if ch.isalnum())

    for name in names:
        if compact(name) == compact(text):
            return name
    close = difflib.get_close_matches(compact(text), [compact(n) for n in names], n=1, cutoff=0.75)
    return next((n for n in names if close and compact(n) == close[0]), None)


def suggestion(text: str) -> str:
    """`` (did you mean NAME?)`` for a near-miss of a zoo name, else empty."""
    close = closest_name(text, list(NETWORKS))
    return f" (did you mean {close}?)" if close else ""


def is_zoo_name(text: object) -> bool:
    return isinstance(text, str) and canonical(text) in NETWORKS
