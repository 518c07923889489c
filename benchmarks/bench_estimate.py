"""Fit report, nested cross-validation, error-band coverage and speed of ``dlakit estimate``.

    python benchmarks/bench_estimate.py            # fit, print every row and the cross-validations
    python benchmarks/bench_estimate.py --write    # ... and store the fit in src/dlakit/data/perf.toml

Targets (issues 5, 21): median absolute error <= 5% over the measured rows; nested cross-validation (structure
chosen without the held-out network) median <= 5%; at least 80% of held-out rows inside their fold's error band;
an estimate of the largest zoo network in under 1 s once the model is loaded.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from dlakit.model import load_model
from dlakit.perf import calibrate, conditions_for, evaluate, load_perf_data, prepare
from dlakit.perf.cost import loadable_seconds, op_parts, overhead_seconds
from dlakit.targets import resolve_target

ROOT = Path(__file__).resolve().parents[1]
#: ../shared beside the checkout, or two levels up for a worktree in a folder of worktrees
DEFAULT_CSV = next((p for p in (ROOT.parent / "shared" / "data" / "orin_dla_measured.csv",
                                ROOT.parents[1] / "shared" / "data" / "orin_dla_measured.csv") if p.is_file()),
                   ROOT.parent / "shared" / "data" / "orin_dla_measured.csv")
ZOO = ("resnet50", "ssd-resnet34", "ssd-mobilenetv1", "retinanet-resnext50", "retinanet-resnet34",
       "resnet34-backbone")


def fit_report(csv: Path, write: bool) -> None:
    rows = calibrate.load_measurements(csv)
    start = time.perf_counter()
    cases = calibrate.build_cases(rows)
    built = time.perf_counter() - start
    start = time.perf_counter()
    params, value = calibrate.fit(cases)
    fitted_s = time.perf_counter() - start
    start = time.perf_counter()
    lono = calibrate.leave_one_network_out(cases)
    lono_s = time.perf_counter() - start
    errs = calibrate.errors_pct(cases, params)
    held = {net: iter(e) for net, (_, e) in lono.items()}
    print(f"# {len(rows)} rows from {csv}; cases built in {built:.1f} s, fit {fitted_s:.2f} s, "
          f"LONO {lono_s:.1f} s; loss {value:.4f}")
    fitted = [(n, v) for n, v in zip(calibrate.PARAM_NAMES, params, strict=True) if n != "overlap"]
    print("# parameters: " + ", ".join(f"{n} = {v:.4g}" for n, v in fitted) + f" (overlap fixed at {params[3]:g})")
    head = f"{'network':22s} {'input':>9s} {'b':>2s} {'weights':7s} {'mode':5s} {'measured':>9s} " \
           f"{'predicted':>9s} {'err%':>7s} {'LONO pred':>9s} {'LONO%':>7s}"
    print(head)
    print("-" * len(head))
    lono_all = []
    for case, err in zip(cases, errs, strict=True):
        r = case.row
        held_err = next(held[r.network])
        lono_all.append(held_err)
        print(f"{r.network:22s} {r.input_hw[0]:>4d}x{r.input_hw[1]:<4d} {r.batch:>2d} {r.weights:7s} "
              f"{r.power_mode:5s} {r.images_per_second:9.0f} {case.images_per_second(params):9.1f} {err:+7.1f} "
              f"{r.images_per_second * (1 + held_err / 100):9.1f} {held_err:+7.1f}")
    abs_err, abs_lono = np.abs(errs), np.abs(lono_all)
    print(f"\nfit: median |err| {np.median(abs_err):.2f}% (target <= 5%), mean {abs_err.mean():.2f}%, "
          f"max {abs_err.max():.2f}%")
    print(f"leave-one-network-out: median |err| {np.median(abs_lono):.2f}% (target <= 10%), "
          f"p90 {np.percentile(abs_lono, 90):.2f}%, max {abs_lono.max():.2f}%")
    print("\nLONO per held-out network (parameters fitted without it):")
    for net, (p, e) in lono.items():
        print(f"  {net:22s} median |err| {np.median(np.abs(e)):6.2f}%  params "
              + ", ".join(f"{v:.4g}" for v in p))
    start = time.perf_counter()
    variants = [calibrate.build_cases(rows, data=calibrate.with_model(load_perf_data(), s))
                for s in calibrate.STRUCTURES]
    nested = calibrate.nested_cv(variants)
    nested_report(nested, time.perf_counter() - start)
    clock_split(cases)
    model_split(cases, params)
    if write:
        today = datetime.date.today().isoformat()
        digest = hashlib.sha1(csv.read_bytes()).hexdigest()[:8]
        section = calibrate.calibration_toml(cases, params, lono, f"{today}+csv.{digest}", today,
                                             f"shared/data/orin_dla_measured.csv ({len(rows)} rows, sha1 {digest})",
                                             nested)
        print(f"\nwrote calibration to {calibrate.write_calibration(section)}")


def nested_report(folds: list[calibrate.NestedFold], seconds: float) -> None:
    """Nested cross-validation: per held-out network, the structure its inner CV chose, its errors and band;
    then the per-category medians and the band's coverage."""
    print(f"\nnested cross-validation ({seconds:.1f} s; structure candidates {list(calibrate.STRUCTURES)}, chosen by "
          "an inner leave-one-network-out without the held-out network):")
    rows, covered = [], []
    for fold in folds:
        inside = calibrate.fold_coverage(fold)
        covered += inside
        rows += [(case.row, float(err)) for case, err in zip(fold.cases, fold.errors, strict=True)]
        print(f"  {fold.network:22s} chose {fold.structure}  median |err| {np.median(np.abs(fold.errors)):6.2f}%  "
              f"worst {np.abs(fold.errors).max():6.2f}%  band ±{fold.band_pct:.1f}% (x widening)  "
              f"inside {sum(inside)}/{len(inside)}")
    errs = np.abs([e for _, e in rows])
    print(f"nested CV: median |err| {np.median(errs):.2f}% (target <= 5%), p90 {np.percentile(errs, 90):.2f}%, "
          f"worst {errs.max():.2f}%")
    print(f"band coverage on held-out rows: {sum(covered)}/{len(covered)} = {100 * sum(covered) / len(covered):.0f}% "
          f"(target >= {calibrate.BAND_COVERAGE:.0%})")
    print("per category (nested-CV held-out |err|): median / worst, rows")
    groups: dict[tuple[str, str], list[float]] = {}
    for row, err in rows:
        for axis, value in calibrate.categories(row).items():
            groups.setdefault((axis, value), []).append(abs(err))
    for (axis, value), values in sorted(groups.items()):
        print(f"  {axis:10s} {value:28s} {np.median(values):6.2f}% / {max(values):6.2f}%  n={len(values)}")


