"""Network heads and the post-processing that stays on the GPU.

``published`` models end the way framework exports end: a classifier with ReduceMean → Flatten → Gemm → Softmax
and TopK/ArgMax, a detector with Reshape/Transpose/Concat to ``(N, boxes, classes)`` and ``(N, boxes, 4)``,
Softmax or Sigmoid scores, box decoding against constant anchors and NonMaxSuppression. None of that runs on DLA
(3-D tensors, Gather-like data movement, NMS), so the ``prepared`` form stops at the raw 4-D head convolutions, as
NVIDIA's preparation scripts cut it; the classifier becomes AveragePool + 1x1 Conv (``simplify_classification_head``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import TensorProto

from dlakit.zoo.layers import GraphBuilder, Tensor
from dlakit.zoo.weights import normal

TOP_K = 5


def classifier(g: GraphBuilder, x: Tensor, classes: int, name: str = "fc") -> Tensor:
    """Global average pool + fully connected layer; the logits tensor is named ``logits`` in both forms.

    Published: ``(N, classes)`` logits, then Softmax, TopK and ArgMax outputs. Prepared: ``(N, classes, 1, 1)``
    logits from AveragePool(window = feature map) + 1x1 Conv, the layout DLA runs.
    """
    n, c, h, w = x.shape
    weight = g.params.take(f"{name}.weight", (classes, c), normal(float(np.sqrt(1.0 / c))))
    bias = g.params.take(f"{name}.bias", (classes,), normal(0.01))
    if not g.published:
        pooled = g.op("AveragePool", [x], "avgpool", (n, c, 1, 1), kernel_shape=[h, w], strides=[1, 1],
                      pads=[0, 0, 0, 0])
        ins = [pooled.name, g.initializer(f"{name}.weight", weight.reshape(classes, c, 1, 1)),
               g.initializer(f"{name}.bias", bias)]
        logits = g.op("Conv", ins, "logits", (n, classes, 1, 1), kernel_shape=[1, 1], strides=[1, 1],
                      pads=[0, 0, 0, 0])
        g.add_output(logits)
        return logits
    pooled = g.op("ReduceMean", [x], "avgpool", (n, c, 1, 1), axes=[2, 3], keepdims=1)
    flat = g.op("Flatten", [pooled], "flatten", (n, c), axis=1)
    ins = [flat.name, g.initializer(f"{name}.weight", weight), g.initializer(f"{name}.bias", bias)]
    logits = g.op("Gemm", ins, "logits", (n, classes), transB=1)
    probs = g.op("Softmax", [logits], "probabilities", (n, classes), axis=1)
    k = g.constant("topk.k", [TOP_K], np.int64)
    g.op("TopK", [probs, k], "topk_values", (n, TOP_K), extra_outputs=["topk_indices"], axis=1)
    g.op("ArgMax", [logits], "argmax", (n,), axis=1, keepdims=0)
    g.add_output(probs)
    g.add_output("topk_values", shape=[n, TOP_K])
    g.add_output("topk_indices", TensorProto.INT64, [n, TOP_K])
    g.add_output("argmax", TensorProto.INT64, [n])
    return logits


def detection_postprocess(g: GraphBuilder, boxes: Sequence[Tensor], scores: Sequence[Tensor], *,
                          anchors: np.ndarray, layout: str, score_fn: str, variances: tuple[float, float],
                          wh_clamp: float | None = None, max_detections: int = 200,
                          iou_threshold: float = 0.5, score_threshold: float = 0.05) -> None:
    """Flatten per-level head outputs, score, decode and suppress: the GPU part of a published detector.

    ``layout`` is ``"coord_major"`` (MLPerf's PyTorch SSD: ``view(N, 4, -1)`` per level, boxes ordered
    anchor, row, column) or ``"anchor_major"`` (TF OD API and torchvision: NHWC then ``(N, -1, 4)``, boxes ordered
    row, column, anchor). ``anchors`` is ``(boxes, 4)`` as centre and size in the same coordinate order as the
    deltas (x-first for PyTorch models, y-first for TF ones); ``variances`` divide the centre and size deltas.
    """
    n = boxes[0].shape[0]
    classes = scores[0].channels * 4 // boxes[0].channels
    count = anchors.shape[0]
    if layout == "coord_major":
        loc = _concat_levels(g, boxes, 4, "boxes_raw", coord_major=True)  # (N, 4, B)
        conf = _concat_levels(g, scores, classes, "scores_raw", coord_major=True)  # (N, C, B)
        deltas = g.op("Transpose", [loc], "deltas", (n, count, 4), perm=[0, 2, 1])
        if score_fn != "softmax":
            raise ValueError("coord_major layout is used with softmax scores")
        nms_scores = g.op("Softmax", [conf], "scores_ncb", (n, classes, count), axis=1)
        out_scores = g.op("Transpose", [nms_scores], "scores", (n, count, classes), perm=[0, 2, 1])
    elif layout == "anchor_major":
        deltas = _concat_levels(g, boxes, 4, "deltas", coord_major=False)  # (N, B, 4)
        conf = _concat_levels(g, scores, classes, "scores_raw", coord_major=False)  # (N, B, C)
        op = {"sigmoid": "Sigmoid", "softmax": "Softmax"}[score_fn]
        attrs = {"axis": 2} if op == "Softmax" else {}
        out_scores = g.op(op, [conf], "scores", (n, count, classes), **attrs)
        nms_scores = g.op("Transpose", [out_scores], "scores_ncb", (n, classes, count), perm=[0, 2, 1])
    else:
        raise ValueError(f"unknown layout {layout!r}")
    if deltas.shape[1] != count:
        raise ValueError(f"{count} anchors for {deltas.shape[1]} predicted boxes")
    decoded = decode_boxes(g, deltas, anchors, variances, wh_clamp)
    nms_inputs = [decoded.name, nms_scores.name, g.constant("nms.max_output", [max_detections], np.int64),
                  g.constant("nms.iou_threshold", [iou_threshold]),
                  g.constant("nms.score_threshold", [score_threshold])]
    g.op("NonMaxSuppression", nms_inputs, "selected_indices", (-1, 3), center_point_box=0)
    g.add_output(decoded)
    g.add_output(out_scores)
    g.add_output("selected_indices", TensorProto.INT64, ["selected", 3])


def decode_boxes(g: GraphBuilder, deltas: Tensor, anchors: np.ndarray, variances: tuple[float, float],
                 wh_clamp: float | None) -> Tensor:
    """Centre/size box decoding: ``c = d_c / v_c * a_size + a_c``, ``s = exp(d_s / v_s) * a_size`` → corners."""
    n, count, _ = deltas.shape
    half_shape = (n, count, 2)
    split = g.constant("decode.split", [2, 2], np.int64)
    d_c = g.op("Split", [deltas, split], "decode.d_centre", half_shape, extra_outputs=["decode.d_size"], axis=2)
    d_s = Tensor("decode.d_size", half_shape)
    a_c = g.constant("anchors.centre", anchors[:, :2])
    a_s = g.constant("anchors.size", anchors[:, 2:])
    c = g.op("Mul", [d_c, g.constant("decode.inv_var_centre", [1.0 / variances[0]])], "decode.c0", half_shape)
    c = g.op("Mul", [c, a_s], "decode.c1", half_shape)
    c = g.op("Add", [c, a_c], "decode.centre", half_shape)
    s = g.op("Mul", [d_s, g.constant("decode.inv_var_size", [1.0 / variances[1]])], "decode.s0", half_shape)
    if wh_clamp is not None:  # torchvision clamps size deltas at log(1000 / 16) before exp
        s = g.op("Min", [s, g.constant("decode.clamp", [wh_clamp])], "decode.s_clamped", half_shape)
    s = g.op("Exp", [s], "decode.s1", half_shape)
    s = g.op("Mul", [s, a_s], "decode.size", half_shape)
    half = g.op("Mul", [s, g.constant("decode.half", [0.5])], "decode.half_size", half_shape)
    lo = g.op("Sub", [c, half], "decode.lo", half_shape)
    hi = g.op("Add", [c, half], "decode.hi", half_shape)
    return g.op("Concat", [lo, hi], "boxes", (n, count, 4), axis=2)


def _concat_levels(g: GraphBuilder, levels: Sequence[Tensor], per_box: int, name: str,
                   coord_major: bool) -> Tensor:
    n = levels[0].shape[0]
    parts = []
    for i, t in enumerate(levels):
        boxes = t.channels // per_box * t.hw[0] * t.hw[1]
        if coord_major:
            shape = g.constant(f"{name}.{i}.shape", [n, per_box, -1], np.int64)
            parts.append(g.op("Reshape", [t, shape], f"{name}.{i}", (n, per_box, boxes)))
        else:
            nhwc = g.op("Transpose", [t], f"{name}.{i}.nhwc", (n, *t.hw, t.channels), perm=[0, 2, 3, 1])
            shape = g.constant(f"{name}.{i}.shape", [n, -1, per_box], np.int64)
            parts.append(g.op("Reshape", [nhwc, shape], f"{name}.{i}", (n, boxes, per_box)))
    axis = 2 if coord_major else 1
    total = sum(p.shape[axis] for p in parts)
    shape = (n, per_box, total) if coord_major else (n, total, per_box)
    return g.op("Concat", parts, name, shape, axis=axis)


# -- anchors --------------------------------------------------------------------------------------------------
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres in units of cells, row-major: ((i + 0.5), (j + 0.5)) for i < h, j < w."""
    ii, jj = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    return ii.ravel(), jj.ravel()


