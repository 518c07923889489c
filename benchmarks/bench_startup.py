"""Wall time of short dlakit commands in a fresh interpreter: what a user waits for before anything happens.

Target (issue 19): `--help` and `--version` well under 1 s, `check` of a small model about 1 s on an idle core
(its floor is importing onnx_ir, which imports onnx, ml_dtypes and sympy); `CMD --help` of every command fast
too (command modules import onnx & co. inside the command). Median of 5 runs each (3 for each command's help).
Run: python benchmarks/bench_startup.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5


def _small_model(folder: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import helper

    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w")])
    path = folder / "small.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _median_wall(args: list[str], runs: int = RUNS) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dlakit", *args], capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        model = _small_model(Path(scratch))
        rows = [("dlakit --help", ["--help"]), ("dlakit --version", ["--version"]),
                ("dlakit targets", ["targets"]), ("dlakit check small.onnx", ["check", str(model)])]
        print(f"{'command':<26} {'median wall s':>14}  (of {RUNS})")
        for label, args in rows:
            print(f"{label:<26} {_median_wall(args):>14.3f}")
        sys.path.insert(0, str(ROOT / "src"))
        from dlakit.cli import COMMANDS

        helps = {name: _median_wall([*name.split(), "--help"], 3) for name in [*COMMANDS, "zoo build"]}
        slowest = max(helps, key=helps.__getitem__)
        median = statistics.median(helps.values())
        print(f"{'dlakit CMD --help, median':<26} {median:>14.3f}  (of {len(helps)} commands)")
        print(f"{'slowest: ' + slowest + ' --help':<26} {helps[slowest]:>14.3f}")


if __name__ == "__main__":
    main()
