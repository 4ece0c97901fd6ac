"""The shared conformance suite every labelwise model family must pass.

Each ``check_*`` function takes ``make_model`` (a zero-argument factory returning a fresh,
unfitted model; give it a fixed ``random_state``) and ``tmp_path`` (a scratch folder), builds
its own small data, and fails with an AssertionError naming what broke. ``CHECKS`` lists
them all; a family's test module runs them with::

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_conformance(check, tmp_path):
        check(make_my_model, tmp_path)
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

from labelwise import Dataset, LabelSpace, NotFittedError


def small_data(seed: int = 0, n: int = 80, d: int = 15, n_labels: int = 6):
    """Learnable sparse multi-label data: X CSR float32 (n, d), Y CSR 0/1 (n, n_labels),
    every label with positives and negatives."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.5)
    W = rng.normal(size=(d, n_labels))
    M = X @ W
    Y = (M > np.quantile(M, 0.7, axis=0)).astype(np.float32)
    Y[0, :] = 1.0
    Y[1, :] = 0.0
    return sp.csr_matrix(X.astype(np.float32)), sp.csr_matrix(Y)


def _same(A: sp.csr_matrix, B: sp.csr_matrix, what: str) -> None:
    assert A.shape == B.shape, f"{what}: shapes {A.shape} != {B.shape}"
    assert np.array_equal(A.indptr, B.indptr), f"{what}: different entries per row"
    assert np.array_equal(A.indices, B.indices), f"{what}: different labels"
    assert np.array_equal(A.data, B.data), f"{what}: different scores"


def check_unfitted_raises(make_model, tmp_path) -> None:
    X, _ = small_data()
    model = make_model()
    for call in (lambda: model.decision_function(X), lambda: model.predict(X),
                 lambda: model.predict_proba(X), lambda: model.save(tmp_path / "m")):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    assert not (tmp_path / "m").exists()


def check_topk_format(make_model, tmp_path) -> None:
    X, Y = small_data()
    model = make_model().fit(X, Y)
    n, L = Y.shape
    for k in (1, 3, L, L + 5):
        S = model.decision_function(X, k=k)
        assert isinstance(S, sp.csr_matrix) and S.shape == (n, L)
        assert np.array_equal(np.diff(S.indptr), np.full(n, min(k, L))), f"k={k}: not k per row"
        assert S.has_sorted_indices and all(
            np.all(np.diff(S.indices[S.indptr[i]:S.indptr[i + 1]]) > 0) for i in range(n))
        assert S.indices.dtype.itemsize >= 4
        P = model.predict_proba(X, k=k)
        assert np.array_equal(P.indices, S.indices)
        assert np.all((P.data >= 0) & (P.data <= 1))
    # the top k are the k best of all scores
    full = model.decision_function(X, k=L).toarray()
    top = model.decision_function(X, k=2)
    for i in range(n):
        kept = top.indices[top.indptr[i]:top.indptr[i + 1]]
        worst_kept = full[i, kept].min()
        others = np.delete(full[i], kept)
        assert np.all(others <= worst_kept)
    # predict: default threshold, k, and both
    P = model.predict(X)
    assert P.shape == (n, L) and np.all(P.data == 1)
    expect = full > model.default_threshold
    assert np.array_equal(P.toarray() == 1, expect)
    Pk = model.predict(X, k=2)
    assert np.array_equal(Pk.indices, top.indices) and np.all(Pk.data == 1)
    for thr in (model.default_threshold, float(np.median(full))):
        Pkt = model.predict(X, k=2, threshold=thr)
        expect = np.zeros((n, L), dtype=bool)
        rows = np.repeat(np.arange(n), np.diff(top.indptr))
        keep = top.data > thr
        expect[rows[keep], top.indices[keep]] = True
        assert np.array_equal(Pkt.toarray() == 1, expect), f"predict(k=2, threshold={thr})"


def check_fit_idempotent(make_model, tmp_path) -> None:
    X, Y = small_data()
    X2, Y2 = small_data(seed=5)
    model = make_model().fit(X, Y)
    first = model.decision_function(X, k=3)
    model.fit(X, Y)
    _same(first, model.decision_function(X, k=3), "fit twice")
    model.fit(X2, Y2).fit(X, Y)
    _same(first, model.decision_function(X, k=3), "fit on other data, then again")


