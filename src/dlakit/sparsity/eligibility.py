"""Which convolutions can run 2:4 sparse on the DLA of a target, and why not for the others.

Built on ``dlakit check``: a convolution must first be placed on the DLA, then meet the sparsity rules of
facts/dla.md §2: Orin (second-generation DLA) only, INT8, C > 64 input channels, build-time constant weights. On top
of the published rules dlakit asks for group = 1 and a 2-D kernel: NVIDIA documents sparsity for dense 2-D
convolutions only; a depthwise convolution has a single input channel per group, so there is nothing to skip along
C, and the grouped convolutions of real networks (ResNeXt, group 32) have far fewer than 64 channels per group.

Every ineligible convolution gets every reason that applies, each naming the value and the limit, so that a user
sees everything to change at once. Eligible layers also say whether their weights already hold the 2:4 pattern (a
model pruned elsewhere, e.g. by ModelOpt or ASP) and whether dlakit can rewrite them (weights stored in the file).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import onnx_ir as ir

from dlakit.check import DLA, FOLDED, CheckReport
from dlakit.model import constant_array, is_constant, static_dims
from dlakit.perf.hardware import load_perf_data
from dlakit.sparsity.pattern import density, has_2to4
from dlakit.verdict import Verdict, refuse
from dlakit.vocab import Precision

#: Ops that only pass a weight through on its way to the convolution (followed to find where it is stored).
PASS_THROUGH = ("Identity",)


@dataclass
class SparsityInfo:
    """Sparsity verdict for one convolution: eligible or not (with reasons), its pattern and where its weights live."""

    name: str
    placement: str
    #: every reason it cannot run sparse, each a refusal with the short id of its rule (placement, platform,
    #: precision, rank, depthwise, grouped, channels, weights) for grouping layers by cause; none when eligible
    refusals: list[Verdict] = field(default_factory=list)
    in_channels: int | None = None  # per group: the C of KCRS
    out_channels: int | None = None
    kernel: tuple[int, ...] = ()
    groups: int = 1
    #: name of the initializer or Constant output holding the weights in the file, when dlakit can rewrite them
    weight: str | None = None
    #: why dlakit cannot rewrite the weights (computed at build time, dequantized, ...), None when it can
    not_prunable: str | None = None
    has_2to4_pattern: bool | None = None  # None when the weight values are not known (computed at build time)
    density: float | None = None

    @property
    def eligible(self) -> bool:
        return not self.refusals

    @property
    def reasons(self) -> list[str]:
        return [v.reason for v in self.refusals]

    @property
    def rules(self) -> list[str]:
        return [v.rule for v in self.refusals]

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) if self.reasons else None

    @property
    def status(self) -> str:
        """Short label for tables: ``2:4`` (eligible and already sparse), ``eligible``, or ``no``."""
        if not self.eligible:
            return "no"
        return "2:4" if self.has_2to4_pattern else "eligible"

    def as_dict(self) -> dict[str, Any]:
        return {
            "eligible": self.eligible,
            "reason": self.reason,
            "rules": list(self.rules),
            "has_2to4_pattern": self.has_2to4_pattern,
            "density": None if self.density is None else round(self.density, 6),
            "in_channels": self.in_channels,
            "groups": self.groups,
            "prunable": self.eligible and self.weight is not None,
            "not_prunable": self.not_prunable,
        }


def weight_storage(value: ir.Value | None) -> tuple[str | None, str | None]:
    """(name of the tensor in the file that holds these weights, or None; why not when None).

    Initializers and Constant nodes can be rewritten in place; weights computed at build time (ConstantOfShape,
    DequantizeLinear of an INT8 initializer, arithmetic on constants) only exist once TensorRT folds them, so
    pruning them would mean rewriting the computation, which dlakit does not do.
    """
    if value is None:
        return None, "no weight input"
    while True:
        if value.is_initializer() or (value.producer() is None and value.const_value is not None):
            return value.name, None
        producer = value.producer()
        if producer is None:
            return None, f"weights '{value.name}' are a graph input, known only at run time"
        if producer.op_type == "Constant":
            return value.name, None
        if producer.op_type in PASS_THROUGH and producer.inputs and producer.inputs[0] is not None:
            value = producer.inputs[0]
            continue
        hint = ("prune the float weights before quantizing" if producer.op_type == "DequantizeLinear"
                else "fold them into an initializer first (dlakit fix)")
        return None, (f"weights are computed at build time by {producer.op_type} node '{producer.name}', not "
                      f"stored in the file; {hint}")


def min_channels() -> int:
    """DLA needs more than this many input channels (per group) to use structured sparsity [DLA-SW FAQ]: perf.toml's
    ``sparse_min_channels`` of the second-generation (Orin) DLA, the only one that runs sparse."""
    return int(load_perf_data().spec(2).sparse_min_channels)


def _kernel(weight_dims: tuple[int, ...] | None, node: ir.Node) -> tuple[int, ...]:
    if weight_dims is not None and len(weight_dims) >= 2:
        return tuple(weight_dims[2:])
    attr = node.attributes.get("kernel_shape")
    return tuple(attr.as_ints()) if attr is not None else ()


def _refusals(node: ir.Node, placement: str, is_orin: bool, platform_name: str, precision: str,
              weight_value: ir.Value | None, groups: int, kernel: tuple[int, ...], c: int | None) -> Iterator[Verdict]:
    """Every reason the convolution cannot run sparse (see the module docstring for the rules)."""
    if placement != DLA:
        yield refuse(f"placed on the {placement.upper()} by check: only DLA convolutions are considered", placement,
                     DLA, rule="placement")
    if not is_orin:
        yield refuse(f"{platform_name} has a first-generation (Xavier) DLA: structured sparsity is Orin only",
                     platform_name, "Orin", rule="platform")
    if precision != Precision.INT8:
        yield refuse(f"{precision.upper()} build: DLA runs structured sparsity for INT8 convolutions (sparse rates "
                     "are published for INT8 only); build with --int8", precision, Precision.INT8, rule="precision")
    if kernel and len(kernel) != 2:
        yield refuse(f"{len(kernel)}-D convolution: DLA sparsity applies to 2-D convolutions only", len(kernel), 2,
                     rule="rank")
    if groups > 1:
        if c == 1:
            yield refuse(f"depthwise convolution (group = {groups}, 1 input channel per group): nothing to skip "
                         "along C; DLA runs it on its depthwise path, without sparsity", groups, 1, rule="depthwise")
        else:
            yield refuse(f"grouped convolution (group = {groups}, C = {c} per group): dlakit treats only group = 1 "
                         "as eligible; NVIDIA documents sparsity for dense convolutions", groups, 1, rule="grouped")
    limit = min_channels()
    if c is not None and c <= limit and not (groups > 1 and c == 1):
        yield refuse(f"C = {c} input channels{' per group' if groups > 1 else ''} ≤ {limit}: DLA needs C > {limit} "
                     "for structured sparsity", c, f"> {limit}", rule="channels")
    if c is None:
        yield refuse("weight shape unknown: cannot count input channels", rule="channels")
    if weight_value is None or not is_constant(weight_value):
        name = weight_value.name if weight_value is not None else "?"
        yield refuse(f"weights '{name}' are a run-time tensor: sparsity needs build-time constant weights",
                     "run-time", "constant", rule="weights")


def conv_info(node: ir.Node, placement: str, is_orin: bool, platform_name: str, precision: str) -> SparsityInfo:
    """The verdict for one Conv node (see the module docstring for the rules)."""
    weight_value = node.inputs[1] if len(node.inputs) > 1 else None
    dims = static_dims(weight_value) if weight_value is not None else None
    groups = node.attributes.get_int("group", 1)
    kernel = _kernel(dims, node)
    c = int(dims[1]) if dims is not None and len(dims) >= 2 else None
    k = int(dims[0]) if dims is not None and len(dims) >= 1 else None
    refusals = list(_refusals(node, placement, is_orin, platform_name, precision, weight_value, groups, kernel, c))
    info = SparsityInfo(node.name, placement, refusals, c, k, kernel, groups)
    array = constant_array(weight_value)
    if array is not None and array.ndim >= 2:
        info.has_2to4_pattern = has_2to4(array)
        info.density = density(array)
    if info.eligible:
        info.weight, info.not_prunable = weight_storage(weight_value)
        if info.weight is not None and array is None:
            info.weight, info.not_prunable = None, "weight values are not known to dlakit"
    return info


def sparsity_info(report: CheckReport) -> list[SparsityInfo]:
    """One :class:`SparsityInfo` per convolution of the checked model (folded ones excluded), in graph order."""
    target = report.target
    out = []
    for placed in report.nodes:
        if placed.op != "Conv" or placed.placement == FOLDED or placed.node is None:
            continue
        out.append(conv_info(placed.node, placed.placement, target.is_orin, target.platform.name, report.precision))
    return out


def sparsity_column(report: CheckReport) -> dict[str, dict[str, Any]]:
    """JSON-able ``{node name: {...}}`` for ``check``'s ``sparsity`` field, one entry per convolution.

    Fields: ``eligible`` (bool), ``reason`` (str or null: every reason it cannot run sparse, ``; ``-joined),
    ``has_2to4_pattern`` (bool, or null when the weight values are computed at build time), ``density`` (share of
    non-zero weights, or null), ``in_channels`` (C per group), ``groups``, ``prunable`` (``dlakit sparsify`` can
    rewrite the weights), ``not_prunable`` (why not, or null).
    """
    return {info.name: info.as_dict() for info in sparsity_info(report)}


def sparse_nodes(report: CheckReport) -> set[str]:
    """Names of the eligible convolutions whose weights already hold the 2:4 pattern: what TensorRT's
    ``--sparsity=enable`` would run sparse. For ``estimate`` to price the model as it is, not as a what-if."""
    return {info.name for info in sparsity_info(report) if info.eligible and info.has_2to4_pattern}


def summarize(infos: list[SparsityInfo]) -> dict[str, int]:
    """Counts for a summary line: convolutions, eligible, eligible already 2:4."""
    return {
        "conv_layers": len(infos),
        "eligible": sum(1 for i in infos if i.eligible),
        "eligible_2to4": sum(1 for i in infos if i.eligible and i.has_2to4_pattern),
    }


__all__ = ["SparsityInfo", "conv_info", "min_channels", "sparse_nodes", "sparsity_column", "sparsity_info",
           "summarize", "weight_storage"]
