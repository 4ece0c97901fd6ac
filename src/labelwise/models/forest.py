"""``LabelForest``: random forests and extra-trees over the whole label vector.

Each tree is grown once for all labels (multi-output trees, as in random forests of
predictive clustering trees, the strongest family of Bogatinovski et al. 2022): a split is
chosen by the Gini impurity summed over the labels, and a leaf holds every label's positive
rate. Trees are grown by labelwise's own numba grower (``grower="labelwise"``, the
default: :mod:`labelwise.models._forest_grow`; each feature binned into at most
``max_bins`` codes, trees grown in parallel threads) or by scikit-learn's
``RandomForestClassifier`` (``kind="random"``) / ``ExtraTreesClassifier`` (``kind="extra"``)
(``grower="sklearn"``). The two growers draw different random trees from the same seed;
labelwise's extra-trees draw a node's threshold among the bin boundaries between its
smallest and largest code (scikit-learn: uniformly in value between its smallest and
largest value).

After fitting, the trees are turned into flat arrays (child links, split feature and
threshold, and each leaf's non-zero label probabilities: ``leaf_ptr``, ``leaf_label``,
``leaf_value``, as CSR rows; a leaf of a tree grown until pure holds its few labels, and
the dense (leaves, labels) rates took 39 MB on Enron's extra-trees), which is what the
model keeps, saves and predicts with: a numba kernel walks every tree for each row of the CSR features
(threads over rows) and averages the leaves' probabilities, which equals scikit-learn's
``predict_proba`` for scikit-learn-grown trees (checked in the tests). No scikit-learn object and no pickle is stored.

Scores are probabilities (``predict`` thresholds at 0.5). Options mirror scikit-learn's:
``n_estimators``, ``max_features``, ``max_depth``, ``min_samples_leaf``, ``bootstrap``
(None: True for random forests, False for extra-trees), ``n_threads`` (tree growing and
prediction), ``random_state``; ``grower`` and ``max_bins`` (labelwise's grower only).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._numba import njit
from ..errors import DataFormatError, ResourceLimitError
from ._forest_grow import bin_columns, grow_forest
from .base import MultiLabelModel
from .chains import check_positive_int, check_seed, check_threads, fresh_seed
from .topk import map_ranges, resolve_n_threads, topk_dense

__all__ = ["LabelForest", "flatten_forest", "sparse_leaves"]

KINDS = ("random", "extra")
GROWERS = ("labelwise", "sklearn")
#: largest binned feature matrix (rows x features bytes) labelwise's grower builds
MAX_BINNED_BYTES = 2**31
_ROW_BLOCK = 4096
#: the grower tracks which rows store each feature when X stores less than this share
SPARSE_FRACTION = 0.25


@njit(nogil=True, cache=True, _nrt=False)
def _forest_kernel(indptr, indices, data, roots, left, right, feature, threshold, leaf_of,
                   leaf_ptr, leaf_label, leaf_value, row_start, row_end, out):
    """out[i] = mean over trees of the leaf probabilities reached by row i (rows
    row_start..row_end of a CSR matrix with sorted indices; absent features are 0; ``out``
    zero on entry). A leaf's non-zero rates are added tree by tree: a label's sum is the
    one over every tree's rate, zeros included, since adding 0 changes no sum."""
    n_trees = roots.size
    L = out.shape[1]
    for i in range(row_start, row_end):
        a = indptr[i]
        b = indptr[i + 1]
        for t in range(n_trees):
            node = roots[t]
            while left[node] >= 0:
                f = feature[node]
                lo = a
                hi = b
                while lo < hi:
                    mid = (lo + hi) // 2
                    if indices[mid] < f:
                        lo = mid + 1
                    else:
                        hi = mid
                v = 0.0
                if lo < b and indices[lo] == f:
                    v = data[lo]
                if v <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            leaf = leaf_of[node]
            for q in range(leaf_ptr[leaf], leaf_ptr[leaf + 1]):
                out[i, leaf_label[q]] += leaf_value[q]
        for j in range(L):
            out[i, j] /= n_trees


