"""``dlakit estimate``: DLA throughput and per-layer time, per power mode, with an error band."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from dlakit.cli.common import ModelArg, PlatformOpt, ReleaseOpt, ShapesOpt, check_format, print_json
from dlakit.errors import DlakitError
from dlakit.targets import resolve_target
from dlakit.vocab import Precision

#: Layers shown by default; beyond this the table holds the slowest ones only.
TABLE_LAYERS = 500

if TYPE_CHECKING:
    from dlakit.perf import Estimate


def estimate(
    model: str = ModelArg,
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    power_mode: str | None = typer.Option(None, "--power-mode", "-m", help="nvpmodel power mode (default: the "
                                          "platform's; see dlakit targets)."),
    all_power_modes: bool = typer.Option(False, "--all-power-modes", help="Table over every power mode, dense "
                                         "and (on Orin, INT8) sparse."),
    cores: int | None = typer.Option(None, "--cores", help="DLA cores, one network instance each (default: all)."),
    batch: int | None = typer.Option(None, "--batch", help="Batch size (default: the model's)."),
    sparse: bool = typer.Option(False, "--sparse", help="Run the convolutions whose weights hold the 2:4 pattern "
                                "sparse (trtexec --sparsity=enable)."),
    sparse_force: bool = typer.Option(False, "--sparse-force", help="What-if: every eligible convolution sparse "
                                      "(trtexec --sparsity=force)."),
    precision: str = typer.Option("int8", "--precision", help="int8 or fp16."),
    dla_mhz: float | None = typer.Option(None, "--dla-mhz", help="Override the DLA core clock (MHz)."),
    emc_mhz: float | None = typer.Option(None, "--emc-mhz", help="Override the DRAM (EMC) clock (MHz)."),
    shapes: str | None = ShapesOpt,
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
    top: int | None = typer.Option(None, "--top", help="Show only the N slowest layers in the table (0 = all; "
                                   f"default: all, or the {TABLE_LAYERS} slowest of a larger network)."),
    profile: str | None = typer.Option(None, "--profile", help="Local calibration profile (dlakit compare --refit)."),
    vs_gpu: bool = typer.Option(False, "--vs-gpu", help="Also the network on the GPU alone: images/s, watts and "
                                "the DLA/GPU images-per-watt ratio (with --all-power-modes: NVIDIA's table layout)."),
    gpu_batch: int | None = typer.Option(None, "--gpu-batch", help="GPU batch for --vs-gpu (default: the batch of "
                                         "NVIDIA's perf/W table for zoo networks, else the DLA batch)."),
) -> None:
    """Images per second, latency and per-layer time of a network on the DLA, with the model's error band."""
    from dlakit.analysis import Analysis
    from dlakit.perf import conditions_for, evaluate
    from dlakit.sources import open_model

    check_format(fmt, ("table", "json"))
    if top is not None and top < 0:
        raise DlakitError(f"--top: {top} is negative; give N >= 0 (0 = every layer)")
    calib = None
    if profile is not None:
        from dlakit.perf.profiles import load_profile

        calib = load_profile(profile)
    if all_power_modes and (power_mode or dla_mhz or emc_mhz):
        raise DlakitError("--all-power-modes cannot be combined with --power-mode, --dla-mhz or --emc-mhz")
    target = resolve_target(platform, release)
    analysis = Analysis.of(open_model(model, shapes, batch=batch), target, precision)
    prep = analysis.prepared
    prep.name = model
    if all_power_modes:
        rows = []
        for mode in target.platform.power_modes:
            variants = [False, True] if (target.is_orin and precision == Precision.INT8) else [False]
            for is_sparse in variants:
                cond, label = conditions_for(target, mode.name, cores, is_sparse, precision)
                rows.append(evaluate(prep, cond, label, calib=calib))
                if vs_gpu:
                    rows[-1].assumptions["vs_gpu"] = _vs_gpu(prep, rows[-1], cond, gpu_batch)
        if fmt == "json":
            print_json({"network": model, "estimates": [_with_vs_gpu(e) for e in rows]})
        else:
            render_modes(rows)
            if vs_gpu:
                from dlakit.cli.vs_gpu import render_vs_gpu_modes

                render_vs_gpu_modes(rows)
        return
    cond, label = conditions_for(target, power_mode, cores, sparse or sparse_force, precision, dla_mhz, emc_mhz)
    notes = []
    if sparse and not sparse_force:
        pattern = analysis.sparse_pattern
        cond = dataclasses.replace(cond, sparse_nodes=frozenset(pattern))
        if not pattern:
            notes.append("no eligible convolution holds the 2:4 pattern, so sparse = dense; prune with dlakit "
                         "sparsify, or see the what-if with --sparse-force")
    result = evaluate(prep, cond, label, calib=calib)
    result.assumptions["sparse_weights"] = ("none" if not (sparse or sparse_force) else
                                            "every eligible convolution (what-if)" if sparse_force else
                                            f"the model's 2:4 pattern ({len(cond.sparse_nodes)} convolutions)")
    if vs_gpu:
        result.assumptions["vs_gpu"] = _vs_gpu(prep, result, cond, gpu_batch)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if fmt == "json":
        print_json(_with_vs_gpu(result))
    else:
        render_estimate(result, top)
        if vs_gpu:
            from dlakit.cli.vs_gpu import render_vs_gpu

            render_vs_gpu(result)


