"""``_dcd.solve_into`` (one binary problem in the caller's arrays, no numba runtime) against
``_dcd.dcd_solve``, and the chain / RAkEL weights it gives against the ``train_chunk`` path."""

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.models import _dcd
from labelwise.models._learners import _fit_linear_alone
from labelwise.models.ovr import row_sq_norms


def _problem(seed: int, n: int = 120, d: int = 60):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.08, format="csr", dtype=np.float32, random_state=seed)
    X = sp.csr_matrix(X.toarray() * (np.arange(n) % 9 != 0)[:, None])  # empty rows too
    X.sort_indices()
    y = np.where(rng.random(n) < 0.2, 1.0, -1.0)
    return X, y


@pytest.mark.parametrize("loss", [_dcd.LOSS_SQUARED_HINGE, _dcd.LOSS_LOGISTIC])
@pytest.mark.parametrize("seed", [0, 5, 4294967295])
def test_solve_into_is_dcd_solve_bit_for_bit(loss, seed):
    X, y = _problem(seed % 7)
    n, d = X.shape
    sq = _dcd.row_sq_norms(X.indptr, X.data, 1.0)
    for C in (0.3, 4.0):
        w_ref, alpha_ref, it_ref = _dcd.dcd_solve(X.indptr, X.indices, X.data, sq, y, loss, C,
                                                  1.0, 0.1, 1000, seed, d)
        w = np.zeros(d + 1)
        alpha2 = np.full(2 * n, np.nan)  # scratch: whatever it holds on entry
        index = np.full(n, -1, np.int64)
        state = np.zeros(1, np.uint64)
        it = _dcd.solve_into(X.indptr, X.indices, X.data, sq, y, loss, C, 1.0, 0.1, 1000,
                             seed, w, alpha2, index, np.arange(n, dtype=np.int64), state)
        assert it == it_ref
        assert np.array_equal(w, w_ref)
        alpha = alpha2[:n] if loss == _dcd.LOSS_SQUARED_HINGE else alpha2[0::2]
        assert np.array_equal(alpha, alpha_ref)


def test_fit_linear_alone_on_sparse_features_is_train_chunks_model():
    """The chain's / RAkEL's one-by-one solves: the weights and bias train_chunk keeps
    (float32, prune 0, each label's seed from its position), as float64."""
    rng = np.random.default_rng(2)
    X, _ = _problem(3, n=150, d=80)
    Y = sp.csc_matrix((rng.random((150, 5)) < 0.3).astype(np.float32))
    Y.sort_indices()
    indptr, indices = Y.indptr.astype(np.int64), Y.indices.astype(np.int64)
    for seed, C in ((11, 1.0), (2**32 - 3, 0.25)):
        W, b = _fit_linear_alone(X, indptr, indices, C, seed)
        counts, feat, vals, bias_w, _ = _dcd.train_chunk(
            X.indptr, X.indices, X.data, row_sq_norms(X, 1.0), indptr, indices,
            np.arange(5, dtype=np.int64), _dcd.LOSS_LOGISTIC, C, 1.0, 0.1, 1000, 0.0, seed, 80)
        ref = np.zeros((80, 5))
        ref[feat, np.repeat(np.arange(5), counts)] = vals
        assert np.array_equal(W, ref) and (W != 0).any()
        assert np.array_equal(b, bias_w.astype(np.float32).astype(np.float64))
