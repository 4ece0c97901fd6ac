"""FewShot: prototype arithmetic against slow references, incremental learn, leave-one-out
calibration, the shared conformance suite, and the real encoder on a GoEmotions subset."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import label_ranking_average_precision_score as lrap
from sklearn.metrics import roc_auc_score

from conftest import goemotions_subset
from labelwise import Dataset
from labelwise.errors import DataFormatError
from labelwise.models import persist
from labelwise.models.fewshot import FewShot
from labelwise.models.zeroshot import ZeroShot


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """Until the lead registers the classes in persist.MODEL_CLASSES (then this is a no-op)."""
    for name, mod in (("ZeroShot", "zeroshot"), ("FewShot", "fewshot")):
        if name not in persist.MODEL_CLASSES:
            monkeypatch.setitem(persist.MODEL_CLASSES, name, (f"labelwise.models.{mod}", name))


def _unit(a):
    a = np.asarray(a, dtype=np.float64)
    n = np.linalg.norm(a, axis=-1, keepdims=True)
    return np.divide(a, n, out=np.zeros_like(a), where=n > 0)


def _data(seed=0, n=60, d=12, L=5):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < 0.3).astype(np.float32)
    Y[:, -1] = 0  # the last label has no examples
    centres = rng.normal(size=(L, d))
    E = _unit(Y @ centres + rng.normal(size=(n, d)))  # items lie near their labels' centres
    Z = _unit(rng.normal(size=(L, d))).astype(np.float32)
    return E.astype(np.float32), sp.csr_matrix(Y), Z


@pytest.fixture
def fixed_names(monkeypatch):
    """Label-name vectors without the encoder, for the arithmetic tests (the real encoder is
    used at the end of this module)."""
    holder = {}
    monkeypatch.setattr(FewShot, "embed_labels", lambda self, labels: holder["Z"])
    return holder


def _reference_prototype(E, y_col, z, alpha):
    """p = unit(w * unit(sum of examples) + (1 - w) * z), w = c / (c + alpha), by a loop."""
    total = np.zeros(E.shape[1])
    c = 0
    for i in range(E.shape[0]):
        if y_col[i]:
            total += E[i]
            c += 1
    w = c / (c + alpha)
    return _unit(w * _unit(total) + (1 - w) * np.asarray(z, dtype=np.float64))


def _reference_centered(P, prior=8.0):
    """u_j = unit(p_j - beta * mean of the non-zero p), beta = L / (L + prior), by loops;
    zero rows stay zero."""
    live = [j for j in range(len(P)) if np.any(P[j] != 0)]
    mean = np.zeros(P.shape[1])
    for j in live:
        mean += np.asarray(P[j], dtype=np.float64)
    mean /= max(len(live), 1)
    beta = len(live) / (len(live) + prior)
    out = np.zeros(P.shape)
    for j in live:
        out[j] = _unit(np.asarray(P[j], dtype=np.float64) - beta * mean)
    return out


def test_prototypes_match_reference_and_empty_labels_are_zero_shot(fixed_names):
    E, Y, Z = _data()
    fixed_names["Z"] = Z
    m = FewShot(alpha=3.0, calibrate=False).fit(E, Y)
    Yd = Y.toarray()
    for j in range(Y.shape[1]):
        np.testing.assert_allclose(m.prototypes_[j], _reference_prototype(E, Yd[:, j], Z[j], 3.0),
                                   atol=1e-6)
    assert m.example_counts_.tolist() == Yd.sum(0).astype(int).tolist()
    S = m.decision_function(E, k=5).toarray()
    # scores are cosines with the centred prototypes (beta = 5 / 13 here)
    np.testing.assert_allclose(S, E @ _reference_centered(m.prototypes_).T, atol=1e-6)
    assert not np.allclose(S, E @ m.prototypes_.T, atol=1e-3)
    raw = FewShot(alpha=3.0, calibrate=False, center_labels=False).fit(E, Y)
    S = raw.decision_function(E, k=5).toarray()
    zs = ZeroShot.from_label_embeddings(Z, center_labels=False).decision_function(E, k=5)
    np.testing.assert_allclose(S[:, -1], zs.toarray()[:, -1], atol=1e-6)  # no examples: zero-shot
    np.testing.assert_allclose(S, E @ raw.prototypes_.T, atol=1e-6)


def test_centering_keeps_zero_prototypes_zero_and_follows_learn(fixed_names):
    """Without label names a label with no examples scores 0, centred or not; learning new
    examples moves the shared mean, so every label's scoring vector is recomputed."""
    E, Y, Z = _data(seed=4, n=40, L=5)
    fixed_names["Z"] = Z
    m = FewShot(use_label_names=False, calibrate=False).fit(E[:20], Y[:20])
    V = m._label_vectors()
    assert np.all(V[-1] == 0) and np.all(m.decision_function(E, k=5).toarray()[:, -1] == 0)
    np.testing.assert_allclose(V, _reference_centered(m.prototypes_), atol=1e-6)
    before = V.copy()
    m.learn(E[20:], Y[20:])
    np.testing.assert_allclose(m._label_vectors(), _reference_centered(m.prototypes_), atol=1e-6)
    assert not np.allclose(before[:-1], m._label_vectors()[:-1], atol=1e-3)


