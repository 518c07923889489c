"""What the recovery did, as JSON and as a table: per technique, per FP16 layer, per refused ReLU6 pair.

Users asked "INT8 on DLA collapses, which layer?": the report names the layers kept in FP16 with what each buys
(measured SQNR) and costs (estimated DLA time), the equalization pairs that were refused and why, and the layers
whose bias correction was largest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlakit.recover.pipeline import Recovery


def _db(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 2)


def recovery_summary(result: Recovery) -> dict[str, Any]:
    """JSON-ready description of ``result`` (field names documented in the README section)."""
    out: dict[str, Any] = {"seconds": {k: round(v, 2) for k, v in result.seconds.items()}, "notes": result.notes}
    eq = result.equalized
    if eq is not None:
        out["equalization"] = {
            "pairs": len(eq.pairs), "scaled_channels": sum(p.scaled_channels for p in eq.pairs),
            "relu6_replaced": eq.relu6_replaced, "refused": eq.refused,
            "verification": result.verification.as_dict() if result.verification else None,
            "relu6_fp32_effect": result.relu6_effect.as_dict() if result.relu6_effect else None,
            "details": [p.as_dict() for p in eq.pairs if p.scaled_channels or p.skipped_channels]}
    if result.bias is not None:
        top = sorted(result.bias.layers, key=lambda c: -c.max_shift)[:10]
        out["bias_correction"] = {"layers": len(result.bias.layers), "skipped": result.bias.skipped,
                                  "largest": [c.as_dict() for c in top]}
    if result.search is not None:
        s = result.search
        out["range_search"] = {"start_sqnr_db": _db(s.start_sqnr_db), "searched_sqnr_db": _db(s.searched_sqnr_db),
                               "final_sqnr_db": _db(s.final_sqnr_db),
                               "kept_max_ranges": s.kept_start,
                               "changed": [g.as_dict() for g in sorted(s.groups, key=lambda g: -g.gain_db)
                                           if g.amax != g.start_amax][:20]}
    if result.mixed is not None:
        m = result.mixed
        out["mixed_precision"] = {
            "int8_sqnr_db": _db(m.int8_sqnr_db), "sqnr_db": _db(m.sqnr_db), "reached": m.reached,
            "fp16_mac_share": round(m.fp16_mac_share, 4), "fp16_layers": m.fp16_nodes,
            "fp16_units": [u.as_dict(m.total_macs) for u in m.fp16_units], "timing": m.timing_note,
            "chosen": [{**c.as_dict(m.total_macs), "units": [u.as_dict(m.total_macs) for u in c.units]}
                       for c in m.chosen],
            "measured": [u.as_dict(m.total_macs) for u in m.measured]}
    if result.budget is not None:
        out["noise_budget"] = result.budget.as_dict()
    out["unsigned_tensors"] = sorted(result.unsigned)
    return out


def render_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]recovered model[/]: {summary.get('files', {}).get('recovered_model')}")
    seconds = summary.get("seconds", {})
    console.print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    eq = summary.get("equalization")
    if eq:
        ver = eq.get("verification") or {}
        console.print(f"equalization: {eq['pairs']} pairs, {eq['scaled_channels']} channels scaled, FP32 max diff "
                      f"{ver.get('max_abs_diff', 0):.2e}; {len(eq['refused'])} ReLU6 pairs left (per-channel bound)")
    rs = summary.get("range_search")
    if rs:
        console.print(f"range search (calibration subset): {rs['start_sqnr_db']} dB with max ranges, "
                      f"{rs['searched_sqnr_db']} dB with every change, {rs['final_sqnr_db']} dB kept"
                      + (" (max ranges kept)" if rs["kept_max_ranges"] else ""))
    mp = summary.get("mixed_precision")
    if mp:
        table = Table(title=f"FP16 layers: {mp['fp16_mac_share'] * 100:.1f} % of MACs, {mp['int8_sqnr_db']} → "
                            f"{mp['sqnr_db']} dB" + ("" if mp["reached"] else " (target not reached)"))
        for col in ("keeps unquantized", "FP16 layers", "MAC share", "SQNR if only this (dB)", "extra DLA µs"):
            table.add_column(col, overflow="fold")
        for c in mp["chosen"]:
            extra = [u["extra_us"] for u in c["units"] if u["extra_us"] is not None]
            table.add_row(c["tensor"], ", ".join(u["layer"] for u in c["units"]),
                          f"{sum(u['mac_share'] for u in c['units']) * 100:.2f} %", str(c["sqnr_if_fp16_db"]),
                          f"{sum(extra):.1f}" if extra else "-")
        console.print(table)
        if mp.get("timing"):
            console.print(mp["timing"])
    nb = summary.get("noise_budget")
    if nb:
        table = Table(title=f"noise budget ({nb['samples']} samples): all INT8 {nb['int8_sqnr_db']} dB; weights "
                            f"alone {nb['weights_sqnr_db']} dB; activations alone allow at most "
                            f"{nb['activation_ceiling_db']} dB")
        for col in ("quantization point", "share of output noise", "tensors sharing its scale"):
            table.add_column(col, overflow="fold")
        table.add_row("weights (all INT8 layers)", f"{nb['weights_share'] * 100:.1f} %", "")
        for g in nb["groups"][:10]:
            table.add_row(g["tensor"], f"{g['share'] * 100:.1f} %", ", ".join(g["members"][1:4])
                          + (" …" if len(g["members"]) > 4 else ""))
        table.add_row("(interactions)", f"{nb['unexplained'] * 100:.1f} %", "")
        console.print(table)
    for note in summary.get("notes", []):
        console.print(f"note: {note}")
    files = summary.get("files", {})
    for key, path in files.items():
        console.print(f"{key}: {path}")
