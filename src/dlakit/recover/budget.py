"""Noise budget: how much of the INT8 output error the weights and each quantized tensor cause.

Why: per-layer SQNR (``emulate --compare``) says where error *appears*, not how much of the *output* error each
quantization point is responsible for: a tensor that adds little noise locally can dominate the output (Lite0's stem
output, amplified by the first depthwise layer). The budget measures it directly with the emulator, one
quantization point at a time, on the same configuration as the recovered model:

* weights: every INT8 layer's weights quantized, no activation scale (activations stay float);
* each equal-scale group of activation tensors (a tensor and those DLA forces to share its scale): that group
  quantized on top of the weights.

A group's share is its extra output noise power over the weights-only run, divided by the all-INT8 noise power.
Shares need not sum to one (noise sources interact); ``unexplained`` is the remainder. ``activation_ceiling_db`` is
the SQNR the activations alone allow, i.e. what exact weights would give: when it is below a target, no weight
technique (bias correction, rounding optimisation) can reach the target, only fewer or wider activation scales.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from dlakit.model import LoadedModel
from dlakit.quantize.plan import QuantPlan
from dlakit.recover.mixed import Trials
from dlakit.recover.observe import Source
from dlakit.recover.ranges import Reference


@dataclass
class GroupShare:
    tensor: str  # the group's first tensor in graph order
    members: list[str]
    share: float  # of the all-INT8 output noise power

    def as_dict(self) -> dict[str, object]:
        return {"tensor": self.tensor, "members": self.members, "share": round(self.share, 4)}


@dataclass
class NoiseBudget:
    samples: int
    int8_sqnr_db: float
    weights_sqnr_db: float
    groups: list[GroupShare] = field(default_factory=list)  # largest share first
    seconds: float = 0.0

    @property
    def weights_share(self) -> float:
        return _nsr(self.weights_sqnr_db) / _nsr(self.int8_sqnr_db) if _nsr(self.int8_sqnr_db) else 0.0

    @property
    def activation_ceiling_db(self) -> float:
        rest = _nsr(self.int8_sqnr_db) - _nsr(self.weights_sqnr_db)
        return float("inf") if rest <= 0 else -10 * float(np.log10(rest))

    def as_dict(self, top: int = 20) -> dict[str, object]:
        explained = self.weights_share + sum(g.share for g in self.groups)
        return {"samples": self.samples, "seconds": round(self.seconds, 2),
                "int8_sqnr_db": _round(self.int8_sqnr_db), "weights_sqnr_db": _round(self.weights_sqnr_db),
                "weights_share": round(self.weights_share, 4),
                "activation_ceiling_db": _round(self.activation_ceiling_db),
                "unexplained": round(1.0 - explained, 4),
                "groups": [g.as_dict() for g in self.groups[:top]]}


def _nsr(sqnr_db: float) -> float:
    return 0.0 if not np.isfinite(sqnr_db) else 10 ** (-sqnr_db / 10)


def _round(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 2)


def noise_budget(loaded: LoadedModel, reference: onnx.ModelProto, model: onnx.ModelProto, plan: QuantPlan,
                 amax: dict[str, float], source: Source, batch_size: int, fp16_nodes: set[str] | None = None,
                 unsigned: set[str] | None = None, uncorrected: onnx.ModelProto | None = None,
                 progress: bool = False, runner: Callable[..., list[float]] | None = None) -> NoiseBudget:
    """The budget of ``model`` (scales ``amax``, FP16 layers ``fp16_nodes``) against FP32 ``reference``.

    ``loaded`` is ``model`` loaded (for the plan); ``uncorrected`` the model before bias correction, whose biases
    FP16 layers get back. One emulator run per equal-scale group plus two: use a small ``source``.
    """
    began = time.perf_counter()
    fp16 = set(fp16_nodes or ())
    unsigned = unsigned or set()
    trials = Trials(loaded, model, Reference(reference), unsigned, uncorrected, plan.off_dla, batch_size, runner)
    total = trials.sqnr(amax, fp16, source)
    weights = trials.sqnr({}, fp16, source)
    groups: dict[str, list[str]] = {}
    for name in plan.tensors:
        if name in amax:
            groups.setdefault(plan.group_of(name), []).append(name)
    base = _nsr(total)
    shares = []
    # one run per group: the equal-scale rule gives the whole group its first member's scale
    alones = trials.sqnrs([({m[0]: amax[m[0]]}, fp16) for m in groups.values()], source,
                          f"noise budget: {len(groups)} scale groups", progress)
    for members, alone in zip(groups.values(), alones, strict=True):
        share = (_nsr(alone) - _nsr(weights)) / base if base else 0.0
        shares.append(GroupShare(members[0], members, max(share, 0.0)))
    shares.sort(key=lambda g: -g.share)
    return NoiseBudget(len(source), total, weights, shares, time.perf_counter() - began)