def test_more_examples_move_prototypes_smoothly_towards_the_examples(fixed_names):
    E, Y, Z = _data(n=400, L=3)
    fixed_names["Z"] = Z
    mean_dir = _unit(Y.T @ E)
    prev = -1.0
    for n in (1, 5, 20, 80, 400):
        m = FewShot(calibrate=False).fit(E[:n], Y[:n])
        sim = float(m.prototypes_[0] @ mean_dir[0])
        assert sim >= prev - 1e-6
        prev = sim
    assert prev > 0.98


def test_learn_adds_examples_like_one_fit(fixed_names, tmp_path):
    E, Y, Z = _data(seed=3, n=90)
    fixed_names["Z"] = Z
    whole = FewShot(calibrate=False).fit(E, Y, labels=list("abcde"))
    parts = FewShot(calibrate=False).fit(E[:30], Y[:30], labels=list("abcde"))
    parts.learn(E[30:70], Y[30:70])
    parts.save(tmp_path / "m")
    loaded = FewShot.load(tmp_path / "m")
    for m in (parts, loaded):
        m.learn(Dataset(E[70:], Y[70:], list("abcde")))
        np.testing.assert_allclose(m.example_sums_, whole.example_sums_, atol=1e-9)
        assert np.array_equal(m.example_counts_, whole.example_counts_)
        np.testing.assert_allclose(m.decision_function(E, k=3).data,
                                   whole.decision_function(E, k=3).data, atol=1e-6)
    with pytest.raises(DataFormatError, match="4 columns, expected 5"):
        whole.learn(E[:2], np.ones((2, 4)))
    with pytest.raises(DataFormatError, match="embedding dimensions"):
        whole.learn(E[:2, :6], Y[:2])


def test_leave_one_out_calibration_pairs_match_refitting(fixed_names):
    E, Y, Z = _data(seed=5, n=25, L=4)
    fixed_names["Z"] = Z
    m = FewShot(alpha=2.0).fit(E, Y)
    rows, cols, s, y = m._calibration_pairs(E, Y, 50)
    Yd = Y.toarray()
    assert len(s) == 25 * 4 and y.sum() == Yd.sum()
    # the positive pairs use the leave-one-out prototype, centred by the full model's mean
    P_full = np.array([_reference_prototype(E, Yd[:, j], Z[j], 2.0) for j in range(4)])
    shift = 4 / (4 + 8) * P_full.mean(0)
    U_full = _reference_centered(P_full)
    for r, c, score, target in zip(rows, cols, s, y, strict=True):
        if target:
            keep = np.arange(25) != r
            u = _unit(_reference_prototype(E[keep], Yd[keep, c], Z[c], 2.0) - shift)
        else:
            u = U_full[c]
        assert score == pytest.approx(float(u @ E[r]), abs=1e-5)
    # the fitted temperature and bias are those of a logistic fit on these pairs
    from labelwise.models.zeroshot import fit_sigmoid

    assert (m.temperature_, m.bias_) == pytest.approx(fit_sigmoid(s, y))


