"""Threshold-free metrics: scikit-learn agreement (ties included), top-k scores against dense
scores with the unretrieved labels pushed below every stored score, hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.errors import DataFormatError
from labelwise.metrics import (
    LabelSets,
    average_precision,
    coverage_error,
    label_ranking_average_precision,
    label_ranking_loss,
    label_scores,
    mean_average_precision,
    micro_average_precision,
    one_error,
    precision_at_k,
    roc_auc,
    sample_scores,
)
from labelwise.metrics._kernels import contiguous_run_stats, grouped_run_stats

CHECKED_METRICS = {"map", "micro_ap", "macro_auroc", "micro_auroc", "lrap", "coverage_error",
                   "label_ranking_loss", "one_error"}


def random_case(seed, n=60, L=9, ties=True):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < 0.3).astype(int)
    S = rng.random((n, L))
    if ties:
        S = np.round(S * 5) / 5
    Y[:, 0] = 0  # no positives
    Y[:, 1] = 1  # no negatives
    Y[2] = 0  # a sample without labels
    Y[3] = 1  # a sample with every label
    return Y, S


def sklearn_reference(Y, S):
    L = Y.shape[1]
    ap = np.full(L, np.nan)
    auc = np.full(L, np.nan)
    for j in range(L):
        if Y[:, j].any():
            ap[j] = skm.average_precision_score(Y[:, j], S[:, j])
        if 0 < Y[:, j].sum() < Y.shape[0]:
            auc[j] = skm.roc_auc_score(Y[:, j], S[:, j])
    return {
        "ap": ap, "auroc": auc, "map": np.nanmean(ap), "macro_auroc": np.nanmean(auc),
        "micro_auroc": skm.roc_auc_score(Y.ravel(), S.ravel()),
        "micro_ap": skm.average_precision_score(Y, S, average="micro"),
        "lrap": skm.label_ranking_average_precision_score(Y, S),
        "coverage_error": skm.coverage_error(Y, S),
        "label_ranking_loss": skm.label_ranking_loss(Y, S),
    }


def check_against(Y_in, S_in, ref):
    res = label_scores(Y_in, S_in)
    np.testing.assert_allclose(res["ap"], ref["ap"], rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(res["auroc"], ref["auroc"], rtol=0, atol=1e-12, equal_nan=True)
    assert res["map"] == pytest.approx(ref["map"], abs=1e-12)
    assert res["macro_auroc"] == pytest.approx(ref["macro_auroc"], abs=1e-12)
    assert roc_auc(Y_in, S_in, average="micro") == pytest.approx(ref["micro_auroc"], abs=1e-12)
    assert micro_average_precision(Y_in, S_in) == pytest.approx(ref["micro_ap"], abs=1e-12)
    got = sample_scores(Y_in, S_in, chunk_size=7)
    for key in ("lrap", "coverage_error", "label_ranking_loss"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12), key


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_dense_matches_sklearn(seed, ties):
    Y, S = random_case(seed, ties=ties)
    check_against(sp.csr_matrix(Y), S, sklearn_reference(Y, S))
    assert average_precision(Y, S) == pytest.approx(sklearn_reference(Y, S)["ap"],
                                                     nan_ok=True, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_topk_equals_dense_with_unretrieved_below_all(seed):
    """Unstored = -inf, tied: the same as a dense matrix where they share a score lower
    than every stored one, which scikit-learn can evaluate."""
    Y, S = random_case(seed)
    rng = np.random.default_rng(100 + seed)
    keep = rng.random(S.shape) < 0.5
    keep[4] = False  # a row with nothing retrieved
    keep[5] = True  # a row with everything retrieved
    T = sp.csr_matrix((S[keep], np.nonzero(keep)), shape=S.shape)
    D = np.where(keep, S, -1.0)
    check_against(Y, T, sklearn_reference(Y, D))


@pytest.mark.parametrize("seed", range(3))
def test_topk_float32_keyed_path(seed):
    """float32 top-k scores take the packed-key path; -0.0 and 0.0 must tie."""
    Y, S = random_case(seed)
    S = (S - 0.4).astype(np.float32)  # negative scores and exact zeros
    zeros = S == 0
    S[zeros] = np.where(np.arange(zeros.sum()) % 2, np.float32(-0.0), np.float32(0.0))
    rng = np.random.default_rng(200 + seed)
    keep = rng.random(S.shape) < 0.6
    keep[4] = False
    T = sp.csr_matrix((S[keep], np.nonzero(keep)), shape=S.shape)
    assert T.dtype == np.float32
    z = T.data[T.data == 0]
    assert np.signbit(z).any() and (~np.signbit(z)).any()
    D = np.where(keep, S.astype(np.float64), -5.0)
    check_against(Y, T, sklearn_reference(Y, D))


def test_hand_computed():
    Y = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    S = np.array([[0.2, 0.9, 0.1], [0.5, 0.5, 0.8], [0.3, 0.2, 0.1]])
    # label 0: scores .2(+) .5 .3 -> ranked .5, .3, .2(+): AP = 1/3; AUROC = 0
    # label 1: .9, .5(+), .2 -> AP = 1/2; AUROC = 1/2
    # label 2: .1, .8(+), .1 -> AP = 1; AUROC = 1
    np.testing.assert_allclose(average_precision(Y, S), [1 / 3, 1 / 2, 1.0])
    np.testing.assert_allclose(roc_auc(Y, S, average=None), [0.0, 0.5, 1.0])
    # pooled cells, descending: .9(-) .8(+) .5(-,+) .3(-) .2(+,-) .1(-,-,-); 3 positives:
    # recall 1/3 at .8 (precision 1/2), 2/3 at .5 (2/4), 3/3 at .2 (3/7)
    assert micro_average_precision(Y, S) == pytest.approx((1 / 2 + 2 / 4 + 3 / 7) / 3)
    assert mean_average_precision(Y, S) == pytest.approx((1 / 3 + 1 / 2 + 1) / 3)
    # row 0: true label 0 at rank 2 of 3 -> LRAP 1/2, coverage 2, loss 1/2 (0.9 above)
    # row 1: true 1 (0.5, tied with false 0) and 2 (0.8): LRAP (1/1 + 2/3) / 2,
    #        coverage 3, loss: pair (1, 0) tied counts -> 1/2
    # row 2: no labels: LRAP 1, coverage 0, loss 0
    assert label_ranking_average_precision(Y, S) == pytest.approx((0.5 + 5 / 6 + 1) / 3)
    assert coverage_error(Y, S) == pytest.approx((2 + 3 + 0) / 3)
    assert label_ranking_loss(Y, S) == pytest.approx((0.5 + 0.5 + 0) / 3)
    # one-error: row 0 top = 1 (wrong), row 1 top = 2 (right), row 2 no labels (error)
    assert one_error(Y, S) == pytest.approx(2 / 3)
    assert one_error(Y, S) == pytest.approx(1 - precision_at_k(Y, S, k=1))


def test_one_error_tie_rule_and_empty_topk_row():
    Y = np.array([[0, 1], [1, 0]])
    S = sp.csr_matrix(([0.7, 0.7], [0, 1], [0, 2, 2]), shape=(2, 2))
    assert one_error(Y, S) == 1.0  # row 0: tie -> label 0 (wrong); row 1: nothing retrieved


def test_undefined_values_are_nan_and_sets_refused():
    Y = np.zeros((3, 2), dtype=int)
    S = np.ones((3, 2))
    assert math.isnan(mean_average_precision(Y, S))
    assert math.isnan(roc_auc(Y, S))
    assert math.isnan(roc_auc(Y, S, average="micro"))
    with pytest.raises(DataFormatError, match="LabelSets"):
        roc_auc(Y, LabelSets(Y))
    with pytest.raises(DataFormatError, match="average"):
        roc_auc(Y, S, average="weighted")
    with pytest.raises(DataFormatError, match="NaN"):
        roc_auc(np.eye(2), np.array([[np.nan, 1.0], [0.0, 1.0]]))


def ref_run_stats(scores, pos, block_n, block_pos):
    """Pairwise loops over all items (block items score -inf)."""
    s = list(scores) + [-np.inf] * block_n
    y = list(pos) + [True] * block_pos + [False] * (block_n - block_pos)
    P = [a for a, b in zip(s, y) if b]
    N = [a for a, b in zip(s, y) if not b]
    ap = sum(sum(1 for q in P if q >= p) / sum(1 for q in s if q >= p) for p in P)
    auc = sum((p > q) + 0.5 * (p == q) for p in P for q in N)
    rank = sum(1 for p in P for q in N if q >= p)
    cov = sum(1 for q in s if q >= min(P)) if P else 0
    return ap, auc, rank, cov, len(P), len(N)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=14),
       st.integers(0, 4), st.integers(0, 4))
def test_run_stats_kernel_against_pairwise_loops(items, block_n, block_pos):
    block_pos = min(block_pos, block_n)
    scores = np.array([float(a) for a, _ in items], dtype=np.float64)
    pos = np.array([b for _, b in items], dtype=bool)
    got = grouped_run_stats(np.array([0, len(items)], dtype=np.int64),
                            np.arange(len(items), dtype=np.int64), scores, pos,
                            np.array([block_n], dtype=np.int64),
                            np.array([block_pos], dtype=np.int64))[0]
    ref = ref_run_stats(scores, pos, block_n, block_pos)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # the same group as one CSR row, and twice as long (the sort path for > 32 items)
    got = contiguous_run_stats(np.array([0, len(items)], dtype=np.int64), scores, pos,
                               np.array([block_n], dtype=np.int64),
                               np.array([block_pos], dtype=np.int64))[0]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    s3, p3 = np.tile(scores, 3), np.tile(pos, 3)
    got = contiguous_run_stats(np.array([0, s3.size], dtype=np.int64), s3, p3,
                               np.array([block_n], dtype=np.int64),
                               np.array([block_pos], dtype=np.int64))[0]
    np.testing.assert_allclose(got, ref_run_stats(s3, p3, block_n, block_pos),
                               rtol=1e-12, atol=1e-12)
