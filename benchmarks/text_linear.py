"""Linear text models for ``benchmarks/text.py``: every choice by cross-validation on training rows.

:func:`select_and_fit` takes a training feature matrix ``X`` (n_samples, n_features) and label
matrix ``Y`` (n_samples, n_labels) and makes every choice on those rows only, as
``benchmarks/decisions.py`` does (the test rows give the reported numbers and nothing else):

1. For each ``(loss, C)`` in ``grid``: out-of-fold scores of ``OneVsRest(loss, C, bias 1, no
   pruning)`` on the training rows (:func:`labelwise.crossfit.cross_fit_scores`, ``cv``
   iterative-stratified folds, seed 0, all ``n_labels`` scores kept).
2. Macro-F1 policy: ``PerLabelThreshold(objective="macro-f1", shrinkage=s)`` for s in
   ``shrinkages``; the (model, s) pair with the best
   :func:`labelwise.decision.cross_validated_score` (thresholds tuned on 4/5 of the
   out-of-fold rows, scored on the other 1/5, pooled macro-F1) wins (first listed on ties);
   its thresholds are fitted with the cross-fitting folds (tuned on each fold model's own
   scores and averaged).
3. Micro-F1 policy on the same model: ``objective="micro-f1"``, shrinkage chosen the same way
   by cross-validated micro-F1, thresholds fitted on the pooled out-of-fold scores.
4. The chosen model refitted on all training rows.

``selection_s`` (steps 1-3) and ``fit_s`` (step 4) are both part of the reported train time.

:func:`select_on_tuning` is the cheaper variant for slow feature matrices (a dense embedding
block makes each fit ~10x slower): each grid model is fitted once on the training rows and
scored on a held-out tuning split; the (model, shrinkage) pair and the micro shrinkage are
chosen by ``cross_validated_score`` on those tuning scores (5 folds), and the thresholds of
both policies are then fitted on all tuning rows. No refit: the chosen model is the one
fitted on the training rows.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

GRID = (("squared_hinge", 0.1), ("squared_hinge", 0.3), ("squared_hinge", 1.0),
        ("logistic", 1.0))
SHRINKAGES = (0.0, 3.0, 10.0, 30.0)


def select_and_fit(X: Any, Y: Any, *, grid=GRID, shrinkages=SHRINKAGES, cv: int = 5,
                   n_threads: int | None = None) -> tuple[Any, Any, Any, dict]:
    """(model, macro_policy, micro_policy, info); see the module docstring."""
    from labelwise.crossfit import cross_fit_scores
    from labelwise.decision import PerLabelThreshold, cross_validated_score
    from labelwise.models import OneVsRest

    L = Y.shape[1]

    def make(loss: str, C: float) -> Any:
        return OneVsRest(loss=loss, C=C, bias=1.0, prune_threshold=0.0, normalize=None,
                         n_threads=n_threads, random_state=0)

    t0 = time.perf_counter()
    rows, oof, folds = [], {}, None
    for loss, C in grid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # labels without positives in a fold, max_iter
            S, folds = cross_fit_scores(make(loss, C), X, Y, cv=cv, k=L, random_state=0,
                                        return_folds=True)
        oof[(loss, C)] = S
        for s in shrinkages:
            pol = PerLabelThreshold(objective="macro-f1", shrinkage=s)
            rows.append({"loss": loss, "C": C, "shrinkage": s,
                         "cv_macro_f1": round(cross_validated_score(pol, S, Y, cv=cv,
                                                                    folds=folds), 4)})
    best = max(rows, key=lambda r: r["cv_macro_f1"])
    key = (best["loss"], best["C"])
    S = oof[key]
    macro = PerLabelThreshold(objective="macro-f1", shrinkage=best["shrinkage"]).fit(
        S, Y, folds=folds)
    micro_cv = {s: cross_validated_score(PerLabelThreshold(objective="micro-f1", shrinkage=s),
                                         S, Y, cv=cv, metric="micro-f1") for s in shrinkages}
    micro_s = max(micro_cv, key=micro_cv.get)
    micro = PerLabelThreshold(objective="micro-f1", shrinkage=micro_s).fit(S, Y)
    selection_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = make(*key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, Y)
    fit_s = time.perf_counter() - t0
    info = {"loss": key[0], "C": key[1], "macro_shrinkage": best["shrinkage"],
            "cv_macro_f1": best["cv_macro_f1"], "micro_shrinkage": micro_s,
            "cv_micro_f1": round(float(micro_cv[micro_s]), 4),
            "selection_s": round(selection_s, 1), "fit_s": round(fit_s, 1),
            "n_features": int(X.shape[1]), "nnz_per_row": round(X.nnz / max(1, X.shape[0]), 1),
            "grid": rows}
    return model, macro, micro, info


def select_on_tuning(X: Any, Y: Any, X_tune: Any, Y_tune: Any, *, grid=GRID,
                     shrinkages=SHRINKAGES, cv: int = 5, n_threads: int | None = None
                     ) -> tuple[Any, Any, Any, dict]:
    """(model, macro_policy, micro_policy, info); see the module docstring."""
    from labelwise.decision import PerLabelThreshold, cross_validated_score
    from labelwise.models import OneVsRest

    L = Y.shape[1]
    t0 = time.perf_counter()
    rows, fitted, fit_s = [], {}, {}
    for loss, C in grid:
        t1 = time.perf_counter()
        model = OneVsRest(loss=loss, C=C, bias=1.0, prune_threshold=0.0, normalize=None,
                          n_threads=n_threads, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, Y)
        fit_s[(loss, C)] = round(time.perf_counter() - t1, 1)
        S = model.decision_function(X_tune, k=L)
        fitted[(loss, C)] = (model, S)
        for s in shrinkages:
            pol = PerLabelThreshold(objective="macro-f1", shrinkage=s)
            rows.append({"loss": loss, "C": C, "shrinkage": s, "fit_s": fit_s[(loss, C)],
                         "tune_cv_macro_f1": round(cross_validated_score(pol, S, Y_tune,
                                                                         cv=cv), 4)})
    best = max(rows, key=lambda r: r["tune_cv_macro_f1"])
    key = (best["loss"], best["C"])
    model, S = fitted[key]
    macro = PerLabelThreshold(objective="macro-f1", shrinkage=best["shrinkage"]).fit(S, Y_tune)
    micro_cv = {s: cross_validated_score(PerLabelThreshold(objective="micro-f1", shrinkage=s),
                                         S, Y_tune, cv=cv, metric="micro-f1")
                for s in shrinkages}
    micro_s = max(micro_cv, key=micro_cv.get)
    micro = PerLabelThreshold(objective="micro-f1", shrinkage=micro_s).fit(S, Y_tune)
    info = {"loss": key[0], "C": key[1], "macro_shrinkage": best["shrinkage"],
            "tune_cv_macro_f1": best["tune_cv_macro_f1"], "micro_shrinkage": micro_s,
            "tune_cv_micro_f1": round(float(micro_cv[micro_s]), 4),
            "selection_s": round(time.perf_counter() - t0, 1), "fit_s": 0.0,
            "n_features": int(X.shape[1]), "nnz_per_row": round(X.nnz / max(1, X.shape[0]), 1),
            "grid": rows}
    return model, macro, micro, info


def evaluate(model: Any, macro: Any, micro: Any, X_test: Any, Y_test: Any) -> dict:
    """Test micro-F1 (micro policy), macro-F1 (macro policy) and the model's items/s."""
    from labelwise.metrics import LabelSets, f1_score

    t0 = time.perf_counter()
    S = model.decision_function(X_test, k=Y_test.shape[1])
    per_s = Y_test.shape[0] / (time.perf_counter() - t0)
    P_macro, P_micro = LabelSets(macro.apply(S)), LabelSets(micro.apply(S))
    return {"macro_f1": float(f1_score(Y_test, P_macro, average="macro")),
            "micro_f1": float(f1_score(Y_test, P_micro, average="micro")),
            "micro_f1_of_macro_policy": float(f1_score(Y_test, P_macro, average="micro")),
            "predict_per_s": round(float(per_s), 1)}


def featurize(featurizer: Any, train_texts: list[str], test_texts: list[str]
              ) -> tuple[Any, Any, float, float]:
    """(X_train, X_test, seconds to fit + transform the training texts, test texts/s)."""
    t0 = time.perf_counter()
    featurizer.fit(train_texts)
    X_train = featurizer.transform(train_texts)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    X_test = featurizer.transform(test_texts)
    per_s = len(test_texts) / (time.perf_counter() - t0)
    return X_train, X_test, fit_s, float(np.round(per_s, 1))
