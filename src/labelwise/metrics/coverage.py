"""Coverage at a target precision: how much can be automated while keeping precision >= p.

Two modes, both over a threshold ``t`` swept through every distinct score (descending):

``"top1"`` (one label per item)
    Item i's top-1 label (ties by smaller label id) is *accepted* when its score >= t.
    ``coverage(t)`` = accepted items / n_samples;
    ``precision(t)`` = accepted items whose top-1 label is true / accepted items.
``"labels"`` (label sets)
    Every (item, label) pair with score >= t is accepted.
    ``precision(t)`` = accepted pairs that are true / accepted pairs;
    ``coverage(t)`` = items with at least one accepted pair / n_samples.

With top-k scores only retrieved labels can be accepted (unstored = score ``-inf``), and an
item with nothing retrieved is never covered. :func:`coverage_at_precision` reports the
largest coverage whose precision is >= ``target`` together with its threshold (the lowest
accepted score; accept ``score >= threshold``). When no threshold reaches the target, the
coverage is 0.0, precision NaN and threshold None. Where several thresholds give the same
largest coverage (possible in "labels" mode), the lowest is chosen: it accepts the most
pairs. A point with nothing accepted is never on the curve, so precision is defined at
every point. ``n_covered`` is the number of covered items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataFormatError
from ._inputs import DEFAULT_CHUNK, Prepared, prepare

__all__ = ["CoverageResult", "precision_coverage_curve", "coverage_at_precision"]

MODES = ("top1", "labels")


@dataclass(frozen=True)
class CoverageResult:
    """Largest coverage with precision >= target (see the module docstring)."""

    target: float
    mode: str
    coverage: float
    precision: float
    threshold: float | None
    n_covered: int

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "mode": self.mode, "coverage": self.coverage,
                "precision": self.precision, "threshold": self.threshold,
                "n_covered": self.n_covered}


def _sweep(order: np.ndarray, scores: np.ndarray, correct: np.ndarray):
    """Distinct thresholds (descending) with cumulative accepted and correct counts."""
    s = scores[order]
    if s.size == 0:
        return s.astype(np.float64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    c = np.cumsum(correct[order], dtype=np.int64)
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    return s[ends].astype(np.float64), ends.astype(np.int64) + 1, c[ends]


def precision_coverage_curve(Y_true: Any, S: Any, *, mode: str = "top1",
                             chunk_size: int = DEFAULT_CHUNK):
    """``(thresholds, coverage, precision)`` float64 arrays, thresholds descending (so
    coverage ascends); one point per distinct accepted score (module docstring)."""
    if mode not in MODES:
        raise DataFormatError(f"mode must be one of {MODES}, got {mode!r}", field="mode")
    return _curve(prepare(Y_true, S, chunk_size=chunk_size), mode)


def _curve(prep: Prepared, mode: str):
    n, L = prep.shape
    if mode == "top1":
        labels, hits, scores = prep.ranked(1)
        ok = labels[:, 0] >= 0  # items with a retrieved label
        sc, correct = scores[ok, 0], hits[ok, 0]
        thr, accepted, cum_correct = _sweep(np.argsort(-sc), sc, correct)
        covered = accepted
    else:
        values, n_all, n_pos = prep.runs
        thr, accepted, cum_correct = values, np.cumsum(n_all), np.cumsum(n_pos)
        rmax = np.sort(prep.row_max)
        covered = rmax.size - np.searchsorted(rmax, thr, side="left")
    if n == 0:
        return thr, np.zeros(0), np.zeros(0)
    return thr, covered / n, cum_correct / np.maximum(accepted, 1)


def coverage_at_precision(Y_true: Any, S: Any, *, target: float = 0.9, mode: str = "top1",
                          chunk_size: int = DEFAULT_CHUNK) -> CoverageResult:
    """Largest coverage whose precision is >= ``target`` (module docstring)."""
    target = float(target)
    if not 0.0 <= target <= 1.0:
        raise DataFormatError(f"target precision must be in [0, 1], got {target}",
                              field="target")
    if mode not in MODES:
        raise DataFormatError(f"mode must be one of {MODES}, got {mode!r}", field="mode")
    prep = prepare(Y_true, S, chunk_size=chunk_size)
    thr, cov, prec = _curve(prep, mode)
    return _pick(thr, cov, prec, target, mode, prep.shape[0])


def _pick(thr, cov, prec, target: float, mode: str, n: int) -> CoverageResult:
    ok = np.flatnonzero(prec >= target)
    if ok.size == 0:
        return CoverageResult(target, mode, 0.0, float("nan"), None, 0)
    i = ok[np.argmax(cov[ok])]  # coverage ascends, so argmax picks the lowest threshold
    i = ok[cov[ok] == cov[i]][-1]
    return CoverageResult(target, mode, float(cov[i]), float(prec[i]), float(thr[i]),
                          int(round(cov[i] * n)))
