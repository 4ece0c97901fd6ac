"""The contract every labelwise model family follows.

A model is a scikit-learn estimator (``__init__`` only stores keyword arguments, learned
state ends in ``_``, ``get_params``/``set_params``/``clone`` round-trip) with these methods:

``fit(X, Y, *, labels=None)``
    X (n_samples, n_features): scipy sparse or dense numeric, converted once to CSR float32
    with sorted indices (values must be finite). Y (n_samples, n_labels): 0/1 in any form
    :func:`labelwise.dataset.as_label_matrix` accepts. ``labels``: a
    :class:`~labelwise.labels.LabelSpace` or a list of names (default ``'0'..'n_labels-1'``),
    kept as ``labels_``. ``fit(dataset)`` with a :class:`~labelwise.Dataset` takes X, Y and the
    label space from it. Fitting again starts from scratch.
``decision_function(X, *, k=5)``
    A *top-k score matrix* (see :mod:`labelwise.models.topk`): CSR (n_samples, n_labels) with
    exactly ``min(k, n_labels)`` stored entries per row, the row's k highest scores, column
    indices sorted ascending, ties broken by the lower label id.
``predict_proba(X, *, k=5)``
    The same entries mapped to [0, 1] by the model's link (``_to_probability``).
``predict(X, *, k=None, threshold=None)``
    CSR 0/1 label sets. ``threshold`` is on the ``decision_function`` scale; when None the
    model's ``default_threshold`` is used (0.0 on margins for linear models, which is
    probability 0.5 under the sigmoid). With ``k=None`` a label is predicted when its score
    is strictly above the threshold (a row may get no label); with ``k`` set, the row's top k
    labels are predicted, and with both set only those of the top k above the threshold.
``save(path)`` / ``load(path, *, mmap=False)``
    The directory format of :mod:`labelwise.models.persist`.

Subclasses implement ``_validate_params()`` (raise ValueError; run by ``fit`` and ``load``),
``_fit(X, Y)`` (X canonical CSR float32, Y CSR 0/1; the base sets
``labels_`` and ``n_features_in_`` before calling it), ``_decision_topk(X, k)``,
``_get_state()`` / ``_set_state(arrays, state)`` for persistence, and set the class
attribute ``_persist_name`` (their name in :data:`labelwise.models.persist.MODEL_CLASSES`).
Using a model before ``fit`` or ``load`` raises :class:`~labelwise.errors.NotFittedError`.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .._estimator import Estimator
from ..checks import positive_int
from ..dataset import Dataset, as_label_matrix
from ..errors import DataFormatError, NotFittedError
from ..labels import LabelSpace

__all__ = ["MultiLabelModel", "as_feature_matrix", "dense_to_csr", "sigmoid"]

#: rows per block when ``predict`` must look at every label's score
_PREDICT_BLOCK_ENTRIES = 1 << 22


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), computed without overflow, in z's float dtype."""
    z = np.asarray(z)
    out = np.empty_like(z, dtype=np.result_type(z.dtype, np.float32))
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def dense_to_csr(A: np.ndarray) -> sp.csr_matrix:
    """The CSR matrix of a 2-D array (its non-zero entries, row by row, columns ascending):
    what ``scipy.sparse.csr_matrix(A)`` gives, without its detour through COO (scene's
    1211 x 294 features: 0.5 ms instead of 4.1 ms)."""
    n, d = A.shape
    mask = A != 0
    index = np.int32 if n * d < 2**31 else np.int64
    indptr = np.empty(n + 1, index)
    indptr[0] = 0
    np.cumsum(np.count_nonzero(mask, axis=1), out=indptr[1:])
    if indptr[-1] == n * d:  # every entry stored: the columns of each row are 0..d-1
        indices = np.tile(np.arange(d, dtype=index), n)
        data = np.array(A, copy=True).reshape(-1)
    else:
        indices = np.broadcast_to(np.arange(d, dtype=index), (n, d))[mask]
        data = A[mask]
    return sp.csr_matrix((data, indices, indptr), shape=(n, d))


