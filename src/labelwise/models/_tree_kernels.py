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
    coordinate descent of :mod:`labelwise.models._dcd` (same losses and tolerances), with
    the row indirection ``rows[t]``. Only features that occur in the node's rows can get
    weight. With the squared hinge the node's problems are solved together in lockstep
    (:func:`labelwise.models._dcd.sq_hinge_block`: one pass over a row's features computes
    every child's margin from a dense (features, children) block, which vectorises), when
    that block fits in ``BLOCK_BYTES``; otherwise (and for the logistic loss) one by one
    with shrinking.
``beam_search``
    Per document: in every tree, a beam of at most ``beam`` nodes starts at the root; each
    node's classifiers are scored, a child's log-probability is its parent's plus the
    classifier's (``-max(0, 1 - m)^p`` for the squared hinge, ``p`` the model's
    ``hinge_power`` for a classifier that leads to a label and its ``inner_hinge_power`` for
    one that leads to a node; ``log sigmoid(m)`` for the logistic loss; ``m`` the margin), node
    children compete for the next beam (highest first, ties to the earlier candidate) and
    label children are final. A label's score is
    ``exp(log-probability)`` averaged over the trees (0 in a tree that did not reach it);
    the row's top ``k`` (ties to the lower label id, unreached labels scoring 0) are written
    in the top-k layout of :mod:`labelwise.models.topk`. With one tree, ``exp`` is taken
    only for the labels that can still enter the top k (see ``_cut``), which gives the same
    result; and a beam level's leaves are scored best first, a leaf skipped once the labels
    found so far put it below that cut (``_leaves_best_first``; the same top k).
``row_sq_sums``, ``scale_rows``
    Row normalisation of a CSR matrix (``_tree_build.l2_normalize_rows``).
