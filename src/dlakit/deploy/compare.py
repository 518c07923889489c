"""Compare dlakit's placement (and later its estimate) with what TensorRT did on the device."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from dlakit.check import DLA, FOLDED, CheckReport
from dlakit.check.registry import load_rules, load_trt_messages
from dlakit.deploy.tensorrt_logs import BuildLog
from dlakit.errors import DlakitError
from dlakit.vocab import Device


@dataclass
class PlacementComparison:
    measured_subgraphs: int
    predicted_subgraphs: int
    agree: list[str] = field(default_factory=list)
    predicted_dla_measured_gpu: list[tuple[str, str]] = field(default_factory=list)  # (node, TensorRT's why)
    predicted_gpu_measured_dla: list[tuple[str, str]] = field(default_factory=list)  # (node, dlakit's reason)
    unknown_layers: list[str] = field(default_factory=list)  # names in the log that are no ONNX node
    #: per node the log gives a reason for: (node, TensorRT's words, the rule they map to, dlakit's first rule)
    reasons: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)

    @property
    def agreement(self) -> float:
        total = len(self.agree) + len(self.predicted_dla_measured_gpu) + len(self.predicted_gpu_measured_dla)
        return len(self.agree) / total if total else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "measured_subgraphs": self.measured_subgraphs,
            "predicted_subgraphs": self.predicted_subgraphs,
            "agreement": round(self.agreement, 4),
            "agreeing_nodes": len(self.agree),
            "predicted_dla_measured_gpu": [{"node": n, "tensorrt": why} for n, why in self.predicted_dla_measured_gpu],
            "predicted_gpu_measured_dla": [{"node": n, "dlakit": why} for n, why in self.predicted_gpu_measured_dla],
            "unknown_layers": self.unknown_layers,
            "reasons": [{"node": n, "tensorrt": why, "tensorrt_rule": log_rule, "dlakit_rule": ours,
                         "same_rule": None if log_rule is None else log_rule == ours}
                        for n, why, log_rule, ours in self.reasons],
        }


@cache
def _message_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """Each rule's trt_message template as a pattern (fields match anything), most specific first."""
    patterns = []
    for spec in load_rules():
        if spec.trt_message:
            parts = re.split(r"\{\w+\}", spec.trt_message.rstrip("."))
            patterns.append((re.compile(".+?".join(re.escape(p) for p in parts)), spec.name))
    return tuple(sorted(patterns, key=lambda p: -len(p[0].pattern)))


def rule_for_log_message(why: str) -> str | None:
    """dlakit's rule id for the reason TensorRT gives in a build log, or None for the generic "Unsupported on DLA"
    line (which names no restriction)."""
    category = load_trt_messages().get("log_categories", {}).get(why)
    if category:
        return category
    return next((name for pattern, name in _message_patterns() if pattern.search(why)), None)


def compare_placement(report: CheckReport, log: BuildLog) -> PlacementComparison:
    """Node by node: a node TensorRT lists on the GPU (or warns about) is GPU; every other computing node is DLA."""
    names = {n.name for n in report.nodes}
    why_gpu: dict[str, str] = {}
    for layer_type, layer_names in log.gpu_layers:
        for name in layer_names:
            why_gpu.setdefault(name, f"listed on the GPU ({layer_type})" if layer_type else "listed on the GPU")
    for name, why in log.fallbacks:
        why_gpu[name] = why
    mentioned = set(why_gpu) | {n for sg in log.dla_subgraphs for n in sg}
    result = PlacementComparison(measured_subgraphs=len(log.dla_subgraphs), predicted_subgraphs=len(report.subgraphs))
    result.unknown_layers = sorted(n for n in mentioned if n not in names)
    if mentioned and not mentioned & names:
        raise DlakitError(f"{report.source}: none of the {len(mentioned)} layers in the build log (e.g. "
                          f"'{sorted(mentioned)[0]}') is a node of this model; was the log built from another model?")
    for node in report.nodes:
        if node.placement == FOLDED:
            continue
        if node.name in dict(log.fallbacks):
            why = why_gpu[node.name]
            result.reasons.append((node.name, why, rule_for_log_message(why),
                                   node.reasons[0].rule if node.reasons else None))
        measured_gpu = node.name in why_gpu
        predicted_dla = node.placement == DLA
        if predicted_dla and measured_gpu:
            result.predicted_dla_measured_gpu.append((node.name, why_gpu[node.name]))
        elif not predicted_dla and not measured_gpu:
            reason = node.reasons[0].message if node.reasons else node.placement
            result.predicted_gpu_measured_dla.append((node.name, reason))
        else:
            result.agree.append(node.name)
    return result


