"""Lay out a :class:`~dlakit.report.ReportData` as one self-contained HTML page."""

from __future__ import annotations

from html import escape

from dlakit import __version__
from dlakit.report import ReportData, gpu_or_fixable
from dlakit.report.plots import layer_time_bars, placement_graph, roofline

#: bars in the per-layer time chart (the slowest layers; the heading says how many of how many)
TOP_LAYERS = 30

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
.sub{color:#666} .cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:9em}
.card b{display:block;font-size:1.4em} table{border-collapse:collapse;font-size:.85em;width:100%}
th,td{border-bottom:1px solid #eee;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f6f6f6} td.num{text-align:right;font-variant-numeric:tabular-nums}
.dla{color:#2e9d57;font-weight:600} .gpu{color:#d64541;font-weight:600} .fixable{color:#c07d10;font-weight:600}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.8em} .note{color:#666;font-size:.85em}
svg{max-width:100%;height:auto}
"""


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td class='num'>{c}</td>" if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>" for r in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(data: ReportData) -> str:
    report = data.check
    s = report.summary
    target = report.target
    cards = [
        ("DLA share of MACs", f"{s['dla_mac_fraction']:.1%}"),
        ("DLA nodes", str(s["dla_nodes"])),
        ("GPU nodes", str(s["gpu_nodes"])),
        ("fixable", str(s["fixable_nodes"])),
        ("DLA subgraphs", f"{s['dla_subgraphs']} / {s['max_loadables_per_core']}"),
        ("GPU↔DLA transitions", str(s["transitions"])),
    ]
    if data.default is not None:
        cards.append((f"images/s ({data.default.power_mode}, {data.default.cores} cores)",
                      f"{data.default.images_per_second:,.0f} ±{data.default.error_band_pct:.0f}%"))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>dlakit report: {escape(report.source)}</title><style>{CSS}</style></head><body>",
        f"<h1 id='title'>dlakit report: {escape(report.source)}</h1>",
        f"<p class='sub'>{escape(target.label)}, {report.precision.upper()} · dlakit {__version__}</p>",
        "<section id='summary'><div class='cards'>",
        *(f"<div class='card'><span>{escape(k)}</span><b>{escape(v)}</b></div>" for k, v in cards),
        "</div>",
        *(f"<p class='note'>{escape(n)}</p>" for n in report.notes),
        "</section>",
    ]
    parts += _performance(data)
    parts += ["<section id='placement'><h2>Placement</h2>",
              "<p class='note'>Each square is a node, left to right by depth; hover for the reason.</p>",
              placement_graph(report), "</section>"]
    parts += _reasons(data)
    parts += _subgraphs(data)
    parts += _layers(data)
    parts += _int8(data)
    if data.trtexec is not None:
        parts += ["<section id='trtexec'><h2>Build it on the board</h2>",
                  f"<pre>{escape(data.trtexec.script())}</pre></section>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def _performance(data: ReportData) -> list[str]:
    if not data.modes:
        why = data.estimate_error or "no estimate"
        return [f"<section id='performance'><h2>Performance</h2><p class='note'>{escape(why)}</p></section>"]
    rows = []
    vs = any(m.vs_gpu is not None for m in data.modes)
    for m in data.modes:
        sparse = m.sparse
        row = [escape(m.power_mode), f"{m.dense.images_per_second:,.0f}", f"{m.dense.latency_ms:.2f}",
               f"{sparse.images_per_second:,.0f}" if sparse else "–",
               f"{sparse.images_per_second / m.dense.images_per_second:.2f}×" if sparse else "–"]
        if vs:
            row += [f"{m.vs_gpu.gpu_images_per_second:,.0f}" if m.vs_gpu else "–",
                    f"{m.vs_gpu.perf_per_watt_ratio:.1f}×" if m.vs_gpu else "–",
                    f"{m.vs_gpu_sparse.perf_per_watt_ratio:.1f}×" if m.vs_gpu_sparse else "–"]
        rows.append(row)
    first = data.modes[0].dense
    out_of_region = "; ".join(first.out_of_region)
    head = ["power mode", "images/s (dense)", "latency ms / batch", "images/s (2:4 sparse)", "sparse gain"]
    note = ""
    if vs:
        head += ["GPU images/s", "DLA/GPU perf/W (dense)", "(sparse)"]
        from dlakit.perf.power import load_power_data

        v = next(m.vs_gpu for m in data.modes if m.vs_gpu)
        held = load_power_data().calibration.lono_median_abs_pct
        note = (f" GPU alone at batch {v.gpu_batch} (dlakit estimate --vs-gpu); perf/W from a power model fitted to "
                f"NVIDIA's ratios, leave-one-network-out median error {held:.0f}%.")
    return [
        "<section id='performance'><h2>Estimated throughput per power mode</h2>",
        _table(head, rows, numeric=set(range(1, len(head)))),
        f"<p class='note'>{first.cores} DLA core(s), batch {first.batch}; error band ±{first.error_band_pct:.0f}% "
        f"(the 90th percentile of leave-one-network-out errors, widened where the model extrapolates). "
        f"{escape(out_of_region)}{escape(note)}</p></section>",
    ]


def _reasons(data: ReportData) -> list[str]:
    nodes = gpu_or_fixable(data.check)
    parts = ["<section id='reasons'><h2>Not on the DLA</h2>"]
    if not nodes:
        parts.append("<p class='dla'>Every computing node runs on the DLA.</p></section>")
        return parts
    rows = [[escape(n.name), escape(n.op), f"<span class='{n.placement}'>{n.placement}</span>",
             escape(n.reasons[0].rule), escape(n.reasons[0].message), escape(n.fix or "")] for n in nodes]
    parts.append(_table(["node", "op", "verdict", "rule", "why", "fix"], rows))
    if data.fixes:
        items = "".join(f"<li><code>{escape(fix)}</code>: {count} node(s)</li>" for fix, count in data.fixes)
        parts.append(f"<p>Suggested rewrites (<code>dlakit fix MODEL -o OUT</code>):</p><ul>{items}</ul>")
    parts.append("</section>")
    return parts


def _subgraphs(data: ReportData) -> list[str]:
    report = data.check
    if not report.subgraphs:
        return []
    total = report.total_macs or 1
    rows = [[str(sg.index), escape(sg.name), str(len(sg.nodes)), f"{sg.macs / total:.1%}"] for sg in report.subgraphs]
    return ["<section id='subgraphs'><h2>DLA subgraphs (loadables)</h2>",
            _table(["#", "TensorRT name", "nodes", "MAC share"], rows, numeric={2, 3}), "</section>"]


def _layers(data: ReportData) -> list[str]:
    if data.default is None:
        return []
    layers = data.default.layers
    shown = min(TOP_LAYERS, len(layers))
    title = f"the {shown} slowest of {len(layers)} layers" if shown < len(layers) else f"all {len(layers)} layers"
    parts = [f"<section id='layers'><h2>Per-layer time: {title}</h2>", layer_time_bars(layers, top=TOP_LAYERS)]
    if data.ceilings:
        parts += ["<h2>Roofline</h2>", roofline(layers, *data.ceilings),
                  "<p class='note'>Red: left of the ridge (DRAM-bound), blue: right of it (MAC-bound); one DLA "
                  "core, default power mode.</p>"]
    parts.append("</section>")
    return parts


def _number(value: object, spec: str) -> str:
    """A table cell for a measured number; "-" where none was measured (an all-constant tensor has no SQNR)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return "-"


def _int8(data: ReportData) -> list[str]:
    if data.int8_layers is None and data.int8_error is None:
        return []
    if data.int8_layers is None:
        return [f"<section id='int8'><h2>INT8 error per layer</h2><p class='note'>{escape(data.int8_error)}</p>"
                "</section>"]
    ordered = worst_first(data.int8_layers)
    rows = [[escape(str(r.get("name"))), _db(r.get("layer_sqnr_db")), _db(r.get("sqnr_db")),
             _number(r.get("cosine"), ".4f")] for r in ordered[:40]]
    shown = f"the worst {len(rows)} of {len(ordered)}" if len(rows) < len(ordered) else f"all {len(rows)}"
    return [f"<section id='int8'><h2>INT8 error per layer (emulated, worst first: {shown})</h2>",
            _table(["tensor", "layer SQNR dB (error it adds)", "SQNR dB (accumulated)", "cosine"], rows,
                   numeric={1, 2, 3}),
            "<p class='note'>Sorted by the error each layer adds (lowest layer SQNR first); the accumulated SQNR "
            "also carries the error of the layers before it.</p></section>"]


def _db(value: object) -> str:
    return _number(value, ".1f")


def worst_first(rows: list[dict]) -> list[dict]:
    """Rows by the error each layer adds, worst (lowest layer SQNR) first; no value (no error) last."""
    def key(row: dict) -> tuple[float, float]:
        layer, total = row.get("layer_sqnr_db"), row.get("sqnr_db")
        return (float("inf") if layer is None else layer, float("inf") if total is None else total)

    return sorted(rows, key=key)
