"""One recipe per reference network, applied through ``dlakit.rewrite``'s passes and rules.

A recipe says where to cut (at the heads the structure analysis found, at fix's automatic post-processing cut, or
nowhere), which of fix's rules run, and which of the extra steps of :mod:`dlakit.prepare.steps` follow. The
order is fix's: cut, fold constants, rules to a fixpoint, then the graph steps. Recipes mirror what NVIDIA's
per-model preparation scripts do:

* classifier (ResNet-50): cut at the logits (Softmax/TopK/ArgMax stay on the GPU), fold BatchNorm and constant
  Mul/Add into the convolutions, ReduceMean → AveragePool, Flatten/Squeeze + Gemm/MatMul(+Add) → 1x1 Conv, merge the
  Reshapes around it, and keep the logits 4-D.
* SSD (ResNet-34, MobileNetV1): cut at the raw box and class convolutions, fold, fuse each level's box and class
  convolutions into one (one DLA layer and one output per level).
* RetinaNet: cut at the raw head convolutions, fold, Resize sizes → scales. The two towers' first convolutions
  read the same level and could be fused, but each tower would then start with a channel Slice, and NVIDIA's
  prepared RetinaNet keeps them apart; so no sibling fusion here.
* backbone: nothing to cut; fold.
* generic: exactly ``dlakit fix --cut-postprocess`` (every rule and pass).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dlakit.analysis import fix_model
from dlakit.model import LoadedModel
from dlakit.prepare.steps import expose_fused_heads, four_d_outputs, fuse_head_siblings
from dlakit.prepare.structure import Structure
from dlakit.rewrite import FixOptions

if TYPE_CHECKING:
    from dlakit.check import CheckReport
    from dlakit.targets import Target

COMMON = ("constant-folding", "identity-removal", "fold-pad-into-conv", "fold-mul-add-into-conv")
CLASSIFIER = ("reduce-to-pool", "global-pool-to-pool", "squeeze-to-reshape", "matmul-to-conv", "reshape-merge")


@dataclass(frozen=True)
class Recipe:
    name: str
    cut: str  # "heads": at the structure's heads; "postprocess": fix's automatic cut; "none"
    rules: tuple[str, ...] | None  # None: every rule and pass (the generic recipe)
    fuse_heads: bool = False
    classifier_head: bool = False
    summary: str = ""


RECIPES: dict[str, Recipe] = {
    "resnet50": Recipe("resnet50", "heads", (*COMMON, *CLASSIFIER), classifier_head=True,
                       summary="cut at the logits; fold BN; ReduceMean → AveragePool; Gemm → 1x1 Conv; 4-D logits"),
    "ssd-resnet34": Recipe("ssd-resnet34", "heads", COMMON, fuse_heads=True,
                           summary="cut at the box/class convs; fold BN; fuse each level's box+class convs"),
    "ssd-mobilenetv1": Recipe("ssd-mobilenetv1", "heads", COMMON, fuse_heads=True,
                              summary="cut at the box/class convs; fold BN; fuse each level's box+class convs"),
    "retinanet-resnext50": Recipe("retinanet-resnext50", "heads", (*COMMON, "resize-sizes-to-scales"),
                                  summary="cut at the head convs; fold BN; Resize sizes → scales"),
    "retinanet-resnet34": Recipe("retinanet-resnet34", "heads", (*COMMON, "resize-sizes-to-scales"),
                                 summary="cut at the head convs; fold BN; Resize sizes → scales"),
    "resnet34-backbone": Recipe("resnet34-backbone", "none", COMMON, summary="fold BN (nothing to cut)"),
    "generic": Recipe("generic", "postprocess", None,
                      summary="dlakit fix --cut-postprocess: every rule and pass"),
}


@dataclass
class Step:
    name: str
    detail: str
    count: int


@dataclass
class Applied:
    """The prepared model and what each step did; ``sources`` maps every output to the original tensors."""

    model: LoadedModel
    steps: list[Step] = field(default_factory=list)
    sources: dict[str, list[str]] = field(default_factory=dict)
    refused: list[tuple[str, str, str]] = field(default_factory=list)
    #: ``model``'s INT8 placement on the target, where the fix's guard computed it and no later step changed the model
    placement: CheckReport | None = field(default=None, repr=False)


def _ops(pairs: list[tuple[str, str]]) -> str:
    counts = Counter(op for _, op in pairs)
    return ", ".join(f"{op}×{n}" for op, n in counts.most_common())


def apply_recipe(recipe: Recipe, loaded: LoadedModel, structure: Structure, target: Target | None = None) -> Applied:
    """Run ``recipe`` on a copy of ``loaded`` (which is not modified)."""
    heads = [h.output.name or "" for h in structure.heads] if recipe.cut == "heads" else None
    options = FixOptions(outputs=heads or None, cut_postprocess=recipe.cut == "postprocess",
                         rules=list(recipe.rules) if recipe.rules is not None else None, target=target)
    result = fix_model(loaded, options)
    applied = Applied(model=result.model, placement=result.placement)
    steps = applied.steps
    if result.cut is not None:
        cut = result.cut
        where = "the heads found by structure" if recipe.cut == "heads" else cut.reason
        steps.append(Step(f"cut ({where})", f"{len(cut.outputs)} outputs: {', '.join(cut.outputs[:6])}"
                          f"{', …' if len(cut.outputs) > 6 else ''}; removed {len(cut.removed)} nodes "
                          f"({_ops(cut.removed)})", len(cut.removed)))
    if result.folded_nodes:
        steps.append(Step("constant-folding", "build-time constant nodes became weights", result.folded_nodes))
    for rule, count in Counter(a.rule for a in result.applied).items():
        ops = Counter(a.op for a in result.applied if a.rule == rule)
        steps.append(Step(rule, ", ".join(f"{op}×{n}" for op, n in ops.most_common()), count))
    applied.refused = [(r.rule, r.node, r.reason) for r in result.refused]
    model = result.model
    applied.sources = {v.name or "": [v.name or ""] for v in model.graph.outputs}
    if recipe.fuse_heads and heads:
        fused = fuse_head_siblings(model, heads)
        if fused:
            applied.placement = None  # the model changed after the fix placed it
            steps.append(Step("fuse-head-siblings", "; ".join(a.node for a in fused), len(fused)))
            joined = expose_fused_heads(model)
            for name, parts in joined.items():
                applied.sources[name] = [src for part in parts for src in applied.sources.pop(part, [part])]
            if joined:
                steps.append(Step("expose-fused-heads", f"outputs {', '.join(joined)} (channel Slices removed)",
                                  len(joined)))
    if recipe.classifier_head:
        four_d = four_d_outputs(model)
        if four_d:
            applied.placement = None
            steps.append(Step("four-d-outputs", f"{', '.join(four_d)} kept as (N, C, 1, 1)", len(four_d)))
    applied.model = model
    return applied
