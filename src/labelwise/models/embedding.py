"""``LabelEmbedding``: label-space reduction by PLST and CPLST (for many labels, few rows).

PLST (principal label space transformation, Tai & Lin 2012, Neural Computation 24): centre
the label matrix, ``Z = Y - mu`` (mu the label frequencies), take its top ``M`` right
singular vectors ``V`` (L, M), regress the embedded targets ``T = Z V`` on the features, and
decode a row by projecting back: ``y_hat = t_hat V' + mu``. PLST's rounding predicts a
label when ``y_hat_j > 0.5``.

CPLST (conditional PLST, Chen & Lin 2012, NIPS) picks the directions that the regression can
also predict: the top ``M`` eigenvectors of ``Z' H Z`` where ``H`` is the ridge hat matrix of
the features (``Z' H Z = Z' Z_hat`` with ``Z_hat`` the ridge fit of Z). Since ridge
regression is linear in its targets, the regressor of ``Z V`` is the regressor of Z times V,
so CPLST costs one ridge solve with ``L`` right-hand sides and one ``L x L`` eigenproblem.

Regression: ridge with penalty ``alpha`` on the weights and an unpenalised intercept, solved
in closed form in the primal (``d x d`` system, when ``d <= n``) or in the dual (``n x n``
kernel system, when ``d > n``); both give the same weights (push-through identity; tested).
``min(n, d)`` above ``max_gram`` (default 20,000) is refused (that system would be too large).

``n_components``: an int ``M`` (``1 <= M <= L``), or a float in (0, 1]: the fewest
directions whose eigenvalues (squared singular values of Z for PLST, eigenvalues of
``Z' H Z`` for CPLST) sum to that fraction of the total (as scikit-learn's PCA reads a float).
The number chosen is ``n_components_``.

Scores: ``decision_function`` gives the decoded ``y_hat`` (real numbers, near [0, 1]) that
rank the labels of a row; ``predict`` thresholds them at 0.5 (PLST's rounding);
``predict_proba`` is ``y_hat`` clipped to [0, 1], a monotone map, not a calibrated
probability (``labelwise tune`` calibrates it). Feature rows (``normalize``): as in
:mod:`labelwise.models.chains`. Learned state: ``weights_`` (d, M), ``components_`` (L, M),
``offset_`` (L,) (``mu`` plus the intercepts decoded), saved as arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError, ResourceLimitError
from ._learners import check_normalize, check_scaling, fit_scaling, scale_rows
from .base import MultiLabelModel, as_feature_matrix
from .chains import check_positive_int
from .ovr import check_number
from .topk import topk_dense

__all__ = ["LabelEmbedding", "ridge_fit"]

METHODS = ("plst", "cplst")


def ridge_fit(X: sp.csr_matrix, T: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression of T (n, m) on X (n, d) with an unpenalised intercept.

    Returns ``(W, b)``, W float64 (d, m), b (m,), minimising
    ``|X W + 1 b' - T|^2 + alpha |W|^2``; primal when ``d <= n``, else dual."""
    # (imported here: scipy.linalg loads scipy's OpenBLAS, whose threads spin ~0.1 s after
    # loading, and ``import labelwise.models`` should not start them for every model)
    import scipy.linalg

    n, d = X.shape
    Xd = sp.csr_matrix(X, dtype=np.float64)
    xbar = np.asarray(Xd.mean(axis=0)).ravel()
    tbar = T.mean(axis=0)
    Tc = T - tbar[None, :]
    if Xd.nnz >= 0.25 * n * d:  # mostly stored: dense products are much faster
        Xd = Xd.toarray()
    if d <= n:
        G = _dense(Xd.T @ Xd) - n * np.outer(xbar, xbar)
        G[np.diag_indices(d)] += alpha
        W = scipy.linalg.solve(G, np.asarray(Xd.T @ Tc), assume_a="pos")
    else:
        K = _dense(Xd @ Xd.T)
        r = K.mean(axis=0)
        Kc = K - r[None, :] - r[:, None] + r.mean()
        Kc[np.diag_indices(n)] += alpha
        A = scipy.linalg.solve(Kc, Tc, assume_a="pos")
        W = np.asarray(Xd.T @ A) - np.outer(xbar, A.sum(axis=0))
    return W, tbar - xbar @ W


def _dense(M: Any) -> np.ndarray:
    return M.toarray() if sp.issparse(M) else np.asarray(M)


def _choose(eig: np.ndarray, n_components: int | float, L: int) -> int:
    if isinstance(n_components, int | np.integer):
        return int(n_components)
    eig = np.clip(eig, 0.0, None)
    total = float(eig.sum())
    if total <= 0.0:
        return 1
    frac = np.cumsum(eig) / total
    return int(min(L, np.searchsorted(frac, float(n_components) - 1e-12) + 1))