def _vs_gpu(prep, estimate, cond, gpu_batch):  # type: ignore[no-untyped-def]
    from dlakit.perf.power import vs_gpu

    return vs_gpu(prep, estimate, cond, gpu_batch)


def _with_vs_gpu(e: Estimate) -> dict:
    """The estimate's JSON with ``vs_gpu`` at the top level (kept out of the assumptions)."""
    comparison = e.assumptions.pop("vs_gpu", None)
    out = e.as_dict()
    if comparison is not None:
        out["vs_gpu"] = comparison.as_dict()
        e.assumptions["vs_gpu"] = comparison
    return out


def _band(e: Estimate) -> str:
    return f"±{e.error_band_pct:.0f}%" + ("" if not e.out_of_region else " (extrapolated)")


def render_estimate(e: Estimate, top: int | None = 0) -> None:
    """The estimate as text; ``top`` None shows every layer of a network of up to :data:`TABLE_LAYERS` layers and
    the slowest ones of a larger one (a terminal table of 100,000 rows takes minutes to lay out and is unreadable)."""
    console = Console()
    if top is None:
        top = TABLE_LAYERS if len(e.layers) > TABLE_LAYERS else 0
    a = e.assumptions
    console.print(f"[bold]{e.network}[/] on {a['platform']} ({a['release']}), power mode {e.power_mode}: "
                  f"DLA {a['dla_mhz']:g} MHz, EMC {a['emc_mhz']:g} MHz ({a['dram_gbps_peak']:g} GB/s peak, "
                  f"{a['core_dram_gbps_peak']:g} GB/s per core), {e.cores} core(s), batch {e.batch}, "
                  f"{e.precision.upper()}{', 2:4 sparse' if e.sparse else ''}")
    low, high = e.images_per_second_range
    measured = (f"; NVIDIA measured {e.measured_images_per_second:,.0f}" if e.measured_images_per_second
                else "")
    console.print(f"[bold]{e.images_per_second:,.1f} images/s[/] {_band(e)} ({low:,.0f}-{high:,.0f}), "
                  f"latency {e.latency_ms:.3f} ms per batch per core{measured}")
    s = e.split_ms
    console.print(f"DLA time {s['dla']:.3f} ms = compute {s['compute']:.3f} + memory {s['memory']:.3f} + "
                  f"overhead {s['overhead']:.3f} - overlap {s['overlap_saved']:.3f}; launch {s['launch']:.3f} ms "
                  f"({a['dla_loadables']} loadable(s), Falcon {a['falcon_mhz']:g} MHz); GPU {s['gpu']:.3f} ms, "
                  f"transitions {s['transitions']:.3f} ms ({a['transitions']})")
    table = Table(title="Per layer (DLA operations after fusion)")
    for col in ("layer", "device", "kind", "time µs", "share", "bound", "MMACs", "DRAM KiB"):
        table.add_column(col, justify="left" if col in ("layer", "device", "kind", "bound") else "right",
                         overflow="fold")
    layers = sorted(e.layers, key=lambda x: -x.time_us)[:top] if top else e.layers
    for layer in layers:
        name = layer.name + (f" (+{len(layer.nodes) - 1})" if len(layer.nodes) > 1 else "")
        table.add_row(name, layer.device, layer.kind + (" sparse" if layer.sparse else ""),
                      f"{layer.time_us:.1f}", f"{100 * layer.share:.1f}%", layer.bound,
                      f"{layer.macs / 1e6:.1f}", f"{layer.bytes / 1024:.0f}")
    console.print(table)
    if top and len(e.layers) > top:
        console.print(f"(the {top:,} slowest of {len(e.layers):,} layers; --top 0 shows all, --format json gives "
                      "every layer to scripts)")
    _render_trust(console, e)


