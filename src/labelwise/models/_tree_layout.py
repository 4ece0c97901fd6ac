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

import numpy as np

from .._numba import njit

__all__ = ["layout_sizes", "layout_fill"]


@njit(nogil=True, cache=True)
def layout_sizes(w_indptr, w_indices, node_clf_start, n_features, v_start, v_end, n_feats,
                 f_min, f_max, nnz):
    """For nodes ``v_start:v_end``: ``n_feats, f_min, f_max, nnz`` (outputs, per node; f_max
    stays -1 for a node without weights) of the classifier rows of CSR W (first pass of
    ``_tree_build.node_major_weights``)."""
    mark = np.zeros(n_features, np.bool_)
    for v in range(v_start, v_end):
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


@njit(nogil=True, cache=True)
def layout_fill(w_indptr, w_indices, w_data, node_clf_start, direct, dense, f_min, f_max,
                node_feat_start, feat_ptr_node, child_off, n_features, v_start, v_end, feat_id,
                feat_ptr, weights, val_child):
    """Second pass of ``_tree_build.node_major_weights``: fill ``feat_id``, ``feat_ptr``
    (entries), ``weights`` (zeroed) and ``val_child`` for nodes ``v_start:v_end``, given the
    per-node decisions and the start of each node's entries, weights and child ids. A node
    writes only its own ranges, and into ``feat_ptr`` only final values (the entry past its
    last is the next node's first, which both write alike), so node ranges can be filled
    concurrently."""
    where = np.full(n_features, -1, np.int64)  # feature -> entry, then its next free slot
    for v in range(v_start, v_end):
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
        slots = np.full(n_e, m, np.int64)
        if not dense[v]:
            slots[:] = 0
            for p in range(a, b):
                slots[where[w_indices[p]] - e0] += 1
        q = feat_ptr_node[v]
        feat_ptr[e0] = q
        for u in range(n_e):
            q += slots[u]
            feat_ptr[e0 + u + 1] = q
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
