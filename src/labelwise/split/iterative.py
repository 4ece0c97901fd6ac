"""Iterative stratification of multi-label data (Sechidis, Tsoumakas & Vlahavas 2011).

The algorithm, for folds ``j = 1..k`` with desired shares ``r_j`` (``1/k`` for k-fold,
``(1 - t, t)`` for a train/test split with test share ``t``):

1. Desired fold sizes ``c_j = r_j |D|`` and desired positives ``c_j^l = r_j |D^l|`` for each
   label ``l`` (``D^l``: the rows holding ``l``).
2. Repeat until every row holding a label is placed: take the label with the fewest rows
   not yet placed (ties: a random priority drawn once per label from ``random_state``); give
   each of its unplaced rows, in processing order, to the fold with the largest desired count
   for that label (ties: the largest desired size ``c_j``, then random); after each
   placement decrement ``c_m`` and ``c_m^i`` for every label ``i`` of the row.
3. Rows without labels go, one by one, to the fold with the largest remaining desired size
   (ties random).

The label with the fewest remaining rows is kept in an indexed binary heap (decrease-key as
rows are placed), so one run costs ``O(nnz log n_labels + n k)``.

``order=2`` (Szymański & Kajdanowicz 2017) runs the same algorithm over *items* that are the
labels together with every label pair that co-occurs in some row (a row's items: its labels
and all pairs of them). Rare pairs are served first, so pair counts are balanced, and keeping
the labels themselves as items means rows with a single label are still stratified (the
scikit-multilearn implementation, which uses the pairs alone, sends such rows to the
"no evidence" pass). Only pairs that occur are materialised (a CSR of pair membership).

Processing order: with ``shuffle=True`` rows are visited in a random order, else in their
order in ``Y``. ``random_state`` also breaks ties, so it matters with ``shuffle=False`` too;
the same ``random_state`` (an int) always gives the same folds.

What is guaranteed (order 1, folds of shares ``r_j``, label ``l`` with ``N_l`` rows): let
``a_j`` be the rows of ``l`` that fold ``j`` received before ``l``'s own turn (while rarer
labels were served). Then every fold ends with at most ``max(ceil(r_j N_l), a_j)`` rows of
``l``; when no row of ``l`` was placed before its turn (the rarest label, every label when
each row holds at most one label, labels sharing no row with rarer labels) each fold gets
``floor(r_j N_l)`` or ``ceil(r_j N_l)`` of them. Fold sizes are not guaranteed exactly; they
come out close to ``r_j |D|`` (see :func:`~labelwise.split.quality.example_distribution`).
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state

from ..errors import DataFormatError
from ._items import item_matrix, label_csr

__all__ = [
    "IterativeStratifiedKFold",
    "IterativeStratifiedShuffleSplit",
    "assign_folds",
    "train_test_split",
]


# ---------------------------------------------------------------------- input handling
def resolve_inputs(X: Any, Y: Any, groups: Any, *, use_dataset_groups: bool) -> tuple[sp.csr_matrix, Any]:
    """(Y as int64-index CSR, groups or None) from ``X, Y, groups`` or a Dataset in ``X``."""
    from ..dataset import Dataset

    if isinstance(X, Dataset):
        if Y is None:
            Y = X.Y
        if groups is None and use_dataset_groups:
            groups = X.groups
        n_x = X.n_samples
    else:
        n_x = None if X is None else _n_rows(X)
    if Y is None:
        raise DataFormatError("expected a label matrix (n_samples, n_labels) or a Dataset", field="Y")
    if isinstance(Y, Dataset):
        Y = Y.Y
    M = label_csr(Y)
    if n_x is not None and n_x != M.shape[0]:
        raise DataFormatError(f"X has {n_x} rows but Y has {M.shape[0]}; expected one label row per sample")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.ndim != 1 or groups.shape[0] != M.shape[0]:
            raise DataFormatError(
                f"expected one group per row of Y ({M.shape[0]}), got shape {groups.shape}",
                field="groups",
            )
    return M, groups


def check_n_groups(groups: np.ndarray, needed: int) -> int:
    """The number of distinct groups; refuses fewer than ``needed``."""
    try:
        n_groups = len(np.unique(groups))
    except TypeError as e:
        raise DataFormatError(f"group keys must be mutually comparable: {e}", field="groups") from None
    if n_groups < needed:
        raise DataFormatError(
            f"expected at least {needed} distinct groups, got {n_groups}", field="groups"
        )
    return n_groups


def _n_rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 1:
        return int(shape[0])
    return len(X)


def check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise DataFormatError(f"expected an integer >= {low}, got {value!r}", field=name)
    return int(value)


def check_order(order: Any) -> int:
    if isinstance(order, bool) or order not in (1, 2):
        raise DataFormatError(f"expected 1 (labels) or 2 (labels and label pairs), got {order!r}", field="order")
    return int(order)


def split_sizes(n: int, test_size: Any, train_size: Any, default_test: float) -> tuple[int, int]:
    """(n_train, n_test) as scikit-learn resolves them: floats are shares, ints are counts."""

    def parse(value: Any, name: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, Real):
            raise DataFormatError(f"expected a share in (0, 1) or a row count, got {value!r}", field=name)
        if isinstance(value, Integral):
            if not 1 <= value < n:
                raise DataFormatError(f"expected a row count in 1..{n - 1}, got {value}", field=name)
            return int(value)
        if not 0.0 < value < 1.0:
            raise DataFormatError(f"expected a share in (0, 1), got {value}", field=name)
        return float(value)

    t = parse(test_size, "test_size")
    r = parse(train_size, "train_size")
    if t is None and r is None:
        t = default_test
    n_test = None if t is None else (t if isinstance(t, int) else int(np.ceil(t * n)))
    n_train = None if r is None else (r if isinstance(r, int) else int(np.floor(r * n)))
    if n_test is None:
        n_test = n - n_train
    if n_train is None:
        n_train = n - n_test
    if n_train < 1 or n_test < 1 or n_train + n_test > n:
        raise DataFormatError(
            f"with {n} samples, test_size={test_size!r} and train_size={train_size!r} give "
            f"{n_train} train and {n_test} test rows; expected both >= 1 and at most {n} in all"
        )
    return n_train, n_test


# ---------------------------------------------------------------------- the core
def prepare_units(
    Y: sp.csr_matrix, *, order: int, groups: Any, shuffle: bool, rng: np.random.RandomState
) -> dict[str, Any]:
    """The kernel's inputs: units (rows or groups) in processing order, their items, weights,
    the item tie-break priorities and the fold-tie seed, plus ``unit_of_row`` to map back.

    Random draws, in this order: the unit order (``shuffle``), the item priorities, the seed.
    """
    n = Y.shape[0]
    indptr, indices, n_items = item_matrix(Y, order)
    if groups is None:
        order_units = rng.permutation(n).astype(np.int64) if shuffle else np.arange(n, dtype=np.int64)
        lengths = np.diff(indptr)[order_units]
        u_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=u_ptr[1:])
        gather = np.repeat(indptr[order_units] - u_ptr[:-1], lengths) + np.arange(u_ptr[-1])
        u_ind = indices[gather]
        u_cnt = np.ones(u_ind.size, dtype=np.int64)
        weights = np.ones(n, dtype=np.int64)
        unit_of_row = np.empty(n, dtype=np.int64)
        unit_of_row[order_units] = np.arange(n, dtype=np.int64)
    else:
        try:
            _, codes = np.unique(groups, return_inverse=True)
        except TypeError as e:
            raise DataFormatError(f"group keys must be mutually comparable: {e}", field="groups") from None
        codes = codes.astype(np.int64).ravel()
        n_groups = int(codes.max()) + 1 if n else 0
        sizes = np.bincount(codes, minlength=n_groups).astype(np.int64)
        # among groups of one size, visit them in the order of a random permutation (as rows)
        tie = np.arange(n_groups, dtype=np.int64)
        if shuffle:
            tie[rng.permutation(n_groups)] = np.arange(n_groups, dtype=np.int64)
        order_units = np.lexsort((tie, -sizes)).astype(np.int64)  # largest groups first
        rank = np.empty(n_groups, dtype=np.int64)
        rank[order_units] = np.arange(n_groups, dtype=np.int64)
        unit_of_row = rank[codes]
        G = sp.csr_matrix(
            (np.ones(n, dtype=np.int64), (unit_of_row, np.arange(n))), shape=(n_groups, n)
        )
        items = sp.csr_matrix((np.ones(indices.size, dtype=np.int64), indices, indptr), shape=(n, n_items))
        U = (G @ items).tocsr()
        U.sort_indices()
        u_ptr = U.indptr.astype(np.int64)
        u_ind = U.indices.astype(np.int64)
        u_cnt = U.data.astype(np.int64)
        weights = sizes[order_units]
    prio = rng.permutation(n_items).astype(np.int64)
    seed = np.uint64(rng.randint(0, 2**63 - 1, dtype=np.int64))
    return {
        "indptr": u_ptr,
        "indices": u_ind,
        "counts": u_cnt,
        "weights": weights,
        "n_items": int(n_items),
        "prio": prio,
        "seed": seed,
        "unit_of_row": unit_of_row,
    }


def assign_folds(
    Y: Any,
    ratios: Any,
    *,
    order: int = 1,
    groups: Any = None,
    shuffle: bool = True,
    random_state: Any = None,
) -> np.ndarray:
    """Fold id (int64, ``0..len(ratios)-1``) of each row by iterative stratification.

    ``ratios`` are the desired shares of the folds (non-negative, summing to 1). With
    ``groups`` (one key per row), whole groups are placed: label counts are summed per group
    and the algorithm runs over groups weighted by their size (largest groups first among
    equals). ``random_state``: int, RandomState or None.
    """
    M, groups = resolve_inputs(None, Y, groups, use_dataset_groups=False)
    return _assign(M, ratios, order=order, groups=groups, shuffle=shuffle, random_state=random_state)


def _assign(
    M: sp.csr_matrix, ratios: Any, *, order: int, groups: Any, shuffle: bool, random_state: Any
) -> np.ndarray:
    from ._kernels import iterative_assign

    order = check_order(order)
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or r.size < 2 or np.any(r < 0) or not np.isclose(r.sum(), 1.0):
        raise DataFormatError(f"expected >= 2 non-negative shares summing to 1, got {ratios!r}", field="ratios")
    rng = check_random_state(random_state)
    units = prepare_units(M, order=order, groups=groups, shuffle=shuffle, rng=rng)
    fold_units = iterative_assign(
        units["indptr"],
        units["indices"],
        units["counts"],
        units["weights"],
        units["n_items"],
        r,
        units["prio"],
        units["seed"],
    )
    return fold_units[units["unit_of_row"]]


def _folds_to_splits(fold: np.ndarray, k: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for j in range(k):
        test = np.flatnonzero(fold == j).astype(np.int64)
        train = np.flatnonzero(fold != j).astype(np.int64)
        yield train, test


# ---------------------------------------------------------------------- splitters
class IterativeStratifiedKFold(BaseCrossValidator):
    """K-fold cross-validation with iterative stratification of the labels.

    Parameters
    ----------
    n_splits: number of folds (>= 2).
    order: 1 balances labels; 2 balances labels and co-occurring label pairs.
    shuffle: visit rows in a random order (else in the order of ``Y``).
    random_state: int, RandomState or None; also breaks ties, so it matters with
        ``shuffle=False`` too. An int gives the same folds on every call.

    ``split(X, Y, groups=None)`` yields ``(train, test)`` int64 index arrays; ``X`` may be a
    :class:`~labelwise.Dataset` (then ``Y`` defaults to its labels). ``groups`` is ignored
    here, as by scikit-learn's non-group splitters; use
    :class:`~labelwise.split.GroupIterativeStratifiedKFold` to keep groups whole.
    """

    def __init__(self, n_splits: int = 5, *, order: int = 1, shuffle: bool = True, random_state: Any = None):
        self.n_splits = n_splits
        self.order = order
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X: Any = None, Y: Any = None, groups: Any = None) -> int:
        return check_int(self.n_splits, "n_splits", 2)

    def split(self, X: Any, Y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        k = check_int(self.n_splits, "n_splits", 2)
        M, _ = resolve_inputs(X, Y, None, use_dataset_groups=False)
        if k > M.shape[0]:
            raise DataFormatError(
                f"expected at most n_samples={M.shape[0]} folds, got {k}", field="n_splits"
            )
        fold = _assign(
            M, np.full(k, 1.0 / k), order=self.order, groups=None, shuffle=self.shuffle,
            random_state=self.random_state,
        )
        yield from _folds_to_splits(fold, k)


class IterativeStratifiedShuffleSplit(BaseCrossValidator):
    """Repeated random train/test splits, each made by iterative stratification.

    ``test_size``/``train_size``: share in (0, 1) or row count (as scikit-learn's
    ``ShuffleSplit``; default test share 0.1). The iterative algorithm aims at these sizes;
    the result is close, not exact. Each of the ``n_splits`` splits draws fresh randomness
    from ``random_state``; the same int gives the same sequence of splits.
    """

    def __init__(
        self,
        n_splits: int = 10,
        *,
        test_size: Any = None,
        train_size: Any = None,
        order: int = 1,
        random_state: Any = None,
    ):
        self.n_splits = n_splits
        self.test_size = test_size
        self.train_size = train_size
        self.order = order
        self.random_state = random_state

    def get_n_splits(self, X: Any = None, Y: Any = None, groups: Any = None) -> int:
        return check_int(self.n_splits, "n_splits", 1)

    def split(self, X: Any, Y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        M, _ = resolve_inputs(X, Y, None, use_dataset_groups=False)
        yield from _shuffle_splits(self, M, None)


def _shuffle_splits(cv: Any, M: sp.csr_matrix, groups: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    n_splits = check_int(cv.n_splits, "n_splits", 1)
    n = M.shape[0]
    n_train, n_test = split_sizes(n, cv.test_size, cv.train_size, 0.1)
    ratios = np.array([n_train / n, n_test / n, (n - n_train - n_test) / n])
    if ratios[2] == 0.0:
        ratios = ratios[:2]
    rng = check_random_state(cv.random_state)
    for _ in range(n_splits):
        fold = _assign(M, ratios, order=cv.order, groups=groups, shuffle=True, random_state=rng)
        idx = np.arange(n, dtype=np.int64)
        yield idx[fold == 0], idx[fold == 1]


def train_test_split(
    dataset_or_X: Any,
    Y: Any = None,
    *,
    test_size: Any = 0.2,
    train_size: Any = None,
    order: int = 1,
    groups: Any = None,
    shuffle: bool = True,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` int64 row indices of one iteratively stratified split.

    ``dataset_or_X``: a :class:`~labelwise.Dataset` (its ``Y`` and, unless ``groups`` is
    given, its ``groups``) or ``X`` with ``Y`` (``X`` may be None). With groups, whole groups
    go to one side. ``test_size``/``train_size`` are shares of rows (floats) or row counts
    (ints), as in scikit-learn; the sizes come out close to, not exactly at, the request
    (with groups, as close as whole groups allow).
    """
    M, groups = resolve_inputs(dataset_or_X, Y, groups, use_dataset_groups=True)
    n = M.shape[0]
    if groups is not None:
        check_n_groups(groups, 2)
    n_train, n_test = split_sizes(n, test_size, train_size, 0.2)
    ratios = np.array([n_train / n, n_test / n, (n - n_train - n_test) / n])
    if ratios[2] == 0.0:
        ratios = ratios[:2]
    fold = _assign(M, ratios, order=order, groups=groups, shuffle=shuffle, random_state=random_state)
    idx = np.arange(n, dtype=np.int64)
    return idx[fold == 0], idx[fold == 1]
