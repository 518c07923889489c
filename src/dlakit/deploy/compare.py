"""Compare dlakit's placement (and later its estimate) with what TensorRT did on the device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dlakit.check import DLA, FOLDED, CheckReport
from dlakit.deploy.tensorrt_logs import BuildLog


@dataclass
class PlacementComparison:
    measured_subgraphs: int
    predicted_subgraphs: int
    agree: list[str] = field(default_factory=list)
    predicted_dla_measured_gpu: list[tuple[str, str]] = field(default_factory=list)  # (node, TensorRT's why)
    predicted_gpu_measured_dla: list[tuple[str, str]] = field(default_factory=list)  # (node, dlakit's reason)
    unknown_layers: list[str] = field(default_factory=list)  # names in the log that are no ONNX node

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
        }


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
    for node in report.nodes:
        if node.placement == FOLDED:
            continue
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