class LabelEmbedding(MultiLabelModel):
    """PLST / CPLST label-space reduction with ridge regression (see the module docstring).

    Parameters
    ----------
    method: "plst" or "cplst".
    n_components: int (directions kept, <= n_labels) or float in (0, 1] (fraction of the
        label variance kept).
    alpha: ridge penalty (> 0); the default 10 beat 1, 0.1, 30 and 100 on MULAN emotions,
        scene and yeast (unit-length rows, tuned thresholds).
    normalize: "auto", "standard", "l2" or None (see labelwise.models.chains).
    max_gram: refuse a ridge system larger than max_gram x max_gram (>= 1).
    """

    #: the arrays it saves: name -> (dtypes, ndim), checked at load (labelwise.models.persist)
    _saved_arrays = {
        "weights": (('<f8',), 2),
        "components": (('<f8',), 2),
        "offset": (('<f8',), 1),
        "col_mean": (('<f8',), 1),
        "col_scale": (('<f8',), 1),
    }

    _persist_name = "LabelEmbedding"
    default_threshold = 0.5

    def __init__(self, *, method: str = "plst", n_components: int | float = 0.95,
                 alpha: float = 10.0, normalize: str | None = "auto",
                 max_gram: int = 20_000) -> None:
        self.method = method
        self.n_components = n_components
        self.alpha = alpha
        self.normalize = normalize
        self.max_gram = max_gram

    def _validate_params(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        nc = self.n_components
        if isinstance(nc, float):
            if not (math.isfinite(nc) and 0.0 < nc <= 1.0):
                raise ValueError(f"n_components as a float is a fraction in (0, 1], got {nc!r}")
        else:
            check_positive_int(self, "n_components")
        check_number(self, "alpha", 0.0, strict=True)
        check_normalize(self.normalize)
        check_positive_int(self, "max_gram")

    def _prepare_X(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return scale_rows(X, self.col_mean_, self.col_scale_, self.normalize)

    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        n, L = Y.shape
        if not isinstance(self.n_components, float) and self.n_components > L:
            raise ValueError(f"n_components={self.n_components} is more than the {L} labels")
        if min(n, X.shape[1]) > self.max_gram:
            raise ResourceLimitError(
                f"the ridge system would be {min(n, X.shape[1])} x {min(n, X.shape[1])} "
                f"(rows {n}, features {X.shape[1]}), above max_gram={self.max_gram}; raise "
                "max_gram or use fewer rows or features")
        self.col_mean_, self.col_scale_ = fit_scaling(X, self.normalize)
        X = self._prepare_X(X)
        Yd = Y.toarray().astype(np.float64)
        mu = Yd.mean(axis=0)
        Z = Yd - mu[None, :]
        if self.method == "plst":
            # right singular vectors of Z = eigenvectors of Z'Z: all L of them, also past
            # the rank when there are fewer rows than labels (those have zero variance)
            S = Z.T @ Z
        else:
            WZ, bZ = ridge_fit(X, Z, float(self.alpha))
            S = Z.T @ (np.asarray(X @ WZ) + bZ[None, :])  # Z' H Z
        eig, U = np.linalg.eigh(0.5 * (S + S.T))
        order = np.argsort(-eig, kind="stable")
        eig, U = eig[order], U[:, order]
        M = _choose(eig, self.n_components, L)
        V = U[:, :M]
        W, b = ridge_fit(X, Z @ V, float(self.alpha))
        self.weights_ = np.ascontiguousarray(W)
        self.components_ = np.ascontiguousarray(V)
        self.offset_ = b @ V.T + mu
        self.n_components_ = int(M)

    def predict_values(self, X: Any) -> np.ndarray:
        """The decoded ``y_hat`` of every label: dense float64 (n_samples, n_labels)."""
        self._check_fitted()
        return self._values(self._prepare_X(as_feature_matrix(X, n_features=self.n_features_in_)))

    def _values(self, X: sp.csr_matrix) -> np.ndarray:
        T = np.asarray(sp.csr_matrix(X, dtype=np.float64) @ self.weights_)
        # sparse on the left: scipy's loops, so a row's values never depend on its batch
        back = np.asarray(sp.csr_matrix(self.components_) @ T.T).T
        return back + self.offset_[None, :]

    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        return topk_dense(self._values(self._prepare_X(X)).astype(np.float32), k)

    def _to_probability(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(scores, dtype=np.float32), 0.0, 1.0)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"weights": self.weights_, "components": self.components_,
                "offset": self.offset_, "col_mean": self.col_mean_,
                "col_scale": self.col_scale_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        need = ("weights", "components", "offset")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise DataFormatError(f"LabelEmbedding model lacks arrays: {', '.join(missing)}")
        W, V, off = (np.asarray(arrays[k]) for k in need)
        L, d = len(self.labels_), int(self.n_features_in_)
        if not (W.ndim == 2 and W.shape[0] == d and V.shape == (L, W.shape[1])
                and 1 <= W.shape[1] <= L and off.shape == (L,)):
            raise DataFormatError(f"LabelEmbedding arrays do not fit {d} features x {L} labels",
                                  field="arrays")
        self.weights_, self.components_, self.offset_ = W, V, off
        self.n_components_ = int(W.shape[1])
        self.col_mean_, self.col_scale_ = check_scaling(arrays, d, "LabelEmbedding")
