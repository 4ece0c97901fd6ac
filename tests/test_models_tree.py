"""LabelTree: numba kernels against plain-Python references, task lists, persistence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import small_data
from labelwise.errors import DataFormatError, ResourceLimitError
from labelwise.models import _dcd, _tree_build, _tree_kernels
from labelwise.models.tree import LabelTree


# ---------------------------------------------------------------------------- references
def ref_balanced_2means(Z: np.ndarray, labels, n0, init0, init1, iters):
    """Plain-Python balanced spherical 2-means (the kernel's documented rules): a centroid is
    its group's sum of rows in fixed point (each value times 2**36, truncated to an integer)
    over that sum's norm; the first centroids are the two seed labels' rows so scaled."""
    fixed = [[int(float(v) * 2**36) for v in Z[lab]] for lab in labels]

    def centroid(members):
        s = [sum(fixed[t][f] for t in members) for f in range(Z.shape[1])]
        nrm = math.sqrt(sum(float(x) * float(x) for x in s))
        return np.array([float(x) / nrm if nrm > 0 else 0.0 for x in s])

    c0, c1 = centroid([init0]), centroid([init1])
    assign = [-1] * len(labels)
    for _ in range(iters):
        diff = [float(Z[lab] @ c0 - Z[lab] @ c1) for lab in labels]
        order = sorted(range(len(labels)), key=lambda t: -diff[t])  # stable
        new = [0] * len(labels)
        for r, t in enumerate(order):
            new[t] = 0 if r < n0 else 1
        if new == assign:
            break
        assign = new
        c0 = centroid([t for t in range(len(labels)) if assign[t] == 0])
        c1 = centroid([t for t in range(len(labels)) if assign[t] == 1])
    return np.array(assign)


def dense_weights(model: LabelTree) -> np.ndarray:
    """Classifier weights (n_classifiers, n_features) rebuilt from the node-major layout."""
    starts = model.node_clf_start_
    W = np.zeros((starts[-1], model.n_features_in_))
    for v in range(starts.shape[0] - 1):
        m = starts[v + 1] - starts[v]
        for e in range(model.node_feat_start_[v], model.node_feat_start_[v + 1]):
            f = model.feat_id_[e]
            for q in range(model.feat_ptr_[e], model.feat_ptr_[e + 1]):
                if model.node_dense_[v]:
                    j = q - model.feat_ptr_[e]
                else:
                    j = model.val_child_[q - model.child_shift_[v]]
                assert 0 <= j < m
                W[starts[v] + j, f] = model.weights_[q]
    return W


def ref_node_major_weights(W: sp.csr_matrix, starts: np.ndarray) -> dict[str, np.ndarray]:
    """Plain-Python layout of ``_tree_build.node_major_weights`` (its documented rules)."""
    Wd = W.toarray()
    n_nodes = len(starts) - 1
    feat_id, feat_ptr, weights, val_child = [], [0], [], []
    node_feat_start, node_dense, child_shift = [0], [], []
    for v in range(n_nodes):
        block = Wd[starts[v]:starts[v + 1]]
        m = block.shape[0]
        feats = sorted({int(f) for f in np.flatnonzero((block != 0).any(axis=0))})
        nnz = int((block != 0).sum())
        direct = bool(feats) and (feats[-1] - feats[0] + 1 - len(feats)) * 12 <= \
            len(feats) * 12 + nnz * 8
        entries = list(range(feats[0], feats[-1] + 1)) if direct else feats
        dense = len(entries) * m * 4 <= nnz * 16
        node_dense.append(dense)
        child_shift.append(len(weights) - len(val_child))
        for f in entries:
            feat_id.append(f)
            for j in range(m):
                if dense:
                    weights.append(block[j, f])
                elif block[j, f] != 0:
                    weights.append(block[j, f])
                    val_child.append(j)
            feat_ptr.append(len(weights))
        node_feat_start.append(len(feat_id))
    return {"node_feat_start": np.array(node_feat_start), "feat_id": np.array(feat_id),
            "feat_ptr": np.array(feat_ptr), "weights": np.array(weights, np.float32),
            "node_dense": np.array(node_dense), "child_shift": np.array(child_shift),
            "val_child": np.array(val_child)}


def ref_log_prob(m: float, loss: str, power: float) -> float:
    if loss == "squared_hinge":
        return -max(0.0, 1.0 - m) ** power
    return -math.log1p(math.exp(-m)) if m >= 0 else m - math.log1p(math.exp(m))


def ref_scores(model: LabelTree, X: sp.csr_matrix, beam: int | None) -> np.ndarray:
    """Dense (n, L) tree scores: beam=None scores every path exhaustively."""
    Xn = _tree_build.l2_normalize_rows(X) if model.normalize == "l2" else X
    margins = Xn.toarray() @ dense_weights(model).T + model.intercept_[None, :]
    starts, child = model.node_clf_start_, model.clf_child_
    L = len(model.labels_)
    inner = model.hinge_power if model.inner_hinge_power is None else model.inner_hinge_power
    out = np.zeros((X.shape[0], L))
    for i in range(X.shape[0]):
        for root in model.tree_roots_:
            level = [(int(root), 0.0)]
            while level:
                nxt = []
                for v, s in level:
                    for c in range(starts[v], starts[v + 1]):
                        power = inner if child[c] >= 0 else model.hinge_power
                        lp = s + ref_log_prob(float(margins[i, c]), model.loss, power)
                        if child[c] >= 0:
                            nxt.append((int(child[c]), lp))
                        else:
                            out[i, -child[c] - 1] += math.exp(lp) / len(model.tree_roots_)
                if beam is not None and len(nxt) > beam:
                    nxt = sorted(nxt, key=lambda e: -e[1])[:beam]  # stable: earlier wins ties
                level = nxt
    return out


def score_scratch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """score_node's scratch buffers for a row of ``n`` stored values."""
    return np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.float64)


def clustered_data(seed=0, n=300, d=40, L=24):
    """Labels in groups sharing features, so trees have structure to find."""
    rng = np.random.default_rng(seed)
    groups = np.arange(L) % 4
    Y = np.zeros((n, L), np.float32)
    X = rng.random((n, d)) * (rng.random((n, d)) < 0.15)
    for i in range(n):
        g = rng.integers(0, 4)
        cand = np.flatnonzero(groups == g)
        labs = rng.choice(cand, size=min(2, cand.size), replace=False)
        Y[i, labs] = 1
        X[i, 10 * g:10 * g + 10] += rng.random(10) * (rng.random(10) < 0.6)
        for lab in labs:
            X[i, lab % d] += 1.0
    return sp.csr_matrix(X.astype(np.float32)), sp.csr_matrix(Y)


# ---------------------------------------------------------------------------- clustering
def test_two_means_sums_kept_up_to_date_equal_fresh_sums():
    """A group's fixed-point sum updated by the labels that join and leave it, round after
    round, is the fresh sum of its members' scaled, truncated values, exactly."""
    rng = np.random.default_rng(5)
    Z = _tree_build.l2_normalize_rows(sp.random(50, 30, density=0.4, format="csr",
                                                random_state=1, dtype=np.float32))
    lptr, loc, val = Z.indptr.astype(np.int64), Z.indices, Z.data
    fixed = np.trunc(Z.toarray().astype(np.float64) * 2**36).astype(np.int64)
    assert np.abs(fixed).max() > 2**30  # the values keep their precision
    assign = np.full(50, -1, np.int8)
    s = [np.zeros(30, np.int64), np.zeros(30, np.int64)]
    moved, was = np.empty(50, np.int64), np.empty(50, np.int8)
    for _ in range(6):
        new = rng.integers(0, 2, 50).astype(np.int8)
        k = 0
        for t in np.flatnonzero(new != assign):
            moved[k], was[k] = t, assign[t]
            k += 1
        assign[:] = new
        for g in (_tree_kernels.GROUP_0, _tree_kernels.GROUP_1):
            _tree_kernels.two_means_move(lptr, loc, val, moved, was, k, assign, g, s[g])
            assert np.array_equal(s[g], fixed[assign == g].sum(axis=0))
    d = np.empty(30)
    _tree_kernels.two_means_direction(s[0], s[1], d)
    c = [x / np.linalg.norm(x) for x in (s[0].astype(float), s[1].astype(float))]
    np.testing.assert_allclose(d, c[0] - c[1], rtol=1e-12, atol=1e-15)
    _tree_kernels.two_means_direction(s[0], np.zeros(30, np.int64), d)  # a zero sum stays 0
    np.testing.assert_allclose(d, c[0], rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 40), iters=st.integers(1, 8))
