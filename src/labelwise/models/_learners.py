"""Base learners of the label-dependence families (chains, label powerset, RAkEL).

A family's ``base`` parameter is one of:

- ``"linear"``: labelwise's L2-regularised logistic regression, trained by the solvers of
  :class:`~labelwise.models.ovr.OneVsRest` (:func:`~labelwise.models.ovr.fit_linear` with
  ``loss="logistic"``, no pruning): dual coordinate descent, or on dense features the
  primal Newton solver (:mod:`labelwise.models._newton`), which also takes a chain's
  positions, or all of RAkEL's labelsets, in one call (:func:`fit_chain_linear`,
  :func:`fit_multiclass_many`);
- any scikit-learn classifier: it is cloned for every sub-problem, never fitted in place;
- a dict ``{"sklearn": NAME, "params": {...}}`` naming one of :data:`SKLEARN_LINEAR` (what a
  saved model's manifest holds for a scikit-learn linear base, so it can be fitted again).

Fitted learners are *linear* (a weight vector or matrix plus intercepts, scored through a
link) whenever the base is ``"linear"`` or a scikit-learn model with ``coef_`` and
``intercept_``; those are saved as arrays. Other scikit-learn models (trees, kNN, ...) are
kept as live objects: the family fits and predicts with them, but refuses to save (there is
no pickle in labelwise model files).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import LabelwiseError

__all__ = ["SKLEARN_LINEAR", "check_base", "resolve_base", "base_to_json", "is_linear_base",
           "fit_binary", "fit_multiclass", "fit_chain_linear", "fit_multiclass_many",
           "position_masks", "NotSavableError"]

#: scikit-learn linear classifiers a saved model may name as its base (an allow-list:
#: nothing else is imported when a model is loaded)
SKLEARN_LINEAR = {
    "LogisticRegression": "sklearn.linear_model",
    "RidgeClassifier": "sklearn.linear_model",
    "SGDClassifier": "sklearn.linear_model",
    "Perceptron": "sklearn.linear_model",
    "LinearSVC": "sklearn.svm",
}


class NotSavableError(LabelwiseError, TypeError):
    """The model holds a scikit-learn base that cannot be written as arrays."""


def check_base(base: Any) -> None:
    """Raise ValueError unless ``base`` is "linear", a scikit-learn classifier or a saved
    linear-base description."""
    if isinstance(base, str):
        if base != "linear":
            raise ValueError(f"base must be 'linear', a scikit-learn classifier or "
                             f"{{'sklearn': NAME, 'params': {{...}}}}, got {base!r}")
        return
    if isinstance(base, dict):
        name = base.get("sklearn")
        if name not in SKLEARN_LINEAR or not isinstance(base.get("params", {}), dict) \
                or set(base) - {"sklearn", "params"}:
            raise ValueError(f"base {base!r}: a saved base names one of "
                             f"{', '.join(sorted(SKLEARN_LINEAR))} with its params")
        return
    if not (hasattr(base, "fit") and hasattr(base, "get_params")
            and (hasattr(base, "predict_proba") or hasattr(base, "decision_function"))):
        raise ValueError(f"base {type(base).__name__} is not a scikit-learn classifier "
                         "(needs fit, get_params and predict_proba or decision_function)")


def resolve_base(base: Any) -> Any:
    """"linear" or a fresh (unfitted) scikit-learn estimator for ``base``."""
    if isinstance(base, str):
        return base
    from sklearn.base import clone

    if isinstance(base, dict):
        cls = getattr(importlib.import_module(SKLEARN_LINEAR[base["sklearn"]]), base["sklearn"])
        return cls(**base.get("params", {}))
    return clone(base)


def is_linear_base(base: Any) -> bool:
    return isinstance(base, str | dict)


def base_to_json(base: Any, learners_linear: bool) -> Any:
    """The JSON form of ``base`` for a manifest; NotSavableError when it has none."""
    if isinstance(base, str | dict):
        return base
    name = type(base).__name__
    if not learners_linear or SKLEARN_LINEAR.get(name) is None \
            or not type(base).__module__.startswith(SKLEARN_LINEAR[name]):
        raise NotSavableError(
            f"cannot save a model whose base is {name}: only base='linear' or a scikit-learn "
            f"linear classifier ({', '.join(sorted(SKLEARN_LINEAR))}) is stored as arrays, and "
            "labelwise never pickles models")
    import json

    params = base.get_params(deep=False)
    try:
        params = json.loads(json.dumps(params, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise NotSavableError(f"cannot save base {name}: its parameters are not plain JSON "
                              f"({e})") from None
    return {"sklearn": name, "params": params}


def _const_logit(y: np.ndarray) -> float:
    p = min(max(float(np.mean(y)), 1e-3), 1 - 1e-3)
    return float(np.log(p / (1 - p)))


def fit_binary(X: sp.csr_matrix, y: np.ndarray, base: Any, *, C: float,
               seed: int, sq: np.ndarray | None = None) -> tuple[np.ndarray, float] | Any:
    """One binary classifier on X (CSR float32) and y (bool (n,)).

    Returns ``(w, b)`` (w float64 (d,), scored as sigmoid(x.w + b)) for linear bases and for
    one-class problems (w = 0, b = the logit of the clipped positive rate), else the fitted
    scikit-learn estimator. ``sq``: X's row norms for the linear solver
    (:func:`labelwise.models.ovr.row_sq_norms` with bias 1), when the caller has them."""
    y = np.asarray(y, dtype=bool)
    d = X.shape[1]
    if y.all() or not y.any():
        return np.zeros(d), _const_logit(y)
    if base == "linear":
        positives = np.flatnonzero(y).astype(np.int64)
        W, b = _fit_linear_alone(X, np.array([0, positives.size], np.int64), positives, C,
                                 seed, sq)
        return W[:, 0], float(b[0])
    est = resolve_base(base)
    _set_seed(est, seed)
    est.fit(X, y.astype(np.int64))
    if hasattr(est, "coef_") and hasattr(est, "intercept_") and np.ndim(est.coef_) == 2 \
            and est.coef_.shape[0] == 1 and list(est.classes_) == [0, 1]:
        coef = est.coef_
        coef = coef.toarray() if sp.issparse(coef) else np.asarray(coef)
        return np.asarray(coef[0], dtype=np.float64), float(np.ravel(est.intercept_)[0])
    return est


def _fit_linear_alone(X: sp.csr_matrix, y_indptr: np.ndarray, y_indices: np.ndarray, C: float,
                      seed: int, sq: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``fit_linear(X, Y, loss="logistic", C=C, bias=1, tol=0.1, max_iter=1000,
    prune_threshold=0, seed=seed)`` for labels solved one by one, as dense float64 ``(W (d,
    L), b (L,))``; Y given in CSC form (``y_indptr``, ``y_indices``: each label's positive
    rows, ascending). On sparse features the same solves, seeds and weights as fit_linear's
    label-by-label kernel (``_dcd.train_chunk``), each by ``_dcd.solve_into`` on one
    thread, without the label matrix's and the weights' conversions through scipy (most of
    a chain position's and a small labelset's time on a small set) and without numba's
    runtime; on dense features fit_linear's Newton solver. ``sq``: X's row norms with bias
    1, when the caller has them (else computed)."""
    from . import _dcd
    from ._newton import uses_newton
    from .ovr import newton_block, row_sq_norms

    n, d = X.shape
    L = y_indptr.shape[0] - 1
    labels = np.arange(L, dtype=np.int64)
    if uses_newton(X.nnz, n, d, L, "logistic"):  # the same layout, by fit_linear's block
        counts, feat, vals, bias_w, _ = newton_block(
            X, y_indptr, y_indices, labels, loss="logistic", C=C, bias=1.0, tol=0.1,
            max_iter=1000, prune_threshold=0.0)
        W = np.zeros((d, L))
        W[feat, np.repeat(np.arange(L), counts)] = vals
        return W, bias_w.astype(np.float32).astype(np.float64)
    # train_chunk's solves (its seed for each label, prune 0: the weights kept as float32,
    # the bias weight too), by solve_into in arrays made here: no kernel that allocates,
    # so a fresh process links no numba runtime for them
    if sq is None:
        sq = row_sq_norms(X, 1.0)
    W = np.zeros((d, L))
    b = np.zeros(L)
    w = np.empty(d + 1)
    y = np.empty(n)
    alpha2 = np.empty(2 * n)
    index = np.empty(n, np.int64)
    rows = np.arange(n, dtype=np.int64)
    state = np.empty(1, np.uint64)
    for j in range(L):
        y.fill(-1.0)
        y[y_indices[y_indptr[j]:y_indptr[j + 1]]] = 1.0
        w.fill(0.0)
        _dcd.solve_into(X.indptr, X.indices, X.data, sq, y, _dcd.LOSS_LOGISTIC, float(C), 1.0,
                        0.1, 1000, (int(seed) + j * _dcd.LABEL_SEED_STEP) % 4294967296, w, alpha2,
                        index, rows, state)
        W[:, j] = np.where(w[:d] != 0.0, w[:d].astype(np.float32), 0.0)
        b[j] = w[d]
    return W, b.astype(np.float32).astype(np.float64)