def check_row_order(make_model, tmp_path) -> None:
    X, Y = small_data()
    model = make_model().fit(X, Y)
    perm = np.random.default_rng(1).permutation(X.shape[0])
    _same(model.decision_function(X, k=4)[perm], model.decision_function(X[perm], k=4),
          "permuted rows")
    one = model.decision_function(X[7:8], k=4)
    _same(one, model.decision_function(X, k=4)[7:8], "single row vs batch")


def check_sparse_dense(make_model, tmp_path) -> None:
    X, Y = small_data()
    model = make_model().fit(X, Y)
    S = model.decision_function(X, k=3)
    _same(S, model.decision_function(X.toarray(), k=3), "dense X at predict")
    _same(S, model.decision_function(X.tocoo(), k=3), "COO X at predict")
    _same(S, model.decision_function(X.astype(np.float64), k=3), "float64 X at predict")
    dense_fit = make_model().fit(X.toarray(), Y.toarray())
    _same(S, dense_fit.decision_function(X, k=3), "dense X and Y at fit")


def check_save_load(make_model, tmp_path) -> None:
    X, Y = small_data()
    model = make_model().fit(X, Y, labels=[f"label {j}" for j in range(Y.shape[1])])
    S = model.decision_function(X, k=3)
    cls = type(model)
    for name, save_kw, load_kw in (("npy", {}, {}), ("mmap", {}, {"mmap": True}),
                                   ("npz", {"compress": True}, {})):
        path = tmp_path / name
        model.save(path, **save_kw)
        loaded = cls.load(path, **load_kw)
        assert type(loaded) is cls
        assert loaded.get_params() == model.get_params()
        assert loaded.labels_ == model.labels_
        _same(S, loaded.decision_function(X, k=3), f"save/load ({name})")
        _same(model.predict(X), loaded.predict(X), f"predict after save/load ({name})")
    model.save(tmp_path / "npy")  # overwriting an existing model directory works
    _same(S, cls.load(tmp_path / "npy").decision_function(X, k=3), "overwrite")


def check_clone_params(make_model, tmp_path) -> None:
    model = make_model()
    params = model.get_params()
    twin = clone(model)
    assert twin.get_params() == params and twin is not model
    assert type(model)(**params).get_params() == params
    X, Y = small_data()
    model.fit(X, Y)
    fresh = clone(model)
    assert not hasattr(fresh, "labels_"), "clone must not carry learned state"
    _same(model.decision_function(X, k=3), fresh.fit(X, Y).decision_function(X, k=3),
          "clone then fit")
    assert model.set_params(**params) is model


def check_random_state(make_model, tmp_path) -> None:
    X, Y = small_data(seed=3)
    a = make_model().fit(X, Y).decision_function(X, k=4)
    b = make_model().fit(X, Y).decision_function(X, k=4)
    _same(a, b, "same random_state")


def check_label_names(make_model, tmp_path) -> None:
    X, Y = small_data()
    names = [f"topic/{c}" for c in "fedcba"]
    model = make_model().fit(X, Y, labels=names)
    assert list(model.labels_.names) == names
    space = LabelSpace(names, descriptions=[f"about {c}" for c in "fedcba"])
    model2 = make_model().fit(Dataset(X, Y, space))
    assert model2.labels_ == space
    _same(model.decision_function(X, k=3), model2.decision_function(X, k=3), "fit(dataset)")
    model2.save(tmp_path / "m")
    assert type(model2).load(tmp_path / "m").labels_ == space


def check_many_labels(make_model, tmp_path) -> None:
    """300 labels: every column keeps its identity (no uint8 label ids anywhere)."""
    L, reps = 300, 3
    n = L * reps
    rng = np.random.default_rng(0)
    rows = np.arange(n)
    own = rows % L
    X = sp.csr_matrix((np.ones(n, np.float32) * 3, (rows, own)), shape=(n, L))
    X = sp.csr_matrix(X + sp.random(n, L, density=0.01, random_state=rng, dtype=np.float32))
    Y = sp.csr_matrix((np.ones(n, np.float32), (rows, own)), shape=(n, L))
    names = [f"L{j:03d}" for j in range(L)]
    model = make_model().fit(X, Y, labels=names)
    assert len(model.labels_) == L and model.labels_.names[299] == "L299"
    top = model.decision_function(X, k=1)
    assert top.shape == (n, L) and top.indices.dtype.itemsize >= 4
    hit = np.mean(top.indices == own)
    assert hit >= 0.95, f"only {hit:.2%} rows get their own label back; ids mixed up?"
    assert set(top.indices[own >= 256]) == set(range(256, L)), "labels >= 256 lost"
    model.save(tmp_path / "m")
    _same(top, type(model).load(tmp_path / "m").decision_function(X, k=1), "300 labels reload")


