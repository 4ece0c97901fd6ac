"""Run the shared conformance suite (tests/conformance.py) against every model family."""

from __future__ import annotations

import pytest

from conformance import CHECKS
from labelwise.models import OneVsRest
from labelwise.models.chains import ClassifierChain
from labelwise.models.forest import LabelForest
from labelwise.models.mlknn import MLkNN
from labelwise.models.powerset import LabelPowerset, RAkEL
from labelwise.models.tree import LabelTree

FAMILIES = {
    "ovr-squared-hinge": lambda: OneVsRest(random_state=3, n_threads=2),
    "ovr-logistic": lambda: OneVsRest(loss="logistic", prune_threshold=0.0, random_state=3,
                                      n_threads=1),
    "tree": lambda: LabelTree(n_trees=2, branching=2, max_leaf_size=2, random_state=3,
                              n_threads=2),
    "tree-logistic-dense": lambda: LabelTree(loss="logistic", prune_threshold=0.0,
                                             max_leaf_size=4, random_state=3, n_threads=1),
    "chain-greedy": lambda: ClassifierChain(order="frequency", random_state=3, n_threads=1),
    "chain-ensemble-beam": lambda: ClassifierChain(order="random", n_chains=2, bootstrap=True,
                                                   inference="beam", beam_width=4,
                                                   random_state=3, n_threads=1),
    "powerset": lambda: LabelPowerset(random_state=3, n_threads=1),
    "rakel-disjoint": lambda: RAkEL(k=4, random_state=3, n_threads=1),
    "rakel-overlapping": lambda: RAkEL(k=3, mode="overlapping", random_state=3, n_threads=1),
    # k=3: check_many_labels has 3 rows per label, so a row's own label fills its neighbours
    "mlknn": lambda: MLkNN(k=3, block_rows=37, n_threads=2),
    "forest-random": lambda: LabelForest(n_estimators=10, random_state=3, n_threads=2),
    "forest-extra": lambda: LabelForest(kind="extra", n_estimators=5, min_samples_leaf=2,
                                        random_state=3, n_threads=1),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_conformance(check, family, tmp_path):
    check(FAMILIES[family], tmp_path)
