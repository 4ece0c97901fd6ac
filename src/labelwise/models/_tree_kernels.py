"""Numba kernels of the label tree: balanced spherical 2-means, node training, beam search.

Everything reads the shared CSR arrays of X (``x_indptr, x_indices, x_data``) through
row-index arrays, so no kernel ever copies X per node.

``balanced_2means``
    Splits a set of labels (rows of the l2-normalised label-feature CSR ``Z``) into a group of
    exactly ``n0`` labels and one of the rest: centroids start at two given labels; every
    round ranks the labels by ``z.c0 - z.c1`` (stable sort, so ties keep input order), puts
    the first ``n0`` in group 0, and re-centres each centroid on the normalised sum of its
    group; it stops when the groups no longer change or after ``iters`` rounds (Parabel's
    balanced spherical 2-means).
``train_node``
    One node's classifiers: the node's training rows ``rows`` (global row ids), and per child
    ``j`` its positive rows as *local* positions ``tgt_indices[tgt_indptr[j]:tgt_indptr[j+1]]``
    into ``rows``. Each child is an L2-regularised binary problem solved by the dual
    coordinate descent of :mod:`labelwise.models._dcd` (same losses, tolerances and
    shrinking), with the row indirection ``rows[t]``. Only features that occur in the node's
    rows can get weight, so ``w`` is reset and read on those features only.
``beam_search``
    Per document: in every tree, a beam of at most ``beam`` nodes starts at the root; each
    node's classifiers are scored, a child's log-probability is its parent's plus the
    classifier's (``-max(0, 1 - m)^2`` for the squared hinge, ``log sigmoid(m)`` for the
    logistic loss, ``m`` the margin), node children compete for the next beam (highest first,
    ties to the earlier candidate) and label children are final. A label's score is
    ``exp(log-probability)`` averaged over the trees (0 in a tree that did not reach it);
    the row's top ``k`` (ties to the lower label id, unreached labels scoring 0) are written
    in the top-k layout of :mod:`labelwise.models.topk`.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ._dcd import (
    LOSS_LOGISTIC,
    LOSS_SQUARED_HINGE,
    _logistic_rows,
    _seed_state,
    _sq_hinge_rows,
    keep_weights,
)
from .topk import _select

__all__ = ["balanced_2means", "train_node", "score_node", "beam_search", "log_prob"]


# ---------------------------------------------------------------------------- clustering
@nb.njit(nogil=True, cache=True)
def _centroid(z_indptr, z_indices, z_data, labels, assign, group, c):
    c[:] = 0.0
    for t in range(labels.shape[0]):
        if assign[t] == group:
            lab = labels[t]
            for p in range(z_indptr[lab], z_indptr[lab + 1]):
                c[z_indices[p]] += z_data[p]
    s = 0.0
    for f in range(c.shape[0]):
        s += c[f] * c[f]
    if s > 0.0:
        s = 1.0 / np.sqrt(s)
        for f in range(c.shape[0]):
            c[f] *= s


@nb.njit(nogil=True, cache=True)
def balanced_2means(z_indptr, z_indices, z_data, n_cols, labels, n0, init0, init1, iters):
    """Return ``assign`` (int8 0/1 per entry of ``labels``) with exactly ``n0`` zeros.

    ``init0``/``init1`` are positions in ``labels`` whose rows seed the two centroids.
    """
    n = labels.shape[0]
    c0 = np.zeros(n_cols, np.float64)
    c1 = np.zeros(n_cols, np.float64)
    lab = labels[init0]
    for p in range(z_indptr[lab], z_indptr[lab + 1]):
        c0[z_indices[p]] = z_data[p]
    lab = labels[init1]
    for p in range(z_indptr[lab], z_indptr[lab + 1]):
        c1[z_indices[p]] = z_data[p]
    assign = np.full(n, -1, np.int8)
    new = np.empty(n, np.int8)
    diff = np.empty(n, np.float64)
    for _ in range(iters):
        for t in range(n):
            lab = labels[t]
            s = 0.0
            for p in range(z_indptr[lab], z_indptr[lab + 1]):
                s += z_data[p] * (c0[z_indices[p]] - c1[z_indices[p]])
            diff[t] = -s
        order = np.argsort(diff, kind="mergesort")
        for r in range(n):
            new[order[r]] = 0 if r < n0 else 1
        changed = False
        for t in range(n):
            if new[t] != assign[t]:
                changed = True
            assign[t] = new[t]
        if not changed:
            break
        _centroid(z_indptr, z_indices, z_data, labels, assign, 0, c0)
        _centroid(z_indptr, z_indices, z_data, labels, assign, 1, c1)
    return assign


# ---------------------------------------------------------------------------- training
@nb.njit(nogil=True, cache=True)
def train_node(x_indptr, x_indices, x_data, sq_norms, rows, tgt_indptr, tgt_indices, seeds,
               loss, C, bias, tol, max_iter, prune_threshold, n_features):
    """Train the ``m = len(tgt_indptr) - 1`` child classifiers of one node.

    Returns ``(counts, feat, vals, bias_w, n_iter)`` in :func:`labelwise.models._dcd.train_chunk`'s
    layout: child ``j`` keeps ``counts[j]`` weights (features ascending, ``|w| >=
    prune_threshold``), ``bias_w[j]`` its (unpruned) bias weight, ``n_iter[j]`` its epochs.
    """
    n = rows.shape[0]
    m = tgt_indptr.shape[0] - 1
    mark = np.zeros(n_features, np.bool_)
    nf = 0
    for t in range(n):
        i = rows[t]
        for p in range(x_indptr[i], x_indptr[i + 1]):
            if not mark[x_indices[p]]:
                mark[x_indices[p]] = True
                nf += 1
    feats = np.empty(nf, np.int64)
    q = 0
    for f in range(n_features):
        if mark[f]:
            feats[q] = f
            q += 1
    w = np.zeros(n_features + 1, np.float64)
    y = np.empty(n, np.float64)
    index = np.empty(n, np.int64)
    alpha = np.empty(2 * n if loss == LOSS_LOGISTIC else n, np.float64)
    state = np.ones(1, np.uint64)
    counts = np.zeros(m, np.int64)
    bias_w = np.zeros(m, np.float64)
    n_iter = np.zeros(m, np.int64)
    feat = np.empty(1024, np.int32)
    vals = np.empty(1024, np.float32)
    used = 0
    for j in range(m):
        y[:] = -1.0
        for p in range(tgt_indptr[j], tgt_indptr[j + 1]):
            y[tgt_indices[p]] = 1.0
        for f in feats:
            w[f] = 0.0
        w[n_features] = 0.0
        _seed_state(seeds[j], state)
        if loss == LOSS_SQUARED_HINGE:
            it = _sq_hinge_rows(x_indptr, x_indices, x_data, sq_norms, rows, y, C, bias, tol,
                                max_iter, w, alpha, index, state)
        else:
            it = _logistic_rows(x_indptr, x_indices, x_data, sq_norms, rows, y, C, bias, tol,
                                max_iter, w, alpha, index, state)
        n_iter[j] = it
        bias_w[j] = w[n_features]
        feat, vals, used, counts[j] = keep_weights(w, feats, prune_threshold, feat, vals, used)
    return counts, feat[:used].copy(), vals[:used].copy(), bias_w, n_iter


# ---------------------------------------------------------------------------- prediction
@nb.njit(nogil=True, cache=True, inline="always")
def log_prob(margin, loss):
    """The classifier's log-probability of 'yes' for a margin (see the module docstring)."""
    if loss == LOSS_SQUARED_HINGE:
        h = 1.0 - margin
        return -h * h if h > 0.0 else 0.0
    if margin >= 0.0:
        return -np.log1p(np.exp(-margin))
    return margin - np.log1p(np.exp(margin))


