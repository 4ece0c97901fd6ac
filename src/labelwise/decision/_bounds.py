"""Confidence bounds for the precision of accepted pairs (used by
:class:`labelwise.decision.PrecisionTarget` with ``confidence=``).

The one-sided Clopper-Pearson ("exact") lower bound at level c for k successes in n trials
is the p with P(Binomial(n, p) >= k) = 1 - c, i.e. the (1 - c) quantile of
Beta(k, n - k + 1); it is 0 when k = 0. It never exceeds k / n.

:func:`fixed_sequence_cut` keeps that level when a threshold is *searched*: testing every
cut and keeping the lowest that passes spends the error once per cut. Fixed-sequence testing
(as in Learn-then-Test, Angelopoulos et al. 2021) orders the cuts before looking at the
labels (highest threshold first, starting at the first cut with enough accepted pairs for
the bound to reach the target at all; both depend on the scores only), tests them in that
order and stops at the first failure. Each test has level 1 - c, and a cut is tested only
when all before it passed, so the chance that any accepted cut's precision is below the
target is at most 1 - c (the family-wise error of a fixed sequence).
"""

from __future__ import annotations

import numpy as np

__all__ = ["fixed_sequence_cut", "precision_lower_bound"]


def precision_lower_bound(k: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower bound at level ``confidence`` for k successes of n
    (0 when k = 0): the ``1 - confidence`` quantile of Beta(k, n - k + 1)."""
    from scipy.stats import beta

    k = np.asarray(k, np.float64)
    n = np.asarray(n, np.float64)
    out = np.zeros(k.shape)
    pos = k > 0
    out[pos] = beta.ppf(1.0 - confidence, k[pos], n[pos] - k[pos] + 1.0)
    return out


def fixed_sequence_cut(k: np.ndarray, n: np.ndarray, target: float, confidence: float) -> int:
    """Index of the last cut passing a fixed-sequence test, or -1 when none passes.

    ``k[i]`` correct of ``n[i]`` accepted pairs at cut i; cuts ordered from the highest
    threshold down (``n`` increasing). Cuts with ``n < log(1 - c) / log(target)`` cannot
    pass even with k = n and are left out of the sequence (a choice made on n alone); from
    the first remaining cut, each is tested in turn (Clopper-Pearson lower bound at level
    c >= target) and the scan stops at the first failure."""
    k = np.asarray(k, np.float64)
    n = np.asarray(n, np.float64)
    if not 0.0 < target < 1.0:
        return -1  # a bound below 1 never reaches a target of 1
    n_min = np.log1p(-confidence) / np.log(target)
    start = int(np.searchsorted(n, n_min - 1e-9, side="left"))
    if start >= n.size:
        return -1
    ok = precision_lower_bound(k[start:], n[start:], confidence) >= target
    fail = np.flatnonzero(~ok)
    stop = int(fail[0]) if fail.size else ok.size
    return start + stop - 1 if stop else -1
