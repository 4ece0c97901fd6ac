"""Quality measures of labelwise.split.quality: hand-computed values and a loop reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.errors import DataFormatError
from labelwise.split import (
    example_distribution,
    fold_label_pairs_without_positives,
    folds_without_positives,
    label_distribution,
    label_pair_distribution,
    split_report,
)


def loop_distribution(rows, subsets, items_of):
    """The LD/LPD formula with plain loops over items (labels or pairs) of the rows."""
    D = [r for s in subsets for r in s]
    n = len(D)
    all_items = sorted({it for r in D for it in items_of(rows[r])})
    terms = []
    for it in all_items:
        d = sum(it in items_of(rows[r]) for r in D)
        if d == n:
            continue
        d_ratio = d / (n - d)
        acc = 0.0
        for s in subsets:
            p = sum(it in items_of(rows[r]) for r in s)
            neg = len(s) - p
            acc += abs(p / (neg if neg > 0 else 1) - d_ratio)
        terms.append(acc / len(subsets))
    return float(np.mean(terms)) if terms else 0.0


def labels_of(r):
    return set(r)


def pairs_of(r):
    return set(itertools.combinations(sorted(r), 2))


def dense(rows, q):
    Y = np.zeros((len(rows), q), dtype=np.int8)
    for i, r in enumerate(rows):
        Y[i, r] = 1
    return Y


def test_ld_hand_computed():
    # 6 rows, labels 0/1; label 0 in rows 0,1,2 ; label 1 in rows 0,3
    rows = [[0, 1], [0], [0], [1], [], []]
    Y = dense(rows, 2)
    folds = [np.array([0, 3, 4]), np.array([1, 2, 5])]
    # label 0: D ratio 3/3 = 1; fold0: 1/2, fold1: 2/1 -> (0.5 + 1) / 2 = 0.75
    # label 1: D ratio 2/4 = 0.5; fold0: 2/1 = 2, fold1: 0/3 = 0 -> (1.5 + 0.5) / 2 = 1.0
    assert label_distribution(Y, folds) == pytest.approx((0.75 + 1.0) / 2)
    # only pair (0, 1) in row 0: D ratio 1/5; fold0 1/2, fold1 0/3 -> (0.3 + 0.2) / 2
    assert label_pair_distribution(Y, folds) == pytest.approx(0.25)
    # label 1 has no positive in fold 1 -> FZ 1, FLZ 1
    assert folds_without_positives(Y, folds) == 1
    assert fold_label_pairs_without_positives(Y, folds) == 1
    assert example_distribution(folds, 6) == 0.0
    assert example_distribution([np.array([0]), np.arange(1, 6)], 6, [0.5, 0.5]) == 2.0


def test_degenerate_and_excluded_labels():
    rows = [[0, 1], [0, 1], [0], [0]]  # label 0 in every row: excluded
    Y = dense(rows, 3)  # label 2 nowhere: excluded from FZ/FLZ too
    folds = [np.array([0, 1]), np.array([2, 3])]
    # label 1: D ratio 2/2 = 1; fold0 all positive -> 2/1 = 2; fold1 0 -> (1 + 1) / 2
    assert label_distribution(Y, folds) == pytest.approx(1.0)
    assert folds_without_positives(Y, folds) == 1
    assert fold_label_pairs_without_positives(Y, folds) == 1
    # only label 0 everywhere: nothing to measure
    assert label_distribution(dense([[0], [0]], 1), [np.array([0]), np.array([1])]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_ld_lpd_match_loop_reference(seed):
    rng = np.random.default_rng(seed)
    n, q = 60, 6
    rows = [sorted(set(rng.integers(0, q, size=rng.integers(0, 4)).tolist())) for _ in range(n)]
    perm = rng.permutation(n)
    subsets = [perm[:15], perm[15:35], perm[35:50]]  # rows 50.. in no subset
    Y = sp.csr_matrix(dense(rows, q))
    assert label_distribution(Y, subsets) == pytest.approx(loop_distribution(rows, subsets, labels_of))
    assert label_pair_distribution(Y, subsets) == pytest.approx(loop_distribution(rows, subsets, pairs_of))


def test_fold_forms_agree():
    rng = np.random.default_rng(0)
    Y = (rng.random((40, 5)) < 0.3).astype(np.int8)
    fold = rng.integers(0, 4, size=40)
    subsets = [np.flatnonzero(fold == j) for j in range(4)]
    pairs = [(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(4)]
    a = split_report(Y, fold)
    assert split_report(Y, subsets) == a == split_report(Y, pairs)
    assert set(a) == {"n_subsets", "subset_sizes", "ld", "lpd", "ed", "fz", "flz"}
    assert "lpd" not in split_report(Y, fold, pairs=False)


def test_bad_folds():
    Y = np.eye(4, dtype=np.int8)
    with pytest.raises(DataFormatError, match="expected disjoint subsets"):
        label_distribution(Y, [np.array([0, 1]), np.array([1, 2])])
    with pytest.raises(DataFormatError, match=r"row index outside 0..3"):
        label_distribution(Y, [np.array([0, 9])])
    with pytest.raises(DataFormatError, match=r"one fold id per row \(4\)"):
        label_distribution(Y, np.array([0, 1, 0]))
    with pytest.raises(DataFormatError, match="expected 2 shares"):
        example_distribution([np.array([0]), np.array([1])], 4, [1.0])