@nb.njit(nogil=True, cache=True)
def score_node(x_indices, x_data, a, b, v, node_clf_start, node_feat_start, feat_id, feat_ptr,
               weights, node_dense, child_shift, val_child, clf_bias, out):
    """Margins of node ``v``'s classifiers for the row ``x_*[a:b]`` (sorted features) into
    ``out[:m]``; weights in the layout of ``_tree_build.node_major_weights``."""
    c0 = node_clf_start[v]
    m = node_clf_start[v + 1] - c0
    for j in range(m):
        out[j] = clf_bias[c0 + j]
    lo = node_feat_start[v]
    hi = node_feat_start[v + 1]
    dense = node_dense[v]
    shift = child_shift[v]
    for p in range(a, b):
        if lo >= hi:
            break
        f = x_indices[p]
        # first entry in [lo, hi) with feat_id >= f
        left = lo
        right = hi
        while left < right:
            mid = (left + right) >> 1
            if feat_id[mid] < f:
                left = mid + 1
            else:
                right = mid
        lo = left
        if lo < hi and feat_id[lo] == f:
            xv = np.float64(x_data[p])
            q0 = feat_ptr[lo]
            if dense:
                for j in range(m):
                    out[j] += weights[q0 + j] * xv
            else:
                for q in range(q0, feat_ptr[lo + 1]):
                    out[val_child[q - shift]] += weights[q] * xv
            lo += 1


