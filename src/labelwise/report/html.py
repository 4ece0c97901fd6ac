"""A self-contained HTML page of an evaluation report: summary metrics, a sortable per-label
table and the plots, inlined as base64 PNGs, with a few lines of plain JavaScript (no CDN, no
network) for sorting."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2430;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
.meta{color:#556;font-size:.9rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.5rem}
.card{border:1px solid #dde;border-radius:6px;padding:.5rem .7rem;background:#fafbfd}
.card .k{font-size:.8rem;color:#556}.card .v{font-size:1.15rem;font-weight:600}
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


def render_html(
    report: Mapping[str, Any],
    figures: Mapping[str, bytes],
    *,
    title: str = "labelwise evaluation",
) -> str:
    """The page for ``report`` (the dict of :func:`labelwise.metrics.evaluate`) and named PNG figures."""
    metrics = report.get("metrics", {})
    cards = "".join(
        f'<div class="card"><div class="k">{html.escape(k)}</div><div class="v">{_fmt(v)}</div></div>'
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    )
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
<h2>Summary</h2><div class="cards">{cards}</div>
{f'<ul class="notes">{notes}</ul>' if notes else ''}
<h2>Plots</h2><div class="plots">{plots}</div>
<h2>Per label ({len(per_label)} labels; click a column to sort)</h2>
<div class="scroll"><table class="sortable" id="per-label"><thead><tr>{head}</tr></thead>
<tbody>{''.join(body_rows)}</tbody></table></div>
<details><summary>All metrics as JSON</summary><pre>{raw}</pre></details>
<script>{_JS}</script>
</body></html>
"""
