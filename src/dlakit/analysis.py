"""The layer above ``check``, ``sparsity`` and the rewrite rules: what ``dlakit check`` shows beyond placement, and
``fix`` with its guard.

``check`` decides placement and knows nothing of the packages built on it; the check command's JSON and notes also
carry each convolution's 2:4 sparsity eligibility, which ``sparsity`` computes from the placement. Composing the two
here keeps the dependency one way (sparsity → check), with no import cycle between the subpackages. Likewise
``check`` asks the rewrite rules whether they apply (a "fixable" verdict is a promise), so fix's guard, which scores
a rewrite by check's placement or by ``estimate``'s images/s (priced on check's placement), is composed here rather
than in ``rewrite``.
"""

from __future__ import annotations

from typing import Any

from dlakit.check import CheckReport, check_model
from dlakit.errors import DlakitError
from dlakit.model import LoadedModel
from dlakit.rewrite import FixOptions, FixResult
from dlakit.rewrite import fix_model as fix_rules
from dlakit.sparsity import sparsity_column


def placement_score(loaded: LoadedModel, options: FixOptions) -> tuple[float, int, int, int]:
    """Placement quality, best first: DLA MAC share, then fewer GPU↔DLA transitions, GPU nodes, loadables."""
    summary = check_model(loaded, options.target, options.precision).summary
    off_dla = summary["gpu_nodes"] + summary["fixable_nodes"]  # "fixable" still runs on the GPU as it is
    return round(summary["dla_mac_fraction"], 6), -summary["transitions"], -off_dla, -summary["dla_subgraphs"]


def images_per_second(loaded: LoadedModel, target: Any, precision: str) -> float | None:
    """``estimate``'s images/s at the platform's default power mode; None where the model cannot be priced."""
    from dlakit.perf import price

    try:
        return price(loaded, target, precision).images_per_second
    except DlakitError:
        return None


def latency_score(loaded: LoadedModel, options: FixOptions) -> tuple[float] | None:
    """The latency objective: estimated images/s (DLA layers, GPU fallback layers, GPU↔DLA transitions)."""
    ips = images_per_second(loaded, options.target, options.precision)
    return None if ips is None else (ips,)


def fix_model(loaded: LoadedModel, options: FixOptions | None = None) -> FixResult:
    """:func:`dlakit.rewrite.fix_model` guarded by ``options.objective`` (with a target and ``options.guard``):
    estimated images/s for ``latency`` (the default), check's placement for ``dla-share``."""
    objective = options.objective if options is not None else "latency"
    return fix_rules(loaded, options, score=latency_score if objective == "latency" else placement_score)


def check_json(report: CheckReport) -> dict[str, Any]:
    """``dlakit check --format json``: the placement with each convolution's ``sparsity`` and the sparse counts."""
    data = report.as_dict()
    column = sparsity_column(report)
    for node in data["nodes"]:
        node["sparsity"] = column.get(node["name"])
    eligible = [v for v in column.values() if v["eligible"]]
    data["summary"]["sparse_eligible_convs"] = len(eligible)
    data["summary"]["sparse_2to4_convs"] = sum(1 for v in eligible if v["has_2to4_pattern"])
    return data


def check_notes(report: CheckReport) -> list[str]:
    """The notes the check command adds to placement's own: how many convolutions can run 2:4 sparse."""
    column = sparsity_column(report)
    if not column:
        return []
    eligible = [v for v in column.values() if v["eligible"]]
    already = sum(1 for v in eligible if v["has_2to4_pattern"])
    return [f"2:4 sparsity: {len(eligible)} of {len(column)} convolutions can run sparse on this target, "
            f"{already} already hold the pattern (dlakit sparsify)"]
