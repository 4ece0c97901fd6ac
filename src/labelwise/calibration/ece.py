"""Multi-label expected calibration error and reliability-diagram data.

Every (item, label) pair is one prediction: a probability p and an outcome y in {0, 1}
(the label is true or not). Pairs are put in ``n_bins`` bins by p: ``"uniform"`` bins split
[0, 1] into equal widths (bin b holds b/n <= p < (b+1)/n, p = 1 in the last bin);
``"quantile"`` bins hold equal numbers of pairs (edges at the quantiles of p). Then::

    ECE = sum_b (n_b / N) |mean(y in b) - mean(p in b)|

``average="pairs"`` (default) computes it once over all pairs; ``average="macro"`` computes
it per label (over that label's pairs) and averages over labels that have at least one pair.

Which pairs: dense probabilities give all n_samples * n_labels pairs. For a sparse top-k
matrix the stored (retrieved) pairs are used; with ``missing=p`` every unretrieved pair is
also counted as a prediction with probability ``p`` (use the calibrator's
``missing_probability_``), without materialising them: their count and their true labels
are known from ``Y_true``. Set ``missing=None`` (the default) to measure retrieved pairs only.

Estimators with less bias
-------------------------
The binned ECE above is biased upward on a finite test set: even outcomes drawn from the
probabilities themselves (a perfectly calibrated model) score about
``sum_b (n_b / N) E|ybar_b - pbar_b| ~ sum_b (n_b / N) sqrt(2 v_b / (pi n_b))`` with
``v_b`` the bin's outcome variance. Two estimators from the literature correct for it:

:func:`debiased_calibration_error` (Kumar, Liang & Ma, NeurIPS 2019, "Verified Uncertainty
Calibration", section 5): the squared (l2) calibration error of the binned model,
estimated without the sampling-variance term::

    CE2 = sum_b (n_b / N) [ (ybar_b - pbar_b)^2 - ybar_b (1 - ybar_b) / (n_b - 1) ]

(bins with n_b < 2 contribute their plug-in term uncorrected). ``E[(ybar - pbar)^2] =
(mu - pbar)^2 + mu (1 - mu) / n`` for n outcomes with mean mu, and ``ybar (1 - ybar) /
(n - 1)`` is unbiased for ``mu (1 - mu) / n``, so outcomes drawn from the probabilities
give CE2 = 0 in expectation (slightly below when the probabilities within a bin differ).
Returned as ``sqrt(max(CE2, 0))`` (the l2 calibration error, on the scale of the ECE: the
binned l2 error is >= the binned l1 error), or CE2 itself, possibly negative, with
``squared=True``. Default bins: 15 equal-mass (``strategy="quantile"``), as in the paper.

:func:`ece_sweep` (Roelofs, Cain, Shlens & Mozer, AISTATS 2022, "Mitigating Bias in
Calibration Error Estimation"): the l1 ECE over equal-mass bins, with the largest number of
bins b for which the observed frequencies ybar_1 <= ... <= ybar_b stay non-decreasing
(tried b = 1, 2, ... up to the number of pairs, until monotonicity first fails). Pairs are
sorted by probability (ties: false outcomes first) and laid end to end, each with its
weight as mass; bin k holds the mass in [k W / b, (k + 1) W / b) (W the total mass), a pair
straddling a boundary being split between the two bins in proportion. A weighted
pseudo-pair of unretrieved labels thus counts exactly as that many single pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..decision._entries import entries, hits, truth
from ..errors import DataFormatError

__all__ = ["expected_calibration_error", "reliability_diagram", "ReliabilityDiagram",
           "debiased_calibration_error", "ece_sweep"]


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per bin: edges (n_bins + 1,), count, mean probability, observed frequency (NaN when
    empty). ``ece`` is the expected calibration error over the same bins."""

    edges: np.ndarray
    count: np.ndarray
    mean_probability: np.ndarray
    frequency: np.ndarray
    ece: float

    def to_dict(self) -> dict[str, Any]:
        def clean(a: np.ndarray) -> list:
            return [None if not np.isfinite(v) else float(v) for v in a]

        return {"edges": clean(self.edges), "count": [int(c) for c in self.count],
                "mean_probability": clean(self.mean_probability),
                "frequency": clean(self.frequency), "ece": self.ece}


def _pairs(Y_true: Any, P: Any, missing: float | None):
    E = entries(P, field="P")
    Y = truth(Y_true, E.shape, field="Y_true")
    p = E.values
    if p.size and (p.min() < 0 or p.max() > 1):
        raise DataFormatError("probabilities must lie in [0, 1]", field="P")
    y = hits(E, Y).astype(np.float64)
    cols = E.cols
    weights = np.ones(p.size)
    if missing is not None and not E.dense:
        missing = float(missing)
        if not 0.0 <= missing <= 1.0:
            raise DataFormatError(f"missing must lie in [0, 1], got {missing}", field="missing")
        n, L = E.shape
        stored = np.bincount(cols, minlength=L)
        pos_all = np.bincount(Y.indices.astype(np.int64), minlength=L)
        pos_stored = np.bincount(cols, weights=y, minlength=L)
        n_missing = n - stored
        pos_missing = pos_all - pos_stored
        lab = np.flatnonzero(n_missing > 0)
        # per label: one weighted pseudo-pair for the true ones, one for the false ones
        p = np.concatenate([p, np.full(2 * lab.size, missing)])
        y = np.concatenate([y, np.ones(lab.size), np.zeros(lab.size)])
        cols = np.concatenate([cols, lab, lab])
        weights = np.concatenate([weights, pos_missing[lab], n_missing[lab] - pos_missing[lab]])
    return p, y, cols, weights, E.shape[1]


