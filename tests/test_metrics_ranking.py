"""P@k, R@k, nDCG@k, PSP@k, PSnDCG@k and propensities: hand-computed values, slow loop
references of the pyxclib/napkinXC formulas, scikit-learn's ndcg_score where it agrees."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score

from labelwise.errors import DataFormatError
from labelwise.metrics import (
    PROPENSITY_PRESETS,
    LabelSets,
    inverse_propensities,
    ndcg_at_k,
    precision_at_k,
    propensities,
    psndcg_at_k,
    psprecision_at_k,
    ranking_metrics,
    recall_at_k,
)

CHECKED_METRICS = {"p@k", "r@k", "ndcg@k", "psp@k", "psndcg@k"}


# --- slow references ---------------------------------------------------------------------

def ref_rank(row_scores: dict[int, float], k: int) -> list[int]:
    """Labels by score descending, ties by smaller id; only the given (retrieved) labels."""
    return sorted(row_scores, key=lambda lab: (-row_scores[lab], lab))[:k]


def rows_of_scores(S) -> list[dict[int, float]]:
    if sp.issparse(S):
        S = sp.csr_matrix(S)
        return [dict(zip(S.indices[S.indptr[i]:S.indptr[i + 1]].tolist(),
                         S.data[S.indptr[i]:S.indptr[i + 1]].tolist()))
                for i in range(S.shape[0])]
    return [dict(enumerate(row.tolist())) for row in np.asarray(S)]


def ref_ranking(Y, S, k, inv_w=None):
    """pyxclib formulas written as loops; rows without positives: 0 for R and nDCG."""
    Y = np.asarray(Y)
    rows = rows_of_scores(S)
    p = r = nd = 0.0
    ps_num = ps_den = psn_num = psn_den = 0.0
    for i, rs in enumerate(rows):
        true = {j for j in range(Y.shape[1]) if Y[i, j]}
        ranked = ref_rank(rs, k)
        hits = [1.0 if lab in true else 0.0 for lab in ranked]
        p += sum(hits) / k
        if true:
            r += sum(hits) / len(true)
            dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
            idcg = sum(1 / math.log2(j + 2) for j in range(min(k, len(true))))
            nd += dcg / idcg
            if inv_w is not None:
                wh = [inv_w[lab] * h for lab, h in zip(ranked, hits)]
                best = sorted((inv_w[lab] for lab in true), reverse=True)[:k]
                ps_num += sum(wh)
                ps_den += sum(best)
                psn_num += sum(w / math.log2(j + 2) for j, w in enumerate(wh)) / idcg
                psn_den += sum(w / math.log2(j + 2) for j, w in enumerate(best)) / idcg
    n = Y.shape[0]
    out = {"p": p / n, "r": r / n, "ndcg": nd / n}
    if inv_w is not None:
        out["psp"] = ps_num / ps_den
        out["psndcg"] = psn_num / psn_den
    return out


def random_case(rng, n=40, L=15, density=0.2, ties=False):
    Y = (rng.random((n, L)) < density).astype(np.int64)
    S = rng.random((n, L))
    if ties:
        S = np.round(S * 4) / 4
    return Y, S


def topk_csr(S, k):
    """Keep each row's k best (by the package tie rule) as a CSR matrix."""
    n, L = S.shape
    rows, cols, vals = [], [], []
    for i, rs in enumerate(rows_of_scores(S)):
        for lab in ref_rank(rs, k):
            rows.append(i)
            cols.append(lab)
            vals.append(rs[lab])
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, L))


# --- hand-computed -------------------------------------------------------------------------

