"""Numba kernel of the linear classifier chain's beam search (row-parallel, nogil).

Checked against the plain numpy beam of :class:`~labelwise.models.chains.ClassifierChain`
(used for non-linear learners) and against exhaustive enumeration in
``tests/test_models_chains.py``.
"""

from __future__ import annotations

import numpy as np

from .._numba import njit


@njit(nogil=True, cache=True)
def beam_rows(base, intercept, label_coef, width, row_start, row_end, beams, logp, cond):
    """Beam search along one linear chain for rows ``row_start..row_end``.

    base (m, L): x.w of each position's classifier; intercept (L,); label_coef (L, L):
    weight of the label at position q in the classifier at position p (q < p). Writes
    beams (m, B, L) (uint8 0/1, position order), logp (m, B) (-inf for empty slots) and
    cond (m, B, L): P(label at position p = 1 | x, the slot's labels before p).
    Candidates are ranked by log-probability, ties by the order (slot 0..B-1 with label 0,
    then slot 0..B-1 with label 1), as the numpy beam's stable sort does.
    """
    L = base.shape[1]
    B = width
    cur = np.zeros((B, L), np.uint8)
    nxt = np.zeros((B, L), np.uint8)
    curc = np.zeros((B, L))
    nxtc = np.zeros((B, L))
    p1s = np.zeros(B)
    lp = np.empty(B)
    cand = np.empty(2 * B)
    order = np.empty(2 * B, np.int64)
    for i in range(row_start, row_end):
        cur[:, :] = 0
        curc[:, :] = 0.0
        lp[:] = -np.inf
        lp[0] = 0.0
        for p in range(L):
            for b in range(B):
                if lp[b] == -np.inf:
                    cand[b] = -np.inf
                    cand[B + b] = -np.inf
                    p1s[b] = 0.0
                    continue
                z = base[i, p] + intercept[p]
                for q in range(p):
                    if cur[b, q]:
                        z += label_coef[q, p]
                if z >= 0:
                    p1 = 1.0 / (1.0 + np.exp(-z))
                else:
                    e = np.exp(z)
                    p1 = e / (1.0 + e)
                p1s[b] = p1
                cand[b] = lp[b] + (np.log1p(-p1) if p1 < 1.0 else -np.inf)
                cand[B + b] = lp[b] + (np.log(p1) if p1 > 0.0 else -np.inf)
            # stable selection of the B best of 2B candidates (insertion sort: B is small)
            for t in range(2 * B):
                order[t] = t
            for t in range(1, 2 * B):
                v = order[t]
                s = t - 1
                while s >= 0 and cand[order[s]] < cand[v]:
                    order[s + 1] = order[s]
                    s -= 1
                order[s + 1] = v
            for b in range(B):
                c = order[b]
                parent = c % B
                for q in range(p):
                    nxt[b, q] = cur[parent, q]
                    nxtc[b, q] = curc[parent, q]
                nxt[b, p] = 1 if c >= B else 0
                nxtc[b, p] = p1s[parent]
                lp[b] = cand[c]
            for b in range(B):
                for q in range(p + 1):
                    cur[b, q] = nxt[b, q]
                    curc[b, q] = nxtc[b, q]
        for b in range(B):
            logp[i, b] = lp[b]
            for q in range(L):
                beams[i, b, q] = cur[b, q]
                cond[i, b, q] = curc[b, q]
