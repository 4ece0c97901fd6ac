"""Rank-based metrics of extreme multi-label classification: P@k, R@k, nDCG@k, PSP@k, PSnDCG@k.

Ranking and ties
----------------
Each row's labels are ranked by score, descending; **equal scores are ordered by the smaller
label id first** (deterministic, independent of the input kind). With top-k scores only the
stored (retrieved) labels are ranked; unretrieved labels never enter the top k, so a row
with fewer than k retrieved labels simply has fewer hits. These metrics take scores (dense
or top-k CSR) and refuse :class:`~labelwise.metrics.LabelSets`.

Definitions (``y_i`` the true set of row i, ``r_ij`` its j-th ranked label, ``hit_ij`` = 1 if
``r_ij`` is in ``y_i``, ``w_l = 1 / p_l`` the inverse propensity)::

    P@k      = mean_i  sum_{j<=k} hit_ij / k                 (divides by k, as pyxclib)
    R@k      = mean_i  sum_{j<=k} hit_ij / |y_i|
    DCG_i@k  = sum_{j<=k} hit_ij / log2(j + 1)
    IDCG_i@k = sum_{j<=min(k, |y_i|)} 1 / log2(j + 1)
    nDCG@k   = mean_i  DCG_i@k / IDCG_i@k
    PSP@k    = sum_i sum_{j<=k} hit_ij w_{r_ij}  /  sum_i best_i@k
    PSnDCG@k = mean_i PSDCG_i@k / IDCG_i@k  /  mean_i PSDCG*_i@k / IDCG_i@k

``best_i@k`` is the sum of the k largest ``w_l`` over ``l`` in ``y_i``, and ``PSDCG*`` the
discounted sum of those weights in descending order: the normalisation of pyxclib and
napkinXC (PSP@k divided by the best PSP@k any ranking could reach, as a ratio of means).

Degenerate cases: a row without positives scores 0 in P@k and adds 0 to both sides of the
PSP ratios; in R@k and nDCG@k it gets ``zero_division`` (default 0.0, as pyxclib and
scikit-learn's ``ndcg_score``; ``np.nan`` leaves such rows out of the mean). A PSP ratio
with a zero denominator (no positives at all) is ``zero_division``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataFormatError
from . import _kernels
from ._inputs import DEFAULT_CHUNK, Prepared, _check_k, _take, prepare

__all__ = ["precision_at_k", "recall_at_k", "ndcg_at_k", "psprecision_at_k", "psndcg_at_k",
           "ranking_metrics"]


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)


def _mean_with(values: np.ndarray, undefined: np.ndarray, zero_division: float) -> float:
    if values.size == 0:
        return float("nan")
    if np.isnan(zero_division):
        keep = ~undefined
        return float(values[keep].mean()) if keep.any() else float("nan")
    v = values.copy()
    v[undefined] = zero_division
    return float(v.mean())


def _check_zero_division(z: Any) -> float:
    z = float(z)
    if not (z in (0.0, 1.0) or np.isnan(z)):
        raise DataFormatError(f"zero_division must be 0.0, 1.0 or nan, got {z}",
                              field="zero_division")
    return z


def _check_ks(k: int | Sequence[int]) -> list[int]:
    ks = [k] if isinstance(k, int | np.integer) and not isinstance(k, bool) else list(k)
    if not ks:
        raise DataFormatError("need at least one k", field="k")
    return [_check_k(x) for x in ks]


def _inv_prop(propensity: Any, n_labels: int) -> np.ndarray:
    p = np.asarray(propensity, dtype=np.float64)
    if p.shape != (n_labels,):
        raise DataFormatError(f"propensity must have one value per label ({n_labels}), got "
                              f"shape {p.shape}", field="propensity")
    if not np.all((p > 0) & (p <= 1)):
        raise DataFormatError("propensities must lie in (0, 1]", field="propensity")
    return 1.0 / p


def ranking_metrics(Y_true: Any, S: Any, *, k: int | Sequence[int] = (1, 3, 5),
                    propensity: Any = None, zero_division: float = 0.0,
                    chunk_size: int = DEFAULT_CHUNK) -> dict[str, float]:
    """All rank-based metrics for every k at once: keys ``p@k``, ``r@k``, ``ndcg@k`` and,
    when ``propensity`` (p_l per label, see :func:`~labelwise.metrics.propensities`) is
    given, ``psp@k`` and ``psndcg@k``."""
    ks = _check_ks(k)
    z = _check_zero_division(zero_division)
    return _ranking(prepare(Y_true, S, chunk_size=chunk_size), ks, propensity, z)


def _ranking(prep: Prepared, ks: list[int], propensity: Any, z: float) -> dict[str, float]:
    Y = prep.Y
    n, L = Y.shape
    kmax = max(ks)
    R, hits, _ = prep.ranked(kmax)
    n_pos = np.diff(Y.indptr).astype(np.float64)
    no_pos = n_pos == 0
    disc = _discounts(max(kmax, int(n_pos.max(initial=0))))
    cum_disc = np.cumsum(disc)
    w = None if propensity is None else _inv_prop(propensity, L)
    if w is not None:
        # ideal ranking: each row's true labels ordered by weight descending
        B = _kernels.csr_topk(Y.indptr, w[Y.indices], kmax)  # positions into Y.indices
        wB = _take(w[Y.indices], B, 0.0)
    # running sums over rank positions, one column at a time (n-long vectors)
    hit_sum = np.zeros(n)
    dcg = np.zeros(n)
    w_sum = np.zeros(n)
    psdcg = np.zeros(n)
    best_sum = np.zeros(n)
    best_dcg = np.zeros(n)
    out: dict[str, float] = {}
    for j in range(kmax):
        h = hits[:, j]
        hit_sum += h
        dcg += h * disc[j]
        if w is not None:
            wr = np.where(h, w[np.maximum(R[:, j], 0)], 0.0)
            w_sum += wr
            psdcg += wr * disc[j]
            best_sum += wB[:, j]
            best_dcg += wB[:, j] * disc[j]
        kk = j + 1
        if kk not in ks:
            continue
        idcg = np.where(no_pos, 1.0, cum_disc[np.minimum(n_pos, kk).astype(np.int64) - 1])
        out[f"p@{kk}"] = float(hit_sum.mean()) / kk if n else float("nan")
        out[f"r@{kk}"] = _mean_with(hit_sum / np.maximum(n_pos, 1), no_pos, z)
        out[f"ndcg@{kk}"] = _mean_with(dcg / idcg, no_pos, z)
        if w is not None:
            den = best_sum.sum()
            out[f"psp@{kk}"] = float(w_sum.sum() / den) if den > 0 else z
            den = (best_dcg / idcg).sum()
            out[f"psndcg@{kk}"] = float((psdcg / idcg).sum() / den) if den > 0 else z
    return {key: out[key] for kk in ks for key in _keys(kk, w is not None)}


def _keys(k: int, ps: bool) -> list[str]:
    names = ["p", "r", "ndcg", "psp", "psndcg"] if ps else ["p", "r", "ndcg"]
    return [f"{name}@{k}" for name in names]


def _one(name: str, Y_true: Any, S: Any, k: int, **kw: Any) -> float:
    return ranking_metrics(Y_true, S, k=_check_k(k), **kw)[f"{name}@{int(k)}"]


def precision_at_k(Y_true: Any, S: Any, *, k: int = 5,
                   chunk_size: int = DEFAULT_CHUNK) -> float:
    """P@k: mean share of the top-k ranked labels that are true (always divided by k)."""
    return _one("p", Y_true, S, k, chunk_size=chunk_size)


def recall_at_k(Y_true: Any, S: Any, *, k: int = 5, zero_division: float = 0.0,
                chunk_size: int = DEFAULT_CHUNK) -> float:
    """R@k: mean share of each row's true labels found in its top k."""
    return _one("r", Y_true, S, k, zero_division=zero_division, chunk_size=chunk_size)


def ndcg_at_k(Y_true: Any, S: Any, *, k: int = 5, zero_division: float = 0.0,
              chunk_size: int = DEFAULT_CHUNK) -> float:
    """nDCG@k with binary gains and log2 discounts (module docstring)."""
    return _one("ndcg", Y_true, S, k, zero_division=zero_division, chunk_size=chunk_size)


def psprecision_at_k(Y_true: Any, S: Any, *, propensity: Any, k: int = 5,
                     zero_division: float = 0.0, chunk_size: int = DEFAULT_CHUNK) -> float:
    """PSP@k normalised by the best achievable PSP@k; ``propensity`` is p_l per label."""
    return _one("psp", Y_true, S, k, propensity=propensity, zero_division=zero_division,
                chunk_size=chunk_size)


def psndcg_at_k(Y_true: Any, S: Any, *, propensity: Any, k: int = 5,
                zero_division: float = 0.0, chunk_size: int = DEFAULT_CHUNK) -> float:
    """PSnDCG@k normalised by the best achievable PSnDCG@k; ``propensity`` is p_l."""
    return _one("psndcg", Y_true, S, k, propensity=propensity, zero_division=zero_division,
                chunk_size=chunk_size)
