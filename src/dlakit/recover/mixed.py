"""Sensitivity-guided INT8/FP16 mixed precision: the fewest MACs in FP16 that reach a target.

DLA keeps a tensor in INT8 as long as one INT8 layer writes or reads it, so the unit of choice is a *tensor*: the
candidate for tensor t is its producer and all its readers in FP16 together (each a DLA layer with its fused
BatchNorm/activation/residual Add, so that ``--layerPrecisions`` never splits a fusion). Making one layer FP16 alone
removes only its weight error, which on EfficientNet-Lite0 buys < 0.1 dB.

Why measured sensitivity: the noise a tensor adds locally says little about what reaches the output (Lite0's stem
output adds little locally but carries 30 % of the output noise, amplified by the first depthwise layer). So every
affordable candidate is screened with the emulator on a few samples (output SQNR gain per MAC), the best are
measured on the search subset, and candidates are picked greedily by gain per MAC until ``target_sqnr_db`` is
reached or ``max_fp16_macs`` is spent; the final pick is verified with one more emulator run. Bias corrections are
undone for layers that end up in FP16 (they have no weight rounding to correct). The time each FP16 layer costs
comes from ``dlakit.perf`` (INT8 vs FP16 estimate) when that package is available.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from dlakit.model import LoadedModel, node_macs
from dlakit.quantize.emulate import build_emulator, compare_layers
from dlakit.quantize.plan import QuantPlan, build_plan
from dlakit.quantize.runtime import progress_bar
from dlakit.recover.observe import ArraySource, Source
from dlakit.recover.ranges import Reference, build, output_sqnr
from dlakit.vocab import Precision

CANDIDATES = 12
SCREEN_SAMPLES = 4
GROUP = 8  # candidates screened together at first (then halved while they could hold the best)


@dataclass
class Unit:
    name: str  # the weighted layer
    nodes: list[str]
    macs: int
    local_nsr: float = 0.0  # noise-to-signal ratio the unit adds at its output (all-INT8 run)
    sqnr_fp16_db: float | None = None  # output SQNR with only this unit in FP16
    int8_us: float | None = None
    fp16_us: float | None = None

    def as_dict(self, total_macs: int) -> dict[str, object]:
        return {"layer": self.name, "nodes": self.nodes, "macs": self.macs,
                "mac_share": round(self.macs / total_macs, 4) if total_macs else 0.0,
                "sqnr_if_fp16_db": None if self.sqnr_fp16_db is None else round(self.sqnr_fp16_db, 2),
                "int8_us": self.int8_us, "fp16_us": self.fp16_us,
                "extra_us": None if self.int8_us is None or self.fp16_us is None else round(
                    self.fp16_us - self.int8_us, 2)}


@dataclass
class MixedResult:
    fp16_units: list[Unit] = field(default_factory=list)
    fp16_nodes: list[str] = field(default_factory=list)
    measured: list[Candidate] = field(default_factory=list)
    chosen: list[Candidate] = field(default_factory=list)
    int8_sqnr_db: float = 0.0
    sqnr_db: float = 0.0
    fp16_mac_share: float = 0.0
    total_macs: int = 0
    reached: bool = True
    seconds: float = 0.0
    timing_note: str = ""


def units_of(graph_model: LoadedModel, plan: QuantPlan) -> list[Unit]:
    """One unit per weighted INT8 layer, with the nodes DLA fuses into it."""
    nodes = {node.name: node for node in graph_model.graph}
    units = []
    for spec in plan.weights:
        members = [spec.node]
        current = nodes[spec.node]
        while current.outputs and current.outputs[0].name in plan.fused:
            follower = plan.fused[current.outputs[0].name]
            members.append(follower)
            current = nodes[follower]
        units.append(Unit(spec.node, members, int(node_macs(nodes[spec.node]) or 0)))
    return units


def _restrict(amax: dict[str, float], plan: QuantPlan) -> dict[str, float]:
    keep = set(plan.tensors)
    tied, _ = plan.apply_constraints({k: v for k, v in amax.items() if k in keep})
    return {k: v for k, v in tied.items() if k in amax}


def restore_biases(model: onnx.ModelProto, uncorrected: onnx.ModelProto, nodes: set[str]) -> onnx.ModelProto:
    """``model`` with the biases of ``nodes`` taken from ``uncorrected``.

    Bias correction cancels the mean error of INT8 weights; a layer that runs in FP16 has no such error, so its
    correction must be undone (keeping it costs more than the FP16 layer gains: -6 dB on Lite0's first depthwise).
    """
    if not nodes:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    source = {i.name: i for i in uncorrected.graph.initializer}
    inits = {i.name: i for i in out.graph.initializer}
    for node in out.graph.node:
        if node.name in nodes and len(node.input) > 2 and node.input[2] in inits:
            name = node.input[2]
            if name in source:
                inits[name].CopyFrom(source[name])
            else:  # a bias that only the correction created
                array = numpy_helper.to_array(inits[name])
                inits[name].CopyFrom(numpy_helper.from_array(np.zeros_like(array), name))
    return out


def emulate_with(loaded: LoadedModel, model: onnx.ModelProto, amax: dict[str, float], fp16_nodes: set[str],
                 unsigned: set[str], uncorrected: onnx.ModelProto | None = None,
                 off_dla: frozenset[str] = frozenset()) -> tuple[onnx.ModelProto, QuantPlan]:
    plan = build_plan(loaded.graph, fp16_nodes, off_dla=off_dla)
    if uncorrected is not None:
        model = restore_biases(model, uncorrected, fp16_nodes)
    emulated, _ = build(model, plan, _restrict(amax, plan), unsigned & set(plan.tensors))
    return emulated, plan


@dataclass
class Trials:
    """Emulator runs of ``model`` under other scales or FP16 layers, each scored by its output SQNR against the
    FP32 ``reference``: in this process, or by ``runner`` (sharded over Ray: the same SQNRs, in the same order)."""

    loaded: LoadedModel
    model: onnx.ModelProto
    reference: Reference
    unsigned: set[str]
    uncorrected: onnx.ModelProto | None
    off_dla: frozenset[str]
    batch_size: int
    runner: Callable[..., list[float]] | None = None  # runs sqnrs elsewhere (dlakit.scale.trials.sharder)

    def sqnrs(self, trials: list[tuple[dict[str, float], set[str]]], source: Source, description: str,
              progress: bool = False) -> list[float]:
        """The output SQNR of each ``(amax, fp16_nodes)`` trial on ``source``."""
        if self.runner is not None:
            return self.runner(self, trials, source, description, progress)
        out = []
        with progress_bar(len(trials), description, progress) as advance:
            for amax, fp16 in trials:
                out.append(self.sqnr(amax, fp16, source))
                advance(1)
        return out

    def sqnr(self, amax: dict[str, float], fp16: set[str], source: Source) -> float:
        emulated, _ = emulate_with(self.loaded, self.model, amax, fp16, self.unsigned, self.uncorrected,
                                   self.off_dla)
        return output_sqnr(self.reference, emulated, source, self.batch_size)


@dataclass
class Candidate:
    """A set of DLA layers that, in FP16 together, removes the INT8 error of ``tensor`` (its producer and all its
    readers: DLA keeps a tensor INT8 as long as one INT8 layer writes or reads it)."""

    tensor: str
    units: list[Unit]
    nodes: frozenset[str]
    macs: int
    local_nsr: float
    sqnr_fp16_db: float | None = None

    def as_dict(self, total_macs: int) -> dict[str, object]:
        return {"tensor": self.tensor, "layers": [u.name for u in self.units], "macs": self.macs,
                "mac_share": round(self.macs / total_macs, 4) if total_macs else 0.0,
                "sqnr_if_fp16_db": None if self.sqnr_fp16_db is None else round(self.sqnr_fp16_db, 2)}


def _head(source: Source, count: int, batch_size: int) -> Source:
    if isinstance(source, ArraySource):
        return source.head(max(count, batch_size))
    return source


def candidates_of(loaded: LoadedModel, plan: QuantPlan, units: list[Unit], added_nsr: dict[str, float]
                  ) -> list[Candidate]:
    """One candidate per scaled tensor: the units that write or read it."""
    owner = {node: u for u in units for node in u.nodes}
    producers: dict[str, str] = {}
    readers: dict[str, list[str]] = {}
    for node in loaded.graph:
        for value in node.outputs:
            producers[value.name] = node.name
        for value in node.inputs:
            if value is not None:
                readers.setdefault(value.name, []).append(node.name)
    found: dict[frozenset[str], Candidate] = {}
    for tensor in plan.tensors:
        names = [n for n in [producers.get(tensor), *readers.get(tensor, [])] if n]
        chosen = {owner[n].name: owner[n] for n in names if n in owner}
        nodes = frozenset(n for u in chosen.values() for n in u.nodes) | frozenset(n for n in names if n not in owner)
        if not nodes:
            continue
        local = added_nsr.get(tensor, 0.0) + sum(added_nsr.get(f"@{u.name}", 0.0) for u in chosen.values())
        macs = sum(u.macs for u in chosen.values())
        if nodes not in found or found[nodes].local_nsr < local:
            found[nodes] = Candidate(tensor, list(chosen.values()), nodes, macs, local)
    return list(found.values())


def screen_groups(trials: Trials, amax: dict[str, float], pool: list[Candidate], screen: Source,
                  base_nsr: float, floor: float, want: int, progress: bool = False) -> list[Candidate]:
    """The ``want`` candidates of ``pool`` with the largest output-noise gain per MAC in FP16 on ``screen`` (gain
    > 0), best first, found by adaptive group testing instead of one emulator run per candidate.

    Output noise powers add, so a group in FP16 gains about the sum of its members' gains: the group's gain over
    its cheapest member's MACs bounds every member's gain per MAC. Candidates are grouped :data:`GROUP` at a time in
    order of local noise per MAC (free from the ``compare_layers`` pass), and the groups whose bound could still
    reach the best ``want`` are halved, best bound first: one half is measured, the other's gain is the group's
    minus it. Groups of candidates that add little noise are never opened, so the runs grow with ``want`` times
    the log of the pool rather than with the pool (ResNet-50: see README).
    """
    def cost(cand: Candidate) -> float:
        return max(cand.macs, floor)

    entries: list[tuple[float, int, list[Candidate]]] = []  # (-bound, tie-break, members), a heap
    count = 0

    def push(members: list[Candidate], gain: float) -> None:
        nonlocal count
        heapq.heappush(entries, (-gain / min(cost(c) for c in members), count, members))
        count += 1

    def gains_of(groups: list[list[Candidate]], description: str) -> list[float]:
        fp16 = [(amax, set().union(*(c.nodes for c in group))) for group in groups]
        return [base_nsr - 10 ** (-sqnr / 10) for sqnr in trials.sqnrs(fp16, screen, description, progress)]

    order = sorted(pool, key=lambda c: -c.local_nsr / cost(c))
    groups = [order[i:i + GROUP] for i in range(0, len(order), GROUP)]
    for group, gain in zip(groups, gains_of(groups, f"FP16 layers: screening {len(pool)} candidates in "
                                                    f"{len(groups)} groups"), strict=True):
        push(group, gain)
    ranked: list[Candidate] = []
    while entries and len(ranked) < want and entries[0][0] < 0:
        top = heapq.nsmallest(want - len(ranked), entries)
        done = set()
        while top and len(top[0][2]) == 1 and top[0][0] < 0:  # singletons ahead of every group: taken
            done.add(top[0][1])
            ranked.append(top.pop(0)[2][0])
        opened = [entry for entry in top if len(entry[2]) > 1 and entry[0] < 0]
        done |= {entry[1] for entry in opened}
        entries = [entry for entry in entries if entry[1] not in done]
        heapq.heapify(entries)
        if not opened:
            continue
        halves = [members[:len(members) // 2] for _, _, members in opened]
        measured = gains_of(halves, f"FP16 layers: narrowing {len(opened)} groups")
        for (bound, _, members), half, gain in zip(opened, halves, measured, strict=True):
            whole = -bound * min(cost(c) for c in members)
            push(half, gain)
            push(members[len(half):], whole - gain)
    return ranked


def select_fp16(loaded: LoadedModel, reference: onnx.ModelProto, model: onnx.ModelProto, plan: QuantPlan,
                amax: dict[str, float], source: Source, batch_size: int, target_sqnr_db: float | None = None,
                max_fp16_macs: float | None = None, unsigned: set[str] | None = None,
                candidates: int = CANDIDATES, progress: bool = False,
                runner: Callable[..., list[float]] | None = None) -> MixedResult:
    """Pick FP16 layers for ``model`` (recovered, ranges ``amax``) against FP32 ``reference`` on ``source``;
    ``runner`` (:func:`dlakit.scale.trials.sharder`) runs the per-candidate emulator runs on Ray workers."""
    began = time.perf_counter()
    unsigned = unsigned or set()
    fp32 = Reference(reference)  # one FP32 run per data subset, shared by every candidate's comparison
    units = units_of(loaded, plan)
    total = sum(u.macs for u in units) or 1
    result = MixedResult(total_macs=total)
    off = plan.off_dla
    emulated, _ = emulate_with(loaded, model, amax, set(), unsigned, off_dla=off)
    qdq = build_emulator(model, plan, amax)  # compare_layers wants the emulator's bookkeeping object
    qdq.model = emulated
    errors = compare_layers(reference, qdq, source, batch_size, progress=False)
    owner = {node: u for u in units for node in u.nodes}
    added: dict[str, float] = {}
    for err in errors:
        nsr = 10 ** (-err.layer_sqnr_db / 10) if np.isfinite(err.layer_sqnr_db) else 0.0
        added[err.tensor] = nsr
        unit = owner.get(err.producer)
        if unit is not None:
            unit.local_nsr += nsr
            added[f"@{unit.name}"] = unit.local_nsr
    base = output_sqnr(fp32, emulated, source, batch_size)
    result.int8_sqnr_db = result.sqnr_db = base
    done = (target_sqnr_db is None and not max_fp16_macs) or (target_sqnr_db is not None and base >= target_sqnr_db)
    if done:
        result.seconds = time.perf_counter() - began
        return result
    budget = (max_fp16_macs if max_fp16_macs is not None else 1.0) * total
    pool = [c for c in candidates_of(loaded, plan, units, added) if c.macs <= budget]
    # the local noise misses amplification (Lite0's stem output carries 30 % of the output noise yet adds little
    # locally), so candidates are screened with the emulator on a few samples, in groups, and the best are measured
    # on all
    screen = _head(source, SCREEN_SAMPLES, batch_size)
    base_screen = 10 ** (-output_sqnr(fp32, emulated, screen, batch_size) / 10)
    trials = Trials(loaded, model, fp32, unsigned, reference, off, batch_size, runner)
    ranked = screen_groups(trials, amax, pool, screen, base_screen, total * 1e-3, candidates, progress)
    base_nsr = 10 ** (-base / 10)
    gains: dict[str, float] = {}
    sqnrs = trials.sqnrs([(amax, set(cand.nodes)) for cand in ranked], source,
                         f"FP16 layers: measuring the best {len(ranked)}", progress)
    for cand, sqnr in zip(ranked, sqnrs, strict=True):
        cand.sqnr_fp16_db = sqnr
        gains[cand.tensor] = max(base_nsr - 10 ** (-cand.sqnr_fp16_db / 10), 0.0)
    result.measured = ranked
    order = sorted(ranked, key=lambda c: -gains[c.tensor] / max(c.macs, total * 1e-4))
    picked: dict[str, Unit] = {}
    nodes: set[str] = set()
    predicted = base_nsr
    for cand in order:
        extra = sum(u.macs for u in cand.units if u.name not in picked)
        spent = sum(u.macs for u in picked.values())
        if gains[cand.tensor] <= 0 or spent + extra > budget:
            continue
        cand.units = [u for u in cand.units if u.name not in picked]  # each unit reported once, by its first reason
        picked.update({u.name: u for u in cand.units})
        result.chosen.append(cand)
        nodes |= cand.nodes
        predicted -= gains[cand.tensor]
        if target_sqnr_db is not None and predicted > 0 and -10 * np.log10(predicted) >= target_sqnr_db + 0.5:
            break
    if nodes:
        final, _ = emulate_with(loaded, model, amax, nodes, unsigned, reference, off)
        result.sqnr_db = output_sqnr(fp32, final, source, batch_size)
        if result.sqnr_db < base:
            # the per-candidate gains did not add up (FP16 tensors change their neighbours' equal-scale groups):
            # never hand back FP16 layers that lose accuracy; keep the best single candidate (measured alone)
            alone = [c for c in ranked if c.sqnr_fp16_db is not None and c.sqnr_fp16_db > base and c.macs <= budget]
            best = max(alone, key=lambda c: c.sqnr_fp16_db, default=None)  # type: ignore[arg-type, return-value]
            nodes = set(best.nodes) if best else set()
            best_units = [u for u in units if best and set(u.nodes) <= best.nodes]
            if best:
                best.units = best_units
            picked = {u.name: u for u in best_units}
            result.chosen = [best] if best else []
            result.sqnr_db = best.sqnr_fp16_db if best else base  # type: ignore[assignment]
    # a unit may hold a layer check places on the GPU (e.g. a 2-D Flatten): it has no DLA precision to set
    result.fp16_units, result.fp16_nodes = list(picked.values()), sorted(nodes - off)
    result.fp16_mac_share = sum(u.macs for u in picked.values()) / total
    result.reached = target_sqnr_db is None or result.sqnr_db >= target_sqnr_db
    result.seconds = time.perf_counter() - began
    return result


def attach_times(loaded: LoadedModel, units: list[Unit], release: str | None = None, platform: str | None = None
                 ) -> str:
    """Fill ``int8_us``/``fp16_us`` of ``units`` from ``dlakit.perf``; returns a note when it is unavailable."""
    from dlakit.perf import conditions_for, evaluate, prepare
    from dlakit.targets import resolve_target

    try:
        target = resolve_target(platform, release)
        times: dict[str, dict[str, tuple[int, float]]] = {}
        for precision in Precision:
            prep = prepare(loaded, target, precision)
            cond, label = conditions_for(target, precision=precision)
            estimate = evaluate(prep, cond, label)
            times[precision] = {node: (i, layer.time_us) for i, layer in enumerate(estimate.layers)
                                for node in layer.nodes}
    except Exception as exc:  # the estimate is an extra; a model it cannot place must not fail the recovery
        return f"no time estimate: {str(exc).splitlines()[0][:160]}"
    for unit in units:
        for precision, attr in ((Precision.INT8, "int8_us"), (Precision.FP16, "fp16_us")):
            layers = {times[precision][n] for n in unit.nodes if n in times[precision]}
            setattr(unit, attr, round(sum(t for _, t in layers), 2) if layers else None)
    return f"DLA time from dlakit.perf ({target.label})"
