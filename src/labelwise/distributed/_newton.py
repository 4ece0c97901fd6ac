"""Newton-CG on the primal, with the rows spread over Dask workers (partitioned training).

Each binary problem ``j`` of a batch solves OneVsRest's primal (:mod:`labelwise.models.ovr`)::

    min_w  f_j(w) = 0.5 |w|^2 + C sum_i loss(y_ij w.[x_i, bias])

over rows that live on many workers. Every quantity the solver needs is a *sum over rows*,
so each worker computes its partitions' share and only feature-sized vectors travel:

- one *evaluation round* gives every partition's loss and gradient sums at ``W``
  (:func:`labelwise.distributed._rows.eval_sums`); the curvature ``D`` stays on the worker;
- one *CG round* gives the Hessian-vector sums ``X~' D X~ v`` (``hv_sums``) against that
  kept ``D``.

Per Newton iteration: conjugate gradient on ``(I + C X~'DX~) s = -g`` (generalised Hessian
for the squared hinge, Keerthi & DeCoste 2005; the exact one for the logistic loss) until
``|r| <= 0.1 |g|`` or ``MAX_CG`` steps, then a backtracking (Armijo, halving) line search per
column. A column stops when ``|g_j| <= eps |g_j(0)|``. All arithmetic is float64 on the
client; partition sums are added in partition order, so the result does not depend on the
number of workers or on where a partition lives.

This reaches the same optimum as the local dual coordinate descent (the primal is strictly
convex), but not the same bits: the local solver stops at its dual tolerance ``tol``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _rows
from ._pinned import Pinned

__all__ = ["solve", "MAX_CG", "MAX_LINE_SEARCH"]

MAX_CG = 50
MAX_LINE_SEARCH = 30
ARMIJO = 0.01


def _sum(per_part: list[list], p: int) -> Any:
    """Partition-ordered sum of problem ``p``'s entries."""
    acc = None
    for res in per_part:
        r = res[p]
        if r is None:
            return None
        acc = r if acc is None else (
            tuple(a + b for a, b in zip(acc, r, strict=True)) if isinstance(r, tuple)
            else acc + r)
    return acc


def solve(rnd: Pinned, problems: list[tuple], Cs: Any, *, loss: int, bias: float,
          eps: float, max_iter: int) -> tuple[list[np.ndarray], list[np.ndarray],
                                               list[np.ndarray], list[int]]:
    """Solve a batch of problems ``(row_labels | None, [labels of classifier j])`` over the
    partitions of ``rnd``. Returns per problem ``(feats, W, n_iter)`` and its row count:
    ``W`` float64 ``(len(feats) + 1, m)`` (the bias weight last), ``feats`` the global
    feature ids of its rows (ascending), ``n_iter`` the Newton iterations per column.
    ``Cs``: the C of each problem, or a function of the problem's row count giving it."""
    parts = [f for f, _ in rnd.parts]
    P = len(problems)
    probs_arg = rnd.share(problems)
    sizes = rnd.gather(rnd.submit(_rows.label_sums, [(f, probs_arg) for f in parts]))
    feats, n_rows = [], []
    for p in range(P):
        fs = [s[p][1] for s in sizes]
        feats.append(np.unique(np.concatenate(fs)) if fs else np.zeros(0, np.int64))
        n_rows.append(sum(s[p][0] for s in sizes))
    del sizes
    if callable(Cs):
        Cs = [Cs(r) for r in n_rows]
    held = rnd.submit(_rows.restrict, [(f, probs_arg, rnd.share(feats)) for f in parts])
    ms = [len(t) for _, t in problems]
    W = [np.zeros((feats[p].shape[0] + 1, ms[p])) for p in range(P)]
    n_iter = [np.zeros(ms[p], np.int32) for p in range(P)]

    def evaluate(Ws: list) -> tuple[list, list]:
        arg = rnd.share(Ws)
        res = rnd.gather(rnd.submit(_rows.eval_sums, [(h, arg, loss, bias) for h in held],
                                    mutates=True))
        f, g = [None] * P, [None] * P
        for p in range(P):
            s = _sum(res, p)
            if s is None or Ws[p] is None:
                continue
            value, grad = s
            f[p] = 0.5 * np.sum(Ws[p] * Ws[p], axis=0) + Cs[p] * value
            g[p] = Ws[p] + Cs[p] * grad
        return f, g

    f, g = evaluate(W)
    g0 = [np.sqrt(np.sum(gp * gp, axis=0)) for gp in g]
    live = [g0[p] > 0 for p in range(P)]
    for _ in range(max_iter):
        gn = [np.sqrt(np.sum(g[p] * g[p], axis=0)) if g[p] is not None else None
              for p in range(P)]
        for p in range(P):
            if gn[p] is not None:
                live[p] &= gn[p] > eps * g0[p]
        act = [p for p in range(P) if live[p].any()]
        if not act:
            break
        # conjugate gradient on the live columns (dead columns: zero direction)
        S = {p: np.zeros_like(W[p]) for p in act}
        R = {p: -g[p] * live[p] for p in act}
        D = {p: R[p].copy() for p in act}
        rr = {p: np.sum(R[p] * R[p], axis=0) for p in act}
        cg_live = {p: live[p].copy() for p in act}
        for _cg in range(MAX_CG):
            todo = [p for p in act if cg_live[p].any()]
            if not todo:
                break
            Vs = [D[p] if p in todo else None for p in range(P)]
            arg = rnd.share(Vs)
            hv = rnd.gather(rnd.submit(_rows.hv_sums, [(h, arg, bias) for h in held]))
            for p in todo:
                Hd = D[p] + Cs[p] * _sum(hv, p)
                dHd = np.sum(D[p] * Hd, axis=0)
                alpha = np.divide(rr[p], dHd, out=np.zeros_like(dHd), where=cg_live[p] & (dHd > 0))
                S[p] += alpha * D[p]
                R[p] -= alpha * Hd
                rr_new = np.sum(R[p] * R[p], axis=0)
                cg_live[p] &= np.sqrt(rr_new) > 0.1 * gn[p]
                beta = np.divide(rr_new, rr[p], out=np.zeros_like(rr_new), where=rr[p] > 0)
                D[p] = (R[p] + beta * D[p]) * cg_live[p]
                rr[p] = rr_new
        # line search, every column of every live problem in one round per step
        gs = {p: np.sum(g[p] * S[p], axis=0) for p in act}
        t = {p: np.ones(W[p].shape[1]) for p in act}
        for _ls in range(MAX_LINE_SEARCH):
            trial = [W[p] + t[p] * S[p] if p in act else None for p in range(P)]
            f_t, g_t = evaluate(trial)
            bad = {p: f_t[p] > f[p] + ARMIJO * t[p] * gs[p] for p in act}
            if not any(b.any() for b in bad.values()):
                break
            for p in act:
                t[p] = np.where(bad[p], 0.5 * t[p], t[p])
        for p in act:
            W[p] = trial[p]
            f[p], g[p] = f_t[p], g_t[p]
            n_iter[p] += live[p]
    return feats, W, n_iter, n_rows
