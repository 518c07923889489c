"""trtexec command lines, and TensorRT build logs / profiles read back and compared with `check`."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import helper

from dlakit.check import check_model
from dlakit.deploy.compare import compare_placement
from dlakit.deploy.tensorrt_logs import parse_build_log, parse_layer_info, parse_profile
from dlakit.deploy.trtexec import TrtexecOptions, build_command
from dlakit.errors import DlakitError
from dlakit.model import load_model
from dlakit.targets import resolve_target
from tests.cli import run
from tests.graphs import conv_model, make_model, tensor, weights
from tests.test_cli_check import assert_one_line_error

DATA = Path(__file__).parent / "data"


def _flags(report, graph, **kw):
    command = build_command(report, graph, TrtexecOptions(**kw))
    return {f.flag.split("=")[0]: f.flag for f in command.flags}, command


def _checked(model, platform=None, release=None, precision="int8"):
    loaded = load_model(model)
    return check_model(loaded, resolve_target(platform, release), precision), loaded.graph


def _sample_model():
    """conv → relu → elu (GPU) → conv2 → conv_big (stride 9: GPU) → relu_big; names match the log fixtures."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("Elu", ["b"], ["c"], name="elu"),
        helper.make_node("Conv", ["c", "w2"], ["d"], name="conv2", kernel_shape=[1, 1]),
        helper.make_node("Conv", ["d", "w3"], ["e"], name="conv_big", kernel_shape=[1, 1], strides=[9, 9]),
        helper.make_node("Relu", ["e"], ["y"], name="relu_big"),
    ]
    return make_model(nodes, [tensor("x", [1, 3, 18, 18])], [tensor("y", None)],
                      [weights("w1", [4, 3, 1, 1]), weights("w2", [4, 4, 1, 1], 1), weights("w3", [4, 4, 1, 1], 2)])


def test_full_dla_int8_command_uses_reference_flags():
    report, graph = _checked(conv_model(c=3, k=8))
    flags, command = _flags(report, graph, calib="model.cache")
    assert flags["--useDLACore"] == "--useDLACore=0"
    assert flags["--inputIOFormats"] == "--inputIOFormats=int8:dla_hwc4"
    assert flags["--outputIOFormats"] == "--outputIOFormats=int8:chw32"
    assert flags["--memPoolSize"] == "--memPoolSize=dlaSRAM:1"
    assert "--allowGPUFallback" not in flags and "--fp16" not in flags
    assert flags["--calib"] == "--calib=model.cache"
    script = command.script()
    assert "trtexec \\" in script.splitlines() and script.splitlines()[0].startswith("# dlakit trtexec")
    assert all(f.why for f in command.flags)


def test_gpu_fallback_and_native_input_format_when_first_layer_is_not_hwc4_able():
    report, graph = _checked(_sample_model())
    flags, _ = _flags(report, graph)
    assert "--allowGPUFallback" in flags
    assert flags["--inputIOFormats"] == "--inputIOFormats=int8:dla_hwc4"
    assert flags["--outputIOFormats"] == "--outputIOFormats=int8:chw32"  # relu_big runs on the DLA again
    report, graph = _checked(conv_model(c=16, k=8))
    flags, _ = _flags(report, graph, precision="int8")
    assert flags["--inputIOFormats"] == "--inputIOFormats=int8:chw32"
    gpu_tail = make_model([helper.make_node("Conv", ["x", "w"], ["a"], name="conv", kernel_shape=[1, 1]),
                           helper.make_node("Elu", ["a"], ["y"], name="elu")],
                          [tensor("x", [1, 3, 8, 8])], [tensor("y", None)], [weights("w", [4, 3, 1, 1])])
    report, graph = _checked(gpu_tail)
    flags, _ = _flags(report, graph)
    assert flags["--outputIOFormats"] == "--outputIOFormats=fp32:chw"  # produced on the GPU