def test_balanced_2means_matches_reference(seed, n, iters):
    rng = np.random.default_rng(seed)
    d = 6
    Zd = (rng.random((n + 3, d)) * (rng.random((n + 3, d)) < 0.6)).astype(np.float32)
    Zd[rng.random(n + 3) < 0.2] = Zd[0]  # duplicate rows make ties
    Z = _tree_build.l2_normalize_rows(sp.csr_matrix(Zd))
    Z.sort_indices()
    labels = rng.permutation(n + 3)[:n].astype(np.int64)
    n0 = int(rng.integers(1, n))
    i0, i1 = rng.choice(n, size=2, replace=False)
    got = _tree_kernels.balanced_2means(Z.indptr, Z.indices, Z.data, d, labels, n0, int(i0),
                                        int(i1), iters)
    assert np.count_nonzero(got == 0) == n0 and np.count_nonzero(got == 1) == n - n0
    want = ref_balanced_2means(Z.toarray(), list(labels), n0, int(i0), int(i1), iters)
    assert np.array_equal(got, want)
    # the same rounds spread over threads (a big split): the same groups
    # the same columns spread 40 apart over a wider space: listed by a sort, not a scan
    wide = sp.csr_matrix((Z.data, Z.indices * 40, Z.indptr), shape=(n + 3, 40 * d))
    assert np.array_equal(_tree_kernels.balanced_2means(
        wide.indptr, wide.indices, wide.data, 40 * d, labels, n0, int(i0), int(i1), iters), want)
    for M, width in ((Z, d), (wide, 40 * d)):  # local columns: the used ones' ranks
        lptr, loc, val, n_local = _tree_kernels.two_means_rows(M.indptr, M.indices, M.data,
                                                               width, labels)
        used = np.concatenate([M.indices[M.indptr[t]:M.indptr[t + 1]] for t in labels])
        assert n_local == np.unique(used).size
        assert np.array_equal(loc, np.searchsorted(np.unique(used), used))
        assert np.array_equal(val, np.concatenate(
            [M.data[M.indptr[t]:M.indptr[t + 1]] for t in labels]))
    rows = _tree_kernels.two_means_rows(Z.indptr, Z.indices, Z.data, d, labels)
    for threads in (2, 3):
        spread = _tree_build._two_means_threads(*rows, n0, int(i0), int(i1), iters, threads)
        assert np.array_equal(spread, want), threads


