"""`dlakit report`: a self-contained HTML page, opened in a real (headless) Chromium with networking disabled."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import onnx
import pytest
from onnx import helper

from dlakit.model import load_model
from dlakit.report import gather
from dlakit.report.html import render
from dlakit.targets import resolve_target
from tests.cli import run
from tests.graphs import make_model, tensor, weights
from tests.test_cli_check import assert_one_line_error

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _model():
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"], name="relu1"),
        helper.make_node("Conv", ["b", "w2"], ["c"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["b", "c"], ["d"], name="add"),
        helper.make_node("GlobalAveragePool", ["d"], ["e"], name="gap"),
        helper.make_node("Flatten", ["e"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc", transB=1),
    ]
    return make_model(nodes, [tensor("x", [1, 3, 64, 64])], [tensor("y", None)],
                      [weights("w1", [32, 3, 3, 3]), weights("w2", [32, 32, 3, 3], 1), weights("fc", [10, 32], 2)])


def test_report_content():
    data = gather(load_model(_model()), resolve_target())
    html = render(data)
    assert data.check.summary["fixable_nodes"] == 1
    assert dict(data.fixes) == {"global-pool-to-pool": 1}
    for section in ("summary", "performance", "placement", "reasons", "subgraphs", "trtexec"):
        assert f"id='{section}'" in html
    assert html.count("<svg") >= 1 and "<title>gap (GlobalAveragePool" in html
    assert not re.search(r"(src|href)=['\"]https?:", html), "the page must not load anything from the network"
    assert "trtexec" in html and "--useDLACore=0" in html


def test_report_cli_writes_atomically_and_rejects_bad_input(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model(), path)
    out = tmp_path / "out" / "report.html"
    result = run("report", str(path), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary left behind
    assert_one_line_error(run("report", str(tmp_path / "missing.onnx"), "-o", str(out)), "missing.onnx")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_report_in_headless_chromium(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render(gather(load_model(_model()), resolve_target())))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "id=\"placement\"" in dom.stdout and "<svg" in dom.stdout and "dlakit report" in dom.stdout
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    keep = Path(__file__).resolve().parents[1] / ".cache" / "report-screenshot.png"
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep)  # look at it: .cache/report-screenshot.png


def test_report_with_calibration_data_shows_int8_error_per_layer(tmp_path):
    import numpy as np

    data = tmp_path / "calib.npz"
    np.savez(data, x=np.random.default_rng(0).normal(size=(8, 3, 64, 64)).astype(np.float32))
    report = gather(load_model(_model()), resolve_target(), calib=str(data))
    assert report.int8_error is None, report.int8_error
    assert report.int8_layers and all("sqnr_db" in row for row in report.int8_layers)
    html = render(report)
    assert "id='int8'" in html and "SQNR dB" in html