def as_feature_matrix(X: Any, *, n_features: int | None = None) -> sp.csr_matrix:
    """X as CSR float32 with sorted, unique column indices and finite values.

    Accepts a :class:`~labelwise.Dataset` (its ``X``), any scipy sparse matrix or a dense
    2-D numeric array. Texts are refused (featurize them first). The input is copied only
    when its type, dtype or index order has to change.
    """
    if isinstance(X, Dataset):
        X = X.X
    if isinstance(X, list | tuple) and X and isinstance(X[0], str):
        raise DataFormatError(
            "X holds texts; this model needs numeric features (turn the texts into features "
            "with a featurizer first)", field="X")
    if sp.issparse(X):
        M = X.tocsr() if X.format != "csr" else X
        if M.dtype != np.float32:
            if M.dtype.kind not in "fiub":
                raise DataFormatError(f"X must be numeric, got dtype {M.dtype}", field="X")
            M = M.astype(np.float32)
        if not M.has_canonical_format:
            M = M.copy() if M is X else M
            M.sum_duplicates()
        if isinstance(M, sp.sparray):
            M = sp.csr_matrix(M)
    else:
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise DataFormatError(
                f"X must be 2-D (n_samples, n_features), got shape {arr.shape}", field="X")
        if arr.dtype.kind not in "fiub":
            raise DataFormatError(f"X must be numeric, got dtype {arr.dtype}", field="X")
        M = dense_to_csr(arr.astype(np.float32, copy=False))
    if M.nnz and not np.all(np.isfinite(M.data)):
        p = int(np.flatnonzero(~np.isfinite(M.data))[0])
        row = int(np.searchsorted(M.indptr, p, side="right") - 1)
        raise DataFormatError(
            f"X[{row}, {int(M.indices[p])}] = {M.data[p]!r}: features must be finite", field="X")
    if n_features is not None and M.shape[1] != n_features:
        raise DataFormatError(
            f"X has {M.shape[1]} features but the model was fitted with {n_features}", field="X")
    return M