def ref_build_tree(Z, branching, max_leaf, iters, seed):
    """Plain breadth-first build, each node's groups by depth-first recursive 2-means with
    each split's seed labels from default_rng([seed, node, path]) (the documented rules)."""
    def split(labels, parts, node, path):
        if parts == 1:
            return [labels]
        n = len(labels)
        p0 = (parts + 1) // 2
        i0, i1 = np.random.default_rng([seed, node, path]).choice(n, size=2, replace=False)
        a = ref_balanced_2means(Z.toarray(), list(labels), n * p0 // parts, int(i0), int(i1),
                                iters)
        return (split(labels[a == 0], p0, node, 2 * path)
                + split(labels[a == 1], parts - p0, node, 2 * path + 1))

    nodes, kids = [np.arange(Z.shape[0])], []
    v = 0
    while v < len(nodes):
        S = nodes[v]
        if len(S) <= max_leaf:
            kids.append(list(-S - 1))
        else:
            groups = split(S, min(branching, -(-len(S) // max_leaf)), v, 1)
            kids.append(list(range(len(nodes), len(nodes) + len(groups))))
            nodes += groups
        v += 1
    return nodes, kids


@pytest.mark.parametrize("branching,max_leaf,seed", [(2, 3, 0), (3, 5, 1), (5, 4, 2),
                                                     (16, 10, 3)])
def test_build_tree_matches_reference_on_any_thread_count(branching, max_leaf, seed,
                                                          monkeypatch):
    X, Y = clustered_data(L=90, seed=seed)
    Z = _tree_build.label_representations(_tree_build.l2_normalize_rows(X), Y)
    nodes, kids = ref_build_tree(Z, branching, max_leaf, 4, seed)
    calls = []
    spread = _tree_build._two_means_threads
    monkeypatch.setattr(_tree_build, "_two_means_threads",
                        lambda *a: calls.append(a[-1]) or spread(*a))
    for threads, big in ((1, None), (2, None), (3, None), (2, 0), (3, 0)):
        if big is not None:  # every split counts as big: spread over the idle threads
            monkeypatch.setattr(_tree_build, "THREADED_SPLIT_VALUES", big)
        lay = _tree_build.build_tree(Z, branching=branching, max_leaf_size=max_leaf,
                                     cluster_iters=4, seed=seed, n_threads=threads)
        assert lay.n_nodes == len(nodes)
        for v in range(lay.n_nodes):
            assert np.array_equal(lay.node_labels[v], nodes[v]), (threads, v)
            got = lay.clf_child[lay.node_clf_start[v]:lay.node_clf_start[v + 1]]
            assert list(got) == kids[v], (threads, v)
    assert calls and set(calls) <= {2, 3}  # the first split at least took the spread path


@pytest.mark.parametrize("branching,max_leaf", [(2, 1), (2, 7), (4, 10), (3, 5), (16, 100)])
def test_build_tree_invariants(branching, max_leaf):
    X, Y = clustered_data(L=200)
    Z = _tree_build.label_representations(_tree_build.l2_normalize_rows(X), Y)
    lay = _tree_build.build_tree(Z, branching=branching, max_leaf_size=max_leaf,
                                 cluster_iters=5, seed=1)
    starts, child = lay.node_clf_start, lay.clf_child
    assert starts[0] == 0 and starts[-1] == child.size and np.all(np.diff(starts) >= 1)
    assert np.array_equal(np.sort(-child[child < 0] - 1), np.arange(200))  # each label once
    assert np.array_equal(lay.node_labels[0], np.arange(200))
    for v in range(lay.n_nodes):
        kids = child[starts[v]:starts[v + 1]]
        S = lay.node_labels[v]
        if len(S) <= max_leaf:
            assert np.array_equal(-kids - 1, S)  # a leaf: its labels, ascending
        else:
            assert np.all(kids > v) and len(kids) == min(branching, -(-len(S) // max_leaf))
            assert np.array_equal(np.sort(np.concatenate([lay.node_labels[c] for c in kids])),
                                  np.sort(S))
            sizes = [len(lay.node_labels[c]) for c in kids]
            if branching in (2, 4):
                assert max(sizes) - min(sizes) <= 1, sizes


def test_l2_normalize_rows_matches_reference(monkeypatch):
    rng = np.random.default_rng(3)
    Xd = (rng.normal(size=(30, 12)) * (rng.random((30, 12)) < 0.3)).astype(np.float32)
    Xd[4] = 0.0  # an empty row stays empty
    Xd[7] *= 1e4
    got = _tree_build.l2_normalize_rows(sp.csr_matrix(Xd))
    norms = np.sqrt((Xd.astype(np.float64) ** 2).sum(axis=1))
    want = Xd / np.where(norms > 0, norms, 1.0)[:, None]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.toarray(), want, rtol=1e-6, atol=1e-7)
    # numpy (small inputs) and the numba kernels (large ones): the same numbers
    monkeypatch.setattr(_tree_build, "NUMPY_NORMALIZE_MAX", -1)
    for threads in (1, 2, 3):  # over row ranges on threads: the same numbers
        kernels = _tree_build.l2_normalize_rows(sp.csr_matrix(Xd), threads)
        assert np.array_equal(kernels.data, got.data)
        assert np.array_equal(kernels.indptr, got.indptr)


def test_balanced_ranges_hand_computed():
    cum = np.array([0, 1, 2, 3, 10, 11, 12])  # item costs 1, 1, 1, 7, 1, 1
    assert list(_tree_build.balanced_ranges(cum, 2)) == [0, 3, 6]  # cut at cost 6: 3 | 7+1+1
    assert list(_tree_build.balanced_ranges(cum, 1)) == [0, 6]
    assert list(_tree_build.balanced_ranges(np.zeros(4), 3)) == [0, 3]  # nothing to balance
    assert list(_tree_build.balanced_ranges(np.array([0]), 4)) == [0, 0]  # no items
    b = _tree_build.balanced_ranges(np.arange(101), 8)  # 100 unit items
    assert b[0] == 0 and b[-1] == 100 and len(b) == 9 and np.all(np.diff(b) >= 12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), threads=st.integers(1, 3))
def test_pifa_rows_equal_scipys_product(seed, threads):
    """Y.T @ X bit for bit (float32 sums in the same order), exact zeros dropped as scipy
    does, labels without positives empty, on 1-3 threads over cost-balanced label ranges."""
    rng = np.random.default_rng(seed)
    n, d, L = int(rng.integers(1, 40)), int(rng.integers(1, 30)), int(rng.integers(1, 25))
    X = sp.random(n, d, density=0.3, random_state=rng, dtype=np.float32,
                  data_rvs=lambda k: rng.normal(size=k)).tocsr()
    if n >= 2 and d >= 1:  # two rows whose entries cancel on feature 0
        X = X.tolil()
        X[0, 0], X[1, 0] = 0.75, -0.75
        X = X.tocsr()
    p_lab = 1.0 / np.arange(1, L + 1) ** 1.2  # power-law label sizes
    Yd = rng.random((n, L)) < np.minimum(1.0, 3 * p_lab)[None, :] * 0.5
    if n >= 2:
        Yd[:, 0] = False
        Yd[[0, 1], 0] = True
    Yd[:, L - 1] = False  # a label without positives
    Y = sp.csr_matrix(Yd.astype(np.float32))
    got = _tree_build.pifa_rows(X, Y, n_threads=threads)
    want = sp.csr_matrix(Y.T.astype(np.float32) @ X)
    want.sort_indices()
    assert got.dtype == np.float32 and got.shape == (L, d) and got.has_sorted_indices
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)
    assert got.getnnz(axis=1)[L - 1] == 0


@pytest.mark.parametrize("threads", [1, 2])
def test_pifa_rows_by_sort_and_by_scan_equal_scipys_product(threads):
    """pifa_fill lists a label's features by a sort where they are few in a wide span and by
    a scan of the span where they are dense in it (``PIFA_SCAN_SPAN``): both paths, and
    labels taking each, give scipy's product bit for bit."""
    rng = np.random.default_rng(4)
    n, d = 60, 5000
    X = sp.random(n, d, density=0.002, random_state=5, dtype=np.float32,
                  data_rvs=lambda k: rng.normal(size=k)).tolil()
    X[:20, 100:400] = rng.normal(size=(20, 300)).astype(np.float32)  # rows dense in a span
    X[59, :] = 0.0
    X[59, [7, 2600, 4990]] = [1.0, -2.0, 0.5]  # one row of three far-apart features
    X = X.tocsr()
    X.eliminate_zeros()
    Yd = np.zeros((n, 4), bool)
    Yd[:20, 0] = True  # features dense in 100..399 (and a few strays): a scan
    Yd[59, 1] = True  # three features over 4983 columns: a sort
    Yd[20:59:3, 2] = True  # sparse rows spread over the columns: a sort
    Yd[:, 3] = rng.random(n) < 0.5  # a mix
    Y = sp.csr_matrix(Yd.astype(np.float32))
    sizes = np.diff(sp.csr_matrix(Y.T @ X).indptr)
    assert sizes[1] == 3 and 4983 >= _tree_kernels.PIFA_SCAN_SPAN * sizes[1]
    assert sizes[0] >= 300 > 0
    got = _tree_build.pifa_rows(X, Y, n_threads=threads)
    want = sp.csr_matrix(Y.T.astype(np.float32) @ X)
    want.sort_indices()
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


def test_label_representations_are_pifa_and_concatenate():
    X, Y = clustered_data(L=12)
    Xn = _tree_build.l2_normalize_rows(X)
    Z = _tree_build.label_representations(Xn, Y).toarray()
    Yd = Y.toarray()
    for j in range(12):
        s = Xn.toarray()[Yd[:, j] == 1].sum(axis=0)
        np.testing.assert_allclose(Z[j], s / np.linalg.norm(s), rtol=1e-5, atol=1e-6)
    E = sp.csr_matrix(np.eye(12, 3, dtype=np.float32) * 5)
    Z2 = _tree_build.label_representations(Xn, Y, extra=E).toarray()
    assert Z2.shape == (12, X.shape[1] + 3)
    for j in range(12):
        a = Z[j]
        b = np.eye(12, 3)[j]
        want = np.concatenate([a, b]) / np.linalg.norm(np.concatenate([a, b]))
        np.testing.assert_allclose(Z2[j], want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- training
def test_training_tasks_match_reference():
    X, Y = clustered_data(L=30)
    Y = sp.lil_matrix(Y)
    Y[5, :] = 0  # a row without labels: only the root sees it
    Y = sp.csr_matrix(Y)
    Z = _tree_build.label_representations(_tree_build.l2_normalize_rows(X), Y)
    lay = _tree_build.build_tree(Z, branching=3, max_leaf_size=4, cluster_iters=5, seed=2)
    Yc = sp.csc_matrix(Y)
    Yc.sort_indices()
    tasks = _tree_build.training_tasks(Yc, lay, tree=0, clf_offset=7, seed=9)
    Yd = Y.toarray() > 0
    assert [t.node for t in tasks] == list(range(lay.n_nodes))
    for t in tasks:
        labels = lay.node_labels[t.node]
        want_rows = (np.arange(Y.shape[0]) if t.node == 0
                     else np.flatnonzero(Yd[:, labels].any(axis=1)))
        assert np.array_equal(t.rows, want_rows)
        a, b = lay.node_clf_start[t.node], lay.node_clf_start[t.node + 1]
        assert t.clf_start == 7 + a and t.seeds.shape == (b - a,)
        for j, c in enumerate(lay.clf_child[a:b]):
            below = lay.node_labels[c] if c >= 0 else [-c - 1]
            pos = set(np.flatnonzero(Yd[t.rows][:, below].any(axis=1)).tolist())
            got = t.tgt_indices[t.tgt_indptr[j]:t.tgt_indptr[j + 1]]
            assert set(got.tolist()) == pos and len(got) == len(pos)
    assert 5 in tasks[0].rows and all(5 not in t.rows for t in tasks[1:])


@pytest.mark.parametrize("loss", [_dcd.LOSS_SQUARED_HINGE, _dcd.LOSS_LOGISTIC])
def test_train_node_equals_solving_the_subproblem(loss):
    """train_node on rows of the shared X == dcd_solve on an explicit copy of X[rows]."""
    X, Y = clustered_data(n=150, L=6)
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(150, size=70, replace=False)).astype(np.int64)
    pos = [np.flatnonzero(Y[rows].toarray()[:, j]) for j in range(3)]
    tgt_indptr = np.array([0] + list(np.cumsum([len(p) for p in pos])), np.int64)
    tgt_indices = np.concatenate(pos).astype(np.int64)
    sq = _dcd.row_sq_norms(X.indptr, X.data, 1.0)
    d = X.shape[1]
    counts, feat, vals, bias_w, n_iter = _tree_kernels.train_node(
        X.indptr, X.indices, X.data, sq, rows, tgt_indptr, tgt_indices,
        np.arange(3, dtype=np.int64), loss, 1.0, 1.0, 1e-8, 5000, 0.0, d)
    Xs = X[rows]
    Xs.sort_indices()
    sqs = _dcd.row_sq_norms(Xs.indptr, Xs.data, 1.0)
    off = 0
    for j in range(3):
        y = -np.ones(len(rows))
        y[pos[j]] = 1.0
        w, _, _ = _dcd.dcd_solve(Xs.indptr, Xs.indices, Xs.data, sqs, y, loss, 1.0, 1.0,
                                 1e-8, 5000, 5, d)
        got = np.zeros(d)
        got[feat[off:off + counts[j]]] = vals[off:off + counts[j]]
        off += counts[j]
        np.testing.assert_allclose(got, w[:d], atol=2e-4)
        assert abs(bias_w[j] - w[d]) < 2e-4
        # features absent from the node's rows never get weight
        absent = np.setdiff1d(np.arange(d), Xs.indices)
        assert np.all(got[absent] == 0)


def test_train_node_prunes_and_handles_empty_nodes():
    X, _ = clustered_data(n=50, L=6)
    sq = _dcd.row_sq_norms(X.indptr, X.data, 1.0)
    empty = np.zeros(0, np.int64)
    out = _tree_kernels.train_node(X.indptr, X.indices, X.data, sq, empty,
                                   np.zeros(3, np.int64), empty, np.arange(2, dtype=np.int64),
                                   0, 1.0, 1.0, 0.1, 10, 0.1, X.shape[1])
    assert np.array_equal(out[0], [0, 0]) and np.all(out[3] == 0)
    rows = np.arange(50, dtype=np.int64)
    out = _tree_kernels.train_node(X.indptr, X.indices, X.data, sq, rows,
                                   np.array([0, 10], np.int64), np.arange(10, dtype=np.int64),
                                   np.zeros(1, np.int64), 0, 1.0, 1.0, 0.1, 100, 0.3,
                                   X.shape[1])
    assert np.all(np.abs(out[2]) >= 0.3) and np.all(np.diff(out[1]) > 0)


def test_sq_hinge_block_reaches_each_problems_optimum():
    """The lockstep solver == the one-problem solver (same optimum) for every problem."""
    X, Y = clustered_data(n=120, L=5)
    rows = np.arange(0, 120, 2, dtype=np.int64)
    Xs = X[rows]
    Xs.sort_indices()
    sq = _dcd.row_sq_norms(X.indptr, X.data, 1.0)
    feats = np.unique(Xs.indices)
    loc = np.full(X.shape[1], -1, np.int32)
    loc[feats] = np.arange(feats.size)
    Yd = Y[rows].toarray()
    pos = [np.flatnonzero(Yd[:, j]) for j in range(5)]
    tgt_indptr = np.array([0] + list(np.cumsum([len(p) for p in pos])), np.int64)
    tgt_indices = np.concatenate(pos).astype(np.int64)
    W = np.zeros((feats.size, 5), np.float64)
    wb = np.zeros(5)
    n_iter = np.zeros(5, np.int64)
    _dcd.sq_hinge_block(X.indptr, X.indices, X.data, sq, rows, loc, tgt_indptr, tgt_indices,
                        np.full(wb.size, 0.7), 1.0, 1e-9, 10000, 3, W, wb, n_iter)
    sqs = _dcd.row_sq_norms(Xs.indptr, Xs.data, 1.0)
    for j in range(5):
        y = np.where(Yd[:, j] > 0, 1.0, -1.0)
        w, _, _ = _dcd.dcd_solve(Xs.indptr, Xs.indices, Xs.data, sqs, y, 0, 0.7, 1.0, 1e-9,
                                 10000, 11, X.shape[1])
        np.testing.assert_allclose(W[:, j], w[feats], atol=1e-5)
        assert abs(wb[j] - w[-1]) < 1e-5
        assert 1 <= n_iter[j] < 10000
    # one epoch: every problem ran exactly one
    W[:] = 0
    wb[:] = 0
    _dcd.sq_hinge_block(X.indptr, X.indices, X.data, sq, rows, loc, tgt_indptr, tgt_indices,
                        np.full(wb.size, 0.7), 1.0, 1e-9, 1, 3, W, wb, n_iter)
    assert np.all(n_iter == 1)


def test_train_node_block_and_one_by_one_agree():
    """train_node's lockstep path and its one-by-one path (block_bytes=0) solve the same
    problems: at a tight tolerance the same weights; at the default one, close ones."""
    X, Y = clustered_data(n=150, L=6)
    rows = np.arange(0, 150, 3, dtype=np.int64)
    pos = [np.flatnonzero(Y[rows].toarray()[:, j]) for j in range(4)]
    tgt_indptr = np.array([0] + list(np.cumsum([len(p) for p in pos])), np.int64)
    tgt_indices = np.concatenate(pos).astype(np.int64)
    sq = _dcd.row_sq_norms(X.indptr, X.data, 1.0)
    args = (X.indptr, X.indices, X.data, sq, rows, tgt_indptr, tgt_indices,
            np.arange(4, dtype=np.int64), 0, 1.0, 1.0, 1e-7, 5000, 0.0, X.shape[1])
    block = _tree_kernels.train_node(*args)
    single = _tree_kernels.train_node(*args, 0)
    for a, b in ((block, single),):
        Wa = sp.csr_matrix((a[2], a[1], np.r_[0, np.cumsum(a[0])]), shape=(4, X.shape[1]))
        Wb = sp.csr_matrix((b[2], b[1], np.r_[0, np.cumsum(b[0])]), shape=(4, X.shape[1]))
        np.testing.assert_allclose(Wa.toarray(), Wb.toarray(), atol=1e-4)
        np.testing.assert_allclose(a[3], b[3], atol=1e-4)
        assert np.all(np.diff(a[1][:a[0][0]]) > 0)  # features ascending per classifier


def test_beam_search_underflowing_scores_tie_to_lower_ids():
    """One tree, log-probabilities far below -700 (exp underflows to 0) or near -170:
    the exp-only-for-candidates path gives the reference's top k, ties to lower ids."""
    X, Y = clustered_data(L=12)
    model = LabelTree(branching=2, max_leaf_size=3, beam_size=50, random_state=2,
                      hinge_power=2.0, n_threads=1).fit(X, Y)  # the intercepts assume 2
    rng = np.random.default_rng(0)
    model.intercept_ = (model.intercept_
                        + rng.choice([-30.0, -12.0, 0.0, 0.0], size=model.intercept_.shape)
                        ).astype(np.float32)
    want = ref_scores(model, X[:30], beam=50)
    assert (want == 0).any() and ((want > 0) & (want < 1e-50)).any()
    got = model.decision_function(X[:30], k=4)
    for i in range(30):
        order = sorted(range(12), key=lambda j: (-want[i, j], j))[:4]
        assert sorted(order) == list(got.indices[got.indptr[i]:got.indptr[i + 1]])


# ---------------------------------------------------------------------------- weights layout
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), threads=st.integers(1, 3))
def test_node_major_weights_round_trip(seed, threads):
    """Against the plain-Python layout, on 1-3 threads (node ranges filled concurrently)."""
    rng = np.random.default_rng(seed)
    n_nodes = int(rng.integers(1, 12))
    m_node = rng.integers(1, 6, size=n_nodes)
    starts = np.concatenate([[0], np.cumsum(m_node)]).astype(np.int64)
    n_clf, d = int(starts[-1]), 9
    density = rng.choice([0.0, 0.05, 0.3, 0.9], size=n_nodes)[np.repeat(np.arange(n_nodes),
                                                                        m_node)]
    Wd = rng.normal(size=(n_clf, d)) * (rng.random((n_clf, d)) < density[:, None])
    W = sp.csr_matrix(Wd.astype(np.float32))
    lay = _tree_build.node_major_weights(W, starts, n_threads=threads)
    want = ref_node_major_weights(W, starts)
    for key, arr in want.items():
        np.testing.assert_array_equal(lay[key], arr.astype(lay[key].dtype), err_msg=key)
    model = LabelTree()
    model.node_clf_start_ = starts
    model.n_features_in_ = d
    for k, v in lay.items():
        setattr(model, k + "_", v)
    np.testing.assert_array_equal(dense_weights(model), W.toarray())
    # margins of score_node == W @ x
    x = sp.csr_matrix(rng.random((1, d)) * (rng.random((1, d)) < 0.5))
    bias = rng.normal(size=n_clf)
    for v in range(n_nodes):
        out = np.zeros(6)
        _tree_kernels.score_node(x.indices, x.data, 0, x.nnz, v, starts,
                                 *(lay[k] for k in ("node_feat_start", "feat_id", "feat_ptr",
                                                    "weights", "node_dense", "child_shift",
                                                    "val_child")), bias, out,
                                 *score_scratch(x.nnz))
        a, b = starts[v], starts[v + 1]
        np.testing.assert_allclose(out[:b - a], W.toarray()[a:b] @ x.toarray()[0] + bias[a:b],
                                   rtol=1e-6, atol=1e-6)


