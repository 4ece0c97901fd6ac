"""The audited precision's interval (labelwise.review.audit): a brute-force reference of the
confidence sequence on tiny inputs, and a simulation of the review loop (per-item audits,
errors that come together within an item, labels paused by their audits) where it covers
the true precision in >= 95 % of runs and the plain binomial interval does not."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

from labelwise.review.audit import LAMBDAS, audited_precision_interval
from labelwise.review.loop import clopper_pearson


def _reference(n, audited, wrong, rate, level=0.95):
    """Every placement of the unaudited items' errors tried: E is kept unless, for the
    positive or the negative lambdas, the mixture of the *smallest* exact M(lambda) over the
    placements with E errors in all reaches 2 / (1 - level)."""
    n, audited, wrong = list(n), list(audited), list(wrong)
    unk = [i for i in range(len(n)) if not audited[i]]
    e = sum(wrong[i] for i in range(len(n)) if audited[i])
    bar = 2 / (1 - level)
    kept = []
    for E in range(e, e + sum(n[i] for i in unk) + 1):
        places = [p for p in itertools.product(*[range(n[i] + 1) for i in unk])
                  if sum(p) == E - e]
        reject = False
        for sign in (1, -1):
            mix = 0.0
            for lam in sign * LAMBDAS:
                best = np.inf
                for p in places:
                    x = list(wrong)
                    for i, v in zip(unk, p, strict=True):
                        x[i] = v
                    logm = sum((lam * x[i] if audited[i] else 0.0)
                               - np.log(1 - rate + rate * np.exp(lam * x[i]))
                               for i in range(len(n)))
                    best = min(best, logm)
                mix += np.exp(best) / LAMBDAS.size
            reject |= mix >= bar
        if not reject:
            kept.append(E)
    N = sum(n)
    return 1 - max(kept) / N, 1 - min(kept) / N


@pytest.mark.parametrize("sizes", [(1,) * 9, (1, 2, 1, 3, 1, 2, 1, 1)])
def test_interval_matches_a_brute_force_reference(sizes):
    """One label an item: the fractional bound is exact, the intervals are equal; items of
    several labels: the interval holds the reference's (the chord bound is looser)."""
    n = np.array(sizes)
    audited = np.zeros(n.size, bool)
    audited[[0, 3, 5]] = True
    wrong = np.zeros(n.size, int)
    wrong[3] = 1
    wrong[5] = min(n[5], 1)
    lo, hi = audited_precision_interval(n, audited, audited, wrong, np.full(n.size, 0.4))
    rlo, rhi = _reference(n, audited, wrong, 0.4)
    if max(sizes) == 1:
        assert (lo, hi) == pytest.approx((rlo, rhi))
    else:
        assert lo <= rlo + 1e-12 and hi >= rhi - 1e-12
    # an audit not yet reviewed: its errors are unknown, the interval holds both outcomes
    pend = audited_precision_interval(n, audited, audited & (np.arange(n.size) != 3), wrong,
                                      np.full(n.size, 0.4))
    assert pend[0] <= lo and pend[1] >= hi


def test_interval_edges_and_errors():
    assert audited_precision_interval([], [], [], [], []) == (0.0, 1.0)
    # everything audited (rate 1): the precision is known exactly
    lo, hi = audited_precision_interval([2, 1, 1], [1, 1, 1], [1, 1, 1], [1, 0, 0], [1, 1, 1])
    assert lo == pytest.approx(0.75) and hi == pytest.approx(0.75)
    with pytest.raises(ValueError, match="0 <= wrong <= n_auto"):
        audited_precision_interval([1], [True], [True], [2], [0.5])


@functools.cache
def _upper(k, n):
    return clopper_pearson(k, n)[1]


def _loop(rng, target=0.9, a=0.1, chunks=10, per_chunk=120, confused=0.06):
    """One simulated review loop: 8 labels (two of them poor), items with 1-3 auto labels;
    an item is 'confused' (all its labels wrong) with probability ``confused``, else each
    label is wrong with its own rate; after each chunk its audits are reviewed, and a label
    whose audited labels' binomial interval lies below the target is paused (no longer
    auto-accepted) for the next chunk. Returns each item's auto labels, audit draw and wrong
    labels, the rate, and how many (chunk, label) pairs were paused."""
    err = np.array([0.02, 0.02, 0.03, 0.04, 0.05, 0.05, 0.25, 0.3])
    correct, audited = np.zeros(8, int), np.zeros(8, int)
    ns, auds, wrongs, paused = [], [], [], 0
    for _ in range(chunks):
        active = np.array([audited[j] == 0 or _upper(int(correct[j]), int(audited[j]))
                           >= target for j in range(8)])
        paused += int((~active).sum())
        size = rng.integers(1, 4, per_chunk)
        rank = np.argsort(rng.random((per_chunk, 8)), axis=1).argsort(axis=1)
        M = (rank < size[:, None]) & active
        bad = (rng.random(per_chunk) < confused)[:, None] | (rng.random((per_chunk, 8)) < err)
        aud = rng.random(per_chunk) < a
        keep = M.any(axis=1)  # items left with an auto label
        ns.append(M.sum(1)[keep])
        wrongs.append((M & bad).sum(1)[keep])
        auds.append(aud[keep])
        correct += (M & ~bad & aud[:, None]).sum(0)
        audited += (M & aud[:, None]).sum(0)
    return np.concatenate(ns), np.concatenate(auds), np.concatenate(wrongs), a, paused


def test_interval_covers_the_true_precision_under_pauses_and_clustering():
    rng = np.random.default_rng(7)
    runs, miss, miss_plain, paused_runs = 200, 0, 0, 0
    for _ in range(runs):
        n, aud, wrong, a, paused = _loop(rng)
        true = 1 - wrong.sum() / n.sum()
        lo, hi = audited_precision_interval(n, aud, aud, wrong, np.full(n.size, a))
        miss += not lo <= true <= hi
        k, m = int((n[aud] - wrong[aud]).sum()), int(n[aud].sum())
        plo, phi = clopper_pearson(k, m)
        miss_plain += not plo <= true <= phi
        paused_runs += paused > 0
    assert miss <= 0.05 * runs
    assert miss_plain > 0.05 * runs  # the plain interval is not valid here
    assert paused_runs > 0.5 * runs  # the pause rule did take part
