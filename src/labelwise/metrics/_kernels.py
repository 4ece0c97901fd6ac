"""Numba kernels behind the metrics (the slow plain-Python references live in the tests).

Two families:

- **top-k selection** (``dense_topk``, ``csr_topk``): the ``k`` best labels of each row,
  ordered by score descending, ties broken by the smaller label id (the package-wide tie
  rule for rank-based metrics). Rows with fewer than ``k`` retrieved labels are padded
  with ``-1``. ``csr_membership`` flags the stored score entries whose label is true.
- **run statistics** (``*_run_stats``): for groups of scored items (a label's column or a
  sample's row), sort by score descending and walk the runs of equal
  scores. Equal scores form one run, so the results follow scikit-learn's tie handling
  (a threshold sits between distinct scores only). Each group may end with an *implicit
  block* of ``block_n`` items (``block_pos`` of them positive) that all have score ``-inf``
  and so tie with one another below every stored score: the unretrieved labels of top-k
  scores. ``merge_runs`` gives the runs of all cells at once (micro AUROC, coverage curve)
  from two plain sorts.

For one group the kernel returns the raw sums, which the Python layer turns into metrics
(columns of the output, in this order, then n_pos and n_neg):

``ap_sum``     sum over runs of ``tp_run * precision_at_run_end``; AP = ap_sum / n_pos.
``auc_pairs``  sum over runs of ``fp_run * (tp_above + tp_run / 2)``; AUROC = auc_pairs /
               (n_pos * n_neg).
``rank_pairs`` (positive, negative) pairs with the positive scored lower or equal.
``coverage``   number of items with score >= the lowest positive score (0 without positives).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .._numba import njit

__all__ = ["dense_topk", "csr_topk", "csr_membership",
           "dense_row_run_stats", "grouped_run_stats", "contiguous_run_stats",
           "merge_runs", "keyed_run_stats"]

# no blocked positions, as an int64 value: literal 0 arguments compile the callee once more
_NONE = np.int64(0)


@njit(cache=True)
def _insert_topk(scores, k, buf_pos, buf_val):
    """Positions of the k best of ``scores`` (descending; ties keep the earlier position)
    into buf_pos; returns how many were written. Entries come in position order, so an
    equal score never displaces an earlier one."""
    c = 0
    for j in range(scores.shape[0]):
        v = scores[j]
        if c == k and not v > buf_val[c - 1]:
            continue
        t = c if c < k else k - 1
        while t > 0 and v > buf_val[t - 1]:
            buf_val[t] = buf_val[t - 1]
            buf_pos[t] = buf_pos[t - 1]
            t -= 1
        buf_val[t] = v
        buf_pos[t] = j
        if c < k:
            c += 1
    return c


@njit(cache=True)
def _sorted_topk(scores, k, buf_pos):
    """Large-k variant: a stable sort of the whole row."""
    order = np.argsort(-scores, kind="mergesort")
    c = min(k, scores.shape[0])
    for t in range(c):
        buf_pos[t] = order[t]
    return c


@njit(cache=True, parallel=True)
def dense_topk(S, k):
    """(n, k) label ids, -1 padded (module docstring)."""
    n, L = S.shape
    out = np.full((n, k), -1, dtype=np.int64)
    for i in nb.prange(n):
        row = S[i].astype(np.float64)
        buf_pos = np.empty(k, dtype=np.int64)
        if k <= 64:
            c = _insert_topk(row, k, buf_pos, np.empty(k, dtype=np.float64))
        else:
            c = _sorted_topk(row, k, buf_pos)
        for t in range(c):
            out[i, t] = buf_pos[t]
    return out


@njit(cache=True, parallel=True)
def csr_topk(indptr, data, k):
    """(n, k) *positions* into the CSR data (not label ids), -1 padded. Within a row the
    stored entries must be in label-id order (sorted indices)."""
    n = indptr.shape[0] - 1
    out = np.full((n, k), -1, dtype=np.int64)
    for i in nb.prange(n):
        a, b = indptr[i], indptr[i + 1]
        row = data[a:b].astype(np.float64)
        buf_pos = np.empty(k, dtype=np.int64)
        if k <= 64:
            c = _insert_topk(row, k, buf_pos, np.empty(k, dtype=np.float64))
        else:
            c = _sorted_topk(row, k, buf_pos)
        for t in range(c):
            out[i, t] = a + buf_pos[t]
    return out


@njit(cache=True, parallel=True)
def csr_membership(s_indptr, s_indices, y_indptr, y_indices):
    """For each stored entry of S: is its label in the same row of Y? (sorted indices)"""
    n = s_indptr.shape[0] - 1
    out = np.zeros(s_indices.shape[0], dtype=np.bool_)
    for i in nb.prange(n):
        q = y_indptr[i]
        qe = y_indptr[i + 1]
        for p in range(s_indptr[i], s_indptr[i + 1]):
            lab = s_indices[p]
            while q < qe and y_indices[q] < lab:
                q += 1
            if q < qe and y_indices[q] == lab:
                out[p] = True
    return out


@njit(cache=True)
def _sort_desc(scores):
    """An order of ``scores`` descending (ties in any order): insertion sort when short."""
    m = scores.shape[0]
    if m > 32:
        return np.argsort(-scores)
    order = np.empty(m, dtype=np.int64)
    for j in range(m):
        v = scores[j]
        t = j
        while t > 0 and scores[order[t - 1]] < v:
            order[t] = order[t - 1]
            t -= 1
        order[t] = j
    return order


@njit(cache=True)
def _run_stats(scores, pos, block_n, block_pos):
    """Run statistics of one group (see the module docstring). Returns
    (ap_sum, auc_pairs, rank_pairs, coverage, n_pos, n_neg)."""
    return _walk_runs(_sort_desc(scores), scores, pos, block_n, block_pos)


@njit(cache=True)
def _walk_runs(order, scores, pos, block_n, block_pos):
    m = scores.shape[0]
    cum_tp = 0.0
    cum_fp = 0.0
    ap = 0.0
    auc = 0.0
    rank = 0.0
    cov = 0.0
    t = 0
    while t < m:
        s = scores[order[t]]
        tp = 0.0
        fp = 0.0
        while t < m and scores[order[t]] == s:
            if pos[order[t]]:
                tp += 1.0
            else:
                fp += 1.0
            t += 1
        if tp > 0:
            ap += tp * (cum_tp + tp) / (cum_tp + tp + cum_fp + fp)
            rank += tp * (cum_fp + fp)
            cov = cum_tp + tp + cum_fp + fp
        auc += fp * (cum_tp + 0.5 * tp)
        cum_tp += tp
        cum_fp += fp
    if block_n > 0:
        tp = float(block_pos)
        fp = float(block_n - block_pos)
        if tp > 0:
            ap += tp * (cum_tp + tp) / (cum_tp + tp + cum_fp + fp)
            rank += tp * (cum_fp + fp)
            cov = cum_tp + tp + cum_fp + fp
        auc += fp * (cum_tp + 0.5 * tp)
        cum_tp += tp
        cum_fp += fp
    return ap, auc, rank, cov, cum_tp, cum_fp


@njit(cache=True, parallel=True)
def grouped_run_stats(starts, order, scores, pos, block_n, block_pos):
    """Run statistics per group; group g holds items order[starts[g]:starts[g+1]]."""
    G = starts.shape[0] - 1
    out = np.zeros((G, 6), dtype=np.float64)
    for g in nb.prange(G):
        idx = order[starts[g]:starts[g + 1]]
        s = scores[idx].astype(np.float64)
        p = pos[idx]
        r = _run_stats(s, p, block_n[g], block_pos[g])
        for c in range(6):
            out[g, c] = r[c]
    return out


@njit(cache=True, parallel=True)
def contiguous_run_stats(indptr, scores, pos, block_n, block_pos):
    """Run statistics per group; group g holds items indptr[g]:indptr[g+1] (CSR rows)."""
    G = indptr.shape[0] - 1
    out = np.zeros((G, 6), dtype=np.float64)
    for g in nb.prange(G):
        a, b = indptr[g], indptr[g + 1]
        r = _run_stats(scores[a:b].astype(np.float64), pos[a:b], block_n[g], block_pos[g])
        for c in range(6):
            out[g, c] = r[c]
    return out


@njit(cache=True, parallel=True)
def dense_row_run_stats(S, Y):
    """Run statistics per row of dense scores S with dense boolean truth Y."""
    n, L = S.shape
    out = np.zeros((n, 6), dtype=np.float64)
    for i in nb.prange(n):
        r = _run_stats(S[i].astype(np.float64), Y[i], _NONE, _NONE)
        for c in range(6):
            out[i, c] = r[c]
    return out


@njit(cache=True)
def merge_runs(all_sorted, pos_sorted):
    """Runs of equal scores from ascending ``all_sorted`` and its ascending sub-multiset
    ``pos_sorted`` (the scores of the positives). Returns (values, n_all, n_pos), one entry
    per distinct score, in *descending* score order."""
    m = all_sorted.shape[0]
    values = np.empty(m, dtype=np.float64)
    n_all = np.empty(m, dtype=np.int64)
    n_pos = np.empty(m, dtype=np.int64)
    r = 0
    q = 0
    npos = pos_sorted.shape[0]
    i = 0
    while i < m:
        v = all_sorted[i]
        j = i
        while j < m and all_sorted[j] == v:
            j += 1
        c = 0
        while q < npos and pos_sorted[q] == v:
            q += 1
            c += 1
        values[r] = v
        n_all[r] = j - i
        n_pos[r] = c
        r += 1
        i = j
    return values[:r][::-1].copy(), n_all[:r][::-1].copy(), n_pos[:r][::-1].copy()


@njit(cache=True, parallel=True)
def keyed_run_stats(keys, starts, block_n, block_pos):
    """Run statistics per label from ascending uint64 keys
    ``label << 33 | orderable_float32(score) << 1 | is_positive``; label g holds
    keys[starts[g]:starts[g+1]] (ascending scores, so walked from the end)."""
    G = starts.shape[0] - 1
    out = np.zeros((G, 6), dtype=np.float64)
    for g in nb.prange(G):
        cum_tp = 0.0
        cum_fp = 0.0
        ap = 0.0
        auc = 0.0
        rank = 0.0
        cov = 0.0
        t = starts[g + 1] - 1
        a = starts[g]
        while t >= a:
            s = keys[t] >> np.uint64(1)
            tp = 0.0
            fp = 0.0
            while t >= a and (keys[t] >> np.uint64(1)) == s:
                if keys[t] & np.uint64(1):
                    tp += 1.0
                else:
                    fp += 1.0
                t -= 1
            if tp > 0:
                ap += tp * (cum_tp + tp) / (cum_tp + tp + cum_fp + fp)
                rank += tp * (cum_fp + fp)
                cov = cum_tp + tp + cum_fp + fp
            auc += fp * (cum_tp + 0.5 * tp)
            cum_tp += tp
            cum_fp += fp
        if block_n[g] > 0:
            tp = float(block_pos[g])
            fp = float(block_n[g] - block_pos[g])
            if tp > 0:
                ap += tp * (cum_tp + tp) / (cum_tp + tp + cum_fp + fp)
                rank += tp * (cum_fp + fp)
                cov = cum_tp + tp + cum_fp + fp
            auc += fp * (cum_tp + 0.5 * tp)
            cum_tp += tp
            cum_fp += fp
        out[g, 0] = ap
        out[g, 1] = auc
        out[g, 2] = rank
        out[g, 3] = cov
        out[g, 4] = cum_tp
        out[g, 5] = cum_fp
    return out
