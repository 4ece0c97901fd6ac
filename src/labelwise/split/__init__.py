"""Leak-free, label-balanced splits of multi-label data.

- :class:`IterativeStratifiedKFold`, :class:`IterativeStratifiedShuffleSplit` and
  :func:`train_test_split`: iterative stratification (Sechidis et al. 2011; ``order=2`` also
  balances label pairs, Szymański & Kajdanowicz 2017), scikit-learn splitter API.
- :class:`GroupIterativeStratifiedKFold`, :class:`GroupIterativeStratifiedShuffleSplit`:
  the same over whole groups, so no group straddles two folds.
- :func:`split_report` and the measures LD, LPD, ED, FZ, FLZ of :mod:`.quality`.

All splitters return int64 row indices and accept ``Y`` as CSR or dense 0/1 (n_samples,
n_labels), or a :class:`~labelwise.Dataset` in place of ``X``.
"""

from __future__ import annotations

from .group import GroupIterativeStratifiedKFold, GroupIterativeStratifiedShuffleSplit
from .iterative import (
    IterativeStratifiedKFold,
    IterativeStratifiedShuffleSplit,
    assign_folds,
    train_test_split,
)
from .quality import (
    example_distribution,
    fold_label_pairs_without_positives,
    folds_without_positives,
    label_distribution,
    label_pair_distribution,
    split_report,
)

__all__ = [
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