def test_node_major_weights_lays_out_direct_dense_and_sparse_nodes():
    """One node of each kind: the rules of the docstring pick them, scoring agrees."""
    d = 40
    Wd = np.zeros((9, d), np.float32)
    Wd[0:2, 10:20] = 1.5  # node 0: contiguous and full -> direct and dense
    Wd[2, [0, 39]] = 2.0  # node 1: two far features, one classifier of five -> sparse
    Wd[7, 3] = -1.0  # node 2: features 3 and 5 -> direct (3..5), dense (2 of 6 slots)
    Wd[8, 5] = 0.5
    starts = np.array([0, 2, 7, 9], np.int64)
    lay = _tree_build.node_major_weights(sp.csr_matrix(Wd), starts)
    fs = lay["node_feat_start"]
    assert list(np.diff(fs)) == [10, 2, 3]  # node 2 padded to features 3..5
    assert list(lay["node_dense"]) == [True, False, True]
    assert list(lay["feat_id"][fs[2]:fs[3]]) == [3, 4, 5]
    x = sp.csr_matrix(np.arange(d, dtype=np.float32)[None, :] / d)
    for v in range(3):
        out = np.zeros(5)
        _tree_kernels.score_node(x.indices, x.data, 0, x.nnz, v, starts,
                                 *(lay[k] for k in ("node_feat_start", "feat_id", "feat_ptr",
                                                    "weights", "node_dense", "child_shift",
                                                    "val_child")), np.zeros(9), out,
                                 *score_scratch(x.nnz))
        a, b = starts[v], starts[v + 1]
        np.testing.assert_allclose(out[:b - a], Wd[a:b] @ x.toarray()[0], rtol=1e-6)


