"""``dlakit sweep``: check + estimate (+ calibration) of every model × platform × release × power mode.

One shard is one (model, platform, release): the model is loaded and placed once, then estimated at each power
mode of the sweep that the platform has. Combinations a platform does not have (a release it does not support, a
power mode of another board) are listed as skipped, not errors; names nobody has (typos) are one-line errors.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlakit.errors import DlakitError
from dlakit.scale import Pool, Shard, run_shards
from dlakit.vocab import Placement

#: fields of a row that hold wall-clock times: the only ones that differ between a serial and a sharded run
WALL_FIELDS = ("wall_seconds",)

#: CSV / table columns, in order (JSON rows hold the same keys)
COLUMNS = ("model", "platform", "release", "tensorrt", "power_mode", "precision", "fully_on_dla", "dla_nodes",
           "gpu_nodes", "fixable_nodes", "dla_subgraphs", "transitions", "dla_mac_fraction", "images_per_second",
           "images_per_second_low", "images_per_second_high", "latency_ms", "error_band_pct", "extrapolated",
           "measured_images_per_second", "int8_tensors", "fp16_layers", "calibration_samples", "wall_seconds")


@dataclass(frozen=True)
class Combo:
    """One shard of a sweep: a model on one platform and release, at one or more power modes."""

    model: str
    platform: str
    release: str
    power_modes: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.model} on {self.platform} {self.release}"


@dataclass(frozen=True)
class Settings:
    """What every shard shares: precision and the optional calibration."""

    precision: str = "int8"
    calib: str | None = None
    num_samples: int | None = None
    preset: str = "imagenet"


def plan_sweep(models: list[str], platforms: list[str] | None, releases: list[str] | None,
               power_modes: list[str] | None) -> tuple[list[Combo], list[dict[str, str]]]:
    """The shards of a sweep, in the order given on the command line, and the combinations skipped (with why).

    Defaults: the catalogue's default platform, each platform's default release and power mode."""
    from dlakit.targets import load_catalog

    if not models:
        raise DlakitError("sweep: give at least one MODEL (an ONNX file or a zoo name, see dlakit zoo list)")
    for model in models:
        _check_model_name(model)
    catalog = load_catalog()
    plats = []
    for name in dict.fromkeys(platforms or [catalog.default_platform]):
        plat = catalog.platform(name)
        if plat.dla_cores == 0:
            raise DlakitError(f"--platform {plat.key}: {plat.no_dla}")
        plats.append(plat)
    rels = [catalog.release(r) for r in dict.fromkeys(releases or [])]
    wanted_modes = list(dict.fromkeys(m.lower() for m in power_modes or []))
    for mode in wanted_modes:
        if not any(m.name.lower() == mode for p in plats for m in p.power_modes):
            known = ", ".join(dict.fromkeys(m.name for p in plats for m in p.power_modes))
            raise DlakitError(f"--power-mode: '{mode}' is not a power mode of {', '.join(p.key for p in plats)}; "
                              f"choose from: {known}")
    skipped: list[dict[str, str]] = []
    targets: list[tuple[str, str, tuple[str, ...]]] = []
    for plat in plats:
        modes = tuple(m.name for m in plat.power_modes if m.name.lower() in wanted_modes) if wanted_modes else (
            plat.power_mode(None).name,)
        for mode in wanted_modes:
            if not any(m.name.lower() == mode for m in plat.power_modes):
                skipped.append({"platform": plat.key, "release": "*", "power_mode": mode,
                                "reason": f"{plat.key} has no power mode {mode}"})
        for rel in rels or [catalog.release(plat.default_release)]:
            if rel.key not in plat.releases:
                skipped.append({"platform": plat.key, "release": rel.key, "power_mode": "*",
                                "reason": f"{rel.name} does not support DLA on {plat.name}"})
            elif modes:
                targets.append((plat.key, rel.key, modes))
    if not targets:
        raise DlakitError("sweep: no platform supports the releases and power modes given; see dlakit targets")
    combos = [Combo(model, plat, rel, modes) for model in models for plat, rel, modes in targets]
    return combos, skipped


def _check_model_name(model: str) -> None:
    if Path(model).exists():
        return
    from dlakit import zoo

    if not zoo.is_zoo_name(model):
        from dlakit.zoo.registry import suggestion

        raise DlakitError(f"{model}: no such file or zoo network{suggestion(model)}; see dlakit zoo list")


def sweep_shard(settings: Settings, combo: Combo) -> list[dict[str, Any]]:
    """Check, estimate (and calibrate) one model on one target; a row per power mode. Runs on a worker."""
    from dlakit.analysis import Analysis
    from dlakit.perf import conditions_for, evaluate
    from dlakit.sources import open_model
    from dlakit.targets import resolve_target

    start = time.perf_counter()
    target = resolve_target(combo.platform, combo.release)
    loaded = open_model(combo.model)  # a file, or a zoo network as `dlakit check NAME` builds it
    analysis = Analysis.of(loaded, target, settings.precision)
    report = analysis.placement
    prep = analysis.prepared
    prep.name = combo.model
    prep.fixable = sum(1 for n in report.nodes if n.placement == Placement.FIXABLE)
    s = report.summary
    quant = _calibrate(loaded, target, settings) if settings.calib else {}
    rows = []
    for mode in combo.power_modes:
        cond, label = conditions_for(target, mode, None, False, settings.precision)
        e = evaluate(prep, cond, label)
        low, high = e.images_per_second_range
        rows.append({
            "model": combo.model, "platform": combo.platform, "release": combo.release,
            "tensorrt": target.release.tensorrt, "power_mode": e.power_mode, "precision": settings.precision,
            "fully_on_dla": report.fully_on_dla, "dla_nodes": s["dla_nodes"], "gpu_nodes": s["gpu_nodes"],
            "fixable_nodes": s["fixable_nodes"], "dla_subgraphs": s["dla_subgraphs"],
            "transitions": s["transitions"], "dla_mac_fraction": round(s["dla_mac_fraction"], 4),
            "images_per_second": e.images_per_second, "images_per_second_low": round(low, 2),
            "images_per_second_high": round(high, 2), "latency_ms": round(e.latency_ms, 4),
            "error_band_pct": e.error_band_pct, "extrapolated": bool(e.out_of_region),
            "measured_images_per_second": e.measured_images_per_second, **quant,
        })
    wall = round(time.perf_counter() - start, 3)
    for row in rows:
        row["wall_seconds"] = wall
    return rows


def _calibrate(loaded: Any, target: Any, settings: Settings) -> dict[str, Any]:
    """Entropy calibration on the sweep's data for this target: how many tensors get INT8 scales, which layers
    stay FP16. (``dlakit quantize`` writes the files.)"""
    from dlakit.quantize.calibrate import DEFAULT_BUDGET_MB, calibrate
    from dlakit.quantize.data import make_preset, open_source
    from dlakit.quantize.plan import off_dla_layers
    from dlakit.quantize.runtime import input_specs, upgrade_for_qdq

    model = upgrade_for_qdq(loaded)
    shapes, _ = input_specs(model)
    preset = make_preset(settings.preset, None, None, None, None, None)
    source = open_source(settings.calib, shapes, preset, settings.num_samples)  # type: ignore[arg-type]
    result = calibrate(model, source, "entropy", 99.99, set(), DEFAULT_BUDGET_MB, False,
                       off_dla=off_dla_layers(model, target))
    _, tied, _ = result.ranges()
    return {"int8_tensors": len(tied), "fp16_layers": len(result.plan.fp16_layers),
            "calibration_samples": result.samples}


def run_sweep(combos: list[Combo], settings: Settings, where: Pool | None, progress: bool = True
              ) -> list[dict[str, Any]]:
    """Every row of the sweep, in shard order then power-mode order, whether run serially or sharded."""
    shards = [Shard(i, combo.label, combo) for i, combo in enumerate(combos)]
    per_shard = run_shards(sweep_shard, settings, shards, where, f"sweeping {len(combos)} model × target "
                           "combinations", progress)
    return [row for rows in per_shard for row in rows]


def sweep_json(rows: list[dict[str, Any]], skipped: list[dict[str, str]], wall: float) -> dict[str, Any]:
    return {"combinations": len(rows), "rows": rows, "skipped": skipped, "wall_seconds": round(wall, 3)}


def without_wall_times(data: Any) -> Any:
    """``data`` (a sweep's JSON) less its wall-clock fields: what a sharded run must reproduce exactly."""
    if isinstance(data, dict):
        return {k: without_wall_times(v) for k, v in data.items() if k not in WALL_FIELDS}
    if isinstance(data, list):
        return [without_wall_times(v) for v in data]
    return data


def columns(rows: list[dict[str, Any]]) -> list[str]:
    present = {k for row in rows for k in row}
    return [c for c in COLUMNS if c in present]


def sweep_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def sweep_html(rows: list[dict[str, Any]], skipped: list[dict[str, str]], wall: float) -> str:
    """One self-contained page: the table of every combination and what was skipped."""
    from html import escape

    from dlakit import __version__
    from dlakit.report.html import CSS, _table

    cols = [c for c in columns(rows) if c not in ("precision", "images_per_second_low", "images_per_second_high")]
    numeric = {i for i, c in enumerate(cols) if c not in ("model", "platform", "release", "tensorrt", "power_mode",
                                                          "fully_on_dla", "extrapolated")}
    body = []
    for row in rows:
        cells = []
        for c in cols:
            value = row.get(c)
            if c == "images_per_second":
                text = f"{value:,.1f} ±{row['error_band_pct']:.0f}%"
            elif c == "fully_on_dla":
                text = "<span class='dla'>yes</span>" if value else "<span class='gpu'>no</span>"
            else:
                text = escape("-" if value is None else str(value))
            cells.append(text)
        body.append(cells)
    skipped_rows = [[escape(s["platform"]), escape(s["release"]), escape(s["power_mode"]), escape(s["reason"])]
                    for s in skipped]
    models = len({r["model"] for r in rows})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>dlakit sweep</title>"
        f"<style>{CSS}</style></head><body>",
        "<h1>dlakit sweep</h1>",
        f"<p class='sub'>{len(rows)} combinations of {models} model(s), {len(skipped)} skipped · "
        f"{wall:.1f} s · dlakit {__version__}</p>",
        "<section id='results'><h2>Placement and estimate</h2>",
        _table([c.replace("_", " ") for c in cols], body, numeric),
        "<p class='note'>images/s: the performance model's estimate with its error band; see dlakit estimate "
        "for per-layer time and assumptions.</p></section>",
    ]
    if skipped_rows:
        parts += ["<section id='skipped'><h2>Skipped combinations</h2>",
                  _table(["platform", "release", "power mode", "why"], skipped_rows), "</section>"]
    parts.append("</body></html>\n")
    return "".join(parts)