def test_calibration_without_negatives_warns_and_keeps_defaults(fixed_names):
    E, _, Z = _data(n=4, L=2)
    fixed_names["Z"] = Z[:2]
    with pytest.warns(UserWarning, match="calibration skipped"):
        m = FewShot().fit(E, np.ones((4, 2)))
    assert (m.temperature_, m.bias_) == (0.05, 0.22)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        FewShot(alpha=0).fit(E, np.ones((4, 2)))


# the shared conformance suite runs on FewShot as a nearest-centroid model in
# tests/test_conformance.py (family "fewshot-centroids")


# ---------------------------------------------------------------------- real encoder
EMOTIONS = ["joy", "anger", "sadness", "fear", "surprise", "love", "gratitude", "disgust"]


def _emotion_subset(split: str) -> Dataset:
    """GoEmotions rows with one of 8 distinct emotions, restricted to those 8 labels."""
    return goemotions_subset(split, EMOTIONS)


def _k_shot(ds: Dataset, k: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    Yc = ds.Y.tocsc()
    rows: set[int] = set()
    for j in range(ds.n_labels):
        pos = Yc.indices[Yc.indptr[j]:Yc.indptr[j + 1]]
        rows.update(rng.choice(pos, size=min(k, pos.size), replace=False).tolist())
    return ds.subset(np.array(sorted(rows)))


def test_few_shot_improves_with_k_on_goemotions(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELWISE_CACHE_HOME", str(tmp_path / "cache"))
    train, test = _emotion_subset("train"), _emotion_subset("test").subset(np.arange(300))
    zs = ZeroShot(progress=False).fit(labels=test.labels)
    E = zs.embed(test.X)
    Y = test.Y.toarray()

    def scores(model):
        S = model.decision_function(E, k=len(EMOTIONS)).toarray()
        return Y[np.arange(len(S)), S.argmax(1)].mean(), lrap(Y, S)

    p0, r0 = scores(zs)
    m1 = FewShot(progress=False).fit(_k_shot(train, 1, 0))
    p1, r1 = scores(m1)
    shots16 = _k_shot(train, 16, 0)
    m16 = FewShot(progress=False).fit(shots16)
    p16, r16 = scores(m16)
    # measured (seed 0): P@1 0.447 / 0.497 / 0.603, LRAP 0.632 / 0.666 / 0.748
    assert r16 > r1 + 0.04 and p16 > p1 + 0.05, (p1, r1, p16, r16)
    assert r16 > r0 + 0.06, (r0, r16)
    # centring the prototypes ranks each label's items better (per-label macro ROC AUC,
    # what per-label thresholds act on); measured 0.841 against 0.797 uncentred at 16 shots
    raw16 = FewShot(progress=False, center_labels=False).fit(shots16)
    auc = roc_auc_score(Y, m16.decision_function(E, k=len(EMOTIONS)).toarray(), average="macro")
    auc_raw = roc_auc_score(Y, raw16.decision_function(E, k=len(EMOTIONS)).toarray(),
                            average="macro")
    assert auc > auc_raw + 0.02, (auc, auc_raw)
    # learning the 16-shot examples on top of a 1-shot model equals fitting them directly
    inc = FewShot(progress=False, calibrate=False).fit(shots16.subset(np.arange(40)))
    inc.learn(shots16.subset(np.arange(40, len(shots16))))
    direct = FewShot(progress=False, calibrate=False).fit(shots16)
    np.testing.assert_allclose(inc.prototypes_, direct.prototypes_, atol=1e-6)
    # save/load: identical scores
    m16.save(tmp_path / "fs")
    back = FewShot.load(tmp_path / "fs")
    A, B = m16.predict_proba(E, k=3), back.predict_proba(E, k=3)
    assert np.array_equal(A.indices, B.indices) and np.array_equal(A.data, B.data)
    assert (back.temperature_, back.bias_) == (m16.temperature_, m16.bias_)
