"""What ``dlakit check`` shows beyond placement itself: the layer above ``check`` and ``sparsity``.

``check`` decides placement and knows nothing of the packages built on it; the check command's JSON and notes also
carry each convolution's 2:4 sparsity eligibility, which ``sparsity`` computes from the placement. Composing the two
here keeps the dependency one way (sparsity → check), with no import cycle between the subpackages.
"""

from __future__ import annotations

from typing import Any

from dlakit.check import CheckReport
from dlakit.sparsity import sparsity_column


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
