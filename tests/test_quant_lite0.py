"""Real weights, real photos: EfficientNet-Lite0 (ImageNet) calibrated and emulated as DLA INT8.

FP32 must name the photos (coffee → espresso, ...); emulated INT8 must agree with FP32 on most crops; the
emulator must agree with ONNX Runtime's real integer kernels; and the CLI must produce the files end to end.
"""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from dlakit.cli import main
from dlakit.model import load_model
from dlakit.quantize.cache import read_cache, read_trtexec_style
from dlakit.quantize.calibrate import calibrate
from dlakit.quantize.data import open_source
from dlakit.quantize.emulate import build_emulator, compare_layers, run_model
from dlakit.quantize.numerics import sqnr_db
from dlakit.quantize.plan import build_plan
from dlakit.quantize.qdq import insert_qdq
from tests.test_quant_support import (
    CALIB_PHOTOS,
    EVAL_PHOTOS,
    EXPECTED_TOP1,
    lite0_model,
    photo,
    photo_set,
    write_photo_folder,
)

SHAPE = {"input": (3, 224, 224)}


@cache
def _data(tmp: str) -> tuple[str, str, np.ndarray]:
    _, calib = photo_set(CALIB_PHOTOS, 2)
    labels, evaluation = photo_set(EVAL_PHOTOS, 4)
    np.save(f"{tmp}/calib.npy", calib)
    np.save(f"{tmp}/eval.npy", evaluation)
    return f"{tmp}/calib.npy", f"{tmp}/eval.npy", np.array(labels)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _data(str(tmp_path_factory.mktemp("lite0")))


@pytest.fixture(scope="module")
def calibration(data):
    loaded = load_model(lite0_model())
    return calibrate(loaded, open_source(data[0], SHAPE), "entropy", progress=False)


def test_fp32_names_the_photos():
    model = lite0_model()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for name, expected in EXPECTED_TOP1.items():
        _, x = photo_set((name,), 1)
        assert int(sess.run(None, {"input": x})[0].argmax()) == expected, name


def test_int8_emulation_agrees_with_fp32(calibration, data):
    evaluation = open_source(data[1], SHAPE)
    reference = run_model(calibration.model, evaluation, 1, quantized=False, progress=False)[0]
    print()
    for method in ("max", "entropy", "percentile", "mse"):
        _, tied, _ = calibration.ranges(method)
        emulated = build_emulator(calibration.model, calibration.plan, tied)
        logits = run_model(emulated.model, evaluation, 1, quantized=True, progress=False)[0]
        agreement = float(np.mean(logits.argmax(1) == reference.argmax(1)))
        sqnr = sqnr_db(reference, logits)
        print(f"{method:10} logits SQNR {sqnr:5.2f} dB, top-1 agreement {agreement:.0%} ({len(logits)} crops)")
        assert agreement >= 0.7, method
        assert sqnr > 11.0, method
    # ReLU6 outputs keep their full range whatever the method (int8_baseline.md pitfall 2)
    _, tied, _ = calibration.ranges("entropy")
    assert all(tied[name] == pytest.approx(6.0, abs=0.05) for name in calibration.plan.bounded)


def test_per_layer_comparison_localises_the_error(calibration, data):
    evaluation = open_source(data[1], SHAPE, num_samples=6)
    _, tied, _ = calibration.ranges("max")
    errors = compare_layers(calibration.model, build_emulator(calibration.model, calibration.plan, tied),
                            evaluation, 1, progress=False)
    assert len(errors) == len(tied)
    layer_db = [e.layer_sqnr_db for e in errors]
    assert layer_db == sorted(layer_db)
    logits = next(e for e in errors if e.tensor == "logits")
    assert errors[0].layer_sqnr_db < logits.sqnr_db + 10 and 0.9 < logits.cosine <= 1.0
    assert all(e.local_sqnr_db > 25 for e in errors)  # each scale alone costs little: weights and depth add up


def _integer_model_and_emulator(data):
    loaded = load_model(lite0_model())
    plan = build_plan(loaded.graph)
    result = calibrate(loaded, open_source(data[0], SHAPE, num_samples=8), "max", progress=False, plan=plan)
    _, tied, _ = result.ranges()
    emulated = build_emulator(result.model, plan, tied, fp16=False).model
    integer = insert_qdq(result.model, plan, tied, weights="int8", fp16_casts=False, int32_bias=True).model
    return result.model, emulated, integer


def _sessions(model: onnx.ModelProto, level: ort.GraphOptimizationLevel) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _assert_emulator_agrees(data, level: ort.GraphOptimizationLevel, label: str) -> None:
    reference_model, emulated, integer = _integer_model_and_emulator(data)
    ints_session = _sessions(integer, level)
    x = np.load(data[1])[:8]
    fake = ort_run(emulated, x)
    ints = np.concatenate([ints_session.run(["logits"], {"input": s[None]})[0] for s in x])
    reference = ort_run(reference_model, x)
    print(f"\nemulator vs {label}: {sqnr_db(ints, fake):.1f} dB; vs FP32: emulator "
          f"{sqnr_db(reference, fake):.2f} dB, integer {sqnr_db(reference, ints):.2f} dB")
    assert np.mean(ints.argmax(1) == fake.argmax(1)) >= 0.85
    assert sqnr_db(ints, fake) > 20.0
    assert abs(sqnr_db(reference, fake) - sqnr_db(reference, ints)) < 1.5


def test_emulator_agrees_with_the_integer_qdq_model_run_exactly(data):
    """The emulator (fake-quantized weights, float bias) against the INT8-weight, INT32-bias Q/DQ model.

    With graph optimizations off, ONNX Runtime runs every DequantizeLinear/QuantizeLinear as its own float operator:
    the integer arithmetic is defined (integer values times a scale, round half to even, saturate) and the same on
    every host, unlike its fused integer kernels (see the next test).
    """
    _assert_emulator_agrees(data, ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "integer Q/DQ model")


