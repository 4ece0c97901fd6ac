"""Vectorised threshold searches over flat score entries, O(nnz log nnz).

Rule: a pair is accepted when its score >= the threshold. Candidate cuts lie only at the
ends of runs of equal scores (equal scores are accepted together). A chosen cut is turned
into the threshold halfway between the lowest accepted score and the next lower score (a
margin on each side, like a max-margin boundary); with no lower score the lowest accepted
score itself is the threshold.

F1 of a group (a label, a row, or everything) with ``tp`` true accepted pairs, ``m``
accepted pairs and ``pos`` true pairs is ``2 tp / (m + pos)``, and 0 when ``m + pos = 0``
(scikit-learn's ``zero_division=0``). True pairs that were never retrieved count in ``pos``.
The tests check every search here against brute force over all thresholds.
"""

from __future__ import annotations

import numpy as np

__all__ = ["f1", "per_group_best", "global_path", "cut_threshold"]


def f1(tp: np.ndarray, m: np.ndarray, pos: np.ndarray) -> np.ndarray:
    den = m + pos
    return np.where(den > 0, 2.0 * tp / np.where(den > 0, den, 1), 0.0)


def cut_threshold(v_sorted: np.ndarray, i: np.ndarray, has_next: np.ndarray) -> np.ndarray:
    """Threshold for cutting after position ``i`` of descending ``v_sorted``."""
    hi = v_sorted[i]
    lo = v_sorted[np.minimum(i + 1, v_sorted.size - 1)]
    mid = 0.5 * (hi + lo)
    mid = np.where(mid > lo, mid, hi)  # adjacent floats: keep the accepted score itself
    return np.where(has_next, mid, hi)


def per_group_best(values: np.ndarray, groups: np.ndarray, n_groups: int,
                   weight: np.ndarray, objective) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group, the best cut of its entries taken in descending score order.

    ``objective(tp, m, g)`` gives the value of accepting the group's top ``m`` entries, of
    which ``tp`` have ``weight`` summed (weights are floats; for F1 they are the 0/1 hits),
    vectorised over arrays; ``objective(0, 0, g)`` is the value of accepting nothing.
    Returns ``(threshold, value, n_accepted)`` per group; a group whose best choice is to
    accept nothing gets threshold ``nextafter(max score, +inf)`` (NaN with no entries) and
    ``n_accepted`` 0. Ties in value prefer fewer accepted pairs.
    """
    order = np.lexsort((-values, groups))
    v, w, g = values[order], weight[order], groups[order]
    n = v.size
    thr = np.full(n_groups, np.nan)
    none_val = objective(np.zeros(n_groups), np.zeros(n_groups), np.arange(n_groups))
    best = np.asarray(none_val, np.float64).copy()
    n_acc = np.zeros(n_groups, np.int64)
    if n == 0:
        return thr, best, n_acc
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    gid = g[starts]
    start_of = np.repeat(starts, np.diff(np.r_[starts, n]))
    cw = np.cumsum(w)
    before = np.where(start_of > 0, cw[start_of - 1], 0.0)
    tp = cw - before
    m = np.arange(n) - start_of + 1
    same_next = np.r_[g[1:] == g[:-1], False]
    is_cut = ~same_next | (v != np.r_[v[1:], np.nan])
    val = np.where(is_cut, objective(tp, m.astype(np.float64), g), -np.inf)
    gmax = np.maximum.reduceat(val, starts)
    # first (highest-threshold) position reaching the group maximum
    hit = val == np.repeat(gmax, np.diff(np.r_[starts, n]))
    first = np.minimum.reduceat(np.where(hit, np.arange(n), n), starts)
    better = gmax > best[gid]
    t_cut = cut_threshold(v, first, same_next[first])
    thr[gid] = np.where(better, t_cut, np.nextafter(v[starts], np.inf))
    best[gid] = np.where(better, gmax, best[gid])
    n_acc[gid] = np.where(better, m[first], 0)
    return thr, best, n_acc


def global_path(values: np.ndarray, groups: np.ndarray, hit: np.ndarray,
                pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One threshold for every pair: F1 averaged over groups as the threshold falls.

    ``groups`` (per entry) with ``pos`` (per group, true pairs including unretrieved ones)
    selects the average: all zeros with one group = micro-F1, label ids = macro-F1, row ids
    = samples-F1. Returns ``(thresholds, objective)`` over the candidate cuts, thresholds
    descending, plus the 'accept nothing' point first (threshold +inf, objective 0).
    """
    n_groups = pos.size
    order = np.argsort(-values, kind="stable")
    v, g, h = values[order], groups[order], hit[order].astype(np.float64)
    n = v.size
    # counts within each group, following the global order
    by_g = np.lexsort((np.arange(n), g))
    gs = g[by_g]
    starts = np.r_[True, gs[1:] != gs[:-1]]
    start_pos = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    ch = np.cumsum(h[by_g])
    tp_after = np.empty(n)
    m_after = np.empty(n)
    tp_after[by_g] = ch - np.where(start_pos > 0, ch[start_pos - 1], 0.0)
    m_after[by_g] = np.arange(n) - start_pos + 1
    p = pos[g].astype(np.float64)
    delta = f1(tp_after, m_after, p) - f1(tp_after - h, m_after - 1, p)
    obj = np.cumsum(delta) / max(n_groups, 1)
    is_cut = v != np.r_[v[1:], np.nan]
    idx = np.flatnonzero(is_cut)
    thr = cut_threshold(v, idx, idx + 1 < n)
    return np.r_[np.inf, thr], np.r_[0.0, obj[idx]]
