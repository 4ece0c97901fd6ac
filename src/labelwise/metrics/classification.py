"""Set-based metrics: precision/recall/F1 under every averaging, Hamming loss, subset
accuracy, Jaccard, and the image-tagging family CP/CR/CF1/OP/OR/OF1.

Input: ``Y_true`` (n_samples, n_labels) 0/1 and the predicted sets, either a
:class:`~labelwise.metrics.LabelSets` or scores with ``threshold=`` (score >= threshold) or
``k=`` (top k under the tie rule of :mod:`labelwise.metrics.ranking`); see
:mod:`labelwise.metrics._inputs`.

Counts: per label ``tp_l``, ``pred_l`` (predicted), ``true_l`` (support); per sample the same
over the row. Definitions follow scikit-learn exactly::

    precision = tp / pred      recall = tp / true      F1 = 2 tp / (pred + true)
    micro     : the ratios of the summed counts (= OP, OR, OF1 of image tagging)
    macro     : the mean over labels of the per-label ratios
    weighted  : the per-label ratios averaged with weights true_l (all weights 0: plain mean)
    samples   : the mean over samples of the per-sample ratios
    CP, CR    : macro precision and macro recall;  CF1 = 2 CP CR / (CP + CR)
    OP, OR    : micro precision and micro recall;  OF1 = 2 OP OR / (OP + OR)
    Hamming loss    = (sum pred + sum true - 2 sum tp) / (n_samples * n_labels)
    subset accuracy = share of samples whose predicted set equals the true set
    Jaccard         = tp / (pred + true - tp), averaged as above (default "samples")

Zero division: a ratio with a zero denominator (a label never predicted, a row without true
labels, ...) takes ``zero_division``: 0.0 (default, scikit-learn's value for its "warn"
default, without the warning), 1.0, or ``np.nan``, which leaves it out of the averages as in
scikit-learn (an average over nothing is nan). CF1/OF1 with CP + CR = 0 are
``zero_division`` too. Jaccard averages with NaN propagating, as scikit-learn does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError
from ._inputs import as_sets, as_truth
from .ranking import _check_zero_division

__all__ = ["SetCounts", "set_counts", "precision_recall_f1", "precision_score",
           "recall_score", "f1_score", "hamming_loss", "subset_accuracy", "jaccard_score",
           "tagging_scores", "cp_score", "cr_score", "cf1_score", "op_score", "or_score",
           "of1_score"]

AVERAGES = ("micro", "macro", "samples", "weighted")


@dataclass(frozen=True)
class SetCounts:
    """Confusion counts of predicted sets (float64 arrays)."""

    n_samples: int
    n_labels: int
    tp_label: np.ndarray
    pred_label: np.ndarray
    true_label: np.ndarray
    tp_row: np.ndarray
    pred_row: np.ndarray
    true_row: np.ndarray


def _counts_of(Y: sp.csr_matrix, P: sp.csr_matrix) -> SetCounts:
    n, L = Y.shape
    T = Y.multiply(P).tocsr()
    T.eliminate_zeros()
    f = np.float64
    return SetCounts(
        n, L,
        tp_label=np.bincount(T.indices, minlength=L).astype(f),
        pred_label=np.bincount(P.indices, minlength=L).astype(f),
        true_label=np.bincount(Y.indices, minlength=L).astype(f),
        tp_row=np.diff(T.indptr).astype(f),
        pred_row=np.diff(P.indptr).astype(f),
        true_row=np.diff(Y.indptr).astype(f),
    )


def set_counts(Y_true: Any, Y_pred: Any, *, threshold: float | None = None,
               k: int | None = None) -> SetCounts:
    """Per-label and per-sample tp / predicted / true counts."""
    Y = as_truth(Y_true)
    P = as_sets(Y_pred, Y.shape, threshold=threshold, k=k)
    return _counts_of(Y, P)


def _divide(num: np.ndarray, den: np.ndarray, z: float) -> np.ndarray:
    out = np.full(num.shape, z, dtype=np.float64)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def _nanaverage(a: np.ndarray, weights: np.ndarray | None = None) -> float:
    """scikit-learn's ``_nanaverage``: NaNs left out; all-zero weights mean a plain mean."""
    mask = np.isnan(a)
    if a.size == 0 or mask.all():
        return float("nan")
    if weights is None:
        return float(a[~mask].mean())
    w = weights[~mask]
    if w.sum() == 0:
        return float(a[~mask].mean())
    return float(np.average(a[~mask], weights=w))


def _check_average(average: Any, allowed: tuple = AVERAGES) -> None:
    if average not in allowed:
        raise DataFormatError(f"average must be one of {allowed}, got {average!r}",
                              field="average")


def _prf(c: SetCounts, average: str | None, z: float):
    if average == "micro":
        tp, pred, true = (np.array([c.tp_label.sum()]), np.array([c.pred_label.sum()]),
                          np.array([c.true_label.sum()]))
    elif average == "samples":
        tp, pred, true = c.tp_row, c.pred_row, c.true_row
    else:
        tp, pred, true = c.tp_label, c.pred_label, c.true_label
    p = _divide(tp, pred, z)
    r = _divide(tp, true, z)
    f = _divide(2 * tp, pred + true, z)
    if average is None:
        return p, r, f
    w = c.true_label if average == "weighted" else None
    return _nanaverage(p, w), _nanaverage(r, w), _nanaverage(f, w)


