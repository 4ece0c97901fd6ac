"""Set-based metrics: hand-computed values, scikit-learn agreement, input kinds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.metrics as skm

from labelwise.errors import DataFormatError
from labelwise.metrics import (
    LabelSets,
    cf1_score,
    cp_score,
    cr_score,
    f1_score,
    hamming_loss,
    jaccard_score,
    of1_score,
    op_score,
    or_score,
    precision_recall_f1,
    precision_score,
    recall_score,
    subset_accuracy,
    tagging_scores,
)

CHECKED_METRICS = {
    *(f"{a}_{m}" for a in ("micro", "macro", "samples", "weighted")
      for m in ("precision", "recall", "f1")),
    "hamming_loss", "subset_accuracy", "jaccard", "cp", "cr", "cf1", "op", "or", "of1",
}

Y = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
P = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])


def test_hand_computed_tiny_case():
    # per label tp/pred/true: l0 1/1/2, l1 1/2/2, l2 0/0/1, l3 0/1/0
    sets = LabelSets(P)
    assert precision_score(Y, sets, average="micro") == pytest.approx(2 / 4)
    assert recall_score(Y, sets, average="micro") == pytest.approx(2 / 5)
    assert f1_score(Y, sets, average="micro") == pytest.approx(4 / 9)
    assert precision_score(Y, sets, average="macro") == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert recall_score(Y, sets, average="macro") == pytest.approx((0.5 + 0.5 + 0 + 0) / 4)
    assert f1_score(Y, sets, average="macro") == pytest.approx((2 / 3 + 0.5 + 0 + 0) / 4)
    assert precision_score(Y, sets, average="macro", zero_division=1.0) == pytest.approx(
        (1 + 0.5 + 1 + 0) / 4)
    assert recall_score(Y, sets, average="macro", zero_division=np.nan) == pytest.approx(
        (0.5 + 0.5 + 0) / 3)
    # weighted by support 2, 2, 1, 0
    assert recall_score(Y, sets, average="weighted") == pytest.approx((1 + 1 + 0) / 5)
    # rows: tp/pred/true: r0 1/2/2, r1 1/1/1, r2 0/0/2, r3 0/1/0
    assert precision_score(Y, sets, average="samples") == pytest.approx((0.5 + 1 + 0 + 0) / 4)
    assert recall_score(Y, sets, average="samples") == pytest.approx((0.5 + 1 + 0 + 0) / 4)
    assert f1_score(Y, sets, average="samples") == pytest.approx((0.5 + 1 + 0 + 0) / 4)
    assert hamming_loss(Y, sets) == pytest.approx((2 + 0 + 2 + 1) / 16)
    assert subset_accuracy(Y, sets) == pytest.approx(1 / 4)
    assert jaccard_score(Y, sets) == pytest.approx((1 / 3 + 1 + 0 + 0) / 4)
    cp, cr = 1.5 / 4, 1.0 / 4
    assert cp_score(Y, sets) == pytest.approx(cp)
    assert cr_score(Y, sets) == pytest.approx(cr)
    assert cf1_score(Y, sets) == pytest.approx(2 * cp * cr / (cp + cr))
    assert op_score(Y, sets) == pytest.approx(0.5)
    assert or_score(Y, sets) == pytest.approx(0.4)
    assert of1_score(Y, sets) == pytest.approx(2 * 0.5 * 0.4 / 0.9)
    assert set(tagging_scores(Y, sets)) == {"cp", "cr", "cf1", "op", "or", "of1"}


def _random_sets(seed, n=80, L=10):
    rng = np.random.default_rng(seed)
    Yt = (rng.random((n, L)) < 0.25).astype(int)
    Yp = (rng.random((n, L)) < 0.25).astype(int)
    Yt[:, 0] = 0  # a label never true
    Yp[:, 1] = 0  # a label never predicted
    Yt[3] = 0
    Yp[3] = 0  # a row empty on both sides
    Yp[4] = 0
    Yt[5] = Yp[5]  # an exact match
    return Yt, Yp


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("average", ["micro", "macro", "samples", "weighted", None])
@pytest.mark.parametrize("zero_division", [0.0, 1.0, np.nan])
def test_precision_recall_f1_match_sklearn(seed, average, zero_division):
    Yt, Yp = _random_sets(seed)
    got = precision_recall_f1(sp.csr_matrix(Yt), LabelSets(sp.csr_matrix(Yp)),
                              average=average, zero_division=zero_division)
    ref = skm.precision_recall_fscore_support(Yt, Yp, average=average,
                                              zero_division=zero_division)[:3]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("seed", range(4))
def test_other_set_metrics_match_sklearn(seed):
    Yt, Yp = _random_sets(seed)
    sets = LabelSets(Yp)
    assert hamming_loss(Yt, sets) == pytest.approx(skm.hamming_loss(Yt, Yp), abs=1e-12)
    assert subset_accuracy(Yt, sets) == pytest.approx(skm.accuracy_score(Yt, Yp), abs=1e-12)
    for avg in ("samples", "micro", "macro", "weighted"):
        for z in (0.0, 1.0):
            assert jaccard_score(Yt, sets, average=avg, zero_division=z) == pytest.approx(
                skm.jaccard_score(Yt, Yp, average=avg, zero_division=z), abs=1e-12)
    # OP/OR/OF1 are the micro averages, CP/CR the macro ones
    p, r, f = skm.precision_recall_fscore_support(Yt, Yp, average="micro", zero_division=0)[:3]
    assert op_score(Yt, sets) == pytest.approx(p, abs=1e-12)
    assert or_score(Yt, sets) == pytest.approx(r, abs=1e-12)
    assert of1_score(Yt, sets) == pytest.approx(f, abs=1e-12)
    p, r = skm.precision_recall_fscore_support(Yt, Yp, average="macro", zero_division=0)[:2]
    assert cp_score(Yt, sets) == pytest.approx(p, abs=1e-12)
    assert cr_score(Yt, sets) == pytest.approx(r, abs=1e-12)


def test_sets_from_scores_threshold_and_top_k():
    rng = np.random.default_rng(1)
    Yt = (rng.random((30, 7)) < 0.3).astype(int)
    S = np.round(rng.random((30, 7)), 1)
    ref = skm.f1_score(Yt, (S >= 0.5).astype(int), average="macro", zero_division=0)
    assert f1_score(Yt, S, average="macro", threshold=0.5) == pytest.approx(ref, abs=1e-12)
    # top-k CSR: only stored entries can pass the threshold
    top = sp.csr_matrix(np.where(S >= 0.3, S, 0))
    Pd = ((S >= 0.5) & (S >= 0.3)).astype(int)
    assert f1_score(Yt, top, average="micro", threshold=0.5) == pytest.approx(
        skm.f1_score(Yt, Pd, average="micro"), abs=1e-12)
    # top-2 sets, ties by smaller label id
    P2 = np.zeros_like(Yt)
    for i in range(30):
        order = sorted(range(7), key=lambda j: (-S[i, j], j))[:2]
        P2[i, order] = 1
    assert LabelSets.from_top_k(S, 2).Y.toarray().astype(int).tolist() == P2.tolist()
    assert f1_score(Yt, S, average="samples", k=2) == pytest.approx(
        skm.f1_score(Yt, P2, average="samples", zero_division=0), abs=1e-12)


def test_scores_without_rule_and_bad_inputs_are_refused():
    with pytest.raises(DataFormatError, match="LabelSets"):
        f1_score(Y, P)
    with pytest.raises(DataFormatError, match="not both"):
        f1_score(Y, P.astype(float), threshold=0.5, k=1)
    with pytest.raises(DataFormatError, match="apply to scores"):
        f1_score(Y, LabelSets(P), threshold=0.5)
    with pytest.raises(DataFormatError, match="average"):
        f1_score(Y, LabelSets(P), average="binary")
    with pytest.raises(DataFormatError, match="predicted label sets"):
        LabelSets(np.array([[0, 2]]))
    with pytest.raises(DataFormatError, match="shape"):
        f1_score(Y, LabelSets(P[:, :3]))
    with pytest.raises(DataFormatError, match="Y_true"):
        f1_score(np.array([[0.5, 1.0, 0, 0]]), LabelSets(P[:1]))


def test_empty_inputs_degenerate():
    Yt = np.zeros((3, 4), dtype=int)
    sets = LabelSets(np.zeros((3, 4), dtype=int))
    assert precision_score(Yt, sets) == 0.0
    assert precision_score(Yt, sets, zero_division=1.0) == 1.0
    assert math.isnan(f1_score(Yt, sets, average="macro", zero_division=np.nan))
    assert hamming_loss(Yt, sets) == 0.0
    assert subset_accuracy(Yt, sets) == 1.0
    assert cf1_score(Yt, sets) == 0.0
    assert jaccard_score(Yt, sets, zero_division=1.0) == 1.0
