"""Coverage at a target precision and the precision-coverage curve."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.errors import DataFormatError
from labelwise.metrics import LabelSets, coverage_at_precision, precision_coverage_curve

CHECKED_METRICS = {"coverage@p", "label_coverage@p"}


def ref_curve(Y, S, mode):
    """Loop over every distinct score t: accept >= t, count by hand. S: dense, NaN = unstored."""
    n, L = S.shape
    if mode == "top1":
        items = []
        for i in range(n):
            retrieved = [j for j in range(L) if not np.isnan(S[i, j])]
            if retrieved:
                j = sorted(retrieved, key=lambda j: (-S[i, j], j))[0]
                items.append((S[i, j], bool(Y[i, j])))
        out = []
        for t in sorted({s for s, _ in items}, reverse=True):
            acc = [c for s, c in items if s >= t]
            out.append((t, len(acc) / n, sum(acc) / len(acc)))
        return out
    pairs = [(S[i, j], bool(Y[i, j]), i) for i in range(n) for j in range(L)
             if not np.isnan(S[i, j])]
    out = []
    for t in sorted({s for s, _, _ in pairs}, reverse=True):
        acc = [(c, i) for s, c, i in pairs if s >= t]
        out.append((t, len({i for _, i in acc}) / n, sum(c for c, _ in acc) / len(acc)))
    return out


def test_hand_computed_top1():
    Y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    S = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    # top-1: (0.9, right), (0.8, wrong), (0.7, wrong), (0.6, right)
    thr, cov, prec = precision_coverage_curve(Y, S, mode="top1")
    np.testing.assert_allclose(thr, [0.9, 0.8, 0.7, 0.6])
    np.testing.assert_allclose(cov, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(prec, [1.0, 0.5, 1 / 3, 0.5])
    r = coverage_at_precision(Y, S, target=0.9)
    assert (r.coverage, r.precision, r.threshold, r.n_covered) == (0.25, 1.0, 0.9, 1)
    r = coverage_at_precision(Y, S, target=0.5)
    assert (r.coverage, r.precision, r.threshold) == (1.0, 0.5, 0.6)
    r = coverage_at_precision(Y, S, target=1.0)
    assert r.coverage == 0.25
    r = coverage_at_precision(np.zeros((4, 2), dtype=int), S, target=0.1)
    assert r.coverage == 0.0 and r.threshold is None and math.isnan(r.precision)
    assert r.to_dict()["threshold"] is None


def test_hand_computed_labels_mode():
    Y = np.array([[1, 1], [0, 1]])
    S = np.array([[0.9, 0.5], [0.7, 0.5]])
    # t=.9: 1 pair right, items {0}; t=.7: 2 pairs 1 right, items {0,1};
    # t=.5: 4 pairs 3 right, items {0,1}
    thr, cov, prec = precision_coverage_curve(Y, S, mode="labels")
    np.testing.assert_allclose(thr, [0.9, 0.7, 0.5])
    np.testing.assert_allclose(cov, [0.5, 1.0, 1.0])
    np.testing.assert_allclose(prec, [1.0, 0.5, 0.75])
    r = coverage_at_precision(Y, S, target=0.7, mode="labels")
    assert (r.coverage, r.precision, r.threshold) == (1.0, 0.75, 0.5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mode", ["top1", "labels"])
@pytest.mark.parametrize("topk", [False, True])
def test_against_loop_reference(seed, mode, topk):
    rng = np.random.default_rng(seed)
    n, L = 25, 6
    Y = (rng.random((n, L)) < 0.3).astype(int)
    S = np.round(rng.random((n, L)) * 8) / 8
    Sref = S.copy()
    S_in = S
    if topk:
        keep = rng.random((n, L)) < 0.4
        keep[0] = False
        Sref = np.where(keep, S, np.nan)
        S_in = sp.csr_matrix((S[keep], np.nonzero(keep)), shape=S.shape)
    thr, cov, prec = precision_coverage_curve(Y, S_in, mode=mode)
    ref = ref_curve(Y, Sref, mode)
    np.testing.assert_allclose(thr, [t for t, _, _ in ref], atol=1e-12)
    np.testing.assert_allclose(cov, [c for _, c, _ in ref], atol=1e-12)
    np.testing.assert_allclose(prec, [p for _, _, p in ref], atol=1e-12)
    for target in (0.0, 0.3, 0.6, 0.9):
        r = coverage_at_precision(Y, S_in, target=target, mode=mode)
        ok = [(c, -t, p) for t, c, p in ref if p >= target]
        if ok:
            c, t, p = max(ok)
            assert (r.coverage, r.threshold, r.precision) == pytest.approx((c, -t, p))
        else:
            assert r.coverage == 0.0 and r.threshold is None


def test_refusals():
    Y = np.eye(2, dtype=int)
    with pytest.raises(DataFormatError, match="target"):
        coverage_at_precision(Y, np.eye(2), target=1.5)
    with pytest.raises(DataFormatError, match="mode"):
        coverage_at_precision(Y, np.eye(2), mode="rows")
    with pytest.raises(DataFormatError, match="mode"):
        precision_coverage_curve(Y, np.eye(2), mode="rows")
    with pytest.raises(DataFormatError, match="LabelSets"):
        coverage_at_precision(Y, LabelSets(Y))
