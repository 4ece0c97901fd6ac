"""Group-aware iterative stratification: no group straddles two folds.

Rows sharing a group key (an author, a document, a patient) are placed together, so no
information leaks from training to test through near-duplicate rows. The algorithm of
:mod:`labelwise.split.iterative` runs over *groups* instead of rows: a group's label counts
are the sums over its rows, it weighs its number of rows (desired fold sizes and desired
label counts are in rows), and among the groups of the label being served the largest go
first (ties in random order), which keeps fold sizes close to their targets. With every
group of size one this is exactly the row-level algorithm.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import DataFormatError
from .iterative import (
    IterativeStratifiedKFold,
    IterativeStratifiedShuffleSplit,
    _assign,
    _folds_to_splits,
    _shuffle_splits,
    check_int,
    check_n_groups,
    resolve_inputs,
)

__all__ = ["GroupIterativeStratifiedKFold", "GroupIterativeStratifiedShuffleSplit"]


def _groups_or_raise(X: Any, Y: Any, groups: Any) -> tuple[Any, np.ndarray]:
    M, g = resolve_inputs(X, Y, groups, use_dataset_groups=True)
    if g is None:
        raise DataFormatError(
            "expected one group key per row (pass groups=, or a Dataset with groups)", field="groups"
        )
    return M, g


class GroupIterativeStratifiedKFold(IterativeStratifiedKFold):
    """K-fold iterative stratification that keeps every group within one test fold.

    Parameters as :class:`~labelwise.split.IterativeStratifiedKFold`. ``split(X, Y, groups)``
    needs ``groups`` (one key per row), or a :class:`~labelwise.Dataset` with groups in ``X``;
    there must be at least ``n_splits`` distinct groups.
    """

    def split(self, X: Any, Y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        k = check_int(self.n_splits, "n_splits", 2)
        M, g = _groups_or_raise(X, Y, groups)
        n_groups = check_n_groups(g, 2)
        if n_groups < k:
            raise DataFormatError(
                f"expected at least n_splits={k} distinct groups, got {n_groups}", field="groups"
            )
        fold = _assign(
            M,
            np.full(k, 1.0 / k),
            order=self.order,
            groups=g,
            shuffle=self.shuffle,
            random_state=self.random_state,
        )
        yield from _folds_to_splits(fold, k)


class GroupIterativeStratifiedShuffleSplit(IterativeStratifiedShuffleSplit):
    """Repeated group-aware train/test splits by iterative stratification.

    ``test_size``/``train_size`` are shares of rows or row counts (default test share 0.1);
    whole groups go to one side, so sizes are as close as the groups allow.
    """

    def split(self, X: Any, Y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        M, g = _groups_or_raise(X, Y, groups)
        check_n_groups(g, 2)
        yield from _shuffle_splits(self, M, g)