def precision_recall_f1(Y_true: Any, Y_pred: Any, *, average: str | None = "micro",
                        zero_division: float = 0.0, threshold: float | None = None,
                        k: int | None = None):
    """(precision, recall, F1) for one ``average`` of :data:`AVERAGES`, or per-label arrays
    with ``average=None``."""
    _check_average(average, (*AVERAGES, None))
    z = _check_zero_division(zero_division)
    return _prf(set_counts(Y_true, Y_pred, threshold=threshold, k=k), average, z)


def precision_score(Y_true: Any, Y_pred: Any, *, average: str | None = "micro",
                    zero_division: float = 0.0, threshold: float | None = None,
                    k: int | None = None):
    """Precision tp / predicted under ``average`` (module docstring)."""
    return precision_recall_f1(Y_true, Y_pred, average=average, zero_division=zero_division,
                               threshold=threshold, k=k)[0]


def recall_score(Y_true: Any, Y_pred: Any, *, average: str | None = "micro",
                 zero_division: float = 0.0, threshold: float | None = None,
                 k: int | None = None):
    """Recall tp / true under ``average`` (module docstring)."""
    return precision_recall_f1(Y_true, Y_pred, average=average, zero_division=zero_division,
                               threshold=threshold, k=k)[1]


def f1_score(Y_true: Any, Y_pred: Any, *, average: str | None = "micro",
             zero_division: float = 0.0, threshold: float | None = None,
             k: int | None = None):
    """F1 = 2 tp / (predicted + true) under ``average`` (module docstring)."""
    return precision_recall_f1(Y_true, Y_pred, average=average, zero_division=zero_division,
                               threshold=threshold, k=k)[2]


def _hamming(c: SetCounts) -> float:
    cells = c.n_samples * c.n_labels
    if cells == 0:
        return float("nan")
    wrong = c.pred_label.sum() + c.true_label.sum() - 2 * c.tp_label.sum()
    return float(wrong / cells)


def _subset(c: SetCounts) -> float:
    if c.n_samples == 0:
        return float("nan")
    return float(np.mean((c.tp_row == c.true_row) & (c.tp_row == c.pred_row)))


def _jaccard(c: SetCounts, average: str, z: float) -> float:
    if average == "micro":
        tp = np.array([c.tp_label.sum()])
        union = np.array([c.pred_label.sum() + c.true_label.sum()]) - tp
    elif average == "samples":
        tp, union = c.tp_row, c.pred_row + c.true_row - c.tp_row
    else:
        tp, union = c.tp_label, c.pred_label + c.true_label - c.tp_label
    j = _divide(tp, union, z)
    if j.size == 0:
        return float("nan")
    if average == "weighted" and c.true_label.sum() > 0:
        return float(np.average(j, weights=c.true_label))
    return float(np.mean(j))


def hamming_loss(Y_true: Any, Y_pred: Any, *, threshold: float | None = None,
                 k: int | None = None) -> float:
    """Share of (sample, label) cells predicted wrongly (lower is better)."""
    return _hamming(set_counts(Y_true, Y_pred, threshold=threshold, k=k))


def subset_accuracy(Y_true: Any, Y_pred: Any, *, threshold: float | None = None,
                    k: int | None = None) -> float:
    """Share of samples whose predicted set equals the true set exactly."""
    return _subset(set_counts(Y_true, Y_pred, threshold=threshold, k=k))


def jaccard_score(Y_true: Any, Y_pred: Any, *, average: str = "samples",
                  zero_division: float = 0.0, threshold: float | None = None,
                  k: int | None = None) -> float:
    """Jaccard index tp / (pred + true - tp); ``average="samples"`` by default."""
    _check_average(average)
    z = _check_zero_division(zero_division)
    return _jaccard(set_counts(Y_true, Y_pred, threshold=threshold, k=k), average, z)


def _tagging(c: SetCounts, z: float) -> dict[str, float]:
    cp, cr, _ = _prf(c, "macro", z)
    op, or_, _ = _prf(c, "micro", z)

    def harmonic(a: float, b: float) -> float:
        return 2 * a * b / (a + b) if a + b > 0 else z

    return {"cp": cp, "cr": cr, "cf1": harmonic(cp, cr), "op": op, "or": or_,
            "of1": harmonic(op, or_)}


def tagging_scores(Y_true: Any, Y_pred: Any, *, zero_division: float = 0.0,
                   threshold: float | None = None, k: int | None = None) -> dict[str, float]:
    """Image-tagging metrics {"cp", "cr", "cf1", "op", "or", "of1"} (module docstring)."""
    z = _check_zero_division(zero_division)
    return _tagging(set_counts(Y_true, Y_pred, threshold=threshold, k=k), z)


def _tag_metric(key: str, doc: str):
    def metric(Y_true: Any, Y_pred: Any, *, zero_division: float = 0.0,
               threshold: float | None = None, k: int | None = None) -> float:
        return tagging_scores(Y_true, Y_pred, zero_division=zero_division,
                              threshold=threshold, k=k)[key]

    metric.__name__ = metric.__qualname__ = f"{key}_score"
    metric.__doc__ = doc
    return metric


cp_score = _tag_metric("cp", "CP: mean over labels of per-label precision (= macro precision).")
cr_score = _tag_metric("cr", "CR: mean over labels of per-label recall (= macro recall).")
cf1_score = _tag_metric("cf1", "CF1 = 2 CP CR / (CP + CR).")
op_score = _tag_metric("op", "OP: overall precision (= micro precision).")
or_score = _tag_metric("or", "OR: overall recall (= micro recall).")
of1_score = _tag_metric("of1", "OF1 = 2 OP OR / (OP + OR) (= micro F1).")
