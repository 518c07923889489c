"""`dlakit fix` on the command line: outputs, JSON fields, refusal to write, one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from dlakit.cli import main
from dlakit.rewrite.testing import one_op_model

F32 = np.float32


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlakit", "fix", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def hardswish_file(tmp_path: Path) -> Path:
    path = tmp_path / "hs.onnx"
    onnx.save(one_op_model("HardSwish", {"x": ((1, 4, 8, 8), F32)}), path)
    return path


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_fix_json_fields(hardswish_file, tmp_path):
    out = tmp_path / "out.onnx"
    result = run(hardswish_file, "-o", out, "--format", "json", "--objective", "dla-share")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"model", "output", "written", "target", "cut", "folded_nodes", "rules_applied", "applied",
                         "refused", "verification", "check", "estimate"}
    assert data["written"] and out.exists()
    estimate = data["estimate"]
    assert estimate["objective"] == "dla-share" and estimate["images_per_second_before"] > 0
    assert estimate["rules"][0]["rule"] == "hardswish-decompose" and estimate["rules"][0]["kept"]
    assert data["rules_applied"] == {"hardswish-decompose": 1}
    assert data["applied"][0]["node"] == "the_hardswish"
    assert data["verification"]["passed"] and data["verification"]["outputs"][0]["name"] == "y"
    if data["check"] is not None:
        assert data["check"]["after"]["dla_mac_fraction"] >= data["check"]["before"]["dla_mac_fraction"]
    assert [n.op_type for n in onnx.load(out).graph.node] == ["Add", "Clip", "Mul", "Mul"]


def test_fix_latency_guard_prices_the_rewrite(hardswish_file, tmp_path):
    """A lone HardSwish: one GPU kernel is estimated faster than its four-op decomposition on the DLA."""
    out = tmp_path / "out.onnx"
    result = run(hardswish_file, "-o", out, "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rule = data["estimate"]["rules"][0]
    assert data["estimate"]["objective"] == "latency" and rule["rule"] == "hardswish-decompose"
    assert rule["kept"] == (rule["without"] <= rule["with"] * (1 + 5e-3))
    after, before = data["estimate"]["images_per_second_after"], data["estimate"]["images_per_second_before"]
    assert after >= before * (1 - 5e-3)
    if not rule["kept"]:
        assert data["rules_applied"] == {} and "img/s" in data["guarded"]["hardswish-decompose"]
    table = run(hardswish_file, "-o", out)
    assert "estimated images/s" in table.stdout


def test_fix_table_output(hardswish_file, tmp_path):
    result = run(hardswish_file, "-o", tmp_path / "out.onnx")
    assert result.returncode == 0, result.stderr
    assert "hardswish-decompose" in result.stdout and "verification" in result.stdout


def test_verification_failure_refuses_to_write_unless_forced(hardswish_file, tmp_path):
    out = tmp_path / "out.onnx"
    inputs = tmp_path / "in.npz"
    np.savez(inputs, x=np.linspace(-4, 4, 256, dtype=F32).reshape(1, 4, 8, 8) / 3)
    result = run(hardswish_file, "-o", out, "--inputs", inputs, "--tolerance", "1e-30")
    if result.returncode == 0:  # bit-identical on this platform: nothing to refuse
        pytest.skip("the decomposition is bit-exact here")
    assert_one_line_error(result, "verification failed", "not written", "--force",
                          "because of rule hardswish-decompose")
    assert not out.exists()
    forced = run(hardswish_file, "-o", out, "--inputs", inputs, "--tolerance", "1e-30", "--force")
    assert forced.returncode == 0 and out.exists() and "written anyway" in forced.stderr


@pytest.mark.parametrize(("args", "fragments"), [
    (["missing.onnx", "-o", "x.onnx"], ["no such file"]),
    (["{model}", "-o", "{model}"], ["refusing to overwrite the input model"]),
    (["{model}", "-o", "x.onnx", "--rules", "bogus"], ["unknown rule 'bogus'"]),
    (["{model}", "-o", "x.onnx", "--objective", "speed"], ["--objective", "latency, dla-share"]),
    (["{model}", "-o", "x.onnx", "--rules", "neg-to-scale", "--skip-rules", "identity-removal"], ["not both"]),
    (["{model}", "-o", "x.onnx", "--outputs", "nope"], ["'nope' is not in the model"]),
    (["{model}", "-o", "x.onnx", "--inputs", "{npz}"], ["has no array 'x'"]),
    (["{model}", "-o", "x.onnx", "--format", "xml"], ["--format"]),
])
def test_bad_input_is_one_line(hardswish_file, tmp_path, capsys, args, fragments):
    """In-process through the CLI's entry point (the same error handling as the installed command, but fast)."""
    npz = tmp_path / "wrong.npz"
    np.savez(npz, other=np.zeros(3))
    args = [a.format(model=hardswish_file, npz=npz) for a in args]
    args = [str(tmp_path / a) if a == "x.onnx" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["fix", *args])
    stderr = capsys.readouterr().err
    assert_one_line_error(subprocess.CompletedProcess([], exit_info.value.code, "", stderr), *fragments)