def flatten_forest(estimators: list[Any], classes: list[np.ndarray], n_labels: int
                   ) -> dict[str, np.ndarray]:
    """The arrays of fitted scikit-learn trees: roots (T,), left/right (global node ids, -1
    at leaves), feature, threshold, leaf_of (node -> leaf row, -1 for split nodes) and the
    leaves' probabilities of label 1 (0 for a label with no positive training row), the
    non-zero ones as :func:`sparse_leaves` lists them."""
    roots, left, right, feature, threshold, leaf_of, leaf_p = [], [], [], [], [], [], []
    offset = n_leaves = 0
    one = [list(c).index(1) if 1 in list(c) else -1 for c in classes]
    for est in estimators:
        tr = est.tree_
        cl, cr = tr.children_left.astype(np.int64), tr.children_right.astype(np.int64)
        is_leaf = cl < 0
        roots.append(offset)
        left.append(np.where(is_leaf, -1, cl + offset))
        right.append(np.where(is_leaf, -1, cr + offset))
        feature.append(np.where(is_leaf, 0, tr.feature).astype(np.int64))
        threshold.append(np.asarray(tr.threshold, dtype=np.float64))
        ids = np.full(cl.size, -1, dtype=np.int64)
        ids[is_leaf] = n_leaves + np.arange(int(is_leaf.sum()))
        leaf_of.append(ids)
        value = np.asarray(tr.value[is_leaf], dtype=np.float64)  # (leaves, L, n_classes)
        P = np.zeros((value.shape[0], n_labels))
        for j in range(n_labels):
            if one[j] >= 0:
                tot = value[:, j, :].sum(axis=1)
                P[:, j] = value[:, j, one[j]] / tot
        leaf_p.append(P)
        offset += cl.size
        n_leaves += P.shape[0]
    return {"roots": np.asarray(roots, np.int64), "left": np.concatenate(left),
            "right": np.concatenate(right), "feature": np.concatenate(feature),
            "threshold": np.concatenate(threshold), "leaf_of": np.concatenate(leaf_of),
            **sparse_leaves(np.vstack(leaf_p))}


def sparse_leaves(P: np.ndarray) -> dict[str, np.ndarray]:
    """The non-zero entries of leaf probabilities ``P`` (n_leaves, n_labels), leaf by leaf
    with labels ascending: ``leaf_ptr`` (n_leaves + 1,), ``leaf_label`` int64 and
    ``leaf_value`` float64 (leaf ``l``'s at ``leaf_ptr[l]:leaf_ptr[l + 1]``)."""
    rows, labels = np.nonzero(P)
    ptr = np.zeros(P.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=P.shape[0]), out=ptr[1:])
    return {"leaf_ptr": ptr, "leaf_label": labels.astype(np.int64),
            "leaf_value": np.asarray(P[rows, labels], np.float64)}


