"""``dlakit plan``: assign networks, whole or split at a DLA/GPU boundary, to the GPU and the two DLA cores.

Each network is one stream of frames: every frame runs through every network, so the system's throughput is the
frame rate of the slowest engine (``frames/s = 1 / max over engines of the seconds per frame it is given``). The
options of a network are: whole on the GPU; whole on a DLA core (layers ``check`` leaves on the GPU stay there);
or split, its first part (backbone) on a DLA core and the rest (head) on the GPU, at a few boundaries where at most
:data:`MAX_CROSSING` tensors cross; a DLA part may also run as two instances, one per core, taking alternate
frames. Every option is priced with the calibrated models (DLA: :mod:`dlakit.perf.cost`, one core per instance;
GPU: :mod:`dlakit.perf.gpu`), per op as compute, DRAM traffic and fixed costs.

Shared-DRAM contention: the engines draw on one memory system. At frame rate ``F`` each engine asks for
``F x bytes per frame`` of DRAM traffic; as shares of what the memory system serves that engine's traffic at (peak
bandwidth x the engine's calibrated DRAM efficiency) these demands add to ``rho``. When ``rho > 1`` every op's DRAM
time is stretched by the least ``k`` that brings ``rho`` (which falls as the engines slow down) back to 1
(:func:`contention_factor`, bisection). Two DLA cores streaming at their 60% bus share each reproduce the DLA model's
two-core estimate (k = 1.2, each core at half the bus). Compute-bound engines barely slow down; memory-bound ones
slow down by up to ``k``.

The search is exhaustive over every network's options (and which DLA core) up to :data:`MAX_COMBINATIONS`, then
greedy. With ``targets`` (ms per network) an assignment must meet every latency target, latency being the
network's own segments under contention, without queueing behind other networks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from dlakit.errors import DlakitError
from dlakit.perf.cost import (
    core_bandwidth,
    depthwise_ops,
    dla_loadables,
    loadable_seconds,
    op_parts,
    overhead_seconds,
    raw_costs,
)
from dlakit.perf.estimate import Prepared, _transitions, conditions_for
from dlakit.perf.gpu import (
    GpuConditions,
    gpu_conditions,
    gpu_costs,
    launch_seconds,
    load_gpu_data,
)
from dlakit.perf.hardware import load_perf_data
from dlakit.perf.ops import DlaOp

ENGINES = ("GPU", "DLA0", "DLA1")
#: a split boundary lets at most this many tensors cross from the DLA part to the GPU part
MAX_CROSSING = 2
#: split candidates: boundaries nearest to these shares of the network's MACs (backbone share)
SPLIT_SHARES = (0.5, 0.75, 0.9)
MAX_COMBINATIONS = 200_000


@dataclass
class Segment:
    """The work of one part of a network on one kind of engine, for one batch."""

    network: str
    part: str
    kind: str  # "gpu" or "dla"
    compute: np.ndarray
    streamed: np.ndarray
    serial: np.ndarray
    fixed: float
    dram_bytes: float
    #: bytes/s the whole memory system serves this engine's traffic at (peak x the engine's calibrated efficiency)
    capacity: float
    batch: int
    ops: tuple[int, int] = (0, 0)

    def seconds(self, k: float = 1.0) -> float:
        return float(np.maximum(self.compute, self.streamed * k).sum() + (self.serial * k).sum()) + self.fixed


@dataclass
class Option:
    network: str
    label: str
    segments: list[Segment]
    #: ONNX tensors at the boundary (split options)
    boundary: list[str] = field(default_factory=list)
    #: tensors the backbone computes (split options): graph outputs among them are the backbone's outputs
    backbone_tensors: frozenset[str] = frozenset()


def _dla_segment(prep: Prepared, ops: list[DlaOp], part: str, mode: str, span: tuple[int, int]) -> Segment:
    data = load_perf_data()
    calib = data.calibration
    spec = data.spec(prep.target.platform.dla_generation)
    cond, _ = conditions_for(prep.target, mode, cores=1, precision=prep.precision)
    raws = raw_costs(ops, data, spec, cond)
    on = np.array([op.device == "dla" for op in ops], dtype=bool)
    dram = np.array([r.dram_bytes for r in raws])
    counted = np.array([r.counted for r in raws], dtype=float)
    parts = op_parts(np.array([r.cycles for r in raws]), dram, calib, cond.dla_mhz, core_bandwidth(spec, cond),
                     np.array([r.refetch_bytes for r in raws]), depthwise_ops(ops))
    compute, memory, serial = (np.where(on, part, 0.0) for part in parts)
    streamed = memory - serial
    fixed = float((counted * on).sum()) * overhead_seconds(calib.op_overhead_us, cond.emc_mhz)
    fixed += dla_loadables(ops) * loadable_seconds(calib.launch_us, cond.falcon)
    return Segment(prep.name, part, "dla", compute, streamed, serial, fixed, float((dram * on).sum()),
                   cond.dram_gbps * 1e9 * calib.dram_efficiency, prep.batch, span)


def _gpu_segment(prep: Prepared, ops: list[DlaOp], part: str, mode: str, span: tuple[int, int],
                 extra_s: float = 0.0) -> Segment | None:
    on = np.array([op.device == "gpu" and op.kind != "free" for op in ops], dtype=bool)
    if not on.any():
        return None
    gdata = load_gpu_data()
    platform = prep.target.platform
    gplat = gdata.platform(platform.key)
    gcond: GpuConditions = gpu_conditions(platform, mode, prep.precision, False, prep.batch)
    spec = load_perf_data().spec(platform.dla_generation)
    costs = gpu_costs(ops, gplat.arch, gcond, spec, engine_of=lambda op: op.device)
    eff_c, eff_m, overhead = gdata.calibration.vector()
    compute = np.where(on, costs.cycles / (gcond.sms * gcond.mhz * 1e6 * eff_c), 0.0)
    streamed = np.where(on, costs.dram / (gcond.dram_gbps * 1e9 * eff_m), 0.0)
    fixed = float((costs.launches * on).sum()) * launch_seconds(overhead, gcond.mhz) + extra_s
    return Segment(prep.name, part, "gpu", compute, streamed, np.zeros_like(compute), fixed,
                   float((costs.dram * on).sum()), gcond.dram_gbps * 1e9 * eff_m, prep.batch, span)


def _transition_s(prep: Prepared, ops: list[DlaOp], mode: str) -> float:
    data = load_perf_data()
    spec = data.spec(prep.target.platform.dla_generation)
    cond, _ = conditions_for(prep.target, mode, cores=1, precision=prep.precision)
    crossings, nbytes = _transitions(ops, cond, spec)
    bw = cond.dram_gbps * 1e9 * load_gpu_data().calibration.dram_efficiency
    return crossings * data.gpu["transition_us"].value * 1e-6 + nbytes / bw


def crossing_tensors(ops: Sequence[DlaOp], k: int) -> list[str]:
    """Tensors produced by ``ops[:k]`` and read by ``ops[k:]`` (graph inputs excluded)."""
    made = {t.name for op in ops[:k] for t in op.outputs}
    seen: dict[str, None] = {}
    for op in ops[k:]:
        for t in op.inputs:
            if t.name in made:
                seen[t.name] = None
    return list(seen)


def split_points(prep: Prepared, shares: Sequence[float] = SPLIT_SHARES) -> list[int]:
    """Op indices k (backbone = ops[:k]) near the given MAC shares, with an all-DLA backbone and few crossings."""
    ops = prep.ops
    macs = np.cumsum([op.macs for op in ops], dtype=float)
    total = macs[-1] if len(macs) else 0.0
    valid = []
    for k in range(1, len(ops)):
        if ops[k - 1].kind == "free" or any(op.device != "dla" for op in ops[:k]):
            continue
        if not any(op.kind != "free" for op in ops[k:]):
            continue
        if 0 < len(crossing_tensors(ops, k)) <= MAX_CROSSING:
            valid.append(k)
    points: list[int] = []
    for share in shares:
        if not valid or total <= 0:
            break
        best = min(valid, key=lambda k: abs(macs[k - 1] / total - share))
        if best not in points:
            points.append(best)
    return sorted(points)


def options_for(prep: Prepared, mode: str) -> list[Option]:
    """Whole on GPU, whole on a DLA core (with its GPU fallback layers), and backbone-on-DLA / head-on-GPU splits."""
    n = len(prep.ops)
    gpu_ops = [replace(op, device="gpu") for op in prep.ops]
    whole_gpu = _gpu_segment(prep, gpu_ops, "whole", mode, (0, n))
    options = [Option(prep.name, "GPU", [whole_gpu])] if whole_gpu else []
    dla = _dla_segment(prep, prep.ops, "whole", mode, (0, n))
    fallback = _gpu_segment(prep, prep.ops, "fallback layers", mode, (0, n), _transition_s(prep, prep.ops, mode))
    options.append(Option(prep.name, "DLA", [dla] + ([fallback] if fallback else [])))
    for k in split_points(prep):
        ops = [replace(op, device="dla" if i < k else "gpu") for i, op in enumerate(prep.ops)]
        back = _dla_segment(prep, ops, f"backbone (ops 0-{k - 1})", mode, (0, k))
        head = _gpu_segment(prep, ops, f"head (ops {k}-{n - 1})", mode, (k, n), _transition_s(prep, ops, mode))
        if head is not None:
            options.append(Option(prep.name, f"DLA+GPU split at op {k}", [back, head],
                                  crossing_tensors(prep.ops, k),
                                  frozenset(t.name for op in prep.ops[:k] for t in op.outputs)))
    return options


@dataclass
class Placed:
    segment: Segment
    engine: str
    #: share of the frames this instance runs (0.5 each when a network alternates frames between the DLA cores)
    share: float = 1.0


@dataclass
class PlanResult:
    frames_per_second: float
    contention: float
    placed: list[Placed]
    options: dict[str, Option]
    loads: dict[str, float]          # seconds per frame per engine, under contention
    loads_alone: dict[str, float]    # the same without contention
    latency_ms: dict[str, float]
    latency_alone_ms: dict[str, float]
    peak_gbps: float

    def engine_utilisation(self) -> dict[str, float]:
        return {e: self.loads[e] * self.frames_per_second for e in ENGINES}

    def assignments(self) -> list[dict[str, Any]]:
        out = []
        for p in self.placed:
            s = p.segment
            alone, under = s.seconds(1.0), s.seconds(self.contention)
            out.append({"model": s.network, "segment": s.part, "engine": p.engine, "share_of_frames": p.share,
                        "images_per_second": round(self.frames_per_second, 2),
                        "latency_ms": round(self.latency_ms[s.network], 4),
                        "segment_ms_per_batch": round(under * 1e3, 4), "batch": s.batch,
                        "contention_slowdown": round(under / alone, 4) if alone > 0 else 1.0})
        return out


def _evaluate(choice: Sequence[tuple[Option, str]], peak_bytes: float) -> PlanResult:
    placed = []
    for option, dla in choice:
        for seg in option.segments:
            if seg.kind == "gpu":
                placed.append(Placed(seg, "GPU"))
            else:
                cores = dla.split("+")
                placed += [Placed(seg, core, 1.0 / len(cores)) for core in cores]

    def loads(k: float) -> dict[str, float]:
        out = dict.fromkeys(ENGINES, 0.0)
        for p in placed:
            out[p.engine] += p.share * p.segment.seconds(k) / p.segment.batch
        return out

    def rho(k: float) -> float:
        fps = 1.0 / max(loads(k).values())
        return sum(fps * p.share * p.segment.dram_bytes / p.segment.batch / p.segment.capacity
                   for p in placed if p.segment.capacity > 0)

    k = contention_factor(rho)
    under, alone = loads(k), loads(1.0)
    lat: dict[str, float] = {}
    lat_alone: dict[str, float] = {}
    for p in placed:
        if p.engine == "DLA1" and p.share < 1:
            continue  # the second instance of a network alternating frames: same path, counted once
        lat[p.segment.network] = lat.get(p.segment.network, 0.0) + p.segment.seconds(k) * 1e3
        lat_alone[p.segment.network] = lat_alone.get(p.segment.network, 0.0) + p.segment.seconds(1.0) * 1e3
    return PlanResult(1.0 / max(under.values()), k, placed, {o.network: o for o, _ in choice}, under, alone, lat,
                      lat_alone, peak_bytes / 1e9)


def contention_factor(rho: Callable[[float], float], iters: int = 60) -> float:
    """The least DRAM-time stretch ``k >= 1`` at which the engines' demand ``rho(k)`` (share of the memory system
    they ask for, falling as ``k`` slows them) no longer exceeds 1."""
    if rho(1.0) <= 1.0:
        return 1.0
    lo, hi = 1.0, 2.0
    while rho(hi) > 1.0 and hi < 1e6:
        hi *= 2.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rho(mid) > 1.0 else (lo, mid)
    return hi


def plan(preps: Sequence[Prepared], mode: str, targets: dict[str, float] | None = None) -> PlanResult:
    """The assignment with the highest frame rate that meets every latency target (ms per network name)."""
    if not preps:
        raise DlakitError("plan: give at least one model")
    names = [p.name for p in preps]
    if len(set(names)) != len(names):
        raise DlakitError(f"plan: a model is named twice ({', '.join(names)}); give each network once")
    targets = targets or {}
    unknown = sorted(set(targets) - set(names) - {"*"})
    if unknown:
        raise DlakitError(f"--target-ms: {', '.join(unknown)} is not one of the models ({', '.join(names)})")
    platform = preps[0].target.platform
    if platform.dla_cores < 2:
        raise DlakitError(f"plan: {platform.name} has {platform.dla_cores} DLA core(s); the planner needs two")
    peak = platform.dram_gbps(platform.power_mode(mode).emc_mhz) * 1e9
    per_net = []
    for prep in preps:
        choices = [(o, d) for o in options_for(prep, mode) for d in (("DLA0", "DLA1", "DLA0+DLA1") if any(
            s.kind == "dla" for s in o.segments) else ("DLA0",))]
        per_net.append(choices)
    total = math.prod(len(c) for c in per_net)
    combos = itertools.product(*per_net) if total <= MAX_COMBINATIONS else _greedy(per_net, peak)
    best: PlanResult | None = None
    closest: dict[str, float] = {}

    def target_of(name: str) -> float | None:
        return targets.get(name, targets.get("*"))

    for combo in combos:
        result = _evaluate(combo, peak)
        ok = True
        for name in names:
            target = target_of(name)
            if target is not None and result.latency_ms[name] > target:
                ok = False
            closest[name] = min(closest.get(name, math.inf), result.latency_ms[name])
        if ok and (best is None or result.frames_per_second > best.frames_per_second * (1 + 1e-9)):
            best = result
    if best is None:
        missed = [f"{n} (target {target_of(n)} ms, best {closest[n]:.2f} ms)" for n in names
                  if (target_of(n) or math.inf) < closest[n]]
        raise DlakitError("--target-ms: no assignment meets the latency targets: "
                          f"{', '.join(missed) or 'not all at once'}; relax them or use a faster power mode")
    return best


def _greedy(per_net: list[list[tuple[Option, str]]], peak: float) -> list[tuple[tuple[Option, str], ...]]:
    """Large problems: add networks one at a time, keeping each one's best option given the ones placed before."""
    chosen: list[tuple[Option, str]] = []
    for choices in per_net:
        best = max(choices, key=lambda c: _evaluate([*chosen, c], peak).frames_per_second)
        chosen.append(best)
    return [tuple(chosen)]

