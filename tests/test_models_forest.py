"""LabelForest: labelwise's numba grower against a plain reference (binning, the split
search given the candidates, every grown split optimal, leaves holding the rates), and the
flat-array traversal of scikit-learn-grown trees against scikit-learn's predict_proba."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from conformance import small_data
from labelwise.errors import DataFormatError
from labelwise.models._forest_grow import best_split, bin_columns, bin_features, grow_tree
from labelwise.models.forest import LabelForest


@pytest.mark.parametrize("kind", ["random", "extra"])
def test_probabilities_equal_sklearn_predict_proba(kind):
    X, Y = small_data(seed=5, n=120, d=10, n_labels=5)
    Yd = Y.toarray().astype(np.int64)
    Yd[:, 4] = 0  # a label without positives: probability 0 everywhere
    model = LabelForest(kind=kind, n_estimators=7, min_samples_leaf=2, random_state=4,
                        n_threads=2, grower="sklearn").fit(X, Yd)
    est = model.sklearn_estimator().fit(X, Yd)
    Q, _ = small_data(seed=9, n=60, d=10, n_labels=5)
    ref = np.column_stack([
        p[:, list(c).index(1)] if 1 in list(c) else np.zeros(Q.shape[0])
        for p, c in zip(est.predict_proba(Q), est.classes_)])
    for Qx in (Q, Q.toarray(), X):
        got = model.probabilities(Qx)
        want = ref if Qx is not X else np.column_stack([
            p[:, list(c).index(1)] if 1 in list(c) else np.zeros(X.shape[0])
            for p, c in zip(est.predict_proba(X), est.classes_)])
        assert np.allclose(got, want, atol=1e-12)
    assert np.all(model.probabilities(Q)[:, 4] == 0)


def test_single_label_and_dense_features():
    X, Y = small_data(seed=1, n=60, n_labels=1)
    model = LabelForest(n_estimators=5, random_state=0, n_threads=1,
                        grower="sklearn").fit(X.toarray(), Y)
    est = model.sklearn_estimator().fit(X.toarray(), Y.toarray().ravel())
    assert np.allclose(model.probabilities(X)[:, 0], est.predict_proba(X.toarray())[:, 1])


def test_corrupt_tree_arrays_are_refused(tmp_path):
    import json

    X, Y = small_data(seed=2)
    LabelForest(n_estimators=3, random_state=0, n_threads=1).fit(X, Y).save(tmp_path / "m")
    left = np.load(tmp_path / "m" / "left.npy")
    split = np.flatnonzero(left >= 0)
    left[split[0]] = split[0]  # a loop: the node is its own child
    np.save(tmp_path / "m" / "left.npy", left)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    with pytest.raises(DataFormatError, match="do not form trees"):
        LabelForest.load(tmp_path / "m", verify=False)
    assert manifest["class"] == "LabelForest"


def _plain_probabilities(model, Xd):
    """Mean over trees of the dense leaf rates each row reaches, tree by tree (the dense
    rates rebuilt one entry at a time from the sparse leaves)."""
    L = len(model.labels_)
    P = _dense_leaves(model.leaf_ptr_, model.leaf_label_, model.leaf_value_, L)
    out = np.zeros((Xd.shape[0], L))
    for i in range(Xd.shape[0]):
        for root in model.roots_:
            node = root
            while model.left_[node] >= 0:
                go_left = Xd[i, model.feature_[node]] <= model.threshold_[node]
                node = model.left_[node] if go_left else model.right_[node]
            out[i] += P[model.leaf_of_[node]]
    return out / model.roots_.size


@pytest.mark.parametrize("grower", ["labelwise", "sklearn"])
def test_sparse_leaves_give_the_dense_sums(grower):
    """A leaf keeps its non-zero rates only; the probabilities equal, bit for bit, the sums
    over every tree's dense rates, zeros included (adding 0 changes no sum), and a label
    without positives has none."""
    X, Y = small_data(seed=6, n=120, d=10, n_labels=5)
    Yd = Y.toarray()
    Yd[:, 2] = 0
    model = LabelForest(n_estimators=6, random_state=3, n_threads=2, grower=grower).fit(X, Yd)
    assert model.leaf_label_.dtype == np.int64 and not np.any(model.leaf_label_ == 2)
    assert np.all(model.leaf_value_ > 0) and np.all(model.leaf_value_ <= 1)
    Q, _ = small_data(seed=8, n=40, d=10, n_labels=5)
    assert np.array_equal(model.probabilities(Q), _plain_probabilities(model, Q.toarray()))


def test_a_model_saved_with_dense_leaves_loads_as_sparse(tmp_path):
    """Models saved before the sparse leaves hold ``leaf_p`` (n_leaves, n_labels): they load
    and predict as before; a file with both forms, or with broken sparse leaves, is refused."""
    from labelwise.models.persist import check_saved_arrays

    X, Y = small_data(seed=2)
    model = LabelForest(n_estimators=4, random_state=0, n_threads=1).fit(X, Y)
    arrays, state = model._get_state()
    L = len(model.labels_)
    old = {k: v for k, v in arrays.items() if not k.startswith("leaf_")}
    old["leaf_of"] = arrays["leaf_of"]
    old["leaf_p"] = _dense_leaves(arrays["leaf_ptr"], arrays["leaf_label"],
                                  arrays["leaf_value"], L)
    check_saved_arrays(LabelForest, old, where="old model")
    loaded = LabelForest(n_threads=1)
    loaded.labels_, loaded.n_features_in_ = model.labels_, model.n_features_in_
    loaded._set_state(old, state)
    for k in ("leaf_ptr", "leaf_label", "leaf_value"):
        assert np.array_equal(getattr(loaded, k + "_"), arrays[k])
    assert np.array_equal(loaded.probabilities(X), model.probabilities(X))
    with pytest.raises(DataFormatError, match="both"):
        loaded._set_state({**arrays, "leaf_p": old["leaf_p"]}, state)
    bad_label = arrays["leaf_label"].copy()
    bad_label[0] = L
    backwards = arrays["leaf_ptr"].copy()
    backwards[1] = backwards[2] + 1
    first = arrays["leaf_ptr"][np.flatnonzero(np.diff(arrays["leaf_ptr"]) >= 2)[0]]
    repeated = arrays["leaf_label"].copy()
    repeated[first + 1] = repeated[first]  # one label twice in a leaf
    for key, value in (("leaf_label", bad_label), ("leaf_ptr", backwards),
                       ("leaf_label", repeated), ("leaf_value", arrays["leaf_value"][:-1])):
        with pytest.raises(DataFormatError, match="do not form trees"):
            loaded._set_state({**arrays, key: value}, state)


def test_bad_params():
    X, Y = small_data()
    with pytest.raises(ValueError, match="kind"):
        LabelForest(kind="gradient").fit(X, Y)
    with pytest.raises(ValueError, match="max_features"):
        LabelForest(max_features=0).fit(X, Y)
    with pytest.raises(ValueError, match="grower"):
        LabelForest(grower="xgboost").fit(X, Y)
    with pytest.raises(ValueError, match="max_bins"):
        LabelForest(max_bins=300).fit(X, Y)
    assert sp.issparse(LabelForest(n_estimators=2, n_threads=1).fit(X, Y).predict(X))


@pytest.mark.parametrize("name,cls,sets", [
    ("chain", "ClassifierChain", ["inference=\"beam\""]),
    ("powerset", "LabelPowerset", ["min_count=2"]),
    ("rakel", "RAkEL", ["mode=\"overlapping\""]),
    ("mlknn", "MLkNN", ["k=5"]),
    ("forest", "LabelForest", ["n_estimators=10"]),
])
def test_cli_train_tune_evaluate_every_family(name, cls, sets, tmp_path, capsys):
    """`labelwise train --model NAME`, `tune` and `evaluate` for each label-dependence family."""
    import warnings

    from labelwise import Dataset, Pipeline
    from labelwise.cli.main import main
    from labelwise.io import write

    X, Y = small_data(seed=7, n=120, d=12, n_labels=4)
    ds = Dataset(X, Y, [f"topic {j}" for j in range(4)], ids=[f"doc{i}" for i in range(120)])
    train, test = tmp_path / "train.xc", tmp_path / "test.xc"
    write(ds.subset(np.arange(0, 90)), train)
    write(ds.subset(np.arange(90, 120)), test)
    args = ["train", str(train), "--model", name, "--threads", "1", "--seed", "2", "--quiet",
            "--out", str(tmp_path / "m")]
    for s in sets:
        args += ["--set", s]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pruning notes of min_count=2
        assert main(args) == 0
        assert main(["tune", str(tmp_path / "m"), str(train), "--quiet"]) == 0
    pipe = Pipeline.load(tmp_path / "m")
    assert type(pipe.model).__name__ == cls and pipe.is_tuned
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), str(test), "--quiet"]) == 0
    assert "micro_f1" in capsys.readouterr().out


# ---------------------------------------------------------------- labelwise's own grower
def _proxy(Yd, left_rows, right_rows):
    """sum_j cL_j^2 / nL + sum_j cR_j^2 / nR, by plain sums (the Gini proxy)."""
    cl = Yd[left_rows].sum(axis=0).astype(float)
    cr = Yd[right_rows].sum(axis=0).astype(float)
    return float((cl ** 2).sum()) / len(left_rows) + float((cr ** 2).sum()) / len(right_rows)


def _reference_split(codes, node_rows, Yd, feats, max_features, min_leaf, extra, draws):
    """The split search written plainly: the first ``max_features`` features in the given
    order (more while all are constant), constant ones skipped, every boundary (random
    forest) or the drawn one (extra-trees), the first strictly best proxy."""
    best = (-1, -1, -1, -np.inf)
    visited = 0
    for i, f in enumerate(feats):
        if i >= max_features and visited > 0:
            break
        col = codes[f, node_rows].astype(int)
        if col.min() == col.max():
            continue
        visited += 1
        if extra:
            ts = [min(col.min() + int(draws[i] * (col.max() - col.min())), col.max() - 1)]
        else:
            ts = sorted(set(col.tolist()) - {col.max()})
        for t in ts:
            lr, rr = node_rows[col <= t], node_rows[col > t]
            if len(lr) >= min_leaf and len(rr) >= min_leaf:
                p = _proxy(Yd, lr, rr)
                if p > best[3]:  # (feature, largest code left, smallest code right, proxy)
                    best = (int(f), int(col[col <= t].max()), int(col[col > t].min()), p)
    return best


NO_CSC = np.zeros(0, np.int64)  # grow_tree without the rows storing each feature


def _labels_csr(Yd):
    Y = sp.csr_matrix(Yd)
    return np.asarray(Y.indptr, np.int64), np.asarray(Y.indices, np.int64)


@pytest.mark.parametrize("extra", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_split_equals_plain_reference(extra, seed):
    rng = np.random.default_rng(seed)
    n, d, L = 90, 8, 5
    codes = rng.integers(0, 6, size=(d, n)).astype(np.uint8)
    codes[3] = 2  # a constant feature: skipped, not counted
    Yd = (rng.random((n, L)) < 0.35).astype(np.int64)
    yptr, yind = _labels_csr(Yd)
    for trial in range(12):
        size = int(rng.integers(2, n))  # small nodes (insertion sort) and large (counting)
        rows = rng.integers(0, n, size=size).astype(np.int64)  # duplicates: bootstrap rows
        # the grower's form of a bootstrap sample: each distinct row once, weighing its copies
        distinct, copies = np.unique(rows, return_counts=True)
        mult = np.zeros(n, np.int64)
        mult[distinct] = copies
        start = int(rng.integers(0, 3))
        buf = np.concatenate([np.zeros(start, np.int64), rng.permutation(distinct),
                              np.zeros(2, np.int64)])
        feats = rng.permutation(d).astype(np.int64)
        draws = rng.random(d)
        mf, ml = int(rng.integers(1, d + 1)), int(rng.integers(1, 4))
        ctot = Yd[rows].sum(axis=0).astype(np.int64)
        cl = np.zeros(L, np.int64)
        got = best_split(codes, buf, start, start + distinct.size, mult, yptr, yind, ctot,
                         float((ctot.astype(float) ** 2).sum()), feats.copy(), mf, ml,
                         extra, draws, cl, np.zeros(257, np.int64), np.zeros(n, np.int64),
                         np.zeros(n, np.int64), np.zeros(n, np.uint8), np.zeros(n, np.uint8))
        want = _reference_split(codes, rows, Yd, feats, mf, ml, extra, draws)
        assert got[:3] == want[:3], (trial, got, want)
        if want[0] >= 0:
            assert got[3] == pytest.approx(want[3], rel=1e-12)
        assert not cl.any()  # the work buffer comes back zeroed


def test_binning_codes_and_bin_ranges():
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.integers(0, 4, 200), rng.normal(size=200), np.zeros(200),
                         rng.normal(size=200) * (rng.random(200) < 0.3)]).astype(np.float32)
    for Xm in (X, sp.csr_matrix(X)):
        codes, lo, hi = bin_features(Xm, max_bins=16)
        assert codes.shape == (4, 200) and lo.shape == hi.shape == (4, 16)
        assert np.array_equal(lo[0, :4], [0, 1, 2, 3]) and np.array_equal(hi[0, :4], lo[0, :4])
        assert np.all(np.isnan(lo[0, 4:])) and not codes[2].any() and lo[2, 0] == 0
        for f in range(4):
            v = X[:, f].astype(np.float64)
            used = np.unique(codes[f])
            assert np.array_equal(used, np.flatnonzero(~np.isnan(lo[f])))
            for c in used:  # each bin's rows lie in [lo, hi], the bins in value order
                assert v[codes[f] == c].min() == lo[f, c] and v[codes[f] == c].max() == hi[f, c]
            assert np.all(hi[f, used[:-1]] < lo[f, used[1:]])
        assert codes[1].max() == 15 and np.bincount(codes[1]).max() <= 2 * 200 / 16



def _plain_bins(X, max_bins):
    """Column by column with numpy on the dense column (the binning's first version):
    np.unique's distinct values; past max_bins, cuts at the midpoints where the cumulative
    row share crosses k / max_bins."""
    X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float32).astype(np.float64)
    n, d = X.shape
    codes = np.zeros((d, n), dtype=np.uint8)
    lo = np.full((d, max_bins), np.nan)
    hi = np.full((d, max_bins), np.nan)
    for f in range(d):
        values, inverse, counts = np.unique(X[:, f], return_inverse=True, return_counts=True)
        if values.size <= max_bins:
            codes[f] = inverse
            lo[f, :values.size] = hi[f, :values.size] = values
            continue
        mids = values[:-1] / 2.0 + values[1:] / 2.0
        cdf = np.cumsum(counts[:-1]) / n
        pick = np.unique(np.searchsorted(cdf, np.arange(1, max_bins) / max_bins))
        mids = mids[pick[pick < mids.size]]
        codes[f] = np.searchsorted(mids, X[:, f], side="left")
        of_value = np.searchsorted(mids, values, side="left")
        for c in np.unique(of_value):
            lo[f, c], hi[f, c] = values[of_value == c].min(), values[of_value == c].max()
    return codes, lo, hi


@pytest.mark.parametrize("max_bins", [2, 3, 16, 255])
def test_binning_from_stored_values_equals_the_plain_binning(max_bins):
    """The kernel bins each column from its stored values with the absent zeros counted in:
    the same codes and bin ranges as numpy on the dense column, for dense and CSR input,
    negative values (zeros inside the range), stored zeros, duplicate CSR entries (summed),
    a column of zeros only and columns of more distinct values than bins."""
    rng = np.random.default_rng(max_bins)
    for n in (1, 7, 300):
        X = rng.normal(size=(n, 6)).astype(np.float32)
        X[rng.random((n, 6)) < 0.5] = 0
        X[:, 0] = rng.integers(-3, 4, n)
        X[:, 1] = np.round(X[:, 1], 1)
        X[:, 2] = 0
        X[:, 3] = np.abs(X[:, 3])
        X[n - 1, 4:] = 0  # the last row gets a stored 0 and two entries summing to 0 below
        M = sp.csr_matrix(X)
        stored_zero = sp.csr_matrix((np.r_[M.data, 0.0, 0.5, -0.5],
                                     np.r_[M.indices, 4, 5, 5], np.r_[M.indptr[:-1],
                                     M.indptr[-1] + 3]), shape=M.shape)
        want = _plain_bins(X, max_bins)
        for given in (X, M, stored_zero):
            got = bin_features(given, max_bins)
            for g, w in zip(got, want, strict=True):
                assert g.dtype == w.dtype and np.array_equal(g, w, equal_nan=True)
    # enough stored values for the columns to be binned in threads (ranges of columns)
    X = rng.normal(size=(1200, 90)).astype(np.float32)
    X[:, ::7] = np.round(X[:, ::7])
    assert X.size > 2 * 50_000
    want = _plain_bins(X, max_bins)
    for threads in (2, 3):
        got = bin_features(X, max_bins, n_threads=threads)
        assert all(np.array_equal(g, w, equal_nan=True) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("max_bins", [2, 16, 255])
def test_packed_bins_and_zero_codes_equal_the_plain_binning(max_bins):
    """bin_columns (what the forest bins with): the plain binning's codes, its bin ranges
    packed at offsets of min(max_bins, stored + 1) places per feature, and each feature's
    code of 0 where 0 is a value of it; values of every sign and magnitude, -0.0 stored,
    many equal values, columns long enough for the radix sort and short ones for the
    insertion sort."""
    rng = np.random.default_rng(7 + max_bins)
    n = 400
    X = (rng.standard_normal((n, 8)) * 10.0 ** rng.integers(-30, 30, (n, 8))).astype(np.float32)
    X[:, 1] = rng.integers(-2, 3, n)
    X[:, 2] = np.where(rng.random(n) < 0.9, 0, X[:, 2])  # few stored: insertion sort
    X[:, 3] = np.where(rng.random(n) < 0.5, -0.0, np.abs(X[:, 3]))
    X[:, 4] = 1.5
    X[:, 5] = np.where(rng.random(n) < 0.2, 0, -np.abs(X[:, 5]))
    X[:, 6] = 0
    M = sp.csr_matrix(X)
    M.data[M.indices == 3] = np.where(M.data[M.indices == 3] == 0, -0.0, M.data[M.indices == 3])
    want_codes, want_lo, want_hi = _plain_bins(X, max_bins)
    for given in (X, M):
        codes, lo, hi, offsets, zero_code = bin_columns(given, max_bins)
        assert np.array_equal(codes, want_codes)
        stored = np.diff(sp.csc_matrix(given).indptr)
        assert np.array_equal(np.diff(offsets), np.minimum(stored + 1, max_bins))
        for f in range(X.shape[1]):
            k = offsets[f + 1] - offsets[f]
            assert np.array_equal(lo[offsets[f]:offsets[f + 1]], want_lo[f, :k], equal_nan=True)
            assert np.array_equal(hi[offsets[f]:offsets[f + 1]], want_hi[f, :k], equal_nan=True)
            assert np.all(np.isnan(want_lo[f, k:]))
            if np.any(X[:, f] == 0):
                assert zero_code[f] == want_codes[f, np.flatnonzero(X[:, f] == 0)[0]]
            else:
                assert zero_code[f] == 0


def _dense_leaves(ptr, labels, values, n_labels):
    """The (n_leaves, n_labels) rates of a grown tree's sparse leaves, one entry at a time;
    each leaf's labels ascending and non-zero."""
    P = np.zeros((ptr.size - 1, n_labels))
    for leaf in range(ptr.size - 1):
        seen = labels[ptr[leaf]:ptr[leaf + 1]]
        assert np.all(np.diff(seen) > 0)
        for q in range(ptr[leaf], ptr[leaf + 1]):
            assert values[q] != 0.0
            P[leaf, labels[q]] = values[q]
    return P


def _route(tree, codes):
    left, right, feature, below = tree[:4]
    nodes = []
    for r in range(codes.shape[1]):
        path, node = [], 0
        while left[node] >= 0:
            path.append(node)
            node = left[node] if codes[feature[node], r] <= below[node] else right[node]
        nodes.append((path, node))
    return nodes


@pytest.mark.parametrize("extra", [False, True])
def test_grown_tree_against_reference(extra):
    """All features tried, no bootstrap: every split of a random-forest tree is the best one
    over every feature and boundary for its node's rows (plain search); extra-trees splits
    lie between the node's codes; every leaf holds its rows' label rates and is pure, too
    small or unsplittable; children are numbered after their parent."""
    X, Y = small_data(seed=11, n=150, d=9, n_labels=4)
    codes, _, _ = bin_features(X, max_bins=8)
    Yd = Y.toarray().astype(np.int64)
    yptr, yind = _labels_csr(Yd)
    ml = 2
    tree = grow_tree(codes, yptr, yind, 4, 7, False, 9, -1, ml, extra, NO_CSC, NO_CSC)
    left, right, feature, below, above, leaf_of, *leaves = tree
    leaf_p = _dense_leaves(*leaves, 4)
    split = left >= 0
    assert np.all(left[split] > np.flatnonzero(split)) and np.all(right[split] > left[split])
    routes = _route(tree, codes)
    rows_at = {}
    for r, (path, leaf) in enumerate(routes):
        for node in [*path, leaf]:
            rows_at.setdefault(node, []).append(r)
    assert set(rows_at) == set(range(left.size))  # every node is reached by training rows
    for node, rows in rows_at.items():
        rows = np.asarray(rows)
        if left[node] < 0:
            assert np.allclose(leaf_p[leaf_of[node]], Yd[rows].mean(axis=0))
            pure = np.all((Yd[rows].sum(axis=0) == 0) | (Yd[rows].sum(axis=0) == len(rows)))
            if not pure and len(rows) >= 2 * ml and not extra:
                assert _reference_split(codes, rows, Yd, range(9), 9, ml, False, None)[0] < 0
            continue
        f, t = feature[node], below[node]
        col = codes[f, rows].astype(int)
        assert col.min() <= t < col.max()  # c and c' are the node's codes either side
        assert t == col[col <= t].max() and above[node] == col[col > t].min()
        assert min((col <= t).sum(), (col > t).sum()) >= ml
        if not extra:
            got = _proxy(Yd, rows[col <= t], rows[col > t])
            want = _reference_split(codes, rows, Yd, range(9), 9, ml, False, None)[3]
            assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("extra", [False, True])
def test_drawn_candidates_never_leave_a_splittable_leaf(extra):
    """Growing draws few candidates (max_features 2 of 30) and skips features known to be
    constant from an ancestor: on sparse binary features (mostly constant in deep nodes) a
    leaf must still be pure or have every feature constant over its rows, and every split
    must be on a feature that varies in its node. With the rows storing each feature (CSC,
    one stored zero among them), which skips a feature no row of a node stores and splits a
    two-code feature from its stored rows alone, the trees are the same, with and without
    bootstrap (copies of a row share a node and count as copies)."""
    rng = np.random.default_rng(5)
    n, d, L = 160, 30, 4
    X = (rng.random((n, d)) < 0.08).astype(np.float32)
    Yd = (rng.random((n, L)) < 0.3).astype(np.int64)
    yptr, yind = _labels_csr(Yd)
    Xc = sp.csc_matrix(X)
    Xc.data[Xc.indptr[3]] = 0.0  # stored, but 0: read through its codes like any other
    assert X[Xc.indices[Xc.indptr[3]], 3] == 1.0
    X[Xc.indices[Xc.indptr[3]], 3] = 0.0
    codes, lo, hi = bin_features(X)
    fptr, frow = Xc.indptr.astype(np.int64), Xc.indices.astype(np.int64)
    fzero = np.argmax((lo <= 0) & (hi >= 0), axis=1)  # as LabelForest finds the codes of 0
    for seed in range(3):
        tree = grow_tree(codes, yptr, yind, L, seed, False, 2, -1, 1, extra, NO_CSC, NO_CSC)
        for bootstrap in (False, True):
            plain = grow_tree(codes, yptr, yind, L, seed, bootstrap, 2, -1, 1, extra, NO_CSC,
                              NO_CSC)
            for zeros in (None, fzero):
                skipping = grow_tree(codes, yptr, yind, L, seed, bootstrap, 2, -1, 1, extra,
                                     fptr, frow, zeros)
                assert all(np.array_equal(u, v) for u, v in zip(plain, skipping, strict=True))
        left, right, feature, below, above, leaf_of, *leaves = tree
        leaf_p = _dense_leaves(*leaves, L)
        rows_at = {}
        for r, (path, leaf) in enumerate(_route(tree, codes)):
            for node in [*path, leaf]:
                rows_at.setdefault(node, []).append(r)
        for node, rows in rows_at.items():
            block = codes[:, rows]
            if left[node] < 0:
                pure = np.all(Yd[rows].min(axis=0) == Yd[rows].max(axis=0))
                assert pure or np.all(block.min(axis=1) == block.max(axis=1)), node
                assert np.allclose(leaf_p[leaf_of[node]], Yd[rows].mean(axis=0))
            else:
                col = block[feature[node]]
                assert col.min() <= below[node] < col.max()


def test_labelwise_forest_seed_threads_depth_and_traversal():
    X, Y = small_data(seed=4, n=140, d=12, n_labels=5)
    a = LabelForest(n_estimators=6, random_state=3, n_threads=1).fit(X, Y)
    b = LabelForest(n_estimators=6, random_state=3, n_threads=2).fit(X, Y)
    for k in a._ARRAYS:  # the thread count never changes the forest
        assert np.array_equal(getattr(a, k + "_"), getattr(b, k + "_"))
    c = LabelForest(n_estimators=6, random_state=4, n_threads=2).fit(X, Y)
    assert not np.array_equal(a.probabilities(X), c.probabilities(X))
    # walked on raw values (thresholds between the bins' values), the flat arrays send every
    # training row to the leaf the grower put it in (by codes): one full tree gives each
    # row its own labels back (no two rows of small_data share their features)
    flat = LabelForest(n_estimators=1, max_features=None, bootstrap=False, n_threads=1)
    assert np.array_equal(flat.fit(X, Y).probabilities(X), Y.toarray())
    assert np.array_equal(flat.probabilities(X.toarray()), Y.toarray())
    shallow = LabelForest(n_estimators=3, max_depth=2, min_samples_leaf=5, n_threads=1,
                          kind="extra").fit(X, Y)
    for r in range(shallow.roots_.size):
        start = shallow.roots_[r]
        end = shallow.roots_[r + 1] if r + 1 < shallow.roots_.size else shallow.left_.size
        assert end - start <= 7  # depth 2: at most 3 splits and 4 leaves


def test_tree_generator_equals_plain_xorshift64star():
    """The grower's generator: splitmix64 of the seed, then xorshift64* (Vigna 2016),
    written here with Python integers; its uniforms are the top 53 bits."""
    from labelwise.models._forest_grow import _below, _next_u64, _seed_state, _uniform

    mask = 2**64 - 1
    for seed in (0, 1, 12345, 2**31 - 2):
        z = (seed + 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        x = z ^ (z >> 31)
        state = _seed_state(seed)
        assert int(state[0]) == x
        for _ in range(5):
            x ^= x >> 12
            x ^= (x << 25) & mask
            x ^= x >> 27
            want = (x * 0x2545F4914F6CDD1D) & mask
            assert int(_next_u64(state)) == want and int(state[0]) == x
        x_before = int(state[0])
        u = _uniform(state)
        x = x_before
        x ^= x >> 12
        x ^= (x << 25) & mask
        x ^= x >> 27
        assert u == (((x * 0x2545F4914F6CDD1D) & mask) >> 11) / 2.0**53
    state = _seed_state(7)
    draws = np.array([_below(state, 6) for _ in range(6000)])
    assert draws.min() == 0 and draws.max() == 5
    assert np.all(np.abs(np.bincount(draws) - 1000) < 150)  # about uniform


@pytest.mark.parametrize("extra", [False, True])
def test_grown_forest_equals_trees_grown_one_by_one(extra):
    """grow_forest reuses one workspace per thread: every tree equals the tree grown alone
    from its seed, with one thread or two, with and without the rows storing each feature."""
    from labelwise.models._forest_grow import grow_forest

    rng = np.random.default_rng(3)
    n, d, L = 200, 40, 4
    X = (rng.random((n, d)) < 0.1).astype(np.float32) * rng.integers(1, 4, (n, d))
    Yd = (rng.random((n, L)) < 0.3).astype(np.int64)
    yptr, yind = _labels_csr(Yd)
    codes, lo, hi = bin_features(X)
    Xc = sp.csc_matrix(X)
    csc = (Xc.indptr.astype(np.int64), Xc.indices.astype(np.int64))
    seeds = [5, 0, 9, 3, 11, 2, 7, 1]
    for fptr, frow in ((NO_CSC, NO_CSC), csc):
        alone = [grow_tree(codes, yptr, yind, L, s, not extra, 4, -1, 1, extra, fptr, frow)
                 for s in seeds]
        for threads in (1, 2):
            grown = grow_forest(codes, yptr, yind, L, seeds, not extra, 4, -1, 1, extra, fptr,
                                frow, n_threads=threads)
            for (nodes, *leaves), want in zip(grown, alone, strict=True):
                assert all(np.array_equal(u, v)
                           for u, v in zip((*nodes, *leaves), want, strict=True))


def test_importing_the_models_and_fitting_a_forest_leave_scipy_linalg_unloaded():
    """``import labelwise.models`` and a forest fit (in a fresh process) do not import
    scipy.linalg: loading it loads scipy's OpenBLAS, whose threads spin about 0.1 s after
    loading, on the cores the forest's threads then grow trees on."""
    import json
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    import labelwise

    probe = textwrap.dedent("""
        import json, sys
        import numpy as np
        import labelwise.models as models
        from labelwise import Pipeline
        after_import = "scipy.linalg" in sys.modules
        rng = np.random.default_rng(0)
        X = rng.standard_normal((80, 6)).astype(np.float32)
        Y = (X[:, :3] > 0).astype(np.float32)
        Pipeline(model=models.LabelForest(n_estimators=3, n_threads=2)).fit(X, Y)
        print(json.dumps([after_import, "scipy.linalg" in sys.modules]))
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(labelwise.__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == [False, False]
