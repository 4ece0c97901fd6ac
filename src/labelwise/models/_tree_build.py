"""Building a label tree and listing its training tasks (the engine behind ``LabelTree``).

Label representations
    ``label_representations(X, Y)``: PIFA (positive instance feature aggregation), row ``j``
    = the l2-normalised sum of the rows of X that are positive for label ``j`` (X should
    already be row-normalised, e.g. tf-idf); the sums (``pifa_rows``, the same float32
    numbers as scipy's ``Y.T @ X``) are taken by numba kernels over cost-balanced label
    ranges on ``n_threads`` threads. Extra label features (texts turned into
    vectors, ...) are l2-normalised per row and concatenated, then each row is normalised
    again. A label without positives (and no extra features) gets the zero vector.
Tree layout (``TreeLayout``)
    Nodes are numbered breadth first from the root (0). A node with more than
    ``max_leaf_size`` labels is split into ``min(branching, ceil(n / max_leaf_size))`` groups
    of near-equal size by recursive balanced spherical 2-means
    (:func:`labelwise.models._tree_kernels.balanced_2means`; a split into ``p`` groups puts
    ``floor(n * ceil(p/2) / p)`` labels on the first side, and its two seed labels come from
    a generator of ``(seed, node, path)``, so splits can run on any thread in any order);
    every group becomes a child node.
    Otherwise the node is a leaf whose children are its labels (ascending ids). Each
    parent->child edge is a *classifier*; node ``v``'s classifiers are the ids
    ``node_clf_start[v]:node_clf_start[v+1]`` and ``clf_child[c]`` is the child node id, or
    ``-label - 1`` for a label.
Training tasks (``NodeTask``)
    One per node: the node's training rows (every row for the root; for another node the
    rows positive for at least one label below it, which are the negatives that matter) and,
    per classifier, its positive rows as local positions into those rows. A task holds only
    index arrays; ``run_task(X, sq_norms, task, ...)`` trains it against the shared CSR X,
    so tasks can be shipped to other workers unchanged. Classifier seeds depend only on
    ``random_state``, the tree and the classifier id, so the model does not depend on the
    order in which (or on which thread) tasks run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._csr import trusted_csr
from . import _dcd, _dcd_gram, _tree_kernels, _tree_layout
from .topk import map_ranges, map_threads

__all__ = ["label_representations", "pifa_rows", "l2_normalize_rows", "TreeLayout",
           "build_tree", "TreeShape", "tree_shape", "cluster_nodes", "node_children",
           "node_rows", "node_task", "TreeSpec", "train_nodes", "NodeTask", "TaskResult",
           "training_tasks", "split_tasks", "block_pieces", "uses_block", "uses_gram",
           "gram_matrix", "row_length_C_scale", "row_length_scale", "node_C", "run_task",
           "assemble_weights", "node_major_weights", "layout_piece", "layout_sizes",
           "LayoutMerge", "merge_layouts",
           "balanced_ranges"]


#: up to this many stored values, ``l2_normalize_rows`` works in numpy (temporaries of about
#: 24 bytes a value) instead of in its numba kernels, whose first call in a process links
#: them (~5 ms: most of a small set's fit in a fresh process)
NUMPY_NORMALIZE_MAX = 1 << 22


def l2_normalize_rows(M: sp.csr_matrix, n_threads: int = 1, *,
                      in_place: bool = False) -> sp.csr_matrix:
    """A CSR float32 copy of M's values (indices shared) with every non-zero row at norm 1;
    ``in_place``: M itself, its float32 values scaled where they are (for a matrix the
    caller made and owns).

    Each row's sum of squares is added in float64 in the row's order and every value
    multiplied by the row's ``1 / sqrt(sum)`` in float64, then rounded to float32: in numpy
    (scipy's row sums add in that order) for up to ``NUMPY_NORMALIZE_MAX`` values, else by
    the numba kernels over row ranges of near-equal size on ``n_threads`` threads; the same
    numbers either way."""
    M = M if type(M) is sp.csr_matrix else sp.csr_matrix(M)
    small = M.nnz <= NUMPY_NORMALIZE_MAX
    if small:
        sq = np.asarray(sp.csr_matrix((np.asarray(M.data, np.float64) ** 2, M.indices, M.indptr),
                                      shape=M.shape).sum(axis=1)).ravel()
    else:
        bounds = balanced_ranges(M.indptr, 4 * n_threads)
        sq = np.empty(M.shape[0], np.float64)
        map_ranges(lambda a, b: _tree_kernels.row_sq_sums(M.indptr, M.data, a, b, sq), bounds,
                   n_threads)
    scale = np.zeros_like(sq)
    nz = sq > 0
    scale[nz] = 1.0 / np.sqrt(sq[nz])
    if in_place and M.data.dtype != np.float32:
        raise TypeError(f"in_place needs float32 values, not {M.data.dtype}")
    if small:
        data = M.data * np.repeat(scale, np.diff(M.indptr))  # float64, rounded once below
        if in_place:
            M.data[...] = data
            return M
        data = data.astype(np.float32)
    else:
        data = M.data if in_place else np.empty(M.nnz, np.float32)
        map_ranges(lambda a, b: _tree_kernels.scale_rows(M.indptr, M.data, scale, a, b, data),
                   bounds, n_threads)
        if in_place:
            return M
    return trusted_csr(data, M.indices, M.indptr, M.shape,
                       sorted_indices=M.has_sorted_indices)


def balanced_ranges(cum_cost: np.ndarray, parts: int) -> np.ndarray:
    """Boundaries ``b`` (ascending, ``b[0] = 0``, ``b[-1] = len(cum_cost) - 1``) cutting items
    ``0..len(cum_cost)-2`` into at most ``parts`` ranges of near-equal cost, where item ``i``
    costs ``cum_cost[i+1] - cum_cost[i]``."""
    n = cum_cost.shape[0] - 1
    total = float(cum_cost[-1])
    if n <= 0 or total <= 0 or parts <= 1:
        return np.array([0, max(n, 0)], np.int64)
    target = np.linspace(0.0, total, parts + 1)[1:-1]
    hi = np.clip(np.searchsorted(cum_cost, target), 1, n)  # the nearer boundary of the two
    cuts = np.where(target - cum_cost[hi - 1] < cum_cost[hi] - target, hi - 1, hi)
    return np.unique(np.concatenate([[0], cuts, [n]])).astype(np.int64)


def pifa_rows(X: sp.csr_matrix, Y: sp.spmatrix, n_threads: int = 1) -> sp.csr_matrix:
    """``Y.T @ X`` as CSR float32 with sorted indices (the same float32 sums as scipy's
    product), computed over cost-balanced label ranges on ``n_threads`` threads."""
    Yc = sp.csc_matrix(Y, dtype=np.float32)
    Yc.sort_indices()
    L, d = Yc.shape[1], X.shape[1]
    row_nnz = np.diff(X.indptr)
    cum = np.concatenate([[0], np.cumsum(row_nnz[Yc.indices])])[Yc.indptr]
    bounds = balanced_ranges(cum, 8 * n_threads)
    sizes = np.zeros(L, np.int64)
    map_ranges(lambda a, b: _tree_kernels.pifa_sizes(
        Yc.indptr, Yc.indices, X.indptr, X.indices, d, a, b, sizes), bounds, n_threads)
    indptr = np.zeros(L + 1, np.int64)
    np.cumsum(sizes, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), np.int32 if d < 2**31 else np.int64)
    data = np.empty(int(indptr[-1]), np.float32)
    map_ranges(lambda a, b: _tree_kernels.pifa_fill(
        Yc.indptr, Yc.indices, Yc.data, X.indptr, X.indices, X.data, d, a, b, indptr, indices,
        data), bounds, n_threads)
    Z = sp.csr_matrix((data, indices, indptr), shape=(L, d))
    Z.has_sorted_indices = True
    Z.eliminate_zeros()  # as scipy's product: no stored zeros
    return Z


def label_representations(X: sp.csr_matrix, Y: sp.spmatrix, *, pifa: bool = True,
                          extra: sp.csr_matrix | None = None,
                          n_threads: int = 1) -> sp.csr_matrix:
    """Label feature rows (n_labels, n_cols) CSR float32, l2-normalised (module docstring)."""
    blocks = []
    if pifa:
        blocks.append(l2_normalize_rows(pifa_rows(X, Y, n_threads), n_threads, in_place=True))
    if extra is not None:
        blocks.append(l2_normalize_rows(extra, n_threads))
    Z = blocks[0] if len(blocks) == 1 else sp.hstack(blocks, format="csr")
    Z = l2_normalize_rows(Z, n_threads, in_place=True)  # a matrix made here: scaled in place
    Z.sort_indices()
    return Z


@dataclass
class TreeLayout:
    """One tree (see the module docstring); ``node_labels[v]`` are the labels below node v."""

    node_clf_start: np.ndarray  # int64 (n_nodes + 1,)
    clf_child: np.ndarray  # int64 (n_classifiers,)
    node_labels: list[np.ndarray]

    @property
    def n_nodes(self) -> int:
        return len(self.node_labels)


#: a 2-means split whose labels hold at least this many stored values runs its rounds over
#: the threads left idle when its round has fewer splits than threads (the first split of
#: every tree: 23M values and 0.47 s alone on synthetic-long's 3,000 labels)
THREADED_SPLIT_VALUES = 1 << 20


def _two_means(Z: sp.csr_matrix, labels: np.ndarray, parts: int, iters: int, seed: int,
               node: int, path: int, n_threads: int = 1) -> list[tuple[np.ndarray, int, int]]:
    """One balanced 2-means split of a group meant for ``parts`` children: the two halves as
    ``(labels, parts, path)``. ``path`` is 1 for the node's whole label set and gains one bit
    (0 left, 1 right) per split; the two seed labels come from ``default_rng([seed, node,
    path])``. With ``n_threads > 1`` a split of at least ``THREADED_SPLIT_VALUES`` values
    runs each round over the threads (:func:`_two_means_threads`), with the same result."""
    n = labels.shape[0]
    p0 = (parts + 1) // 2
    n0 = (n * p0) // parts
    i0, i1 = np.random.default_rng([int(seed), int(node), int(path)]).choice(
        n, size=2, replace=False)
    K = _tree_kernels
    if (labels.shape[0] == Z.shape[0] and Z.indices.dtype == np.int32
            and Z.data.dtype == np.float32 and np.array_equal(labels, np.arange(n))):
        # all of Z in order (every tree's first split): its own arrays, global columns (the
        # zeros of unused columns leave every sum as the local copy's)
        rows = (Z.indptr.astype(np.int64), Z.indices, Z.data, Z.shape[1])
    else:
        rows = K.two_means_rows(Z.indptr, Z.indices, Z.data, Z.shape[1], labels)
    if n_threads > 1 and rows[0][-1] >= THREADED_SPLIT_VALUES:
        assign = _two_means_threads(*rows, n0, int(i0), int(i1), iters, n_threads)
    else:
        assign = K.two_means_rounds(*rows, n0, int(i0), int(i1), iters)
    return [(labels[assign == 0], p0, 2 * path), (labels[assign == 1], parts - p0, 2 * path + 1)]


def _two_means_threads(lptr: np.ndarray, loc: np.ndarray, val: np.ndarray, n_local: int,
                       n0: int, init0: int, init1: int, iters: int,
                       n_threads: int) -> np.ndarray:
    """``_tree_kernels.two_means_rounds`` with each round's steps spread over ``n_threads``
    threads: the labels' sides over cost-balanced label ranges, and the two groups' sums
    side by side. Every number is computed as in the kernel (the sums are exact integers),
    so the groups are the same."""
    K = _tree_kernels
    n = lptr.shape[0] - 1
    s = [np.zeros(n_local, np.int64), np.zeros(n_local, np.int64)]
    assign = np.full(n, -1, np.int8)
    moved = np.empty(n, np.int64)
    was = np.empty(n, np.int8)
    K.two_means_start(lptr, loc, val, init0, init1, assign, moved, was, s[0], s[1])
    diff = np.empty(n, np.float64)
    d = np.empty(n_local, np.float64)
    bounds = balanced_ranges(lptr, 4 * n_threads)
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        for _ in range(iters):
            K.two_means_direction(s[0], s[1], d)
            list(pool.map(lambda r: K.two_means_sides(lptr, loc, val, d, diff, *r),
                          zip(bounds[:-1], bounds[1:])))
            k = K.two_means_assign(diff, n0, assign, moved, was)
            if k == 0:
                break
            list(pool.map(lambda g, k=k: K.two_means_move(lptr, loc, val, moved, was, k,
                                                          assign, g, s[g]),
                          (K.GROUP_0, K.GROUP_1)))
    return assign


@dataclass
class TreeShape:
    """The shape of a tree over ``n_labels`` labels, known before any clustering: every split
    puts a fixed number of labels on each side, so how many labels each node holds, its
    children and all node and classifier ids follow from ``n_labels``, ``branching`` and
    ``max_leaf_size`` alone. Nodes are numbered breadth first (the layout's rule)."""

    sizes: np.ndarray  # int64 (n_nodes,): labels below each node
    node_clf_start: np.ndarray  # int64 (n_nodes + 1,)
    first_child: np.ndarray  # int64 (n_nodes,): id of the first child node, -1 for a leaf
    depth: np.ndarray  # int64 (n_nodes,)
    branching: int
    max_leaf_size: int

    @property
    def n_nodes(self) -> int:
        return int(self.sizes.shape[0])

    def parts(self, v: int) -> int:
        """How many children inner node ``v`` has (its labels are split into that many)."""
        return min(self.branching, -(-int(self.sizes[v]) // self.max_leaf_size))

    def children(self, v: int) -> np.ndarray:
        """The child node ids of inner node ``v`` (empty for a leaf)."""
        if self.first_child[v] < 0:
            return np.zeros(0, np.int64)
        return np.arange(self.first_child[v], self.first_child[v] + self.parts(v),
                         dtype=np.int64)

    def descendants(self, v: int) -> list[int]:
        """``v`` and every node below it, in id order."""
        out, level = [], [int(v)]
        while level:
            out += level
            level = [int(c) for u in level for c in self.children(u)]
        return sorted(out)


def _group_sizes(n: int, parts: int) -> list[int]:
    """Sizes of the groups that recursive balanced 2-means cuts ``n`` labels into, in the
    depth-first order of :func:`_two_means`'s halves."""
    if parts == 1:
        return [n]
    p0 = (parts + 1) // 2
    n0 = (n * p0) // parts
    return _group_sizes(n0, p0) + _group_sizes(n - n0, parts - p0)


def tree_shape(n_labels: int, *, branching: int, max_leaf_size: int) -> TreeShape:
    """The :class:`TreeShape` of every tree ``build_tree`` makes over ``n_labels`` labels."""
    sizes, depth, first = [int(n_labels)], [0], []
    starts = [0]
    v = 0
    while v < len(sizes):
        m = sizes[v]
        if m > max_leaf_size:
            groups = _group_sizes(m, min(branching, -(-m // max_leaf_size)))
            first.append(len(sizes))
            sizes += groups
            depth += [depth[v] + 1] * len(groups)
            starts.append(starts[-1] + len(groups))
        else:
            first.append(-1)
            starts.append(starts[-1] + m)
        v += 1
    return TreeShape(np.asarray(sizes, np.int64), np.asarray(starts, np.int64),
                     np.asarray(first, np.int64), np.asarray(depth, np.int64),
                     int(branching), int(max_leaf_size))


def cluster_nodes(Z: sp.csr_matrix, shape: TreeShape, heads: dict[int, np.ndarray], *,
                  cluster_iters: int, seed: int, n_threads: int = 1) -> dict[int, np.ndarray]:
    """The labels of every node at or below the nodes ``heads`` (node id -> its labels), by
    the rules of :func:`build_tree`: one depth at a time, every inner node split into its
    groups by rounds of 2-means splits run on ``n_threads`` threads. Each split's seed labels
    come from ``(seed, node, path)`` and node ids come from ``shape``, so a subtree clustered
    alone (on any worker) is exactly that subtree of the whole tree."""
    out = {int(v): lab for v, lab in heads.items()}

    def split(g: tuple[int, np.ndarray, int, int],
              threads: int = 1) -> list[tuple[int, np.ndarray, int, int]]:
        v, S, parts, path = g
        return [(v, *half) for half in _two_means(Z, S, parts, cluster_iters, seed, v, path,
                                                  threads)]

    level = sorted(out)
    while level:
        # (node, labels, parts, path), in node order, each node's groups left to right
        groups = [(v, out[v], shape.parts(v), 1) for v in level if shape.first_child[v] >= 0]
        while any(g[2] > 1 for g in groups):
            work = [g for g in groups if g[2] > 1]
            if len(work) < n_threads:  # threads to spare: each split spreads over its share
                share = n_threads // len(work)
                halves = iter(map_threads(lambda g, s=share: split(g, s), work, n_threads))
            else:
                halves = iter(map_threads(split, work, n_threads))
            groups = [h for g in groups for h in (next(halves) if g[2] > 1 else [g])]
        placed = {v: 0 for v, _, _, _ in groups}
        for v, S, _, _ in groups:  # a node's groups are its children, in order
            out[int(shape.first_child[v]) + placed[v]] = S
            placed[v] += 1
        level = [int(c) for v in placed for c in shape.children(v)]
    return out


def build_tree(Z: sp.csr_matrix, *, branching: int, max_leaf_size: int, cluster_iters: int,
               seed: int, n_threads: int = 1) -> TreeLayout:
    """Cluster the label rows of Z into one tree (module docstring); deterministic in seed.

    Built one depth at a time (:func:`cluster_nodes`): every node of a depth is split into
    its groups by rounds of 2-means splits, and all splits of a round (of every node) run at
    once on ``n_threads`` threads (the kernel releases the GIL). A split's two halves take
    its place in the list of groups, left before right, so each node's groups stay in
    depth-first order; each split draws its seed labels from a generator of ``(seed, node,
    path)``, so the tree does not depend on ``n_threads``.
    """
    shape = tree_shape(Z.shape[0], branching=branching, max_leaf_size=max_leaf_size)
    labels = cluster_nodes(Z, shape, {0: np.arange(Z.shape[0], dtype=np.int64)},
                           cluster_iters=cluster_iters, seed=seed, n_threads=n_threads)
    node_labels = [labels[v] for v in range(shape.n_nodes)]
    return TreeLayout(shape.node_clf_start, node_children(shape, labels),
                      node_labels)


def node_children(shape: TreeShape, labels: dict[int, np.ndarray],
                  nodes: Any = None) -> np.ndarray:
    """``clf_child`` of ``nodes`` (default: all, in id order), concatenated: an inner node's
    child node ids, a leaf's labels as ``-label - 1``."""
    nodes = range(shape.n_nodes) if nodes is None else nodes
    kids = [shape.children(v) if shape.first_child[v] >= 0 else -labels[v] - 1 for v in nodes]
    return (np.concatenate(kids).astype(np.int64) if kids else np.zeros(0, np.int64))


@dataclass
class NodeTask:
    """Train classifiers ``clf_start .. clf_start + len(seeds) - 1`` on rows ``rows``."""

    tree: int
    node: int
    clf_start: int
    rows: np.ndarray  # int64 global row ids, ascending
    tgt_indptr: np.ndarray  # int64 (m + 1,)
    tgt_indices: np.ndarray  # int64 local positions into rows
    seeds: np.ndarray  # int64 (m,)
    #: False: the classifiers are solved one by one (never as a lockstep block)
    block: bool = True

    @property
    def cost(self) -> int:
        return int(self.rows.shape[0]) * int(self.seeds.shape[0])


@dataclass
class TaskResult:
    clf_start: int
    counts: np.ndarray
    feat: np.ndarray
    vals: np.ndarray
    bias_w: np.ndarray
    n_iter: np.ndarray


def _classifier_seeds(seed: int, tree: int, clf_ids: np.ndarray) -> np.ndarray:
    mixed = (np.uint64(seed) + np.uint64(tree) * np.uint64(1000003)
             + clf_ids.astype(np.uint64) * np.uint64(_dcd.LABEL_SEED_STEP))
    return (mixed % np.uint64(2**32)).astype(np.int64)


def node_rows(Ycsc: sp.csc_matrix, labels: np.ndarray) -> np.ndarray:
    """The training rows of a node other than the root: the rows positive for at least one
    of its ``labels`` (ascending int64)."""
    return np.unique(Ycsc[:, labels].indices).astype(np.int64)


def node_task(Ycsc: sp.csc_matrix, rows: np.ndarray, kids: np.ndarray,
              child_rows: dict[int, np.ndarray], *, tree: int, node: int, clf_start: int,
              seed: int) -> NodeTask:
    """The task of one node: ``rows`` its training rows, ``kids`` its ``clf_child`` entries
    (child node ids, or ``-label - 1``), ``child_rows`` the rows of each child node;
    classifier ids start at ``clf_start`` (their seeds depend on ``seed``, ``tree`` and id)."""
    indptr = Ycsc.indptr
    pos_lists = []
    for child in kids:
        if child >= 0:
            pos = child_rows[int(child)]
        else:
            lab = -child - 1
            pos = Ycsc.indices[indptr[lab]:indptr[lab + 1]]
        pos_lists.append(np.searchsorted(rows, pos).astype(np.int64))
    m = kids.shape[0]
    tgt_indptr = np.zeros(m + 1, np.int64)
    np.cumsum([p.shape[0] for p in pos_lists], out=tgt_indptr[1:])
    tgt_indices = (np.concatenate(pos_lists) if pos_lists else np.zeros(0, np.int64))
    clf_ids = np.arange(clf_start, clf_start + m, dtype=np.int64)
    return NodeTask(tree, node, clf_start, rows, tgt_indptr, tgt_indices,
                    _classifier_seeds(seed, tree, clf_ids))


def training_tasks(Ycsc: sp.csc_matrix, layout: TreeLayout, *, tree: int, clf_offset: int,
                   seed: int) -> list[NodeTask]:
    """The training tasks of one tree, in node order. Ycsc: (n_samples, n_labels) CSC with
    sorted indices. Classifier ids are numbered from ``clf_offset``."""
    n = Ycsc.shape[0]
    rows = {0: np.arange(n, dtype=np.int64)}
    for v in range(1, layout.n_nodes):
        rows[v] = node_rows(Ycsc, layout.node_labels[v])
    starts = layout.node_clf_start
    return [node_task(Ycsc, rows[v], layout.clf_child[starts[v]:starts[v + 1]], rows,
                      tree=tree, node=v, clf_start=clf_offset + int(starts[v]), seed=seed)
            for v in range(layout.n_nodes)]


@dataclass(frozen=True)
class TreeSpec:
    """What building and training ``n_trees`` trees needs besides the data (X, Y, Z): tree
    ``t`` is clustered with the seed ``seed + 7919 t`` and numbered after trees ``0..t-1``;
    node ``v`` is trained at ``node_C(C_root, n_samples, rows, C_node_power)`` with the
    solver settings ``kw`` (``run_task``'s keywords other than C)."""

    n_trees: int
    branching: int
    max_leaf_size: int
    cluster_iters: int
    seed: int
    C_root: float
    C_node_power: float
    kw: dict

    def shape(self, n_labels: int) -> TreeShape:
        return tree_shape(n_labels, branching=self.branching, max_leaf_size=self.max_leaf_size)


def train_nodes(X: sp.csr_matrix, sq_norms: np.ndarray, Ycsc: sp.csc_matrix, Z: sp.csr_matrix,
                spec: TreeSpec, *, tree: int, nodes: list[int], labels: dict[int, np.ndarray],
                cluster: bool) -> tuple[dict[int, np.ndarray], list[TaskResult], list[int]]:
    """Train the classifiers of ``nodes`` of tree ``tree`` whose labels are ``labels`` (node
    id -> labels; the root's may be left out). ``cluster=True``: ``nodes`` is a single head
    node, which is first clustered down to its leaves (:func:`cluster_nodes`), and every node
    of its subtree is trained; ``labels`` then also gives each child's labels. Returns the
    labels of the leaves trained, the task results (exactly those the whole-tree path,
    ``build_tree``, ``training_tasks``, ``run_task``, computes for these nodes) and the nodes
    trained, ascending."""
    L, n = Z.shape[0], X.shape[0]
    shape = spec.shape(L)
    labels = dict(labels)
    labels.setdefault(0, np.arange(L, dtype=np.int64))
    if cluster:
        [head] = nodes
        labels.update(cluster_nodes(Z, shape, {head: labels[head]},
                                    cluster_iters=spec.cluster_iters,
                                    seed=spec.seed + 7919 * tree))
        nodes = shape.descendants(head)
    rows: dict[int, np.ndarray] = {}

    def rows_of(v: int) -> np.ndarray:
        if v not in rows:
            rows[v] = np.arange(n, dtype=np.int64) if v == 0 else node_rows(Ycsc, labels[v])
        return rows[v]

    starts = shape.node_clf_start
    clf_offset = tree * int(starts[-1])
    out, leaves = [], {}
    for v in nodes:
        kids = node_children(shape, labels, [v])
        child_rows = {int(c): rows_of(int(c)) for c in kids[kids >= 0]}
        task = node_task(Ycsc, rows_of(v), kids, child_rows, tree=tree, node=v,
                         clf_start=clf_offset + int(starts[v]), seed=spec.seed)
        C = node_C(spec.C_root, n, task.rows.shape[0], spec.C_node_power)
        out.append(run_task(X, sq_norms, task, C=C, **spec.kw))
        if shape.first_child[v] < 0:
            leaves[v] = labels[v]
    return leaves, out, sorted(nodes)


def uses_block(X: sp.csr_matrix, task: NodeTask, loss: int) -> bool:
    """Whether ``train_node`` solves ``task`` as one lockstep block (its rule,
    :func:`~labelwise.models._tree_kernels.solves_as_block`, evaluated)."""
    m = task.seeds.shape[0]
    if loss != _tree_kernels.LOSS_SQUARED_HINGE or m <= 1 or not task.block:
        return False
    n = task.rows.shape[0]
    if n * m * 8 > _tree_kernels.BLOCK_BYTES:  # too big whatever its features: not counted
        return False
    nf = _tree_kernels.count_row_features(X.indptr, X.indices, task.rows, X.shape[1])
    return bool(_tree_kernels.solves_as_block(loss, n, m, nf, _rows_nnz(X, task.rows),
                                              _tree_kernels.BLOCK_BYTES,
                                              _tree_kernels.GRAM_BYTES))


def _cut(t: NodeTask, pieces: int, block: bool) -> list[NodeTask]:
    """``t`` cut into ``pieces`` near-equal contiguous classifier ranges."""
    m = t.seeds.shape[0]
    cuts = np.linspace(0, m, min(m, pieces) + 1).round().astype(np.int64)
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        ptr = t.tgt_indptr[a:b + 1]
        out.append(NodeTask(t.tree, t.node, t.clf_start + int(a), t.rows, ptr - ptr[0],
                            t.tgt_indices[ptr[0]:ptr[-1]], t.seeds[a:b], block=block))
    return out


def _rows_nnz(X: sp.csr_matrix, rows: np.ndarray) -> int:
    """Stored values in ``rows`` of X (the rows' lengths only: a tree has many small nodes)."""
    return int((X.indptr[rows + 1] - X.indptr[rows]).sum())


def block_pieces(X: sp.csr_matrix, task: NodeTask, loss: int) -> int:
    """Into how many lockstep blocks ``split_tasks`` cuts ``task``: 0 (not cut this way)
    unless the loss is the squared hinge, the task has more than two classifiers, its block
    (``(features of its rows + rows) * 8`` bytes a classifier) is bigger than
    ``BLOCK_BYTES`` but would fit for two, and the node is not solved in the kernel form
    (:func:`~labelwise.models._tree_kernels.uses_gram`: few long rows, faster still);
    then ``ceil(m / floor(BLOCK_BYTES / bytes a classifier))``, the fewest that each fit."""
    m = task.seeds.shape[0]
    if loss != _tree_kernels.LOSS_SQUARED_HINGE or m <= 2 or not task.block:
        return 0
    n = task.rows.shape[0]
    nnz = _rows_nnz(X, task.rows)
    if _tree_kernels.uses_gram(n, nnz, _tree_kernels.GRAM_BYTES):
        return 0
    if (min(nnz, X.shape[1]) + n) * 8 * m <= _tree_kernels.BLOCK_BYTES:
        return 0  # fits even if every stored value were a feature of its own: no count
    nf = _tree_kernels.count_row_features(X.indptr, X.indices, task.rows, X.shape[1])
    per = (nf + n) * 8
    if per * m <= _tree_kernels.BLOCK_BYTES or 2 * per > _tree_kernels.BLOCK_BYTES:
        return 0
    return -(-m // (_tree_kernels.BLOCK_BYTES // per))


def split_tasks(X: sp.csr_matrix, tasks: list[NodeTask], *, loss: int,
                n_threads: int) -> list[NodeTask]:
    """Tasks cut into pieces over contiguous classifier ranges, in two cases.

    1. A task whose lockstep block is too big for ``BLOCK_BYTES`` (:func:`block_pieces`)
       is cut into the fewest near-equal pieces that fit, each a block (seeded by its
       first classifier's seed), instead of being solved one classifier at a time. This
       depends on the data only, not on ``n_threads``. On Reuters (a root of 90
       classifiers over 7,770 rows and 110,889 features) it halves the fit's CPU time at
       the same P@k: one row's margins for a whole block are one pass over its features.
    2. With ``n_threads > 1``, a task whose classifiers are solved one by one and that holds
       more than a ``2 * n_threads``-th of the work (rows x classifiers) is cut into
       ``n_threads`` pieces, marked ``block=False`` so each stays on the one-by-one path.
       Each classifier has its own seed and starts from zero, so the model is exactly the
       one the uncut task trains (a tree over few labels is one root task, which one
       thread alone used to train).
    """
    cut: list[NodeTask] = []
    for t in tasks:
        pieces = block_pieces(X, t, loss)
        cut += _cut(t, pieces, True) if pieces else [t]
    if n_threads <= 1:
        return cut
    total = sum(t.cost for t in cut)
    out = []
    for t in cut:
        if t.seeds.shape[0] < 2 or t.cost * 2 * n_threads <= total or uses_block(X, t, loss):
            out.append(t)
        else:
            out += _cut(t, n_threads, False)
    return out


#: C_row_scaling: C is scaled for rows longer than ROW_REF features (mean over the rows)
ROW_REF = 70.0
ROW_POWER = 2.0
ROW_SCALE_MAX = 8.0


def row_length_C_scale(X: sp.csr_matrix) -> float:
    """The factor ``LabelTree(C_row_scaling=True)`` multiplies C by: ``clip((r / 70) ** 2,
    1, 8)`` for ``r`` the mean number of features per row (stored non-zeros / rows; 1 for
    an empty X). An l2-normalised long row spreads its norm over many features, so a
    margin of 1 needs a larger weight vector: with one C the long-document sets are
    regularised more than the short ones the default C was chosen on (Bibtex has 68
    features a row, Delicious 19, cooking's tf-idf 16; Reuters 160, the Enron emails 1,213)."""
    return row_length_scale(X.nnz, X.shape[0])


def row_length_scale(nnz: int, n: int) -> float:
    """:func:`row_length_C_scale` from the counts alone: ``nnz`` stored values in ``n`` rows
    (partitioned training adds the counts of its partitions)."""
    if n == 0:
        return 1.0
    r = nnz / n
    return float(min(ROW_SCALE_MAX, max(1.0, (r / ROW_REF) ** ROW_POWER)))


#: run_task's "no Gram matrix given" (one compiled train_node serves both cases)
_NO_GRAM = np.zeros((0, 0), np.float64)


def node_C(C: float, n_samples: int, n_rows: int, power: float) -> float:
    """The C of a node trained on ``n_rows`` of ``n_samples`` rows:
    ``C * (n_samples / n_rows) ** power`` (``C`` for the root, or for an empty node)."""
    if n_rows <= 0:
        return float(C)
    return float(C) * (float(n_samples) / float(n_rows)) ** float(power)


def uses_gram(X: sp.csr_matrix, task: NodeTask, loss: int) -> bool:
    """Whether ``train_node`` solves ``task`` one classifier at a time on its node's Gram
    matrix (:func:`~labelwise.models._tree_kernels.uses_gram`, and not as a block)."""
    if loss != _tree_kernels.LOSS_SQUARED_HINGE or uses_block(X, task, loss):
        return False
    nnz = _rows_nnz(X, task.rows)
    return bool(_tree_kernels.uses_gram(task.rows.shape[0], nnz, _tree_kernels.GRAM_BYTES))


def gram_matrix(X: sp.csr_matrix, task: NodeTask, bias: float,
                n_threads: int = 1) -> np.ndarray:
    """The Gram matrix of ``task``'s rows (with ``bias``), for :func:`run_task`'s ``gram``:
    :func:`~labelwise.models._dcd_gram.gram_matrix`'s steps, its rows' upper parts and then
    the mirrored lower parts over cost-balanced row ranges on ``n_threads`` threads (every
    entry is one sum taken in one order, so the matrix is the same for any ``n_threads``)."""
    rows = task.rows
    n = rows.shape[0]
    if n_threads <= 1 or n < 2:
        return _dcd_gram.gram_matrix(X.indptr, X.indices, X.data, rows, float(bias),
                                     int(X.shape[1]))
    col_ptr, col_row, col_val, row_cost = _dcd_gram.gram_columns(
        X.indptr, X.indices, X.data, rows, int(X.shape[1]))
    K = np.empty((n, n), np.float64)
    # a row costs its products plus its n - s entries cleared and biased
    cost = row_cost + (n - np.arange(n, dtype=np.int64))
    bounds = balanced_ranges(np.concatenate([[0], np.cumsum(cost)]), 2 * n_threads)
    map_ranges(lambda a, b: _dcd_gram.gram_rows(
        X.indptr, X.indices, X.data, rows, float(bias), col_ptr, col_row, col_val, a, b, K),
        bounds, n_threads)
    mirror = np.concatenate([[0], np.cumsum(np.arange(n, dtype=np.int64))])
    map_ranges(lambda a, b: _dcd_gram.gram_mirror(K, a, b),
               balanced_ranges(mirror, n_threads), n_threads)
    return K


def run_task(X: sp.csr_matrix, sq_norms: np.ndarray, task: NodeTask, *, loss: int, C: float,
             bias: float, tol: float, max_iter: int, prune_threshold: float,
             gram: np.ndarray | None = None) -> TaskResult:
    """Train one node's classifiers (nogil numba) against the shared CSR X; ``gram``: the
    node's Gram matrix (:func:`gram_matrix`) when the caller shares one between the pieces
    of a node solved in that form (None: built when needed)."""
    counts, feat, vals, bias_w, n_iter = _tree_kernels.train_node(
        X.indptr, X.indices, X.data, sq_norms, task.rows, task.tgt_indptr, task.tgt_indices,
        task.seeds, loss, float(C), float(bias), float(tol), int(max_iter),
        float(prune_threshold), int(X.shape[1]),
        _tree_kernels.BLOCK_BYTES if task.block else 0, _tree_kernels.GRAM_BYTES,
        _NO_GRAM if gram is None else gram)
    return TaskResult(task.clf_start, counts, feat, vals, bias_w, n_iter)


def assemble_weights(results: list[TaskResult], n_classifiers: int, n_features: int,
                     bias: float) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """``(W, intercept, n_iter)``: W CSR float32 (n_classifiers, n_features)."""
    results = sorted(results, key=lambda r: r.clf_start)
    counts = np.zeros(n_classifiers, np.int64)
    intercept = np.zeros(n_classifiers, np.float32)
    n_iter = np.zeros(n_classifiers, np.int32)
    for r in results:
        m = r.counts.shape[0]
        counts[r.clf_start:r.clf_start + m] = r.counts
        intercept[r.clf_start:r.clf_start + m] = r.bias_w * bias
        n_iter[r.clf_start:r.clf_start + m] = r.n_iter
    indptr = np.zeros(n_classifiers + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    feat = (np.concatenate([r.feat for r in results]) if results
            else np.zeros(0, np.int32))
    vals = (np.concatenate([r.vals for r in results]) if results
            else np.zeros(0, np.float32))
    W = sp.csr_matrix((vals, feat, indptr), shape=(n_classifiers, n_features))
    return W, intercept, n_iter


def node_major_weights(W: sp.csr_matrix, node_clf_start: np.ndarray,
                       n_threads: int = 1) -> dict[str, np.ndarray]:
    """Re-lay the classifier weights W (n_classifiers, n_features) node by node, feature-major.

    Node ``v``'s *entries* are ``node_feat_start[v]:node_feat_start[v+1]``; entry ``e`` is the
    feature ``feat_id[e]`` (ascending within the node) and its weights are
    ``weights[feat_ptr[e]:feat_ptr[e+1]]``. The entries are the features with any non-zero
    weight among the node's classifiers, or, when padding them to the range ``[f_min,
    f_max]`` they span costs (12 bytes an entry) no more than the node's own bytes (12 per
    feature, 8 per weight), every feature of that range (a *direct* node: entry
    ``node_feat_start[v] + f - f_min``, found without a search; features without weights
    get empty or zero entries). A node is *dense* (``node_dense[v]``) when storing all ``m``
    child weights per entry (zeros included) is at most twice as big as (child, weight)
    pairs; then entry ``e`` holds exactly ``m`` weights, child ``j`` at offset ``j`` (one
    contiguous, vectorised pass per feature). Otherwise entry ``e`` holds its non-zero
    weights only, the child of ``weights[q]`` being ``val_child[q - child_shift[v]]``.
    Scoring a node then costs ``O(nnz(x) log F_v + matched weights)`` (``O(nnz(x) +
    matched weights)`` when direct), not ``O(nnz(W_v))``. Both passes run over
    weight-balanced node ranges on ``n_threads`` threads.
    """
    W = sp.csr_matrix(W)
    if not W.has_sorted_indices:
        W = W.sorted_indices()
    n_nodes = node_clf_start.shape[0] - 1
    d = W.shape[1]
    m_node = np.diff(node_clf_start).astype(np.int64)
    n_feats = np.zeros(n_nodes, np.int64)
    f_min = np.zeros(n_nodes, np.int64)
    f_max = np.full(n_nodes, -1, np.int64)
    nnz = np.zeros(n_nodes, np.int64)
    bounds = balanced_ranges(W.indptr[node_clf_start], 8 * n_threads)
    map_ranges(lambda a, b: _tree_layout.layout_sizes(
        W.indptr, W.indices, node_clf_start, d, a, b, n_feats, f_min, f_max, nnz),
        bounds, n_threads)
    span = f_max - f_min + 1
    # direct when the padding costs no more than the node's (feature, child, weight) bytes
    direct = (n_feats > 0) & ((span - n_feats) * 12 <= n_feats * 12 + nnz * 8)
    entries = np.where(direct, span, n_feats)
    node_dense = entries * m_node * 4 <= nnz * 16
    node_feat_start = np.zeros(n_nodes + 1, np.int64)
    np.cumsum(entries, out=node_feat_start[1:])
    slots = np.where(node_dense, entries * m_node, nnz)
    feat_ptr_node = np.zeros(n_nodes + 1, np.int64)
    np.cumsum(slots, out=feat_ptr_node[1:])
    sparse_slots = np.where(node_dense, 0, nnz)
    child_off = np.zeros(n_nodes, np.int64)
    np.cumsum(sparse_slots[:-1], out=child_off[1:])
    n_entries = int(node_feat_start[-1])
    feat_id = np.zeros(n_entries, np.int32)
    feat_ptr = np.zeros(n_entries + 1, np.int64)
    weights = np.zeros(int(feat_ptr_node[-1]), np.float32)
    val_child = np.zeros(int(sparse_slots.sum()), np.int32)
    w_data = W.data.astype(np.float32, copy=False)
    map_ranges(lambda a, b: _tree_layout.layout_fill(
        W.indptr, W.indices, w_data, node_clf_start, direct, node_dense, f_min, f_max,
        node_feat_start, feat_ptr_node, child_off, d, a, b, feat_id, feat_ptr, weights,
        val_child), bounds, n_threads)
    child_shift = feat_ptr_node[:-1] - child_off
    return {"node_feat_start": node_feat_start, "feat_id": feat_id, "feat_ptr": feat_ptr,
            "weights": weights, "node_dense": node_dense, "child_shift": child_shift,
            "val_child": val_child}


def layout_piece(results: list[TaskResult], node_clf_start: np.ndarray, nodes: list[int],
                 clf_offset: int, n_features: int) -> dict[str, np.ndarray]:
    """:func:`node_major_weights` of the classifiers of ``nodes`` alone (ascending node ids
    of one tree, ``results`` their task results, classifier ids from ``clf_offset``): the
    piece of the whole layout those nodes own, for :func:`merge_layouts`."""
    nodes = sorted(nodes)
    m = np.array([node_clf_start[v + 1] - node_clf_start[v] for v in nodes], np.int64)
    local_start = np.zeros(len(nodes) + 1, np.int64)
    np.cumsum(m, out=local_start[1:])
    at = {clf_offset + int(node_clf_start[v]): int(local_start[i]) for i, v in enumerate(nodes)}
    moved = [TaskResult(at[r.clf_start], r.counts, r.feat, r.vals, r.bias_w, r.n_iter)
             for r in results]
    W, _, _ = assemble_weights(moved, int(local_start[-1]), n_features, 1.0)
    return node_major_weights(W, local_start)


def layout_sizes(lay: dict[str, np.ndarray]) -> np.ndarray:
    """Per node of a :func:`layout_piece`: ``(entries, weights, dense)`` as an ``(n, 3)`` int64
    array, all :class:`LayoutMerge` needs to place the piece before it arrives."""
    nfs = np.asarray(lay["node_feat_start"], np.int64)
    fp = np.asarray(lay["feat_ptr"], np.int64)
    out = np.empty((nfs.shape[0] - 1, 3), np.int64)
    out[:, 0] = np.diff(nfs)
    out[:, 1] = fp[nfs[1:]] - fp[nfs[:-1]]
    out[:, 2] = np.asarray(lay["node_dense"], bool)
    return out


class LayoutMerge:
    """The layout of :func:`node_major_weights` over all ``n_nodes`` nodes, filled piece by
    piece: built from every piece's node ids and :func:`layout_sizes` (small), it allocates
    the final arrays once; :meth:`put` copies one piece's nodes in, so that only the result
    and the piece being copied are held at once (:func:`merge_layouts` holds every piece).
    Each node's entries, weights and child ids are its own; only the offsets are cumulative,
    so they are computed in global node order (the same arrays, bit for bit)."""

    def __init__(self, n_nodes: int, sizes: list[tuple[np.ndarray, np.ndarray]]) -> None:
        per = np.full((n_nodes, 3), -1, np.int64)
        for nodes, sz in sizes:
            per[np.asarray(nodes, np.int64)] = sz
        if n_nodes and per[:, 0].min() < 0:
            raise ValueError("the layout pieces do not cover every node")
        entries, n_w, dense = per[:, 0], per[:, 1], per[:, 2].astype(bool)
        n_sparse = np.where(dense, 0, n_w)
        self._entry_at = np.zeros(n_nodes + 1, np.int64)
        np.cumsum(entries, out=self._entry_at[1:])
        self._w_at = np.zeros(n_nodes + 1, np.int64)
        np.cumsum(n_w, out=self._w_at[1:])
        self._child_at = np.zeros(n_nodes + 1, np.int64)
        np.cumsum(n_sparse, out=self._child_at[1:])
        self._filled = np.zeros(n_nodes, bool)
        n_entries = int(self._entry_at[-1])
        feat_ptr = np.zeros(n_entries + 1, np.int64)
        feat_ptr[-1] = self._w_at[-1]
        self.arrays = {"node_feat_start": self._entry_at.copy(),
                       "feat_id": np.zeros(n_entries, np.int32),
                       "feat_ptr": feat_ptr,
                       "weights": np.zeros(int(self._w_at[-1]), np.float32),
                       "node_dense": dense,
                       "child_shift": self._w_at[:-1] - self._child_at[:-1],
                       "val_child": np.zeros(int(self._child_at[-1]), np.int32)}

    def put(self, nodes: np.ndarray, lay: dict[str, np.ndarray]) -> None:
        """Copy the piece ``lay`` (a :func:`layout_piece` of the ascending global ``nodes``)."""
        out, nfs, fp = self.arrays, lay["node_feat_start"], lay["feat_ptr"]
        for i, v in enumerate(np.asarray(nodes, np.int64).tolist()):
            e0, e1 = int(nfs[i]), int(nfs[i + 1])
            E, W = int(self._entry_at[v]), int(self._w_at[v])
            if e1 - e0 != self._entry_at[v + 1] - E:
                raise ValueError(f"node {v}: the piece is not the one its sizes described")
            w0, w1 = int(fp[e0]), int(fp[e1])
            out["feat_id"][E:E + e1 - e0] = lay["feat_id"][e0:e1]
            out["feat_ptr"][E:E + e1 - e0] = fp[e0:e1] - w0 + W
            out["weights"][W:W + w1 - w0] = lay["weights"][w0:w1]
            if not out["node_dense"][v]:
                q0, C = w0 - int(lay["child_shift"][i]), int(self._child_at[v])
                out["val_child"][C:C + w1 - w0] = lay["val_child"][q0:q0 + w1 - w0]
            self._filled[v] = True

    def result(self) -> dict[str, np.ndarray]:
        """The merged layout, once every node was put."""
        if not self._filled.all():
            raise ValueError("the layout pieces do not cover every node")
        return self.arrays


def merge_layouts(pieces: list[tuple[np.ndarray, dict[str, np.ndarray]]],
                  n_nodes: int) -> dict[str, np.ndarray]:
    """The layout of :func:`node_major_weights` over all ``n_nodes`` nodes, put together from
    pieces ``(global node ids ascending, layout_piece of those nodes)`` that cover every node
    once (:class:`LayoutMerge` over all of them)."""
    merge = LayoutMerge(n_nodes, [(nodes, layout_sizes(lay)) for nodes, lay in pieces])
    for nodes, lay in pieces:
        merge.put(nodes, lay)
    return merge.result()