# ---------------------------------------------------------------------------- beam search
@pytest.mark.parametrize("n_trees", [1, 2])
@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_beam_search_with_wide_beam_is_exhaustive(loss, n_trees):
    X, Y = clustered_data(L=24)
    model = LabelTree(n_trees=n_trees, branching=3, max_leaf_size=3, beam_size=1000, loss=loss,
                      random_state=1, n_threads=1).fit(X, Y)
    # the defaults (3 at the leaves, 2 inside), the leaves' other shortcut, a pow at the
    # leaves, a pow inside, one exponent everywhere (None)
    for power, inner in ((3.0, 2.0), (2.0, 2.0), (1.5, 3.0), (3.0, 2.5), (3.0, None)):
        model.set_params(hinge_power=power, inner_hinge_power=inner)
        want = ref_scores(model, X[:40], beam=None)
        got = model.decision_function(X[:40], k=24).toarray()
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)


def test_log_prob_hand_computed():
    lp = _tree_kernels.log_prob
    assert lp(0.5, 0, 2.0) == -0.25 and lp(0.5, 0, 3.0) == -0.125
    assert lp(-1.0, 0, 3.0) == -8.0 and lp(-1.0, 0, 1.5) == pytest.approx(-(2 ** 1.5))
    assert lp(1.0, 0, 3.0) == 0.0 and lp(7.0, 0, 1.5) == 0.0  # margin >= 1: probability 1
    assert lp(0.0, 1, 3.0) == pytest.approx(math.log(0.5))  # logistic: the power is unused


