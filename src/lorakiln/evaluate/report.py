"""The evaluation report: report.html (tables, inline SVG curves, grids) and JSON for machines.

metrics.json  every candidate's metrics with intervals, details and notes, the base control,
              settings, probes, models used
summary.json  {"recommended": {"checkpoint", "weight", "reason", "score", "status"}, "findings", "ranking", ...}
              (read by `kiln card` and `kiln runs compare`); every number in it has the name and the
              value it has in the report: "flexibility" is the metric, "versatility" the score's
              second term
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from lorakiln import __version__
from lorakiln.evaluate.metrics.base import METRICS, better_text
from lorakiln.evaluate.recommend import Recommendation

ORDER = ["effect", "fidelity", "flexibility", "adherence", "leakage", "style_bleed", "background_bleed", "view_bias",
         "outfit_lockin", "diversity"]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
DASHES = ["", "6 3", "2 3", "8 3 2 3", "12 4", "1 2"]  # one pattern per series: overlapping lines stay visible
MARKERS = ["circle", "square", "triangle", "diamond", "cross"]


@dataclass
class ReportData:
    run: str
    settings: dict[str, Any]
    rows: list[dict]  # {"checkpoint", "epoch", "weight", "metrics": {name: MetricValue.to_json()}}
    base: dict | None  # {"metrics": {...}} for the base model alone
    recommendation: Recommendation
    grids: list[tuple[str, str]] = field(default_factory=list)  # (title, path relative to the report)
    probes: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def metric_names(rows: list[dict]) -> list[str]:
    seen = {n for r in rows for n in r["metrics"]}
    return [n for n in ORDER if n in seen] + sorted(seen - set(ORDER))


# -- JSON ---------------------------------------------------------------------------------------

def metrics_json(d: ReportData) -> dict:
    return {"run": d.run, "lorakiln_version": __version__, "settings": d.settings, "probes": d.probes,
            "notes": d.notes, "base": d.base, "candidates": d.rows,
            "metrics": {n: {"title": METRICS.get(n).title, "better": METRICS.get(n).better,
                            "description": METRICS.get(n).description} for n in metric_names(d.rows)
                        if n in METRICS}}


def summary_json(d: ReportData) -> dict:
    rec = d.recommendation
    ranking = [{"checkpoint": c.checkpoint, "epoch": c.epoch, "weight": c.weight,
                "score": None if c.score is None else round(c.score, 4),
                "fidelity": _r(c.values.get("fidelity")), "flexibility": _r(c.values.get("flexibility")),
                "versatility": _r(c.versatility), "effect": _r(c.values.get("effect")),
                **({"excluded": c.excluded} if c.excluded else {})} for c in rec.ranking]
    return {"run": d.run, "recommended": {"checkpoint": rec.checkpoint, "weight": rec.weight, "reason": rec.reason,
                                          "score": _r(rec.score), "status": rec.status},
            "findings": [{**f, "value": _r(f["value"])} for f in rec.findings], "ranking": ranking,
            "metrics": "metrics.json", "report": "report.html", "settings": d.settings}


def _r(x):
    return None if x is None else round(float(x), 4)


# -- SVG charts ---------------------------------------------------------------------------------

def _marker(kind: str, x: float, y: float, colour: str, tip: str) -> str:
    t = f"<title>{html.escape(tip)}</title>"
    if kind == "square":
        return f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{colour}">{t}</rect>'
    if kind == "triangle":
        return f'<polygon points="{x:.1f},{y - 4:.1f} {x - 4:.1f},{y + 3:.1f} {x + 4:.1f},{y + 3:.1f}" fill="{colour}">{t}</polygon>'
    if kind == "diamond":
        return f'<polygon points="{x:.1f},{y - 4:.1f} {x + 4:.1f},{y:.1f} {x:.1f},{y + 4:.1f} {x - 4:.1f},{y:.1f}" fill="{colour}">{t}</polygon>'
    if kind == "cross":
        return (f'<path d="M{x - 3:.1f},{y - 3:.1f}L{x + 3:.1f},{y + 3:.1f}M{x - 3:.1f},{y + 3:.1f}L{x + 3:.1f},{y - 3:.1f}" '
                f'stroke="{colour}" stroke-width="2">{t}</path>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="none" stroke="{colour}" stroke-width="1.5">{t}</circle>'


def svg_chart(title: str, series: dict[str, list[tuple[float, float]]], baseline: float | None = None,
              width: int = 380, height: int = 220, x_labels: list[str] | None = None,
              x_title: str = "checkpoint", y_title: str = "value") -> str:
    """A line chart: one polyline per series (x = checkpoint order), each with its own colour, dash
    pattern and marker; labelled axes; a dashed grey base-model line."""
    pts = [p for s in series.values() for p in s]
    ys = [y for _, y in pts] + ([baseline] if baseline is not None else [])
    if not pts:
        return ""
    x0, x1 = min(x for x, _ in pts), max(x for x, _ in pts)
    y0, y1 = min(0.0, min(ys)), max(1.0, max(ys))
    ml, mr, mt, mb = 60, 100, 24, 44
    pad = 10  # keeps dodged markers off the axis
    sx = lambda x: ml + pad + (x - x0) / ((x1 - x0) or 1) * (width - ml - mr - 2 * pad)  # noqa: E731
    sy = lambda y: mt + (1 - (y - y0) / ((y1 - y0) or 1)) * (height - mt - mb)  # noqa: E731
    e = html.escape
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'role="img" aria-label="{e(title)}">',
           f'<text x="{ml}" y="15" font-size="13" font-weight="bold">{e(title)}</text>',
           f'<line x1="{ml}" y1="{sy(y0):.1f}" x2="{width - mr}" y2="{sy(y0):.1f}" stroke="#999"/>',
           f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{sy(y0):.1f}" stroke="#999"/>',
           f'<text class="x-title" x="{(ml + width - mr) / 2:.1f}" y="{height - 6}" font-size="11" '
           f'text-anchor="middle">{e(x_title)}</text>',
           f'<text class="y-title" x="12" y="{(mt + sy(y0)) / 2:.1f}" font-size="11" text-anchor="middle" '
           f'transform="rotate(-90 12 {(mt + sy(y0)) / 2:.1f})">{e(y_title)}</text>']
    for v in (y0, (y0 + y1) / 2, y1):
        out.append(f'<text x="{ml - 4}" y="{sy(v) + 4:.1f}" font-size="10" text-anchor="end">{v:.2g}</text>')
    xs = sorted({x for x, _ in pts})
    for x in xs:
        label = x_labels[int(x)] if x_labels and 0 <= int(x) < len(x_labels) else f"{x:g}"
        out.append(f'<text x="{sx(x):.1f}" y="{sy(y0) + 14:.1f}" font-size="10" text-anchor="middle">{e(label)}</text>')
    if baseline is not None:
        out.append(f'<line x1="{ml}" y1="{sy(baseline):.1f}" x2="{width - mr}" y2="{sy(baseline):.1f}" '
                   f'stroke="#555" stroke-dasharray="4 3"><title>base model {baseline:.3f}</title></line>')
        out.append(f'<text x="{width - mr + 6}" y="{sy(baseline) + 4:.1f}" font-size="10" fill="#555">base</text>')
    for i, (name, s) in enumerate(series.items()):
        c, dash, mark = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)], MARKERS[i % len(MARKERS)]
        dodge = (i - (len(series) - 1) / 2) * 4  # equal values sit side by side, not on top of each other
        path = " ".join(f"{sx(x) + dodge:.1f},{sy(y):.1f}" for x, y in sorted(s))
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2"{dashed} points="{path}"/>')
        out += [_marker(mark, sx(x) + dodge, sy(y), c, f"{name}: {y:.3f}") for x, y in s]
        ly = mt + 12 + 14 * i
        out.append(f'<line x1="{width - mr + 6}" y1="{ly - 4}" x2="{width - mr + 24}" y2="{ly - 4}" stroke="{c}" '
                   f'stroke-width="2"{dashed}/>')
        out.append(_marker(mark, width - mr + 15, ly - 4, c, name))
        out.append(f'<text x="{width - mr + 28}" y="{ly}" font-size="11" fill="{c}">{e(name)}</text>')
    return "\n".join(out + ["</svg>"])


def checkpoint_order(d: ReportData) -> list[str]:
    return list(dict.fromkeys(r["checkpoint"] for r in d.rows))


def checkpoint_labels(d: ReportData) -> list[str]:
    """Short x-axis labels: "epoch N" where the epoch is known, else the file name."""
    epochs = {r["checkpoint"]: r.get("epoch") for r in d.rows}
    shared = [e for e in epochs.values() if e is not None]
    return [f"epoch {epochs[c]}" if epochs.get(c) is not None and shared.count(epochs[c]) == 1
            else str(c).removesuffix(".safetensors") for c in checkpoint_order(d)]


def curves(d: ReportData, name: str) -> dict[str, list[tuple[float, float]]]:
    """weight label -> [(checkpoint index, value)] for one metric."""
    order = checkpoint_order(d)
    series: dict[str, list[tuple[float, float]]] = {}
    for r in d.rows:
        v = (r["metrics"].get(name) or {}).get("value")
        if v is not None:
            series.setdefault(f"weight {r['weight']:g}", []).append((order.index(r["checkpoint"]), v))
    return series


# -- HTML ----------------------------------------------------------------------------------------

CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.best td{background:#e8f5e9;font-weight:bold}
tr.base td{color:#666;font-style:italic}.rec{background:#e8f5e9;border:1px solid #9c9;padding:12px;margin:12px 0}
.norec{background:#f3f3f3;border:1px solid #bbb;padding:12px;margin:12px 0}
.find{background:#fff4e5;border:1px solid #f0c36d;padding:8px 12px}.charts{display:flex;flex-wrap:wrap;gap:12px}
.grid img{max-width:100%;border:1px solid #ddd}.note{color:#777;font-size:90%}td.blind{color:#a60;font-size:85%}"""


