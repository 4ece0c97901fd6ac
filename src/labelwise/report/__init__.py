"""The evaluation report as one self-contained HTML file (summary, sortable per-label table, plots)."""

from __future__ import annotations

import os
from typing import Any

from ..atomic import atomic_write

__all__ = ["write_report", "report_html"]


def report_html(
    Y_true: Any,
    S: Any,
    report: dict[str, Any],
    *,
    title: str = "labelwise evaluation",
    k_max: int = 10,
    probabilities: Any = None,
    missing_probability: float | None = None,
    chosen_thresholds: dict[str, float] | None = None,
) -> str:
    """The HTML page of ``report`` (from :func:`labelwise.metrics.evaluate` on ``Y_true``, ``S``).

    With calibrated ``probabilities`` (dense or top-k CSR; ``missing_probability`` for the pairs
    a top-k matrix leaves out) the page also shows F1 and coverage against one threshold and a
    reliability diagram.
    """
    from ..metrics import LabelSets, precision_coverage_curve
    from . import curves, plots
    from .html import render_html

    figures: dict[str, bytes] = {}
    per_label = report.get("per_label", [])
    if per_label:
        figures["F1 per label against label frequency"] = plots.f1_vs_frequency(
            [r["support"] for r in per_label], [r["f1"] for r in per_label]
        )
    if not isinstance(S, LabelSets):
        n_labels = report.get("n_labels") or 1
        ks, p, r = curves.at_k(Y_true, S, min(k_max, n_labels))
        figures["P@k and R@k"] = plots.at_k_curves(ks, p, r)
        _, cov, prec = precision_coverage_curve(Y_true, S, mode="top1")
        figures["Precision against coverage (top-1)"] = plots.precision_coverage(cov, prec, 0.9)
        names = [row["label"] for row in per_label] if per_label else [str(j) for j in range(n_labels)]
        figures["PR curves of the most frequent labels"] = plots.pr_curves(
            curves.pr_curves_of_frequent_labels(Y_true, S, names)
        )
    if probabilities is not None:
        from . import decision_plots

        curve = decision_plots.threshold_curve(Y_true, probabilities)
        figures["F1 and coverage against one threshold"] = decision_plots.threshold_curves_png(
            curve, chosen=chosen_thresholds
        )
        figures["Reliability diagram"] = decision_plots.reliability_png(
            decision_plots.reliability_data(Y_true, probabilities, missing=missing_probability)
        )
    return render_html(report, figures, title=title)


def write_report(path: str | os.PathLike[str], Y_true: Any, S: Any, report: dict[str, Any], **kwargs: Any) -> None:
    """Write :func:`report_html` to ``path`` atomically."""
    page = report_html(Y_true, S, report, **kwargs)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(page)