def test_hand_computed_tiny_case():
    Y = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    S = np.array([[0.9, 0.8, 0.1, 0.0], [0.5, 0.4, 0.3, 0.2], [0.1, 0.2, 0.3, 0.4]])
    # row 0 ranks 0,1,2,3 -> hits 1,0,1,0; row 1 ranks 0,1,... -> hits 0,1; row 2 no positives
    assert precision_at_k(Y, S, k=1) == pytest.approx((1 + 0 + 0) / 3)
    assert precision_at_k(Y, S, k=2) == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert precision_at_k(Y, S, k=3) == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert recall_at_k(Y, S, k=1) == pytest.approx((0.5 + 0 + 0) / 3)
    assert recall_at_k(Y, S, k=2) == pytest.approx((0.5 + 1 + 0) / 3)
    assert recall_at_k(Y, S, k=2, zero_division=np.nan) == pytest.approx((0.5 + 1) / 2)
    # nDCG@3 row 0: (1 + 1/log2(4)) / (1 + 1/log2(3)); row 1: (1/log2(3)) / 1
    n0 = (1 + 0.5) / (1 + 1 / math.log2(3))
    n1 = 1 / math.log2(3)
    assert ndcg_at_k(Y, S, k=3) == pytest.approx((n0 + n1 + 0) / 3)
    assert ndcg_at_k(Y, S, k=3, zero_division=1.0) == pytest.approx((n0 + n1 + 1) / 3)


def test_propensities_hand_computed_and_presets():
    Y = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 1, 0]]))
    N, counts = 4, np.array([3.0, 2.0, 0.0])
    for preset, (A, B) in PROPENSITY_PRESETS.items():
        C = (math.log(N) - 1) * (B + 1) ** A
        expected = 1 / (1 + C * np.exp(-A * np.log(counts + B)))
        np.testing.assert_allclose(propensities(Y, preset), expected, rtol=1e-13)
        np.testing.assert_allclose(inverse_propensities(Y, preset), 1 / expected, rtol=1e-13)
    assert PROPENSITY_PRESETS == {"default": (0.55, 1.5), "amazon": (0.6, 2.6),
                                  "wikipedia": (0.5, 0.4)}
    np.testing.assert_allclose(propensities(Y, A=0.6, B=2.6), propensities(Y, "amazon"))
    with pytest.raises(DataFormatError, match="preset"):
        propensities(Y, "imdb")
    with pytest.raises(DataFormatError, match="B > 0"):
        propensities(Y, B=0.0)


def test_psp_hand_computed():
    # weights 1/p: label 0 -> 1, label 1 -> 3, label 2 -> 2
    p = np.array([1.0, 1 / 3, 0.5])
    Y = np.array([[1, 1, 0], [0, 0, 1]])
    S = np.array([[0.9, 0.1, 0.5], [0.2, 0.1, 0.3]])
    # k=1: row 0 top = 0 (hit, w 1), best = 3; row 1 top = 2 (hit, w 2), best 2 -> 3/5
    assert psprecision_at_k(Y, S, k=1, propensity=p) == pytest.approx(3 / 5)
    # k=2: row 0 top 0,2 -> 1; best 3+1 = 4; row 1 top 2,0 -> 2; best 2 -> 3/6
    assert psprecision_at_k(Y, S, k=2, propensity=p) == pytest.approx(3 / 6)
    # PSnDCG@2: row 0 psdcg = 1, best = 3 + 1/log2(3), idcg = 1 + 1/log2(3);
    # row 1 psdcg = 2, best = 2, idcg = 1
    i0 = 1 + 1 / math.log2(3)
    num = 1 / i0 + 2
    den = (3 + 1 / math.log2(3)) / i0 + 2
    assert psndcg_at_k(Y, S, k=2, propensity=p) == pytest.approx(num / den)


def test_tie_rule_smaller_label_id_first():
    Y = np.array([[0, 1, 1, 0]])
    S = np.array([[0.5, 0.5, 0.5, 0.1]])
    assert precision_at_k(Y, S, k=1) == 0.0  # label 0 wins the tie
    assert precision_at_k(Y, S, k=2) == 0.5
    St = sp.csr_matrix(([0.5, 0.5, 0.5], [2, 0, 1], [0, 3]), shape=(1, 4))  # unsorted
    assert precision_at_k(Y, St, k=1) == 0.0


# --- random cases against the slow references ----------------------------------------------