def clock_split(cases: list[calibrate.FitCase]) -> None:
    """Check the compute model without any fitted parameter: split each network's measured time per power mode
    into a DLA-clocked and an EMC-clocked part (least squares of t = a / f_dla + b / f_emc over its modes) and
    compare the DLA-clocked part with the modelled MAC-array cycles at 100% efficiency."""
    print("\nclock split of the measurements (t = a/f_dla + b/f_emc per network; a vs modelled ideal cycles):")
    groups: dict[tuple[str, str], list[calibrate.FitCase]] = {}
    for case in cases:
        groups.setdefault((case.row.network, case.row.weights), []).append(case)
    for (net, weights), group in groups.items():
        if len({c.dla_mhz for c in group}) < 2:
            continue
        x = np.array([[1 / c.dla_mhz, 1 / c.emc_mhz] for c in group])
        y = np.array([c.row.cores * c.row.batch / c.row.images_per_second for c in group])
        (a, b), *_ = np.linalg.lstsq(x, y, rcond=None)
        cycles = group[0].cycles.sum() / 1e6
        print(f"  {net:22s} {weights:6s} DLA-clocked {a / 1600 * 1e3:7.3f} ms @1600 MHz = "
              f"{a / cycles:4.2f} x modelled cycles; EMC-clocked {b / 3200 * 1e3:6.3f} ms @3200 MHz")


