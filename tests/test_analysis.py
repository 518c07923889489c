"""One analysis per command: each command places its model once (issue 14), and the shared words are string enums."""

from __future__ import annotations

import json
import sys

import pytest

import dlakit.check
from dlakit.analysis import Analysis
from dlakit.errors import DlakitError
from dlakit.model import load_model
from dlakit.targets import resolve_target
from dlakit.vocab import Device, Placement, Precision
from tests.cli import run
from tests.test_report import _model


@pytest.fixture
def placements(monkeypatch) -> list[str]:
    """Every call of the real :func:`dlakit.check.check_model` (the function wrapped, its result untouched), also
    through modules that imported the name themselves."""
    calls: list[str] = []
    original = dlakit.check.check_model

    def counted(model, *args, **kwargs):
        calls.append(model.source)
        return original(model, *args, **kwargs)

    for module in list(sys.modules.values()):
        if module is not None and module.__name__.startswith("dlakit") and \
                getattr(module, "check_model", None) is original:
            monkeypatch.setattr(module, "check_model", counted)
    return calls


def test_report_places_resnet50_once(tmp_path, placements):
    result = run("report", "resnet50", "-o", str(tmp_path / "r.html"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r.html").exists()
    assert placements == ["resnet50"]


@pytest.mark.parametrize("extra", [[], ["--sparse"], ["--all-power-modes"]])
def test_estimate_places_resnet50_once(placements, extra):
    result = run("estimate", "resnet50", "--format", "json", *extra)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)
    assert placements == ["resnet50"]


def test_check_json_places_once_and_keeps_the_sparsity_column(placements):
    result = run("check", "resnet50", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert placements == ["resnet50"]
    convs = [n for n in data["nodes"] if n["op"] == "Conv"]
    assert convs and all(n["sparsity"] is not None for n in convs)
    assert data["summary"]["sparse_eligible_convs"] == sum(1 for n in convs if n["sparsity"]["eligible"])


def test_trtexec_places_once(placements):
    result = run("trtexec", "resnet50", "--sparse")
    assert result.returncode == 0, result.stderr
    assert placements == ["resnet50"]


def test_plan_places_each_whole_network_once(placements):
    """Planning and the trtexec commands of networks that run whole share one placement per network."""
    result = run("plan", "resnet50", "ssd-mobilenetv1", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert all(a["segment"] == "whole" for a in json.loads(result.stdout)["assignments"])
    assert sorted(placements) == ["resnet50", "ssd-mobilenetv1"]


def test_what_is_derived_reuses_the_one_placement(placements):
    analysis = Analysis.of(load_model(_model()), resolve_target())
    report = analysis.placement
    assert analysis.placement is report
    assert analysis.prepared.placement_source == "dlakit check"
    assert analysis.sparsity and analysis.off_dla == frozenset(
        n.name for n in report.nodes if n.placement not in (Placement.DLA, Placement.FOLDED))
    assert analysis.sparse_pattern <= set(analysis.sparsity)
    assert len(placements) == 1


def test_a_given_placement_is_reused_only_for_its_target_and_precision(placements):
    loaded = load_model(_model())
    report = dlakit.check.check_model(loaded, resolve_target(), "int8")
    assert Analysis.of(loaded, resolve_target(), "int8", report).placement is report
    assert Analysis.of(loaded, resolve_target(), "fp16", report).placement is not report
    assert len(placements) == 2


def test_enums_read_and_write_as_their_strings():
    assert Placement.FIXABLE == "fixable" and Precision.INT8 == "int8" and Device.GPU == "gpu"
    assert json.dumps({"p": Placement.DLA, "q": Precision.FP16}) == '{"p": "dla", "q": "fp16"}'
    assert f"{Placement.GPU}" == "gpu" and Precision("fp16") is Precision.FP16
    report = dlakit.check.check_model(load_model(_model()), resolve_target(), "fp16")
    assert report.precision is Precision.FP16
    assert all(isinstance(n.placement, Placement) for n in report.nodes)
    with pytest.raises(DlakitError, match="--precision: 'fp32' is not one of int8, fp16"):
        Precision.parse("fp32")


def test_open_model_reads_files_and_zoo_names(tmp_path):
    import onnx

    from dlakit.model import static_dims
    from dlakit.sources import open_model, open_source

    path = tmp_path / "net.onnx"
    onnx.save(_model(), str(path))
    assert open_model(str(path)).source == str(path)
    proto, loaded = open_source(str(path))
    assert proto.graph.node[0].name == "conv1" and loaded.source == str(path)
    assert static_dims(open_model(str(path), batch=2).graph.inputs[0])[0] == 2
    zoo = open_model("resnet50", batch=2)
    assert zoo.source == "resnet50" and static_dims(zoo.graph.inputs[0])[0] == 2
    with pytest.raises(DlakitError, match=r"did you mean resnet50\?"):
        open_model("resnt50")
    with pytest.raises(DlakitError, match="--batch and --shapes"):
        open_model(str(path), "x:1x3x64x64", batch=2)
