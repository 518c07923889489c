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


def _ort(model, feeds):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


@pytest.mark.parametrize("name, small", [("resnet50", False), ("retinanet-resnext50", True)])
def test_backbone_then_head_computes_the_full_model(name, small):
    """The cut the plan deploys, at every split it offers: ONNX Runtime runs the backbone, feeds the boundary to the
    head, and the two together give the full model's outputs (RetinaNet: early heads come out of the backbone)."""
    from dlakit import zoo
    from dlakit.deploy.plan import split_model
    from dlakit.model import load_model
    from dlakit.perf import prepare
    from dlakit.targets import resolve_target

    net = zoo.NETWORKS[name]
    full = zoo.build(name, **({"width": 0.25, "input_size": net.small_hw, "batch": 1} if small else {}))
    prep = prepare(load_model(full), resolve_target("agx-orin-64gb"), placement={})
    prep.name = name
    splits = [o for o in planner.options_for(prep, "30W") if o.boundary]
    assert splits
    x = np.random.default_rng(0).normal(size=[d.dim_value for d in full.graph.input[0].type.tensor_type.shape.dim])
    feeds = {full.graph.input[0].name: x.astype(np.float32)}
    expected = _ort(full, feeds)
    for option in splits:
        backbone, head, shared = split_model(full, option.boundary, name, option.backbone_tensors)
        assert shared == [] and {i.name for i in head.graph.input} == set(option.boundary)
        first = _ort(backbone, feeds)
        got = {**{k: v for k, v in first.items() if k not in option.boundary},
               **_ort(head, {b: first[b] for b in option.boundary})}
        assert set(got) == set(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-5)


def test_a_boundary_tensor_the_model_lacks_is_one_line():
    from dlakit import zoo
    from dlakit.deploy.plan import split_model

    with pytest.raises(planner.DlakitError, match="'nosuch'"):
        split_model(zoo.build("resnet50"), ["nosuch"], "resnet50")


def test_plan_write_writes_every_file_its_commands_read_and_every_format_is_valid(tmp_path):
    from dlakit.model import load_model
    from dlakit.targets import resolve_target
    from tests.test_trtexec_formats import _io_problems

    out = tmp_path / "deploy"
    result = run("plan", "resnet50", "ssd-mobilenetv1", "--power-mode", "30W", "--write", str(out), "-f", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (out / "plan.sh").read_text().count("trtexec --onnx=") == len(data["trtexec"])
    assert json.loads((out / "plan.json").read_text())["trtexec"] == data["trtexec"]
    major = resolve_target(None, None).release.trt_version[0]
    split = {c["model"] for c in data["trtexec"] if c["file"].endswith((".backbone.onnx", ".head.onnx"))}
    assert split, "the plan splits resnet50 at 30W (backbone on both DLA cores, head on the GPU)"
    for c in data["trtexec"]:
        onnx_arg = next(a for a in c["argv"] if a.startswith("--onnx="))
        path = out / onnx_arg.split("=", 1)[1]
        assert path.is_file() and c["setup"] == [], c
        assert _io_problems(c["argv"], load_model(path).graph, major) == [], c["command"]
        assert ("--useDLACore=" in c["command"]) == (c["engine"] != "GPU")
    heads = [c for c in data["trtexec"] if c["file"].endswith(".head.onnx")]
    backbones = [c for c in data["trtexec"] if c["file"].endswith(".backbone.onnx")]
    written = next(a for a in backbones[0]["argv"] if a.startswith("--outputIOFormats=")).split("=", 1)[1]
    assert f"--inputIOFormats={written}" in heads[0]["argv"]  # the head reads what the backbone writes
    assert sorted(p.name for p in out.iterdir()) == sorted(data["written"]["files"])


def test_plan_without_write_builds_zoo_networks_first():
    data = json.loads(run("plan", "resnet50", "ssd-mobilenetv1", "--power-mode", "30W", "-f", "json").stdout)
    for c in data["trtexec"]:
        assert c["setup"][0] == f"dlakit zoo build {c['model']} -o {c['model']}.onnx"


def test_plan_write_failing_at_its_last_file_leaves_nothing(tmp_path):
    out = tmp_path / "deploy"
    (out / "plan.sh").mkdir(parents=True)
    result = run("plan", "resnet50", "ssd-mobilenetv1", "--power-mode", "30W", "--write", str(out))
    assert result.returncode == 2 and "is a directory" in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in out.rglob("*")] == ["plan.sh"]
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "x").write_text("")
    result = run("plan", "resnet50", "--write", str(tmp_path / "new" / "x"))
    assert result.returncode == 2 and "is a file" in result.stderr


def test_plan_write_into_the_folder_of_its_input_keeps_the_input(tmp_path):
    import hashlib

    from tests.hostile import base_model, save

    model = save(base_model(), tmp_path)
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    result = run("plan", str(model), "--write", str(tmp_path), "-f", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before
    assert all(f"--onnx={model.name}" in c["argv"] for c in data["trtexec"])
    assert data["written"]["files"] == ["plan.json", "plan.sh"]