@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_dense_and_topk_against_loop_reference(seed, ties):
    rng = np.random.default_rng(seed)
    Y, S = random_case(rng, ties=ties)
    Y[0] = 0  # a row without positives
    p = propensities(Y, "default")
    inv = 1 / p
    ks = (1, 2, 3, 5, 8)
    got = ranking_metrics(Y, S, k=ks, propensity=p)
    top = topk_csr(S, 6)
    got_top = ranking_metrics(sp.csr_matrix(Y), top, k=ks, propensity=p)
    for k in ks:
        ref = ref_ranking(Y, S, k, inv)
        ref_top = ref_ranking(Y, top, k, inv)
        for name in ("p", "r", "ndcg", "psp", "psndcg"):
            assert got[f"{name}@{k}"] == pytest.approx(ref[name], abs=1e-12)
            assert got_top[f"{name}@{k}"] == pytest.approx(ref_top[name], abs=1e-12)
            if k <= 6:  # the stored top 6 hold everything the top k needs
                assert got_top[f"{name}@{k}"] == pytest.approx(got[f"{name}@{k}"], abs=1e-12)


def test_dense_equals_topk_when_k_covers_all_labels():
    rng = np.random.default_rng(7)
    Y, S = random_case(rng, n=30, L=6, ties=True)
    dense = ranking_metrics(Y, S, k=(1, 3, 6), propensity=propensities(Y))
    # every entry stored, including any exact zero
    T = sp.csr_matrix((S.ravel(), np.tile(np.arange(6), 30), np.arange(0, 181, 6)),
                      shape=S.shape)
    full = ranking_metrics(Y, T, k=(1, 3, 6), propensity=propensities(Y))
    assert full == pytest.approx(dense, abs=1e-12)


def test_ndcg_agrees_with_sklearn_without_ties():
    rng = np.random.default_rng(3)
    Y, S = random_case(rng, n=60, L=20)
    Y[5] = 0
    for k in (1, 3, 5, 20):
        assert ndcg_at_k(Y, S, k=k) == pytest.approx(ndcg_score(Y, S, k=k), abs=1e-12)


def test_short_topk_rows_and_empty_rows():
    Y = np.array([[1, 1, 0], [0, 1, 0]])
    S = sp.csr_matrix(([0.3], [1], [0, 1, 1]), shape=(2, 3))  # row 1 retrieves nothing
    assert precision_at_k(Y, S, k=3) == pytest.approx((1 / 3 + 0) / 2)
    assert recall_at_k(Y, S, k=3) == pytest.approx((0.5 + 0) / 2)


def test_refuses_sets_and_bad_arguments():
    Y = np.eye(3, dtype=int)
    with pytest.raises(DataFormatError, match="LabelSets"):
        precision_at_k(Y, LabelSets(Y), k=1)
    with pytest.raises(DataFormatError, match="k must be a positive integer"):
        precision_at_k(Y, np.eye(3), k=0)
    with pytest.raises(DataFormatError, match="propensity"):
        psprecision_at_k(Y, np.eye(3), k=1, propensity=np.ones(2))
    with pytest.raises(DataFormatError, match="shape"):
        precision_at_k(Y, np.eye(4), k=1)
    with pytest.raises(DataFormatError, match="zero_division"):
        recall_at_k(Y, np.eye(3), k=1, zero_division=0.5)


def test_psp_without_any_positive_is_zero_division():
    Y = np.zeros((2, 3), dtype=int)
    p = np.full(3, 0.5)
    assert psprecision_at_k(Y, np.ones((2, 3)), k=1, propensity=p) == 0.0
    assert math.isnan(psprecision_at_k(Y, np.ones((2, 3)), k=1, propensity=p,
                                       zero_division=np.nan))


def test_propensities_need_three_rows():
    # the model's C = (log N - 1)(B + 1)^A is negative for N < e: with 2 rows it gave p > 1
    # (refused by PSP@k), with 1 row negative inverse propensities
    for n in (1, 2):
        Y = sp.csr_matrix(np.eye(n, 3))
        with pytest.raises(DataFormatError, match=f"has {n} row.*at least 3.*N < e"):
            propensities(Y)
        with pytest.raises(DataFormatError, match="at least 3"):
            inverse_propensities(Y)
    p = propensities(sp.csr_matrix(np.eye(3)))  # N = 3: C > 0, every p in (0, 1)
    assert np.all((p > 0) & (p < 1))
