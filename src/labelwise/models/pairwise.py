"""``CalibratedLabelRanking``: pairwise classifiers for every label pair plus a virtual label
(Fürnkranz, Hüllermeier, Loza Mencía & Brinker 2008, Machine Learning 73).

For labels ``a < b`` a binary classifier learns ``P(a preferred to b | x)`` from the training
rows where exactly one of the two is positive (target 1 where it is ``a``). The *virtual
label* V separates relevant from irrelevant labels: the classifier of ``(a, V)`` learns
``P(a relevant | x)`` from every row (binary relevance). That is ``L (L - 1) / 2 + L``
classifiers for ``L`` labels.

Aggregation (``aggregation``): every label (V included) collects, from each of its ``L``
comparisons, ``"proba"`` (the default): the probability that it wins; ``"vote"``: 1 for a win,
1/2 for a tie (probability exactly 0.5), 0 for a loss. With ``v_j`` the votes of label j and
``v_V`` those of the virtual label, a label is relevant when ``v_j > v_V``; the score is::

    s_j = 0.5 + (v_j - v_V) / (2 L)          in [0, 1]

so the labels of a row rank as their votes do, ``predict`` thresholds at 0.5 (the calibrated
split), and ``tune`` / calibration see one score per label on a common scale. With many
rare labels the soft votes of the virtual label dominate (its ``L`` binary-relevance
comparisons are confident, the regularised pairwise ones stay near 1/2), so the untuned split
predicts few labels: on MULAN medical (45 labels) micro-F1 is 0.06 at 0.5 and 0.69 after
``labelwise tune`` (per-label thresholds on the calibrated scores). Tune it.
:meth:`~CalibratedLabelRanking.predict_votes` returns the votes themselves.

Base learners (``base``): ``"linear"`` (the default): L2-regularised logistic regression by
labelwise's dual coordinate descent (``C``, ``tol``), all problems in one numba kernel
(:mod:`labelwise.models._pairwise_kernels`) that reads each problem's rows through an index
into the shared feature matrix, on ``n_threads`` threads; the work is the sum over problems of
their rows, ``(L - 1)`` times the label cardinality times the row count plus ``L`` times the
row count. Any scikit-learn classifier also works (one clone fitted per problem, in Python:
slow past a few dozen labels); linear ones are saved as arrays, others refuse to save (no
pickle). Feature rows (``normalize``): as in :mod:`labelwise.models.chains`.

Size limit: the classifiers grow as ``L^2 / 2``; ``fit`` refuses more than ``max_labels``
labels (default 500: 125,250 classifiers) with :class:`~labelwise.errors.ResourceLimitError`.
Weights are kept sparse (a problem only has weights on the features of its rows). Scoring
computes every classifier's probability for blocks of rows (``2**21 / n_classifiers`` rows at
a time).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError, ResourceLimitError
from ._learners import (
    base_to_json,
    binary_proba,
    check_base,
    check_normalize,
    check_scaling,
    fit_binary,
    fit_scaling,
    scale_rows,
)
from .base import MultiLabelModel, as_feature_matrix, sigmoid
from .chains import check_positive_int, check_seed, check_threads, fresh_seed
from .ovr import check_number, row_sq_norms
from .topk import map_ranges, map_threads, resolve_n_threads, topk_dense

__all__ = ["CalibratedLabelRanking", "label_pairs"]

AGGREGATIONS = ("proba", "vote")
#: classifier probabilities computed at once when scoring (rows x classifiers)
_SCORE_BLOCK = 1 << 21
#: DCD epochs per problem (liblinear's default)
_MAX_ITER = 1000


def _warn_capped(n_iter: np.ndarray, max_iter: int, what: str) -> None:
    """A ConvergenceWarning counting the problems that ran ``max_iter`` epochs."""
    capped = int(np.count_nonzero(n_iter >= max_iter))
    if capped:
        import warnings

        from sklearn.exceptions import ConvergenceWarning  # imported only when warning

        warnings.warn(f"{capped} of {n_iter.size} {what} reached max_iter={max_iter} before the "
                      "DCD tolerance; raise tol or lower C",
                      ConvergenceWarning, stacklevel=4)


def label_pairs(n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """The problems of ``n_labels`` labels in model order: ``(a, b)`` for ``a < b`` row by
    row, then ``(j, n_labels)`` (label j against the virtual label) for every j. int64."""
    L = int(n_labels)
    a, b = np.triu_indices(L, k=1)
    return (np.concatenate([a, np.arange(L)]).astype(np.int64),
            np.concatenate([b, np.full(L, L)]).astype(np.int64))


class CalibratedLabelRanking(MultiLabelModel):
    """Calibrated label ranking (see the module docstring).

    Parameters
    ----------
    aggregation: "proba" (sum of win probabilities) or "vote" (hard votes).
    base: "linear" or a scikit-learn classifier.
    C: inverse regularisation of the linear base (> 0).
    tol: stopping tolerance of its dual coordinate descent (> 0).
    max_labels: refuse to fit more labels than this (>= 1).
    normalize: "auto", "standard", "l2" or None (see labelwise.models.chains).
    n_threads: threads over blocks of classifiers (None = all CPUs).
    random_state: seed of the solver's row shuffles.
    """

    #: the arrays it saves: name -> (dtypes, ndim), checked at load (labelwise.models.persist)
    _saved_arrays = {
        "coef_ptr": (('<i8',), 1),
        "coef_features": (('<i8',), 1),
        "coef_values": (('<f4',), 1),
        "intercept": (('<f8',), 1),
        "col_mean": (('<f8',), 1),
        "col_scale": (('<f8',), 1),
    }

    _persist_name = "CalibratedLabelRanking"
    default_threshold = 0.5

    def __init__(self, *, aggregation: str = "proba", base: Any = "linear", C: float = 1.0,
                 tol: float = 0.1, max_labels: int = 500, normalize: str | None = "auto",
                 n_threads: int | None = None, random_state: int | None = 0) -> None:
        self.aggregation = aggregation
        self.base = base
        self.C = C
        self.tol = tol
        self.max_labels = max_labels
        self.normalize = normalize
        self.n_threads = n_threads
        self.random_state = random_state

    def _validate_params(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got "
                             f"{self.aggregation!r}")
        check_base(self.base)
        check_number(self, "C", 0.0, strict=True)
        check_number(self, "tol", 0.0, strict=True)
        check_positive_int(self, "max_labels")
        check_normalize(self.normalize)
        check_threads(self.n_threads)
        check_seed(self.random_state)

    def _prepare_X(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return scale_rows(X, self.col_mean_, self.col_scale_, self.normalize)

    # ------------------------------------------------------------------ fit
    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        n, L = Y.shape
        if L > self.max_labels:
            raise ResourceLimitError(
                f"calibrated label ranking trains L(L+1)/2 = {L * (L + 1) // 2} classifiers for "
                f"{L} labels, above max_labels={self.max_labels} ({self.max_labels} labels); "
                "raise max_labels, or use a family that scales with the label count (ovr, "
                "tree, LabelEmbedding)")
        seed = fresh_seed(self.random_state)
        self.col_mean_, self.col_scale_ = fit_scaling(X, self.normalize)
        X = self._prepare_X(X)
        pa, pb = label_pairs(L)
        if self.base == "linear":
            self._fit_linear(X, Y, pa, pb, seed)
        else:
            self._fit_sklearn(X, Y, pa, pb, seed)

    def _fit_linear(self, X: sp.csr_matrix, Y: sp.csr_matrix, pa: np.ndarray, pb: np.ndarray,
                    seed: int) -> None:
        from ._pairwise_kernels import train_pairs

        n, L = Y.shape
        d = X.shape[1]
        Yc = sp.csc_matrix(Y > 0)
        Yc.sort_indices()
        y_indptr = Yc.indptr.astype(np.int64)
        y_indices = Yc.indices.astype(np.int64)
        bias = 1.0
        sq = row_sq_norms(X, bias)
        P = pa.size
        threads = resolve_n_threads(self.n_threads)
        chunk = int(max(1, min(4096, -(-P // (4 * threads)))))
        chunks = [np.arange(a, min(a + chunk, P), dtype=np.int64) for a in range(0, P, chunk)]

        def run(ids: np.ndarray):
            return train_pairs(X.indptr, X.indices, X.data, sq, y_indptr, y_indices, pa, pb,
                               ids, L, float(self.C), bias, float(self.tol), _MAX_ITER, int(seed),
                               d)

        parts = map_threads(run, chunks, threads)
        _warn_capped(np.concatenate([r[4] for r in parts]), _MAX_ITER, "pairwise problems")
        counts = np.concatenate([r[0] for r in parts])
        ptr = np.zeros(P + 1, np.int64)
        np.cumsum(counts, out=ptr[1:])
        self._set_linear(ptr, np.concatenate([r[1] for r in parts]).astype(np.int64),
                         np.concatenate([r[2] for r in parts]).astype(np.float32),
                         np.concatenate([r[3] for r in parts]).astype(np.float64))

    def _set_linear(self, ptr: np.ndarray, features: np.ndarray, values: np.ndarray,
                    intercept: np.ndarray) -> None:
        """Keep the weights by classifier (as saved) and as CSR (features x classifiers)."""
        self.coef_ptr_, self.coef_features_, self.coef_values_ = ptr, features, values
        self.intercept_ = intercept
        W = sp.csc_matrix((values, features, ptr), shape=(int(self.n_features_in_),
                                                          intercept.size))
        W = sp.csr_matrix(W.tocsr())
        W.sort_indices()
        self.coef_ = W
        self.learners_ = None

    def _fit_sklearn(self, X: sp.csr_matrix, Y: sp.csr_matrix, pa: np.ndarray, pb: np.ndarray,
                     seed: int) -> None:
        n, L = Y.shape
        Yd = Y.toarray() > 0
        learners = []
        for p in range(pa.size):
            a, b = int(pa[p]), int(pb[p])
            if b == L:
                rows, y = np.arange(n), Yd[:, a]
            else:
                rows = np.flatnonzero(Yd[:, a] != Yd[:, b])
                y = Yd[rows, a]
            if rows.size == 0:
                learners.append((np.zeros(X.shape[1]), 0.0))
                continue
            learners.append(fit_binary(X[rows], y, self.base, C=self.C,
                                       seed=(seed + 7919 * p) % 2**32))
        if all(isinstance(t, tuple) for t in learners):
            W = sp.csc_matrix(np.stack([w for w, _ in learners], axis=1))
            W.eliminate_zeros()
            W.sort_indices()
            self._set_linear(W.indptr.astype(np.int64), W.indices.astype(np.int64),
                             W.data.astype(np.float32),
                             np.asarray([b for _, b in learners], np.float64))
        else:
            self.learners_ = learners

    # ------------------------------------------------------------------ scoring
    def _win_probabilities(self, X: sp.csr_matrix) -> np.ndarray:
        """P(first label of problem p wins | row) of non-linear learners: (n_rows, n_problems)."""
        out = np.empty((X.shape[0], len(self.learners_)))
        for p, t in enumerate(self.learners_):
            if isinstance(t, tuple):
                w, b = t
                out[:, p] = sigmoid(np.asarray(X @ w, dtype=np.float64).ravel() + b)
            else:
                out[:, p] = binary_proba(t, X)
        return out

    def _votes(self, X: sp.csr_matrix) -> np.ndarray:
        L = len(self.labels_)
        pa, pb = label_pairs(L)
        n = X.shape[0]
        hard = self.aggregation == "vote"
        out = np.empty((n, L + 1))
        if self.learners_ is None:  # linear: margins and votes row by row in numba
            from ._pairwise_kernels import pair_votes

            W = self.coef_
            threads = resolve_n_threads(self.n_threads)
            chunk = max(16, -(-n // (4 * threads))) if n else 1
            map_ranges(lambda a, b: pair_votes(
                X.indptr, X.indices, X.data, W.indptr, W.indices, W.data, self.intercept_, pa,
                pb, hard, a, b, out), [*range(0, n, chunk), n], threads)
            return out
        P = pa.size
        # +1 for the first label of each problem, -1 for the second: v = wins @ A + n_second
        A_T = sp.csr_matrix((np.r_[np.ones(P), -np.ones(P)],
                             (np.r_[pa, pb], np.r_[np.arange(P), np.arange(P)])),
                            shape=(L + 1, P))
        second = np.bincount(pb, minlength=L + 1).astype(np.float64)
        block = max(1, _SCORE_BLOCK // P)
        for a in range(0, n, block):
            win = self._win_probabilities(X[a:a + block])
            if hard:
                win = np.where(win > 0.5, 1.0, np.where(win == 0.5, 0.5, 0.0))
            # sparse on the left: scipy's loops, so a row's sums never depend on its block
            out[a:a + block] = np.asarray(A_T @ win.T).T + second[None, :]
        return out

    def predict_votes(self, X: Any) -> np.ndarray:
        """The votes: dense float64 (n_samples, n_labels + 1), the last column the virtual
        label's (see the module docstring)."""
        self._check_fitted()
        return self._votes(self._prepare_X(as_feature_matrix(X, n_features=self.n_features_in_)))

    def _scores(self, X: sp.csr_matrix) -> np.ndarray:
        v = self._votes(X)
        L = len(self.labels_)
        return 0.5 + (v[:, :L] - v[:, L:]) / (2.0 * L)

    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        return topk_dense(self._scores(self._prepare_X(X)).astype(np.float32), k)

    def _to_probability(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    def _saved_params(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        params["base"] = base_to_json(self.base, self.learners_ is None)
        return params

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        base_to_json(self.base, self.learners_ is None)
        return {"coef_ptr": np.asarray(self.coef_ptr_, np.int64),
                "coef_features": np.asarray(self.coef_features_, np.int64),
                "coef_values": np.asarray(self.coef_values_, np.float32),
                "intercept": np.asarray(self.intercept_, np.float64),
                "col_mean": self.col_mean_, "col_scale": self.col_scale_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        need = ("coef_ptr", "coef_features", "coef_values", "intercept")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise DataFormatError(f"CalibratedLabelRanking model lacks arrays: "
                                  f"{', '.join(missing)}")
        a = {k: np.asarray(arrays[k]) for k in need}
        L, d = len(self.labels_), int(self.n_features_in_)
        P = L * (L + 1) // 2
        ptr, feat = a["coef_ptr"], a["coef_features"]
        ok = (ptr.shape == (P + 1,) and a["intercept"].shape == (P,)
              and int(ptr[0]) == 0 and int(ptr[-1]) == feat.size
              and a["coef_values"].shape == feat.shape and bool(np.all(np.diff(ptr) >= 0))
              and (feat.size == 0 or (int(feat.min()) >= 0 and int(feat.max()) < d)))
        if not ok:
            raise DataFormatError(f"CalibratedLabelRanking arrays do not fit {d} features x "
                                  f"{L} labels ({P} classifiers)", field="arrays")
        self.col_mean_, self.col_scale_ = check_scaling(arrays, d, "CalibratedLabelRanking")
        self._set_linear(ptr, feat, a["coef_values"], a["intercept"])
