"""Growing multi-output decision trees on binned features: the kernels of ``LabelForest``'s
own grower (``grower="labelwise"``).

Features are first binned (:func:`bin_features`): each column's distinct values, or, past
``max_bins`` of them, bins of about equal row counts, with each bin's smallest and largest
value. A split between the node's adjacent codes ``c < c'`` (no row of the node in between)
gets the threshold halfway between bin c's largest and bin c''s smallest value, which for
distinct values is scikit-learn's midpoint; the rows of the node go the same way by code
and by value, and a grown tree predicts on raw values with the usual ``v <= threshold``
traversal (``forest._forest_kernel``).

A split of a node's rows into left/right is scored by the Gini impurity summed over the
labels. With ``c_j`` the rows of a child holding label j and ``m`` its rows,
``sum_j 2 c_j (1 - c_j / m)``; summed over both children it is minimal where the *proxy*
``sum_j cL_j^2 / mL + sum_j cR_j^2 / mR`` is maximal (``sum_j c_j`` is the same for every
split of the node). Scanning the rows in code order, adding a row to the left child changes
``sum_j cL_j^2`` by ``2 cL_j + 1`` and ``sum_j cR_j^2`` by ``1 - 2 cR_j`` for each of its
labels, so one candidate costs O(labels of a row) per row, not O(n_labels).

Per node: candidate features are drawn at random without replacement as scikit-learn draws
them: ``max_features`` of them, and more, one at a time, while every one drawn so far is
constant in the node; a feature found constant in a node is known constant in its subtree
and costs no pass over the rows there (on sparse binary features most are). Random forests try every bin
boundary of a candidate (rows of the largest code are never added: no boundary lies above
them; with two codes, the one boundary is scored from the smaller side's labels, as
extra-trees score theirs); extra-trees (``extra``) one random boundary between the node's
smallest and largest code. The first best split (strictly larger proxy) wins. A node is a
leaf when all its labels are pure, it has fewer than ``2 min_leaf`` rows, it is at
``max_depth`` or no candidate leaves ``min_leaf`` rows on both sides; a leaf holds each
label's positive rate. Bootstrap rows are drawn with replacement (a row drawn twice counts
twice; the grower keeps each drawn row once, weighing its copies). Every draw of a tree
comes from its own generator (xorshift64*, seeded by splitmix64 of the tree's seed, state
passed in), so a tree depends on its seed only, never on the thread that grows it.

:func:`best_split` takes the candidate order and the extra-trees draws as arguments so
that the tests can check it against a plain reference; growing draws them
(:func:`_drawn_split`) and runs the same per-feature searches.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._numba import njit

__all__ = ["bin_features", "bin_columns", "best_split", "grow_forest", "grow_tree"]

_SMALL_NODE = 20  # rows: insertion sort below, counting sort above (<= 257: the keys' buffer)
_BIN_ENTRIES_PER_THREAD = 50_000  # stored entries of X that make a binning thread worth it
_SLOT_BYTES = 1 << 27  # memory of the tree slots a growing thread reserves at once


def bin_features(X, max_bins: int = 255, n_threads: int = 1
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``codes`` (n_features, n_samples) uint8 and ``lo``/``hi`` (n_features, max_bins)
    float64, each bin's smallest/largest value (unused bins nan), of X (CSR or dense;
    absent entries are 0; values are read as float32).

    A column with at most ``max_bins`` distinct values has a bin per value; else the bins
    end where the column's cumulative row count crosses k / max_bins. Each column is binned
    from its stored values (:func:`_bin_columns`, over the CSC of X): its absent entries
    are one value, 0, counted but never sorted. ``n_threads``: the columns are binned in
    that many threads (ranges of about equal stored entries) when X stores many values.
    (:func:`bin_columns` gives the same with the bin ranges packed, as the forest uses them.)"""
    codes, lo_flat, hi_flat, offsets, _ = bin_columns(X, max_bins, n_threads)
    d = codes.shape[0]
    lo = np.full((d, max_bins), np.nan)
    hi = np.full((d, max_bins), np.nan)
    for f in range(d):
        a, b = offsets[f], offsets[f + 1]
        lo[f, :b - a] = lo_flat[a:b]
        hi[f, :b - a] = hi_flat[a:b]
    return codes, lo, hi


