"""Joint per-label threshold tuning for micro-F1 and samples-F1 (see
:mod:`labelwise.decision.policies` for the methods); per-entry arrays as in
:mod:`labelwise.decision._entries`, searches from :mod:`labelwise.decision._search`."""

from __future__ import annotations

import numpy as np

from ._entries import Entries
from ._search import f1, per_group_best

__all__ = ["micro_f1_thresholds", "samples_f1_thresholds"]


def micro_f1_thresholds(E: Entries, hw: np.ndarray, pos: np.ndarray, total_pos: int,
                        max_rounds: int) -> np.ndarray:
    """Per-label thresholds maximising micro-F1 exactly (Dinkelbach; see policies)."""
    L = E.shape[1]
    F = 0.0
    best = None
    for _ in range(max(1, int(max_rounds))):
        thr, _, _ = per_group_best(E.values, E.cols, L, hw,
                                       lambda tp, m, g, F=F: 2.0 * tp - F * m)
        keep = E.values >= np.where(np.isnan(thr), np.inf, thr)[E.cols]
        tp, m = float(hw[keep].sum()), float(keep.sum())
        newF = 2 * tp / (m + total_pos) if m + total_pos > 0 else 0.0
        if best is not None and newF <= F + 1e-12:
            break
        F, best = newF, thr
    return best


def samples_f1_thresholds(E: Entries, hw: np.ndarray, Yc, t_g: float,
                          max_rounds: int) -> tuple[np.ndarray, float]:
    """Per-label thresholds raising samples-F1 by best-response rounds (see policies)."""
    L = E.shape[1]
    pos_row = np.diff(Yc.indptr).astype(np.float64)
    on = E.values >= t_g

    def value(on_mask):
        tp = np.bincount(E.rows, weights=hw * on_mask, minlength=E.shape[0])
        m = np.bincount(E.rows, weights=on_mask * 1.0, minlength=E.shape[0])
        return float(f1(tp, m, pos_row).mean()) if E.shape[0] else 0.0

    thr = np.where(np.bincount(E.cols, minlength=L) > 0, t_g, np.nan)
    cur = value(on)
    for _ in range(max(1, int(max_rounds))):
        tp = np.bincount(E.rows, weights=hw * on, minlength=E.shape[0])[E.rows]
        m = np.bincount(E.rows, weights=on * 1.0, minlength=E.shape[0])[E.rows]
        p = pos_row[E.rows]
        now = f1(tp, m, p)
        d_on = np.where(on, 0.0, f1(tp + hw, m + 1, p) - now)
        d_off = np.where(on, f1(tp - hw, m - 1, p) - now, 0.0)
        base = np.bincount(E.cols, weights=d_off, minlength=L)
        cand, gain, _ = per_group_best(E.values, E.cols, L, d_on - d_off,
                                       lambda tp_, m_, g, base=base: tp_ + base[g])
        order = np.argsort(-gain)
        improved = False
        n_try = L
        for _halving in range(5):
            chosen = order[:n_try]
            chosen = chosen[gain[chosen] > 1e-12]
            if chosen.size == 0:
                break
            trial = thr.copy()
            trial[chosen] = cand[chosen]
            t_on = E.values >= np.where(np.isnan(trial), np.inf, trial)[E.cols]
            v = value(t_on)
            if v > cur + 1e-12:
                thr, on, cur, improved = trial, t_on, v, True
                break
            n_try = max(1, n_try // 2)
        if not improved:
            break
    return thr, cur
