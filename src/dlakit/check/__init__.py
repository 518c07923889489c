"""``dlakit check``: which nodes TensorRT would run on the DLA, which fall back to the GPU, and exactly why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dlakit.check.placement import DLA, FIXABLE, FOLDED, GPU, PLACEMENTS, NodePlacement, place_node
from dlakit.check.registry import Reason, load_ops, load_rules
from dlakit.check.subgraphs import DlaSubgraph, apply_loadable_limit, boundaries, form_subgraphs
from dlakit.model import LoadedModel
from dlakit.targets import Target
from dlakit.vocab import Placement, Precision

PRECISIONS = tuple(Precision)

__all__ = [
    "DLA",
    "FIXABLE",
    "FOLDED",
    "GPU",
    "PLACEMENTS",
    "PRECISIONS",
    "CheckReport",
    "DlaSubgraph",
    "NodePlacement",
    "Placement",
    "Precision",
    "Reason",
    "check_model",
]


@dataclass
class CheckReport:
    source: str
    target: Target
    precision: Precision
    nodes: list[NodePlacement]
    subgraphs: list[DlaSubgraph]
    transitions: int
    dla_io_tensors: int
    notes: list[str] = field(default_factory=list)

    def count(self, placement: Placement) -> int:
        return sum(1 for n in self.nodes if n.placement == placement)

    @property
    def total_macs(self) -> int:
        return sum(n.macs for n in self.nodes if n.placement != FOLDED)

    @property
    def dla_mac_fraction(self) -> float:
        total = self.total_macs
        return sum(n.macs for n in self.nodes if n.placement == DLA) / total if total else 0.0

    @property
    def fully_on_dla(self) -> bool:
        return self.count(GPU) == 0 and self.count(FIXABLE) == 0

    @property
    def summary(self) -> dict[str, Any]:
        return {
            "dla_nodes": self.count(DLA),
            "gpu_nodes": self.count(GPU),
            "folded_nodes": self.count(FOLDED),
            "fixable_nodes": self.count(FIXABLE),
            "dla_subgraphs": len(self.subgraphs),
            "max_loadables_per_core": self.target.release.max_loadables_per_core,
            "within_loadable_limit": len(self.subgraphs) <= self.target.release.max_loadables_per_core,
            "transitions": self.transitions,
            "dla_io_tensors": self.dla_io_tensors,
            "total_macs": self.total_macs,
            "dla_mac_fraction": round(self.dla_mac_fraction, 6),
            "fully_on_dla": self.fully_on_dla,
        }

    def as_dict(self) -> dict[str, Any]:
        """Placement as JSON; the check command adds each convolution's sparsity (:class:`dlakit.analysis.Analysis`)."""
        release = self.target.release
        nodes = [n.as_dict() for n in self.nodes]
        return {
            "model": self.source,
            "target": {
                "platform": self.target.platform.key,
                "platform_name": self.target.platform.name,
                "release": release.key,
                "tensorrt": release.tensorrt,
                "dla": release.dla,
                "precision": self.precision,
                "defaulted": list(self.target.defaulted),
                "confidence": release.confidence,
            },
            "summary": dict(self.summary),
            "subgraphs": [s.as_dict() for s in self.subgraphs],
            "nodes": nodes,
            "notes": self.notes,
        }


def check_model(model: LoadedModel, target: Target, precision: str = Precision.INT8) -> CheckReport:
    """Place every node of ``model`` for ``target`` and group the DLA nodes into loadables.

    Commands compute this once per model through :class:`dlakit.analysis.Analysis` and hand the report on."""
    precision = Precision.parse(precision)
    load_rules()
    load_ops()
    placements = [place_node(node, target, precision) for node in model.graph]
    subgraphs = form_subgraphs(placements)
    subgraphs = apply_loadable_limit(placements, subgraphs, target.release.max_loadables_per_core,
                                     hard=target.release.loadable_limit == "hard",
                                     trt_version=target.release.trt_version)
    transitions, io = boundaries(placements, subgraphs, model.graph)
    notes = [f"{hint}; until then TensorRT runs the layers that touch it on the GPU ('does not support dynamic "
             "shapes in any dimension')" for hint in getattr(model, "dynamic_inputs", [])]
    if target.release.confidence == "low":
        notes.append(f"{target.release.name}: some of its DLA layer support is inferred from neighbouring "
                     "releases (confidence low); verify on the device")
    return CheckReport(
        source=model.source,
        target=target,
        precision=precision,
        nodes=placements,
        subgraphs=subgraphs,
        transitions=transitions,
        dla_io_tensors=io,
        notes=notes,
    )
