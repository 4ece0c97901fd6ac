"""Numba kernels of the label tree's weight layout (see ``_tree_build.node_major_weights``).

``layout_sizes`` and ``layout_fill`` are the two passes that lay the pruned classifier
weights (a CSR matrix, one row per classifier, the classifiers of node ``v`` being rows
``node_clf_start[v]:node_clf_start[v+1]``) out node by node, feature-major, with one
feature-indexed scratch array: no sort of all weights and no temporaries the size of the
weights (a global ``lexsort`` of them cost 25 MB and 35 ms on cooking.stackexchange). The
layout itself, and which nodes are *direct* or *dense*, is described in
``node_major_weights``; ``tests/test_models_tree.py`` checks it against a plain-Python
reference.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["layout_sizes", "layout_fill"]


@nb.njit(nogil=True, cache=True)
def layout_sizes(w_indptr, w_indices, node_clf_start, n_features):
    """Per node: ``(n_feats, f_min, f_max, nnz)`` of the classifier rows of CSR W (first pass
    of ``_tree_build.node_major_weights``)."""
    n_nodes = node_clf_start.shape[0] - 1
    n_feats = np.zeros(n_nodes, np.int64)
    f_min = np.zeros(n_nodes, np.int64)
    f_max = np.full(n_nodes, -1, np.int64)
    nnz = np.zeros(n_nodes, np.int64)
    mark = np.zeros(n_features, np.bool_)
    for v in range(n_nodes):
        a = w_indptr[node_clf_start[v]]
        b = w_indptr[node_clf_start[v + 1]]
        nnz[v] = b - a
        lo = n_features
        hi = -1
        cnt = 0
        for p in range(a, b):
            f = w_indices[p]
            if not mark[f]:
                mark[f] = True
                cnt += 1
                lo = min(lo, f)
                hi = max(hi, f)
        for p in range(a, b):
            mark[w_indices[p]] = False
        n_feats[v] = cnt
        if cnt:
            f_min[v] = lo
            f_max[v] = hi
    return n_feats, f_min, f_max, nnz


@nb.njit(nogil=True, cache=True)
def layout_fill(w_indptr, w_indices, w_data, node_clf_start, direct, dense, f_min, f_max,
                node_feat_start, feat_ptr_node, child_off, n_features, feat_id, feat_ptr,
                weights, val_child):
    """Second pass of ``_tree_build.node_major_weights``: fill ``feat_id``, ``feat_ptr``
    (entries), ``weights`` (zeroed) and ``val_child`` node by node, given the per-node
    decisions and the start of each node's entries, weights and child ids."""
    n_nodes = node_clf_start.shape[0] - 1
    where = np.full(n_features, -1, np.int64)  # feature -> entry, then its next free slot
    for v in range(n_nodes):
        c0 = node_clf_start[v]
        m = node_clf_start[v + 1] - c0
        a = w_indptr[c0]
        b = w_indptr[node_clf_start[v + 1]]
        e0 = node_feat_start[v]
        n_e = node_feat_start[v + 1] - e0
        if n_e == 0:
            continue
        if direct[v]:
            for u in range(n_e):
                feat_id[e0 + u] = f_min[v] + u
        else:
            u = 0
            for p in range(a, b):
                f = w_indices[p]
                if where[f] < 0:
                    where[f] = 0
                    feat_id[e0 + u] = f
                    u += 1
            feat_id[e0:e0 + n_e].sort()
            for p in range(a, b):
                where[w_indices[p]] = -1
        for u in range(n_e):
            where[feat_id[e0 + u]] = e0 + u
        # slots per entry: m (dense) or the entry's non-zero count
        if dense[v]:
            for u in range(n_e):
                feat_ptr[e0 + u + 1] = m
        else:
            for u in range(n_e):
                feat_ptr[e0 + u + 1] = 0
            for p in range(a, b):
                feat_ptr[where[w_indices[p]] + 1] += 1
        q = feat_ptr_node[v]
        for u in range(n_e):
            q += feat_ptr[e0 + u + 1]
            feat_ptr[e0 + u + 1] = q
        feat_ptr[e0] = feat_ptr_node[v]
        shift = feat_ptr_node[v] - child_off[v]
        if dense[v]:
            for j in range(m):
                for p in range(w_indptr[c0 + j], w_indptr[c0 + j + 1]):
                    weights[feat_ptr[where[w_indices[p]]] + j] = w_data[p]
        else:
            nxt = np.empty(n_e, np.int64)
            for u in range(n_e):
                nxt[u] = feat_ptr[e0 + u]
            for j in range(m):  # classifiers ascending, so ascending within every entry
                for p in range(w_indptr[c0 + j], w_indptr[c0 + j + 1]):
                    u = where[w_indices[p]] - e0
                    weights[nxt[u]] = w_data[p]
                    val_child[nxt[u] - shift] = j
                    nxt[u] += 1
        for u in range(n_e):
            where[feat_id[e0 + u]] = -1
