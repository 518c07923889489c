"""Report details a reader relies on: the INT8 table's order, the trtexec section with --calib, the roofline's
colours against its ridge, the per-layer chart's count, and where -o wrote."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import onnx

from dlakit.model import load_model
from dlakit.report import gather
from dlakit.report.html import render, worst_first
from dlakit.report.plots import COMPUTE_COLOUR, MEMORY_COLOUR, roofline
from dlakit.targets import resolve_target
from tests.cli import run
from tests.test_report import _model


def test_int8_rows_worst_first_by_the_error_each_layer_adds():
    rows = [{"name": "a", "layer_sqnr_db": 30.0, "sqnr_db": 20.0}, {"name": "b", "layer_sqnr_db": None,
                                                                   "sqnr_db": None},
            {"name": "c", "layer_sqnr_db": 12.0, "sqnr_db": 25.0}]
    assert [r["name"] for r in worst_first(rows)] == ["c", "a", "b"]


def test_report_with_calibration_data_says_how_to_make_the_cache(tmp_path):
    data = tmp_path / "calib.npz"
    np.savez(data, x=np.random.default_rng(0).normal(size=(4, 3, 64, 64)).astype(np.float32))
    report = gather(load_model(_model()), resolve_target(None, "jetpack-6.0"), calib=str(data))
    html = render(report)
    assert "no --calib" not in html and "dlakit quantize" in html
    section = html[html.index("id='int8'"):]
    cells = re.findall(r"<tr><td>[^<]*</td><td class='num'>([^<]+)</td>", section)
    values = [float("inf") if v == "-" else float(v) for v in cells]
    assert values == sorted(values), values


def test_report_with_a_cache_passes_it_to_trtexec(tmp_path):
    cache = tmp_path / "m.cache"
    cache.write_text("TRT-8602-EntropyCalibration2\nx: 3c000000\n")
    report = gather(load_model(_model()), resolve_target(None, "jetpack-6.0"), calib=str(cache))
    script = report.trtexec.script()
    assert f"--calib={cache}" in script and "no --calib" not in script and "no scale" in script


def test_roofline_colours_follow_the_drawn_ridge():
    peak, bandwidth = 1e12, 1e11  # ridge at 10 MAC/byte
    layer = SimpleNamespace  # the estimate's own "bound" is the opposite of the side: colour must follow the side
    layers = [layer(device="dla", macs=1e6, bytes=1e6, time_us=10.0, bound="compute"),  # intensity 1: left
              layer(device="dla", macs=1e8, bytes=1e6, time_us=200.0, bound="memory")]  # intensity 100: right
    svg = roofline(layers, peak, bandwidth)
    assert svg.count(MEMORY_COLOUR) >= 1 and svg.count(COMPUTE_COLOUR) >= 1
    assert "left of the ridge" in svg and "right of the ridge" in svg


def test_report_names_the_file_it_wrote_and_the_folder_it_created(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model(), path)
    out = tmp_path / "new" / "r.html"
    result = run("report", str(path), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert str(out.resolve()) in result.stdout and "created folder" in result.stdout
    assert "slowest" in out.read_text() or "all " in out.read_text()


def _chain_then_fan_out(chain: int, fan: int) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", [f"t{i}" if i else "x"], [f"t{i + 1}"], name=f"relu{i}") for i in range(chain)]
    nodes += [helper.make_node("Relu", [f"t{chain}"], [f"f{j}"], name=f"fan{j}") for j in range(fan)]
    if fan:
        nodes.append(helper.make_node("Concat", [f"f{j}" for j in range(fan)], ["y"], name="cat", axis=1))
    else:
        nodes.append(helper.make_node("Relu", [f"t{chain}"], ["y"], name="last"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _svg_height(model: onnx.ModelProto) -> float:
    from dlakit.check import check_model
    from dlakit.report.plots import placement_graph

    svg = placement_graph(check_model(load_model(model), resolve_target(None, None)))
    return float(re.search(r'<svg[^>]*height="([\d.]+)pt"', svg).group(1))


def test_placement_rows_are_as_tall_as_their_own_widest_depth():
    # 120 nodes in a chain wrap into three rows; a 12-wide fan-out at the end must only make the last row tall
    plain, fanned = _svg_height(_chain_then_fan_out(120, 0)), _svg_height(_chain_then_fan_out(120, 12))
    assert fanned < 2.5 * plain  # one row of 12 lanes; stretching every row to 12 lanes made it 4.6 times taller
