"""labelwise._csr.trusted_csr: the matrix scipy's validated constructor gives, and scipy's
constructor itself when this scipy's csr_matrix is not what the direct path expects."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise import _csr


def _arrays(seed: int, n: int, d: int, index=np.int64):
    rng = np.random.default_rng(seed)
    rows = [np.sort(rng.choice(d, size=int(rng.integers(0, min(d, 6) + 1)), replace=False))
            for _ in range(n)]
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(index)
    indices = (np.concatenate(rows) if rows else np.zeros(0)).astype(index)
    data = rng.standard_normal(len(indices)).astype(np.float32)
    return data, indices, indptr


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("n, d, index", [(5, 9, np.int64), (1, 736, np.int32), (0, 4, np.int64),
                                         (7, 1, np.int32)])
def test_trusted_csr_equals_the_validated_matrix(monkeypatch, direct, n, d, index):
    if not direct:  # a scipy whose csr_matrix is not what the direct path expects
        monkeypatch.setattr(_csr, "_direct_maxprint", lambda: None)
    else:
        assert _csr._direct_maxprint() is not None  # this scipy takes the direct path
    data, indices, indptr = _arrays(n + d, n, d, index)
    want = sp.csr_matrix((data, indices, indptr), shape=(n, d))
    got = _csr.trusted_csr(data, indices, indptr, (n, d), sorted_indices=True)
    assert not data.size or np.shares_memory(got.data, data)  # not copied
    assert type(got) is sp.csr_matrix and got.shape == want.shape and got.dtype == want.dtype
    assert got.indices.dtype == got.indptr.dtype == want.indices.dtype == want.indptr.dtype
    assert got.has_sorted_indices and got.has_canonical_format
    got.check_format(full_check=True)
    assert vars(got).keys() >= vars(want).keys() and got.maxprint == want.maxprint
    np.testing.assert_array_equal(got.toarray(), want.toarray())
    np.testing.assert_array_equal((got @ got.T).toarray(), (want @ want.T).toarray())
    np.testing.assert_array_equal(got[::2].toarray(), want[::2].toarray())
    np.testing.assert_array_equal(got.copy().tocsc().toarray(), want.tocsc().toarray())
