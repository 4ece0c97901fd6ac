"""Debiased calibration error (Kumar et al. 2019) and ECE_sweep (Roelofs et al. 2022):
slow loop references, synthetic data with known calibration, unretrieved pairs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.calibration import (
    debiased_calibration_error,
    ece_sweep,
    expected_calibration_error,
)
from labelwise.errors import DataFormatError


def _quantile_edges_ref(p, n_bins):
    """Edges at the i/n_bins quantiles: the first sorted value whose 1-based rank reaches
    i * N / n_bins (the rank-ceil rule), with 0 and 1 at the ends."""
    ps = np.sort(p)
    N = ps.size
    inner = []
    for i in range(1, n_bins):
        target = i * N / n_bins
        r = 0
        while r + 1 < target:
            r += 1
        inner.append(ps[min(r, N - 1)])
    return [0.0, *inner, 1.0]


def _debiased_ref(y, p, n_bins, strategy="quantile"):
    edges = (_quantile_edges_ref(p, n_bins) if strategy == "quantile"
             else list(np.linspace(0, 1, n_bins + 1)))
    total = 0.0
    for b in range(n_bins):
        members = []
        for i in range(p.size):
            # bin b holds edges[b] <= p < edges[b+1]; the last bin also takes p == 1 and
            # anything at or past the last inner edge
            above = p[i] >= edges[b] or b == 0
            below = p[i] < edges[b + 1] or b == n_bins - 1
            if above and below:
                members.append(i)
        n = len(members)
        if n == 0:
            continue
        ybar = sum(y[i] for i in members) / n
        pbar = sum(p[i] for i in members) / n
        term = (ybar - pbar) ** 2
        if n >= 2:
            term -= ybar * (1 - ybar) / (n - 1)
        total += n * term
    return total / p.size


def _sweep_ref(y, p):
    """Pairs in (p, y) order, pair r covering mass [r, r + 1); bin k covers
    [k N / b, (k + 1) N / b); a pair counts in a bin by the overlap of the two."""
    order = sorted(range(p.size), key=lambda i: (p[i], y[i]))
    ps = [p[i] for i in order]
    ys = [y[i] for i in order]
    N = len(ps)
    best = None
    for b in range(1, N + 1):
        sy, spp = [0.0] * b, [0.0] * b
        for k in range(b):
            lo, hi = k * N / b, (k + 1) * N / b
            for r in range(N):
                share = max(0.0, min(hi, r + 1) - max(lo, r))
                sy[k] += share * ys[r]
                spp[k] += share * ps[r]
        if b > 1 and any(sy[k + 1] < sy[k] - 1e-12 for k in range(b - 1)):
            break
        best = sum(abs(sy[k] - spp[k]) for k in range(b)) / N
    return best


def test_debiased_matches_loop_reference_both_strategies():
    rng = np.random.default_rng(0)
    P = rng.random((40, 3))
    Y = (rng.random((40, 3)) < P ** 1.5).astype(float)
    for strategy in ("quantile", "uniform"):
        ref = _debiased_ref(Y.ravel(), P.ravel(), 7, strategy)
        got = debiased_calibration_error(Y, P, n_bins=7, strategy=strategy, squared=True)
        assert got == pytest.approx(ref, abs=1e-12)
        assert debiased_calibration_error(Y, P, n_bins=7, strategy=strategy) == \
            pytest.approx(np.sqrt(max(ref, 0.0)))


def test_sweep_matches_loop_reference():
    rng = np.random.default_rng(1)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        P = np.round(rng.random((30, 2)), 2)  # ties
        Y = (rng.random((30, 2)) < P).astype(float)
        assert ece_sweep(Y, P) == pytest.approx(_sweep_ref(Y.ravel(), P.ravel()), abs=1e-12)


def test_perfectly_calibrated_draws_score_about_zero_unlike_plug_in_ece():
    rng = np.random.default_rng(2)
    plug, deb, sq = [], [], []
    for _ in range(40):
        P = rng.beta(0.6, 2.0, size=(200, 6))  # emotions-sized: 1,200 pairs
        Y = (rng.random(P.shape) < P).astype(float)
        plug.append(expected_calibration_error(Y, P))
        deb.append(debiased_calibration_error(Y, P))
        sq.append(debiased_calibration_error(Y, P, squared=True))
    assert np.mean(plug) > 0.02  # the plug-in ECE's finite-sample bias
    assert abs(np.mean(sq)) < 2e-4  # unbiased for the squared error 0
    assert np.mean(deb) < 0.5 * np.mean(plug)


@pytest.mark.parametrize("delta", [0.05, 0.1])
def test_known_miscalibration_is_recovered(delta):
    rng = np.random.default_rng(3)
    P = rng.uniform(0.1, 0.8, size=(3000, 4))
    Y = (rng.random(P.shape) < P + delta).astype(float)  # every pair off by delta
    assert debiased_calibration_error(Y, P) == pytest.approx(delta, abs=0.01)
    assert ece_sweep(Y, P) == pytest.approx(delta, abs=0.015)


def test_unretrieved_pairs_count_as_missing_probability():
    rng = np.random.default_rng(4)
    n, L = 60, 5
    P = rng.uniform(0.05, 0.95, size=(n, L))
    Y = (rng.random((n, L)) < P).astype(float)
    keep = rng.random((n, L)) < 0.6
    Psp = sp.csr_matrix((P[keep], np.nonzero(keep)[1], np.r_[0, np.cumsum(keep.sum(1))]),
                        shape=P.shape)
    dense = np.where(keep, P, 0.02)
    for strategy in ("uniform", "quantile"):
        assert debiased_calibration_error(Y, Psp, missing=0.02, strategy=strategy,
                                          squared=True) == pytest.approx(
            debiased_calibration_error(Y, dense, strategy=strategy, squared=True), abs=1e-12)
    assert ece_sweep(Y, Psp, missing=0.02) == pytest.approx(ece_sweep(Y, dense), abs=1e-12)
    # retrieved pairs only
    assert debiased_calibration_error(Y, Psp, squared=True) == pytest.approx(
        _debiased_ref(Y[keep], P[keep], 15), abs=1e-12)


def test_estimator_errors():
    Y = np.zeros((3, 2))
    with pytest.raises(DataFormatError, match="probabilities"):
        debiased_calibration_error(Y, np.full((3, 2), 1.5))
    with pytest.raises(DataFormatError, match="n_bins"):
        debiased_calibration_error(Y, np.zeros((3, 2)), n_bins=0)
    with pytest.raises(DataFormatError, match="strategy"):
        debiased_calibration_error(Y, np.zeros((3, 2)), strategy="kmeans")
    with pytest.raises(DataFormatError, match="missing"):
        ece_sweep(Y, sp.csr_matrix((3, 2)), missing=2.0)
    assert np.isnan(ece_sweep(np.zeros((0, 2)), np.zeros((0, 2))))