def test_hinge_power_is_read_at_prediction_and_old_manifests_load_with_two(tmp_path):
    X, Y = clustered_data()
    model = LabelTree(max_leaf_size=5, random_state=0).fit(X, Y)
    assert model.hinge_power == 3.0
    weights = model._get_state()[0]["weights"].copy()
    S3 = model.decision_function(X, k=5)
    two = LabelTree(max_leaf_size=5, random_state=0, hinge_power=2.0).fit(X, Y)
    assert np.array_equal(two._get_state()[0]["weights"], weights)  # training does not read it
    S2 = two.decision_function(X, k=5)
    assert not np.allclose(S2.toarray(), S3.toarray())
    model.set_params(hinge_power=2.0)  # no refit needed
    T = model.decision_function(X, k=5)
    assert np.array_equal(T.indices, S2.indices) and np.array_equal(T.data, S2.data)
    model.set_params(hinge_power=3.0)
    back = load_without_param(model, tmp_path / "old", "hinge_power")
    assert back.hinge_power == 2.0
    T = back.decision_function(X, k=5)
    assert np.array_equal(T.indices, S2.indices) and np.array_equal(T.data, S2.data)
    for bad in (dict(hinge_power=0.0), dict(hinge_power=True), dict(beam_size=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            back.set_params(**bad).decision_function(X, k=5)
        back.set_params(hinge_power=2.0, beam_size=10)


def test_inner_hinge_power_is_read_at_prediction_and_old_manifests_load_with_none(tmp_path):
    X, Y = clustered_data()
    model = LabelTree(branching=2, max_leaf_size=5, random_state=0).fit(X, Y)
    assert (model.hinge_power, model.inner_hinge_power) == (3.0, 2.0)
    assert (model.clf_child_ >= 0).sum() > 2  # classifiers that lead to nodes, below the root
    S = model.decision_function(X, k=5)
    for inner in (None, 3.0, 1.0):  # None: the leaves' exponent everywhere, i.e. 3
        T = model.set_params(inner_hinge_power=inner).decision_function(X, k=5)
        assert not np.allclose(T.toarray(), S.toarray())
    same = model.set_params(inner_hinge_power=3.0).decision_function(X, k=5)
    T = model.set_params(inner_hinge_power=None).decision_function(X, k=5)
    assert np.array_equal(T.indices, same.indices) and np.array_equal(T.data, same.data)
    # a manifest from before the parameter: one exponent everywhere, as it was scored then
    model.set_params(inner_hinge_power=2.0)
    back = load_without_param(model, tmp_path / "old", "inner_hinge_power")
    assert back.inner_hinge_power is None
    T = back.decision_function(X, k=5)
    assert np.array_equal(T.indices, same.indices) and np.array_equal(T.data, same.data)
    for bad in (0.0, -1.0, True, "2", float("nan")):
        with pytest.raises(ValueError, match="inner_hinge_power"):
            back.set_params(inner_hinge_power=bad).decision_function(X, k=5)


@pytest.mark.parametrize("n_trees", [1, 2])
@pytest.mark.parametrize("beam", [1, 2, 4, 16])
def test_beam_search_matches_reference_beam(beam, n_trees):
    X, Y = clustered_data(L=40)
    model = LabelTree(n_trees=n_trees, branching=2, max_leaf_size=3, beam_size=beam,
                      random_state=0, n_threads=2).fit(X, Y)
    want = ref_scores(model, X[:60], beam=beam)
    for k in (1, 5):
        got = model.decision_function(X[:60], k=k)
        for i in range(60):
            row = want[i]
            order = sorted(range(40), key=lambda j: (-row[j], j))[:k]  # ties: lower id
            assert sorted(order) == list(got.indices[got.indptr[i]:got.indptr[i + 1]])
            np.testing.assert_allclose(got.data[got.indptr[i]:got.indptr[i + 1]],
                                       row[sorted(order)], rtol=2e-5, atol=1e-7)
    # a narrow beam reaches fewer labels; unreached ones score 0
    full = model.decision_function(X[:60], k=40).toarray()
    assert np.array_equal(full > 0, want > 0)


def test_leaves_best_first_skips_only_leaves_below_the_cut():
    """A beam level of every leaf, with spread scores: scored best first, the leaves below
    the k-th best label so far are skipped (fewer labels touched), and the top k and their
    log-probabilities are those of scoring every leaf (the plain sort of all of them)."""
    X, Y = clustered_data(L=40)
    model = LabelTree(branching=2, max_leaf_size=3, random_state=0, n_threads=1).fit(X, Y)
    starts, child = model.node_clf_start_, model.clf_child_
    leaves = np.array([v for v in range(starts.size - 1) if child[starts[v]] < 0], np.int64)
    assert leaves.size >= 8
    Xn = _tree_build.l2_normalize_rows(X)
    layout = [getattr(model, key + "_") for key in ("node_feat_start", "feat_id", "feat_ptr",
                                                     "weights", "node_dense", "child_shift",
                                                     "val_child")]
    rng = np.random.default_rng(3)
    L = len(model.labels_)
    skipped = 0
    for i in range(20):
        a, b = Xn.indptr[i], Xn.indptr[i + 1]
        cur_v = rng.permutation(leaves)
        cur_s = -rng.exponential(3.0, cur_v.size)
        for k in (1, 3):
            touched = np.empty(L, np.int64)
            t_lp = np.empty(L, np.float64)
            low = np.empty(k, np.float64)
            n_touched, n_low = _tree_kernels._leaves_best_first(
                Xn.indices, Xn.data, a, b, starts, *layout, model.intercept_,
                _tree_kernels.LOSS_SQUARED_HINGE, 3.0, child, cur_v, cur_s,
                np.arange(cur_v.size), cur_v.size, np.empty(8), *score_scratch(b - a),
                touched, t_lp, 0, low, 0, k)
            # every leaf, by hand: the log-probabilities of all labels
            margins = Xn[i].toarray()[0] @ dense_weights(model).T + model.intercept_
            every = {}
            for v, base in zip(cur_v, cur_s):
                for c in range(starts[v], starts[v + 1]):
                    every[-child[c] - 1] = base + ref_log_prob(float(margins[c]),
                                                               "squared_hinge", 3.0)
            want = sorted(every.items(), key=lambda e: (-e[1], e[0]))[:k]
            got = sorted(zip(touched[:n_touched], t_lp[:n_touched]),
                         key=lambda e: (-e[1], e[0]))[:k]
            assert [g[0] for g in got] == [w[0] for w in want]
            np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=1e-5)
            assert n_low == min(k, n_touched)
            skipped += len(every) - n_touched
    assert skipped > 0  # the spread scores let it skip leaves


# ---------------------------------------------------------------------------- the model
def test_same_seed_same_model_and_threads_do_not_matter():
    X, Y = clustered_data()
    a = LabelTree(n_trees=2, max_leaf_size=5, random_state=4, n_threads=1).fit(X, Y)
    b = LabelTree(n_trees=2, max_leaf_size=5, random_state=4, n_threads=2).fit(X, Y)
    c = LabelTree(n_trees=2, max_leaf_size=5, random_state=5, n_threads=2).fit(X, Y)
    sa, _ = a._get_state()
    sb, _ = b._get_state()
    sc, _ = c._get_state()
    for key in sa:
        assert np.array_equal(sa[key], sb[key]), key
    assert not all(np.array_equal(sa[k], sc[k]) if sa[k].shape == sc[k].shape else False
                   for k in sa)


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_one_by_one_tasks_are_cut_for_threads_and_the_model_is_unchanged(monkeypatch, loss):
    """A tree over few labels is one root task; solved one by one (no block: logistic, or a
    block too big), it is cut over the threads, and the model equals the uncut one exactly."""
    X, Y = clustered_data(n=200, L=24)
    monkeypatch.setattr(_tree_kernels, "BLOCK_BYTES", 64)  # every block too big
    cut = []
    real = _tree_build.split_tasks

    def spy(Xn, tasks, **kw):
        out = real(Xn, tasks, **kw)
        cut.append((len(tasks), len(out), kw["n_threads"]))
        return out

    monkeypatch.setattr(_tree_build, "split_tasks", spy)
    kw = dict(max_leaf_size=30, loss=loss, random_state=3)  # 24 labels: the root only
    a = LabelTree(n_threads=1, **kw).fit(X, Y)
    b = LabelTree(n_threads=3, **kw).fit(X, Y)
    assert cut == [(1, 1, 1), (1, 3, 3)]
    sa, _ = a._get_state()
    sb, _ = b._get_state()
    for key in sa:
        assert np.array_equal(sa[key], sb[key]), key


def test_split_tasks_keeps_block_tasks_and_small_tasks_whole():
    X, Y = clustered_data(n=200, L=24)
    Xn = _tree_build.l2_normalize_rows(X)
    Z = _tree_build.label_representations(Xn, sp.csc_matrix(Y))
    lay = _tree_build.build_tree(Z, branching=4, max_leaf_size=6, cluster_iters=3, seed=0)
    tasks = _tree_build.training_tasks(sp.csc_matrix(Y), lay, tree=0, clf_offset=0, seed=0)
    sq = _dcd.row_sq_norms(Xn.indptr, Xn.data, 1.0)
    # the squared hinge with small nodes: every task is a block, none is cut
    assert all(_tree_build.uses_block(Xn, t, _dcd.LOSS_SQUARED_HINGE) for t in tasks
               if t.seeds.shape[0] > 1)
    assert _tree_build.split_tasks(Xn, tasks, loss=_dcd.LOSS_SQUARED_HINGE,
                                   n_threads=2) == tasks
    # logistic: the tasks above a 2*threads-th of the work are cut in n_threads pieces that
    # cover their classifiers once, in order, and train to the same weights
    out = _tree_build.split_tasks(Xn, tasks, loss=_dcd.LOSS_LOGISTIC, n_threads=2)
    total = sum(t.cost for t in tasks)
    big = [t for t in tasks if t.seeds.shape[0] > 1 and t.cost * 4 > total]
    assert big and len(out) == len(tasks) + len(big)
    for t in big:
        pieces = [p for p in out if p.node == t.node]
        assert len(pieces) == 2 and not any(p.block for p in pieces)
        assert np.array_equal(np.concatenate([p.seeds for p in pieces]), t.seeds)
        whole = _tree_build.run_task(Xn, sq, t, loss=_dcd.LOSS_LOGISTIC, C=1.0, bias=1.0,
                                     tol=0.01, max_iter=20, prune_threshold=0.0)
        parts = [_tree_build.run_task(Xn, sq, p, loss=_dcd.LOSS_LOGISTIC, C=1.0, bias=1.0,
                                      tol=0.01, max_iter=20, prune_threshold=0.0)
                 for p in pieces]
        assert parts[1].clf_start == t.clf_start + pieces[0].seeds.shape[0]
        for name in ("counts", "feat", "vals", "bias_w", "n_iter"):
            assert np.array_equal(np.concatenate([getattr(r, name) for r in parts]),
                                  getattr(whole, name)), name


def test_node_C_hand_computed():
    assert _tree_build.node_C(0.5, 100, 25, 0.5) == 1.0  # 0.5 * 4 ** 0.5
    assert _tree_build.node_C(0.5, 160, 10, 0.25) == 1.0  # 0.5 * 16 ** 0.25
    assert _tree_build.node_C(2.0, 100, 100, 0.25) == 2.0  # the root
    assert _tree_build.node_C(2.0, 100, 7, 0.0) == 2.0
    assert _tree_build.node_C(2.0, 100, 0, 0.5) == 2.0  # an empty node


@pytest.mark.parametrize("power", [0.0, 0.25, 1.0])
def test_each_node_is_trained_with_its_scaled_C(monkeypatch, power):
    """Every node task gets C * (n / rows) ** C_node_power (the root: C), and that C is what
    its classifiers are solved with (train_node == dcd_solve with a given C is checked above)."""
    X, Y = clustered_data(n=150, L=24)
    seen = []
    real = _tree_build.run_task

    def spy(Xn, sq, task, *, C, **kw):
        seen.append((task.node, task.rows.shape[0], C))
        return real(Xn, sq, task, C=C, **kw)

    monkeypatch.setattr(_tree_build, "run_task", spy)
    LabelTree(max_leaf_size=4, branching=3, C=0.5, C_node_power=power, n_threads=1,
              random_state=0).fit(X, Y)
    assert len(seen) > 4 and {node for node, *_ in seen} >= {0}
    for node, m, C in seen:
        assert m <= 150 and (node != 0 or m == 150)
        assert C == pytest.approx(0.5 * (150 / m) ** power, rel=1e-12), (node, m)
    if power:
        assert any(m < 150 and C > 0.5 for _, m, C in seen)


def test_row_length_C_scale_hand_computed():
    f = _tree_build.row_length_C_scale

    def rows(r, n=4):
        return sp.csr_matrix(np.ones((n, r), np.float32))

    assert f(rows(35)) == 1.0 and f(rows(70)) == 1.0  # short rows: C as given
    assert f(rows(140)) == 4.0  # (140 / 70) ** 2
    assert f(rows(105)) == pytest.approx(2.25)
    assert f(rows(1000)) == 8.0  # capped
    assert f(sp.csr_matrix((0, 5), dtype=np.float32)) == 1.0
    # the mean over rows: 2 rows of 140 and 2 of 0 features average 70
    X = sp.vstack([rows(140, 2), sp.csr_matrix((2, 140), dtype=np.float32)]).tocsr()
    assert f(X) == 1.0


@pytest.mark.parametrize("scaling", [True, False])
def test_long_rows_scale_every_nodes_C(monkeypatch, scaling):
    """Rows of 140 features: C_row_scaling multiplies every node's C by (140 / 70) ** 2."""
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.random((90, 140)).astype(np.float32) + 0.01)
    Y = sp.csr_matrix((rng.random((90, 12)) < 0.25).astype(np.float32))
    seen = []
    real = _tree_build.run_task

    def spy(Xn, sq, task, *, C, **kw):
        seen.append((task.rows.shape[0], C))
        return real(Xn, sq, task, C=C, **kw)

    monkeypatch.setattr(_tree_build, "run_task", spy)
    LabelTree(max_leaf_size=4, branching=3, C=0.5, C_node_power=0.5, C_row_scaling=scaling,
              n_threads=1, random_state=0).fit(X, Y)
    scale = 4.0 if scaling else 1.0
    assert len(seen) > 3
    for m, C in seen:
        assert C == pytest.approx(0.5 * scale * (90 / m) ** 0.5, rel=1e-12)