def test_fp16_build_and_layer_precisions():
    report, graph = _checked(conv_model(c=3, k=8), precision="fp16")
    flags, _ = _flags(report, graph, precision="fp16")
    assert "--fp16" in flags and "--int8" not in flags
    assert flags["--inputIOFormats"] == "--inputIOFormats=fp16:dla_hwc4"
    report, graph = _checked(conv_model(c=3, k=8))
    flags, _ = _flags(report, graph, layer_precisions=["conv"])
    assert flags["--layerPrecisions"] == "--layerPrecisions=conv:fp16"
    assert "--fp16" in flags and flags["--precisionConstraints"] == "--precisionConstraints=prefer"


def test_strongly_typed_release_and_xavier():
    report, graph = _checked(conv_model(c=3, k=8), release="jetpack-7.2.2")
    flags, command = _flags(report, graph)
    assert "--stronglyTyped" in flags and "--int8" not in flags
    assert any("Q/DQ" in w for w in command.warnings)
    report, graph = _checked(conv_model(c=3, k=8), platform="agx-xavier")
    flags, _ = _flags(report, graph)
    assert "--memPoolSize" not in flags
    with pytest.raises(DlakitError, match="Xavier"):
        _flags(report, graph, sparse="force")


def test_standalone_refuses_fallback_and_bad_core():
    report, graph = _checked(_sample_model())
    with pytest.raises(DlakitError, match="cannot run on the DLA"):
        _flags(report, graph, standalone=True)
    report, graph = _checked(conv_model(c=3, k=8))
    flags, _ = _flags(report, graph, standalone=True)
    assert "--buildDLAStandalone" in flags and flags["--saveEngine"].endswith(".dla")
    with pytest.raises(DlakitError, match=r"cores 0\.\.1"):
        _flags(report, graph, core=2)


def test_parse_trt8_build_log():
    log = parse_build_log((DATA / "trt85_build.log").read_text())
    assert log.dla_subgraphs == [["conv", "relu"], ["conv2"]]
    assert ("ACTIVATION", ["elu"]) in log.gpu_layers
    assert ("CONVOLUTION", ["conv_big", "relu_big"]) in log.gpu_layers
    assert ("elu", "unsupported on DLA") in log.fallbacks
    assert log.gpu_names == {"elu", "conv_big", "relu_big"}


def test_parse_trt7_build_log_and_warning_wordings():
    log = parse_build_log((DATA / "trt7_build.log").read_text())
    assert log.dla_subgraphs == [["conv", "relu"], ["conv2"]]
    assert log.gpu_names == {"elu", "conv_big", "relu_big"}
    warnings = parse_build_log((DATA / "trt84_warnings.log").read_text())
    layers = dict(warnings.fallbacks)
    assert layers["elu"] == "not supported on DLA"
    assert layers["cast0"] == "precision not FP16/INT8"
    assert layers["shape0"] == "dynamic shapes"
    assert layers["conv9"] == "loadable limit"
    assert layers["node_of_y"].startswith("Unary operation: CEIL")
    assert layers["cat"].startswith("DLA only supports concatenation")


def test_compare_placement_with_log():
    report, _ = _checked(_sample_model())
    log = parse_build_log((DATA / "trt85_build.log").read_text())
    result = compare_placement(report, log)
    # dlakit predicts conv_big (stride 9) on the GPU and relu_big on the DLA; TensorRT fused relu_big into conv_big
    assert [n for n, _ in result.predicted_dla_measured_gpu] == ["relu_big"]
    assert result.predicted_gpu_measured_dla == []
    assert set(result.agree) == {"conv", "relu", "elu", "conv2", "conv_big"}
    assert result.measured_subgraphs == 2 and result.predicted_subgraphs == 3


def test_profile_and_layer_info():
    entries = parse_profile((DATA / "profile.json").read_text())
    dla = [e for e in entries if e.is_dla]
    assert [e.name for e in dla][-1] == "{ForeignNode[conv2]}"
    assert sum(e.average_ms for e in entries) == pytest.approx(1.19)
    layers = parse_layer_info((DATA / "layers.json").read_text())
    assert [layer["Name"] for layer in layers][1] == "elu"
    with pytest.raises(DlakitError, match="not JSON"):
        parse_profile("{oops")
    with pytest.raises(DlakitError, match="no 'Layers'"):
        parse_layer_info("[]")