def model_split(cases: list[calibrate.FitCase], params: list[float]) -> None:
    """The fitted model's own split at MAXN, to hold against the clock split above: compute (DLA clock), and
    streamed traffic left exposed, CBUF re-fetches and per-op overhead (all EMC clock), and the launch of the
    loadable (Falcon clock)."""
    print("\nmodel split at MAXN (ms per batch per core, fitted parameters):")
    for case in cases:
        if case.row.power_mode != "MAXN":
            continue
        overhead, launch = params[2], params[5]
        compute, memory, refetch = op_parts(case.cycles, case.dram, params[:5], case.dla_mhz, case.bandwidth,
                                            case.refetch, case.depthwise)
        exposed = np.maximum(compute, memory - refetch) - compute
        fixed = case.counted.sum() * overhead_seconds(overhead, case.emc_mhz)
        print(f"  {case.row.network:22s} {case.row.weights:6s} compute {compute.sum() * 1e3:7.3f}  streamed exposed "
              f"{exposed.sum() * 1e3:6.3f}  CBUF re-fetch {refetch.sum() * 1e3:6.3f}  overhead {fixed * 1e3:6.3f}  "
              f"launch {loadable_seconds(launch, case.falcon_mhz) * 1e3:6.3f}")


def constraint_checks() -> None:
    """Model behaviour against public constraints that are not fit rows: NVIDIA's ResNet-50 FP16/INT8 ratio on one
    DRIVE Orin DLA (13.7x, dla.md 3.6), images/s flat in batch, and the 2:4 sparse gain of the detectors whose
    sparse rows are not fitted (NVIDIA's README: SSD-ResNet-34 1.24-1.36x)."""
    from dlakit import zoo

    print("\nconstraint checks (model only):")
    drive = resolve_target("drive-orin")
    nets = {b: prepare(load_model(zoo.build("resnet50", form="prepared", batch=b)), drive, placement={})
            for b in (1, 4, 16)}
    int8 = evaluate(nets[1], *conditions_for(drive, cores=1))
    fp16_prep = prepare(load_model(zoo.build("resnet50", form="prepared", batch=1)), drive, "fp16", placement={})
    fp16 = evaluate(fp16_prep, *conditions_for(drive, cores=1, precision="fp16"))
    print(f"  ResNet-50 b1, one DRIVE Orin DLA: INT8 {int8.latency_ms:.3f} ms (NVIDIA 1.283), FP16 "
          f"{fp16.latency_ms:.2f} ms (NVIDIA 17.57), ratio {fp16.latency_ms / int8.latency_ms:.1f}x (NVIDIA 13.7x)")
    ips = {b: evaluate(p, *conditions_for(drive)).images_per_second for b, p in nets.items()}
    print("  ResNet-50 on DRIVE Orin, img/s at batch 1 / 4 / 16: " + " / ".join(f"{v:.0f}" for v in ips.values()))
    orin = resolve_target("agx-orin-64gb")
    for name in ("ssd-resnet34", "retinanet-resnet34"):
        prep = prepare(load_model(zoo.build(name, form="prepared")), orin, placement={})
        gains = []
        for mode in ("MAXN", "50W", "30W", "15W"):
            dense = evaluate(prep, *conditions_for(orin, mode)).images_per_second
            gains.append(evaluate(prep, *conditions_for(orin, mode, sparse=True)).images_per_second / dense)
        print(f"  {name} 2:4 sparse gain MAXN/50W/30W/15W: " + " / ".join(f"{g:.2f}x" for g in gains))
    proxy_checks(drive)
    prep = prepare(load_model(zoo.build("ssd-mobilenetv1", form="prepared")), orin, placement={})
    modes = ("MAXN", "50W", "30W", "15W")
    ips = [evaluate(prep, *conditions_for(orin, mode)).images_per_second for mode in modes]
    print("  ssd-mobilenetv1 b2 img/s MAXN/50W/30W/15W (only MAXN is a fit row, 2664): "
          + " / ".join(f"{v:.0f}" for v in ips) + f"; MAXN/15W {ips[0] / ips[-1]:.2f}x (ResNet-50 measured "
          f"{2037 / 1072:.2f}x)")


