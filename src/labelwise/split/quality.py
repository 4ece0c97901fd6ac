"""How well a split follows the data: the measures of Sechidis, Tsoumakas & Vlahavas (2011).

Notation: ``D`` the data set (all rows that belong to some subset), ``S_1..S_k`` the disjoint
subsets (the test folds of a k-fold split, or ``[train, test]``), ``D^i`` / ``S_j^i`` the rows
of ``D`` / ``S_j`` that hold label ``i``, ``r_j`` the desired share of ``S_j``.

- **LD** (label distribution), lower is better::

      LD = 1/|L| * sum_{i in L} 1/k * sum_j | |S_j^i| / (|S_j| - |S_j^i|)  -  |D^i| / (|D| - |D^i|) |

  the mean absolute deviation of each subset's positive:negative ratio of a label from the
  data set's. ``L`` is the set of labels with at least one positive and one negative row in
  ``D`` (a label absent from ``D`` or present in every row cannot be unbalanced; it is left
  out, and LD is 0.0 when ``L`` is empty). A subset whose rows all hold the label has no
  negatives; its ratio is then taken as ``|S_j^i| / 1`` so that the term stays finite (and large).
- **LPD** (label pair distribution, Szymański & Kajdanowicz 2017): the same formula over
  the unordered pairs of distinct labels ``{a, b}`` that co-occur in at least one row of
  ``D`` (a row holds a pair when it holds both labels), with the same exclusions.
- **ED** (examples distribution), lower is better: ``1/k * sum_j | |S_j| - r_j |D| |``.
- **FZ**: the number of subsets lacking every positive of at least one label of ``D``
  (a label with positives in ``D``); **FLZ**: the number of (subset, label) pairs with no
  positive, over the labels with positives in ``D``.

``folds`` may be given as a sequence of index arrays (the subsets ``S_j``), a sequence of
``(train, test)`` pairs as yielded by a splitter's ``split`` (the test parts are the
subsets), or an int array of length n_samples giving each row's subset (``-1``: in none).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError
from ._items import label_csr, pair_matrix

__all__ = [
    "fold_ids",
    "label_distribution",
    "label_pair_distribution",
    "example_distribution",
    "folds_without_positives",
    "fold_label_pairs_without_positives",
    "split_report",
]


def fold_ids(folds: Any, n_samples: int) -> tuple[np.ndarray, int]:
    """(fold id per row, -1 for rows in no subset; number of subsets) from any accepted form."""
    if isinstance(folds, np.ndarray) and folds.ndim == 1 and folds.dtype.kind in "iu":
        if folds.shape[0] != n_samples:
            raise DataFormatError(
                f"expected one fold id per row ({n_samples}), got {folds.shape[0]}", field="folds"
            )
        if folds.size and folds.min() < -1:
            raise DataFormatError("expected fold ids >= -1 (-1: in no fold)", field="folds")
        k = int(folds.max()) + 1 if folds.size else 0
        return folds.astype(np.int64), k
    parts = list(folds)
    if parts and all(isinstance(p, tuple) and len(p) == 2 for p in parts):
        parts = [p[1] for p in parts]
    out = np.full(n_samples, -1, dtype=np.int64)
    for j, part in enumerate(parts):
        idx = np.asarray(part)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise DataFormatError(f"subset {j}: expected a 1-D array of row indices", field="folds")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n_samples):
            raise DataFormatError(f"subset {j}: row index outside 0..{n_samples - 1}", field="folds")
        if np.any(out[idx] >= 0) or np.unique(idx).size != idx.size:
            raise DataFormatError(f"subset {j}: rows already in a subset; expected disjoint subsets", field="folds")
        out[idx] = j
    return out, len(parts)


def _subset_counts(M: sp.csr_matrix, fold: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(counts (k, n_cols) of positive rows per subset, sizes (k,))."""
    rows = np.flatnonzero(fold >= 0)
    F = sp.csr_matrix(
        (np.ones(rows.size, dtype=np.float64), (fold[rows], rows)), shape=(k, M.shape[0])
    )
    counts = np.asarray((F @ M.astype(np.float64)).todense()) if M.shape[1] else np.zeros((k, 0))
    sizes = np.bincount(fold[rows], minlength=k).astype(np.float64)
    return np.rint(counts), sizes