def _integer_kernels_are_exact() -> bool:
    """Whether this host's ONNX Runtime integer convolution equals the exact integer result.

    ORT's u8s8 kernels on x86 without VNNI add pairs of 8-bit products into saturating 16-bit lanes; a product sum
    of 2 x 127 x 127 overflows them. The probe convolves all-127 INT8 activations with all-127 INT8 weights.
    """
    from onnx import TensorProto, helper, numpy_helper

    exact = 16 * 127 * 127  # the output scale maps it to 127 exactly
    constants = [numpy_helper.from_array(np.full((4, 16, 1, 1), 127, np.int8), "w"),
                 numpy_helper.from_array(np.array(1.0, np.float32), "one"),
                 numpy_helper.from_array(np.array(exact / 127, np.float32), "out_scale"),
                 numpy_helper.from_array(np.array(0, np.int8), "zero")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "one", "zero"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "one", "zero"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "one", "zero"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["y"]),
             helper.make_node("QuantizeLinear", ["y", "out_scale", "zero"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "out_scale", "zero"], ["yd"])]
    graph = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 2, 2])],
                              [helper.make_tensor_value_info("yd", TensorProto.FLOAT, [1, 4, 2, 2])], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = np.full((1, 16, 2, 2), 127.0, np.float32)
    fused = _sessions(model, ort.GraphOptimizationLevel.ORT_ENABLE_ALL).run(None, {"x": x})[0]
    return bool(np.allclose(fused, exact, rtol=1e-6))


def test_emulator_agrees_with_onnx_runtime_integer_kernels(data):
    """ORT's fused integer kernels, only where the host's kernels compute the exact integer result."""
    if not _integer_kernels_are_exact():
        pytest.skip("this host's ONNX Runtime integer kernels saturate (x86 without VNNI); exact reference above")
    _assert_emulator_agrees(data, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "integer kernels")


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from dlakit.quantize.runtime import session

    sess = session(model, quantized=True)
    return np.concatenate([sess.run(["logits"], {"input": s[None]})[0] for s in x])


def cli(*args: str) -> None:
    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code


def test_cli_quantize_emulate_translate_end_to_end(tmp_path, capsys):
    model = tmp_path / "lite0.onnx"
    onnx.save(lite0_model(), model)
    calib = tmp_path / "calib"
    write_photo_folder(calib, CALIB_PHOTOS[:6], 1, ".jpg")
    evaluation = tmp_path / "eval"
    write_photo_folder(evaluation, ("coffee", "chelsea", "china"), 1, ".png")
    out = tmp_path / "out"
    cli("quantize", str(model), "--calib", str(calib), "-o", str(out), "--preset", "efficientnet-lite",
        "--release", "jp6", "--method", "percentile", "--no-progress", "-f", "json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["cache_header"] == "TRT-100300-EntropyCalibration2" and summary["samples"] == 6
    cache_text = (out / "lite0.cache").read_text()
    scales = read_trtexec_style(cache_text)
    assert {t["name"]: t["scale"] for t in summary["tensors"]} == scales
    assert "--calib=lite0.cache" in summary["trtexec"]
    assert (out / "lite0_qdq.onnx").exists() and (out / "lite0_layer_precisions.txt").exists()
    cli("emulate", str(model), "--calib-cache", str(out / "lite0.cache"), "--inputs", str(evaluation),
        "--preset", "efficientnet-lite", "--compare", "--no-progress", "-f", "json")
    report = json.loads(capsys.readouterr().out)
    assert report["outputs"][0]["name"] == "logits" and report["outputs"][0]["sqnr_db"] > 8
    fused = {t["name"] for t in summary["tensors"] if t["fused_into"]}
    assert len(fused) == 33 + 9  # conv outputs feeding ReLU6 or a residual Add
    assert len(report["layers"]) == len(scales) - len(fused)
    cli("qdq-translate", str(out / "lite0_qdq.onnx"), "-o", str(tmp_path / "tr"), "--release", "jp6", "-f", "json")
    translated = json.loads(capsys.readouterr().out)
    assert translated["weight_scale_mismatches"] == [] and translated["weights_checked"] == 50
    back = read_cache(tmp_path / "tr" / "lite0_qdq_noqdq.cache")
    assert back.scales == pytest.approx({n: s for n, s in scales.items() if n not in fused}, rel=1e-6)


def test_cli_eval_top1_on_labelled_photos(tmp_path, capsys):
    model = tmp_path / "lite0.onnx"
    onnx.save(lite0_model(), model)
    from PIL import Image

    for name, label in EXPECTED_TOP1.items():  # whole photos in a folder per class, named by ImageNet index
        (tmp_path / "val" / str(label)).mkdir(parents=True)
        Image.fromarray(photo(name)).save(tmp_path / "val" / str(label) / f"{name}.jpg", quality=95)
    cli("quantize", str(model), "--calib", str(tmp_path / "val"), "-o", str(tmp_path / "out"), "--preset",
        "efficientnet-lite", "--no-progress", "-f", "json")
    capsys.readouterr()
    cli("eval", str(model), "--data", str(tmp_path / "val"), "--calib-cache", str(tmp_path / "out" / "lite0.cache"),
        "--preset", "efficientnet-lite", "--no-progress", "-f", "json")
    result = json.loads(capsys.readouterr().out)
    print(f"\neval on {result['samples']} labelled photos: FP32 {result['fp32']}, INT8 {result['int8_emulated']}")
    assert result["samples"] == len(EXPECTED_TOP1)
    assert result["fp32"]["top1"] == 1.0
    assert result["int8_emulated"]["top5"] >= 0.8
