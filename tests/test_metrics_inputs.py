"""Input normalisation and the top-k kernels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.errors import DataFormatError
from labelwise.metrics import LabelSets, precision_at_k
from labelwise.metrics._inputs import as_scores, as_truth, ranked_labels


def ref_topk(S: np.ndarray, k: int, stored: np.ndarray | None = None) -> np.ndarray:
    out = np.full((S.shape[0], k), -1, dtype=np.int64)
    for i in range(S.shape[0]):
        labs = [j for j in range(S.shape[1]) if stored is None or stored[i, j]]
        labs = sorted(labs, key=lambda j: (-S[i, j], j))[:k]
        out[i, :len(labs)] = labs
    return out


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 6), st.integers(1, 8), st.integers(1, 10), st.integers(0, 2**31 - 1))
def test_topk_kernels_match_reference(n, L, k, seed):
    rng = np.random.default_rng(seed)
    S = rng.integers(-2, 3, size=(n, L)).astype(np.float64)  # many ties, zeros
    stored = rng.random((n, L)) < 0.6
    np.testing.assert_array_equal(ranked_labels(as_scores(S), k, chunk_size=2), ref_topk(S, k))
    T = sp.csr_matrix((S[stored], np.nonzero(stored)), shape=S.shape)
    np.testing.assert_array_equal(ranked_labels(as_scores(T), k), ref_topk(S, k, stored))
    np.testing.assert_array_equal(ranked_labels(as_scores(S.astype(np.float32)), k),
                                  ref_topk(S, k))


def test_large_k_path_matches_reference():
    rng = np.random.default_rng(5)
    S = rng.integers(0, 6, size=(7, 90)).astype(np.float64)
    for k in (64, 65, 90, 100):
        np.testing.assert_array_equal(ranked_labels(as_scores(S), k), ref_topk(S, k))
        np.testing.assert_array_equal(ranked_labels(as_scores(sp.csr_matrix(S)), k),
                                      ref_topk(S, k, S != 0))


def test_stored_zero_is_retrieved():
    Y = np.array([[0, 1, 0]])
    T = sp.csr_matrix((np.array([0.0]), np.array([1]), np.array([0, 1])), shape=(1, 3))
    assert T.nnz == 1
    assert precision_at_k(Y, T, k=1) == 1.0


def test_truth_validation():
    M = as_truth([[0, 2], [1]])
    assert M.shape == (2, 3) and M.indices.dtype in (np.int32, np.int64)
    with pytest.raises(DataFormatError, match="Y_true: .*only 0 and 1"):
        as_truth(np.array([[0, 2]]))
    with pytest.raises(DataFormatError, match="Y_true"):
        as_truth(np.zeros(3))


def test_score_validation():
    with pytest.raises(DataFormatError, match="scores: row 1: score is NaN"):
        as_scores(np.array([[0.0], [np.nan]]))
    bad = sp.csr_matrix((np.array([1.0, -np.inf]), np.array([0, 1]), np.array([0, 1, 2])),
                        shape=(2, 2))
    with pytest.raises(DataFormatError, match="row 1: stored score is NaN or -inf"):
        as_scores(bad)
    dup = sp.csr_matrix((np.array([1.0, 2.0]), np.array([1, 1]), np.array([0, 0, 2])),
                        shape=(2, 2))
    with pytest.raises(DataFormatError, match="row 1 stores a label twice"):
        as_scores(dup)
    coo = sp.coo_matrix((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))),
                        shape=(1, 2))
    with pytest.raises(DataFormatError, match="stored twice"):
        as_scores(coo)
    with pytest.raises(DataFormatError, match="2-D"):
        as_scores(np.zeros(3))
    with pytest.raises(DataFormatError, match="real numbers"):
        as_scores(np.array([["a"]]))
    with pytest.raises(DataFormatError, match="shape"):
        as_scores(np.zeros((2, 2)), (2, 3))
    assert as_scores(np.array([[1, 0]])).dense.dtype == np.float64
    assert as_scores(np.array([[1, -np.inf]])).kind == "dense"  # -inf allowed when dense


def test_label_sets_constructors():
    S = np.array([[0.2, 0.9, 0.5], [0.5, 0.5, 0.1]])
    np.testing.assert_array_equal(LabelSets.from_threshold(S, 0.5).Y.toarray(),
                                  [[0, 1, 1], [1, 1, 0]])
    np.testing.assert_array_equal(LabelSets.from_top_k(S, 1).Y.toarray(), [[0, 1, 0], [1, 0, 0]])
    T = sp.csr_matrix(np.array([[0, 0.9, 0.5], [0, 0, 0.1]]))
    np.testing.assert_array_equal(LabelSets.from_threshold(T, 0.0).Y.toarray(),
                                  [[0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(LabelSets.from_top_k(T, 2).Y.toarray(), [[0, 1, 1], [0, 0, 1]])
    sets = LabelSets([[1], [0, 2]], n_labels=4)
    assert sets.shape == (2, 4) and "n_predicted=3" in repr(sets)
    assert LabelSets(sets).Y is sets.Y
    with pytest.raises(DataFormatError, match="NaN"):
        LabelSets.from_threshold(S, float("nan"))
