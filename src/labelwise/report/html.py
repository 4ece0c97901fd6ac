"""A self-contained HTML page of an evaluation report: the headline metrics, the plots, a
sortable per-label table, inlined as base64 PNGs, with a few lines of plain JavaScript (no
CDN, no network) for sorting.

The page leads with the few metrics that answer a user's questions, in groups (:data:`HEADLINE`:
ranking, label sets, calibration, coverage at the target precision), each tile with its value
and a one-line meaning; every other metric is folded below in a ``<details>`` block. A report
with a ``"comparison"`` entry (``{"title", "columns": [..], "rows": {metric: [values]}}``,
e.g. before and after tuning) shows it as a table under the headline."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["render_html", "HEADLINE"]

#: the headline groups: (id, heading, question it answers, [(metric, one-line meaning)]);
#: ``coverage@p*`` stands for every target precision of the report
HEADLINE: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("ranking", "Ranking", "Are the best-ranked labels right?", (
        ("p@1", "share of items whose top-ranked label is true"),
        ("p@5", "share of the 5 top-ranked labels that are true"),
        ("ndcg@5", "top-5 ranking quality: true labels ranked higher count more"),
    )),
    ("sets", "Label sets", "Are the chosen label sets right?", (
        ("micro_f1", "F1 over every (item, label) decision: frequent labels weigh most"),
        ("macro_f1", "F1 per label, averaged: every label weighs the same"),
        ("samples_f1", "F1 per item, averaged: how right a typical item's set is"),
    )),
    ("calibration", "Calibration", "Can the probabilities be taken at their word?", (
        ("ece", "expected calibration error: mean gap between probability and frequency "
                "(lower is better)"),
    )),
    ("coverage", "Coverage at the target precision", "How much can be automated?", (
        ("coverage@p*", "share of items whose top label is accepted with precision >= {target}"
                        " (accept scores >= {threshold})"),
    )),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2430;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
.meta{color:#556;font-size:.9rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.5rem}
.card{border:1px solid #dde;border-radius:6px;padding:.5rem .7rem;background:#fafbfd}
.card .k{font-size:.8rem;color:#556}.card .v{font-size:1.15rem;font-weight:600}
.headline{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:1rem}
.group{border:1px solid #dde;border-radius:8px;padding:.6rem .9rem;background:#fafbfd}
.group h3{font-size:1rem;margin:.1rem 0}.group .q{color:#556;font-size:.85rem;margin:0 0 .4rem}
.tile{display:grid;grid-template-columns:5.5rem 1fr;gap:.1rem .6rem;padding:.3rem 0;border-top:1px solid #eef}
.tile .v{font-size:1.35rem;font-weight:600;grid-row:span 2}.tile .k{font-size:.85rem;font-weight:600}
.tile .m{font-size:.8rem;color:#556}
table.compare{width:auto;margin-top:1rem}
details.more{margin-top:1rem}details.more summary{cursor:pointer;color:#335}
table{border-collapse:collapse;font-size:.85rem;width:100%}
th,td{border-bottom:1px solid #eef;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}
th{cursor:pointer;background:#f3f5f9;position:sticky;top:0;user-select:none}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:1rem}
.plots figure{margin:0}.plots img{max-width:100%;border:1px solid #eef}
.notes li{color:#556;font-size:.9rem}
.scroll{max-height:600px;overflow:auto}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.querySelectorAll('th');
  heads.forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = !th.classList.contains('asc');
      heads.forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
        var nx = parseFloat(x), ny = parseFloat(y);
        var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? cmp : -cmp;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4f}"
    return html.escape(str(value))


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _headline(report: Mapping[str, Any]) -> tuple[str, set[str]]:
    """The headline groups' HTML and the metric names they show (absent metrics left out;
    a group with none of its metrics is left out)."""
    metrics = report.get("metrics", {})
    shown: set[str] = set()
    groups = []
    for gid, heading, question, items in HEADLINE:
        tiles = []
        for key, meaning in items:
            keys = [key]
            if key.endswith("*"):
                keys = [k for k in metrics if k.startswith(key[:-1]) and not k.endswith("_threshold")]
            for k in keys:
                if k not in metrics or not _number(metrics[k]) and metrics[k] is not None:
                    continue
                shown.add(k)
                text = meaning
                if key == "coverage@p*":
                    thr = metrics.get(f"{k}_threshold")
                    text = meaning.format(target=k[len("coverage@p"):],
                                          threshold="n/a" if thr is None else _fmt(thr))
                value = "n/a" if metrics[k] is None else _fmt(metrics[k])
                tiles.append(f'<div class="tile" data-metric="{html.escape(k)}"><div class="v">'
                             f'{value}</div><div class="k">{html.escape(k)}</div>'
                             f'<div class="m">{html.escape(text)}</div></div>')
        if tiles:
            q = question
            if gid == "sets" and report.get("set_rule"):
                q = f"{question} Sets chosen by: {report['set_rule']}."
            groups.append(f'<section class="group" id="group-{gid}"><h3>{html.escape(heading)}</h3>'
                          f'<p class="q">{html.escape(q)}</p>{"".join(tiles)}</section>')
    return "".join(groups), shown


def _comparison(comp: Any) -> str:
    """A small table of metrics side by side (e.g. before and after tuning), or ''."""
    if not isinstance(comp, Mapping) or not comp.get("rows"):
        return ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["metric", *comp.get("columns", [])])
    rows = "".join(
        "<tr><td>" + html.escape(str(k)) + "</td>"
        + "".join(f"<td>{'n/a' if v is None else _fmt(v)}</td>" for v in values) + "</tr>"
        for k, values in comp["rows"].items()
    )
    title = html.escape(str(comp.get("title", "Comparison")))
    return (f'<h2>{title}</h2><table class="compare" id="comparison"><thead><tr>{head}</tr>'
            f"</thead><tbody>{rows}</tbody></table>")


def render_html(
    report: Mapping[str, Any],
    figures: Mapping[str, bytes],
    *,
    title: str = "labelwise evaluation",
) -> str:
    """The page for ``report`` (the dict of :func:`labelwise.metrics.evaluate`) and named PNG figures."""
    metrics = report.get("metrics", {})
    headline, shown = _headline(report)
    cards = "".join(
        f'<div class="card"><div class="k">{html.escape(k)}</div><div class="v">{_fmt(v)}</div></div>'
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k not in shown
    )
    compare = _comparison(report.get("comparison"))
    per_label = list(report.get("per_label", []))
    columns = list(per_label[0].keys()) if per_label else []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body_rows = []
    for row in per_label:
        cells = []
        for c in columns:
            v = row.get(c)
            sort_key = "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
            cells.append(f'<td data-v="{html.escape(str(sort_key), quote=True)}">{_fmt(v) if v is not None else "n/a"}</td>')
        body_rows.append("<tr>" + "".join(cells) + "</tr>")
    plots = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}"><figcaption>{html.escape(name)}</figcaption></figure>'
        for name, png in figures.items()
    )
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in report.get("notes", []))
    facts = {k: report[k] for k in ("n_samples", "n_labels", "input") if k in report}
    meta = " · ".join(f"{html.escape(k)}: {html.escape(str(v))}" for k, v in facts.items())
    raw = html.escape(json.dumps(metrics, indent=1, default=str))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_CSS}</style></head><body>
<h1>{html.escape(title)}</h1><p class="meta">{meta}</p>
<h2>Summary</h2><div class="headline" id="headline">{headline}</div>
{compare}
<details class="more" id="other-metrics"><summary>The other {cards.count('class="card"')} metrics</summary>
<div class="cards">{cards}</div></details>
{f'<ul class="notes">{notes}</ul>' if notes else ''}
<h2>Plots</h2><div class="plots">{plots}</div>
<h2>Per label ({len(per_label)} labels; click a column to sort)</h2>
<div class="scroll"><table class="sortable" id="per-label"><thead><tr>{head}</tr></thead>
<tbody>{''.join(body_rows)}</tbody></table></div>
<details><summary>All metrics as JSON</summary><pre>{raw}</pre></details>
<script>{_JS}</script>
</body></html>
"""
