"""Unrolling CNN+LSTM/GRU recognisers: model size, nodes, transitions and estimated images/s, before → after fix.

    python benchmarks/bench_recurrent.py

The models are the synthetic OCR recognisers of ``tests/test_rewrite_recurrent.py`` (conv stack → feature map
[1, C, 1, T] → bidirectional RNN → MatMul), at the sizes of real CRNN recognisers (T 64, hidden 256: a 16,384-
channel step Concat) and smaller. ``fix`` runs every rule and pass with the placement guard off, so the table
shows what unrolling itself does; whether to keep it is the priced guard's call (``dlakit estimate``'s model).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = [("LSTM", 64, 256, 256), ("GRU", 32, 128, 128), ("LSTM", 16, 64, 32), ("GRU", 16, 640, 32)]


def figures(loaded, target) -> tuple[float, int, int, float]:
    """(weights MB, nodes, transitions, estimated images/s) of ``loaded`` on ``target``."""
    from dlakit.analysis import Analysis
    from dlakit.perf.estimate import conditions_for, evaluate

    analysis = Analysis.of(loaded, target)
    cond, label = conditions_for(target)
    estimate = evaluate(analysis.prepared, cond, label)
    weights = sum(v.const_value.nbytes for v in loaded.graph.initializers.values() if v.const_value is not None)
    return weights / 1e6, len(list(loaded.graph)), analysis.placement.transitions, estimate.images_per_second


def main() -> None:
    from dlakit.model import load_model
    from dlakit.rewrite import fix_model, random_inputs, verify
    from dlakit.rewrite.fix import FixOptions
    from dlakit.targets import resolve_target
    from tests.test_rewrite_recurrent import recogniser

    target = resolve_target()
    print(f"{'model':<26} {'weights MB':>14} {'nodes':>13} {'transitions':>12} {'img/s':>16} {'fix s':>6} ok")
    for op, seq, hidden, feat in CASES:
        loaded = load_model(recogniser(op, seq=seq, hidden=hidden, feat=feat))
        before = figures(loaded, target)
        start = time.perf_counter()
        result = fix_model(loaded, FixOptions(guard=False))
        seconds = time.perf_counter() - start
        proto = result.proto()
        ok = verify(loaded, proto, random_inputs(loaded)).passed
        after = figures(load_model(proto), target)
        name = f"{op} T={seq} H={hidden} bidir"
        print(f"{name:<26} {before[0]:>6.2f} → {after[0]:<6.2f}{before[1]:>5} → {after[1]:<6}{before[2]:>4} → "
              f"{after[2]:<5}{before[3]:>7.0f} → {after[3]:<7.0f}{seconds:>6.1f} {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
