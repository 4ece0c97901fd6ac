"""The context step of ``PlattCalibrator(per_label=True, context=True)``: one logistic map
from a stored pair's per-label Platt probability *and its row and label* to the chance
that the pair is a true label, so that probabilities of different labels and rows are
comparable (what a precision target's single cut over all pairs needs).

Why: the per-label Platt map is monotone within a label and blind to everything else. On
GoEmotions and Reuters-21578 the pairs it calls 0.99 are not equally right: a label's
second-best rival in the same row, how many labels the row's top pairs share the mass
between, and how often the label's confident pairs turn out true (cooking tags are often
left off by askers: 'cheese' is missing from 25 % of the questions whose title says
cheese) all move the chance. Features of entry e in row r (p: the Platt probabilities; the
row's *top three* are its three highest raw scores, ties by the lower column):

- ``logit p_e``; ``[rank_e == 0]``, ``[rank_e == 1]``, ``[rank_e == 2]`` (rank by raw score);
- ``logit p_other``, p_other the highest p among the row's top three other than e (0 when
  there is none), and ``p_e - p_other``;
- ``log`` of the sum of p over the row's top three;
- ``logit c_j``: label j's precision among its fitting entries with p >= 0.5, shrunk toward
  all labels' by :data:`CEILING_PRIOR` pseudo-pairs; ``log(1 + positives_j)``.

Every feature reads the row's three highest raw scores only, so a top-k matrix gives the
same probabilities for any k >= 3 (tuning retrieves more labels than ingest shows).
The map is fitted (ridge logistic regression on standardised features, penalty |w|^2 / 2,
scikit-learn's LogisticRegression with C = 1; Newton's method) on the
fitting entries with p >= :data:`FLOOR` (the low tail would dominate the fit and no cut
reaches it) and applied to every entry; with fewer than :data:`MIN_CLASS` true or false
such entries it is not fitted and the Platt probabilities pass through.
"""

from __future__ import annotations

import numpy as np

__all__ = ["context_features", "fit_context", "label_ceilings", "FEATURES", "TOP"]

FEATURES = ("logit_p", "rank0", "rank1", "rank2", "logit_other", "p_minus_other",
            "log_top3_sum", "logit_ceiling", "log_positives")
#: the row's top pairs every feature reads (a top-k matrix with k >= TOP gives the same map)
TOP = 3
#: entries below this Platt probability are not fitted on
FLOOR = 0.05
#: pseudo-pairs (at all labels' precision) added to each label's ceiling estimate
CEILING_PRIOR = 20.0
#: a label's confident entries: p >= this
CONFIDENT = 0.5
#: fewest true and fewest false fitting entries for a fit
MIN_CLASS = 20
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


def raw_ranks(values: np.ndarray, rows: np.ndarray, indptr: np.ndarray,
              cols: np.ndarray) -> np.ndarray:
    """Rank of each entry within its row by raw score (0 = highest; ties: lower column)."""
    order = np.lexsort((cols, -values, rows))
    rank = np.empty(values.size, np.int64)
    rank[order] = np.arange(values.size) - indptr[rows[order]]
    return rank


def context_features(p: np.ndarray, values: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                     indptr: np.ndarray, ceiling: np.ndarray,
                     positives: np.ndarray) -> np.ndarray:
    """The (nnz, len(FEATURES)) feature matrix of the module docstring."""
    n_rows = indptr.size - 1
    rank = raw_ranks(values, rows, indptr, cols)
    top = rank < TOP
    # the row's top three probabilities by rank slot (0 where the row has fewer entries)
    slots = np.zeros((n_rows, TOP))
    slots[rows[top], rank[top]] = p[top]
    best = slots.max(axis=1)
    # highest p among the other top-three entries: drop e's own slot when it is one
    other = np.empty(p.size)
    for s in range(TOP):
        mine = rank == s
        rest = np.delete(slots, s, axis=1).max(axis=1)
        other[mine] = rest[rows[mine]]
    other[~top] = best[rows[~top]]
    total = slots.sum(axis=1)[rows]
    return np.column_stack([
        _logit(p), rank == 0, rank == 1, rank == 2, _logit(other), p - other,
        np.log(np.maximum(total, _EPS)), _logit(ceiling[cols]),
        np.log1p(positives[cols].astype(np.float64))]).astype(np.float64)


def label_ceilings(p: np.ndarray, h: np.ndarray, cols: np.ndarray, n_labels: int) -> np.ndarray:
    """Each label's shrunk precision among its entries with p >= CONFIDENT (docstring)."""
    conf = p >= CONFIDENT
    if not conf.any():
        conf = np.ones(p.size, bool)
    k = np.bincount(cols[conf], weights=h[conf].astype(np.float64), minlength=n_labels)
    n = np.bincount(cols[conf], minlength=n_labels).astype(np.float64)
    g = float(k.sum() / n.sum()) if n.sum() else 0.5
    return (k + CEILING_PRIOR * g) / (n + CEILING_PRIOR)


def _ridge_logistic(Z: np.ndarray, y: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """argmin over (w, b) of sum softplus(Z w + b) - y (Z w + b) + |w|^2 / 2 (scikit-learn's
    LogisticRegression with C = 1), by Newton's method with step halving."""
    from ._logistic import softplus

    n, d = Z.shape
    A = np.column_stack([Z, np.ones(n)])
    reg = np.r_[np.ones(d), 0.0]  # the intercept is not penalised
    theta = np.zeros(d + 1)

    def loss(t: np.ndarray) -> float:
        z = A @ t
        return float(np.sum(softplus(z) - y * z) + 0.5 * np.sum(reg * t * t))

    f = loss(theta)
    for _ in range(max_iter):
        q = np.exp(-softplus(-(A @ theta)))
        grad = A.T @ (q - y) + reg * theta
        H = (A * (q * (1.0 - q))[:, None]).T @ A + np.diag(reg) + 1e-10 * np.eye(d + 1)
        step = np.linalg.solve(H, grad)
        lr = 1.0
        while lr > 1e-8 and loss(theta - lr * step) > f:
            lr /= 2.0
        new = theta - lr * step
        f_new = loss(new)
        done = abs(f - f_new) <= 1e-12 * max(1.0, abs(f))
        theta, f = new, f_new
        if done:
            break
    return theta


def fit_context(X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Weights (len(FEATURES) + 1: the last is the intercept) of the logistic map on raw
    features, or None when there are too few true or false rows (docstring)."""
    y = y.astype(np.float64)
    n_true = int(y.sum())
    if n_true < MIN_CLASS or y.size - n_true < MIN_CLASS:
        return None
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0
    theta = _ridge_logistic((X - mu) / sd, y)
    w = theta[:-1] / sd
    return np.r_[w, float(theta[-1]) - float(np.dot(w, mu))]