def _cell(m: dict | None) -> str:
    if not m or m.get("value") is None:
        note = (m or {}).get("note") or "not measured"
        if note.startswith("cannot measure"):  # a blind metric says so in the cell, not only in a tooltip
            return f'<td class="blind" title="{html.escape(note)}">cannot measure</td>'
        return f'<td title="{html.escape(note)}">–</td>'
    ci = m.get("ci")
    tip = f' title="95% interval {ci[0]:.3f} to {ci[1]:.3f}, n={m.get("n")}"' if ci else f' title="n={m.get("n")}"'
    return f"<td{tip}>{m['value']:.3f}</td>"


def _table(d: ReportData, names: list[str]) -> list[str]:
    rec = d.recommendation
    head = "".join(f'<th title="{html.escape(METRICS.get(n).description)}">{html.escape(METRICS.get(n).title)}'
                   f'<br><span class="note">{better_text(METRICS.get(n))}</span></th>' for n in names)
    out = ['<table class="metrics"><thead><tr><th class="l">checkpoint</th><th>weight</th><th>score</th>'
           f"{head}</tr></thead><tbody>"]
    by_key = {(c.checkpoint, c.weight): c for c in rec.ranking}
    for r in d.rows:
        best = r["checkpoint"] == rec.checkpoint and r["weight"] == rec.weight
        c = by_key.get((r["checkpoint"], r["weight"]))
        s = c.score if c else None
        why = html.escape(c.excluded if c and c.excluded else
                          "not scored: no metric here can see the character" if rec.status == "cannot_judge"
                          else "not scored")
        score = (f'<td title="{why}">–</td>' if s is None else
                 f'<td title="not eligible: {why}">({s:.3f})</td>' if c and c.excluded else f"<td>{s:.3f}</td>")
        out.append(f'<tr class="{"best" if best else ""}"><td class="l">{html.escape(r["checkpoint"])}</td>'
                   f'<td>{r["weight"]:g}</td>{score}'
                   + "".join(_cell(r["metrics"].get(n)) for n in names) + "</tr>")
    if d.base:
        out.append('<tr class="base"><td class="l">base model (no LoRA)</td><td>–</td><td>–</td>'
                   + "".join(_cell(d.base["metrics"].get(n)) for n in names) + "</tr>")
    return out + ["</tbody></table>"]