def _distribution(M: sp.csr_matrix, fold: np.ndarray, k: int) -> float:
    if k == 0:
        return 0.0
    counts, sizes = _subset_counts(M, fold, k)
    d_pos = counts.sum(axis=0)
    n = sizes.sum()
    keep = (d_pos > 0) & (d_pos < n)
    if not np.any(keep):
        return 0.0
    counts, d_pos = counts[:, keep], d_pos[keep]
    d_ratio = d_pos / (n - d_pos)
    neg = sizes[:, None] - counts
    s_ratio = counts / np.where(neg > 0, neg, 1.0)
    return float(np.mean(np.abs(s_ratio - d_ratio[None, :]).mean(axis=0)))


def label_distribution(Y: Any, folds: Any) -> float:
    """LD of the subsets (see the module docstring), lower is better."""
    M = label_csr(Y)
    fold, k = fold_ids(folds, M.shape[0])
    return _distribution(M, fold, k)


def label_pair_distribution(Y: Any, folds: Any) -> float:
    """LPD of the subsets over co-occurring label pairs (see the module docstring)."""
    M = label_csr(Y)
    fold, k = fold_ids(folds, M.shape[0])
    rows = np.flatnonzero(fold >= 0)
    P, _ = pair_matrix(M[rows])
    return _distribution(P, fold[rows], k)


def example_distribution(folds: Any, n_samples: int, ratios: Any = None) -> float:
    """ED: mean absolute deviation of subset sizes from ``r_j |D|`` (equal shares by default)."""
    fold, k = fold_ids(folds, n_samples)
    if k == 0:
        return 0.0
    sizes = np.bincount(fold[fold >= 0], minlength=k).astype(np.float64)
    r = np.full(k, 1.0 / k) if ratios is None else np.asarray(ratios, dtype=np.float64)
    if r.shape != (k,):
        raise DataFormatError(f"expected {k} shares, one per subset, got {r.shape}", field="ratios")
    return float(np.abs(sizes - r * sizes.sum()).mean())


def _zero_table(Y: Any, folds: Any) -> np.ndarray:
    M = label_csr(Y)
    fold, k = fold_ids(folds, M.shape[0])
    counts, _ = _subset_counts(M, fold, k)
    present = counts.sum(axis=0) > 0
    return counts[:, present] == 0


def folds_without_positives(Y: Any, folds: Any) -> int:
    """FZ: subsets lacking all positives of at least one label that has positives in D."""
    return int(np.count_nonzero(_zero_table(Y, folds).any(axis=1)))


def fold_label_pairs_without_positives(Y: Any, folds: Any) -> int:
    """FLZ: (subset, label) pairs with no positive, over labels with positives in D."""
    return int(np.count_nonzero(_zero_table(Y, folds)))


def split_report(Y: Any, folds: Any, *, ratios: Any = None, pairs: bool = True) -> dict[str, Any]:
    """All measures of a split as one JSON-able dict.

    Keys: ``n_subsets``, ``subset_sizes``, ``ld``, ``lpd`` (omitted with ``pairs=False``),
    ``ed``, ``fz``, ``flz``. ``ratios`` are the desired shares for ED (default equal).
    """
    M = label_csr(Y)
    fold, k = fold_ids(folds, M.shape[0])
    sizes = np.bincount(fold[fold >= 0], minlength=k)
    zero = _zero_table(M, fold)
    out: dict[str, Any] = {
        "n_subsets": k,
        "subset_sizes": [int(s) for s in sizes],
        "ld": _distribution(M, fold, k),
    }
    if pairs:
        rows = np.flatnonzero(fold >= 0)
        P, _ = pair_matrix(M[rows])
        out["lpd"] = _distribution(P, fold[rows], k)
    out["ed"] = example_distribution(fold, M.shape[0], ratios)
    out["fz"] = int(np.count_nonzero(zero.any(axis=1)))
    out["flz"] = int(np.count_nonzero(zero))
    return out
