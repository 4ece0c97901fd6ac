"""Report figures of the decision layer: threshold curves and the reliability diagram.

Data functions (plain arrays, no matplotlib):

:func:`threshold_curve` ``(Y, P)``
    One global threshold ``t`` swept over the scores ``P`` (probabilities or raw scores,
    dense or sparse top-k; a pair is accepted when its stored score ``>= t``, an unstored
    pair never is). At every candidate cut (the ends of runs of equal scores, see
    :mod:`labelwise.decision._search`), exactly:

    - micro-F1 = 2 tp / (accepted + true pairs) over all pairs,
    - macro-F1 = the mean over labels of 2 tp_j / (accepted_j + true_j) (0 when both are 0),
    - coverage = the share of rows with at least one accepted pair.

    Thresholds are descending; the first point accepts nothing (threshold +inf, coverage 0).
    ``max_points`` keeps an evenly spaced subset of the cuts (the last cut, which accepts
    every stored pair, is always kept), so a plot of 100K labels stays small.
:func:`reliability_data` ``(Y, P)``
    :func:`labelwise.calibration.reliability_diagram` (bins, mean probability, observed
    frequency, ECE), re-exported here so the report needs one import.

Figures (matplotlib's headless Agg backend, PNG bytes, like :mod:`labelwise.report.plots`):
:func:`threshold_curves_png` and :func:`reliability_png`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..calibration.ece import ReliabilityDiagram, reliability_diagram
from ..decision._entries import entries, hits, truth
from ..decision._search import global_path
from ..errors import DataFormatError
from .plots import _png, _pyplot

__all__ = ["ThresholdCurve", "threshold_curve", "reliability_data", "threshold_curves_png",
           "reliability_png"]


@dataclass(frozen=True)
class ThresholdCurve:
    """Per point: threshold (descending, +inf first), micro-F1, macro-F1, coverage."""

    thresholds: np.ndarray
    micro_f1: np.ndarray
    macro_f1: np.ndarray
    coverage: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"thresholds": [float(t) if np.isfinite(t) else None for t in self.thresholds],
                "micro_f1": self.micro_f1.tolist(), "macro_f1": self.macro_f1.tolist(),
                "coverage": self.coverage.tolist()}


def threshold_curve(Y: Any, P: Any, *, max_points: int | None = 200) -> ThresholdCurve:
    """Micro-F1, macro-F1 and coverage against one global threshold (module docstring)."""
    if max_points is not None and (isinstance(max_points, bool) or not isinstance(
            max_points, int | np.integer) or max_points < 2):
        raise DataFormatError(f"max_points must be None or an int >= 2, got {max_points!r}",
                              field="max_points")
    E = entries(P, field="P")
    Yc = truth(Y, E.shape)
    h = hits(E, Yc)
    n, L = E.shape
    thr, micro = global_path(E.values, np.zeros(E.nnz, np.int64), h,
                             np.array([Yc.nnz], np.int64))
    _, macro = global_path(E.values, E.cols, h,
                           np.bincount(Yc.indices.astype(np.int64), minlength=L))
    # coverage: a row is covered at t when its highest stored score is >= t
    has = np.diff(E.indptr) > 0
    if E.nnz:
        row_max = np.maximum.reduceat(E.values, E.indptr[:-1][has])
    else:
        row_max = np.empty(0)
    row_max = np.sort(row_max)
    covered = row_max.size - np.searchsorted(row_max, thr, side="left")
    coverage = covered / n if n else np.zeros(thr.size)
    if max_points is not None and thr.size > max_points:
        keep = np.unique(np.r_[np.linspace(0, thr.size - 1, int(max_points)).round()
                               .astype(np.int64), thr.size - 1])
        thr, micro, macro, coverage = thr[keep], micro[keep], macro[keep], coverage[keep]
    return ThresholdCurve(thr.astype(np.float64), micro.astype(np.float64),
                          macro.astype(np.float64), np.asarray(coverage, np.float64))


def reliability_data(Y: Any, P: Any, *, n_bins: int = 15, strategy: str = "uniform",
                     missing: float | None = None) -> ReliabilityDiagram:
    """Reliability-diagram data of probabilities ``P`` (see :mod:`labelwise.calibration.ece`)."""
    return reliability_diagram(Y, P, n_bins=n_bins, strategy=strategy, missing=missing)


def threshold_curves_png(curve: ThresholdCurve, *,
                         chosen: Mapping[str, float] | None = None,
                         xlabel: str = "threshold (calibrated probability)") -> bytes:
    """Micro-F1, macro-F1 and coverage against the threshold; ``chosen`` maps a name (e.g.
    ``"tuned micro-F1"``) to a threshold drawn as a vertical line."""
    plt = _pyplot()
    finite = np.isfinite(curve.thresholds)
    t = curve.thresholds[finite]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t, curve.micro_f1[finite], label="micro-F1")
    ax.plot(t, curve.macro_f1[finite], label="macro-F1")
    ax.plot(t, curve.coverage[finite], linestyle="--", label="coverage (items with a label)")
    for i, (name, value) in enumerate((chosen or {}).items()):
        ax.axvline(float(value), color=f"C{3 + i}", linestyle=":", label=f"{name} = {value:.3g}")
    ax.set_xlabel(xlabel)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("F1 and coverage against one threshold")
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return _png(fig)


def reliability_png(diagram: ReliabilityDiagram) -> bytes:
    """Observed frequency against mean predicted probability per bin, the diagonal, and the
    number of pairs per bin (log scale) below."""
    plt = _pyplot()
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    ok = diagram.count > 0
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    ax.plot(diagram.mean_probability[ok], diagram.frequency[ok], marker="o",
            label=f"calibrated (ECE {diagram.ece:.4f})")
    ax.set_ylabel("observed frequency of true labels")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Reliability diagram")
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    edges = diagram.edges
    axc.bar(edges[:-1], np.maximum(diagram.count, 0), width=np.diff(edges), align="edge",
            color="C0", alpha=0.5, log=bool(diagram.count.max(initial=0) > 0))
    axc.set_xlabel("predicted probability")
    axc.set_ylabel("pairs")
    axc.grid(True, alpha=0.3)
    return _png(fig)