def test_C_row_scaling_old_manifests_load_with_false(tmp_path):
    X, Y = clustered_data(n=120, L=12)
    model = LabelTree(max_leaf_size=5, C_row_scaling=False, random_state=0).fit(X, Y)
    assert LabelTree().C_row_scaling is True
    back = load_without_param(model, tmp_path / "old", "C_row_scaling")
    assert back.C_row_scaling is False
    assert np.array_equal(back.decision_function(X, k=3).toarray(),
                          model.decision_function(X, k=3).toarray())
    # short rows (clustered_data: about 14 features a row) train the same model either way
    same = LabelTree(max_leaf_size=5, random_state=0).fit(X, Y)
    sa, _ = model._get_state()
    sb, _ = same._get_state()
    for key in sa:
        assert np.array_equal(sa[key], sb[key]), key


def load_without_param(model, path, name):
    """Save model, drop parameter ``name`` from the manifest (as written before the
    parameter existed) and load it back."""
    from labelwise.models import load_model

    model.save(path)
    mpath = path / "manifest.json"
    manifest = json.loads(mpath.read_text())
    del manifest["params"][name]
    mpath.write_text(json.dumps(manifest))
    return load_model(path)


def test_C_node_power_changes_the_model_and_old_manifests_load_with_zero(tmp_path):
    X, Y = clustered_data()
    flat = LabelTree(max_leaf_size=5, C_node_power=0.0, random_state=0).fit(X, Y)
    scaled = LabelTree(max_leaf_size=5, random_state=0).fit(X, Y)
    assert scaled.C_node_power == 0.75
    assert not np.array_equal(flat._get_state()[0]["weights"], scaled._get_state()[0]["weights"])
    back = load_without_param(flat, tmp_path / "old", "C_node_power")
    assert back.C_node_power == 0.0
    S, T = flat.decision_function(X, k=5), back.decision_function(X, k=5)
    assert np.array_equal(S.indices, T.indices) and np.array_equal(S.data, T.data)


def test_save_load_identical_and_mmap(tmp_path):
    X, Y = clustered_data()
    model = LabelTree(n_trees=2, max_leaf_size=5, random_state=0).fit(X, Y)
    S = model.decision_function(X, k=5)
    model.save(tmp_path / "m")
    for mmap in (False, True):
        back = LabelTree.load(tmp_path / "m", mmap=mmap)
        T = back.decision_function(X, k=5)
        assert np.array_equal(S.indices, T.indices) and np.array_equal(S.data, T.data)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["class"] == "LabelTree" and "weights" in manifest["arrays"]


def test_load_refuses_inconsistent_arrays(tmp_path):
    X, Y = clustered_data()
    model = LabelTree(n_trees=1, max_leaf_size=5, random_state=0).fit(X, Y)
    model.save(tmp_path / "m")
    clf_child = np.load(tmp_path / "m" / "clf_child.npy")
    clf_child[0] = 10**6  # a node id past the end
    np.save(tmp_path / "m" / "clf_child.npy", clf_child)
    with pytest.raises(DataFormatError, match="sha256"):
        LabelTree.load(tmp_path / "m")
    with pytest.raises(DataFormatError, match="do not describe trees"):
        LabelTree.load(tmp_path / "m", verify=False)
    leaves = np.flatnonzero(model.clf_child_ < 0)
    for at, to in ((0, 0),  # a cycle: the root is its own first child
                   (1, model.clf_child_[0]),  # a node with two parents
                   (leaves[1], model.clf_child_[leaves[0]])):  # a label in two leaves
        clf_child = model.clf_child_.copy()
        clf_child[at] = to
        np.save(tmp_path / "m" / "clf_child.npy", clf_child)
        with pytest.raises(DataFormatError, match="do not describe trees"):
            LabelTree.load(tmp_path / "m", verify=False)
    np.save(tmp_path / "m" / "clf_child.npy", model.clf_child_)
    LabelTree.load(tmp_path / "m")  # the untouched arrays load
    two = LabelTree(n_trees=2, max_leaf_size=5, random_state=0).fit(X, Y)
    two.save(tmp_path / "two")
    clf_child = two.clf_child_.copy()
    assert clf_child[1] >= 0
    clf_child[1] = -1  # the root with node and label children (labels repeat across trees)
    np.save(tmp_path / "two" / "clf_child.npy", clf_child)
    with pytest.raises(DataFormatError, match="do not describe trees"):
        LabelTree.load(tmp_path / "two", verify=False)