class MultiLabelModel(Estimator):
    """Base class of labelwise models; see the module docstring for the contract."""

    #: name in the persistence registry (labelwise.models.persist.MODEL_CLASSES)
    _persist_name: ClassVar[str] = ""
    #: the arrays a saved model of the class holds: name pattern (a regular expression) ->
    #: (allowed dtypes, number of dimensions or None); labelwise.models.persist refuses any
    #: other array, dtype or rank on load (and on save)
    _saved_arrays: ClassVar[dict[str, tuple[tuple[str, ...], int | None]]] = {}
    #: the parameter naming an encoder folder read at predict time (ZeroShot, FewShot): a
    #: folder of the user's own is saved inside the model folder, and a saved file can name
    #: no other folder (labelwise.store.write_encoder / read_encoder)
    _encoder_param: ClassVar[str | None] = None
    #: predict's threshold when none is given, on the decision_function scale
    default_threshold: ClassVar[float] = 0.0
    #: whether per-column scaling of numeric X leaves the model unchanged but for rounding
    #: (trees split on the order of a column's values): ``Pipeline(scale="auto")`` then
    #: leaves X as given
    scale_invariant: ClassVar[bool] = False

    # ------------------------------------------------------------------ scikit-learn
    @property
    def classes_(self) -> np.ndarray:
        """The label names in column order (object array), as scikit-learn's classifiers
        expose ``classes_``; an unfitted model has none (NotFittedError, an AttributeError)."""
        self._check_fitted()
        return np.asarray(list(self.labels_.names), dtype=object)

    def __sklearn_tags__(self) -> Any:
        """A multi-label classifier: 2-D 0/1 targets (dense or sparse), sparse or dense
        numeric X (texts for the models that read them)."""
        from sklearn.utils import ClassifierTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags(multi_class=False, multi_label=True)
        tags.target_tags.required = True
        tags.target_tags.two_d_labels = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.input_tags.sparse = True
        reads_texts = bool(getattr(self, "takes_texts", False)) or self._encoder_param is not None
        tags.input_tags.string = reads_texts
        return tags

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, Y: Any = None, *, labels: LabelSpace | list[str] | None = None):
        """Fit on X (n_samples, n_features) and Y (n_samples, n_labels), or on a Dataset."""
        self._validate_params()
        if isinstance(X, Dataset):
            if Y is not None or labels is not None:
                raise TypeError("fit(dataset) takes X, Y and labels from the dataset; "
                                "pass no Y or labels")
            Y, labels = X.Y, X.labels
        elif Y is None:
            raise TypeError("fit(X, Y) needs Y (or pass a labelwise.Dataset as the only argument)")
        Xc = as_feature_matrix(X)
        if labels is not None and not isinstance(labels, LabelSpace):
            labels = LabelSpace(labels)
        Yc = as_label_matrix(Y, None if labels is None else len(labels))
        if Yc.shape[0] != Xc.shape[0]:
            raise DataFormatError(f"X has {Xc.shape[0]} rows but Y has {Yc.shape[0]}")
        if Yc.shape[1] == 0:
            raise DataFormatError("Y has no label columns", field="Y")
        if Xc.shape[0] == 0:
            raise DataFormatError("no training rows", field="X")
        self._clear_fitted()
        self.labels_ = LabelSpace.range(Yc.shape[1]) if labels is None else labels
        self.n_features_in_ = int(Xc.shape[1])
        try:
            self._fit(Xc, Yc)
        except BaseException:
            self._clear_fitted()
            raise
        return self

    def _clear_fitted(self) -> None:
        for name in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, name)

    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            name = type(self).__name__
            raise NotFittedError(
                f"this {name} is not fitted yet: call fit(X, Y) or {name}.load(path) first")

    @property
    def n_labels_(self) -> int:
        self._check_fitted()
        return len(self.labels_)

    # ------------------------------------------------------------------ scoring
    def decision_function(self, X: Any, *, k: int = 5) -> sp.csr_matrix:
        """Top-k score matrix (n_samples, n_labels) of the model's raw scores."""
        self._check_fitted()
        k = _check_k(k)
        return self._decision_topk(as_feature_matrix(X, n_features=self.n_features_in_), k)

    def predict_proba(self, X: Any, *, k: int = 5) -> sp.csr_matrix:
        """Top-k matrix of scores mapped to [0, 1] (see the subclass for calibration)."""
        S = self.decision_function(X, k=k)
        S.data = self._to_probability(S.data).astype(np.float32)
        return S

    def predict(self, X: Any, *, k: int | None = None,
                threshold: float | None = None) -> sp.csr_matrix:
        """Label sets as CSR float32 0/1 (n_samples, n_labels); see the module docstring."""
        self._check_fitted()
        Xc = as_feature_matrix(X, n_features=self.n_features_in_)
        thr = self.default_threshold if threshold is None else float(threshold)
        if k is not None:
            S = self._decision_topk(Xc, _check_k(k))
            keep = S.data > thr if threshold is not None else np.ones(S.nnz, dtype=bool)
            S.data = np.where(keep, np.float32(1.0), np.float32(0.0))
            S.eliminate_zeros()
            return S
        n_labels = len(self.labels_)
        block = max(1, _PREDICT_BLOCK_ENTRIES // n_labels)
        parts = []
        for a in range(0, Xc.shape[0], block):
            S = self._decision_topk(Xc[a:a + block], n_labels)
            keep = S.data > thr
            S.data = np.where(keep, np.float32(1.0), np.float32(0.0))
            S.eliminate_zeros()
            parts.append(S)
        if not parts:
            return sp.csr_matrix((0, n_labels), dtype=np.float32)
        out = sp.csr_matrix(sp.vstack(parts, format="csr"), dtype=np.float32)
        out.sort_indices()
        return out

    def _to_probability(self, scores: np.ndarray) -> np.ndarray:
        return sigmoid(scores)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], *, compress: bool = False) -> None:
        """Write the fitted model as a directory (atomically); see labelwise.models.persist."""
        from .persist import save_model

        save_model(self, path, compress=compress)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = False, verify: bool = True):
        """Read a model directory written by ``save``; ``mmap=True`` maps the arrays read-only."""
        from .persist import load_model

        model = load_model(path, mmap=mmap, verify=verify)
        if not isinstance(model, cls):
            raise DataFormatError(
                f"holds a {type(model).__name__}, not a {cls.__name__}", path=str(path))
        return model

    # ------------------------------------------------------------------ subclass hooks
    def _validate_params(self) -> None:
        """Raise ValueError for a bad parameter (called by fit and by load)."""

    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:  # pragma: no cover
        raise NotImplementedError

    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:  # pragma: no cover
        raise NotImplementedError

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def _set_state(self, arrays: dict[str, np.ndarray],
                   state: dict[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError


def _check_k(k: Any) -> int:
    return positive_int(k, "k")
