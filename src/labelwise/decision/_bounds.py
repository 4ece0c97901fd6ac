"""Confidence bounds for the precision of accepted pairs (used by
:class:`labelwise.decision.PrecisionTarget` with ``confidence=``).

The one-sided Clopper-Pearson ("exact") lower bound at level c for k successes in n trials
is the p with P(Binomial(n, p) >= k) = 1 - c, i.e. the (1 - c) quantile of
Beta(k, n - k + 1); it is 0 when k = 0. It never exceeds k / n.

:func:`fixed_sequence_cut` keeps that level when a threshold is *searched*: testing every
cut and keeping the lowest that passes spends the error once per cut. Fixed-sequence testing
(as in Learn-then-Test, Angelopoulos et al. 2021) orders the cuts before looking at the
labels (highest threshold first, from a start that depends on the cuts' sizes only), tests
them in that order and stops at the first failure. Each test has level 1 - c, and a cut is
tested only when all before it passed, so the chance that any accepted cut's precision is
below the target is at most 1 - c (the family-wise error of a fixed sequence).

Where a sequence starts matters: at the fewest pairs whose bound can reach the target at all
(``log(1 - c) / log(target)``: 29 pairs at 0.9, c = 0.95) its first test passes only with no
error, and one wrong pair among the very top ones ends it. :func:`certified_cut` therefore
runs *two* fixed sequences, each at level ``1 - (1 - c) / 2`` (Bonferroni): one from that
zero-error start, one from the fewest pairs n at which ``floor(n (1 + target) / 2)``
correct would pass (a cut whose precision is half-way between the target and 1; 154 pairs at
0.9, 312 at 0.95 with c = 0.95). Both starts depend on n alone. The certified cut is the
lowest (most pairs) that either sequence passed: the event that some passed cut of either
sequence is below the target has probability at most (1 - c) / 2 + (1 - c) / 2 = 1 - c, and
outside it every passed cut, the chosen one included, meets the target.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["certified_cut", "fixed_sequence_cut", "precision_lower_bound", "sequence_start"]

#: the shares of correct pairs at which the two sequences of :func:`certified_cut` start
#: (``None``: the half-way share (1 + target) / 2)
START_SHARES = (1.0, None)


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


def sequence_start(target: float, confidence: float, share: float = 1.0,
                   limit: int = 1 << 20) -> int | None:
    """The fewest pairs n at which ``floor(share * n)`` correct of n pass the bound
    (``precision_lower_bound >= target``); None when no n up to ``limit`` does (share <=
    target, or a target of 1). ``share=1``: ``ceil(log(1 - c) / log(target))``."""
    if not 0.0 < target < 1.0 or share <= target:
        return None
    if share >= 1.0:
        n_min = math.log1p(-confidence) / math.log(target)
        return max(int(math.ceil(n_min - 1e-9)), 1)
    # the bound of floor(share * n) of n rises with n (saw-toothed): scan blocks of n
    lo = 1
    while lo <= limit:
        n = np.arange(lo, min(2 * lo, limit + 1), dtype=np.float64)
        ok = np.flatnonzero(precision_lower_bound(np.floor(share * n), n, confidence) >= target)
        if ok.size:
            return int(n[ok[0]])
        lo *= 2
    return None


def fixed_sequence_cut(k: np.ndarray, n: np.ndarray, target: float, confidence: float,
                       *, start_pairs: int | None = None) -> int:
    """Index of the last cut passing a fixed-sequence test, or -1 when none passes.

    ``k[i]`` correct of ``n[i]`` accepted pairs at cut i; cuts ordered from the highest
    threshold down (``n`` increasing). The sequence starts at the first cut with at least
    ``start_pairs`` pairs (default: :func:`sequence_start` with share 1, the fewest that can
    pass at all; a choice made on n alone); from there each cut is tested in turn
    (Clopper-Pearson lower bound at level c >= target) and the scan stops at the first
    failure."""
    k = np.asarray(k, np.float64)
    n = np.asarray(n, np.float64)
    if start_pairs is None:
        start_pairs = sequence_start(target, confidence)
    if start_pairs is None:
        return -1  # a bound below 1 never reaches a target of 1
    start = int(np.searchsorted(n, start_pairs, side="left"))
    if start >= n.size:
        return -1
    ok = precision_lower_bound(k[start:], n[start:], confidence) >= target
    fail = np.flatnonzero(~ok)
    stop = int(fail[0]) if fail.size else ok.size
    return start + stop - 1 if stop else -1


def certified_cut(k: np.ndarray, n: np.ndarray, target: float,
                  confidence: float) -> tuple[int, list[int], list[int | None], float]:
    """The cut certified by the Bonferroni pair of fixed sequences (module docstring).

    Returns (index of the certified cut or -1, each sequence's last passing index, each
    sequence's start in pairs (None: it cannot start), the level of each test)."""
    each = 1.0 - (1.0 - confidence) / len(START_SHARES)
    starts = [sequence_start(target, each, (1.0 + target) / 2.0 if s is None else s)
              for s in START_SHARES]
    ends = [-1 if s is None else fixed_sequence_cut(k, n, target, each, start_pairs=s)
            for s in starts]
    return max(ends), ends, starts, each
