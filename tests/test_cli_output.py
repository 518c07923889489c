"""Output read in pipes and CI logs: tables as wide as their content, names never cut, no Python ``None``."""

from __future__ import annotations

import onnx
from onnx import helper

from tests.cli import run
from tests.graphs import make_model, tensor, weights
from tests.test_quant_cli import write_small

LONG = "backbone.layer3.0.downsample.residual_branch.activation_that_runs_on_the_gpu"


def _model(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "w2"], ["y"], name=LONG, kernel_shape=[1, 1], strides=[9, 9])]
    path = tmp_path / "m.onnx"
    onnx.save(make_model(nodes, [tensor("x", [1, 8, 36, 36])], [tensor("y", None)],
                         [weights("w", [8, 8, 1, 1]), weights("w2", [8, 8, 1, 1], 1)]), path)
    return path


def test_piped_tables_take_the_width_of_their_content(tmp_path):
    result = run("check", str(_model(tmp_path)))
    assert result.returncode in (0, 1), result.stderr
    assert "…" not in result.stdout
    row = next(line for line in result.stdout.splitlines() if LONG in line)  # one line: name and reason together
    assert "stride" in row.lower(), result.stdout


def test_width_option_wraps_without_cutting_names(tmp_path):
    result = run("--width", "60", "check", str(_model(tmp_path)))
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 60, result.stdout
    assert "…" not in result.stdout and "backbone" in result.stdout  # folded over lines, not cut


def test_emulate_compare_prints_no_python_none(tmp_path):
    model, data, _ = write_small(tmp_path)
    assert run("quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "q"), "--no-progress").returncode == 0
    result = run("emulate", str(model), "--calib-cache", str(tmp_path / "q" / "small.cache"), "--inputs", str(data),
                 "--compare", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "None" not in result.stdout and "per layer" in result.stdout