def test_weight_slot_checks_in_blocks_equal_the_whole(monkeypatch):
    """_valid_state checks the weight slots in blocks of nodes (its temporaries grow with a
    block, not with the model): every block size accepts a fitted model's arrays and refuses
    the same corrupted ones (a child id past a sparse node's children, a child-offset that
    points outside val_child)."""
    from labelwise.models import tree as tree_mod

    X, Y = clustered_data()
    model = LabelTree(n_trees=2, max_leaf_size=5, random_state=0).fit(X, Y)
    state, _ = model._get_state()
    L, d = Y.shape[1], X.shape[1]
    # sparse random weights in the model's layout, so that its nodes have sparse slots
    W = sp.random(state["clf_child"].shape[0], d, density=0.05, format="csr",
                  dtype=np.float32, random_state=np.random.default_rng(0))
    state.update(_tree_build.node_major_weights(W, state["node_clf_start"]))
    state["node_dense"] = state["node_dense"].astype(np.uint8)
    sparse = np.flatnonzero(state["node_dense"] == 0)
    fs, fp = state["node_feat_start"], state["feat_ptr"]
    v = int(next(u for u in sparse if fp[fs[u + 1]] > fp[fs[u]]))
    kid_at = int(fp[fs[v]] - state["child_shift"][v])
    bad_kid = dict(state, val_child=state["val_child"].copy())
    bad_kid["val_child"][kid_at] = 10**6
    bad_shift = dict(state, child_shift=state["child_shift"].copy())
    bad_shift["child_shift"][v] = -state["val_child"].shape[0]
    for block in (1, 2, 7, 64, 1 << 22):
        monkeypatch.setattr(tree_mod, "_CHECK_SLOTS", block)
        assert tree_mod._valid_state(state, L, d), block
        assert not tree_mod._valid_state(bad_kid, L, d), block
        assert not tree_mod._valid_state(bad_shift, L, d), block


def test_label_features_argument():
    X, Y = clustered_data(L=24)
    E = sp.csr_matrix(np.eye(24, dtype=np.float32))
    given_only = LabelTree(label_features="given", max_leaf_size=6, random_state=0)
    given_only.fit(X, Y, label_features=E)
    S = given_only.decision_function(X, k=3)
    assert S.shape == (X.shape[0], 24)
    both = LabelTree(max_leaf_size=6, random_state=0).fit(X, Y, label_features=E)
    assert both.decision_function(X, k=3).shape == (X.shape[0], 24)
    with pytest.raises(TypeError, match="given"):
        LabelTree(label_features="given").fit(X, Y)
    with pytest.raises(DataFormatError, match="label_features has 5 rows"):
        LabelTree().fit(X, Y, label_features=E[:5])


def test_memory_limit_refuses_with_estimate():
    X, Y = clustered_data()
    with pytest.raises(ResourceLimitError, match="MiB"):
        LabelTree(memory_limit=1000).fit(X, Y)
    model = LabelTree(random_state=0, max_leaf_size=5).fit(X, Y)
    learned = sum(np.asarray(a).nbytes for a in model._get_state()[0].values())
    assert model.estimate_memory(X, Y) >= learned


def test_weights_past_the_limit_stop_training(monkeypatch):
    """The running count of pruned weights stops fit when it passes what the limit leaves."""
    X, Y = clustered_data()
    model = LabelTree(max_leaf_size=5, prune_threshold=0.0, random_state=0, n_threads=2)
    fixed, _ = model._memory_parts(X, Y)
    monkeypatch.setattr(LabelTree, "_memory_parts", lambda self, X, Y: (fixed, 0.0))
    model.memory_limit = int(fixed + 2000)  # 1000 bytes for the weights
    with pytest.raises(ResourceLimitError, match="pruned weights passed"):
        model.fit(X, Y)
    assert not hasattr(model, "labels_")
    model.memory_limit = int(fixed + 10**7)
    model.fit(X, Y)


def test_labels_without_positives_warn_and_score_low():
    X, Y = small_data()
    Y = sp.lil_matrix(Y)
    Y[:, 2] = 0
    with pytest.warns(UserWarning, match="1 of 6 labels have no positive"):
        model = LabelTree(max_leaf_size=3, random_state=0).fit(X, sp.csr_matrix(Y))
    assert list(model.labels_without_positives_) == [2]
    assert np.all(model.decision_function(X, k=6).toarray()[:, 2] < 0.5)


@pytest.mark.parametrize("bad", [dict(n_trees=0), dict(branching=1), dict(max_leaf_size=0),
                                 dict(beam_size=0), dict(loss="hinge"), dict(C=0.0),
                                 dict(label_features="text"), dict(normalize="l1"),
                                 dict(n_threads=0), dict(random_state=-1),
                                 dict(memory_limit="lots"), dict(cluster_iters=True),
                                 dict(C_node_power=-0.5), dict(C_node_power=float("nan")),
                                 dict(C_node_power=float("inf")), dict(C_node_power=True),
                                 dict(C_node_power="0.25"), dict(hinge_power=0.0),
                                 dict(hinge_power=-1.0), dict(hinge_power=float("nan")),
                                 dict(hinge_power="3"), dict(C_row_scaling=1),
                                 dict(C_row_scaling="yes")])
def test_bad_params(bad):
    X, Y = small_data()
    with pytest.raises(ValueError):
        LabelTree(**bad).fit(X, Y)


def test_bibtex_precision_goal():
    import labelwise as lw
    from conftest import shared_dataset_dir
    from labelwise.metrics import precision_at_k

    folder = shared_dataset_dir("mulan-bibtex")
    tr = lw.read(folder / "bibtex-train.arff")
    te = lw.read(folder / "bibtex-test.arff")
    model = LabelTree(n_threads=2).fit(tr.X, tr.Y)
    S = model.decision_function(te.X, k=5)
    assert precision_at_k(te.Y, S, k=1) >= 0.64


def test_layout_pieces_merge_into_the_whole_layout():
    """The Dask path lays out each task's nodes on its worker (layout_piece) and joins the
    pieces (merge_layouts): the same arrays as node_major_weights over all classifiers, for
    nodes split into groups at random (sparse, dense and direct nodes, nodes without
    weights)."""
    rng = np.random.default_rng(0)
    for trial in range(30):
        n_nodes = int(rng.integers(1, 12))
        m = rng.integers(1, 6, n_nodes)
        starts = np.concatenate([[0], np.cumsum(m)]).astype(np.int64)
        d = int(rng.integers(1, 40))
        W = sp.random(int(starts[-1]), d, density=float(rng.choice([0.02, 0.3, 0.9])),
                      format="csr", dtype=np.float32, random_state=rng)
        whole = _tree_build.node_major_weights(W, starts)
        groups: dict[int, list[int]] = {}
        for v in range(n_nodes):
            groups.setdefault(int(rng.integers(0, 3)), []).append(v)
        pieces = []
        for nodes in groups.values():
            res = []
            for v in nodes:
                a, b = W.indptr[starts[v]], W.indptr[starts[v + 1]]
                res.append(_tree_build.TaskResult(
                    int(starts[v]) + 5, np.diff(W.indptr[starts[v]:starts[v + 1] + 1]),
                    W.indices[a:b].astype(np.int32), W.data[a:b], np.zeros(m[v]),
                    np.zeros(m[v], np.int32)))
            pieces.append((np.array(nodes), _tree_build.layout_piece(res, starts, nodes, 5, d)))
        merged = _tree_build.merge_layouts(pieces, n_nodes)
        assert sorted(merged) == sorted(whole)
        for k in whole:
            assert whole[k].dtype == merged[k].dtype, (trial, k)
            assert np.array_equal(whole[k], merged[k]), (trial, k)