@dataclass
class SubgraphTiming:
    name: str  # TensorRT's {ForeignNode[...]} name
    subgraph: int | None  # dlakit's subgraph index, when the first/last layers match one
    measured_ms: float
    predicted_ms: float | None

    @property
    def error_pct(self) -> float | None:
        if self.predicted_ms is None or self.measured_ms <= 0:
            return None
        return 100.0 * (self.predicted_ms - self.measured_ms) / self.measured_ms


@dataclass
class TimingComparison:
    subgraphs: list[SubgraphTiming]
    measured_total_ms: float
    predicted_total_ms: float
    other_measured_ms: float  # GPU layers, reformats and copies in the profile

    @property
    def total_error_pct(self) -> float:
        return 100.0 * (self.predicted_total_ms - self.measured_total_ms) / self.measured_total_ms

    def as_dict(self) -> dict[str, Any]:
        return {
            "measured_total_ms": round(self.measured_total_ms, 4),
            "predicted_total_ms": round(self.predicted_total_ms, 4),
            "total_error_pct": round(self.total_error_pct, 2),
            "other_measured_ms": round(self.other_measured_ms, 4),
            "subgraphs": [{"name": s.name, "subgraph": s.subgraph, "measured_ms": round(s.measured_ms, 4),
                           "predicted_ms": None if s.predicted_ms is None else round(s.predicted_ms, 4),
                           "error_pct": None if s.error_pct is None else round(s.error_pct, 2)}
                          for s in self.subgraphs],
        }


def compare_timing(report: CheckReport, estimate: Any, profile: list) -> TimingComparison:
    """Measured time of each DLA loadable (``--exportProfile``) against the estimate of the same subgraph.

    trtexec profiles one DLA core, one batch per run, so ``estimate`` should be a one-core estimate.
    """
    from dlakit.deploy.tensorrt_logs import FOREIGN

    by_first_last = {(sg.nodes[0].name, sg.nodes[-1].name): sg.index for sg in report.subgraphs}
    by_first_last.update({(sg.nodes[0].name,): sg.index for sg in report.subgraphs if len(sg.nodes) == 1})
    subgraph_of = {n.name: n.subgraph for n in report.nodes if n.subgraph is not None}
    predicted: dict[int, float] = {}
    for layer in estimate.layers:
        groups = {subgraph_of.get(node) for node in layer.nodes} - {None}
        if layer.device == Device.DLA and len(groups) == 1:
            index = groups.pop()
            predicted[index] = predicted.get(index, 0.0) + layer.time_us / 1000.0
    rows, other = [], 0.0
    for entry in profile:
        match = FOREIGN.fullmatch(entry.name.strip())
        if not match:
            other += entry.average_ms
            continue
        parts = tuple(part.strip() for part in match.group("body").split("..."))
        index = by_first_last.get(parts)
        rows.append(SubgraphTiming(entry.name, index, entry.average_ms, predicted.get(index) if index is not None
                                   else None))
    measured_total = sum(e.average_ms for e in profile)
    return TimingComparison(rows, measured_total, float(estimate.latency_ms), other)