def _render_trust(console: Console, e: Estimate) -> None:
    c = e.assumptions["calibration"]
    console.print(f"Calibration {c['version']} (fitted {c['fitted']}): compute efficiency "
                  f"{c['compute_efficiency']:.3f}, DRAM efficiency {c['dram_efficiency']:.3f}, op overhead "
                  f"{c['op_overhead_us_at_emc_3200']:.2f} µs per hardware op (per image) at EMC 3200 MHz, "
                  f"launch {c['launch_us_at_falcon_844_8']:.0f} µs per loadable per inference at Falcon 844.8 MHz, "
                  f"depthwise efficiency {c['depthwise_efficiency']:.2f}, overlap {c['overlap']:.2f}; placement: "
                  f"{e.assumptions['placement']}")
    if e.out_of_region:
        widened = ", ".join(e.assumptions.get("error_band_widened_for", [])) or "none"
        console.print(f"[yellow]Outside the calibrated region (band widened to ±{e.error_band_pct:.0f}% for: "
                      f"{widened}):[/]")
        for reason in e.out_of_region:
            console.print(f"  - {reason}")
    low = ", ".join(e.assumptions["low_confidence_parameters"])
    console.print(f"Low-confidence hardware parameters: {low}")


def render_modes(rows: list[Estimate]) -> None:
    """NVIDIA's layout: one line per network variant, one column per power mode."""
    console = Console()
    modes = list(dict.fromkeys(e.power_mode for e in rows))
    table = Table(title=f"{rows[0].network}: images/s on {rows[0].cores} DLA core(s), batch {rows[0].batch}, "
                        f"{rows[0].precision.upper()}")
    table.add_column("variant", overflow="fold")
    for mode in modes:
        table.add_column(mode, justify="right", overflow="fold")
    by_key = {(e.power_mode, e.sparse): e for e in rows}
    for is_sparse in dict.fromkeys(e.sparse for e in rows):
        cells = [f"{by_key[(m, is_sparse)].images_per_second:,.0f}" for m in modes]
        table.add_row("sparse 2:4" if is_sparse else "dense", *cells)
    for is_sparse in dict.fromkeys(e.sparse for e in rows):
        measured = [by_key[(m, is_sparse)].measured_images_per_second for m in modes]
        if any(v is not None for v in measured):
            cells = [f"{v:,.0f} ({by_key[(m, is_sparse)].images_per_second / v - 1:+.0%})" if v else "-"
                     for m, v in zip(modes, measured, strict=True)]
            table.add_row(f"measured {'sparse' if is_sparse else 'dense'} (NVIDIA, fit data; model err)", *cells)
    if (modes[0], True) in by_key:
        ratios = [by_key[(m, True)].images_per_second / by_key[(m, False)].images_per_second for m in modes]
        table.add_row("sparse speed-up", *[f"{r:.2f}x" for r in ratios])
    table.add_row("latency ms (dense)", *[f"{by_key[(m, False)].latency_ms:.2f}" for m in modes])
    table.add_row("DLA / EMC MHz", *[f"{by_key[(m, False)].assumptions['dla_mhz']:g} / "
                                     f"{by_key[(m, False)].assumptions['emc_mhz']:g}" for m in modes])
    table.add_row("error band", *[_band(by_key[(m, False)]) for m in modes])
    console.print(table)
    _render_trust(console, rows[0])


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate)
