"""Build every zoo network in both forms at full size and print time, peak memory and size.

Target: the largest network builds in under 10 s and 2 GB with random weights. Each build runs in its own
process so that peak resident memory (``ru_maxrss``) belongs to that build alone; ``tracemalloc`` adds the
Python-side peak (numpy weight arrays; protobuf's C++ buffers are only in the RSS figure).

    python benchmarks/bench_zoo.py [--json] [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc


def measure(name: str, form: str) -> dict:
    """Build one network in this process and report its cost; counting runs after the timed part."""
    import onnx  # noqa: F401  (imports are not part of the build cost)

    from dlakit import zoo
    from dlakit.model import load_model, model_params, node_macs

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    start = time.perf_counter()
    model = zoo.build(name, form=form)
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = model.ByteSize()
    loaded = load_model(model)
    batch = zoo.NETWORKS[name].default_batch
    return {
        "name": name, "form": form, "batch": batch, "build_s": round(seconds, 3),
        "peak_rss_mb": round(peak_rss, 1), "rss_growth_mb": round(peak_rss - base_rss, 1),
        "traced_peak_mb": round(traced_peak / 2**20, 1), "model_mb": round(size / 2**20, 1),
        "params": model_params(loaded.graph),
        "gmacs": round(sum(node_macs(n) for n in loaded.graph) / 1e9, 3),
        "nodes": len(model.graph.node),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("NAME", "FORM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    from dlakit import zoo

    rows = []
    for name in args.names or list(zoo.NETWORKS):
        for form in zoo.FORMS:
            proc = subprocess.run([sys.executable, __file__, "--one", name, form], capture_output=True, text=True,
                                  check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    header = (f"{'name':20} {'form':9} {'batch':>5} {'build s':>8} {'peak RSS MB':>11} {'+RSS MB':>8} "
              f"{'traced MB':>9} {'file MB':>8} {'params':>11} {'GMACs(batch)':>12} {'nodes':>5}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['name']:20} {r['form']:9} {r['batch']:>5} {r['build_s']:>8.2f} {r['peak_rss_mb']:>11.0f} "
              f"{r['rss_growth_mb']:>8.0f} {r['traced_peak_mb']:>9.0f} {r['model_mb']:>8.1f} {r['params']:>11,} "
              f"{r['gmacs']:>12.2f} {r['nodes']:>5}")
    worst = max(rows, key=lambda r: r["build_s"])
    print(f"slowest: {worst['name']} {worst['form']} {worst['build_s']:.2f} s; "
          f"largest peak RSS: {max(r['peak_rss_mb'] for r in rows):.0f} MB (target: < 10 s, < 2048 MB)")


if __name__ == "__main__":
    main()
