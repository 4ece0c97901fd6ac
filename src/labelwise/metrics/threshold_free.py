"""Threshold-free metrics: AP / mAP, macro and micro AUROC, LRAP, coverage error, label
ranking loss and one-error.

Scores are dense or top-k CSR (:mod:`labelwise.metrics._inputs`); unretrieved labels of
top-k scores count as score ``-inf``, all tied. Ties are handled as scikit-learn does: equal
scores form one block, a threshold never splits it (AP takes the precision at the block's
end, AUROC counts a tied positive/negative pair as 1/2). With dense scores every value here
equals scikit-learn's (``average_precision_score``, ``roc_auc_score``,
``label_ranking_average_precision_score``, ``coverage_error``, ``label_ranking_loss``).

Definitions and degenerate cases:

- ``average_precision``: per label, ``sum_t (R_t - R_{t-1}) P_t`` over thresholds t.
  NaN for a label without positives.
- ``mean_average_precision`` (mAP): the mean of AP over the labels that have positives;
  labels without positives are left out (:func:`label_scores` reports how many). NaN when
  no label has a positive.
- ``roc_auc``: per label the probability that a positive outscores a negative (ties 1/2);
  NaN for a label with no positive or no negative. ``average="macro"`` is the mean over the
  labels where it is defined (prevalence-independent), ``"micro"`` pools all (sample, label)
  cells, NaN if they hold only one class.
- ``label_ranking_average_precision``: per sample the mean over its true labels l of
  (true labels scored >= l) / (labels scored >= l); a sample with no or all labels true
  scores 1 (scikit-learn).
- ``coverage_error``: per sample the number of labels scored >= its lowest-scored true
  label; 0 for a sample without true labels (scikit-learn). Lower is better.
- ``label_ranking_loss``: per sample the share of (true, false) label pairs where the false
  label is scored higher than or equal to the true one (a tie counts as an error, as in
  scikit-learn); 0 for a sample with no or all labels true.
- ``one_error``: share of samples whose top-ranked label (ties by smaller label id, as in
  :mod:`labelwise.metrics.ranking`) is not true; a sample with no true label or no retrieved
  label counts as an error. Always ``1 - P@1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError
from . import _kernels
from ._inputs import DEFAULT_CHUNK, Prepared, prepare

__all__ = ["average_precision", "mean_average_precision", "roc_auc",
           "label_ranking_average_precision", "coverage_error", "label_ranking_loss",
           "one_error", "label_scores", "sample_scores"]

AP, AUC, RANK, COV, NPOS, NNEG = range(6)


def _label_stats(prep: Prepared) -> np.ndarray:
    """(n_labels, 6) run statistics per label."""
    Y, s = prep.Y, prep.s
    n, L = Y.shape
    if s.kind == "dense":
        # column blocks, transposed to contiguous rows (strided columns are cache-hostile)
        out = np.empty((L, 6))
        width = max(1, (prep.chunk_size * 256) // max(n, 1))
        Yc = Y.tocsc()
        for a in range(0, L, width):
            St = np.ascontiguousarray(s.dense[:, a:a + width].T)
            Yt = Yc[:, a:a + width].T.toarray().astype(bool)
            out[a:a + width] = _kernels.dense_row_run_stats(St, Yt)
        return out
    M = s.csr
    pos = prep.stored_pos
    stored_pos = np.bincount(M.indices[pos], minlength=L)
    true_l = np.bincount(Y.indices, minlength=L)
    if M.data.dtype == np.float32 and L < 2**31:
        # one sort of (label, score, positive) packed in uint64 replaces a sort per label
        stored = np.bincount(M.indices, minlength=L)
        keys = np.sort(_float32_keys(M, pos))
        starts = np.r_[0, np.cumsum(stored)].astype(np.int64)
        return _kernels.keyed_run_stats(keys, starts, (n - stored).astype(np.int64),
                                        (true_l - stored_pos).astype(np.int64))
    perm = sp.csr_matrix((np.arange(M.nnz, dtype=np.int64), M.indices, M.indptr),
                         shape=M.shape).tocsc()
    stored = np.diff(perm.indptr)
    return _kernels.grouped_run_stats(
        perm.indptr.astype(np.int64), perm.data, M.data, pos,
        (n - stored).astype(np.int64), (true_l - stored_pos).astype(np.int64))


def _float32_keys(M: sp.csr_matrix, pos: np.ndarray) -> np.ndarray:
    """uint64 keys ``label << 33 | u << 1 | positive`` where u orders float32 scores like
    the floats themselves (-0.0 folded onto +0.0 so that they tie)."""
    bits = (M.data + np.float32(0.0)).view(np.uint32)
    neg = (bits >> np.uint32(31)).astype(bool)
    u = np.where(neg, ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
    return (M.indices.astype(np.uint64) << np.uint64(33)) | (u << np.uint64(1)) | pos.astype(
        np.uint64)


def _row_stats(prep: Prepared) -> np.ndarray:
    """(n_samples, 6) run statistics per sample."""
    Y, s, chunk = prep.Y, prep.s, prep.chunk_size
    n, L = Y.shape
    if s.kind == "dense":
        out = np.empty((n, 6))
        for a in range(0, n, chunk):
            Yd = Y[a:a + chunk].toarray().astype(bool)
            out[a:a + chunk] = _kernels.dense_row_run_stats(s.dense[a:a + chunk], Yd)
        return out
    M = s.csr
    pos = prep.stored_pos
    stored = np.diff(M.indptr)
    cpos = np.r_[0, np.cumsum(pos, dtype=np.int64)]
    stored_pos = cpos[M.indptr[1:]] - cpos[M.indptr[:-1]]
    true_r = np.diff(Y.indptr)
    return _kernels.contiguous_run_stats(
        M.indptr.astype(np.int64), M.data, pos,
        (L - stored).astype(np.int64), (true_r - stored_pos).astype(np.int64))


def _micro_auroc(prep: Prepared) -> float:
    """AUROC over all (sample, label) cells, from the runs of equal scores."""
    n, L = prep.shape
    _, n_all, n_pos = prep.runs
    tp = n_pos.astype(np.float64)
    fp = (n_all - n_pos).astype(np.float64)
    above = np.cumsum(tp) - tp
    pairs = float(np.sum(fp * (above + 0.5 * tp)))
    stored_tp = float(tp.sum())
    block_tp = float(prep.Y.nnz) - stored_tp
    block_fp = float(n * L - int(n_all.sum())) - block_tp
    pairs += block_fp * (stored_tp + 0.5 * block_tp)
    P = stored_tp + block_tp
    N = float(fp.sum()) + block_fp
    return pairs / (P * N) if P > 0 and N > 0 else float("nan")


def _micro_ap(prep: Prepared) -> float:
    """Average precision over all (sample, label) cells pooled (scikit-learn's
    ``average_precision_score(..., average="micro")``; the hierarchical-classification
    literature's AU(PRC)): sum over the distinct scores, highest first, of the recall gained
    there times the precision of every cell scored at or above it. Unretrieved cells of top-k
    scores are one run tied below every stored score."""
    n, L = prep.shape
    _, n_all, n_pos = prep.runs
    tp = n_pos.astype(np.float64)
    cells = n_all.astype(np.float64)
    P = float(prep.Y.nnz)
    if P == 0:
        return float("nan")
    ap = float(np.sum(tp * np.cumsum(tp) / np.cumsum(cells))) if tp.size else 0.0
    block_tp = P - float(tp.sum())
    if block_tp > 0:  # the unretrieved cells: all of them chosen at the lowest threshold
        ap += block_tp * P / float(n * L)
    return ap / P


def _ap(st: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(st[..., NPOS] > 0, st[..., AP] / st[..., NPOS], np.nan)


def _auc(st: np.ndarray) -> np.ndarray:
    pairs = st[..., NPOS] * st[..., NNEG]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, st[..., AUC] / pairs, np.nan)


def _nanmean(a: np.ndarray) -> float:
    ok = ~np.isnan(a)
    return float(a[ok].mean()) if ok.any() else float("nan")


def label_scores(Y_true: Any, S: Any) -> dict[str, Any]:
    """Per-label AP and AUROC arrays (NaN where undefined) and their summaries:
    {"ap", "auroc", "map", "macro_auroc", "n_labels_without_positives",
    "n_labels_auroc_undefined"}."""
    return _label_scores(prepare(Y_true, S))


def _label_scores(prep: Prepared) -> dict[str, Any]:
    st = _label_stats(prep)
    ap, auc = _ap(st), _auc(st)
    return {"ap": ap, "auroc": auc, "map": _nanmean(ap), "macro_auroc": _nanmean(auc),
            "n_labels_without_positives": int(np.sum(st[:, NPOS] == 0)),
            "n_labels_auroc_undefined": int(np.isnan(auc).sum())}


def average_precision(Y_true: Any, S: Any) -> np.ndarray:
    """AP per label (float64, NaN for labels without positives)."""
    return label_scores(Y_true, S)["ap"]


def mean_average_precision(Y_true: Any, S: Any) -> float:
    """mAP: mean AP over the labels that have positives."""
    return label_scores(Y_true, S)["map"]


def micro_average_precision(Y_true: Any, S: Any) -> float:
    """AP over all (sample, label) cells pooled (AU(PRC) of hierarchical multi-label
    classification); NaN without any positive cell."""
    return _micro_ap(prepare(Y_true, S))


def roc_auc(Y_true: Any, S: Any, *, average: str | None = "macro"):
    """AUROC: ``"macro"`` (mean over labels where defined), ``"micro"`` (pooled cells) or
    ``None`` (per-label array, NaN where undefined)."""
    if average not in ("macro", "micro", None):
        raise DataFormatError(f"average must be 'macro', 'micro' or None, got {average!r}",
                              field="average")
    if average == "micro":
        return _micro_auroc(prepare(Y_true, S))
    res = label_scores(Y_true, S)
    return res["auroc"] if average is None else res["macro_auroc"]


def sample_scores(Y_true: Any, S: Any, *, chunk_size: int = DEFAULT_CHUNK) -> dict[str, float]:
    """{"lrap", "coverage_error", "label_ranking_loss", "one_error"} in one pass."""
    return _sample_scores(prepare(Y_true, S, chunk_size=chunk_size))


def _sample_scores(prep: Prepared) -> dict[str, float]:
    n, L = prep.shape
    if n == 0:
        nan = float("nan")
        return {"lrap": nan, "coverage_error": nan, "label_ranking_loss": nan,
                "one_error": nan}
    st = _row_stats(prep)
    npos = st[:, NPOS]
    trivial = (npos == 0) | (npos == L)
    with np.errstate(invalid="ignore", divide="ignore"):
        lrap = np.where(trivial, 1.0, st[:, AP] / np.maximum(npos, 1))
        rloss = np.where(trivial, 0.0, st[:, RANK] / np.maximum(npos * st[:, NNEG], 1))
    hit = prep.ranked(1)[1][:, 0]
    return {"lrap": float(lrap.mean()), "coverage_error": float(st[:, COV].mean()),
            "label_ranking_loss": float(rloss.mean()), "one_error": float(1.0 - hit.mean())}


def label_ranking_average_precision(Y_true: Any, S: Any, *,
                                    chunk_size: int = DEFAULT_CHUNK) -> float:
    """LRAP (module docstring); equals scikit-learn's on dense scores."""
    return sample_scores(Y_true, S, chunk_size=chunk_size)["lrap"]


def coverage_error(Y_true: Any, S: Any, *, chunk_size: int = DEFAULT_CHUNK) -> float:
    """Mean number of labels to walk down the ranking to cover every true label."""
    return sample_scores(Y_true, S, chunk_size=chunk_size)["coverage_error"]


def label_ranking_loss(Y_true: Any, S: Any, *, chunk_size: int = DEFAULT_CHUNK) -> float:
    """Mean share of wrongly ordered (true, false) label pairs."""
    return sample_scores(Y_true, S, chunk_size=chunk_size)["label_ranking_loss"]


def one_error(Y_true: Any, S: Any, *, chunk_size: int = DEFAULT_CHUNK) -> float:
    """Share of samples whose top-ranked label is not true (= 1 - P@1)."""
    return sample_scores(Y_true, S, chunk_size=chunk_size)["one_error"]
