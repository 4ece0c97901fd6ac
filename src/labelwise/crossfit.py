"""Cross-fitted scores: every training row scored by a model that never saw it.

:func:`cross_fit_scores` splits the training rows into ``cv`` folds by iterative
stratification (:class:`labelwise.split.IterativeStratifiedKFold`, so every fold holds its
share of each label), fits a clone of the model (``sklearn.base.clone``: same parameters,
nothing learned) on the other ``cv - 1`` folds and scores the held-out fold. The result is a
top-k score matrix (see :mod:`labelwise.models.topk`) of out-of-fold scores for all training
rows, in their original order: the input of calibration and threshold tuning, so that
neither is fitted on scores of rows the model was trained on, nor on any evaluation row.

A model is anything with ``fit(X, Y)`` and either ``decision_function(X, *, k=)`` returning
a top-k CSR (labelwise models) or a scikit-learn style ``decision_function(X)`` /
``predict_proba(X)`` returning a dense (n_samples, n_labels) array (its top k is kept).
Warnings raised inside the folds (e.g. a rare label with no positive in some training
folds) are gathered and re-issued once each, with the number of folds that raised them.

:func:`select_linear_params` chooses a linear model's ``C`` and ``loss`` by the same
cross-fitting: every candidate of :func:`linear_grid` is cross-fitted on the same folds and
scored by a function of its out-of-fold scores (``Pipeline.tune`` uses the cross-validated
objective of thresholds tuned on them, :func:`labelwise.decision.cross_validated_score`).
The grid is derived from the size of the training problem, ``nnz(X) * n_labels`` (the work
of one solver pass over all labels):

==========================  ===========================================================
``nnz(X) * n_labels``       candidates
==========================  ===========================================================
<= 3e7                      C in {0.25, 0.5, 1, 2, 4, 8, 16} x {squared_hinge, logistic}
<= 3e8                      C in {0.25, 1, 4, 16} x {squared_hinge, logistic}
larger                      C in {0.5, 2} x {squared_hinge}
==========================  ===========================================================

plus the model's own ``(loss, C)``, listed first so that it wins ties.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._estimator import Estimator
from .checks import positive_int
from .dataset import Dataset, as_label_matrix
from .errors import DataFormatError

__all__ = ["cross_fit_scores", "linear_grid", "select_linear_params"]

#: (nnz(X) * n_labels limit, C values, losses) of linear_grid, smallest problems first
GRID_RULES = ((3e7, (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0), ("squared_hinge", "logistic")),
              (3e8, (0.25, 1.0, 4.0, 16.0), ("squared_hinge", "logistic")),
              (float("inf"), (0.5, 2.0), ("squared_hinge",)))


def _digest(X: Any) -> bytes:
    """A digest of rows' contents (texts, a dense or a CSR matrix): FoldFeatures' key."""
    h = hashlib.blake2b(digest_size=16)
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        parts = [str(X.shape).encode(), X.indptr, X.indices, X.data]
    elif isinstance(X, np.ndarray):
        parts = [f"{X.shape}{X.dtype}".encode(), np.ascontiguousarray(X)]
    else:
        parts = [b"texts"]
        for text in X:
            data = str(text).encode("utf-8", "surrogatepass")
            parts += [len(data).to_bytes(8, "little"), data]
    for part in parts:
        h.update(memoryview(part).cast("B") if isinstance(part, np.ndarray) else part)
    return h.digest()


class FoldFeatures:
    """The featurizers of one cross-fitting's folds, fitted once and shared by every candidate
    model of a parameter search (the folds are the same for all of them). Copies of it (a
    clone of the FoldPipeline holding it) share it on purpose; it is kept for one search."""

    def __init__(self) -> None:
        self._fitted: dict[bytes, tuple[Any, Any]] = {}
        self._transformed: dict[tuple[bytes, bytes], Any] = {}

    def __deepcopy__(self, memo: dict) -> FoldFeatures:
        return self

    def fit_transform(self, featurizer: Any, X: Any) -> tuple[bytes, Any]:
        """(key, features of X) from ``featurizer`` fitted on X, or the one fitted before."""
        key = _digest(X)
        if key not in self._fitted:
            self._fitted[key] = (featurizer, featurizer.fit_transform(X))
        return key, self._fitted[key][1]

    def transform(self, key: bytes, X: Any) -> Any:
        """Features of X from the featurizer fitted under ``key``."""
        test = (key, _digest(X))
        if test not in self._transformed:
            self._transformed[test] = self._fitted[key][0].transform(X)
        return self._transformed[test]


class FoldPipeline(Estimator):
    """A featurizer and a model fitted together inside one cross-fitting fold, so that the
    held-out rows never shape the features they are scored with. Scores are the model's
    top-k (``decision_function(X, k=k)``), as a :class:`~labelwise.models.MultiLabelModel`'s.
    ``features``: a :class:`FoldFeatures` shared by the candidates of one search (None: the
    featurizer is fitted here)."""

    def __init__(self, featurizer: Any = None, model: Any = None,
                 features: FoldFeatures | None = None) -> None:
        self.featurizer = featurizer
        self.model = model
        self.features = features

    def fit(self, X: Any, Y: Any, *, labels: Any = None) -> FoldPipeline:
        if self.features is None:
            self.key_, Xt = None, self.featurizer.fit_transform(X)
        else:
            self.key_, Xt = self.features.fit_transform(self.featurizer, X)
        self.model.fit(Xt, Y, labels=labels)
        return self

    def _transform(self, X: Any) -> Any:
        if self.key_ is None:
            return self.featurizer.transform(X)
        return self.features.transform(self.key_, X)

    def decision_function(self, X: Any, *, k: int | None = None) -> sp.csr_matrix:
        return self.model.decision_function(self._transform(X), k=k)

    def predict_proba(self, X: Any, *, k: int | None = None) -> sp.csr_matrix:
        return self.model.predict_proba(self._transform(X), k=k)


def _score(model: Any, X: Any, k: int, method: str) -> sp.csr_matrix:
    from .models.base import MultiLabelModel
    from .models.topk import topk_csr, topk_dense

    # top-k CSR already; a scikit-learn estimator's output is re-cut below, where a sparse
    # output's absent entries are zeros (a labelwise top-k's are below every kept score)
    if isinstance(model, MultiLabelModel | FoldPipeline):
        fn = getattr(model, method)
        return fn(X, k=k)
    out = getattr(model, method)(X)
    if isinstance(out, list):  # e.g. a list of (n, 2) predict_proba arrays per label
        out = np.column_stack([np.asarray(o)[:, -1] for o in out])
    if sp.issparse(out):
        return topk_csr(out, k)
    return topk_dense(np.asarray(out, dtype=np.float64), k)


def cross_fit_scores(model: Any, X: Any, Y: Any = None, *, cv: int = 5, k: int = 10,
                     method: str = "decision_function", random_state: int | None = 0,
                     return_folds: bool = False, labels: Any = None) -> Any:
    """Out-of-fold top-k scores (n_samples, n_labels) CSR for the training rows.

    ``X``, ``Y``: the training data (or a :class:`~labelwise.Dataset` as ``X``). ``cv`` >= 2
    folds; ``k`` scores kept per row (``min(k, n_labels)``); ``method``:
    ``"decision_function"`` or ``"predict_proba"``. With ``return_folds=True`` also returns
    the int64 fold id of every row. ``labels``: a label space (or names) passed as
    ``fit(..., labels=labels)`` to every fold's model (zero- and few-shot models build their
    label vectors from the names); None fits with ``fit(X, Y)``.
    """
    from sklearn.base import clone

    from .split import IterativeStratifiedKFold

    if isinstance(X, Dataset):
        if Y is not None:
            raise TypeError("cross_fit_scores(dataset) takes Y from the dataset; pass no Y")
        X, Y = X.X, X.Y
    if Y is None:
        raise TypeError("cross_fit_scores(model, X, Y) needs Y")
    if method not in ("decision_function", "predict_proba"):
        raise DataFormatError(f"method must be 'decision_function' or 'predict_proba', got "
                              f"{method!r}", field="method")
    if isinstance(cv, bool) or not isinstance(cv, int | np.integer) or cv < 2:
        raise DataFormatError(f"cv must be an int >= 2, got {cv!r}", field="cv")
    positive_int(k, "k")
    Yc = as_label_matrix(Y)
    n, L = Yc.shape
    n_x = X.shape[0] if hasattr(X, "shape") else len(X)
    if n_x != n:
        raise DataFormatError(f"X has {n_x} rows but Y has {n}")
    if n < cv:
        raise DataFormatError(f"cv={cv} folds need at least {cv} rows, got {n}", field="cv")
    splitter = IterativeStratifiedKFold(n_splits=int(cv), random_state=random_state)
    folds = np.full(n, -1, np.int64)
    parts: list[tuple[np.ndarray, sp.csr_matrix]] = []
    seen: Counter[tuple[type, str]] = Counter()
    for f, (train, test) in enumerate(splitter.split(np.zeros((n, 1)), Yc)):
        folds[test] = f
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = clone(model)
            if labels is None:
                m.fit(_rows(X, train), Yc[train])
            else:
                m.fit(_rows(X, train), Yc[train], labels=labels)
            S = _score(m, _rows(X, test), int(k), method)
        for w in caught:
            seen[(w.category, str(w.message))] += 1
        if S.shape != (test.size, L):
            raise DataFormatError(f"fold {f}: the model scored shape {S.shape}, expected "
                                  f"{(test.size, L)}")
        parts.append((test, sp.csr_matrix(S)))
    for (category, message), count in seen.items():
        warnings.warn(f"cross-fitting ({count} of {cv} folds): {message}", category,
                      stacklevel=2)
    order = np.concatenate([t for t, _ in parts])
    stacked = sp.vstack([S for _, S in parts], format="csr")
    inv = np.empty(n, np.int64)
    inv[order] = np.arange(n)
    out = sp.csr_matrix(stacked[inv])
    out.sort_indices()
    if out.indices.dtype not in (np.int32, np.int64):  # pragma: no cover - scipy keeps them
        out.indices = out.indices.astype(np.int64)
    return (out, folds) if return_folds else out


def _rows(X: Any, idx: np.ndarray) -> Any:
    if isinstance(X, list | tuple):
        return [X[i] for i in idx]
    return X[idx]


def linear_grid(X: Any, n_labels: int, *, C: float, loss: str | None) -> list[dict[str, Any]]:
    """The ``[{"loss", "C"}, ...]`` candidates for a training problem (module docstring),
    the model's own ``(loss, C)`` first. ``loss=None`` (a model with ``C`` and no ``loss``:
    chains, label powerset, RAkEL): ``[{"C"}, ...]``, the grid's C values alone."""
    nnz = X.nnz if sp.issparse(X) else int(np.count_nonzero(X))
    work = float(nnz) * float(n_labels)
    Cs, losses = next((c, lo) for limit, c, lo in GRID_RULES if work <= limit)
    if loss is None:
        out = [{"C": float(C)}]
        out += [{"C": float(c)} for c in Cs if float(c) != float(C)]
        return out
    out = [{"loss": loss, "C": float(C)}]
    for lo in losses:
        for c in Cs:
            cand = {"loss": lo, "C": float(c)}
            if cand not in out:
                out.append(cand)
    return out