def ssd_r34_anchors(image_hw: tuple[int, int], feature_hws: Sequence[tuple[int, int]]) -> np.ndarray:
    """MLPerf SSD-ResNet-34's default boxes (``dboxes_R34_coco``), (cx, cy, w, h) in [0, 1], ordered
    (box, row, column) per level as its ``view(N, 4, -1)`` flattening expects."""
    fig = np.array(image_hw, dtype=np.float64)
    scales = [s / 300.0 for s in (21, 45, 99, 153, 207, 261, 315)]  # fractions of the image side
    ratios = ([2], [2, 3], [2, 3], [2, 3], [2], [2])
    levels = []
    for idx, (fh, fw) in enumerate(feature_hws):
        steps = np.floor(fig / np.array([fh, fw]))
        fk = fig / steps
        sk1, sk2 = scales[idx], scales[idx + 1]
        sizes = [(sk1, sk1), (np.sqrt(sk1 * sk2),) * 2]
        for alpha in ratios[idx]:
            sizes += [(sk1 * np.sqrt(alpha), sk1 / np.sqrt(alpha)), (sk1 / np.sqrt(alpha), sk1 * np.sqrt(alpha))]
        ci, cj = _grid(fh, fw)
        for w, h in sizes:
            box = np.stack([cj / fk[1], ci / fk[0], np.full_like(ci, w), np.full_like(ci, h)], axis=1)
            levels.append(box)
    return np.clip(np.concatenate(levels), 0.0, 1.0).astype(np.float32)