def check_bad_input(make_model, tmp_path) -> None:
    from labelwise.errors import DataFormatError

    X, Y = small_data()
    with pytest.raises(DataFormatError, match="rows"):
        make_model().fit(X[:10], Y)
    Ybad = Y.toarray()
    Ybad[0, 0] = 2
    with pytest.raises(DataFormatError):
        make_model().fit(X, Ybad)
    Xnan = X.toarray()
    Xnan[3, 2] = np.nan
    with pytest.raises(DataFormatError, match=r"X\[3, 2\]"):
        make_model().fit(Xnan, Y)
    model = make_model().fit(X, Y)
    with pytest.raises(DataFormatError, match="features"):
        model.decision_function(X[:, :5])
    with pytest.raises(ValueError, match="k must be"):
        model.decision_function(X, k=0)


CHECKS = [
    check_unfitted_raises,
    check_topk_format,
    check_fit_idempotent,
    check_row_order,
    check_sparse_dense,
    check_save_load,
    check_clone_params,
    check_random_state,
    check_label_names,
    check_many_labels,
    check_bad_input,
]


# ---------------------------------------------------------------------------- text models
# Models that read texts (ZeroShot, FineTuned, FineTunedFewShot, text pipelines) run the
# same contract on texts: TEXT_CHECKS. The checks above that only make sense for numeric X
# (sparse vs dense input, 300 identity features) have text counterparts here: the input's
# container (list, tuple, Dataset) must not change the scores, and 260
# labels keep their ids through top-k and save/load.
_FILLER = ["the", "a", "today", "about", "some", "news", "story", "short"]


