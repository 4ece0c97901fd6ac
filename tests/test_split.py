"""Splitters of labelwise.split: API contract, determinism, groups, errors, real data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import labelwise.split as ls
from conftest import shared_dataset_dir
from labelwise import Dataset
from labelwise.errors import DataFormatError, LabelwiseError
from labelwise.split import (
    GroupIterativeStratifiedKFold,
    GroupIterativeStratifiedShuffleSplit,
    IterativeStratifiedKFold,
    IterativeStratifiedShuffleSplit,
    label_distribution,
    train_test_split,
)


def test_exported_members():
    assert ls.__all__ == [
        "GroupIterativeStratifiedKFold",
        "GroupIterativeStratifiedShuffleSplit",
        "IterativeStratifiedKFold",
        "IterativeStratifiedShuffleSplit",
        "assign_folds",
        "example_distribution",
        "fold_label_pairs_without_positives",
        "folds_without_positives",
        "label_distribution",
        "label_pair_distribution",
        "split_report",
        "train_test_split",
    ]
    for name in ls.__all__:
        assert getattr(ls, name) is not None


def power_law_Y(n, n_labels, seed, max_per_row=5):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_labels + 1)
    p /= p.sum()
    rows, cols = [], []
    for i in range(n):
        labels = np.unique(rng.choice(n_labels, size=int(rng.integers(0, max_per_row + 1)), p=p))
        rows += [i] * labels.size
        cols += labels.tolist()
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n_labels))


@pytest.fixture(scope="module")
def Y():
    return power_law_Y(600, 30, 0)


def check_partition(splits, n):
    seen = np.zeros(n, dtype=np.int64)
    for train, test in splits:
        assert train.dtype == np.int64 and test.dtype == np.int64
        assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
        assert np.intersect1d(train, test).size == 0
        assert train.size + test.size == n  # complement
        seen[test] += 1
    assert np.all(seen == 1)  # every row in exactly one test fold


# ---------------------------------------------------------------------- k-fold
@pytest.mark.parametrize("order", [1, 2])
def test_kfold_partitions_and_balances(Y, order):
    cv = IterativeStratifiedKFold(5, order=order, random_state=0)
    splits = list(cv.split(None, Y))
    assert cv.get_n_splits() == 5 and len(splits) == 5
    check_partition(splits, Y.shape[0])
    sizes = [t.size for _, t in splits]
    assert max(sizes) - min(sizes) <= 0.05 * Y.shape[0]
    # much better balanced than an unstratified shuffled k-fold
    from sklearn.model_selection import KFold

    plain = list(KFold(5, shuffle=True, random_state=0).split(np.zeros(Y.shape[0])))
    assert label_distribution(Y, splits) < 0.5 * label_distribution(Y, plain)


def test_kfold_deterministic_for_a_seed(Y):
    a = [t for _, t in IterativeStratifiedKFold(4, random_state=7).split(None, Y)]
    b = [t for _, t in IterativeStratifiedKFold(4, random_state=7).split(None, Y)]
    c = [t for _, t in IterativeStratifiedKFold(4, random_state=8).split(None, Y)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    # shuffle=False still uses random_state for ties; same seed, same folds
    d = [t for _, t in IterativeStratifiedKFold(4, shuffle=False, random_state=1).split(None, Y)]
    e = [t for _, t in IterativeStratifiedKFold(4, shuffle=False, random_state=1).split(None, Y)]
    assert all(np.array_equal(x, y) for x, y in zip(d, e))


def test_kfold_accepts_dense_csr_and_dataset(Y):
    cv = IterativeStratifiedKFold(3, random_state=2)
    a = [t for _, t in cv.split(None, Y)]
    b = [t for _, t in cv.split(np.zeros((Y.shape[0], 2)), Y.toarray().astype(np.int8))]
    ds = Dataset(np.zeros((Y.shape[0], 2), np.float32), Y)
    c = [t for _, t in cv.split(ds)]
    for x, y, z in zip(a, b, c):
        assert np.array_equal(x, y) and np.array_equal(x, z)


def test_kfold_random_state_instance_advances(Y):
    rs = np.random.RandomState(0)
    cv = IterativeStratifiedKFold(3, random_state=rs)
    a = [t for _, t in cv.split(None, Y)]
    b = [t for _, t in cv.split(None, Y)]
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))


def test_works_with_sklearn_cross_validation(Y):
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    X = np.random.default_rng(0).normal(size=(Y.shape[0], 4))
    scores = cross_val_score(
        KNeighborsClassifier(3), X, Y.toarray(), cv=IterativeStratifiedKFold(3, random_state=0)
    )
    assert scores.shape == (3,)
    assert "IterativeStratifiedKFold(n_splits=3" in repr(IterativeStratifiedKFold(3))


def test_rows_without_labels_balance_fold_sizes():
    Y = sp.csr_matrix((10, 3), dtype=np.float32)
    splits = list(IterativeStratifiedKFold(5, random_state=0).split(None, Y))
    assert [t.size for _, t in splits] == [2, 2, 2, 2, 2]


def test_first_label_each_fold_floor_or_ceil():
    # 3 labels of 7, 11 and 13 rows, disjoint: each is served on its own turn
    rows = [[0]] * 7 + [[1]] * 11 + [[2]] * 13
    Y = Dataset([""] * len(rows), rows).Y
    for seed in range(5):
        fold = ls.assign_folds(Y, [0.25] * 4, random_state=seed)
        for label, N in [(0, 7), (1, 11), (2, 13)]:
            counts = np.bincount(fold[Y[:, label].toarray().ravel() > 0], minlength=4)
            assert counts.min() == N // 4 and counts.max() == -(-N // 4)


# ---------------------------------------------------------------------- shuffle split / train_test_split
def test_shuffle_split(Y):
    cv = IterativeStratifiedShuffleSplit(4, test_size=0.25, random_state=3)
    splits = list(cv.split(None, Y))
    assert len(splits) == 4 == cv.get_n_splits()
    for train, test in splits:
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == Y.shape[0]
        assert abs(test.size - 150) <= 10
    assert not np.array_equal(splits[0][1], splits[1][1])
    again = list(IterativeStratifiedShuffleSplit(4, test_size=0.25, random_state=3).split(None, Y))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))


def test_shuffle_split_with_train_size_leaves_rest_out(Y):
    train, test = next(IterativeStratifiedShuffleSplit(1, test_size=0.2, train_size=0.5, random_state=0).split(None, Y))
    assert abs(train.size - 300) <= 10 and abs(test.size - 120) <= 10
    assert np.intersect1d(train, test).size == 0


def test_train_test_split(Y):
    train, test = train_test_split(None, Y, test_size=0.2, random_state=0)
    assert train.dtype == np.int64
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(Y.shape[0]))
    assert abs(test.size - 120) <= 6
    train2, test2 = train_test_split(None, Y, test_size=120, random_state=0)
    assert np.array_equal(test, test2)
    # every label with >= 5 rows has test share within one row of 20%
    counts = np.asarray(Y.sum(axis=0)).ravel()
    in_test = np.asarray(Y[test].sum(axis=0)).ravel()
    frequent = counts >= 5
    assert np.all(np.abs(in_test[frequent] - 0.2 * counts[frequent]) <= 1 + 0.05 * counts[frequent])


def test_train_test_split_uses_dataset_groups():
    rng = np.random.default_rng(0)
    Y = power_law_Y(200, 10, 1)
    groups = rng.integers(0, 40, size=200)
    ds = Dataset(np.zeros((200, 1), np.float32), Y, groups=groups)
    train, test = train_test_split(ds, test_size=0.3, random_state=0)
    assert np.intersect1d(groups[train], groups[test]).size == 0
    assert train.size + test.size == 200


# ---------------------------------------------------------------------- groups
@settings(max_examples=100, deadline=None)
@given(
    st.integers(4, 80).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 25), min_size=n, max_size=n),
            st.lists(st.lists(st.integers(0, 6), max_size=4), min_size=n, max_size=n),
        )
    ),
    st.integers(2, 4),
    st.sampled_from([1, 2]),
    st.integers(0, 1000),
)
def test_group_kfold_never_shares_a_group(data, k, order, seed):
    groups, rows = data
    groups = np.array(groups)
    if len(np.unique(groups)) < k:
        with pytest.raises(DataFormatError, match="distinct groups"):
            list(GroupIterativeStratifiedKFold(k).split(None, Dataset([""] * len(rows), [sorted(set(r)) for r in rows], labels=[str(i) for i in range(7)]).Y, groups))
        return
    Y = Dataset([""] * len(rows), [sorted(set(r)) for r in rows], labels=[str(i) for i in range(7)]).Y
    splits = list(GroupIterativeStratifiedKFold(k, order=order, random_state=seed).split(None, Y, groups))
    check_partition(splits, len(rows))
    for train, test in splits:
        assert np.intersect1d(groups[train], groups[test]).size == 0
    train, test = train_test_split(None, Y, groups=groups, test_size=0.3, random_state=seed)
    assert np.intersect1d(groups[train], groups[test]).size == 0


def test_group_kfold_with_singleton_groups_equals_row_kfold(Y):
    n = Y.shape[0]
    a = [t for _, t in IterativeStratifiedKFold(5, random_state=4).split(None, Y)]
    b = [t for _, t in GroupIterativeStratifiedKFold(5, random_state=4).split(None, Y, np.arange(n))]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_group_kfold_balances_sizes_and_labels():
    rng = np.random.default_rng(5)
    Y = power_law_Y(3000, 20, 2)
    groups = rng.integers(0, 600, size=3000)
    splits = list(GroupIterativeStratifiedKFold(5, random_state=0).split(None, Y, groups))
    sizes = [t.size for _, t in splits]
    assert max(sizes) - min(sizes) <= 0.05 * 3000
    from sklearn.model_selection import GroupKFold

    plain = list(GroupKFold(5).split(np.zeros(3000), groups=groups))
    assert label_distribution(Y, splits) < label_distribution(Y, plain)


def test_group_shuffle_split(Y):
    groups = np.arange(Y.shape[0]) // 3
    cv = GroupIterativeStratifiedShuffleSplit(3, test_size=0.2, random_state=0)
    for train, test in cv.split(None, Y, groups):
        assert np.intersect1d(groups[train], groups[test]).size == 0
        assert abs(test.size - 120) <= 30  # whole groups of 3: sizes are looser than for rows


# ---------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors(Y):
    n = Y.shape[0]
    with pytest.raises(DataFormatError, match="Y must hold only 0 and 1, found 2"):
        list(IterativeStratifiedKFold(3).split(None, np.array([[0, 2], [1, 0], [1, 1]])))
    with pytest.raises(DataFormatError, match=r"groups: expected one group per row of Y \(600\)"):
        list(GroupIterativeStratifiedKFold(3).split(None, Y, np.arange(n - 1)))
    with pytest.raises(DataFormatError, match="n_splits: expected at most n_samples=3 folds, got 5"):
        list(IterativeStratifiedKFold(5).split(None, np.eye(3)))
    with pytest.raises(DataFormatError, match="expected at least n_splits=5 distinct groups, got 2"):
        list(GroupIterativeStratifiedKFold(5).split(None, Y, np.arange(n) % 2))
    with pytest.raises(DataFormatError, match="n_splits: expected an integer >= 2, got 1"):
        list(IterativeStratifiedKFold(1).split(None, Y))
    with pytest.raises(DataFormatError, match="order: expected 1 .* or 2"):
        list(IterativeStratifiedKFold(3, order=3).split(None, Y))
    with pytest.raises(DataFormatError, match="groups: expected one group key per row"):
        list(GroupIterativeStratifiedKFold(3).split(None, Y))
    with pytest.raises(DataFormatError, match="X has 5 rows but Y has 600"):
        list(IterativeStratifiedKFold(3).split(np.zeros((5, 2)), Y))
    with pytest.raises(DataFormatError, match=r"test_size: expected a share in \(0, 1\)"):
        train_test_split(None, Y, test_size=1.5)
    with pytest.raises(DataFormatError, match="test_size: expected a row count in 1..599"):
        train_test_split(None, Y, test_size=600)
    with pytest.raises(DataFormatError, match="Y: expected a label matrix"):
        train_test_split(np.zeros((3, 1)))
    with pytest.raises(DataFormatError, match="groups: expected at least 2 distinct groups"):
        train_test_split(None, Y, groups=np.zeros(n))
    assert issubclass(DataFormatError, LabelwiseError)


# ---------------------------------------------------------------------- real data
def test_yeast_folds_are_well_stratified():
    from sklearn.datasets import load_svmlight_file

    path = shared_dataset_dir("libsvm-yeast-napkinxc") / "yeast_train.txt"
    _, labels = load_svmlight_file(str(path), multilabel=True, zero_based=False)
    Y = Dataset([""] * len(labels), [sorted(int(j) for j in r) for r in labels]).Y
    assert Y.shape == (1500, 14)
    from sklearn.model_selection import KFold

    plain = list(KFold(5, shuffle=True, random_state=0).split(np.zeros(1500)))
    for order in (1, 2):
        splits = list(IterativeStratifiedKFold(5, order=order, random_state=0).split(None, Y))
        check_partition(splits, 1500)
        report = ls.split_report(Y, splits)
        assert report["fz"] == 0
        assert report["ld"] < 0.5 * label_distribution(Y, plain)
        assert report["ed"] <= 15