def select_linear_params(make: Any, X: Any, Y: Any, grid: list[dict[str, Any]], score: Any, *,
                         cv: int = 5, k: int = 10, random_state: int | None = 0,
                         labels: Any = None, margin: Any = 0.0
                         ) -> tuple[dict[str, Any], sp.csr_matrix, np.ndarray,
                                    list[dict[str, Any]]]:
    """Cross-fit ``make(params)`` for every ``params`` of ``grid`` on the same folds; return
    ``(best params, its out-of-fold scores, the fold ids, the table)``.

    ``score(S, folds)`` -> float, higher is better; the first best candidate wins ties.
    ``margin`` (a float, or a function of the first candidate's score giving one): the first
    candidate (the model's own parameters) is kept unless the best beats it by more than
    that (a difference within the estimate's noise does not move a default:
    :func:`f1_noise_margin`). The table holds every candidate with its ``"score"``. Only the
    training rows X, Y are seen.
    """
    if not grid:
        raise DataFormatError("no candidate parameters to select from", field="grid")
    best = first = None
    table = []
    for params in grid:
        S, folds = cross_fit_scores(make(params), X, Y, cv=cv, k=k, random_state=random_state,
                                    labels=labels, return_folds=True)
        value = float(score(S, folds))
        table.append({**params, "score": value})
        if best is None or value > best[0]:
            best = (value, params, S, folds)
        if first is None:
            first = best
    if best[0] - first[0] <= (margin(first[0]) if callable(margin) else float(margin)):
        best = first
    return dict(best[1]), best[2], best[3], table


def f1_noise_margin(score: float, Y: Any) -> float:
    """One standard error of an F1 estimate ``score`` from Y's positive (row, label) pairs,
    as a binomial proportion: ``sqrt(score (1 - score) / n_positive)`` (0 without positives).
    On 391 rows of 6 labels (MULAN emotions, 727 pairs) at F1 0.69: 0.017; on 1500 rows of
    14 labels (yeast, 6,355 pairs) at 0.65: 0.006."""
    n_pos = int(np.count_nonzero(as_label_matrix(Y).data))
    if n_pos == 0:
        return 0.0
    s = min(max(float(score), 0.0), 1.0)
    return float(np.sqrt(s * (1.0 - s) / n_pos))