"""

from __future__ import annotations

import numpy as np

from .._numba import njit
from ._dcd import (
    LOSS_LOGISTIC,
    LOSS_SQUARED_HINGE,
    PREFETCH_BYTES,
    _logistic_rows,
    _seed_state,
    _sq_hinge_rows,
    block_weights,
    keep_weights,
    keep_weights_range,
    sq_hinge_block,
)
from ._dcd_gram import gram_matrix, sq_hinge_gram, weights_from_duals
from .topk import _select

__all__ = ["balanced_2means", "train_node", "score_node", "beam_search", "log_prob",
           "pifa_sizes", "pifa_fill", "count_row_features", "uses_gram", "BLOCK_BYTES", "GRAM_BYTES"]

# two_means_move's group arguments (module globals of numpy type are frozen as int64, not
# literals)
GROUP_0 = np.int64(0)
GROUP_1 = np.int64(1)
#: 2-means sums a group's label rows in fixed point: each value (Z's rows have unit length, so
#: |value| <= 1) times 2**36, truncated to an integer. Integer sums are exact, so a group's
#: sum kept up to date by the labels that join and leave it equals a fresh sum in any order
#: and on any thread; 2**36 leaves room for 2**27 labels in int64, and the truncation
#: (< 1.5e-11) is far below a float32 value's own rounding.
TWO_MEANS_SCALE = 2.0 ** 36

#: train_node solves a node's squared-hinge problems in lockstep up to this block size
BLOCK_BYTES = 64 * 2**20
#: most bytes of a node's Gram matrix (``train_node``'s kernel form, float64 n x n)
GRAM_BYTES = 64 * 2**20
#: a lockstep block preferred to the Gram form has at least this many problems (a 64-byte
#: cache line of float32 weights; :func:`block_over_gram`)
BLOCK_MIN_PROBLEMS = 16


# ---------------------------------------------------------------------------- row norms
@njit(nogil=True, cache=True)
def row_sq_sums(indptr, data, start, end, out):
    """``out[i]`` = the sum of squares (float64, in the row's order) of CSR row ``i``'s
    values, for the rows ``start .. end - 1``."""
    for i in range(start, end):
        s = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            v = np.float64(data[p])
            s += v * v
        out[i] = s


@njit(nogil=True, cache=True)
def scale_rows(indptr, data, scale, start, end, out):
    """``out`` (float32) = the CSR values with row ``i`` multiplied by ``scale[i]``, for the
    rows ``start .. end - 1``."""
    for i in range(start, end):
        for p in range(indptr[i], indptr[i + 1]):
            out[p] = data[p] * scale[i]


# ---------------------------------------------------------------------------- PIFA
#: pifa_fill lists a label's features by a scan of their span, not a sort, when it holds at
#: least one of them in this many columns (at most this many marks read per feature, against
#: a sort's ~log2(count) comparisons and moves per feature)
PIFA_SCAN_SPAN = 16


@njit(nogil=True, cache=True)
def pifa_sizes(y_indptr, y_indices, x_indptr, x_indices, n_features, lab_start, lab_end,
               out):
    """``out[j]`` = the number of features in the rows positive for label ``j`` (CSC Y),
    for labels ``lab_start:lab_end`` (first pass of ``_tree_build.pifa_rows``)."""
    mark = np.full(n_features, -1, np.int64)
    for j in range(lab_start, lab_end):
        c = 0
        for p in range(y_indptr[j], y_indptr[j + 1]):
            i = y_indices[p]
            for q in range(x_indptr[i], x_indptr[i + 1]):
                f = x_indices[q]
                if mark[f] != j:
                    mark[f] = j
                    c += 1
        out[j] = c


@njit(nogil=True, cache=True)
def pifa_fill(y_indptr, y_indices, y_data, x_indptr, x_indices, x_data, n_features, lab_start,
              lab_end, z_indptr, z_indices, z_data):
    """Rows ``lab_start:lab_end`` of ``Y.T @ X`` into CSR arrays sized by ``pifa_sizes``:
    features ascending, float32 sums taken in row order as scipy's product does, entries
    that sum to exactly 0 kept (``_tree_build.pifa_rows`` drops them).

    A label's features come out ascending by sorting them, or, where they are dense in the
    span they cover (at least one in ``PIFA_SCAN_SPAN``), by scanning the marks over that
    span: the same list either way. Sorting was most of the PIFA of a set of long rows
    (synthetic-long: 7,700 features a label, 1.2 of its 1.3 s on one thread)."""
    acc = np.zeros(n_features, np.float32)
    mark = np.full(n_features, -1, np.int64)
    for j in range(lab_start, lab_end):
        base = z_indptr[j]
        c = 0
        lo = n_features
        hi = -1
        for p in range(y_indptr[j], y_indptr[j + 1]):
            i = y_indices[p]
            y = np.float32(y_data[p])
            for q in range(x_indptr[i], x_indptr[i + 1]):
                f = x_indices[q]
                if mark[f] != j:
                    mark[f] = j
                    z_indices[base + c] = f
                    c += 1
                    acc[f] = 0.0
                    lo = min(lo, f)
                    hi = max(hi, f)
                acc[f] += y * np.float32(x_data[q])
        if c > 0 and hi - lo < PIFA_SCAN_SPAN * c:
            t = base
            for f in range(lo, hi + 1):
                if mark[f] == j:
                    z_indices[t] = f
                    t += 1
        else:
            z_indices[base:base + c].sort()
        for t in range(c):
            z_data[base + t] = acc[z_indices[base + t]]


# ---------------------------------------------------------------------------- clustering
@njit(nogil=True, cache=True)
def two_means_move(lptr, loc, val, moved, was, n_moved, assign, group, s):
    """Bring ``group``'s fixed-point sum ``s`` (int64 over local columns) up to date after
    the ``n_moved`` labels ``moved`` changed group (``was``: each one's group before, -1 for
    none): add the rows that joined it, subtract the rows that left it. Each value counts as
    ``int64(value * TWO_MEANS_SCALE)`` (truncated), so the sums are exact integers: kept up
    to date this way they equal a fresh sum of the group's rows, in any order."""
    for k in range(n_moved):
        t = moved[k]
        if assign[t] == group:
            for q in range(lptr[t], lptr[t + 1]):
                s[loc[q]] += np.int64(val[q] * TWO_MEANS_SCALE)
        elif was[k] == group:
            for q in range(lptr[t], lptr[t + 1]):
                s[loc[q]] -= np.int64(val[q] * TWO_MEANS_SCALE)


@njit(nogil=True, cache=True)
def two_means_direction(s0, s1, d):
    """``d = c0 - c1``, where each centroid ``c`` is its group's sum ``s`` (fixed point,
    :func:`two_means_move`) over its Euclidean norm (a zero sum stays zero)."""
    q0 = 0.0
    q1 = 0.0
    for f in range(s0.shape[0]):
        a = float(s0[f])
        b = float(s1[f])
        q0 += a * a
        q1 += b * b
    r0 = 1.0 / np.sqrt(q0) if q0 > 0.0 else 0.0
    r1 = 1.0 / np.sqrt(q1) if q1 > 0.0 else 0.0
    for f in range(s0.shape[0]):
        d[f] = float(s0[f]) * r0 - float(s1[f]) * r1


@njit(nogil=True, cache=True)
def two_means_rows(z_indptr, z_indices, z_data, n_cols, labels):
    """The rows of ``labels`` copied with local column numbers: ``(lptr, loc, val, n_local)``.

    The local columns are the ones the labels use, renumbered in ascending order (so sums
    over them run in the same order as over all ``n_cols``; listed by a scan of their span
    where they are dense in it, as ``pifa_fill`` does, else sorted), so a split costs ``O(nnz of
    its labels)`` a round, not ``O(n_cols)``; the copy is contiguous (8 bytes per stored
    value) and every round streams through it."""
    n = labels.shape[0]
    lptr = np.zeros(n + 1, np.int64)
    for t in range(n):
        lptr[t + 1] = lptr[t] + (z_indptr[labels[t] + 1] - z_indptr[labels[t]])
    col_map = np.full(n_cols, -1, np.int32)
    cols = np.empty(min(lptr[n], n_cols), np.int64)
    n_local = 0
    lo, hi = n_cols, 0
    for t in range(n):  # the columns in use, each once
        lab = labels[t]
        for p in range(z_indptr[lab], z_indptr[lab + 1]):
            if col_map[z_indices[p]] < 0:
                col_map[z_indices[p]] = 0
                cols[n_local] = z_indices[p]
                n_local += 1
                lo = min(lo, z_indices[p])
                hi = max(hi, z_indices[p] + 1)
    if hi - lo < PIFA_SCAN_SPAN * n_local:  # dense in their span: a scan lists them in order
        q = 0
        for f in range(lo, hi):
            if col_map[f] == 0:
                col_map[f] = q
                q += 1
    else:
        cols = cols[:n_local]
        cols.sort()
        for q in range(n_local):
            col_map[cols[q]] = q
    loc = np.empty(lptr[n], np.int32)
    val = np.empty(lptr[n], z_data.dtype)
    for t in range(n):
        lab = labels[t]
        q = lptr[t]
        for p in range(z_indptr[lab], z_indptr[lab + 1]):
            loc[q] = col_map[z_indices[p]]
            val[q] = z_data[p]
            q += 1
    return lptr, loc, val, n_local


@njit(nogil=True, cache=True)
def two_means_sides(lptr, loc, val, d, diff, start, end):
    """``diff[t] = -(z_t . d)`` for the labels ``start .. end - 1`` (local rows; ``d`` is
    ``c0 - c1``): lower means nearer centroid 0."""
    for t in range(start, end):
        s = 0.0
        for q in range(lptr[t], lptr[t + 1]):
            s += val[q] * d[loc[q]]
        diff[t] = -s


@njit(nogil=True, cache=True)
def two_means_assign(diff, n0, assign, moved, was):
    """Put the ``n0`` labels of lowest ``diff`` (stable sort: ties keep input order) in group
    0 and the rest in group 1; return how many changed group, listed (in rank order) in
    ``moved[:k]`` with their previous groups in ``was[:k]``."""
    n = diff.shape[0]
    order = np.argsort(diff, kind="mergesort")
    k = 0
    for r in range(n):
        g = 0 if r < n0 else 1
        t = order[r]
        if assign[t] != g:
            moved[k] = t
            was[k] = assign[t]
            k += 1
            assign[t] = g
    return k


@njit(nogil=True, cache=True)
def two_means_start(lptr, loc, val, init0, init1, assign, moved, was, s0, s1):
    """Seed a split: label ``init0`` in group 0 and ``init1`` in group 1 (``assign``, -1 for
    every other label), each group's sum its seed's row (:func:`two_means_move` of the two
    seeds, as labels that joined from no group). The first round then moves the other
    labels in from -1 and any seed that changes side across, so the sums are the groups'
    from then on."""
    moved[0] = init0
    moved[1] = init1
    was[0] = -1
    was[1] = -1
    assign[init0] = 0
    assign[init1] = 1
    two_means_move(lptr, loc, val, moved, was, 2, assign, GROUP_0, s0)
    two_means_move(lptr, loc, val, moved, was, 2, assign, GROUP_1, s1)


@njit(nogil=True, cache=True)
def two_means_rounds(lptr, loc, val, n_local, n0, init0, init1, iters):
    """The rounds of :func:`balanced_2means` over label rows ``lptr, loc, val`` whose column
    numbers are below ``n_local`` (:func:`two_means_rows`' copy, or the whole of Z), through
    :func:`two_means_start`, then :func:`two_means_direction`, :func:`two_means_sides`,
    :func:`two_means_assign` and :func:`two_means_move` each round (``_tree_build`` runs the
    same steps over several threads for a big split, with the same numbers). A round reads
    only the rows of the labels that changed group to update the centroids' sums."""
    n = lptr.shape[0] - 1
    s0 = np.zeros(n_local, np.int64)
    s1 = np.zeros(n_local, np.int64)
    assign = np.full(n, -1, np.int8)
    moved = np.empty(n, np.int64)
    was = np.empty(n, np.int8)
    two_means_start(lptr, loc, val, init0, init1, assign, moved, was, s0, s1)
    diff = np.empty(n, np.float64)
    d = np.empty(n_local, np.float64)
    for _ in range(iters):
        two_means_direction(s0, s1, d)
        two_means_sides(lptr, loc, val, d, diff, 0, n)
        k = two_means_assign(diff, n0, assign, moved, was)
        if k == 0:
            break
        # groups as int64 values: literal 0 and 1 would compile two_means_move twice (one
        # specialisation per constant)
        two_means_move(lptr, loc, val, moved, was, k, assign, GROUP_0, s0)
        two_means_move(lptr, loc, val, moved, was, k, assign, GROUP_1, s1)
    return assign


@njit(nogil=True, cache=True)
def balanced_2means(z_indptr, z_indices, z_data, n_cols, labels, n0, init0, init1, iters):
    """Return ``assign`` (int8 0/1 per entry of ``labels``) with exactly ``n0`` zeros.

    ``init0``/``init1`` are positions in ``labels`` whose rows seed the two centroids; the
    rounds (:func:`two_means_rounds`) run on the local copy of :func:`two_means_rows`.
    """
    lptr, loc, val, n_local = two_means_rows(z_indptr, z_indices, z_data, n_cols, labels)
    return two_means_rounds(lptr, loc, val, n_local, n0, init0, init1, iters)


# ---------------------------------------------------------------------------- training
@njit(nogil=True, cache=True)
def count_row_features(x_indptr, x_indices, rows, n_features):
    """How many distinct features the rows ``rows`` use (``train_node``'s ``nf``)."""
    mark = np.zeros(n_features, np.bool_)
    nf = np.int64(0)
    for t in range(rows.shape[0]):
        i = rows[t]
        for p in range(x_indptr[i], x_indptr[i + 1]):
            if not mark[x_indices[p]]:
                mark[x_indices[p]] = True
                nf += 1
    return nf


@njit(nogil=True, cache=True)
def uses_gram(n, nnz, gram_bytes):
    """Whether ``train_node`` solves a node of ``n`` rows holding ``nnz`` stored values one
    classifier at a time in the kernel form (:mod:`labelwise.models._dcd_gram`): its Gram
    matrix fits in ``gram_bytes`` and the rows are long, at least ``n / 2`` values a row
    (``2 nnz >= n^2``). Then a row's margin is one read instead of a sparse dot product of
    its length, and a move of its dual variable one contiguous pass of ``n`` entries
    instead of a scattered one of about ``n / 2``; building the matrix costs about as much
    as one epoch of one classifier for every distinct feature per row it shares."""
    return n > 0 and n * n * 8 <= gram_bytes and 2 * nnz >= n * n


@njit(nogil=True, cache=True)
def block_over_gram(nf, m):
    """Whether a node that both forms could solve (its lockstep block fits, and
    :func:`uses_gram`: few long rows) is solved as a block rather than one classifier at a
    time on its Gram matrix: when the block's float32 weights (``nf`` features x ``m``)
    stay in a core's L2 (``PREFETCH_BYTES``, 1 MiB) and fill at least a 64-byte cache line
    a feature (``m >= BLOCK_MIN_PROBLEMS``). Larger, every visited feature's weight row is
    a miss; narrower, a row's fetch serves few problems; either way the Gram form's
    contiguous passes are faster (synthetic-27k's leaves, 53 problems over 40K features:
    1.3-1.5x; its 2-problem nodes: 1.7-2x). Small and wide, the block wins (synthetic-quick's
    58-problem leaves, W under 0.8 MB: 1.3-1.5x)."""
    return m >= BLOCK_MIN_PROBLEMS and nf * m * 4 <= PREFETCH_BYTES


@njit(nogil=True, cache=True)
def solves_as_block(loss, n, m, nf, nnz, block_bytes, gram_bytes):
    """Whether :func:`train_node` solves a node of ``n`` rows holding ``nnz`` stored values
    over ``nf`` features, with ``m`` problems, as one lockstep block: the squared hinge,
    more than one problem, the block (``(nf + n) * m`` float64) within ``block_bytes``, and
    not a node the Gram form solves faster (:func:`uses_gram` without
    :func:`block_over_gram`). ``_tree_build.uses_block`` asks the same."""
    return (loss == LOSS_SQUARED_HINGE and m > 1 and (nf + n) * m * 8 <= block_bytes
            and (block_over_gram(nf, m) or not uses_gram(n, nnz, gram_bytes)))


@njit(nogil=True, cache=True)
def _frequency_order(x_indptr, x_indices, rows, feats, n_features):
    """``loc`` (n_features,) int32: the local id of each feature in ``feats`` (the features of
    the rows ``rows``, ascending), numbered by descending count of stored values in those
    rows, ties by feature id. The lockstep block keeps a row of weights per local id, so
    the frequent features' rows sit together and stay in cache (tf-idf columns are in
    vocabulary order, so the frequent ones are spread over the whole range); where a weight
    is stored changes nothing in the arithmetic."""
    count = np.zeros(n_features, np.int64)
    for t in range(rows.shape[0]):
        i = rows[t]
        for p in range(x_indptr[i], x_indptr[i + 1]):
            count[x_indices[p]] += 1
    nf = feats.shape[0]
    key = np.empty(nf, np.int64)
    for q in range(nf):
        key[q] = -count[feats[q]]
    order = np.argsort(key, kind="mergesort")  # stable: ties keep ascending feature ids
    loc = np.empty(n_features, np.int32)
    for q in range(nf):
        loc[feats[order[q]]] = q
    return loc


@njit(nogil=True, cache=True)
def _local_rows(x_indptr, x_indices, x_data, rows, feats, n_features):
    """The rows ``rows`` of X as a CSR over their own features ``feats`` (ascending, so
    each row's features keep their order): ``(indptr, indices, data)``, feature ``feats[q]``
    numbered ``q``."""
    loc = np.empty(n_features, np.int32)  # read only at the features of the rows
    for q in range(feats.shape[0]):
        loc[feats[q]] = q
    n = rows.shape[0]
    lptr = np.zeros(n + 1, np.int64)
    for t in range(n):
        lptr[t + 1] = lptr[t] + (x_indptr[rows[t] + 1] - x_indptr[rows[t]])
    lidx = np.empty(lptr[n], np.int32)
    ldat = np.empty(lptr[n], x_data.dtype)
    for t in range(n):
        a = x_indptr[rows[t]]
        for p in range(lptr[t + 1] - lptr[t]):
            lidx[lptr[t] + p] = loc[x_indices[a + p]]
            ldat[lptr[t] + p] = x_data[a + p]
    return lptr, lidx, ldat


@njit(nogil=True, cache=True)
def train_node(x_indptr, x_indices, x_data, sq_norms, rows, tgt_indptr, tgt_indices, seeds,
               loss, C, bias, tol, max_iter, prune_threshold, n_features,
               block_bytes=BLOCK_BYTES, gram_bytes=GRAM_BYTES, gram=None):
    """Train the ``m = len(tgt_indptr) - 1`` child classifiers of one node.

    Returns ``(counts, feat, vals, bias_w, n_iter)`` in :func:`labelwise.models._dcd.train_chunk`'s
    layout: child ``j`` keeps ``counts[j]`` weights (features ascending, ``|w| >=
    prune_threshold``), ``bias_w[j]`` its (unpruned) bias weight, ``n_iter[j]`` its epochs.
    With the squared hinge, when the node's dense block (``m`` weights per feature of its
    rows plus ``m`` dual variables per row, float64) fits in ``block_bytes`` and the kernel
    form is not faster (:func:`solves_as_block`), the ``m`` problems are solved in lockstep
    by :func:`labelwise.models._dcd.sq_hinge_block` (one shuffled row order, seeded by
    ``seeds[0]``); otherwise one by one, in the kernel form of
    :mod:`labelwise.models._dcd_gram` when :func:`uses_gram` says so (few long rows: one
    Gram matrix shared by the node's classifiers), else by
    :func:`labelwise.models._dcd._sq_hinge_rows` (and the logistic solver). ``gram``: that
    Gram matrix (:func:`labelwise.models._dcd_gram.gram_matrix` of ``rows`` and ``bias``)
    when the caller has it already (the pieces of one node share it), else None or an
    array of another size (then it is built here).
    """
    n = rows.shape[0]
    m = tgt_indptr.shape[0] - 1
    mark = np.zeros(n_features, np.bool_)
    nf = 0
    nnz = 0
    for t in range(n):
        i = rows[t]
        nnz += x_indptr[i + 1] - x_indptr[i]
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
    counts = np.zeros(m, np.int64)
    bias_w = np.zeros(m, np.float64)
    n_iter = np.zeros(m, np.int64)
    feat = np.empty(1024, np.int32)
    vals = np.empty(1024, np.float32)
    used = np.int64(0)  # not a literal 0: keep_weights gets one specialisation, not two
    if solves_as_block(loss, n, m, nf, nnz, block_bytes, gram_bytes):
        loc = _frequency_order(x_indptr, x_indices, rows, feats, n_features)
        W = np.zeros((nf, m), np.float32)
        sq_hinge_block(x_indptr, x_indices, x_data, sq_norms, rows, loc, tgt_indptr,
                       tgt_indices, np.full(m, C), bias, tol, max_iter, seeds[0], W, bias_w,
                       n_iter)
        feat, vals = block_weights(W, loc, feats, prune_threshold, counts)
        return counts, feat, vals, bias_w, n_iter
    use_gram = loss == LOSS_SQUARED_HINGE and uses_gram(n, nnz, gram_bytes)
    w = np.zeros(1 if use_gram else n_features + 1, np.float64)
    y = np.empty(n, np.float64)
    index = np.empty(n, np.int64)
    alpha = np.empty(2 * n if loss == LOSS_LOGISTIC else n, np.float64)
    state = np.ones(1, np.uint64)
    if not use_gram:
        K = np.zeros((0, 0), np.float64)
    elif gram is None:
        K = gram_matrix(x_indptr, x_indices, x_data, rows, bias, n_features)
    elif gram.shape[0] == n:
        K = gram
    else:
        K = gram_matrix(x_indptr, x_indices, x_data, rows, bias, n_features)
    mg = np.empty(n if use_gram else 0, np.float64)
    if use_gram:  # the weights over the node's own features, numbered in ascending order
        lptr, lidx, ldat = _local_rows(x_indptr, x_indices, x_data, rows, feats, n_features)
    else:
        lptr, lidx, ldat = np.zeros(1, np.int64), np.zeros(0, np.int32), np.empty(0, x_data.dtype)
    local_rows = np.arange(n if use_gram else 0)
    wl = np.zeros(nf + 1 if use_gram else 0, np.float64)
    for j in range(m):
        y[:] = -1.0
        for p in range(tgt_indptr[j], tgt_indptr[j + 1]):
            y[tgt_indices[p]] = 1.0
        _seed_state(seeds[j], state)
        if use_gram:
            # a contiguous vector: zeroed, added to and scanned in place of the scattered w
            # (the same sums in the same order, so the same weights)
            wl[:] = 0.0
            n_iter[j] = sq_hinge_gram(K, sq_norms, rows, y, C, tol, max_iter, alpha, mg,
                                      index, state)
            weights_from_duals(lptr, lidx, ldat, local_rows, y, alpha, bias, wl)
            bias_w[j] = wl[nf]
            start = used
            feat, vals, used, counts[j] = keep_weights_range(wl, nf, prune_threshold, feat,
                                                             vals, used)
            for u in range(start, used):
                feat[u] = feats[feat[u]]
            continue
        for f in feats:
            w[f] = 0.0
        w[n_features] = 0.0
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
@njit(nogil=True, cache=True, inline="always")
def log_prob(margin, loss, power):
    """The classifier's log-probability of 'yes' for a margin (see the module docstring)."""
    if loss == LOSS_SQUARED_HINGE:
        h = 1.0 - margin
        if h <= 0.0:
            return 0.0
        if power == 2.0:
            return -h * h
        if power == 3.0:
            return -h * h * h
        return -(h ** power)
    if margin >= 0.0:
        return -np.log1p(np.exp(-margin))
    return margin - np.log1p(np.exp(margin))


@njit(nogil=True, cache=True)
def score_node(x_indices, x_data, a, b, v, node_clf_start, node_feat_start, feat_id, feat_ptr,
               weights, node_dense, child_shift, val_child, clf_bias, out, q_lo, q_hi, q_x):
    """Margins of node ``v``'s classifiers for the row ``x_*[a:b]`` (sorted features) into
    ``out[:m]``; weights in the layout of ``_tree_build.node_major_weights``.

    Two passes: the row's features are matched to the node's entries first, their weight
    ranges and values gathered into the scratch buffers ``q_lo``, ``q_hi``, ``q_x`` (at
    least ``b - a`` long); then the margins are summed over them, in the row's order. The
    reads of ``feat_ptr`` (one per matched feature) then no longer wait behind the sums, so
    the CPU overlaps their cache misses (the same sums: only the loads moved)."""
    c0 = node_clf_start[v]
    m = node_clf_start[v + 1] - c0
    for j in range(m):
        out[j] = clf_bias[c0 + j]
    lo = node_feat_start[v]
    hi = node_feat_start[v + 1]
    if lo >= hi:
        return
    dense = node_dense[v]
    shift = child_shift[v]
    f0 = feat_id[lo]
    direct = feat_id[hi - 1] - f0 == hi - 1 - lo  # every feature of [f0, f_last]: no search
    n_m = 0
    for p in range(a, b):
        f = x_indices[p]
        if direct:
            e = lo + (f - f0)
            if e < lo:
                continue
            if e >= hi:
                break
        else:
            if lo >= hi:
                break
            # first entry in [lo, hi) with feat_id >= f: gallop from lo, then bisect
            left = lo
            right = lo + 1
            step = 1
            while right < hi and feat_id[right] < f:
                left = right + 1
                step <<= 1
                right += step
            if right > hi:
                right = hi
            while left < right:
                mid = (left + right) >> 1
                if feat_id[mid] < f:
                    left = mid + 1
                else:
                    right = mid
            lo = left
            if lo >= hi or feat_id[lo] != f:
                continue
            e = lo
            lo += 1
        q_lo[n_m] = feat_ptr[e]
        q_hi[n_m] = feat_ptr[e + 1]
        q_x[n_m] = np.float64(x_data[p])
        n_m += 1
    if dense:
        # two matched features at a time, one pass over out[:m] per pair, in the same order
        # as one at a time (so the same sums): (out + w1 x1) + w2 x2
        t = 0
        while t + 2 <= n_m:
            wa = weights[q_lo[t]:q_lo[t] + m]  # views: the loop vectorises
            wb = weights[q_lo[t + 1]:q_lo[t + 1] + m]
            xa = q_x[t]
            xb = q_x[t + 1]
            for j in range(m):
                out[j] = (out[j] + wa[j] * xa) + wb[j] * xb
            t += 2
        if t < n_m:
            wa = weights[q_lo[t]:q_lo[t] + m]
            xa = q_x[t]
            for j in range(m):
                out[j] += wa[j] * xa
    else:
        for t in range(n_m):
            xv = q_x[t]
            for q in range(q_lo[t], q_hi[t]):
                out[val_child[q - shift]] += weights[q] * xv


@njit(nogil=True, cache=True)
def _offer(vals, start, end, low, size, k):
    """Offer ``vals[start:end]`` to ``low[:size]``, a min-heap of the ``k`` largest values
    offered so far (``low[0]`` the smallest of them once ``size == k``); returns the new
    size."""
    for u in range(start, end):
        v = vals[u]
        if size < k:
            j = size
            size += 1
            while j > 0 and low[(j - 1) >> 1] > v:
                low[j] = low[(j - 1) >> 1]
                j = (j - 1) >> 1
            low[j] = v
        elif v > low[0]:
            j = 0
            while True:
                c = 2 * j + 1
                if c >= k:
                    break
                if c + 1 < k and low[c + 1] < low[c]:
                    c += 1
                if low[c] < v:
                    low[j] = low[c]
                    j = c
                else:
                    break
            low[j] = v
    return size


@njit(nogil=True, cache=True, inline="always")
def _cut(low, size, k):
    """The log-probability cut of one tree's labels, from the heap of :func:`_offer` over
    them: with ``T`` the ``k``-th largest (``low[0]``; ``-inf`` when fewer than ``k``),
    every label below ``T - 1e-6`` has ``exp(val) < exp(T)`` strictly as long as
    ``T >= -700`` (no underflow), so it cannot enter the top k; returns ``T - 1e-6``, or
    ``-inf`` (keep all) otherwise."""
    if size < k or low[0] < -700.0:
        return -np.inf
    return low[0] - 1e-6


@njit(nogil=True, cache=True, inline="always")
def _leaf_log_probs(margins, m, base, loss, power, clf_child, c0, labels, lps, pos):
    """A leaf's labels and log-probabilities (``base`` plus :func:`log_prob` of each margin)
    written at ``labels[pos:pos+m]``, ``lps[pos:pos+m]``; the usual exponents get loops with no
    branch on ``loss`` and ``power`` (the same numbers: ``base - h^p`` is ``base + (-h^p)``)."""
    if loss == LOSS_SQUARED_HINGE and power == 3.0:
        for j in range(m):
            h = 1.0 - margins[j]
            lps[pos + j] = base - h * h * h if h > 0.0 else base
            labels[pos + j] = -clf_child[c0 + j] - 1
    elif loss == LOSS_SQUARED_HINGE and power == 2.0:
        for j in range(m):
            h = 1.0 - margins[j]
            lps[pos + j] = base - h * h if h > 0.0 else base
            labels[pos + j] = -clf_child[c0 + j] - 1
    else:
        for j in range(m):
            lps[pos + j] = base + log_prob(margins[j], loss, power)
            labels[pos + j] = -clf_child[c0 + j] - 1


@njit(nogil=True, cache=True)
def _leaves_best_first(x_indices, x_data, a, b, node_clf_start, node_feat_start, feat_id,
                       feat_ptr, weights, node_dense, child_shift, val_child, clf_bias, loss,
                       power, clf_child, cur_v, cur_s, leaf_u, n_leaf, margins, q_lo, q_hi,
                       q_x, touched, t_lp, n_touched, low, n_low, k):
    """One tree's leaves of a beam level (``cur_*[leaf_u[:n_leaf]]``), scored best first:
    their labels and log-probabilities appended at ``touched``/``t_lp[n_touched:]``, each
    offered to the heap of the ``k`` best (``low[:n_low]``). A label's log-probability is
    its leaf's score plus a log-probability (<= 0), so once ``k`` labels score at least ``T``
    (``T >= -700``), a leaf scoring below ``T - 1e-6`` holds no label of the top ``k``
    (:func:`_cut`): it and every worse leaf are skipped. The top ``k`` and
    their scores are those of scoring every leaf. Returns ``(n_touched, n_low)``."""
    for s in range(1, n_leaf):  # insertion sort by score, best first (at most a beam)
        u = leaf_u[s]
        j = s
        while j > 0 and cur_s[leaf_u[j - 1]] < cur_s[u]:
            leaf_u[j] = leaf_u[j - 1]
            j -= 1
        leaf_u[j] = u
    for s in range(n_leaf):
        u = leaf_u[s]
        base = cur_s[u]
        if base < _cut(low, n_low, k):
            break
        v = cur_v[u]
        score_node(x_indices, x_data, a, b, v, node_clf_start, node_feat_start, feat_id,
                   feat_ptr, weights, node_dense, child_shift, val_child, clf_bias, margins,
                   q_lo, q_hi, q_x)
        c0 = node_clf_start[v]
        m_v = node_clf_start[v + 1] - c0
        _leaf_log_probs(margins, m_v, base, loss, power, clf_child, c0, touched, t_lp,
                        n_touched)
        n_low = _offer(t_lp, n_touched, n_touched + m_v, low, n_low, k)
        n_touched += m_v
    return n_touched, n_low


@njit(nogil=True, cache=True)
def beam_search(x_indptr, x_indices, x_data, node_clf_start, clf_child, roots,
                node_feat_start, feat_id, feat_ptr, weights, node_dense, child_shift,
                val_child, clf_bias, loss, power, inner_power, beam, n_labels, k, row_start,
                row_end, out_i, out_s):
    """Top-k tree scores of rows ``row_start:row_end``; writes ``out_*[r*k:(r+1)*k]``.

    ``node_clf_start`` (n_nodes + 1): node ``v``'s classifiers are ids
    ``node_clf_start[v]:node_clf_start[v+1]``; classifier ``c`` leads to node
    ``clf_child[c]`` when ``>= 0``, else to label ``-clf_child[c] - 1``; ``clf_bias`` holds
    the intercepts and the weights are in the layout of ``_tree_build.node_major_weights``;
    ``power`` is the squared hinge's exponent in :func:`log_prob` for the classifiers that
    lead to labels, ``inner_power`` for those that lead to nodes. A node's children are all
    nodes or all labels (a leaf), and a tree holds each label in one leaf at most, as
    ``build_tree`` makes them and ``LabelTree``'s loader checks.
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
    one_tree = n_trees == 1
    low = np.empty(k, np.float64)
    t_lp = np.empty(max(n_labels, max_children), np.float64)
    leaf_lab = np.empty(max_children, np.int64)
    leaf_u = np.empty(beam, np.int64)
    longest = 0
    for r in range(row_start, row_end):
        longest = max(longest, x_indptr[r + 1] - x_indptr[r])
    q_lo = np.empty(longest, np.int64)  # score_node's scratch
    q_hi = np.empty(longest, np.int64)
    q_x = np.empty(longest, np.float64)
    for r in range(row_start, row_end):
        a = x_indptr[r]
        b = x_indptr[r + 1]
        n_touched = np.int64(0)  # not a literal 0: one specialisation of its callees
        n_low = 0  # one tree: the k best log-probabilities so far, a min-heap low[:n_low]
        for t in range(n_trees):
            cur_v[0] = roots[t]
            cur_s[0] = 0.0
            n_cur = 1
            while n_cur > 0:
                n_nxt = 0
                n_leaf = 0
                for u in range(n_cur):
                    v = cur_v[u]
                    base = cur_s[u]
                    c0 = node_clf_start[v]
                    if one_tree and clf_child[c0] < 0:  # a leaf: scored below, best first
                        leaf_u[n_leaf] = u
                        n_leaf += 1
                        continue
                    score_node(x_indices, x_data, a, b, v, node_clf_start, node_feat_start,
                               feat_id, feat_ptr, weights, node_dense, child_shift, val_child,
                               clf_bias, margins, q_lo, q_hi, q_x)
                    m_v = node_clf_start[v + 1] - c0
                    if clf_child[c0] >= 0:  # inner node: its children compete for the beam
                        for j in range(m_v):
                            nxt_v[n_nxt] = clf_child[c0 + j]
                            nxt_s[n_nxt] = base + log_prob(margins[j], loss, inner_power)
                            n_nxt += 1
                    else:  # several trees: a label's probabilities are summed
                        _leaf_log_probs(margins, m_v, base, loss, power, clf_child, c0,
                                        leaf_lab, t_lp, 0)
                        for j in range(m_v):
                            lab = leaf_lab[j]
                            if not seen[lab]:
                                seen[lab] = True
                                touched[n_touched] = lab
                                n_touched += 1
                            acc[lab] += np.exp(t_lp[j]) * inv_trees
                if n_leaf > 0:
                    n_touched, n_low = _leaves_best_first(
                        x_indices, x_data, a, b, node_clf_start, node_feat_start, feat_id,
                        feat_ptr, weights, node_dense, child_shift, val_child, clf_bias,
                        loss, power, clf_child, cur_v, cur_s, leaf_u, n_leaf, margins, q_lo,
                        q_hi, q_x, touched, t_lp, n_touched, low, n_low, k)
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
        fill = True
        if one_tree:
            cut = _cut(low, n_low, k)
            for u in range(n_touched):
                if t_lp[u] >= cut:
                    cand_i[m] = touched[u]
                    cand_s[m] = np.exp(t_lp[u])
                    m += 1
            # with a finite cut, k candidates have exp(lp) > 0: unseen labels (0) cannot win
            fill = cut == -np.inf
            if fill:
                for u in range(n_touched):
                    seen[touched[u]] = True
        else:
            for u in range(n_touched):
                lab = touched[u]
                cand_i[m] = lab
                cand_s[m] = acc[lab]
                m += 1
        want = k if fill else 0
        lab = 0
        while want > 0 and lab < n_labels:
            if not seen[lab]:
                cand_i[m] = lab
                cand_s[m] = 0.0
                m += 1
                want -= 1
            lab += 1
        _select(cand_s, cand_i, m, k, heap_s, heap_i, out_i, out_s, r * k)
        if fill:
            for u in range(n_touched):
                seen[touched[u]] = False
        if not one_tree:
            for u in range(n_touched):
                acc[touched[u]] = 0.0

