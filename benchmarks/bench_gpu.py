"""Fit and cross-validation of the GPU model and of the DLA/GPU perf-per-watt model (``dlakit estimate --vs-gpu``).

    python benchmarks/bench_gpu.py            # GPU fit vs public GPU-only measurements, power fit vs the seed table
    python benchmarks/bench_gpu.py --write    # ... and store both fits (data/gpu.toml, data/power.toml)

Targets (issue 17): leave-one-network-out median error of the perf/W ratio <= 15% against NVIDIA's table
(shared/facts/dla.md 3.7); the GPU model's own fit and held-out error are printed for what they are.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import sys
from pathlib import Path

import numpy as np

from dlakit.perf import gpu, power

ROOT = Path(__file__).resolve().parents[1]


def shared(relative: str) -> Path:
    """../shared beside the checkout, or two levels up for a worktree in a folder of worktrees."""
    for base in (ROOT.parent / "shared", ROOT.parents[1] / "shared"):
        if (base / relative).is_file():
            return base / relative
    return ROOT.parent / "shared" / relative


def fit_table(model, cases, title: str, head: str, line) -> tuple[list[float], np.ndarray, list[float], dict]:
    """Fit ``model`` (dlakit.perf.gpu or .power) to ``cases``, print every row (``line(case, params, err, held)``)
    with its fit and held-out error, and the summary; returns (params, errors, held-out errors, LONO)."""
    params, value = model.fit(cases)
    errs = model.errors_pct(cases, params)
    lono = model.leave_one_network_out(cases)
    held = {net: iter(e) for net, (_, e) in lono.items()}
    print(f"{title}; loss {value:.4f}")
    print("# parameters: " + ", ".join(f"{n} = {v:.4g}" for n, v in zip(model.PARAM_NAMES, params, strict=True)))
    print(head)
    print("-" * len(head))
    all_held = []
    for case, err in zip(cases, errs, strict=True):
        all_held.append(next(held[case.row.network]))
        print(line(case, params, err, all_held[-1]))
    a, h = np.abs(errs), np.abs(all_held)
    what = "GPU images/s" if model is gpu else "perf/W ratio"
    target = "" if model is gpu else " (target <= 15%)"
    print(f"\n{what} fit: median |err| {np.median(a):.2f}%, max {a.max():.2f}%")
    print(f"{what} leave-one-network-out: median |err| {np.median(h):.2f}%{target}, p90 {np.percentile(h, 90):.2f}%, "
          f"max {h.max():.2f}%")
    for net, (p, e) in lono.items():
        print(f"  {net:22s} median |err| {np.median(np.abs(e)):6.2f}%  params " + ", ".join(f"{v:.4g}" for v in p))
    return params, errs, all_held, lono


def stamp(path: Path, kind: str) -> tuple[str, str, str]:
    today = datetime.date.today().isoformat()
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:8]
    return f"{today}+{kind}.{digest}", today, digest


#: depthwise rates (INT8 MAC/clk/SM) the GPU fit chooses among (data/gpu.toml depthwise_macs_per_clk)
DEPTHWISE_RATES = (8, 12, 16, 24, 32, 64, 128)


def depthwise_scan(rows: list) -> None:
    """GPU fit loss (GPU-only rows) per depthwise rate: the stored rate is the least-loss one."""
    from dataclasses import replace

    data = gpu.load_gpu_data()
    losses = []
    for rate in DEPTHWISE_RATES:
        arch = data.archs["ampere"]
        params = dict(arch.params)
        params["depthwise_macs_per_clk"] = replace(params["depthwise_macs_per_clk"], value=float(rate))
        scanned = replace(arch, params=params)
        plats = {k: replace(v, arch=scanned) if v.arch.key == "ampere" else v for k, v in data.platforms.items()}
        losses.append(gpu.fit(gpu.build_gpu_cases(rows, replace(data, platforms=plats)))[1])
    best = DEPTHWISE_RATES[int(np.argmin(losses))]
    print("depthwise scan (GPU fit loss per INT8 MAC/clk/SM): " + ", ".join(
        f"{r}: {v:.3f}" for r, v in zip(DEPTHWISE_RATES, losses, strict=True)) +
          f"; least {best}, stored {data.archs['ampere'].depthwise_macs_per_clk:g}\n")


def gpu_report(csv: Path, write: bool) -> None:
    rows = gpu.load_gpu_measurements(csv)
    depthwise_scan(rows)
    cases = gpu.build_gpu_cases(rows)
    head = (f"{'network':20s} {'b':>2s} {'platform':14s} {'mode':22s} {'SMs':>3s} {'measured':>9s} {'predicted':>9s} "
            f"{'err%':>7s} {'LONO%':>7s}")

    def line(case, params, err, held):
        r = case.row
        return (f"{r.network:20s} {r.batch:>2d} {r.platform:14s} {r.mode:22s} {r.sms:>3d} {r.images_per_second:9.1f} "
                f"{case.images_per_second(params):9.1f} {err:+7.1f} {held:+7.1f}")

    params, _, _, lono = fit_table(gpu, cases, f"# GPU model: {len(rows)} rows from {csv}", head, line)
    if write:
        version, today, digest = stamp(csv, "csv")
        section = gpu.calibration_toml(cases, params, lono, version, today,
                                       f"shared/data/orin_gpu_measured.csv ({len(rows)} rows used, sha1 {digest})")
        print(f"wrote GPU calibration to {gpu.write_calibration(section)}")


def power_report(table: Path, write: bool) -> None:
    rows = power.load_seed_ratios(table)
    cases = power.build_power_cases(rows)
    head = (f"{'network':22s} {'weights':7s} {'mode':5s} {'DLA ips':>8s} {'GPU ips':>8s} {'GPU b':>5s} {'DLA W':>6s} "
            f"{'GPU W':>6s} {'NVIDIA':>7s} {'fit':>6s} {'err%':>6s} {'LONO':>6s} {'LONO%':>6s}")

    def line(case, params, err, held):
        r = case.row
        dla_w, gpu_w = power.engine_watts(case, params)
        return (f"{r.network:22s} {r.weights:7s} {r.power_mode:5s} {case.dla_ips:8.1f} {case.gpu_ips:8.1f} "
                f"{r.gpu_batch:5d} {dla_w:6.2f} {gpu_w:6.2f} {r.ratio:6.1f}x {case.ratio(params):5.2f}x {err:+6.1f} "
                f"{r.ratio * (1 + held / 100):5.2f}x {held:+6.1f}")

    params, _, all_held, lono = fit_table(power, cases, f"\n# perf/W model: {len(rows)} ratios from {table} "
                                          "(section 3.7)", head, line)
    modes = dict.fromkeys(c.row.power_mode for c in cases)
    for axis, values in (("power mode", modes), ("weights", ("dense", "sparse"))):
        key = (lambda c: c.row.power_mode) if axis == "power mode" else (lambda c: c.row.weights)
        print(f"per {axis} (LONO median |err|): " + ", ".join(
            f"{v} {np.median([abs(x) for c, x in zip(cases, all_held, strict=True) if key(c) == v]):.1f}%"
            for v in values))
    if write:
        version, today, digest = stamp(table, "md")
        section = power.calibration_toml(cases, params, lono, version, today,
                                         f"shared/facts/dla.md 3.7 ({len(rows)} ratios, sha1 {digest})")
        print(f"wrote power calibration to {power.write_calibration(section)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=shared("data/orin_gpu_measured.csv"))
    parser.add_argument("--table", type=Path, default=shared("facts/dla.md"))
    parser.add_argument("--write", action="store_true", help="store the fits in data/gpu.toml and data/power.toml")
    parser.add_argument("--skip-gpu", action="store_true", help="only the perf/W fit")
    args = parser.parse_args()
    for path in ([] if args.skip_gpu else [args.csv]) + [args.table]:
        if not path.is_file():  # NVIDIA's figures live in the project's shared/ folder, not in a clone
            print(f"error: {path}: no such file; the measurements are in the project's shared/ folder beside the "
                  "checkout (not in a clone): pass --csv / --table", file=sys.stderr)
            return 2
    if not args.skip_gpu:
        gpu_report(args.csv, args.write)
    power_report(args.table, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