def bin_columns(X, max_bins: int = 255, n_threads: int = 1
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`bin_features` with the bin ranges packed: ``codes``, ``lo``/``hi`` float64
    (feature f's bin c at ``offsets[f] + c``; nan past its last bin), ``offsets``
    (n_features + 1,) int64 (feature f gets min(max_bins, its stored entries + 1) places:
    it has no more distinct values) and ``zero_code`` (n_features,) int64, the code of the
    value 0 where 0 is a value of the feature (some row does not store it, or stores a
    zero), else 0. The bin ranges of a sparse X take memory in proportion to its stored
    entries, not to n_features x max_bins."""
    if not 2 <= max_bins <= 256:
        raise ValueError(f"max_bins must be in [2, 256], got {max_bins}")
    n, d = X.shape
    if sp.issparse(X):
        Xc = sp.csc_matrix(X, dtype=np.float32)
        if not Xc.has_canonical_format:
            Xc = Xc.copy() if Xc is X else Xc
            Xc.sum_duplicates()
    else:
        Xc = sp.csc_matrix(np.asarray(X, dtype=np.float32))
    indptr = np.asarray(Xc.indptr, np.int64)
    indices = np.asarray(Xc.indices, np.int64)
    data = np.ascontiguousarray(Xc.data, dtype=np.float32)
    codes = np.empty((d, n), dtype=np.uint8)
    offsets = np.zeros(d + 1, dtype=np.int64)
    np.cumsum(np.minimum(np.diff(indptr) + 1, max_bins), out=offsets[1:])
    lo = np.empty(int(offsets[-1]))
    hi = np.empty(int(offsets[-1]))
    zero_code = np.zeros(d, dtype=np.int64)

    def bin_range(f_range):
        longest = int(np.max(np.diff(indptr[f_range[0]:f_range[1] + 1]), initial=0))
        work = np.empty((3, n + 1))
        keys = np.empty((2, longest), dtype=np.uint64)
        _bin_columns(indptr, indices, data, data.view(np.uint32), n, max_bins, codes, lo, hi,
                     offsets, zero_code, work[0], work[1].view(np.int64),
                     work[2].view(np.int64), np.empty(max_bins), keys[0], keys[1],
                     np.empty((4, 256), dtype=np.int64), *f_range)

    parts = max(1, min(int(n_threads), d, int(indptr[-1]) // _BIN_ENTRIES_PER_THREAD))
    if parts == 1:
        bin_range((0, d))
        return codes, lo, hi, offsets, zero_code
    from concurrent.futures import ThreadPoolExecutor

    # column ranges of about equal stored entries (each column costs its entries)
    cut = np.searchsorted(indptr, np.linspace(0, indptr[-1], parts + 1)[1:-1])
    bounds = np.unique(np.concatenate([[0], cut, [d]]))
    with ThreadPoolExecutor(max_workers=parts) as pool:
        list(pool.map(bin_range, zip(bounds[:-1].tolist(), bounds[1:].tolist())))
    return codes, lo, hi, offsets, zero_code


@njit(inline="always", cache=False)
def _push_value(dist, cnt, nd, v, k):
    """Append value ``v`` seen ``k`` times to the first ``nd`` distinct values (sorted);
    returns the new count of distinct values."""
    if nd > 0 and dist[nd - 1] == v:
        cnt[nd - 1] += k
        return nd
    dist[nd] = v
    cnt[nd] = k
    return nd + 1


@njit(inline="always", cache=False)
def _sort_keys(keys, tmp, m, hist):
    """Sort ``keys[:m]`` (uint64) by their upper 32 bits, stably (the lower 32 bits keep
    their order among equal upper ones): insertion sort for few keys, else a radix sort
    on the four bytes (a byte that all keys share costs no pass; ``tmp``: work of >= m,
    ``hist`` (4, 256) int64). The result is in ``keys``."""
    if m <= 48:
        for i in range(1, m):
            k = keys[i]
            hk = k >> np.uint64(32)
            j = i
            while j > 0 and (keys[j - 1] >> np.uint64(32)) > hk:
                keys[j] = keys[j - 1]
                j -= 1
            keys[j] = k
        return
    for b in range(4):
        for c in range(256):
            hist[b, c] = 0
    for i in range(m):
        k = keys[i]
        hist[0, (k >> np.uint64(32)) & np.uint64(255)] += 1
        hist[1, (k >> np.uint64(40)) & np.uint64(255)] += 1
        hist[2, (k >> np.uint64(48)) & np.uint64(255)] += 1
        hist[3, k >> np.uint64(56)] += 1
    src = keys
    dst = tmp
    moved = False
    for b in range(4):
        shift = np.uint64(32 + 8 * b)
        if hist[b, (src[0] >> shift) & np.uint64(255)] == m:
            continue  # every key has this byte
        total = 0
        for c in range(256):
            k = hist[b, c]
            hist[b, c] = total
            total += k
        for i in range(m):
            k = src[i]
            c = (k >> shift) & np.uint64(255)
            dst[hist[b, c]] = k
            hist[b, c] += 1
        src, dst = dst, src
        moved = not moved
    if moved:
        for i in range(m):
            keys[i] = tmp[i]


@njit(nogil=True, cache=True, _nrt=False)
def _bin_columns(indptr, indices, data, bits, n, max_bins, codes, lo, hi, offsets, zero_code,
                 dist, cnt, code_of, cuts, keys, tmp, hist, f_start, f_end):
    """Fill ``codes``, ``lo``/``hi`` (packed at ``offsets``) and ``zero_code`` of the
    features ``f_start..f_end - 1`` (see :func:`bin_columns`) from the CSC of X (``data``
    float32, ``bits`` the same as uint32; ``dist``, ``cnt``, ``code_of`` (n + 1,),
    ``cuts`` (max_bins,), ``keys``/``tmp`` (>= a column's stored entries,) uint64 and
    ``hist`` (4, 256): work arrays).

    Per column: its stored entries sorted by value (:func:`_sort_keys` on keys of the
    float's bits made to order as the values do, each with its entry's place), with its
    ``n - stored`` absent zeros merged in as one counted value, give the distinct values,
    their row counts and each entry's distinct value. Past ``max_bins`` of them the cuts
    are numpy's rule on those counts (as ``np.unique`` and ``np.searchsorted`` would give
    them): the midpoints ``v[i] / 2 + v[i + 1] / 2`` at
    ``i = searchsorted(cumsum(counts[:-1]) / n, k / max_bins)`` for k = 1 .. max_bins - 1,
    each i once; a value's code is the number of cuts below it."""
    low32 = np.uint64(0xFFFFFFFF)
    for f in range(f_start, f_end):
        a = indptr[f]
        m = indptr[f + 1] - a
        n_zero = n - m
        for p in range(m):
            # a float's bits as an unsigned key in the order of the values: the sign bit
            # set on positive values, every bit flipped on negative ones
            b = np.uint64(bits[a + p])
            if b >> np.uint64(31):
                b = ~b & low32
            else:
                b |= np.uint64(0x80000000)
            keys[p] = (b << np.uint64(32)) | np.uint64(p)
        _sort_keys(keys, tmp, m, hist)
        # the absent zeros join the values where the non-negative ones start (-0.0 == 0.0);
        # tmp[k]: the distinct value of the k-th entry in value order
        nd = 0
        zero_in = n_zero == 0
        for k in range(m):
            v = np.float64(data[a + np.int64(keys[k] & low32)])
            if not zero_in and not v < 0.0:
                zero_in = True
                nd = _push_value(dist, cnt, nd, 0.0, n_zero)
            nd = _push_value(dist, cnt, nd, v, 1)
            tmp[k] = nd - 1
        if not zero_in:
            nd = _push_value(dist, cnt, nd, 0.0, n_zero)
        if nd <= max_bins:
            for i in range(nd):
                code_of[i] = i
        else:
            n_cuts = 0
            i = 0
            last = -1
            cum = cnt[0]  # rows with the values 0..i
            for k in range(1, max_bins):
                q = k / max_bins
                while i < nd - 1 and cum / n < q:
                    i += 1
                    cum += cnt[i]
                if i < nd - 1 and i != last:  # one cut per place
                    cuts[n_cuts] = dist[i] / 2.0 + dist[i + 1] / 2.0
                    n_cuts += 1
                    last = i
            j = 0
            for i in range(nd):
                while j < n_cuts and cuts[j] < dist[i]:
                    j += 1
                code_of[i] = j
        base = offsets[f]
        for i in range(offsets[f + 1] - base):
            lo[base + i] = np.nan
            hi[base + i] = np.nan
        zc = 0
        for i in range(nd):
            c = code_of[i]
            if i == 0 or code_of[i - 1] != c:
                lo[base + c] = dist[i]
            hi[base + c] = dist[i]
            if dist[i] == 0.0:
                zc = c
        zero_code[f] = zc
        if n_zero > 0:
            for r in range(n):
                codes[f, r] = zc
        for k in range(m):
            codes[f, indices[a + np.int64(keys[k] & low32)]] = code_of[np.int64(tmp[k])]


@njit(inline="always", cache=False)
def _next_u64(state):
    """The next 64 random bits of ``state`` (a uint64 array of one nonzero word; xorshift64*,
    Vigna 2016): a few integer operations, inlined, where numba's ``np.random`` calls its
    thread's Mersenne Twister through a C helper (and its import costs a fresh process)."""
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    return x * np.uint64(0x2545F4914F6CDD1D)


@njit(inline="always", cache=False)
def _uniform(state):
    """A float64 uniform in [0, 1) (53 random bits)."""
    return np.float64(_next_u64(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(inline="always", cache=False)
def _below(state, k):
    """An int uniform in [0, k), k >= 1 (k < 2**53: the bias of the scaling is below 2**-20
    for every k the grower draws)."""
    return min(np.int64(_uniform(state) * k), k - 1)


def _seed_state(seed: int) -> np.ndarray:
    """The generator's state for ``seed``: splitmix64 of it (never 0)."""
    z = (int(seed) + 0x9E3779B97F4A7C15) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    z ^= z >> 31
    return np.array([z or 1], dtype=np.uint64)


@njit(inline="always", cache=False)
def _take_code(c, w, cmin, cmax, n_min):
    """The code range (smallest, largest, weight at the smallest) widened by ``w`` rows
    holding code ``c``."""
    if c < cmin:
        cmin = c
        n_min = w
    elif c == cmin:
        n_min += w
    if c > cmax:
        cmax = c
    return cmin, cmax, n_min


@njit(inline="always", cache=False)
def _code_range(col, rows, start, end, cbuf):
    """The smallest and largest code of the node's rows in one feature, each row's code
    copied to ``cbuf[:end - start]`` (the passes after this one read the node's codes
    there, in the node's row order, without going through ``rows``). (The searches below
    are inlined into their callers: no call, no reference counting of the arrays passed per
    candidate.)"""
    cmin = 255
    cmax = 0
    for p in range(start, end):
        c = col[np.uint64(rows[np.uint64(p)])]
        cbuf[np.uint64(p - start)] = c
        cmin = min(cmin, c)
        cmax = max(cmax, c)
    return cmin, cmax


@njit(inline="always", cache=False)
def _add_labels(r, w, yptr, yind, ctot, cl, sq, tot):
    """Row ``r`` (weight ``w``) joins the side counted in ``cl``: its sum of squares
    ``sq`` = sum_j cl_j^2 grows by (2 cl_j + w) w, ``tot`` by w ctot_j per label j."""
    for q in range(yptr[np.uint64(r)], yptr[np.uint64(r + 1)]):
        # (unsigned indices: numba wraps no negative index around, a few instructions
        # less per access; every index here is >= 0)
        j = np.uint64(yind[np.uint64(q)])
        c = cl[j]
        sq += (2 * c + w) * w
        tot += w * ctot[j]
        cl[j] = c + w
    return sq, tot


@njit(inline="always", cache=False)
def _side_proxy(sq, tot, stot, nl, nn, side_is_left):
    """The proxy sum_j cL_j^2 / nL + sum_j cR_j^2 / nR of a split whose one side (left
    when ``side_is_left``) has sum of squares ``sq`` and ``tot`` = sum_j c_j ctot_j: the
    other side's sum of squares is sum_j (ctot_j - c_j)^2 = stot + sq - 2 tot. Integers below
    2**53: exact as floats, the same proxy whichever side was counted."""
    s_other = np.int64(stot) + sq - 2 * tot
    sl = sq if side_is_left else s_other
    sr = s_other if side_is_left else sq
    return float(sl) / nl + float(sr) / (nn - nl)


@njit(inline="always", cache=False)
def _extra_split(cbuf, rows, start, n_rows, nn, mult, weighted, yptr, yind, ctot, stot, cmin,
                 cmax, u, min_leaf, cl, order, other):
    """(c, c', proxy) of the boundary drawn by ``u`` in [0, 1) between ``cmin`` and
    ``cmax`` (with two codes: the one between them); proxy -inf when a side weighs less than
    ``min_leaf``. ``cbuf``: the node's codes (:func:`_code_range`); ``nn``: the node's
    weight (``mult`` summed over its rows; every row weighs 1 unless ``weighted``).

    One pass, without branches on the codes (a row's side is a coin flip to the branch
    predictor), lists the rows of each side (``order``, ``other``); the labels of the lighter
    side are then counted; the other side's are ctot minus them."""
    t = cmin + int(u * (cmax - cmin))
    if t >= cmax:
        t = cmax - 1
    nl = 0
    below = cmin
    above = cmax
    kl = 0
    kr = 0
    for i in range(n_rows):
        c = cbuf[i]
        r = rows[start + i]
        le = c <= t
        order[kl] = r
        other[kr] = r
        kl += le
        kr += 1 - le
        below = max(below, c * le)
        above = min(above, c + 256 * le)
        if weighted:
            nl += mult[r] * le
    if not weighted:
        nl = kl
    nr = nn - nl
    if nl < min_leaf or nr < min_leaf:
        return below, above, -np.inf
    right_side = 2 * nl > nn
    side = other if right_side else order
    k = kr if right_side else kl
    sq = 0
    tot = 0
    touched = 0
    for i in range(k):
        r = side[np.uint64(i)]
        touched += yptr[np.uint64(r + 1)] - yptr[np.uint64(r)]
        sq, tot = _add_labels(r, mult[np.uint64(r)], yptr, yind, ctot, cl, sq, tot)
    _zero_counts(cl, side, k, touched, yptr, yind)
    return below, above, _side_proxy(sq, tot, stot, nl, nn, not right_side)


@njit(inline="always", cache=False)
def _zero_counts(cl, order, k, touched, yptr, yind):
    """Zero the label counts ``cl`` again after the rows ``order[:k]`` (``touched`` labels
    in all) were added: all of it when that is shorter."""
    if touched > cl.size:
        cl[:] = 0
    else:
        for i in range(k):
            r = order[i]
            for q in range(yptr[r], yptr[r + 1]):
                cl[yind[q]] = 0


@njit(inline="always", cache=False)
def _scan_split(cbuf, rows, start, n_rows, nn, mult, yptr, yind, ctot, stot, cmin, cmax,
                min_leaf, cl, count, order, scode):
    """(c, c', proxy) of the best boundary of one feature (the first of equal ones); proxy
    -inf when none leaves ``min_leaf`` weight on both sides. The node's rows are sorted by
    code into ``order`` (their codes into ``scode``) and added to the left side one by one."""
    best_t = -1
    best_next = -1
    best_proxy = -np.inf
    if n_rows <= _SMALL_NODE:
        # insertion sort of one key per row, code << 32 | row (in ``count``, free here):
        # one array moved, not two (rows of one code end up by row id, which changes no
        # sum at a boundary)
        for i in range(n_rows):
            key = (np.int64(cbuf[i]) << 32) | rows[start + i]
            k = i
            while k > 0 and count[k - 1] > key:
                count[k] = count[k - 1]
                k -= 1
            count[k] = key
        for k in range(n_rows):
            key = count[k]
            order[k] = key & 0xFFFFFFFF
            scode[k] = key >> 32
    else:
        width = cmax - cmin + 1
        for c in range(width + 1):
            count[c] = 0
        for i in range(n_rows):
            count[np.uint64(cbuf[np.uint64(i)] - cmin + 1)] += 1
        for c in range(1, width + 1):
            count[c] += count[c - 1]
        for i in range(n_rows):
            c = cbuf[np.uint64(i)]
            k = count[np.uint64(c - cmin)]
            order[np.uint64(k)] = rows[np.uint64(start + i)]
            scode[np.uint64(k)] = c
            count[np.uint64(c - cmin)] = k + 1
    # sum_j cL_j^2 and sum_j cL_j ctot_j grow with each row moved left (_add_labels); the
    # right side's sum of squares follows from them (_side_proxy)
    # A boundary's proxy sL / nL + sR / nR (two divisions) is computed only where it may
    # beat the best so far: where sL nR + sR nL >= (best (1 - 1e-9)) nL nR, products in
    # float64 (each within 3 ulp of the exact value); below that, the exact proxy is
    # under best (1 - 1e-9 + 7 2^-53) and its computed value under best, so it could not
    # win: the same splits as computing every proxy, bit for bit, without the divisions.
    bar = -np.inf
    sq = 0
    tot = 0
    touched = 0
    added = 0
    nl = 0
    for p in range(n_rows - 1):
        r = order[np.uint64(p)]
        w = mult[np.uint64(r)]
        touched += yptr[np.uint64(r + 1)] - yptr[np.uint64(r)]
        sq, tot = _add_labels(r, w, yptr, yind, ctot, cl, sq, tot)
        nl += w
        added = p + 1
        c_next = scode[np.uint64(p + 1)]
        if scode[np.uint64(p)] != c_next:
            if nl >= min_leaf and nn - nl >= min_leaf:
                fl = float(nl)
                fr = float(nn - nl)
                if float(sq) * fr + float(np.int64(stot) + sq - 2 * tot) * fl >= bar * (fl * fr):
                    proxy = _side_proxy(sq, tot, stot, nl, nn, True)
                    if proxy > best_proxy:
                        best_proxy = proxy
                        bar = proxy * (1.0 - 1e-9)
                        best_t = scode[p]
                        best_next = c_next
            if c_next == cmax:  # the rows of the largest code never go left: no boundary
                break
    _zero_counts(cl, order, added, touched, yptr, yind)
    return best_t, best_next, best_proxy


@njit(inline="always", cache=False)
def _stored_binary_split(col, stored_rows, n_in, mult, yptr, yind, ctot, stot, cmin, cmax,
                         nl, nn, zero_side, min_leaf, cl):
    """:func:`_extra_split` of a two-code feature from the node's rows that store it
    (``stored_rows[:n_in]``, each standing for ``mult`` copies): the labels are summed over
    the side without the absent rows (whose code is ``zero_side``, -1 when there are none),
    so the node's other rows are never read; the same proxy, bit for bit."""
    nr = nn - nl
    if nl < min_leaf or nr < min_leaf:
        return cmin, cmax, -np.inf
    side = cmax if zero_side != cmax else cmin
    sq = 0
    tot = 0
    touched = 0
    for i in range(n_in):
        r = stored_rows[i]
        if col[r] == side:
            touched += yptr[r + 1] - yptr[r]
            sq, tot = _add_labels(r, mult[r], yptr, yind, ctot, cl, sq, tot)
    if touched > cl.size:
        cl[:] = 0
    else:
        for i in range(n_in):
            r = stored_rows[i]
            if col[r] == side:
                for q in range(yptr[r], yptr[r + 1]):
                    cl[yind[q]] = 0
    return cmin, cmax, _side_proxy(sq, tot, stot, nl, nn, side == cmin)


@njit(inline="always", cache=False)
def _feature_split(cbuf, rows, start, n_rows, nn, mult, weighted, yptr, yind, ctot, stot,
                   cmin, cmax, extra, u, min_leaf, cl, count, order, other, scode):
    """One feature's best split of a node: a random threshold (extra-trees, ``u`` its draw)
    or the one boundary of two codes (binary features), whose label counts
    :func:`_extra_split` takes from the lighter side only, with the same proxy as the scan's,
    bit for bit (sums of squared integer counts are exact in float64); else the scan over
    every boundary."""
    if extra or cmax == cmin + 1:
        return _extra_split(cbuf, rows, start, n_rows, nn, mult, weighted, yptr, yind, ctot,
                            stot, cmin, cmax, u, min_leaf, cl, order, other)
    return _scan_split(cbuf, rows, start, n_rows, nn, mult, yptr, yind, ctot, stot, cmin,
                       cmax, min_leaf, cl, count, order, scode)


@njit(nogil=True, cache=True, _nrt=False)
def best_split(codes, rows, start, end, mult, yptr, yind, ctot, stot, feats, max_features,
               min_leaf, extra, draws, cl, count, order, other, cbuf, scode):
    """The best split of the node ``rows[start:end]`` (distinct rows, row r standing for
    ``mult[r]`` copies: a bootstrap sample) over candidates tried in the given order, as
    (feature, c, c', proxy): codes <= c go left, the node's smallest code above c is c';
    feature -1 when no candidate is valid.

    ``feats``: the candidate features in order: the first ``max_features``, and more while
    all so far are constant in the node. ``draws[i]`` in [0, 1) places the extra-trees
    boundary of the i-th candidate. ``ctot``/``stot``: the node's label counts and their sum
    of squares (copies counted). Work buffers: ``cl`` (n_labels,) int64 zeros (left zeroed
    on return), ``count`` (257,) int64, ``order`` and ``other`` (>= end - start,) int64, ``cbuf`` and
    ``scode`` (>= end - start,) uint8. (Growing draws the candidates as scikit-learn does,
    in :func:`_drawn_split`, with the same per-feature searches.)"""
    best_f = -1
    best_t = -1
    best_next = -1
    best_proxy = -np.inf
    visited = 0
    n_rows = end - start
    nn = 0
    for p in range(start, end):
        nn += mult[rows[p]]
    for fi in range(feats.size):
        if fi >= max_features and visited > 0:
            break
        f = feats[fi]
        cmin, cmax = _code_range(codes[f], rows, start, end, cbuf)
        if cmin == cmax:
            continue
        visited += 1
        t, t_next, proxy = _feature_split(cbuf, rows, start, n_rows, nn, mult, True, yptr,
                                          yind, ctot, stot, cmin, cmax, extra,
                                          draws[fi] if extra else 0.0, min_leaf, cl, count,
                                          order, other, scode)
        if proxy > best_proxy:
            best_proxy = proxy
            best_f = f
            best_t = t
            best_next = t_next
    return best_f, best_t, best_next, best_proxy


@njit(inline="always", cache=False)
def _drawn_split(codes, rows, start, end, nn, mult, weighted, yptr, yind, ctot, stot, feats,
                 const_feats, n_known, max_features, min_leaf, extra, cl, count, order, other,
                 cbuf, scode, node, node_of_row, fptr, frow, fzero, stored_rows, state):
    """:func:`best_split` with the candidates drawn at random as scikit-learn's best and
    random splitters draw them: ``feats[:n_known]`` are features known to be constant in
    the node (constant in an ancestor): drawing one counts as a visit but costs no pass;
    ``max_features`` visits, and more while every feature visited was constant. Returns
    (feature, c, c', proxy, constants known to the children); ``feats`` keeps the new
    constants after the known ones (``const_feats``: work buffer).

    ``fptr``/``frow`` (CSC of the features' stored entries, or empty) with ``node_of_row``
    (each row's node, ``node`` this one's): a feature stored by fewer rows than the node
    has is constant (all 0) there when none of them is in the node, found without a
    pass over the node's rows; else its codes are read as usual."""
    d = feats.size
    n_rows = end - start
    best_f = -1
    best_t = -1
    best_next = -1
    best_proxy = -np.inf
    f_i = d
    n_found = 0
    n_drawn = 0
    n_total = n_known
    n_visited = 0
    while f_i > n_total and (n_visited < max_features or n_visited <= n_found + n_drawn):
        n_visited += 1
        f_j = n_drawn + _below(state, f_i - n_found - n_drawn)
        if f_j < n_known:  # a known constant
            tmp = feats[n_drawn]
            feats[n_drawn] = feats[f_j]
            feats[f_j] = tmp
            n_drawn += 1
            continue
        f_j += n_found
        f = feats[f_j]
        col = codes[f]
        stored = True
        known = False  # the code range is known from the stored rows
        n_in = 0
        zero_side = -1
        cmin = 255
        cmax = 0
        n_min = 0
        if fptr.size > 0 and fptr[f + 1] - fptr[f] < n_rows:
            # the node's rows that store f (a row's copies count mult times); the others
            # hold 0, whose code is fzero[f]
            n_stored = 0
            for q in range(fptr[f], fptr[f + 1]):
                r = frow[q]
                if node_of_row[r] == node:
                    stored_rows[n_in] = r
                    n_in += 1
                    w = mult[r]
                    n_stored += w
                    cmin, cmax, n_min = _take_code(col[r], w, cmin, cmax, n_min)
            stored = n_in > 0
            known = stored
            n_absent = nn - n_stored
            if stored and n_absent > 0:
                zero_side = fzero[f]
                cmin, cmax, n_min = _take_code(zero_side, n_absent, cmin, cmax, n_min)
        if not stored:
            cmin = cmax = 0
        elif not known:
            cmin, cmax = _code_range(col, rows, start, end, cbuf)
        if cmin == cmax:
            feats[f_j] = feats[n_total]
            feats[n_total] = f
            n_found += 1
            n_total += 1
            continue
        f_i -= 1
        feats[f_j] = feats[f_i]
        feats[f_i] = f
        # (extra-trees: the uniform draw of this feature's threshold, in the draw order)
        u = _uniform(state) if extra else 0.0
        if known and cmax == cmin + 1:
            t, t_next, proxy = _stored_binary_split(col, stored_rows, n_in, mult, yptr, yind,
                                                    ctot, stot, cmin, cmax, n_min, nn,
                                                    zero_side, min_leaf, cl)
        else:
            if known:  # (the stored rows gave the range: the node's codes are read now)
                for p in range(start, end):
                    cbuf[p - start] = col[rows[p]]
            t, t_next, proxy = _feature_split(cbuf, rows, start, n_rows, nn, mult, weighted,
                                              yptr, yind, ctot, stot, cmin, cmax, extra, u,
                                              min_leaf, cl, count, order, other, scode)
        if proxy > best_proxy:
            best_proxy = proxy
            best_f = f
            best_t = t
            best_next = t_next
    # as scikit-learn: the known constants get back the order the siblings and children
    # expect (``const_feats`` holds it across nodes: the tree is grown depth first), the
    # new ones follow them there
    for i in range(n_known):
        feats[i] = const_feats[i]
    for i in range(n_known, n_total):
        const_feats[i] = feats[i]
    return best_f, best_t, best_next, best_proxy, n_total


class _Workspace:
    """One thread's arrays for :func:`_grow`, made once and reused by every tree it grows
    (the kernel sets up what it reads): the node slots its trees are grown into
    (:meth:`slot`: each tree keeps its own, so no tree's nodes are copied out of the
    workspace) and one buffer for a tree's leaves (``leaves``: leaf_ptr, leaf_label,
    leaf_value), whose used part each tree copies out (its leaves and their non-zero
    rates)."""

    def __init__(self, codes, n_labels, track, n_trees, n_label_entries):
        d, m = codes.shape
        i8 = np.int64
        self._m = m
        # slots reserved at once: the thread's share of the trees, within _SLOT_BYTES (a
        # slot holds the largest possible tree; the pages a tree leaves unused are never
        # touched)
        per_slot = 8 * 12 * m
        self._block = max(1, min(int(n_trees), _SLOT_BYTES // max(per_slot, 1)))
        self._nodes = None
        self._next = self._block
        self.head = (np.zeros(m, i8), np.empty(m if track else 0, i8))
        # a leaf's non-zero rates are at most its rows' labels, so a tree's at most Y's
        self.leaves = (np.empty(m + 1, i8), np.empty(max(n_label_entries, 1), i8),
                       np.empty(max(n_label_entries, 1)))
        self.tail = (np.empty((5, 2 * m), dtype=i8), np.empty(m, dtype=i8),
                     np.empty(d, dtype=i8), np.empty(d, dtype=i8),
                     np.empty(n_labels, dtype=i8), np.zeros(n_labels, dtype=i8),
                     np.zeros(257, dtype=i8), np.empty(m, dtype=i8), np.empty(m, dtype=i8),
                     np.empty(m, dtype=np.uint8), np.empty(m, dtype=np.uint8),
                     np.empty(m if track else 0, dtype=i8))

    def slot(self):
        """A fresh tree's nodes (6, 2 n_samples): left, right, feature, c, c', leaf_of."""
        if self._next == self._block:
            self._nodes = np.empty((self._block, 6, 2 * self._m), dtype=np.int64)
            self._next = 0
        i = self._next
        self._next += 1
        return self._nodes[i]


def _zero_codes(codes, fptr, frow):
    """Each feature's code of the value 0 (the code of a row that does not store it)."""
    d, m = codes.shape
    fzero = np.zeros(d, dtype=np.int64)
    for f in range(d):
        absent = np.setdiff1d(np.arange(m), frow[fptr[f]:fptr[f + 1]])
        fzero[f] = codes[f, absent[0]] if absent.size else 0
    return fzero


def grow_forest(codes, yptr, yind, n_labels, seeds, bootstrap, max_features, max_depth,
                min_leaf, extra, fptr, frow, fzero=None, n_threads=1):
    """:func:`grow_tree` for every seed, on ``n_threads`` threads (each takes the next tree
    when it is done with one, in one workspace of arrays for all its trees): the list of
    trees in the order of ``seeds``, each as (nodes (6, n_nodes) int64: left, right,
    feature, c, c', leaf_of, a view of the slot it was grown in; leaf_ptr, leaf_label,
    leaf_value: its leaves' non-zero positive rates, leaf ``l``'s labels (ascending) and
    rates at ``leaf_ptr[l]:leaf_ptr[l + 1]``)."""
    from concurrent.futures import ThreadPoolExecutor

    track = fptr.size > 0
    if not track:
        fzero = np.zeros(0, dtype=np.int64)
    elif fzero is None:
        fzero = _zero_codes(codes, fptr, frow)
    fzero = np.asarray(fzero, dtype=np.int64)
    seeds = [int(s) for s in seeds]
    trees = [None] * len(seeds)
    todo = iter(range(len(seeds)))  # shared: next() on a range iterator holds the GIL

    n_threads = max(1, min(int(n_threads), len(seeds)))
    share = -(-len(seeds) // n_threads)

    def work():
        ws = _Workspace(codes, n_labels, track, share, int(yptr[-1]))
        ptr, lab, val = ws.leaves
        for i in todo:
            nodes = ws.slot()
            n_nodes, n_leaves = _grow(codes, yptr, yind, n_labels, _seed_state(seeds[i]),
                                      bootstrap, max_features, max_depth, min_leaf, extra,
                                      fptr, frow, fzero, *ws.head, nodes, *ws.leaves,
                                      *ws.tail)
            used = ptr[n_leaves]
            trees[i] = (nodes[:, :n_nodes], ptr[:n_leaves + 1].copy(), lab[:used].copy(),
                        val[:used].copy())

    if n_threads == 1:
        work()
    else:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            for f in [pool.submit(work) for _ in range(n_threads)]:
                f.result()
    return trees


def grow_tree(codes, yptr, yind, n_labels, seed, bootstrap, max_features, max_depth,
              min_leaf, extra, fptr, frow, fzero=None):
    """One tree on binned ``codes`` (n_features, n_samples) and labels in CSR
    (``yptr``/``yind``): (left, right, feature, c, c', leaf_of, leaf_ptr, leaf_label,
    leaf_value) with node 0
    the root, children numbered after their parent, -1 links at leaves, leaf_of the leaf
    row of a leaf node (-1 for split nodes; feature, c and c' are 0 at leaves) and each
    leaf's positive rates, the non-zero ones (labels ascending) at ``leaf_ptr[l]:leaf_ptr[l +
    1]`` of leaf_label / leaf_value. ``max_depth`` < 0: unlimited.
    ``fptr``/``frow``: the rows storing each feature (CSC of a sparse X, int64) or two empty
    arrays (dense X); with them a feature that no row of a node stores is known constant
    there without reading its codes; a feature with two codes in the node is then split
    from the rows storing it alone. ``fzero``: each feature's code of the value 0 (found
    here when None). Same tree either way.

    A bootstrap sample is grown as its distinct rows, each weighing its number of copies
    (copies of a row have equal codes and so always share a node): the same tree as with
    every copy a row of its own, from a third fewer rows.

    The arrays are made in Python (:class:`_Workspace`) and grown by :func:`_grow`: a
    kernel that allocates nothing links without numba's array library
    (``numba.np.arrayobj``, a fixed import cost in a fresh process)."""
    nodes, *leaves = grow_forest(codes, yptr, yind, n_labels, [seed], bootstrap,
                                 max_features, max_depth, min_leaf, extra, fptr, frow,
                                 fzero)[0]
    return (*nodes, *leaves)


@njit(nogil=True, cache=True, _nrt=False)
def _grow(codes, yptr, yind, n_labels, state, bootstrap, max_features, max_depth, min_leaf,
          extra, fptr, frow, fzero, mult, stored_rows, nodes, leaf_ptr, leaf_label, leaf_value,
          stack, rows, feats, const_feats, ctot, cl, count, order, other, cbuf, scode,
          node_of_row):
    """:func:`grow_tree`'s loop on the arrays of a :class:`_Workspace` (``cl`` and ``count``
    zeros, as every tree leaves them; the rest is set up here); returns the counts of nodes
    and leaves, whose non-zero rates it writes at ``leaf_ptr[l]:leaf_ptr[l + 1]`` of
    ``leaf_label`` / ``leaf_value``."""
    m = rows.size
    for f in range(feats.size):
        feats[f] = f
    for r in range(node_of_row.size):
        node_of_row[r] = -1
    for p in range(m):
        mult[p] = 0
    for p in range(m):
        if bootstrap:
            mult[_below(state, m)] += 1
        else:
            mult[p] = 1
    n_distinct = 0
    for r in range(m):
        if mult[r] > 0:
            rows[n_distinct] = r
            n_distinct += 1
    left = nodes[0]
    right = nodes[1]
    feature = nodes[2]
    bin_thr = nodes[3]
    bin_next = nodes[4]
    leaf_of = nodes[5]
    st_node = stack[0]
    st_start = stack[1]
    st_end = stack[2]
    st_depth = stack[3]
    st_known = stack[4]
    track = fptr.size > 0
    if track:
        for p in range(n_distinct):
            node_of_row[rows[p]] = 0
    st_node[0] = 0
    st_start[0] = 0
    st_end[0] = n_distinct
    st_depth[0] = 0
    st_known[0] = 0
    top = 1
    n_nodes = 1
    n_leaves = 0
    leaf_ptr[0] = 0
    n_rates = 0
    while top > 0:
        top -= 1
        node = st_node[top]
        s = st_start[top]
        e = st_end[top]
        depth = st_depth[top]
        n_known = st_known[top]
        for j in range(n_labels):
            ctot[j] = 0
        nn = 0
        for p in range(s, e):
            r = rows[np.uint64(p)]
            w = mult[np.uint64(r)]
            nn += w
            for q in range(yptr[np.uint64(r)], yptr[np.uint64(r + 1)]):
                ctot[np.uint64(yind[np.uint64(q)])] += w
        stot = 0.0
        pure = True
        for j in range(n_labels):
            stot += float(ctot[j]) * float(ctot[j])
            if ctot[j] != 0 and ctot[j] != nn:
                pure = False
        leaf = pure or nn < 2 * min_leaf or (max_depth >= 0 and depth >= max_depth)
        f = -1
        t = -1
        t_next = -1
        if not leaf:
            f, t, t_next, _, n_known = _drawn_split(
                codes, rows, s, e, nn, mult, bootstrap, yptr, yind, ctot, stot, feats,
                const_feats, n_known, max_features, min_leaf, extra, cl, count, order, other,
                cbuf, scode, node, node_of_row, fptr, frow, fzero, stored_rows, state)
            leaf = f < 0
        if leaf:
            left[node] = -1
            right[node] = -1
            feature[node] = 0
            bin_thr[node] = 0
            bin_next[node] = 0
            leaf_of[node] = n_leaves
            for j in range(n_labels):
                if ctot[j] != 0:
                    leaf_label[n_rates] = j
                    leaf_value[n_rates] = ctot[j] / nn
                    n_rates += 1
            n_leaves += 1
            leaf_ptr[n_leaves] = n_rates
            continue
        # the node's rows split in one pass without branches on the codes (a row's side
        # is a coin flip to the branch predictor): the left ones packed in place (never
        # ahead of the row read), the right ones listed in ``order`` and put after them;
        # each side keeps its rows' order
        col = codes[f]
        kl = 0
        kr = 0
        for p in range(s, e):
            r = rows[np.uint64(p)]
            le = col[np.uint64(r)] <= t
            rows[np.uint64(s + kl)] = r
            order[np.uint64(kr)] = r
            kl += le
            kr += 1 - le
        i = s + kl
        for q in range(kr):
            rows[i + q] = order[q]
        if track:
            for p in range(s, i):
                node_of_row[rows[p]] = n_nodes
            for p in range(i, e):
                node_of_row[rows[p]] = n_nodes + 1
        left[node] = n_nodes
        right[node] = n_nodes + 1
        leaf_of[node] = -1
        feature[node] = f
        bin_thr[node] = t
        bin_next[node] = t_next
        # right below left on the stack: the left subtree is grown first
        st_node[top] = n_nodes + 1
        st_start[top] = i
        st_end[top] = e
        st_depth[top] = depth + 1
        st_known[top] = n_known
        st_node[top + 1] = n_nodes
        st_start[top + 1] = s
        st_end[top + 1] = i
        st_depth[top + 1] = depth + 1
        st_known[top + 1] = n_known
        top += 2
        n_nodes += 2
    return n_nodes, n_leaves