def render_html(d: ReportData) -> str:
    names = [n for n in metric_names(d.rows) if n in METRICS]
    rec = d.recommendation
    e = html.escape
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>lorakiln eval: {e(d.run)}</title><style>{CSS}</style></head><body>",
           f"<h1>Evaluation of {e(d.run)}</h1>"]
    if rec.checkpoint:
        out.append(f'<div class="rec"><h2>Recommended: {e(rec.checkpoint)} at weight {rec.weight:g}</h2>'
                   f"<p>{e(rec.reason)}</p></div>")
    elif rec.status == "cannot_judge":
        out.append(f'<div class="norec"><h2>Cannot judge the pick</h2><p>{e(rec.reason)}</p></div>')
    else:
        out.append(f'<div class="norec"><h2>No recommendation</h2><p>{e(rec.reason)}</p></div>')
    if rec.findings:
        out.append('<div class="find"><h3>What to look at</h3><ul>'
                   + "".join(f"<li>{e(f['message'])}</li>" for f in rec.findings) + "</ul></div>")
    out.append("<h2>Metrics per checkpoint and weight</h2>")
    out += _table(d, names)
    out.append('<h2>Curves</h2><div class="charts">')
    labels = checkpoint_labels(d)
    for n in names:
        base = ((d.base or {}).get("metrics", {}).get(n) or {}).get("value")
        m = METRICS.get(n)
        out.append(svg_chart(m.title, curves(d, n), base, x_labels=labels,
                             y_title=f"{m.title.split(' (')[0].lower()} ({better_text(m)})"))
    out.append("</div><h2>Grids</h2>")
    for title, path in d.grids:
        out.append(f'<div class="grid"><h3>{e(title)}</h3><img src="{e(path)}" alt="{e(title)}"></div>')
    out.append('<h2>Settings</h2><table class="settings"><tbody>')
    out += [f'<tr><th class="l">{e(str(k))}</th><td class="l">{e(str(v))}</td></tr>' for k, v in d.settings.items()]
    out.append("</tbody></table>")
    if d.notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in d.notes) + "</ul>")
    out.append('<h2>Probes</h2><table class="probes"><thead><tr><th class="l">probe</th><th class="l">group</th>'
               '<th class="l">prompt</th><th class="l">requested tags</th></tr></thead><tbody>')
    out += [f'<tr><td class="l">{e(p["name"])}</td><td class="l">{e(p["group"])}</td><td class="l">{e(p["prompt"])}'
            f'</td><td class="l">{e(", ".join(p.get("tags", [])))}</td></tr>' for p in d.probes]
    out.append("</tbody></table><h2>Metric definitions</h2><dl>")
    out += [f"<dt><b>{e(METRICS.get(n).title)}</b> ({better_text(METRICS.get(n))})</dt>"
            f"<dd>{e(METRICS.get(n).description)}</dd>" for n in names]
    out.append(f'</dl><p class="note">lorakiln {e(__version__)}</p></body></html>')
    return "\n".join(out)
