"""Label imbalance measures and ML-ROS random oversampling (Charte et al. 2015).

Charte, Rivera, del Jesus, Herrera, "Addressing imbalance in multilabel classification:
Measures and random resampling algorithms", Neurocomputing 163 (2015). For a label matrix
Y (n_samples, n_labels) with ``c_j`` positives in column j:

- ``IRLbl(j) = max_l c_l / c_j``: 1 for the most frequent label, larger for rarer ones;
- ``MeanIR = mean_j IRLbl(j)``.

Labels without positives have no IRLbl (``inf`` here) and take no part in MeanIR.

**ML-ROS** (the paper's Algorithm 1) clones ``floor(n_samples * fraction)`` rows. The
*minority labels* are those with ``IRLbl > MeanIR`` (MeanIR computed once, on the original
rows); each has a bag of the rows holding it. Round after round, every bag still open gives
one row drawn uniformly from it, which is cloned (the counts of all the row's labels grow);
a bag closes as soon as its label's IRLbl (recomputed on the grown set) is ``<= MeanIR``.
It stops when the clone budget is spent or no bag is open (the paper's loop would spin
forever there). :func:`ml_ros` returns row indices: ``0..n-1`` then the clones, in the
order they were made; training on ``Y[rows]`` is training on the resampled set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..dataset import as_label_matrix

__all__ = ["imbalance_ratios", "ml_ros"]


def _counts(Y: Any) -> tuple[sp.csr_matrix, np.ndarray]:
    Yc = as_label_matrix(Y)
    return Yc, np.bincount(Yc.indices.astype(np.int64), minlength=Yc.shape[1]).astype(np.int64)


def _irlbl(counts: np.ndarray) -> np.ndarray:
    out = np.full(counts.shape, np.inf)
    live = counts > 0
    if live.any():
        out[live] = counts.max() / counts[live]
    return out


def imbalance_ratios(Y: Any) -> tuple[np.ndarray, float]:
    """``(IRLbl (n_labels,) float64, MeanIR)`` of a label matrix; ``inf`` for a label without
    positives (left out of MeanIR; MeanIR is ``nan`` when no label has positives)."""
    _, counts = _counts(Y)
    ir = _irlbl(counts)
    live = np.isfinite(ir)
    return ir, (float(ir[live].mean()) if live.any() else float("nan"))


def ml_ros(Y: Any, *, fraction: float = 0.25, random_state: int | None = 0) -> np.ndarray:
    """Row indices (int64) of the ML-ROS resampled set: every original row, then the clones;
    see the module docstring. ``fraction``: the share of ``n_samples`` to clone, in [0, 1]."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
            or not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    Yc, counts = _counts(Y)
    n = Yc.shape[0]
    budget = int(n * float(fraction))
    ir = _irlbl(counts)
    live = np.isfinite(ir)
    rows = [np.arange(n, dtype=np.int64)]
    if budget == 0 or not live.any():
        return rows[0]
    mean_ir = float(ir[live].mean())
    minority = np.flatnonzero(live & (ir > mean_ir))
    Yt = Yc.T.tocsr()
    bags = {int(j): Yt.indices[Yt.indptr[j]:Yt.indptr[j + 1]].astype(np.int64)
            for j in minority}
    rng = np.random.default_rng(random_state)
    counts = counts.copy()
    clones: list[int] = []
    while budget > 0 and bags:
        for j in list(bags):
            bag = bags[j]
            r = int(bag[rng.integers(bag.size)])
            clones.append(r)
            counts[Yc.indices[Yc.indptr[r]:Yc.indptr[r + 1]]] += 1
            if counts.max() / counts[j] <= mean_ir:
                del bags[j]
            budget -= 1
            if budget == 0:
                break
    rows.append(np.asarray(clones, dtype=np.int64))
    return np.concatenate(rows)
