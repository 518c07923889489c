"""Command-line behaviour of quantize / emulate / qdq-translate / eval on a small graph: files, JSON, errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from PIL import Image

from dlakit.cli import main
from tests.test_quant_plan import small_model


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(result: tuple[int, str, str], *fragments: str) -> None:
    code, _, err = result
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_small(tmp_path):
    """The small model and 6 calibration samples written to ``tmp_path``: (model, data, tmp_path)."""
    model = tmp_path / "small.onnx"
    onnx.save(small_model(), model)
    data = tmp_path / "calib.npy"
    np.save(data, np.random.default_rng(0).normal(size=(6, 3, 8, 8)).astype(np.float32))
    return model, data, tmp_path


@pytest.fixture
def files(tmp_path):
    return write_small(tmp_path)


def test_quantize_writes_every_file_and_json(files, capsys):
    model, data, tmp = files
    code, out, _ = run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp / "out"), "--release",
                       "jp5", "--no-progress", "-f", "json")
    assert code == 0
    summary = json.loads(out)
    assert summary["cache_header"] == "TRT-8502-EntropyCalibration2"
    assert summary["fp16_layers"] == ["sigmoid"] and summary["layer_precisions"] == "sigmoid:fp16"
    assert "--layerPrecisions=sigmoid:fp16" in summary["trtexec"] and "--fp16" in summary["trtexec"]
    assert "s" in {c["tensor"] for c in summary["equal_scale_costs"]}  # sigmoid output widened by the concat
    names = [t["name"] for t in summary["tensors"]]
    assert names == ["x", "c1", "r1", "c2", "a", "s", "cat", "y"]  # fused intermediates listed, as TensorRT does
    assert {t["name"]: t["fused_into"] for t in summary["tensors"] if t["fused_into"]} == {"c1": "relu1",
                                                                                        "c2": "add"}
    for key in ("cache", "scales", "layer_precisions", "qdq", "trtexec"):
        assert (tmp / "out").joinpath(summary["files"][key].split("/")[-1]).exists()
    assert not list((tmp / "out").glob(".*.tmp"))  # atomic writes leave no temporaries


def test_quantize_for_strongly_typed_release_points_trtexec_at_the_qdq_model(files, capsys):
    model, data, tmp = files
    code, out, _ = run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp / "o"), "--release",
                       "jp7", "--no-progress", "-f", "json")
    assert code == 0
    summary = json.loads(out)
    assert summary["cache_header"].startswith("TRT-110401-")
    assert "--stronglyTyped" in summary["trtexec"] and "small_qdq.onnx" in summary["trtexec"]


def test_table_output_and_emulate_compare(files, capsys):
    model, data, tmp = files
    code, out, _ = run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp / "out"),
                       "--method", "mse", "--no-progress")
    assert code == 0 and "small.cache" in out and "sigmoid:fp16" in out
    code, out, _ = run(capsys, "emulate", str(model), "--calib-cache", str(tmp / "out" / "small.cache"), "--inputs",
                       str(data), "--compare", "--no-progress")
    assert code == 0 and "outputs vs FP32" in out and "per layer" in out


def test_eval_top1_over_class_folders(files, capsys):
    model, data, tmp = files
    run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp / "out"), "--no-progress")
    rng = np.random.default_rng(1)
    for label in ("0", "3"):
        (tmp / "val" / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp / "val" / label / f"{i}.png")
    code, out, err = run(capsys, "eval", str(model), "--data", str(tmp / "val"), "--calib-cache",
                         str(tmp / "out" / "small.cache"), "--preset", "unit", "--no-progress", "-f", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["samples"] == 4 and set(result["fp32"]) == {"top1", "top5"}
    assert 0.0 <= result["top1_agreement"] <= 1.0 and "int8_emulated" in result


@pytest.mark.parametrize("case", ["missing", "empty", "shape", "cache", "neither", "method", "labels", "layer"])
def test_bad_input_is_one_line_error(files, capsys, case):
    model, data, tmp = files
    if case == "missing":
        result = run(capsys, "quantize", str(model), "--calib", str(tmp / "none"), "-o", str(tmp / "o"))
        assert_one_line_error(result, "none: calibration data not found")
    elif case == "empty":
        (tmp / "empty").mkdir()
        result = run(capsys, "quantize", str(model), "--calib", str(tmp / "empty"), "-o", str(tmp / "o"))
        assert_one_line_error(result, "empty: no images")
    elif case == "shape":
        np.save(tmp / "wrong.npy", np.zeros((2, 3, 9, 9), np.float32))
        result = run(capsys, "quantize", str(model), "--calib", str(tmp / "wrong.npy"), "-o", str(tmp / "o"),
                     "--no-progress")
        assert_one_line_error(result, "wrong.npy", "[2, 3, 9, 9]", "[3, 8, 8]")
    elif case == "cache":
        (tmp / "bad.cache").write_text("TRT-8600-EntropyCalibration2\nx: 3c00\nr1 3c00\n")
        result = run(capsys, "emulate", str(model), "--calib-cache", str(tmp / "bad.cache"), "--inputs", str(data))
        assert_one_line_error(result, "bad.cache:3:")
    elif case == "neither":
        result = run(capsys, "emulate", str(model), "--inputs", str(data))
        assert_one_line_error(result, "--calib-cache")
    elif case == "layer":
        result = run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp / "o"), "--fp16-layers",
                     "conv1,conv9", "--no-progress")
        assert_one_line_error(result, "--fp16-layers", "conv9")
    elif case == "method":
        result = run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp / "o"), "--method", "kl")
        assert_one_line_error(result, "--method")
    else:
        (tmp / "val").mkdir()
        (tmp / "labels.txt").write_text("missing.png 3\n")
        result = run(capsys, "eval", str(model), "--data", str(tmp / "val"), "--labels", str(tmp / "labels.txt"))
        assert_one_line_error(result, "labels.txt:1", "missing.png")


def test_memory_budget_splits_tensors_into_passes_with_identical_ranges(files):
    from dlakit.model import load_model
    from dlakit.quantize.calibrate import calibrate
    from dlakit.quantize.data import open_source
    from dlakit.quantize.runtime import chunk_tensors

    model, data, _ = files
    loaded = load_model(model)
    one = calibrate(loaded, open_source(data, {"x": (3, 8, 8)}), "entropy", progress=False)
    split = calibrate(loaded, open_source(data, {"x": (3, 8, 8)}), "entropy", progress=False, budget_mb=0)
    assert len(chunk_tensors({n: 1 for n in one.plan.tensors}, 0)) == len(one.plan.tensors)
    for method in ("max", "entropy", "percentile", "mse"):
        assert one.ranges(method)[0] == pytest.approx(split.ranges(method)[0], rel=1e-4)  # fusions differ
    assert one.samples == split.samples == 6


def test_per_layer_error_for_the_html_report_from_data_or_cache(files, capsys):
    from dlakit.model import load_model
    from dlakit.quantize.report import per_layer_error

    model, data, tmp = files
    loaded = load_model(model)
    from_data = per_layer_error(loaded, None, str(data), num_samples=3)
    assert {r["name"] for r in from_data} == {"x", "r1", "a", "s", "cat", "y"}
    assert all(r["inputs"] == "data" and "sqnr_db" in r and "cosine" in r for r in from_data)
    run(capsys, "quantize", str(model), "--calib", str(data), "-o", str(tmp / "out"), "--no-progress")
    from_cache = per_layer_error(loaded, None, str(tmp / "out" / "small.cache"))
    assert from_cache[0]["inputs"] == "synthetic" and len(from_cache) == len(from_data)
