"""The arrays behind the report's plots, computed from truth and scores with labelwise.metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["at_k", "pr_curves_of_frequent_labels"]


def at_k(Y_true: Any, S: Any, k_max: int) -> tuple[list[int], list[float], list[float]]:
    """(ks, P@k, R@k) for k = 1..k_max."""
    from ..metrics import ranking_metrics

    ks = list(range(1, k_max + 1))
    m = ranking_metrics(Y_true, S, k=ks, propensity=None)
    return ks, [m[f"p@{k}"] for k in ks], [m[f"r@{k}"] for k in ks]


def pr_curves_of_frequent_labels(
    Y_true: Any, S: Any, label_names: list[str], n: int = 5
) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """(name, recall, precision, AP) for the ``n`` labels with most positives.

    For top-k CSR scores, an item whose top-k does not hold the label ranks below every scored
    item (its score is taken as lower than any stored one).
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    Y = sp.csr_matrix(Y_true)
    support = np.bincount(Y.indices, minlength=Y.shape[1])
    labels = [int(j) for j in np.argsort(-support, kind="stable")[:n] if support[j] > 0]
    Yc = Y.tocsc()
    if sp.issparse(S):
        Sc = sp.csc_matrix(S)
        floor = (Sc.data.min() if Sc.nnz else 0.0) - 1.0
    out = []
    for j in labels:
        y = Yc[:, [j]].toarray().ravel()
        if sp.issparse(S):
            col = Sc[:, [j]]
            s = np.full(Y.shape[0], floor, dtype=np.float64)
            s[col.indices] = col.data
        else:
            s = np.asarray(S)[:, j].astype(np.float64)
        precision, recall, _ = precision_recall_curve(y, s)
        out.append((label_names[j], recall, precision, float(average_precision_score(y, s))))
    return out