class LabelForest(MultiLabelModel):
    """Multi-output random forest or extra-trees (see the module docstring).

    Parameters
    ----------
    kind: "random" (RandomForestClassifier) or "extra" (ExtraTreesClassifier).
    n_estimators: trees (>= 1).
    max_features: features tried per split: "sqrt", "log2", an int, a float fraction or None
        (all).
    max_depth: None (grow until pure or min_samples_leaf) or a positive int.
    min_samples_leaf: rows per leaf (>= 1).
    bootstrap: sample rows with replacement per tree; None = True for "random", False for
        "extra".
    n_threads: threads for growing (scikit-learn's n_jobs) and prediction (None = all CPUs).
    random_state: seed of the trees.
    grower: "labelwise" (numba, binned features) or "sklearn" (scikit-learn's trees).
    max_bins: codes per feature for labelwise's grower (2..256): a feature with more
        distinct values is cut at quantiles.
    """

    #: the arrays it saves: name -> (dtypes, ndim), checked at load (labelwise.models.persist)
    _saved_arrays = {
        "roots": (('<i8',), 1),
        "left": (('<i8',), 1),
        "right": (('<i8',), 1),
        "feature": (('<i8',), 1),
        "threshold": (('<f8',), 1),
        "leaf_of": (('<i8',), 1),
        "leaf_ptr": (('<i8',), 1),
        "leaf_label": (('<i8',), 1),
        "leaf_value": (('<f8',), 1),
        # the dense (n_leaves, n_labels) rates of models saved before the sparse leaves:
        # read, and turned into leaf_ptr / leaf_label / leaf_value
        "leaf_p": (('<f8',), 2),
    }

    _persist_name = "LabelForest"
    default_threshold = 0.5
    #: a tree splits on the order of a column's values: scaling a column changes nothing
    scale_invariant = True

    def __init__(self, *, kind: str = "random", n_estimators: int = 100,
                 max_features: str | int | float | None = "sqrt", max_depth: int | None = None,
                 min_samples_leaf: int = 1, bootstrap: bool | None = None,
                 n_threads: int | None = None, random_state: int | None = 0,
                 grower: str = "labelwise", max_bins: int = 255) -> None:
        self.kind = kind
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.bootstrap = bootstrap
        self.n_threads = n_threads
        self.random_state = random_state
        self.grower = grower
        self.max_bins = max_bins

    def _validate_params(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        check_positive_int(self, "n_estimators")
        check_positive_int(self, "min_samples_leaf")
        if self.max_depth is not None:
            check_positive_int(self, "max_depth")
        mf = self.max_features
        ok = mf is None or mf in ("sqrt", "log2") or (
            isinstance(mf, int) and not isinstance(mf, bool) and mf >= 1) or (
            isinstance(mf, float) and 0.0 < mf <= 1.0)
        if not ok:
            raise ValueError(f"max_features must be 'sqrt', 'log2', None, a positive int or a "
                             f"fraction in (0, 1], got {mf!r}")
        if self.bootstrap is not None and not isinstance(self.bootstrap, bool):
            raise ValueError(f"bootstrap must be None, True or False, got {self.bootstrap!r}")
        check_threads(self.n_threads)
        check_seed(self.random_state)
        if self.grower not in GROWERS:
            raise ValueError(f"grower must be one of {GROWERS}, got {self.grower!r}")
        mb = self.max_bins
        if isinstance(mb, bool) or not isinstance(mb, int | np.integer) or not 2 <= mb <= 256:
            raise ValueError(f"max_bins must be an int in [2, 256], got {mb!r}")

    def sklearn_estimator(self):
        """The unfitted scikit-learn forest these parameters describe."""
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        cls = RandomForestClassifier if self.kind == "random" else ExtraTreesClassifier
        bootstrap = (self.kind == "random") if self.bootstrap is None else self.bootstrap
        return cls(n_estimators=self.n_estimators, max_features=self.max_features,
                   max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
                   bootstrap=bootstrap, n_jobs=resolve_n_threads(self.n_threads),
                   random_state=fresh_seed(self.random_state) % 2**31)

    def _n_features_per_split(self, d: int) -> int:
        mf = self.max_features
        if mf is None:
            return d
        if mf == "sqrt":
            return max(1, int(np.sqrt(d)))
        if mf == "log2":
            return max(1, int(np.log2(d)))
        if isinstance(mf, float):
            return max(1, int(mf * d))
        return min(int(mf), d)

    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        if self.grower == "labelwise":
            self._fit_labelwise(X, Y)
        else:
            self._fit_sklearn(X, Y)

    def _fit_labelwise(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        n, d = X.shape
        if n * d > MAX_BINNED_BYTES:
            raise ResourceLimitError(
                f"LabelForest(grower='labelwise') bins {n} rows x {d} features into "
                f"{n * d / 2**30:.1f} GiB (limit {MAX_BINNED_BYTES / 2**30:.0f} GiB); use "
                "grower='sklearn' or fewer features")
        # sparse X: the rows storing each feature let the grower skip the features that no
        # row of a node stores (constant there) without reading their codes; the binning
        # reads the same CSC (one conversion)
        fptr = frow = np.zeros(0, np.int64)
        if sp.issparse(X) and X.nnz < SPARSE_FRACTION * n * d:
            Xc = sp.csc_matrix(X, dtype=np.float32)
            if not Xc.has_canonical_format:  # a copy: never in place on the caller's arrays
                Xc = Xc.copy()
                Xc.sum_duplicates()
            X = Xc
            fptr, frow = np.asarray(X.indptr, np.int64), np.asarray(X.indices, np.int64)
        codes, lo, hi, offsets, zero_code = bin_columns(X, int(self.max_bins),
                                                        resolve_n_threads(self.n_threads))
        # the rows' labels: Y's own arrays when it stores its positives only (as the fit's
        # label matrix does), else those of Y > 0
        Yb = Y if Y.has_canonical_format and bool(np.all(Y.data > 0)) else sp.csr_matrix(Y > 0)
        yptr = np.asarray(Yb.indptr, np.int64)
        yind = np.asarray(Yb.indices, np.int64)
        L = Y.shape[1]
        bootstrap = (self.kind == "random") if self.bootstrap is None else self.bootstrap
        seeds = np.random.default_rng(fresh_seed(self.random_state)).integers(
            0, 2**31 - 1, size=self.n_estimators)
        mf = self._n_features_per_split(d)
        depth = -1 if self.max_depth is None else int(self.max_depth)
        trees = grow_forest(codes, yptr, yind, L, seeds, bootstrap, mf, depth,
                            int(self.min_samples_leaf), self.kind == "extra", fptr, frow,
                            zero_code, n_threads=resolve_n_threads(self.n_threads))
        # the trees' nodes joined in one block (rows: left, right, feature, c, c', leaf_of),
        # their tree-local node and leaf numbers made global in place: the grower leaves -1
        # in left/right at leaves and in leaf_of at split nodes, 0 in feature, c and c' at
        # leaves. Rows c and c' give the thresholds and then serve as scratch, so the join
        # makes no array the size of the forest but the threshold (every fresh page costs
        # ~1.6 us on this virtual machine: numpy's temporaries were 3-4 ms of a 20 ms fit;
        # the four kept rows are views of the block, whose two scratch rows stay in memory
        # with the fitted model, a third more for these arrays)
        left, right, feature, below, above, leaf_of = np.concatenate(
            [t[0] for t in trees], axis=1)
        # the leaves' non-zero rates joined, each tree's leaf_ptr moved past the earlier ones'
        rates = np.array([0] + [t[2].size for t in trees], dtype=np.int64).cumsum()
        leaf_ptr = np.concatenate([[0]] + [t[1][1:] + r for t, r in zip(trees, rates[:-1])])
        leaf_label = np.concatenate([t[2] for t in trees])
        leaf_value = np.concatenate([t[3] for t in trees])
        sizes = np.array([t[0].shape[1] for t in trees], dtype=np.int64)
        n_leaves = np.array([t[1].size - 1 for t in trees], dtype=np.int64)
        del trees
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        split = left >= 0
        # halfway between the largest value going left and the smallest going right
        threshold = np.empty(left.shape[0])
        at = threshold.view(np.int64)  # each node's feature's first bin, then overwritten
        np.take(offsets, feature, out=at, mode="clip")  # (clip: unbuffered; all in range)
        np.add(below, at, out=below)
        np.add(above, at, out=above)
        np.take(hi, below, out=threshold, mode="clip")
        threshold /= 2
        half = below.view(np.float64)
        np.take(lo, above, out=half, mode="clip")
        half /= 2
        threshold += half
        threshold[~split] = -2.0
        # each node's tree's first node and first leaf: the trees' sizes placed at their
        # roots and summed along the nodes
        for off, counts, rows, where in ((below, sizes, (left, right), split),
                                         (above, n_leaves, (leaf_of,), ~split)):
            off[:] = 0
            off[roots[1:]] = counts[:-1]
            np.cumsum(off, out=off)
            for row in rows:
                np.add(row, off, out=row, where=where)
        self._set_arrays({"roots": roots, "left": left, "right": right, "feature": feature,
                          "threshold": threshold, "leaf_of": leaf_of, "leaf_ptr": leaf_ptr,
                          "leaf_label": leaf_label, "leaf_value": leaf_value})

    def _fit_sklearn(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        L = Y.shape[1]
        Yd = (Y.toarray() > 0).astype(np.int64)
        est = self.sklearn_estimator()
        with warnings.catch_warnings():
            # a label column with one class is fine here (its probability is 0 or 1)
            warnings.simplefilter("ignore", UserWarning)
            est.fit(X, Yd[:, 0] if L == 1 else Yd)
        classes = [est.classes_] if L == 1 else list(est.classes_)
        self._set_arrays(flatten_forest(est.estimators_, classes, L))

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.roots_ = arrays["roots"]
        self.left_ = arrays["left"]
        self.right_ = arrays["right"]
        self.feature_ = arrays["feature"]
        self.threshold_ = arrays["threshold"]
        self.leaf_of_ = arrays["leaf_of"]
        self.leaf_ptr_ = arrays["leaf_ptr"]
        self.leaf_label_ = arrays["leaf_label"]
        self.leaf_value_ = arrays["leaf_value"]

    def probabilities(self, X: Any) -> np.ndarray:
        """Every label's probability: dense float64 (n_samples, n_labels)."""
        from .base import as_feature_matrix

        self._check_fitted()
        return self._proba(as_feature_matrix(X, n_features=self.n_features_in_))

    def _proba(self, X: sp.csr_matrix) -> np.ndarray:
        n, L = X.shape[0], len(self.labels_)
        out = np.zeros((n, L))
        threads = resolve_n_threads(self.n_threads)
        bounds = np.linspace(0, n, min(threads * 4, max(n, 1)) + 1).astype(np.int64)
        ind = np.asarray(X.indices, dtype=np.int64)
        args = (np.asarray(X.indptr, np.int64), ind, np.asarray(X.data, np.float32),
                self.roots_, self.left_, self.right_, self.feature_, self.threshold_,
                self.leaf_of_, self.leaf_ptr_, self.leaf_label_, self.leaf_value_)
        map_ranges(lambda a, b: _forest_kernel(*args, a, b, out), bounds, threads)
        return out

    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        parts = [topk_dense(self._proba(X[a:a + _ROW_BLOCK]).astype(np.float32), k)
                 for a in range(0, X.shape[0], _ROW_BLOCK)]
        return sp.csr_matrix(sp.vstack(parts, format="csr"))

    def _to_probability(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    _ARRAYS = ("roots", "left", "right", "feature", "threshold", "leaf_of", "leaf_ptr",
               "leaf_label", "leaf_value")

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {k: np.asarray(getattr(self, k + "_")) for k in self._ARRAYS}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        arrays = dict(arrays)
        L, d = len(self.labels_), int(self.n_features_in_)
        legacy = arrays.pop("leaf_p", None)
        if legacy is not None:  # saved before the sparse leaves
            if "leaf_ptr" in arrays:
                raise DataFormatError("LabelForest model holds both leaf_p and leaf_ptr",
                                      field="leaf_p")
            legacy = np.asarray(legacy)
            if legacy.ndim != 2 or legacy.shape[1] != L or legacy.dtype != np.float64:
                raise DataFormatError(f"LabelForest leaf_p is not float64 (n_leaves, {L})",
                                      field="leaf_p")
            arrays.update(sparse_leaves(legacy))
        missing = [k for k in self._ARRAYS if k not in arrays]
        if missing:
            raise DataFormatError(f"LabelForest model lacks arrays: {', '.join(missing)}")
        a = {k: np.asarray(arrays[k]) for k in self._ARRAYS}
        m = a["left"].shape[0] if a["left"].ndim == 1 else -1
        ints = all(a[k].dtype == np.int64 for k in ("roots", "left", "right", "feature",
                                                     "leaf_of", "leaf_ptr", "leaf_label"))
        ptr = a["leaf_ptr"]
        n_leaves = ptr.shape[0] - 1 if ptr.ndim == 1 else -1
        n_rates = a["leaf_label"].shape[0] if a["leaf_label"].ndim == 1 else -1
        ok = (ints and m > 0 and all(a[k].shape == (m,) for k in
                                     ("right", "feature", "threshold", "leaf_of"))
              and a["roots"].ndim == 1 and a["roots"].size >= 1
              and n_leaves >= 0 and n_rates >= 0 and a["leaf_value"].shape == (n_rates,)
              and a["threshold"].dtype == np.float64 and a["leaf_value"].dtype == np.float64)
        if ok:  # each leaf's rates a range of the lists, its labels ascending and < L
            ok = (ptr[0] == 0 and ptr[-1] == n_rates and bool(np.all(np.diff(ptr) >= 0))
                  and bool(np.all((a["leaf_label"] >= 0) & (a["leaf_label"] < L))))
            if ok and n_rates > 1:
                step = np.diff(a["leaf_label"])
                starts = np.zeros(n_rates, bool)
                starts[ptr[1:-1][ptr[1:-1] < n_rates]] = True
                ok = bool(np.all((step > 0) | starts[1:]))
        if ok:
            split = a["left"] >= 0
            # split nodes point forward to nodes of the file, leaves to leaf rows: every walk
            # ends (children have larger ids) and never reads outside the arrays
            idx = np.flatnonzero(split)
            ok = (bool(np.all((a["roots"] >= 0) & (a["roots"] < m)))
                  and bool(np.all(a["right"][~split] < 0))
                  and bool(np.all((a["left"][split] > idx) & (a["left"][split] < m)))
                  and bool(np.all((a["right"][split] > idx) & (a["right"][split] < m)))
                  and bool(np.all((a["feature"][split] >= 0) & (a["feature"][split] < d)))
                  and bool(np.all((a["leaf_of"][~split] >= 0)
                                  & (a["leaf_of"][~split] < n_leaves))))
        if not ok:
            raise DataFormatError(f"LabelForest arrays do not form trees over {d} features x "
                                  f"{L} labels", field="arrays")
        self._set_arrays(a)