def proxy_checks(drive) -> None:
    """The public architectures of benchmarks/proxy_nets.py (issue 21's held-out families): batch-1 INT8 and FP16
    latency on one DRIVE Orin DLA (NVIDIA measured ResNet-, Res2Net-, Inception- and MobileNet-style classifiers
    there; only ResNet-50's figures are in shared/facts), and YOLOv5s's images/s over batch (measured flat)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import proxy_nets

    rows = []
    for name in ("resnet50_timm", "res2net50_26w_4s", "inception_v3", "mobilenetv2"):
        model = proxy_nets.NETWORKS[name]()
        rows.append((name, proxy_nets.estimate_ms(model, "int8")[0], proxy_nets.estimate_ms(model, "fp16")[0]))
    print("  batch 1, one DRIVE Orin DLA, INT8 / FP16 ms (ratio): " + "; ".join(
        f"{n} {i:.3f} / {f:.2f} ({f / i:.1f}x)" for n, i, f in rows))
    ips = []
    for batch in (1, 4, 16):
        prep = prepare(load_model(proxy_nets.yolov5s(batch)), drive, placement={})
        ips.append(evaluate(prep, *conditions_for(drive, cores=1)).images_per_second)
    print("  YOLOv5s 672 INT8, one DRIVE Orin DLA, img/s at batch 1 / 4 / 16: " + " / ".join(f"{v:.0f}" for v in ips)
          + " (NVIDIA's cuDLA-samples: about flat)")


def speed_report() -> None:
    from dlakit import zoo

    target = resolve_target("agx-orin-64gb")
    print("\nspeed (after load; prepare = placement + fusion, evaluate = one power mode):")
    print(f"{'network':22s} {'GMACs':>8s} {'ops':>5s} {'load s':>7s} {'prepare s':>9s} {'evaluate s':>10s} "
          f"{'all modes s':>11s}")
    for name in ZOO:
        start = time.perf_counter()
        loaded = load_model(zoo.build(name, form="prepared"))
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        prep = prepare(loaded, target)
        prep_s = time.perf_counter() - start
        start = time.perf_counter()
        cond, label = conditions_for(target)
        evaluate(prep, cond, label)
        eval_s = time.perf_counter() - start
        start = time.perf_counter()
        for mode in target.platform.power_modes:
            for sparse in (False, True):
                evaluate(prep, *conditions_for(target, mode.name, sparse=sparse))
        modes_s = time.perf_counter() - start
        macs = sum(op.macs for op in prep.ops) / 1e9
        print(f"{name:22s} {macs:8.1f} {len(prep.ops):5d} {load_s:7.2f} {prep_s:9.3f} {eval_s:10.4f} "
              f"{modes_s:11.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--write", action="store_true", help="store the fit in data/perf.toml")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    if not args.csv.is_file():  # NVIDIA's figures live in the project's shared/ folder, not in a clone
        print(f"error: {args.csv}: no such file; the measurements are in the project's shared/ folder beside the "
              "checkout (not in a clone): pass --csv", file=sys.stderr)
        return 2
    fit_report(args.csv, args.write)
    calib = load_perf_data().calibration
    print(f"\nstored calibration: {calib.version}, error band ±{calib.error_band_pct:g}%")
    constraint_checks()
    if not args.no_speed:
        speed_report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
