"""Range search, mixed precision and the ``recover`` command on a small network fed with real photos (issue 9)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dlakit.model import load_model
from dlakit.recover.observe import ArraySource
from dlakit.recover.pipeline import RecoverOptions, recover
from dlakit.recover.ranges import build, output_sqnr

SIZE = 48


def _net(seed: int = 0) -> onnx.ModelProto:
    """stem conv → ReLU6 → depthwise → ReLU6 → project (+ residual-free) → pool → FC: a MobileNet block in small."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(np.array(0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6, np.float32), "hi")]

    def w(name: str, shape: tuple[int, ...], spread: float = 1.0) -> str:
        arr = rng.standard_normal(shape).astype(np.float32) * np.sqrt(2.0 / np.prod(shape[1:]))
        arr *= np.logspace(0, spread, shape[0], dtype=np.float32).reshape(-1, *([1] * (len(shape) - 1)))
        inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        inits.append(numpy_helper.from_array(rng.standard_normal(shape[0]).astype(np.float32) * 0.3, name + "_b"))
        return name

    nodes = [
        helper.make_node("Conv", ["x", w("w0", (16, 3, 3, 3), 1.5), "w0_b"], ["c0"], name="stem", strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c0", "lo", "hi"], ["a0"], name="stem_relu6"),
        helper.make_node("Conv", ["a0", w("w1", (16, 1, 3, 3), 1.5), "w1_b"], ["c1"], name="dw", group=16,
                         pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["a1"], name="dw_relu6"),
        helper.make_node("Conv", ["a1", w("w2", (24, 16, 1, 1)), "w2_b"], ["c2"], name="project"),
        helper.make_node("Conv", ["c2", w("w3", (32, 24, 1, 1)), "w3_b"], ["c3"], name="expand"),
        helper.make_node("Relu", ["c3"], ["a3"], name="expand_relu"),
        helper.make_node("GlobalAveragePool", ["a3"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", w("fc", (10, 32)), "fc_b"], ["logits"], name="fc", transB=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])
    graph = helper.make_graph(nodes, "tiny", [x],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    from tests.photos import _image, variants

    return np.stack([v for i, n in enumerate(("astronaut", "coffee", "rocket", "chelsea"))
                     for v in variants(_image(n), 6, i, size=SIZE)])


def test_range_search_never_worse_than_max_on_the_emulator(photos):
    loaded = load_model(_net())
    result = recover(loaded, ArraySource({"x": photos}), RecoverOptions(equalize=False, bias_correction=False))
    search = result.search
    assert search is not None
    start_model, _ = build(result.model, result.plan, result.stages[0].amax, set())
    final_model, _ = build(result.model, result.plan, result.amax, set())
    subset = ArraySource({"x": photos}, 16)
    assert output_sqnr(result.original, final_model, subset, 1) >= output_sqnr(result.original, start_model,
                                                                                subset, 1) - 1e-9
    assert "logits" in result.amax and result.amax["logits"] == result.stages[0].amax["logits"]  # outputs unclipped


def test_mixed_precision_meets_its_mac_budget(photos):
    loaded = load_model(_net())
    result = recover(loaded, ArraySource({"x": photos}), RecoverOptions(max_fp16_macs=0.3, timings=False))
    mixed = result.mixed
    assert mixed is not None and mixed.fp16_units
    assert mixed.fp16_mac_share <= 0.3
    assert mixed.sqnr_db >= mixed.int8_sqnr_db
    assert set(mixed.fp16_nodes) <= set(result.plan.fp16_layers)


def test_mixed_precision_target_sqnr(photos):
    loaded = load_model(_net())
    result = recover(loaded, ArraySource({"x": photos}), RecoverOptions(target_sqnr_db=35.0, timings=False))
    mixed = result.mixed
    assert mixed is not None
    assert mixed.reached == (mixed.sqnr_db >= 35.0)
    assert mixed.reached or len(mixed.measured) > 0


def test_noise_budget_splits_the_output_noise_and_finds_a_coarse_scale(photos):
    from dlakit.recover.budget import noise_budget

    loaded = load_model(_net())
    result = recover(loaded, ArraySource({"x": photos}), RecoverOptions(timings=False, noise_budget=True))
    budget = result.budget
    assert budget is not None and budget.samples == 16 and 0 < budget.weights_share < 1
    assert budget.activation_ceiling_db > budget.int8_sqnr_db  # removing the weight noise can only help
    assert {m for g in budget.groups for m in g.members} == set(result.amax)
    summary = budget.as_dict()
    explained = summary["weights_share"] + sum(g["share"] for g in summary["groups"]) + summary["unexplained"]
    assert explained == pytest.approx(1.0, abs=1e-3)
    # the stem's ReLU6 output clipped at 0.3 instead of 6: that clipping must dominate the budget
    coarse = {**result.amax, "a0": 0.3}
    subset = ArraySource({"x": photos}, 8)
    worse = noise_budget(load_model(result.model), result.original, result.model, result.plan, coarse, subset, 1,
                         uncorrected=result.original)
    assert worse.groups[0].tensor == "a0" and worse.groups[0].share > 0.5
    assert worse.int8_sqnr_db < budget.int8_sqnr_db and worse.weights_sqnr_db == pytest.approx(
        noise_budget(load_model(result.model), result.original, result.model, result.plan, result.amax, subset, 1,
                     uncorrected=result.original).weights_sqnr_db)


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlakit", *args], capture_output=True, text=True, timeout=300)


def test_cli_writes_every_artefact(tmp_path, photos):
    model_path = tmp_path / "tiny.onnx"
    onnx.save(_net(), str(model_path))
    before = model_path.read_bytes()
    np.save(tmp_path / "calib.npy", photos[:12])
    out = tmp_path / "out"
    proc = _cli(["recover", str(model_path), "--calib", str(tmp_path / "calib.npy"), "-o", str(out),
                 "--max-fp16-macs", "0.3", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    names = {p.name for p in out.iterdir()}
    assert {"tiny_recovered.onnx", "tiny_recovered.cache", "tiny_recovered_scales.json", "tiny_recovery.json",
            "tiny_recovered_layer_precisions.txt", "tiny_recovered_qdq.onnx"} <= names
    assert model_path.read_bytes() == before  # the input is never modified
    cache = (out / "tiny_recovered.cache").read_text().splitlines()
    assert cache[0].startswith("TRT-") and len(cache) > 3
    precisions = (out / "tiny_recovered_layer_precisions.txt").read_text().strip()
    assert set(precisions.split(",")) == {f"{n}:fp16" for n in summary["mixed_precision"]["fp16_layers"]}
    onnx.checker.check_model(onnx.load(str(out / "tiny_recovered.onnx")))
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("args, message", [
    (["--calib", "{tmp}/missing"], "calibration data not found"),
    (["--calib", "{tmp}/calib.npy", "--max-fp16-macs", "2"], "--max-fp16-macs"),
    (["--calib", "{tmp}/calib.npy", "--allow-uint8", "--release", "jetpack-6.2"], "--allow-uint8"),
    (["--calib", "{tmp}/calib.npy", "--relu6", "maybe"], "--relu6"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, photos, args, message):
    model_path = tmp_path / "tiny.onnx"
    onnx.save(_net(), str(model_path))
    np.save(tmp_path / "calib.npy", photos[:4])
    proc = _cli(["recover", str(model_path), *[a.format(tmp=tmp_path) for a in args], "-o", str(tmp_path / "o")])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


def test_cli_uint8_and_equalize_on_a_dla_316_release(tmp_path, photos):
    model_path = tmp_path / "tiny.onnx"
    onnx.save(_net(), str(model_path))
    np.save(tmp_path / "calib.npy", photos[:8])
    out = tmp_path / "out"
    proc = _cli(["recover", str(model_path), "--calib", str(tmp_path / "calib.npy"), "-o", str(out), "--equalize",
                 "--relu6", "bounded", "--allow-uint8", "--release", "jetpack-7.2.2", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["equalization"]["verification"]["sqnr_db"] > 80  # the rewrite is exact in FP32
    assert summary["unsigned_tensors"]  # the ReLU/ReLU6 outputs
    qdq = onnx.load(str(out / "tiny_recovered_qdq.onnx"))
    zero_points = {i.name: i.data_type for i in qdq.graph.initializer if "zero_point" in i.name}
    assert TensorProto.UINT8 in zero_points.values()


def test_fp32_reference_runs_once_per_source_and_gives_the_same_sqnr(monkeypatch):
    from dlakit.quantize.emulate import build_emulator
    from dlakit.quantize.plan import build_plan
    from dlakit.quantize.runtime import to_proto
    from dlakit.recover import ranges
    from dlakit.recover.ranges import Reference
    from tests.test_quant_plan import small_model

    loaded = load_model(small_model())
    plan = build_plan(loaded.graph)
    amax = plan.apply_constraints({"x": 3.0, "r1": 6.0, "a": 10.0, "s": 1.0, "cat": 10.0, "y": 10.0})[0]
    model = to_proto(loaded)
    emulated = build_emulator(model, plan, amax).model
    source = ArraySource({"x": np.random.default_rng(5).normal(size=(5, 3, 8, 8)).astype(np.float32)})
    fresh = output_sqnr(model, emulated, source, 1)
    reference = Reference(model)
    runs = []
    real_session = ranges.session
    monkeypatch.setattr(ranges, "session", lambda m, quantized=False: runs.append(quantized) or real_session(
        m, quantized=quantized))
    assert [output_sqnr(reference, emulated, source, 1) for _ in range(3)] == [fresh] * 3
    assert runs.count(False) == 1 and runs.count(True) == 3  # FP32 once, each emulated model once
    monkeypatch.setattr(ranges, "REFERENCE_CACHE_BYTES", 0)  # too large to keep: recomputed, same answer
    again = Reference(model)
    assert [output_sqnr(again, emulated, source, 1) for _ in range(2)] == [fresh] * 2
    assert runs.count(False) == 3
