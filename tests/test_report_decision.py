"""Threshold curves and reliability data of the report, against brute force; PNG figures."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.calibration import reliability_diagram
from labelwise.errors import DataFormatError
from labelwise.report.decision_plots import (
    reliability_data,
    reliability_png,
    threshold_curve,
    threshold_curves_png,
)


def _brute(Y: np.ndarray, S: np.ndarray, stored: np.ndarray, t: float):
    """micro-F1, macro-F1, coverage when accepting stored pairs with score >= t."""
    A = stored & (S >= t)
    tp = (A & (Y > 0)).sum()
    den = A.sum() + Y.sum()
    micro = 2 * tp / den if den else 0.0
    per = []
    for j in range(Y.shape[1]):
        d = A[:, j].sum() + Y[:, j].sum()
        per.append(2 * (A[:, j] & (Y[:, j] > 0)).sum() / d if d else 0.0)
    return micro, float(np.mean(per)), A.any(axis=1).mean()


def test_hand_computed_curve():
    Y = np.array([[1, 0], [0, 1], [1, 1]])
    P = np.array([[0.9, 0.2], [0.4, 0.6], [0.9, 0.1]])
    c = threshold_curve(Y, P, max_points=None)
    # cuts after 0.9 (two pairs), 0.6, 0.4, 0.2, 0.1: 5 cuts + "accept nothing"
    assert c.thresholds[0] == np.inf and c.coverage[0] == 0.0 and c.micro_f1[0] == 0.0
    np.testing.assert_allclose(c.thresholds[1:], [0.75, 0.5, 0.3, 0.15, 0.1])
    # at 0.75: accepted (0,0), (2,0): tp 2, 4 true pairs -> 4/6; coverage 2/3
    assert c.micro_f1[1] == pytest.approx(4 / 6)
    assert c.coverage[1] == pytest.approx(2 / 3)
    # label 0: 2*2/(2+2) = 1; label 1: 0 -> macro 0.5
    assert c.macro_f1[1] == pytest.approx(0.5)
    assert c.coverage[-1] == 1.0


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_curve_matches_brute_force(sparse, seed):
    rng = np.random.default_rng(seed)
    n, L = 30, 7
    Y = (rng.random((n, L)) < 0.3).astype(np.int64)
    S = np.round(rng.random((n, L)), 1)  # ties on purpose
    stored = np.ones((n, L), bool)
    P = S
    if sparse:
        stored = rng.random((n, L)) < 0.5
        stored[0] = False  # a row with nothing retrieved is never covered
        P = sp.csr_matrix((S[stored], np.nonzero(stored)), shape=(n, L))
    c = threshold_curve(Y, P, max_points=None)
    vals = np.unique(S[stored])
    assert c.thresholds.size == vals.size + 1
    assert np.all(np.diff(c.thresholds) < 0)
    for t, mi, ma, cov in zip(c.thresholds, c.micro_f1, c.macro_f1, c.coverage, strict=True):
        bm, bM, bc = _brute(Y, S, stored, t)
        assert mi == pytest.approx(bm) and ma == pytest.approx(bM) and cov == pytest.approx(bc)


def test_max_points_subsamples_and_keeps_ends():
    rng = np.random.default_rng(0)
    Y = (rng.random((200, 20)) < 0.2).astype(np.int64)
    P = rng.random((200, 20))
    full = threshold_curve(Y, P, max_points=None)
    c = threshold_curve(Y, P, max_points=50)
    assert c.thresholds.size <= 51
    assert c.thresholds[0] == np.inf and c.thresholds[-1] == full.thresholds[-1]
    idx = np.searchsorted(-full.thresholds, -c.thresholds)
    np.testing.assert_allclose(c.micro_f1, full.micro_f1[idx])
    np.testing.assert_allclose(c.coverage, full.coverage[idx])
    d = c.to_dict()
    assert d["thresholds"][0] is None and len(d["coverage"]) == c.coverage.size


def test_bad_inputs():
    with pytest.raises(DataFormatError, match="max_points"):
        threshold_curve(np.eye(2), np.eye(2), max_points=1)
    with pytest.raises(DataFormatError, match="shape"):
        threshold_curve(np.eye(3), np.eye(2))
    with pytest.raises(DataFormatError, match="finite"):
        threshold_curve(np.eye(2), np.array([[np.nan, 0.0], [0.0, 1.0]]))


def test_reliability_data_is_the_calibration_diagram():
    rng = np.random.default_rng(1)
    P = rng.random((100, 5))
    Y = (rng.random((100, 5)) < P).astype(np.int64)
    a, b = reliability_data(Y, P, n_bins=10), reliability_diagram(Y, P, n_bins=10)
    np.testing.assert_array_equal(a.count, b.count)
    assert a.ece == b.ece


def test_pngs():
    rng = np.random.default_rng(2)
    P = rng.random((60, 4))
    Y = (rng.random((60, 4)) < P).astype(np.int64)
    png = threshold_curves_png(threshold_curve(Y, P), chosen={"tuned": 0.4})
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    png = reliability_png(reliability_data(Y, P))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # all-empty bins but one still draws
    png = reliability_png(reliability_data(np.ones((3, 1)), np.full((3, 1), 0.5)))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
