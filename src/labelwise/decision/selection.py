"""Choosing a decision policy (or its shrinkage) by cross-validation on tuning scores.

A policy's settings (e.g. :class:`~labelwise.decision.PerLabelThreshold`'s ``shrinkage``,
or whether thresholds are set on raw scores or calibrated probabilities) are chosen on the
same cross-fitted training scores the policy is tuned on, never on evaluation rows:

:func:`cross_validated_score` ``(policy, S, Y, cv=5, metric="macro-f1")``
    splits the rows of ``S`` (out-of-fold scores from
    :func:`labelwise.crossfit.cross_fit_scores`) into ``cv`` folds by iterative
    stratification; for each fold a fresh copy of the policy (:func:`clone_policy`: same
    parameters, nothing learned) is fitted on the other folds and applied to it; the label
    sets of all folds are pooled and scored once with ``metric`` (``"micro-f1"``,
    ``"macro-f1"`` or ``"samples-f1"``, :func:`labelwise.metrics.f1_score`, zero division
    0). Since every row of ``S`` is already out-of-fold for the model, this estimates the
    policy's score on unseen rows at the cost of a few threshold searches (no model refits).
:func:`select_policy` ``(candidates, S, Y, ...)``
    the candidate with the highest :func:`cross_validated_score` (ties: the first listed),
    refitted on all rows of ``S``, and every candidate's score.

With ``folds`` (the cross-fitting fold of every row), the policy is fitted with
``fit(S_fit, Y_fit, folds=folds_fit)``: e.g. :class:`~labelwise.decision.PerLabelThreshold`
then averages thresholds tuned within each cross-fitting fold (the rows of the CV fold are
removed from every cross-fitting fold alike).

With ``transform`` (e.g. a calibrator's ``fit_transform``-like callable
``transform(S_fit, Y_fit, S_eval) -> (T_fit, T_eval)``), each fold first maps its scores,
so a calibrator fitted inside the fold is evaluated without leakage as well.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError
from ._entries import entries, fold_ids, truth
from .policies import Combined, DecisionPolicy

__all__ = ["clone_policy", "cross_validated_score", "select_policy", "METRICS"]

METRICS = {"micro-f1": "micro", "macro-f1": "macro", "samples-f1": "samples"}


def clone_policy(policy: DecisionPolicy) -> DecisionPolicy:
    """A new, unfitted policy with the same parameters."""
    if not isinstance(policy, DecisionPolicy):
        raise TypeError(f"expected a DecisionPolicy, got {type(policy).__name__}")
    if isinstance(policy, Combined):
        inner = None if policy.threshold is None else clone_policy(policy.threshold)
        return Combined(inner, k=policy.k, at_least_one=policy.at_least_one)
    return type(policy)(**policy._params())


def _rows(S: Any, idx: np.ndarray) -> Any:
    return S[idx] if sp.issparse(S) else np.asarray(S)[idx]


def cross_validated_score(policy: DecisionPolicy, S: Any, Y: Any, *, cv: int = 5,
                          metric: str = "macro-f1", random_state: int | None = 0,
                          transform: Callable[[Any, Any, Any], tuple[Any, Any]] | None = None,
                          folds: Any = None) -> float:
    """Pooled out-of-fold ``metric`` of ``policy`` tuned within folds (module docstring)."""
    from ..metrics import LabelSets, f1_score
    from ..split import IterativeStratifiedKFold

    if metric not in METRICS:
        raise DataFormatError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}",
                              field="metric")
    if isinstance(cv, bool) or not isinstance(cv, int | np.integer) or cv < 2:
        raise DataFormatError(f"cv must be an int >= 2, got {cv!r}", field="cv")
    E = entries(S)
    Yc = truth(Y, E.shape)
    n, L = E.shape
    if n < cv:
        raise DataFormatError(f"cv={cv} folds need at least {cv} rows, got {n}", field="cv")
    f = None if folds is None else fold_ids(folds, n)
    Sc = sp.csr_matrix(S) if sp.issparse(S) else np.asarray(S)
    splitter = IterativeStratifiedKFold(n_splits=int(cv), random_state=random_state)
    parts = []
    order = []
    for train, test in splitter.split(np.zeros((n, 1)), Yc):
        S_fit, S_eval = _rows(Sc, train), _rows(Sc, test)
        if transform is not None:
            S_fit, S_eval = transform(S_fit, Yc[train], S_eval)
        if f is None:
            p = clone_policy(policy).fit(S_fit, Yc[train])
        else:
            p = clone_policy(policy).fit(S_fit, Yc[train], folds=f[train])
        parts.append(sp.csr_matrix(p.apply(S_eval)))
        order.append(test)
    idx = np.concatenate(order)
    inv = np.empty(n, np.int64)
    inv[idx] = np.arange(n)
    sets = sp.vstack(parts, format="csr")[inv]
    return float(f1_score(Yc, LabelSets(sets), average=METRICS[metric]))


def select_policy(candidates: Sequence[DecisionPolicy], S: Any, Y: Any, *, cv: int = 5,
                  metric: str = "macro-f1", random_state: int | None = 0, folds: Any = None,
                  ) -> tuple[DecisionPolicy, list[float]]:
    """``(best candidate refitted on all of S, cross-validated score of every candidate)``."""
    if len(candidates) == 0:
        raise DataFormatError("no candidate policies to select from", field="candidates")
    scores = [cross_validated_score(c, S, Y, cv=cv, metric=metric, random_state=random_state,
                                    folds=folds)
              for c in candidates]
    best = int(np.argmax(scores))
    chosen = clone_policy(candidates[best])
    return (chosen.fit(S, Y) if folds is None else chosen.fit(S, Y, folds=folds)), scores
