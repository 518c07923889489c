"""One analysis per command: the layer above ``check``, ``perf``, ``sparsity`` and the rewrite rules.

Placement is the fact every command needs. :class:`Analysis` holds a model, its target and build precision, and
computes the placement (:func:`dlakit.check.check_model`) once, the first time something asks for it; what is
derived from it (the performance model's fused ops, each convolution's 2:4 eligibility, the layers off the DLA) is
derived from that one report, also once. ``estimate``, ``quantize``, ``sparsify``, ``recover``, ``prepare``,
``trtexec`` and ``report`` take an analysis (or its :attr:`Analysis.placement`) instead of placing the model again.

``check`` decides placement and knows nothing of the packages built on it; composing them here keeps the
dependencies one way (analysis → sparsity / perf → check). Likewise ``check`` asks the rewrite rules whether they
apply (a "fixable" verdict is a promise), so fix's guard, which scores a rewrite by ``estimate``'s images/s (priced on
check's placement) or by check's placement, is composed here (:func:`fix_model`) rather than in ``rewrite``; the fix
result keeps the placement of its model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from dlakit.check import CheckReport
from dlakit.errors import DlakitError
from dlakit.model import LoadedModel
from dlakit.rewrite import FixOptions, FixResult
from dlakit.rewrite import fix_model as fix_rules
from dlakit.targets import Target
from dlakit.vocab import Precision

if TYPE_CHECKING:
    from dlakit.perf import Prepared


@dataclass
class Analysis:
    """``model`` on ``target`` at ``precision``: placement computed once, everything else derived from it."""

    model: LoadedModel
    target: Target
    precision: Precision = Precision.INT8
    #: a placement already computed for this model, target and precision (else placed on first use)
    given: CheckReport | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.precision = Precision.parse(self.precision)

    @classmethod
    def of(cls, model: LoadedModel, target: Target, precision: str = Precision.INT8,
           placement: CheckReport | None = None) -> Analysis:
        """The analysis of ``model``; ``placement`` is reused when it was made for the same target and precision."""
        if placement is not None and (placement.target != target or placement.precision != precision):
            placement = None
        return cls(model, target, Precision.parse(precision), placement)

    @cached_property
    def placement(self) -> CheckReport:
        """``dlakit check``'s report: which node runs where, and why."""
        if self.given is not None:
            return self.given
        from dlakit import check  # looked up at call time, so that a test can count the placements a command makes

        return check.check_model(self.model, self.target, self.precision)

    @property
    def source(self) -> str:
        return self.model.source

    @cached_property
    def off_dla(self) -> frozenset[str]:
        """The layers not placed on the DLA (GPU or fixable): the quantizer gives them no DLA scale."""
        from dlakit.quantize.plan import off_dla_of

        return off_dla_of(self.placement)

    @cached_property
    def prepared(self) -> Prepared:
        """The performance model's fused DLA ops for this placement (:func:`dlakit.perf.prepare`)."""
        from dlakit.perf import prepare

        return prepare(self.model, self.target, self.precision, report=self.placement)

    @cached_property
    def sparsity(self) -> dict[str, dict[str, Any]]:
        """Per convolution: can it run 2:4 sparse on this target, why not, does it hold the pattern already."""
        from dlakit.sparsity import sparsity_column

        return sparsity_column(self.placement)

    @cached_property
    def sparse_pattern(self) -> frozenset[str]:
        """The eligible convolutions whose weights already hold the 2:4 pattern (run sparse with --sparse)."""
        from dlakit.sparsity import sparse_nodes

        return frozenset(sparse_nodes(self.placement))

    def check_json(self) -> dict[str, Any]:
        """``dlakit check --format json``: the placement with each convolution's ``sparsity`` and sparse counts."""
        data = self.placement.as_dict()
        column = self.sparsity
        for node in data["nodes"]:
            node["sparsity"] = column.get(node["name"])
        eligible = [v for v in column.values() if v["eligible"]]
        data["summary"]["sparse_eligible_convs"] = len(eligible)
        data["summary"]["sparse_2to4_convs"] = sum(1 for v in eligible if v["has_2to4_pattern"])
        return data

    def check_notes(self) -> list[str]:
        """The notes the check command adds to placement's own: how many convolutions can run 2:4 sparse."""
        column = self.sparsity
        if not column:
            return []
        eligible = [v for v in column.values() if v["eligible"]]
        already = sum(1 for v in eligible if v["has_2to4_pattern"])
        return [f"2:4 sparsity: {len(eligible)} of {len(column)} convolutions can run sparse on this target, "
                f"{already} already hold the pattern (dlakit sparsify)"]


def analyse(model: LoadedModel, target: Target, precision: str = Precision.INT8) -> Analysis:
    """The analysis of ``model`` on ``target`` (placement made lazily, once)."""
    return Analysis.of(model, target, precision)


def _score(report: CheckReport) -> tuple[float, int, int, int]:
    summary = report.summary
    off_dla = summary["gpu_nodes"] + summary["fixable_nodes"]  # "fixable" still runs on the GPU as it is
    return round(summary["dla_mac_fraction"], 6), -summary["transitions"], -off_dla, -summary["dla_subgraphs"]


def placement_score(loaded: LoadedModel, options: FixOptions) -> tuple[float, int, int, int]:
    """Placement quality, best first: DLA MAC share, then fewer GPU↔DLA transitions, GPU nodes, loadables."""
    from dlakit import check

    return _score(check.check_model(loaded, options.target, options.precision))


def images_per_second(loaded: LoadedModel, target: Target, precision: str,
                      report: CheckReport | None = None) -> float | None:
    """``estimate``'s images/s at the platform's default power mode (on ``report``'s placement when given); None
    where the model cannot be priced (no layer computes anything)."""
    from dlakit.perf import price

    try:
        return price(loaded, target, precision, report=report).images_per_second
    except DlakitError:
        return None


def latency_score(loaded: LoadedModel, options: FixOptions, report: CheckReport | None = None) -> tuple[float] | None:
    """The latency objective: estimated images/s (DLA layers, GPU fallback layers, GPU↔DLA transitions)."""
    ips = images_per_second(loaded, options.target, options.precision, report)
    return None if ips is None else (ips,)


def fix_model(loaded: LoadedModel, options: FixOptions | None = None) -> FixResult:
    """:func:`dlakit.rewrite.fix_model` guarded by ``options.objective`` (with a target and ``options.guard``):
    estimated images/s for ``latency`` (the default), check's placement for ``dla-share``.

    The placement the guard made of the model it returns is kept on the result (``FixResult.placement``)."""
    from dlakit import check

    latency = (options.objective if options is not None else "latency") == "latency"
    # the guard returns the first model it scores, or its best-scoring trial: keep those two placements only (a
    # report holds its graph), and reuse one only if it is the returned model's
    first: list[tuple[LoadedModel, CheckReport]] = []
    best: list[tuple[tuple[float, ...], LoadedModel, CheckReport]] = []

    def score(model: LoadedModel, opts: FixOptions) -> tuple[float, ...] | None:
        report = check.check_model(model, opts.target, opts.precision)
        value = latency_score(model, opts, report) if latency else _score(report)
        if value is None:
            return None
        if not first:
            first.append((model, report))
        elif not best or value >= best[0][0]:
            best[:] = [(value, model, report)]
        return value

    result = fix_rules(loaded, options, score=score)
    kept = [(m, r) for m, r in first] + [(m, r) for _, m, r in best]
    result.placement = next((r for m, r in kept if m is result.model), None)
    return result
