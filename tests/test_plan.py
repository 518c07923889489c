"""The planner: contention fixed point by hand, segments against the DLA model, assignments, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlakit.perf import plan as planner
from tests.cli import run


def segment(kind: str, compute_ms: float, memory_ms: float, capacity: float, name: str = "n") -> planner.Segment:
    memory_s = memory_ms * 1e-3
    return planner.Segment(name, "whole", kind, np.array([compute_ms * 1e-3]), np.array([memory_s]), np.zeros(1),
                           0.0, memory_s * capacity * 0.6 if kind == "dla" else memory_s * capacity, capacity, 1)


def test_two_streaming_dla_cores_share_the_bus_like_the_dla_model():
    # each core alone streams at 60% of what the memory system serves: together they ask for 120% -> x1.2
    a = planner.Option("a", "DLA", [segment("dla", 0.0, 1.0, 1e11, "a")])
    b = planner.Option("b", "DLA", [segment("dla", 0.0, 1.0, 1e11, "b")])
    result = planner._evaluate([(a, "DLA0"), (b, "DLA1")], 2e11)
    assert result.contention == pytest.approx(1.2, rel=1e-6)
    assert result.frames_per_second == pytest.approx(1 / 1.2e-3, rel=1e-6)


def test_compute_bound_engines_do_not_slow_down():
    a = planner.Option("a", "DLA", [segment("dla", 2.0, 1.0, 1e11, "a")])
    b = planner.Option("b", "GPU", [segment("gpu", 2.0, 0.5, 1e11, "b")])
    result = planner._evaluate([(a, "DLA0"), (b, "DLA0")], 2e11)
    assert result.contention == 1.0 and result.loads["GPU"] == pytest.approx(2e-3)


def test_contention_factor_solves_demand_equals_one():
    assert planner.contention_factor(lambda k: 0.8 / k) == 1.0
    assert planner.contention_factor(lambda k: 1.5 / k) == pytest.approx(1.5, rel=1e-9)


@pytest.fixture(scope="module")
def preps():
    from dlakit import zoo
    from dlakit.model import load_model
    from dlakit.perf import prepare
    from dlakit.targets import resolve_target

    target = resolve_target("agx-orin-64gb")
    out = []
    for name in ("resnet50", "ssd-mobilenetv1"):
        prep = prepare(load_model(zoo.build(name, form="prepared")), target, placement={})
        prep.name = name
        out.append(prep)
    return out


def test_whole_dla_segment_is_the_one_core_estimate(preps):
    from dlakit.perf import conditions_for, evaluate

    prep = preps[0]
    dla = next(o for o in planner.options_for(prep, "30W") if o.label == "DLA")
    est = evaluate(prep, *conditions_for(prep.target, "30W", cores=1))
    assert dla.segments[0].seconds(1.0) * 1e3 == pytest.approx(est.latency_ms, rel=1e-6)


def test_split_points_have_few_crossings_and_a_dla_backbone(preps):
    prep = preps[0]
    points = planner.split_points(prep)
    assert points
    for k in points:
        assert 0 < len(planner.crossing_tensors(prep.ops, k)) <= planner.MAX_CROSSING


def test_plan_places_every_network_and_its_rate_is_the_slowest_engine(preps):
    result = planner.plan(preps, "MAXN")
    assert {a["model"] for a in result.assignments()} == {"resnet50", "ssd-mobilenetv1"}
    assert result.frames_per_second == pytest.approx(1 / max(result.loads.values()))
    for p in result.placed:  # each engine's load is the sum of its segments under the plan's contention
        assert p.segment.seconds(result.contention) >= p.segment.seconds(1.0)
    total = {e: sum(p.share * p.segment.seconds(result.contention) / p.segment.batch for p in result.placed
                    if p.engine == e) for e in planner.ENGINES}
    assert total == pytest.approx(result.loads)


def test_latency_targets_are_met_or_refused(preps):
    free = planner.plan(preps, "MAXN")
    with pytest.raises(planner.DlakitError, match="resnet50"):
        planner.plan(preps, "MAXN", {"resnet50": 0.01})
    # a target just under the unconstrained plan's latency forces another assignment that meets it
    target = 0.9 * free.latency_ms["ssd-mobilenetv1"]
    try:
        bound = planner.plan(preps, "MAXN", {"ssd-mobilenetv1": target})
    except planner.DlakitError:
        return  # no faster placement exists: refusing is the right answer
    assert bound.latency_ms["ssd-mobilenetv1"] <= target
    assert bound.frames_per_second <= free.frames_per_second * (1 + 1e-9)


def test_plan_cli_json():
    result = run("plan", "resnet50", "ssd-mobilenetv1", "--power-mode", "30W", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    keys = {"model", "segment", "engine", "images_per_second", "latency_ms", "contention_slowdown"}
    assert data["assignments"] and all(keys <= set(a) for a in data["assignments"])
    assert data["trtexec"] and all(c["command"].startswith("trtexec --onnx=") for c in data["trtexec"])
    table = run("plan", "resnet50", "ssd-mobilenetv1")
    assert table.returncode == 0 and "Engine load per frame" in table.stdout


@pytest.mark.parametrize("args, words", [
    (("resnet50", "--target-ms", "fast"), "--target-ms"),
    (("resnet50", "--target-ms", "nosuch=3"), "nosuch"),
    (("resnet50", "resnet50"), "twice"),
    (("resnet50", "--platform", "orin-nano"), "DLA"),
])
def test_plan_cli_errors_are_one_line(args, words):
    result = run("plan", *args)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr
