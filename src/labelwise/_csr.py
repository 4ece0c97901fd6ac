"""``trusted_csr``: a scipy CSR matrix from arrays that labelwise itself just built.

scipy's ``csr_matrix((data, indices, indptr), shape=...)`` checks its arrays on every call
(index dtypes chosen from a pass over the arrays, pointer bounds, a pruning copy): 25 to 80
microseconds, which a served one-document request paid about eight times, more than its
model kernels took. Arrays that a labelwise kernel or a vectorised step produced are valid by
construction (pointers rising from 0 to nnz, column indices below n_cols), so this builds the
matrix without the checks. Never use it on arrays that came from outside (a file, a request).

The first call checks that this scipy's ``csr_matrix`` is made of what this module sets (the
same attributes and values as a validated matrix); if not, every call takes scipy's
validated constructor, so a future scipy costs speed, never correctness.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import scipy.sparse as sp

__all__ = ["trusted_csr"]


def _direct(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
            shape: tuple[int, int], maxprint: int) -> sp.csr_matrix:
    M = sp.csr_matrix.__new__(sp.csr_matrix)
    M._shape = shape
    M.maxprint = maxprint
    M.data, M.indices, M.indptr = data, indices, indptr
    return M


@cache
def _direct_maxprint() -> int | None:
    """scipy's default ``maxprint`` when the direct construction gives what scipy's own
    constructor gives on a probe matrix (module docstring), else None."""
    data = np.array([1.5, -2.0, 3.0], np.float32)
    indices = np.array([2, 0, 1], np.int32)
    indptr = np.array([0, 1, 3, 3], np.int32)
    want = sp.csr_matrix((data, indices, indptr), shape=(3, 4))
    got = _direct(data, indices, indptr, (3, 4), getattr(want, "maxprint", 50))
    try:
        got.check_format(full_check=True)
        same = (vars(got).keys() == vars(want).keys()
                and all(type(getattr(got, k)) is type(getattr(want, k)) for k in vars(want))
                and got.shape == want.shape and got.nnz == want.nnz
                and np.array_equal(got.toarray(), want.toarray())
                and np.array_equal((got @ got.T).toarray(), (want @ want.T).toarray()))
    except Exception:  # noqa: BLE001 - any surprise: use scipy's constructor
        return None
    return want.maxprint if same else None


def trusted_csr(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
                shape: tuple[int, int], *, sorted_indices: bool = False) -> sp.csr_matrix:
    """A ``csr_matrix`` of shape ``shape`` holding these arrays (not copied, except that
    indices and indptr are given one integer dtype, int32 where both fit, as scipy does).
    ``sorted_indices``: the caller knows each row's indices ascend."""
    shape = (int(shape[0]), int(shape[1]))
    small = (max(shape) < 2**31 and len(indices) < 2**31)
    index = np.int32 if small else np.int64
    indices = np.asarray(indices).astype(index, copy=False)
    indptr = np.asarray(indptr).astype(index, copy=False)
    maxprint = _direct_maxprint()
    if maxprint is None:
        M = sp.csr_matrix((data, indices, indptr), shape=shape)
    else:
        M = _direct(data, indices, indptr, shape, maxprint)
    if sorted_indices:
        M.has_sorted_indices = True
    return M