@nb.njit(nogil=True, cache=True)
def beam_search(x_indptr, x_indices, x_data, node_clf_start, clf_child, roots,
                node_feat_start, feat_id, feat_ptr, weights, node_dense, child_shift,
                val_child, clf_bias, loss, beam, n_labels, k, row_start, row_end, out_i, out_s):
    """Top-k tree scores of rows ``row_start:row_end``; writes ``out_*[r*k:(r+1)*k]``.

    ``node_clf_start`` (n_nodes + 1): node ``v``'s classifiers are ids
    ``node_clf_start[v]:node_clf_start[v+1]``; classifier ``c`` leads to node
    ``clf_child[c]`` when ``>= 0``, else to label ``-clf_child[c] - 1``; ``clf_bias`` holds
    the intercepts and the weights are in the layout of ``_tree_build.node_major_weights``.
    """
    n_trees = roots.shape[0]
    max_children = 1
    for v in range(node_clf_start.shape[0] - 1):
        max_children = max(max_children, node_clf_start[v + 1] - node_clf_start[v])
    margins = np.empty(max_children, np.float64)
    acc = np.zeros(n_labels, np.float64)
    seen = np.zeros(n_labels, np.bool_)
    touched = np.empty(n_labels, np.int64)
    cur_v = np.empty(beam, np.int64)
    cur_s = np.empty(beam, np.float64)
    nxt_v = np.empty(beam * max_children, np.int64)
    nxt_s = np.empty(beam * max_children, np.float64)
    cand_s = np.empty(n_labels + k, np.float64)
    cand_i = np.empty(n_labels + k, np.int64)
    heap_s = np.empty(k, np.float64)
    heap_i = np.empty(k, np.int64)
    inv_trees = 1.0 / n_trees
    for r in range(row_start, row_end):
        a = x_indptr[r]
        b = x_indptr[r + 1]
        n_touched = 0
        for t in range(n_trees):
            cur_v[0] = roots[t]
            cur_s[0] = 0.0
            n_cur = 1
            while n_cur > 0:
                n_nxt = 0
                for u in range(n_cur):
                    v = cur_v[u]
                    base = cur_s[u]
                    score_node(x_indices, x_data, a, b, v, node_clf_start, node_feat_start,
                               feat_id, feat_ptr, weights, node_dense, child_shift, val_child,
                               clf_bias, margins)
                    c0 = node_clf_start[v]
                    for j in range(node_clf_start[v + 1] - c0):
                        lp = base + log_prob(margins[j], loss)
                        child = clf_child[c0 + j]
                        if child >= 0:
                            nxt_v[n_nxt] = child
                            nxt_s[n_nxt] = lp
                            n_nxt += 1
                        else:
                            lab = -child - 1
                            if not seen[lab]:
                                seen[lab] = True
                                touched[n_touched] = lab
                                n_touched += 1
                            acc[lab] += np.exp(lp) * inv_trees
                if n_nxt <= beam:
                    for u in range(n_nxt):
                        cur_v[u] = nxt_v[u]
                        cur_s[u] = nxt_s[u]
                    n_cur = n_nxt
                else:
                    order = np.argsort(-nxt_s[:n_nxt], kind="mergesort")
                    for u in range(beam):
                        cur_v[u] = nxt_v[order[u]]
                        cur_s[u] = nxt_s[order[u]]
                    n_cur = beam
        m = 0
        for u in range(n_touched):
            lab = touched[u]
            cand_i[m] = lab
            cand_s[m] = acc[lab]
            m += 1
        want = k
        lab = 0
        while want > 0 and lab < n_labels:
            if not seen[lab]:
                cand_i[m] = lab
                cand_s[m] = 0.0
                m += 1
                want -= 1
            lab += 1
        _select(cand_s, cand_i, m, k, heap_s, heap_i, out_i, out_s, r * k)
        for u in range(n_touched):
            lab = touched[u]
            acc[lab] = 0.0
            seen[lab] = False