def _edges(p: np.ndarray, w: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    if strategy == "quantile":
        if p.size == 0:
            return np.linspace(0.0, 1.0, n_bins + 1)
        order = np.argsort(p, kind="stable")
        cw = np.cumsum(w[order])
        qs = np.linspace(0, cw[-1], n_bins + 1)[1:-1]
        inner = p[order][np.minimum(np.searchsorted(cw, qs), p.size - 1)]
        return np.concatenate([[0.0], inner, [1.0]])
    raise DataFormatError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}",
                          field="strategy")


def _binned(p, y, w, edges):
    n_bins = edges.size - 1
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    cnt = np.bincount(b, weights=w, minlength=n_bins)
    sp_ = np.bincount(b, weights=w * p, minlength=n_bins)
    sy = np.bincount(b, weights=w * y, minlength=n_bins)
    return b, cnt, sp_, sy


def _check_bins(n_bins: Any) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise DataFormatError(f"n_bins must be a positive int, got {n_bins!r}", field="n_bins")
    return int(n_bins)


def reliability_diagram(Y_true: Any, P: Any, *, n_bins: int = 15, strategy: str = "uniform",
                        missing: float | None = None) -> ReliabilityDiagram:
    """Reliability-diagram data over all pairs (module docstring)."""
    n_bins = _check_bins(n_bins)
    p, y, _, w, _ = _pairs(Y_true, P, missing)
    edges = _edges(p, w, n_bins, strategy)
    _, cnt, sp_, sy = _binned(p, y, w, edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        mp = np.where(cnt > 0, sp_ / np.where(cnt > 0, cnt, 1), np.nan)
        fr = np.where(cnt > 0, sy / np.where(cnt > 0, cnt, 1), np.nan)
    total = cnt.sum()
    ece = float(np.abs(sy - sp_).sum() / total) if total > 0 else float("nan")
    return ReliabilityDiagram(edges, cnt.astype(np.int64), mp, fr, ece)


def expected_calibration_error(Y_true: Any, P: Any, *, n_bins: int = 15,
                               strategy: str = "uniform", average: str = "pairs",
                               missing: float | None = None) -> float:
    """Multi-label ECE (module docstring); lower is better, 0 is perfectly calibrated."""
    n_bins = _check_bins(n_bins)
    if average not in ("pairs", "macro"):
        raise DataFormatError(f"average must be 'pairs' or 'macro', got {average!r}",
                              field="average")
    if average == "pairs":
        return reliability_diagram(Y_true, P, n_bins=n_bins, strategy=strategy,
                                   missing=missing).ece
    p, y, cols, w, L = _pairs(Y_true, P, missing)
    if strategy != "uniform":
        raise DataFormatError("average='macro' supports strategy='uniform' only",
                              field="strategy")
    edges = _edges(p, w, n_bins, strategy)
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    key = cols * n_bins + b
    sp_ = np.bincount(key, weights=w * p, minlength=L * n_bins).reshape(L, n_bins)
    sy = np.bincount(key, weights=w * y, minlength=L * n_bins).reshape(L, n_bins)
    cnt = np.bincount(cols, weights=w, minlength=L)
    has = cnt > 0
    if not has.any():
        return float("nan")
    per = np.abs(sy - sp_).sum(axis=1)[has] / cnt[has]
    return float(per.mean())


def debiased_calibration_error(Y_true: Any, P: Any, *, n_bins: int = 15,
                               strategy: str = "quantile", missing: float | None = None,
                               squared: bool = False) -> float:
    """Kumar et al.'s debiased l2 calibration error over all pairs (module docstring)."""
    n_bins = _check_bins(n_bins)
    p, y, _, w, _ = _pairs(Y_true, P, missing)
    total = float(w.sum())
    if total <= 0:
        return float("nan")
    edges = _edges(p, w, n_bins, strategy)
    _, cnt, sp_, sy = _binned(p, y, w, edges)
    has = cnt > 0
    n_b, pbar, ybar = cnt[has], sp_[has] / cnt[has], sy[has] / cnt[has]
    plug = (ybar - pbar) ** 2
    corr = np.where(n_b >= 2, ybar * (1 - ybar) / np.maximum(n_b - 1, 1), 0.0)
    ce2 = float(np.sum(n_b * (plug - corr)) / total)
    return ce2 if squared else float(np.sqrt(max(ce2, 0.0)))


def ece_sweep(Y_true: Any, P: Any, *, missing: float | None = None,
              max_bins: int | None = None) -> float:
    """Roelofs et al.'s ECE_sweep over equal-mass bins (module docstring)."""
    p, y, _, w, _ = _pairs(Y_true, P, missing)
    keep = w > 0
    p, y, w = p[keep], y[keep], w[keep]
    if p.size == 0:
        return float("nan")
    order = np.lexsort((y, p))  # by probability; ties: false outcomes first
    p, y, w = p[order], y[order], w[order]
    mass = np.r_[0.0, np.cumsum(w)]
    cum_y = np.r_[0.0, np.cumsum(w * y)]
    cum_p = np.r_[0.0, np.cumsum(w * p)]
    total = float(mass[-1])
    limit = int(round(total)) if max_bins is None else int(max_bins)
    best = None
    for b in range(1, max(limit, 1) + 1):
        cuts = np.linspace(0.0, total, b + 1)
        sy = np.diff(np.interp(cuts, mass, cum_y))
        sp_ = np.diff(np.interp(cuts, mass, cum_p))
        if b > 1 and np.any(np.diff(sy) < -1e-12 * total):  # equal masses: compare sums
            break
        best = float(np.abs(sy - sp_).sum() / total)
    return best
