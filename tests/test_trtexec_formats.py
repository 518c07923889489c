"""Every trtexec command dlakit prints holds TensorRT's documented I/O format rules (rank, type), and
``trtexec --calib`` agrees with what ``quantize`` writes for the same model."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import TensorProto, helper

from dlakit.check import check_model
from dlakit.deploy.trtexec import TrtexecOptions, build_command, format_problems
from dlakit.model import load_model
from dlakit.targets import resolve_target
from dlakit.zoo import NETWORKS, build
from tests.cli import run
from tests.graphs import make_model, tensor, weights
from tests.test_quant_cli import write_small


def _io_problems(argv: list[str], graph, major: int) -> list[str]:
    problems = []
    for arg in argv:
        if arg.startswith("--inputIOFormats="):
            problems += format_problems(arg.split("=", 1)[1], list(graph.inputs), "input", major)
        if arg.startswith("--outputIOFormats="):
            problems += format_problems(arg.split("=", 1)[1], list(graph.outputs), "output", major)
    return problems


def test_validator_refuses_what_tensorrt_documents_as_invalid():
    loaded = load_model(make_model([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk", axis=1)],
                                   [tensor("x", [1, 1000])], [tensor("v", None), tensor("i", None, TensorProto.INT64)],
                                   [onnx.numpy_helper.from_array(__import__("numpy").array([5], "int64"), "k")]))
    outputs = list(loaded.graph.outputs)
    assert any("at least 3 dimensions" in p for p in format_problems("fp16:chw16,fp16:chw16", outputs, "output"))
    assert any("given type fp32" in p for p in format_problems("fp32:chw,fp32:chw", outputs, "output"))
    assert format_problems("fp16:chw,int32:chw", outputs, "output", 8) == []
    assert any("no trtexec I/O type" in p for p in format_problems("fp16:chw,int32:chw", outputs, "output", 10))
    assert any("input format" in p for p in format_problems("int8:dla_hwc4,int32:chw", outputs, "output"))


@pytest.mark.parametrize("name", list(NETWORKS))
def test_every_zoo_command_is_valid_and_names_a_file_the_user_gets(name):
    result = run("trtexec", name.upper().replace("-", "_"), "--format", "json")  # spelt loosely, as users do
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["setup"] == [f"dlakit zoo build {name} -o {name}.onnx"]
    assert f"--onnx={name}.onnx" in data["argv"]
    target = resolve_target(None, None)
    graph = load_model(build(name)).graph
    assert _io_problems(data["argv"], graph, target.release.trt_version[0]) == []
    assert any(a.startswith("--outputIOFormats=") for a in data["argv"])


@pytest.mark.parametrize("release", ["jetpack-6.2", "jetpack-6.0"])
@pytest.mark.parametrize("name", ["resnet50", "ssd-mobilenetv1"])
def test_published_forms_2d_and_integer_outputs(name, release, tmp_path):
    """Published forms end in 2-D probabilities and INT64 indices (TopK, ArgMax, NMS)."""
    net = NETWORKS[name]
    path = tmp_path / f"{name}.onnx"
    onnx.save(build(name, form="published", input_size=net.small_hw, width=0.25, batch=1), path)
    loaded = load_model(path)
    target = resolve_target(None, release)
    report = check_model(loaded, target, "int8")
    for precision in ("int8", "fp16"):
        command = build_command(report, loaded.graph, TrtexecOptions(precision=precision, model_path=str(path)))
        assert _io_problems(command.argv, loaded.graph, target.release.trt_version[0]) == []
        outputs = [a for a in command.argv if a.startswith("--outputIOFormats=")]
        if target.release.trt_version[0] >= 10:  # INT64 kept: no documented trtexec type, so the list is left out
            assert outputs == [] and any("--outputIOFormats left out" in w for w in command.warnings)
        else:
            assert outputs and "int32:chw" in outputs[0]


def _sigmoid_model():
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["a"], ["s"], name="sig"),
             helper.make_node("Conv", ["s", "w2"], ["y"], name="conv2", kernel_shape=[1, 1])]
    return make_model(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("y", None)],
                      [weights("w", [8, 3, 3, 3]), weights("w2", [8, 8, 1, 1], 1)])


def test_calib_adds_quantize_layer_precisions_and_names_tensors_without_scale(tmp_path):
    model, data, _ = write_small(tmp_path)
    quantized = run("quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "q"), "--release",
                    "jetpack-6.0", "--no-progress", "--format", "json")
    assert quantized.returncode == 0, quantized.stderr
    summary = json.loads(quantized.stdout)
    cache = tmp_path / "q" / "small.cache"
    result = run("trtexec", str(model), "--calib", str(cache), "--release", "jetpack-6.0", "-f", "json")
    argv = json.loads(result.stdout)["argv"]
    assert summary["layer_precisions"] and f"--layerPrecisions={summary['layer_precisions']}" in argv
    assert not [w for w in json.loads(result.stdout)["warnings"] if "no scale" in w]
    # a cache that lacks two of the tensors the model needs: both named
    lines = cache.read_text().splitlines()
    dropped = [t["name"] for t in summary["tensors"] if not t["fused_into"]][-2:]
    trimmed = tmp_path / "trimmed.cache"
    trimmed.write_text("\n".join(line for line in lines if line.split(":")[0] not in dropped) + "\n")
    warnings = json.loads(run("trtexec", str(model), "--calib", str(trimmed), "--release", "jetpack-6.0",
                              "-f", "json").stdout)["warnings"]
    scale_warnings = [w for w in warnings if "no scale" in w]
    assert scale_warnings and all(f"'{name}'" in scale_warnings[0] for name in dropped)


def test_calib_keeps_fp16_only_layers_in_layer_precisions(tmp_path):
    path = tmp_path / "sig.onnx"
    onnx.save(_sigmoid_model(), path)
    cache = tmp_path / "c.cache"
    cache.write_text("TRT-8602-EntropyCalibration2\nx: 3c000000\na: 3c000000\ns: 3c000000\ny: 3c000000\n")
    data = json.loads(run("trtexec", str(path), "--calib", str(cache), "--release", "jetpack-6.0", "-f",
                          "json").stdout)
    assert "--layerPrecisions=sig:fp16" in data["argv"] and "--fp16" in data["argv"]


def test_a_gpu_engine_gets_no_dla_flag_and_no_dla_only_format():
    loaded = load_model(build("resnet50"))
    target = resolve_target(None, None)
    report = check_model(loaded, target, "int8")
    for given in (None, ["fp16:chw16"], ["int8:chw32"]):
        command = build_command(report, loaded.graph, TrtexecOptions(engine="gpu", model_path="r.onnx",
                                                                     input_formats=given))
        argv = command.argv
        assert not any(a.startswith(("--useDLACore", "--memPoolSize", "--allowGPUFallback")) for a in argv)
        expected = "int8:chw32" if given == ["int8:chw32"] else "fp32:chw"
        assert f"--inputIOFormats={expected}" in argv
        assert _io_problems(argv, loaded.graph, target.release.trt_version[0]) == []