def test_cli_trtexec_and_compare(tmp_path):
    path = tmp_path / "sample.onnx"
    onnx.save(_sample_model(), path)
    result = run("trtexec", str(path), "--format", "json", "--calib", "c.cache", "--fp16-layers", "conv2")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["argv"][0] == "trtexec" and "--allowGPUFallback" in data["argv"]
    assert "--layerPrecisions=conv2:fp16" in data["argv"]
    text = run("trtexec", str(path)).stdout
    assert text.startswith("# dlakit trtexec") and "#   --useDLACore=0" in text
    compared = run("compare", str(path), "--log", str(DATA / "trt85_build.log"), "--format", "json")
    assert compared.returncode == 0, compared.stderr
    placement = json.loads(compared.stdout)["placement"]
    assert placement["predicted_dla_measured_gpu"][0]["node"] == "relu_big"
    empty = tmp_path / "empty.log"
    empty.write_text("nothing useful\n")
    assert_one_line_error(run("compare", str(path), "--log", str(empty)), "no placement found")
    assert_one_line_error(run("compare", str(path), "--log", str(tmp_path / "missing.log")), "missing.log")


def test_fp16_layer_list_from_file(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(conv_model(c=3, k=8), path)
    listing = tmp_path / "fp16.json"
    listing.write_text(json.dumps({"fp16_nodes": ["conv"]}))
    data = json.loads(run("trtexec", str(path), "-f", "json", "--fp16-layers", f"@{listing}").stdout)
    assert "--layerPrecisions=conv:fp16" in data["argv"]


def test_compare_timing_matches_foreign_nodes_to_subgraphs():
    from dlakit.deploy.compare import compare_timing
    from dlakit.perf import conditions_for, evaluate, prepare

    loaded = load_model(_sample_model())
    target = resolve_target()
    report = check_model(loaded, target)
    cond, label = conditions_for(target, cores=1)
    estimate = evaluate(prepare(loaded, target), cond, label)
    timing = compare_timing(report, estimate, parse_profile((DATA / "profile.json").read_text()))
    assert [row.subgraph for row in timing.subgraphs] == [0, 1]
    assert timing.subgraphs[0].measured_ms == pytest.approx(0.8)
    assert all(row.predicted_ms is not None and row.predicted_ms > 0 for row in timing.subgraphs)
    assert timing.other_measured_ms == pytest.approx(0.15)  # the reformat copy and the GPU elu
    assert timing.measured_total_ms == pytest.approx(1.19)


def test_cli_compare_profile_and_bracketed_names_print_verbatim(tmp_path):
    path = tmp_path / "sample.onnx"
    onnx.save(_sample_model(), path)
    result = run("compare", str(path), "--profile", str(DATA / "profile.json"))
    assert result.returncode == 0, result.stderr
    assert "{ForeignNode[conv2]}" in result.stdout
    data = json.loads(run("compare", str(path), "--profile", str(DATA / "profile.json"), "-f", "json").stdout)
    assert data["timing"]["subgraphs"][1]["name"] == "{ForeignNode[conv2]}" and data["placement"] is None
    assert_one_line_error(run("compare", str(path)), "--log", "--profile")


def test_refit_writes_a_local_profile_that_estimate_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("DLAKIT_PROFILE_DIR", str(tmp_path / "profiles"))
    path = tmp_path / "sample.onnx"
    onnx.save(_sample_model(), path)
    before = json.loads(run("estimate", str(path), "--cores", "1", "-f", "json").stdout)["latency_ms"]
    result = run("compare", str(path), "--profile", str(DATA / "profile.json"), "--refit", "myboard", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "profiles" / "myboard.toml").is_file()
    after = json.loads(run("estimate", str(path), "--cores", "1", "-f", "json", "--profile", "myboard").stdout)
    measured = json.loads(result.stdout)["timing"]["measured_total_ms"]
    # the fixture's board is slower than the model: the refit moves towards it
    assert before < after["latency_ms"] <= measured
    assert after["assumptions"]["calibration"]["version"].startswith("local-")
    # a board 30x slower than that: no parameter leaves 4x of the shipped value, and those that hit the bound are
    # named
    slow = tmp_path / "slow.json"
    entries = json.loads((DATA / "profile.json").read_text(encoding="utf-8"))
    slow.write_text(json.dumps([{k: v * 30 if k in ("timeMs", "averageMs", "medianMs") else v
                                 for k, v in e.items()} for e in entries]), encoding="utf-8")
    far = run("compare", str(path), "--profile", str(slow), "--refit", "slowboard", "-f", "json")
    assert far.returncode == 0, far.stderr
    assert "stopped at 4x" in far.stderr
    from dlakit.perf.hardware import load_perf_data
    from dlakit.perf.profiles import FITTED, MAX_FACTOR, load_profile

    shipped, local = load_perf_data().calibration, load_profile("myboard")
    for name in FITTED:
        ratio = getattr(local, name) / getattr(shipped, name)
        assert 1 / MAX_FACTOR - 1e-9 <= ratio <= MAX_FACTOR + 1e-9, name
    assert_one_line_error(run("estimate", str(path), "--profile", "nosuch"), "no local profile 'nosuch'")
    assert_one_line_error(run("compare", str(path), "--log", str(DATA / "trt85_build.log"), "--refit", "x"),
                          "--refit needs --profile")


def test_compare_maps_tensorrt_messages_to_rule_ids():
    """Each TensorRT message in a log names dlakit's rule; the generic 'Unsupported on DLA' line names none."""
    from dlakit.deploy.compare import rule_for_log_message

    assert rule_for_log_message("DLA cores do not support DIV ElementWise operation") == "eltwise.op"
    assert rule_for_log_message("Unary operation: CEIL is not supported on DLA") == "unary.op"
    assert rule_for_log_message("DLA only supports concatenation on the C dimension") == "concat.axis"
    assert rule_for_log_message("Concatenation on DLA requires at least two inputs") == "concat.inputs"
    assert rule_for_log_message("dynamic shapes") == "general.static-shape"
    assert rule_for_log_message("loadable limit") == "general.loadable-limit"
    assert rule_for_log_message("unsupported on DLA") is None
    warnings = parse_build_log((DATA / "trt84_warnings.log").read_text())
    assert rule_for_log_message(dict(warnings.fallbacks)["cat"]) == "concat.axis"


def test_compare_says_where_the_reasons_agree():
    report, _ = _checked(_sample_model())
    result = compare_placement(report, parse_build_log((DATA / "trt85_build.log").read_text()))
    reasons = {n: (why, log_rule, ours) for n, why, log_rule, ours in result.reasons}
    assert reasons["elu"] == ("unsupported on DLA", None, "activation.type")
    assert result.as_dict()["reasons"][0]["same_rule"] is None


def test_a_profile_written_before_the_launch_cost_keeps_the_shipped_one(tmp_path, monkeypatch):
    from dlakit.perf.hardware import load_perf_data
    from dlakit.perf.profiles import load_profile

    monkeypatch.setenv("DLAKIT_PROFILE_DIR", str(tmp_path))
    (tmp_path / "old.toml").write_text('[calibration]\nversion = "local-old"\ncompute_efficiency = 0.9\n'
                                       'dram_efficiency = 0.5\nop_overhead_us = 7.0\n', encoding="utf-8")
    calib = load_profile("old")
    assert (calib.compute_efficiency, calib.op_overhead_us) == (0.9, 7.0)
    assert calib.launch_us == load_perf_data().calibration.launch_us
    (tmp_path / "broken.toml").write_text('[calibration]\ncompute_efficiency = 0.9\n', encoding="utf-8")
    with pytest.raises(DlakitError, match="not a dlakit profile"):
        load_profile("broken")