def _newton_logistic(X: sp.csr_matrix, Y: np.ndarray, C: float,
                     mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """fit_linear's logistic problems (bias 1, tol 0.1, no pruning) by the Newton solver, as
    dense float64 ``(W (d, L), b (L,))``, float32 values as fit_linear gives them."""
    from .ovr import newton_weights

    W, b, _ = newton_weights(X, Y, loss="logistic", C=C, bias=1.0, tol=0.1, max_iter=1000,
                             mask=mask)
    return W.astype(np.float64), b.astype(np.float32).astype(np.float64)


def fit_chain_linear(XA: sp.csr_matrix, Y: np.ndarray, d: int,
                     C: float) -> list[tuple[np.ndarray, float]] | None:
    """A classifier chain's positions with the linear base in one Newton call, or None where
    the Newton solver does not serve (sparse features; then one by one).

    ``XA`` (CSR (n, d + L)): X and the true labels in chain order; position ``p`` is the
    logistic problem of column ``p`` of ``Y`` (bool (n, L)) on the features ``XA[:, :d + p]``
    (a mask over the shared features), as :func:`fit_binary` solves it alone; a position
    with one class gets :func:`fit_binary`'s constant."""
    from ._newton import uses_newton

    n, L = Y.shape
    if not uses_newton(XA.nnz, n, XA.shape[1], L, "logistic"):
        return None
    counts = Y.sum(axis=0)
    mixed = np.flatnonzero((counts > 0) & (counts < n))
    out: list[tuple[np.ndarray, float]] = [
        (np.zeros(d + p), _const_logit(Y[:, p])) for p in range(L)]
    if mixed.size:
        mask = np.zeros((XA.shape[1], mixed.size), bool)
        for j, p in enumerate(mixed):
            mask[:d + p, j] = True
        W, b = _newton_logistic(XA, Y[:, mixed], C, mask)
        for j, p in enumerate(mixed):
            out[p] = (W[:d + p, j], float(b[j]))
    return out


def position_masks(XA: sp.csr_matrix, Y: np.ndarray, d: int) -> list[bool]:
    """For each chain position ``p``, whether :func:`fit_binary` with the linear base may
    solve it on all of ``XA`` with the label columns from ``d + p`` on stored as zeros
    instead of on the slice ``XA[:, :d + p]``: the sparse solver's numbers are then the
    same (a stored zero adds nothing to a margin and its weight stays 0; the row norms
    come from :func:`chain_row_norms`), and it takes no scipy slice per position. True
    where neither the slice nor the whole width is dense (either would take the Newton
    solver, whose arrays span the width)."""
    from ._newton import uses_newton

    n = XA.shape[0]
    if uses_newton(XA.nnz, n, XA.shape[1], 1, "logistic"):  # the whole width: dense
        return [False] * Y.shape[1]
    nnz = XA.nnz - int(Y.sum())  # X's part
    out = []
    for p in range(Y.shape[1]):
        out.append(not uses_newton(nnz, n, d + p, 1, "logistic"))
        nnz += int(Y[:, p].sum())
    return out


def chain_row_norms(XA: sp.csr_matrix, Y: np.ndarray, d: int) -> list[np.ndarray]:
    """The row norms (bias 1) of a chain's position matrices ``XA[:, :d + p]`` (X and the
    labels before p; ``XA``'s indices sorted, the labels' columns after X's, 1.0 where
    set), the numbers :func:`labelwise.models.ovr.row_sq_norms` gives each: X's part once,
    then each label's square added in the chain's order, as the sum runs along a row."""
    from .ovr import row_sq_norms

    sq = row_sq_norms(XA[:, :d], 1.0)
    out = [sq]
    for p in range(1, Y.shape[1]):
        sq = sq + Y[:, p - 1]  # label p - 1 is stored (1.0) where set
        out.append(sq)
    return out


def fit_multiclass_many(X: sp.csr_matrix, problems: list[tuple[np.ndarray, int]],
                        C: float) -> list[tuple[str, Any]] | None:
    """:func:`fit_multiclass` with the linear base for several problems over all rows of the
    same X (RAkEL's labelsets): every problem's classes in one Newton call, or None where the
    Newton solver does not serve. ``problems``: ``(class of each row, number of classes)``."""
    from ._newton import uses_newton

    n = X.shape[0]
    sizes = [k for _, k in problems if k > 1]
    if not sizes or not uses_newton(X.nnz, n, X.shape[1], sum(sizes), "logistic"):
        return None
    Y = np.concatenate([c[:, None] == np.arange(k) for c, k in problems if k > 1], axis=1)
    W, b = _newton_logistic(X, Y, C)
    out: list[tuple[str, Any]] = []
    at = 0
    for _, k in problems:
        if k == 1:
            out.append(("const", None))
            continue
        out.append(("sigmoid", (W[:, at:at + k], b[at:at + k])))
        at += k
    return out


def binary_proba(learner: Any, X: Any) -> np.ndarray:
    """P(y = 1) of a fitted non-linear scikit-learn learner (float64 (n,))."""
    if hasattr(learner, "predict_proba"):
        P = np.asarray(learner.predict_proba(X), dtype=np.float64)
        return P[:, list(learner.classes_).index(1)]
    from .base import sigmoid

    return sigmoid(np.asarray(learner.decision_function(X), dtype=np.float64))


def fit_multiclass(X: sp.csr_matrix, c: np.ndarray, n_classes: int, base: Any, *, C: float,
                   seed: int, n_threads: int | None,
                   sq: np.ndarray | None = None) -> tuple[str, Any]:
    """A classifier of class ids ``c`` (int64 (n,), all of 0..n_classes-1 present).

    Returns ``("sigmoid", (W, b))`` (labelwise linear: one logistic model per class,
    P(class) = normalised sigmoids), ``("softmax", (W, b))`` (a scikit-learn linear model:
    P = softmax of its margins; W float64 (d, n_classes)), ``("const", None)`` when there is
    one class, or ``("sklearn", est)``. ``sq``: as :func:`fit_binary`'s."""
    if n_classes == 1:
        return "const", None
    if base == "linear":
        from .ovr import fit_linear, lockstep_width
        from .topk import resolve_n_threads

        if not lockstep_width("logistic", X.shape[0], X.shape[1], n_classes) \
                and resolve_n_threads(n_threads) == 1:  # the classes one by one, one thread
            order = np.argsort(c, kind="stable").astype(np.int64)
            indptr = np.zeros(n_classes + 1, np.int64)
            np.cumsum(np.bincount(c, minlength=n_classes), out=indptr[1:])
            return "sigmoid", _fit_linear_alone(X, indptr, order, C, seed, sq)
        Y = sp.csr_matrix((np.ones(len(c), np.float32), (np.arange(len(c)), c)),
                          shape=(len(c), n_classes))
        coef, intercept, _ = fit_linear(X, Y, loss="logistic", C=C, bias=1.0, tol=0.1,
                                        max_iter=1000, prune_threshold=0.0,
                                        n_threads=n_threads, seed=seed)
        return "sigmoid", (np.asarray(coef.toarray(), np.float64),
                           np.asarray(intercept, np.float64))
    est = resolve_base(base)
    _set_seed(est, seed)
    est.fit(X, c)
    if hasattr(est, "coef_") and hasattr(est, "intercept_") \
            and list(est.classes_) == list(range(n_classes)):
        coef = est.coef_.toarray() if sp.issparse(est.coef_) else np.asarray(est.coef_)
        b = np.ravel(np.asarray(est.intercept_, dtype=np.float64))
        if coef.shape[0] == 1:  # two classes: margin m for class 1 is softmax([0, m])
            coef = np.vstack([np.zeros_like(coef), coef])
            b = np.array([0.0, b[0]])
        return "softmax", (np.asarray(coef.T, np.float64), b)
    return "sklearn", est


def multiclass_proba(kind: str, learner: Any, X: sp.csr_matrix, n_classes: int) -> np.ndarray:
    """Class probabilities (float64 (n, n_classes)) of a fit_multiclass result."""
    from .base import sigmoid

    n = X.shape[0]
    if kind == "const":
        return np.ones((n, 1))
    if kind == "sklearn":
        P = np.zeros((n, n_classes))
        if hasattr(learner, "predict_proba"):
            P[:, learner.classes_] = learner.predict_proba(X)
        else:
            M = np.asarray(learner.decision_function(X), dtype=np.float64)
            P[:, learner.classes_] = _softmax(M if M.ndim == 2 else np.c_[np.zeros(n), M])
        return P
    W, b = learner
    M = np.asarray(X @ W) + b[None, :]
    if kind == "softmax":
        return _softmax(M)
    S = sigmoid(M)
    tot = S.sum(axis=1, keepdims=True)
    return S / np.maximum(tot, 1e-300)


def _softmax(M: np.ndarray) -> np.ndarray:
    E = np.exp(M - M.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def _set_seed(est: Any, seed: int) -> None:
    if "random_state" in est.get_params(deep=False):
        est.set_params(random_state=int(seed) % (2**31))


#: ``normalize`` choices of the chain, powerset and ML-kNN families
NORMALIZE = ("auto", "standard", "l2", None)
#: "auto" standardises the columns when at least this fraction of X's entries is stored
DENSE_FRACTION = 0.9


def check_normalize(normalize: Any) -> None:
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")


def fit_scaling(X: sp.csr_matrix, normalize: Any) -> tuple[np.ndarray, np.ndarray]:
    """Column means and inverse standard deviations (float64 (d,)) when ``normalize`` asks for
    standardised columns ("standard", or "auto" on dense features), else two empty arrays.
    Constant columns get scale 1 (after centering they are 0)."""
    n, d = X.shape
    dense = X.nnz >= DENSE_FRACTION * n * d
    if normalize == "standard" or (normalize == "auto" and dense):
        # two-pass, in float64 (the float32 values widened as they are read, no float64
        # copy): a constant column has std exactly 0
        D = X.toarray()
        mean = D.mean(axis=0, dtype=np.float64)
        std = D.std(axis=0, dtype=np.float64)
        return mean, np.where(std > 1e-12, 1.0 / np.where(std > 1e-12, std, 1.0), 1.0)
    return np.zeros(0), np.zeros(0)


def scale_rows(X: sp.csr_matrix, mean: np.ndarray, scale: np.ndarray,
               normalize: Any) -> sp.csr_matrix:
    """X with the fitted column standardisation (when ``mean`` is not empty: the result is
    dense, stored as CSR) and then, unless ``normalize`` is None, every row at unit length
    (``_tree_build.l2_normalize_rows``: in numpy on small sets, so no numba kernel to load,
    which was most of ML-kNN's fit on a small set in a fresh process)."""
    if mean.size:
        from .base import dense_to_csr

        D = X.toarray() - mean[None, :]  # float64
        D *= scale[None, :]
        X = dense_to_csr(D.astype(np.float32))
    if normalize is None:
        return X
    from ._tree_build import l2_normalize_rows

    return l2_normalize_rows(X)


def check_scaling(arrays: dict[str, np.ndarray], d: int, where: str) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    from ..errors import DataFormatError

    mean, scale = (np.asarray(arrays.get("col_mean", np.zeros(0))),
                   np.asarray(arrays.get("col_scale", np.zeros(0))))
    if mean.shape != scale.shape or mean.shape not in ((0,), (d,)):
        raise DataFormatError(f"{where}: col_mean/col_scale must both be empty or have {d} "
                              "entries", field="arrays")
    return mean, scale
