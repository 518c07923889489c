"""``fix``: preparation passes, the rule library to a fixpoint, clean-up — on a copy of the user's model.

Order matters and mirrors NVIDIA's preparation scripts: cut first (post-processing never needs rewriting), fold
constants (rules read weights and indices as arrays), rewrite to a fixpoint, then fuse sibling convolutions (after
the folds, so a conv + BatchNorm pair fuses as one conv). Given a target and a score, a guard then judges every rule
that applied (and the sibling fusion) and keeps it only if the score does not get worse with it. The scores sit
above the rule library (``check`` asks the rules whether they apply, ``estimate`` prices check's placement), so
:func:`dlakit.analysis.fix_model` passes them in: for the default objective ``latency`` the images/s of
``estimate``'s model (DLA + GPU fallback + transitions), for ``dla-share`` check's placement (DLA MAC share, then
transitions, GPU nodes, loadables).
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
#: What the guard keeps a rule for: estimated end-to-end time, or check's DLA MAC share.
OBJECTIVES = ("latency", "dla-share")
#: Passes the guard prices like rules (constant folding always runs: rules read weights as arrays).
GUARDED_PASSES = ("fuse-sibling-convs",)
#: A rule is left out only when the model without it is estimated faster by more than this share (0.5 %, far inside
#: the model's error band): folding a batch norm into its convolution adds a bias that the model counts with the
#: weights in its CBUF tiling, pricing ResNet-50's folded convs 0.2 % slower, while it saves a layer to quantize.
TIE = 5e-3
#: Passes of the guard (another one only for the rules judged before a rule that was then left out).
SWEEPS = 3


@dataclass
class FixOptions:
    outputs: list[str] | None = None
    cut_postprocess: bool = False
    rules: list[str] | None = None  # None = all
    skip_rules: list[str] = field(default_factory=list)
    target: Target | None = None
    #: with a target and a score: drop rules whose rewrites make the objective worse (see :func:`guard_rules`)
    guard: bool = True
    precision: str = Precision.INT8
    #: "latency" (estimated images/s) or "dla-share" (check's placement ranking)
    objective: str = "latency"


@dataclass
class RuleEffect:
    """What the guard measured for one rule: the objective without and with it, and whether it was kept."""

    rule: str
    kept: bool
    #: estimated images/s (latency) or DLA MAC share (dla-share), without → with the rule
    without: float
    with_rule: float
    detail: str = ""

    @property
    def reason(self) -> str:
        if self.detail:
            return self.detail
        return f"estimated {self.without:,.1f} → {self.with_rule:,.1f} img/s"


@dataclass
class FixResult:
    model: LoadedModel
    applied: list[Applied] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    cut: CutReport | None = None
    folded_nodes: int = 0
    #: rules the guard left out, with why
    guarded: dict[str, str] = field(default_factory=dict)
    #: the guard's objective and what it measured per rule (empty without a target or with guard off)
    objective: str | None = None
    effects: list[RuleEffect] = field(default_factory=list)
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


#: The objective for a model, higher is better, or None where it cannot be had: ``(images/s,)`` for latency,
#: (DLA MAC share, −transitions, −GPU nodes, −loadables) for dla-share (see :mod:`dlakit.analysis`).
Score = tuple[float, ...]
Scorer = Callable[[LoadedModel, "FixOptions"], "Score | None"]


def fix_model(loaded: LoadedModel, options: FixOptions | None = None, score: Scorer | None = None) -> FixResult:
    """Rewrite a copy of ``loaded`` for DLA; ``loaded`` itself is left untouched.

    With a target, ``guard`` and a ``score`` for ``options.objective``, rules that make the score worse are dropped
    again (:func:`guard_rules`); :func:`dlakit.analysis.fix_model` is this function with the objective's score.
    """
    options = options or FixOptions()
    if options.objective not in OBJECTIVES:
        raise DlakitError(f"--objective: '{options.objective}' is not one of {', '.join(OBJECTIVES)}")
    result = _fix_once(loaded, options)
    if options.guard and options.target is not None and score is not None and result.applied:
        result = guard_rules(loaded, options, result, score)
    return result


def _better(a: Score, b: Score, objective: str) -> bool:
    """``a`` strictly better than ``b`` (for latency: by more than float noise)."""
    if objective == "latency":
        return a[0] > b[0] * (1 + TIE)
    return a > b


def _effect(rule: str, kept: bool, without: Score, with_rule: Score, objective: str) -> RuleEffect:
    if objective == "latency":
        return RuleEffect(rule, kept, without[0], with_rule[0])
    detail = (f"with it: DLA MACs {with_rule[0]:.1%} (without: {without[0]:.1%}), transitions {-with_rule[1]} "
              f"(without: {-without[1]}), GPU nodes {-with_rule[2]} (without: {-without[2]}), loadables "
              f"{-with_rule[3]} (without: {-without[3]})")
    return RuleEffect(rule, kept, without[0], with_rule[0], detail)


def guard_rules(loaded: LoadedModel, options: FixOptions, result: FixResult, score_of: Scorer) -> FixResult:
    """Keep a rule only if the objective does not get worse with it; report each rule's effect.

    The sibling-conv fusion and every rule that applied are tried (in that order) by fixing again without each:
    when the model is better without it (latency: more images/s by ``estimate``'s model), it is left out and the
    rest are measured against the model without it. Removing rules one at a time keeps rules that only pay off
    together (unrolling + sibling fusion); a rule judged while a slower one was still in is judged again in another
    sweep (at most :data:`SWEEPS`). Finally the result is compared with no rule at all, which wins if better. A rule
    is kept or left out as a whole, for every node it matched.
    """
    score = score_of(result.model, options)
    if score is None:
        return result
    rules, passes = select_rules(options.rules, options.skip_rules)
    applied = {a.rule for a in result.applied}
    # the sibling fusion first: it is the usual loser, and rules judged while a loser is still in are judged again
    candidates = [p for p in GUARDED_PASSES if p in applied] + [r.id for r in rules if r.id in applied]
    always = [p for p in passes if p not in GUARDED_PASSES]

    # scores of the rule sets tried (with one candidate, "without it" is "no rule at all"); their models are not
    # kept: a set scored before and not taken then cannot win later, as the best only improves
    tried: dict[frozenset[str], Score | None] = {}

    def trial(rule_ids: list[str]) -> tuple[FixResult | None, Score | None]:
        key = frozenset(rule_ids)
        if key in tried:
            return None, tried[key]
        trial_options = FixOptions(outputs=options.outputs, cut_postprocess=options.cut_postprocess,
                                   rules=[*always, *rule_ids], target=options.target, guard=False,
                                   precision=options.precision, objective=options.objective)
        fixed = _fix_once(loaded, trial_options)
        tried[key] = score_of(fixed.model, trial_options)
        return fixed, tried[key]

    def taken(fixed: FixResult | None, rule_ids: list[str]) -> FixResult:
        if fixed is None:  # not expected (see above); fix again rather than return a stale model
            tried.pop(frozenset(rule_ids), None)
            fixed = trial(rule_ids)[0]
        return fixed  # type: ignore[return-value]

    kept = list(candidates)
    best_result, best = result, score
    effects: dict[str, RuleEffect] = {}
    pending = list(candidates)
    for _ in range(SWEEPS):
        judged: list[str] = []
        stale: list[str] = []  # judged (and kept) before a later rule was left out: judged again next sweep
        for rule_id in pending:
            without_ids = [k for k in kept if k != rule_id]
            fixed, without = trial(without_ids)
            if without is None:
                continue
            drop = _better(without, best, options.objective)
            effects[rule_id] = _effect(rule_id, not drop, without, best, options.objective)
            if drop:
                kept, best_result, best = without_ids, taken(fixed, without_ids), without
                stale = [k for k in judged if k in kept]
            judged.append(rule_id)
        pending = stale
        if not pending:
            break
    effects = {rule_id: effects[rule_id] for rule_id in candidates if rule_id in effects}
    if kept:
        none_result, none = trial([])
        if none is not None and _better(none, best, options.objective):
            effects = {r: _effect(r, False, none, best, options.objective) if e.kept else e for r, e in effects.items()}
            best_result, best, kept = taken(none_result, []), none, []
    best_result.objective = options.objective
    final = {a.rule for a in best_result.applied}  # a kept rule that only matched inside a left-out rewrite did nothing
    best_result.effects = [e for e in effects.values() if not e.kept or e.rule in final]
    best_result.guarded = {e.rule: e.reason for e in best_result.effects if not e.kept}
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
                           precision=options.precision, objective=options.objective)
        if verify(loaded, fix_model(loaded, trial).proto(), feeds, tolerance).passed:
            suspects.append(rule_id)
    return suspects
