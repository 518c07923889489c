"""``fix``: preparation passes, the rule library to a fixpoint, clean-up — on a copy of the user's model.

Order matters and mirrors NVIDIA's preparation scripts: cut first (post-processing never needs rewriting), fold
constants (rules read weights and indices as arrays), rewrite to a fixpoint, then fuse sibling convolutions (after
the folds, so a conv + BatchNorm pair fuses as one conv). Given a target and check's placement score (as
:func:`dlakit.analysis.fix_model` passes it), a placement guard then makes sure the
rules as a whole do not leave ``check``'s verdict worse than the preparation passes alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnx.version_converter
import onnx_ir as ir

from dlakit.errors import DlakitError
from dlakit.model import LoadedModel, load_model
from dlakit.rewrite.engine import Applied, Refused, Rule, apply_rules, reload
from dlakit.rewrite.passes import CutReport, cut_at_outputs, cut_postprocess, fold_constants, fuse_sibling_convs
from dlakit.rewrite.rules import ALL_RULES, RULES
from dlakit.rewrite.verify import MIN_IR_VERSION
from dlakit.vocab import Precision

if TYPE_CHECKING:
    from dlakit.targets import Target

#: Models older than this opset are upgraded first: TensorRT's ONNX parser and ONNX Runtime's kernels start here,
#: and the rules emit ops (Cast with a type enum, Reshape with a shape input) in their modern forms.
MIN_OPSET = 9

#: Graph-level passes, selectable with --rules/--skip-rules like the rules.
PASS_IDS = ("constant-folding", "fuse-sibling-convs")


@dataclass
class FixOptions:
    outputs: list[str] | None = None
    cut_postprocess: bool = False
    rules: list[str] | None = None  # None = all
    skip_rules: list[str] = field(default_factory=list)
    target: Target | None = None
    #: with a target and a placement score: drop rules whose rewrites leave the placement worse (see
    #: :func:`guard_placement`)
    guard: bool = True
    precision: str = Precision.INT8


@dataclass
class FixResult:
    model: LoadedModel
    applied: list[Applied] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    cut: CutReport | None = None
    folded_nodes: int = 0
    #: rules the placement guard left out, with why
    guarded: dict[str, str] = field(default_factory=dict)
    #: ``model``'s ``dlakit.check.CheckReport`` on the fix's target where the guard's score placed it
    #: (:func:`dlakit.analysis.fix_model` keeps it, so that the caller need not place the model again); rewrite does
    #: not import check, hence ``Any``
    placement: Any = field(default=None, repr=False)

    def proto(self) -> onnx.ModelProto:
        return ir.serde.serialize_model(self.model.model)


def known_ids() -> list[str]:
    return [*RULES, *PASS_IDS]


def select_rules(rules: list[str] | None, skip: list[str]) -> tuple[list[Rule], set[str]]:
    """The rules and passes enabled by --rules / --skip-rules; unknown ids are a one-line error."""
    known = known_ids()
    for rule_id in [*(rules or []), *skip]:
        if rule_id not in known:
            raise DlakitError(f"unknown rule '{rule_id}'; known rules: {', '.join(known)}")
    wanted = set(rules) if rules is not None else set(known)
    wanted -= set(skip)
    return [r for r in ALL_RULES if r.id in wanted], {p for p in PASS_IDS if p in wanted}


def copy_model(loaded: LoadedModel) -> LoadedModel:
    """A private copy to rewrite, upgraded to :data:`MIN_OPSET` when older (kept as is if conversion fails)."""
    proto = ir.serde.serialize_model(loaded.model)
    if loaded.opset < MIN_OPSET:
        # the converter raises bare RuntimeErrors on ops it cannot adapt: then rewrite at the old opset
        with contextlib.suppress(Exception):
            proto = onnx.version_converter.convert_version(proto, MIN_OPSET)
    fresh = load_model(proto)
    fresh.source = loaded.source
    fresh.model.ir_version = max(fresh.model.ir_version, MIN_IR_VERSION)
    return fresh


#: Placement quality of a model for the options' target, best first (see :func:`dlakit.analysis.placement_score`).
Score = Callable[[LoadedModel, "FixOptions"], tuple[float, int, int, int]]


def fix_model(loaded: LoadedModel, options: FixOptions | None = None, score: Score | None = None) -> FixResult:
    """Rewrite a copy of ``loaded`` for DLA; ``loaded`` itself is left untouched.

    With a target, ``guard`` and a placement ``score``, rules that leave the placement worse than without them are
    dropped again. The score is ``check``'s, which sits above the rule library (check asks the rules whether they
    apply), so it is passed in: :func:`dlakit.analysis.fix_model` is this function with check's score.
    """
    options = options or FixOptions()
    result = _fix_once(loaded, options)
    if options.guard and options.target is not None and score is not None and result.applied:
        result = guard_placement(loaded, options, result, score)
    return result


def guard_placement(loaded: LoadedModel, options: FixOptions, result: FixResult, score_of: Score) -> FixResult:
    """Never leave the placement worse than the preparation passes alone would.

    A rewrite can turn a GPU op into a DLA op that sits between GPU ops (an island): the op moves, but two
    transitions and a loadable are added, and past 16 loadables whole convolutions spill to the GPU. When all rules
    together score worse than none (DLA MAC share, then transitions, GPU nodes, loadables), rules are added back one at
    a time in registry order and each is kept only if the placement does not get worse with it.
    """
    score = score_of(result.model, options)
    rules, passes = select_rules(options.rules, options.skip_rules)

    def trial(rule_ids: list[str]) -> tuple[FixResult, tuple[float, int, int, int]]:
        trial_options = FixOptions(outputs=options.outputs, cut_postprocess=options.cut_postprocess,
                                   rules=[*passes, *rule_ids], target=options.target, guard=False,
                                   precision=options.precision)
        fixed = _fix_once(loaded, trial_options)
        return fixed, score_of(fixed.model, trial_options)

    best_result, best = trial([])
    if score >= best:
        return result
    applied = {a.rule for a in result.applied}
    kept: list[str] = []
    guarded: dict[str, str] = {}
    for rule in rules:
        if rule.id not in applied:
            continue
        fixed, with_rule = trial([*kept, rule.id])
        if with_rule >= best:
            kept.append(rule.id)
            best_result, best = fixed, with_rule
        else:
            guarded[rule.id] = (f"with it: DLA MACs {with_rule[0]:.1%} (without: {best[0]:.1%}), transitions "
                                f"{-with_rule[1]} (without: {-best[1]}), GPU nodes {-with_rule[2]} (without: "
                                f"{-best[2]}), loadables {-with_rule[3]} (without: {-best[3]})")
    best_result.guarded = guarded
    return best_result


def _fix_once(loaded: LoadedModel, options: FixOptions) -> FixResult:
    rules, passes = select_rules(options.rules, options.skip_rules)
    model = copy_model(loaded)
    result = FixResult(model=model)
    if options.outputs:
        result.cut = cut_at_outputs(model.graph, options.outputs)
        model = reload(model)
    elif options.cut_postprocess:
        result.cut = cut_postprocess(model.graph, dict(model.model.opset_imports), model.model.ir_version)
        if result.cut is not None:
            model = reload(model)
    if "constant-folding" in passes:
        folded = fold_constants(model.model, model.opset)
        result.folded_nodes = len(folded)
        if folded:
            model = reload(model)
    model, applied, refused = apply_rules(model, rules, target=options.target)
    result.applied.extend(applied)
    result.refused.extend(refused)
    if applied and "constant-folding" in passes:  # rules may leave weight reshapes and the like behind
        folded = fold_constants(model.model, model.opset)
        result.folded_nodes += len(folded)
        if folded:
            model = reload(model)
    if "fuse-sibling-convs" in passes:
        fused = fuse_sibling_convs(model.graph, model.opset)
        if fused:
            result.applied.extend(fused)
            model = reload(model)
    result.model = reload(model)
    return result


def blame(loaded: LoadedModel, options: FixOptions, result: FixResult, feeds: Mapping[str, np.ndarray],
          tolerance: float, limit: int = 12) -> list[str]:
    """The applied rules whose omission alone makes verification pass: what to ``--skip-rules`` after a failure.

    Re-runs fix once per distinct applied rule (at most ``limit``), so it is only done when verification failed.
    """
    from dlakit.rewrite.verify import verify

    suspects = []
    for rule_id in list(dict.fromkeys(a.rule for a in result.applied))[:limit]:
        trial = FixOptions(outputs=options.outputs, cut_postprocess=options.cut_postprocess, rules=options.rules,
                           skip_rules=[*options.skip_rules, rule_id], target=options.target, guard=False,
                           precision=options.precision)
        if verify(loaded, fix_model(loaded, trial).proto(), feeds, tolerance).passed:
            suspects.append(rule_id)
    return suspects