def ssd_r34_boxes_per_cell() -> tuple[int, ...]:
    return (4, 6, 6, 6, 4, 4)


def tf_ssd_anchors(feature_hws: Sequence[tuple[int, int]], min_scale: float = 0.2,
                   max_scale: float = 0.95) -> np.ndarray:
    """TF OD API ``multiple_grid_anchor_generator`` of ssd_mobilenet_v1_coco: (cy, cx, h, w) in [0, 1], ordered
    (row, column, box); 3 boxes in the lowest layer (reduce_boxes_in_lowest_layer), 6 elsewhere."""
    layers = len(feature_hws)
    scales = [min_scale + (max_scale - min_scale) * i / (layers - 1) for i in range(layers)] + [1.0]
    out = []
    for idx, (fh, fw) in enumerate(feature_hws):
        if idx == 0:
            specs = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            specs = [(scales[idx], r) for r in (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)]
            specs.append((float(np.sqrt(scales[idx] * scales[idx + 1])), 1.0))
        ci, cj = _grid(fh, fw)
        cy, cx = ci / fh, cj / fw
        hs = np.array([s / np.sqrt(r) for s, r in specs])
        ws = np.array([s * np.sqrt(r) for s, r in specs])
        k = len(specs)
        out.append(np.stack([np.repeat(cy, k), np.repeat(cx, k), np.tile(hs, len(cy)), np.tile(ws, len(cy))],
                            axis=1))
    return np.concatenate(out).astype(np.float32)


def retinanet_anchors(image_hw: tuple[int, int], feature_hws: Sequence[tuple[int, int]],
                      base_sizes: Sequence[int] = (32, 64, 128, 256, 512)) -> np.ndarray:
    """torchvision's ``AnchorGenerator`` for RetinaNet: sizes x·2^{0,1/3,2/3}, ratios 0.5/1/2, (cx, cy, w, h) in
    pixels, ordered (row, column, anchor)."""
    out = []
    for (fh, fw), base in zip(feature_hws, base_sizes, strict=False):
        stride_h, stride_w = image_hw[0] // fh, image_hw[1] // fw
        sizes = np.array([base, int(base * 2 ** (1 / 3)), int(base * 2 ** (2 / 3))], dtype=np.float64)
        ratios = np.array([0.5, 1.0, 2.0])
        h_ratios = np.sqrt(ratios)
        ws = (sizes[None, :] / h_ratios[:, None]).ravel()
        hs = (sizes[None, :] * h_ratios[:, None]).ravel()
        ws, hs = np.round(ws), np.round(hs)  # torchvision rounds the base anchors' corners
        ii, jj = np.meshgrid(np.arange(fh) * stride_h, np.arange(fw) * stride_w, indexing="ij")
        k = len(ws)
        cy, cx = np.repeat(ii.ravel(), k), np.repeat(jj.ravel(), k)
        out.append(np.stack([cx, cy, np.tile(ws, fh * fw), np.tile(hs, fh * fw)], axis=1))
    return np.concatenate(out).astype(np.float32)
