"""The fitting benchmarks read NVIDIA's figures from the project's shared/ folder, which a fresh clone lacks: a
missing file is one line naming it and the option to pass, exit 2, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("script", "options"), [("bench_estimate.py", ["--csv"]),
                                                 ("bench_gpu.py", ["--csv"]),
                                                 ("bench_gpu.py", ["--skip-gpu", "--table"])])
def test_a_missing_measurement_file_is_one_line(tmp_path, script, options):
    missing = tmp_path / "absent.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *options, str(missing)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(missing) in result.stderr and options[-1] in result.stderr
