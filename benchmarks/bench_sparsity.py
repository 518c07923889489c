"""Speed of ``dlakit sparsify``: pattern kernels on large tensors and whole zoo networks end to end.

    python benchmarks/bench_sparsity.py                 # kernels + resnet50, retinanet-resnext50, ssd-resnet34
    python benchmarks/bench_sparsity.py --nets resnet50 # fewer networks
    python benchmarks/bench_sparsity.py --no-kernels --nets '' --modes resnet50  # power-mode table only

Targets (issue 7): pruning is never the slow part of a sparsify run; magnitude pruning runs at ≥ 20 M weights/s
on one core, and the whole command (load, check, performance model, prune, write) of the largest zoo network
stays within a few times ``dlakit check`` on it. Peak memory: one extra copy of the model's weights.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from dlakit.check import check_model
from dlakit.sparsity import has_2to4, perf_gains, prune, read_source, sparsify_model, write_model
from dlakit.targets import resolve_target


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def kernels() -> None:
    print("pattern kernels (float32, C along axis 1)")
    print(f"{'shape':>22} {'Mweights':>9} {'magnitude s':>12} {'M/s':>7} {'force s':>8} {'check s':>8}")
    rng = np.random.default_rng(0)
    for shape in ((512, 512, 3, 3), (2048, 512, 3, 3), (1024, 4096, 3, 3), (4096, 4099, 1, 1)):
        w = rng.standard_normal(shape, dtype=np.float32)
        t0 = time.perf_counter()
        p = prune(w, "magnitude")
        t1 = time.perf_counter()
        prune(w, "force")
        t2 = time.perf_counter()
        assert has_2to4(p)
        t3 = time.perf_counter()
        m = w.size / 1e6
        print(f"{'x'.join(map(str, shape)):>22} {m:9.1f} {t1 - t0:12.3f} {m / (t1 - t0):7.1f} {t2 - t1:8.3f} "
              f"{t3 - t2:8.3f}")


def network(name: str, out_dir: Path) -> None:
    t0 = time.perf_counter()
    proto, loaded = read_source(name)
    t1 = time.perf_counter()
    report = check_model(loaded, resolve_target(None, None))
    t2 = time.perf_counter()
    gains = perf_gains(loaded, report, None)
    t3 = time.perf_counter()
    result = sparsify_model(proto, report, "magnitude", gains=gains)
    t4 = time.perf_counter()
    write_model(result.model, out_dir / f"{name}.onnx")
    t5 = time.perf_counter()
    s = result.summary()
    params = sum(int(np.prod(t.dims)) for t in proto.graph.initializer) / 1e6
    print(f"{name:>20} {params:8.1f} {s['pruned']:4d}/{s['conv_layers']:<4d} {t1 - t0:7.2f} {t2 - t1:7.2f} "
          f"{t3 - t2:7.2f} {t4 - t3:7.2f} {t5 - t4:7.2f} {t5 - t0:7.2f} {rss_mb():8.0f}  "
          f"{s['estimated_speedup'] or 1:.3f}x")


def power_modes(names: list[str]) -> None:
    """Dense vs 2:4 sparse (every eligible layer) per AGX Orin power mode, from the performance model: NVIDIA
    observes larger gains at lower power modes, where the DLA clock falls more than the DRAM bandwidth."""
    from dlakit.sparsity import sparsity_info

    target = resolve_target("agx-orin-64gb", None)
    modes = [m.name for m in target.platform.power_modes]
    print("estimated end-to-end speed-up, all eligible layers sparse (AGX Orin 64GB, INT8, dense/sparse latency)")
    print(f"{'network':>20} " + " ".join(f"{m:>9}" for m in modes))
    for name in names:
        _, loaded = read_source(name)
        report = check_model(loaded, target)
        eligible = [i.name for i in sparsity_info(report) if i.eligible]
        cells = []
        for mode in modes:
            gains = perf_gains(loaded, report, mode)
            cells.append(f"{gains.dense_latency_ms / gains.latency_with(eligible):8.3f}x")
        print(f"{name:>20} " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default="resnet50,retinanet-resnext50,ssd-resnet34")
    parser.add_argument("--no-kernels", action="store_true")
    parser.add_argument("--modes", default="resnet50,ssd-resnet34,ssd-mobilenetv1,retinanet-resnext50,"
                        "retinanet-resnet34,resnet34-backbone", help="networks for the power-mode table ('' = none)")
    args = parser.parse_args()
    if not args.no_kernels:
        kernels()
        print()
    print("end to end on zoo networks (seconds; AGX Orin 64GB, JetPack 6.2, INT8, MAXN; peak RSS so far)")
    print(f"{'network':>20} {'Mparams':>8} {'pruned':>9} {'build':>7} {'check':>7} {'perf':>7} {'prune':>7} "
          f"{'write':>7} {'total':>7} {'RSS MB':>8}  est. speed-up")
    with tempfile.TemporaryDirectory() as tmp:
        for name in filter(None, args.nets.split(",")):
            network(name.strip(), Path(tmp))
    if args.modes:
        print()
        power_modes([n.strip() for n in args.modes.split(",")])


if __name__ == "__main__":
    main()
