"""How many times each command places its model (``dlakit.check.check_model`` runs), issue 14.

    python benchmarks/bench_placements.py            # every command below
    python benchmarks/bench_placements.py report fix # some of them

Each command runs in-process on resnet50 (zoo) or a small MobileNet-like network fed with generated images; the
real ``check_model`` is wrapped, so every placement a command makes is counted, also through modules that imported
the function by name. Target: one placement per distinct model (``recover``, ``fix`` and ``prepare`` also place the
models they rewrite).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dlakit.check
from dlakit.cli import COMMANDS, LazyGroup, main

LIBRARIES = ("dlakit.report", "dlakit.perf", "dlakit.sparsity", "dlakit.quantize.outputs", "dlakit.prepare",
             "dlakit.rewrite.fix", "dlakit.recover.pipeline", "dlakit.analysis")

ORIGINAL = dlakit.check.check_model
CALLS = [0]


def counted(*args, **kwargs):
    CALLS[0] += 1
    return ORIGINAL(*args, **kwargs)


def wrap_everywhere() -> None:
    for module in list(sys.modules.values()):
        if module is not None and module.__name__.startswith("dlakit") and \
                getattr(module, "check_model", None) is ORIGINAL:
            module.check_model = counted


def commands(work: Path) -> dict[str, list[str]]:
    tiny, calib = str(work / "tiny.onnx"), str(work / "calib.npy")
    return {
        "check": ["check", "resnet50"],
        "check --format json": ["check", "resnet50", "--format", "json"],
        "estimate": ["estimate", "resnet50"],
        "estimate --sparse": ["estimate", "resnet50", "--sparse"],
        "report": ["report", "resnet50", "-o", str(work / "r.html")],
        "trtexec": ["trtexec", "resnet50"],
        "sparsify": ["sparsify", "resnet50", "-o", str(work / "s.onnx")],
        "quantize": ["quantize", tiny, "--calib", calib, "-o", str(work / "q"), "--no-progress"],
        "recover": ["recover", tiny, "--calib", calib, "-o", str(work / "rec"), "--no-progress"],
        "fix": ["fix", "resnet50", "-o", str(work / "f.onnx")],
        "prepare": ["prepare", "resnet50", "-o", str(work / "p.onnx")],
    }


def main_bench(selected: list[str]) -> None:
    from tests.photos import _image, variants
    from tests.test_recover_pipeline import _net

    group = LazyGroup(name="dlakit")  # import every command module and the libraries they import lazily, so
    for module in dict.fromkeys(m for m, _ in COMMANDS.values()):  # that a name bound at import is wrapped too
        group._load(module)
    for module in LIBRARIES:
        importlib.import_module(module)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        onnx.save(_net(), str(work / "tiny.onnx"))
        photos = np.stack([v for i, n in enumerate(("astronaut", "coffee", "rocket", "chelsea"))
                           for v in variants(_image(n), 3, i, size=48)])
        np.save(work / "calib.npy", photos)
        table = commands(work)
        print(f"{'command':24} {'exit':>4} {'placements':>10}")
        for name in selected or list(table):
            wrap_everywhere()
            CALLS[0] = 0
            code = 0
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    main(table[name])
                except SystemExit as exc:
                    code = exc.code or 0
            wrap_everywhere()
            print(f"{name:24} {code:>4} {CALLS[0]:>10}")


if __name__ == "__main__":
    main_bench(sys.argv[1:])
