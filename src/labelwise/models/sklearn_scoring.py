"""scikit-learn scorers that see every label's score.

A labelwise model's ``decision_function``/``predict_proba`` return each row's top ``k``
scores as CSR (the model contract), which is what an extreme label space needs but not what
scikit-learn's ranking scorers read: ``roc_auc``, ``average_precision`` and ``neg_log_loss``
on multi-label targets need the full (n_samples, n_labels) array. :func:`full_score_scorer`
builds a scorer for ``GridSearchCV(scoring=...)`` / ``cross_val_score(scoring=...)`` that
asks the model for all ``n_labels`` scores (``k = n_labels``) as a dense array and passes
them to the metric; set-based scorers (``"f1_micro"``, ``"f1_samples"``,
``"jaccard_samples"``, ...) work by name as they are, on ``predict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["full_score_scorer"]

#: scikit-learn metrics read on scores: name -> (module attribute, method, sign)
_METRICS = {"roc_auc": ("roc_auc_score", "decision_function", 1.0),
            "average_precision": ("average_precision_score", "decision_function", 1.0),
            "neg_log_loss": ("log_loss", "predict_proba", -1.0)}


def full_score_scorer(metric: str | Callable[..., float], *, method: str = "decision_function",
                      greater_is_better: bool = True, **metric_kwargs: Any
                      ) -> Callable[[Any, Any, Any], float]:
    """A scorer ``(estimator, X, Y) -> float`` that scores all labels of every row.

    ``metric``: ``"roc_auc"``, ``"average_precision"``, ``"neg_log_loss"`` (scikit-learn's
    scorer names, with their response method and sign), or a callable ``metric(Y_true,
    S, **metric_kwargs)`` read on ``method``'s output (``"decision_function"`` or
    ``"predict_proba"``), negated when ``greater_is_better`` is False.
    """
    if isinstance(metric, str):
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {', '.join(_METRICS)} or a callable, "
                             f"got {metric!r}")
        import sklearn.metrics

        attr, method, sign = _METRICS[metric]
        func = getattr(sklearn.metrics, attr)
    else:
        func, sign = metric, 1.0 if greater_is_better else -1.0
    if method not in ("decision_function", "predict_proba"):
        raise ValueError(f"method must be 'decision_function' or 'predict_proba', got "
                         f"{method!r}")

    def scorer(estimator: Any, X: Any, Y: Any) -> float:
        n_labels = len(estimator.labels_)
        S = getattr(estimator, method)(X, k=n_labels)
        S = S.toarray() if hasattr(S, "toarray") else np.asarray(S)
        Yd = Y.toarray() if hasattr(Y, "toarray") else np.asarray(Y)
        return sign * float(func(Yd, S, **metric_kwargs))

    scorer.__name__ = f"full_score_{getattr(func, '__name__', 'metric')}"
    return scorer
