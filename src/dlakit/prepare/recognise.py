"""Recognise the six reference networks by structure, with the evidence for (and against) each verdict.

Each reference network has a *signature*: required signals (its body and its head, which decide the recipe) and
supporting ones (class count, input size, v1.5 stride placement, ReLU6, post-processing ops) that are reported but
do not decide, because a user's fine-tuned or resized copy of a reference network takes the same recipe. Signals
come from :class:`~dlakit.prepare.structure.Structure`, so renaming nodes, tensors or the file changes nothing.

Required signals:

* resnet50: 16 bottleneck (1x1-3x3-1x1) residual blocks in stages [3, 4, 6, 3], ungrouped; one classifier head
  (global pool: ReduceMean over H, W / GlobalAveragePool / full-map AveragePool, through Flatten/Squeeze/Reshape,
  into Gemm, MatMul(+Add) or a 1x1 Conv).
* resnet34-backbone: 16 basic (3x3-3x3) blocks [3, 4, 6, 3]; no head and no post-processing.
* ssd-resnet34: 13 basic blocks [3, 4, 6] (ResNet-34 to conv4_x); 6 levels of box + class convolutions with
  4/6/6/6/4/4 boxes per cell (box channels = 4·k, class channels = k·classes).
* ssd-mobilenetv1: 13 depthwise-separable blocks (depthwise conv → 1x1 conv) and no residual blocks; 6 levels with
  3/6/6/6/6/6 boxes per cell.
* retinanet-resnext50 / retinanet-resnet34: bottleneck blocks with 32-group 3x3 convs / basic blocks, [3, 4, 6, 3];
  an FPN (≥ 2 top-down Resize + Add merges); 5 levels with 9 anchors per cell.

A *head* is a linear layer with constant weights after which no such layer follows, outside residual blocks; a
level is the feature map a head hangs from (walking back through same-size head towers). At the reference input
sizes the box counts come out as published (15130, 1917, 120087); they are shown, not required, since a resized
network keeps its recipe.

Limits: a network is recognised only at full depth (a ResNet-18 or a MobileNetV2 is generic); heads must be plain
convolutions (or a linear layer for the classifier) whose outputs go only into layout/decoding ops; a model whose
heads are already fused per level matches only if its channel counts give one class count for the reference
boxes per cell; preprocessing in the graph (Cast/Sub/Mul on a uint8 NHWC image, a Transpose) is left in place;
control flow after the heads is dropped (:mod:`dlakit.prepare.precut`), control flow before them is an error.
Anything not recognised gets the generic recipe, with the closest signature and what it missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dlakit.prepare.structure import Head, Structure

GENERIC = "generic"


@dataclass(frozen=True)
class Signal:
    text: str
    ok: bool
    required: bool = True


@dataclass
class Recognition:
    network: str
    reason: str
    evidence: list[Signal] = field(default_factory=list)
    closest: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"network": self.network, "reason": self.reason, "closest": self.closest,
                "evidence": [{"signal": s.text, "ok": s.ok, "required": s.required} for s in self.evidence]}


# -- signals -------------------------------------------------------------------------------------------------------
def _blocks_text(s: Structure) -> str:
    if not s.blocks:
        return "no residual blocks"
    kinds = "/".join(sorted(s.block_kinds))
    groups = {b.groups for b in s.blocks}
    grouped = f", grouped 3x3 convs ({max(groups)} groups)" if max(groups) > 1 else ""
    return f"{len(s.blocks)} {kinds} residual blocks in stages {s.stages}{grouped}"


def body(s: Structure, kind: str, stages: list[int], groups: int = 1) -> Signal:
    ok = s.block_kinds == {kind} and s.stages == stages and {b.groups for b in s.blocks} == {groups}
    want = f"{sum(stages)} {kind} blocks {stages}" + (f" with {groups}-group 3x3 convs" if groups > 1 else "")
    return Signal(f"body: {_blocks_text(s)} (want {want})", ok)


def image_input(s: Structure, hw: tuple[int, int]) -> Signal:
    if s.input_chw is None:
        return Signal(f"input: no 3-channel image convolution found (reference {hw[0]}x{hw[1]})", False, False)
    c, h, w = s.input_chw
    return Signal(f"input: {c}x{h}x{w} at the first convolution (reference {hw[0]}x{hw[1]})", (h, w) == hw, False)


def no_heads(s: Structure) -> Signal:
    return Signal(f"head: {'none (the body is the output)' if not s.heads else f'{len(s.heads)} head layers'}",
                  not s.heads and not s.postprocess)


def classifier(s: Structure, classes: tuple[int, ...]) -> list[Signal]:
    head = s.heads[0] if len(s.heads) == 1 else None
    ok = head is not None and s.classifier_pool is not None
    text = (f"head: global pool ({s.classifier_pool}) + linear layer → {head.channels} classes" if ok and head
            else f"head: no single global-pool + linear classifier ({len(s.heads)} head layers)")
    signals = [Signal(text, ok)]
    if ok and head:
        signals.append(Signal(f"classes: {head.channels} (reference {'/'.join(map(str, classes))})",
                              head.channels in classes, False))
    return signals


def split_layout(level: list[Head]) -> tuple[int, int] | None:
    """(boxes per cell, classes) of a level with one box and one class convolution: box channels = 4·k."""
    if len(level) != 2:
        return None
    a, b = sorted(h.channels for h in level)
    for box, cls in ((a, b), (b, a)):
        if box % 4 == 0 and box and cls % (box // 4) == 0:
            return box // 4, cls // (box // 4)
    return None


def detection(s: Structure, boxes: tuple[int, ...], classes: int) -> list[Signal]:
    """Per-level box and class heads: boxes per cell must be the reference pattern (the count of levels too)."""
    levels = [lv for lv in s.levels() if all(h.hw is not None for h in lv)]
    layouts = [split_layout(lv) for lv in levels]
    found_classes: set[int] = set()
    if levels and all(layouts):
        pattern = tuple(k for k, _ in layouts)  # type: ignore[misc]
        found_classes = {c for _, c in layouts}  # type: ignore[misc]
        how = "separate box and class convs"
    elif levels and all(len(lv) == 1 for lv in levels) and len(levels) == len(boxes):
        # fused per level (already prepared): channels = k · (4 + classes) for the reference k
        per = [lv[0].channels / k - 4 for lv, k in zip(levels, boxes, strict=True)]
        ok = all(p == int(p) and p > 0 for p in per) and len(set(per)) == 1
        pattern = boxes if ok else ()
        found_classes = {int(per[0])} if ok else set()
        how = "fused box+class conv per level"
    else:
        pattern, how = (), "no per-level box/class convolutions"
    total = sum(k * lv[0].hw[0] * lv[0].hw[1] for k, lv in zip(pattern, levels, strict=False)  # type: ignore[index]
                ) if pattern else 0
    text = (f"heads: {len(levels)} levels ({how}), boxes per cell {list(pattern)} = {total} boxes"
            f" (want {list(boxes)})")
    signals = [Signal(text, pattern == boxes and len(found_classes) == 1)]
    if found_classes:
        shown = ", ".join(map(str, sorted(found_classes)))
        signals.append(Signal(f"classes: {shown} (reference {classes})", found_classes == {classes}, False))
    return signals


def fpn(s: Structure) -> Signal:
    return Signal(f"FPN: {s.fpn_merges} top-down Resize+Add merges (want ≥ 2)", s.fpn_merges >= 2)


def postprocess(s: Structure, ops: set[str]) -> Signal:
    found = sorted(s.tail_ops)
    text = f"post-processing after the heads: {', '.join(found) if found else 'none'}"
    return Signal(text, not found or bool(ops & set(found)), False)


# -- signatures ----------------------------------------------------------------------------------------------------
def _resnet50(s: Structure) -> list[Signal]:
    strided = {b.strided_kernel for b in s.blocks} - {None}
    return [body(s, "bottleneck", [3, 4, 6, 3]), *classifier(s, (1000, 1001)), image_input(s, (224, 224)),
            Signal(f"stride on the {'3x3' if strided == {3} else '1x1'} branch conv "
                   f"({'v1.5' if strided == {3} else 'v1'}; MLPerf uses v1.5)", strided == {3}, False),
            postprocess(s, {"TopK", "ArgMax", "Softmax"})]


def _backbone(s: Structure) -> list[Signal]:
    return [body(s, "basic", [3, 4, 6, 3]), no_heads(s), image_input(s, (768, 1280))]


def _ssd_r34(s: Structure) -> list[Signal]:
    return [body(s, "basic", [3, 4, 6]), *detection(s, (4, 6, 6, 6, 4, 4), 81), image_input(s, (1200, 1200)),
            postprocess(s, {"NonMaxSuppression"})]


def _ssd_mobilenet(s: Structure) -> list[Signal]:
    return [Signal(f"body: {s.separable} depthwise-separable blocks, {_blocks_text(s)} (want 13, none)",
                   s.separable == 13 and not s.blocks),
            Signal(f"activations: {s.relu6} ReLU6 (Clip 0..6)", s.relu6 > 0, False),
            *detection(s, (3, 6, 6, 6, 6, 6), 91), image_input(s, (300, 300)),
            postprocess(s, {"NonMaxSuppression"})]


def _retinanet(kind: str, groups: int, classes: int, hw: tuple[int, int]) -> Callable[[Structure], list[Signal]]:
    def signals(s: Structure) -> list[Signal]:
        return [body(s, kind, [3, 4, 6, 3], groups), fpn(s), *detection(s, (9,) * 5, classes), image_input(s, hw),
                postprocess(s, {"NonMaxSuppression"})]
    return signals


SIGNATURES: dict[str, Callable[[Structure], list[Signal]]] = {
    "resnet50": _resnet50,
    "ssd-resnet34": _ssd_r34,
    "ssd-mobilenetv1": _ssd_mobilenet,
    "retinanet-resnext50": _retinanet("bottleneck", 32, 264, (800, 800)),
    "retinanet-resnet34": _retinanet("basic", 1, 4, (768, 1280)),
    "resnet34-backbone": _backbone,
}


def recognise(s: Structure, forced: str = "auto") -> Recognition:
    """The reference network ``s`` is (all required signals hold), or generic with the closest candidate."""
    if forced not in ("auto", GENERIC):
        return Recognition(forced, "chosen with --network", SIGNATURES[forced](s))
    if forced == GENERIC:
        return Recognition(GENERIC, "chosen with --network generic", [])
    results = {name: fn(s) for name, fn in SIGNATURES.items()}
    matches = [name for name, sig in results.items() if all(x.ok for x in sig if x.required)]
    if matches:
        best = max(matches, key=lambda n: sum(x.ok for x in results[n]))
        return Recognition(best, "every required structural signal matches", results[best])

    def score(name: str) -> tuple[int, int]:
        sig = results[name]
        return sum(x.ok for x in sig if x.required), sum(x.ok for x in sig)

    closest = max(results, key=score)
    missed = [x.text for x in results[closest] if x.required and not x.ok]
    reason = f"no reference network matched; closest is {closest}, which needs: {'; '.join(missed)}"
    return Recognition(GENERIC, reason, results[closest], closest)
