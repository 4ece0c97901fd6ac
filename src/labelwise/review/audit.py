"""An interval for the precision of the auto-accepted labels, estimated from the random
audits, that stays valid under the review loop's adaptive pause and the audits' clustering.

The audit is drawn per *item*: an item with auto-accepted labels goes to people with
probability a (its ingest's ``audit_rate``), all its auto labels at once, and the draw is
made before anyone knows whether they are right. A plain binomial interval on the audited
labels (correct / audited) is wrong twice over: an item's labels are right or wrong together
(one confused document holds three wrong labels), so the audited labels are not independent;
and the audits decide what is auto-accepted later (a label whose audited interval falls below
the target is paused), so the sample size and the population both depend on the outcomes.
In one benchmark run on Reuters-21578 the plain interval [74.4 %, 91.3 %] missed the true
92.0 %.

The interval here is a confidence sequence (it holds at every moment at once, so at whatever
moment the pause rule or a user looks). Items i = 1, 2, ... in ingest order have n_i
auto-accepted labels, x_i of them wrong (unknown unless audited) and A_i ~ Bernoulli(a_i)
drawn fresh. Whatever made item i's labels auto-accepted (the model, the pauses caused by
earlier audits), for any lambda

    M_t(lambda) = prod_{i <= t} exp(lambda A_i x_i) / (1 - a_i + a_i exp(lambda x_i))

is a martingale with mean 1 (the exact moment generating function of A_i x_i), and so is a
mixture of them over a grid of lambda; by Ville's inequality it exceeds 2 / alpha at some
moment with probability <= alpha / 2. M_t depends on the errors of the items nobody audited;
for a hypothesised total E of wrong labels it is bounded below by its smallest value over
every way of placing the E - (audited errors) remaining errors in the unaudited items (and
in audits not yet reviewed), at most n_i per item: f(x) = log(1 - a + a e^(lambda x)) is
convex with f(0) = 0, so its chord x f(n) / n bounds it above on [0, n] and the smallest
value of the resulting linear function is a fractional knapsack (cheapest slopes first).
E is rejected when that lower bound reaches 2 / alpha for the positive lambdas (too few
errors for what the audits found) or for the negative ones (too many). The errors not
rejected give the interval for the precision 1 - E / N (N: every auto-accepted label,
audited ones included, which is what was auto-accepted).

It is wider than the plain interval (the price of clustering and of looking at any moment);
the simulation in the tests checks that it covers the true precision in >= 95 % of runs of a
loop with pauses and clustered errors, where the plain interval does not.
"""

from __future__ import annotations

import numpy as np

__all__ = ["audited_precision_interval"]

#: the lambdas of each one-sided mixture (uniform weights): rate ratios of ~1.02 to ~55
LAMBDAS = np.geomspace(0.02, 4.0, 16)
#: grid of hypothesised error counts searched (beyond it, the grid's step widens the interval)
MAX_GRID = 20_001


def _group(v: np.ndarray, a: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (v, a, p) of the distinct integer counts v, audit rates a and flags p, and how
    many items each holds (items with equal rows contribute equally to the bound)."""
    rows, counts = [], []
    for av in np.unique(a):
        for pv in (0, 1):
            c = np.bincount(v[(a == av) & (p == pv)].astype(np.int64))
            nz = np.flatnonzero(c)
            rows += [(float(k), float(av), float(pv)) for k in nz]
            counts += c[nz].tolist()
    return np.array(rows, np.float64).reshape(-1, 3), np.array(counts, np.float64)


def _log_bound(lam: float, known: tuple[np.ndarray, np.ndarray], unknown: tuple[np.ndarray, ...],
               r: np.ndarray) -> np.ndarray:
    """log of the smallest M(lam) over the error placements with r errors in the unknown
    items (known: (rows of (x, a), counts) of reviewed audits; unknown: (n, a, pending)
    groups and their counts)."""
    (xa, kc), (nap, uc) = known, unknown
    out = 0.0
    if xa.size:
        x, a = xa[:, 0], xa[:, 1]
        out = float(np.sum(kc * (lam * x - np.log1p(a * np.expm1(lam * x)))))
    if not nap.size:
        return np.where(r > 0, -np.inf, out)  # no room for more errors
    n, a, pending = nap[:, 0], nap[:, 1], nap[:, 2] > 0
    chord = np.log1p(a * np.expm1(lam * n)) / n  # f(n) / n per unit of error
    slope = np.where(pending, lam - chord, -chord)
    order = np.argsort(slope, kind="stable")
    cap = (n * uc)[order]
    cum_cap = np.r_[0.0, np.cumsum(cap)]
    cum_cost = np.r_[0.0, np.cumsum(cap * slope[order])]
    j = np.clip(np.searchsorted(cum_cap, r, side="left") - 1, 0, cap.size - 1)
    cost = cum_cost[j] + slope[order][j] * (r - cum_cap[j])
    return out + np.where(r <= cum_cap[-1] + 1e-9, cost, -np.inf)


def audited_precision_interval(n_auto, audited, reviewed, wrong, rate, *,
                               level: float = 0.95) -> tuple[float, float]:
    """Confidence-sequence interval (module docstring) for the precision of the auto-accepted
    labels of the items given, one entry per item with auto-accepted labels:

    n_auto: its auto-accepted labels; audited: whether it was drawn for an audit; reviewed:
    whether that audit was reviewed; wrong: its wrong auto labels (read where audited and
    reviewed); rate: its ingest's audit rate. Returns (low, high); (0, 1) without items."""
    n = np.asarray(n_auto, np.float64)
    aud = np.asarray(audited, bool)
    rev = np.asarray(reviewed, bool) & aud
    x = np.where(rev, np.asarray(wrong, np.float64), 0.0)
    a = np.asarray(rate, np.float64)
    if not n.size:
        return 0.0, 1.0
    if np.any(n < 1) or np.any(x < 0) or np.any(x > n) or np.any((a < 0) | (a > 1)):
        raise ValueError("audited_precision_interval: expected n_auto >= 1, "
                         "0 <= wrong <= n_auto and 0 <= rate <= 1")
    N, e = float(n.sum()), float(x.sum())
    known = _group(x[rev], a[rev], np.zeros(int(rev.sum())))
    unk = ~rev
    unknown = _group(n[unk], a[unk], (aud & ~rev)[unk])
    room = float(n[unk].sum())
    step = max(1.0, np.ceil(room / (MAX_GRID - 1)))
    r = np.unique(np.r_[np.arange(0.0, room, step), room])
    bar = np.log(2.0 / (1.0 - level))
    keep = np.ones(r.size, bool)
    for sign in (1.0, -1.0):
        logs = np.stack([_log_bound(sign * lam, known, unknown, r) for lam in LAMBDAS])
        top = logs.max(axis=0)
        mix = top + np.log(np.mean(np.exp(logs - np.where(np.isfinite(top), top, 0.0)),
                                      axis=0))
        keep &= ~(mix >= bar)
    if not keep.any():  # cannot happen with a true placement; be safe: the whole range
        return 0.0, 1.0
    ok = np.flatnonzero(keep)
    e_lo = e + max(r[ok[0]] - (step if ok[0] > 0 else 0.0), 0.0)
    e_hi = e + min(r[ok[-1]] + (step if ok[-1] < r.size - 1 else 0.0), room)
    return float(max(0.0, 1.0 - e_hi / N)), float(min(1.0, 1.0 - e_lo / N))