def text_data(names, seed: int = 0, n: int = 12):
    """Texts whose positive labels' names appear in them (so a zero-shot model's scores
    follow Y), and Y (n, len(names)) CSR 0/1 with every label positive and negative."""
    rng = np.random.default_rng(seed)
    L = len(names)
    Y = np.zeros((n, L), dtype=np.float32)
    for i in range(n):
        Y[i, i % L] = 1
        if i % 3 == 0:
            Y[i, (i // 3) % L] = 1
    Y[-1, :] = 0
    texts = []
    for i in range(n):
        words = [str(names[j]).replace("_", " ") for j in np.flatnonzero(Y[i])]
        words += list(rng.choice(_FILLER, 3, replace=False))
        texts.append(" ".join(rng.permutation(words)))
    return texts, sp.csr_matrix(Y)


NAMES = ["sport", "finance", "weather", "music"]


def _default_threshold(model) -> float:
    """The score above which predict() keeps a label without a policy (a pipeline: its
    model's)."""
    if hasattr(model, "default_threshold"):
        return model.default_threshold
    return model.model.default_threshold


def _same_params(a, b) -> None:
    """get_params() equal, nested estimators (a pipeline's parts) compared by their params."""
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    assert pa.keys() == pb.keys()
    for key, va in pa.items():
        vb = pb[key]
        if hasattr(va, "get_params"):
            assert type(va) is type(vb), f"{key}: {type(va).__name__} != {type(vb).__name__}"
            _same_params(va, vb)
        else:
            assert va == vb, f"{key}: {va!r} != {vb!r}"


def _rows(texts, idx):
    return [texts[i] for i in idx]


def check_text_unfitted_raises(make_model, tmp_path) -> None:
    texts, _ = text_data(NAMES)
    model = make_model()
    for call in (lambda: model.decision_function(texts), lambda: model.predict(texts),
                 lambda: model.predict_proba(texts), lambda: model.save(tmp_path / "m")):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    assert not (tmp_path / "m").exists()


def check_text_topk_format(make_model, tmp_path) -> None:
    texts, Y = text_data(NAMES)
    model = make_model().fit(texts, Y, labels=NAMES)
    n, L = Y.shape
    full = model.decision_function(texts, k=L).toarray()
    for k in (1, 2, L, L + 3):
        S = model.decision_function(texts, k=k)
        assert isinstance(S, sp.csr_matrix) and S.shape == (n, L)
        assert np.array_equal(np.diff(S.indptr), np.full(n, min(k, L))), f"k={k}: not k per row"
        assert S.has_sorted_indices and S.indices.dtype.itemsize >= 4
        for i in range(n):
            kept = S.indices[S.indptr[i]:S.indptr[i + 1]]
            assert np.all(np.delete(full[i], kept) <= full[i, kept].min()), "top k not the best"
        P = model.predict_proba(texts, k=k)
        assert np.array_equal(P.indices, S.indices) and np.all((P.data >= 0) & (P.data <= 1))
    P = model.predict(texts)
    assert np.array_equal(P.toarray() == 1, full > _default_threshold(model))


def check_text_fit_idempotent(make_model, tmp_path) -> None:
    texts, Y = text_data(NAMES)
    texts2, Y2 = text_data(NAMES, seed=4)
    model = make_model().fit(texts, Y, labels=NAMES)
    first = model.decision_function(texts, k=2)
    model.fit(texts2, Y2, labels=NAMES).fit(texts, Y, labels=NAMES)
    _same(first, model.decision_function(texts, k=2), "fit on other data, then again")


def check_text_row_order_and_containers(make_model, tmp_path) -> None:
    texts, Y = text_data(NAMES)
    model = make_model().fit(texts, Y, labels=NAMES)
    S = model.decision_function(texts, k=3)
    perm = np.random.default_rng(1).permutation(len(texts))
    _same(S[perm], model.decision_function(_rows(texts, perm), k=3), "permuted rows")
    _same(S, model.decision_function(tuple(texts), k=3), "tuple of texts")
    _same(S, model.decision_function(Dataset(texts, Y, LabelSpace(NAMES)), k=3), "Dataset")


def check_text_save_load(make_model, tmp_path) -> None:
    texts, Y = text_data(NAMES)
    model = make_model().fit(Dataset(texts, Y, LabelSpace(NAMES, descriptions=[
        f"texts about {c}" for c in NAMES])))
    S = model.decision_function(texts, k=3)
    for name, load_kw in (("plain", {}), ("mmap", {"mmap": True})):
        model.save(tmp_path / name)
        loaded = type(model).load(tmp_path / name, **load_kw)
        assert type(loaded) is type(model)
        _same_params(loaded, model)
        assert loaded.labels_ == model.labels_
        _same(S, loaded.decision_function(texts, k=3), f"save/load ({name})")
        _same(model.predict(texts), loaded.predict(texts), f"predict after save/load ({name})")
    model.save(tmp_path / "plain")  # overwriting works
    _same(S, type(model).load(tmp_path / "plain").decision_function(texts, k=3), "overwrite")


def check_text_clone_and_random_state(make_model, tmp_path) -> None:
    model = make_model()
    params = model.get_params(deep=False)
    _same_params(clone(model), model)
    _same_params(type(model)(**params), model)
    texts, Y = text_data(NAMES, seed=2)
    S = model.fit(texts, Y, labels=NAMES).decision_function(texts, k=3)
    fresh = clone(model)
    assert not hasattr(fresh, "labels_"), "clone must not carry learned state"
    _same(S, fresh.fit(texts, Y, labels=NAMES).decision_function(texts, k=3), "clone then fit")
    assert model.set_params(**params) is model


def check_text_many_labels(make_model, tmp_path) -> None:
    """260 labels: every row's full ranking holds each id once (no small-integer ids) and
    the names and scores survive save/load."""
    L = 260  # past 255: a uint8 label id would wrap
    names = [f"topic {j:03d}" for j in range(L)]
    texts, Y = text_data(names, n=8)
    with warnings.catch_warnings():  # most labels have no positive row: some models say so
        warnings.filterwarnings("ignore", message=".*no positive", category=UserWarning)
        model = make_model().fit(texts, Y, labels=names)
    S = model.decision_function(texts[:3], k=L)
    for i in range(3):
        assert sorted(S.indices[S.indptr[i]:S.indptr[i + 1]]) == list(range(L))
    model.save(tmp_path / "m")
    loaded = type(model).load(tmp_path / "m")
    assert list(loaded.labels_.names) == names
    _same(S, loaded.decision_function(texts[:3], k=L), f"{L} labels reload")


def check_text_bad_input(make_model, tmp_path) -> None:
    from labelwise.errors import DataFormatError

    texts, Y = text_data(NAMES)
    with pytest.raises(DataFormatError):
        make_model().fit(texts[:5], Y, labels=NAMES)
    model = make_model().fit(texts, Y, labels=NAMES)
    with pytest.raises(DataFormatError):
        model.decision_function("one text, not a list")
    with pytest.raises(ValueError, match="k must be"):
        model.decision_function(texts, k=0)


TEXT_CHECKS = [
    check_text_unfitted_raises,
    check_text_topk_format,
    check_text_fit_idempotent,
    check_text_row_order_and_containers,
    check_text_save_load,
    check_text_clone_and_random_state,
    check_text_many_labels,
    check_text_bad_input,
]
