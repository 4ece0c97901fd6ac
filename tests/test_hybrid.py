"""Hybrid pipelines: labels added after training (zero-shot, then few-shot) next to supervised
ones, on one probability scale, in one ranking and one decision; the merge and policy
extension against plain references; the real encoder on a GoEmotions subset."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from conftest import goemotions_subset
from labelwise import Dataset
from labelwise.decision import Combined, GlobalThreshold, PerLabelThreshold
from labelwise.errors import LabelError, LabelwiseError, UnknownLabelError
from labelwise.features import Tfidf
from labelwise.labels import LabelSpace
from labelwise.models import OneVsRest
from labelwise.models.fewshot import FewShot
from labelwise.models.hybrid import merge_topk, remap
from labelwise.models.zeroshot import ZeroShot
from labelwise.pipeline import Pipeline
from labelwise.pipeline_open import extend_policy

EMOTIONS = ["joy", "anger", "sadness", "fear", "surprise", "love", "gratitude", "disgust"]
NEW = "gratitude"
DESCRIPTION = "Thanks: the writer thanks someone or is grateful."
KNOWN = [e for e in EMOTIONS if e != NEW]


# ---------------------------------------------------------------------- no encoder
def _topk(rng, n, L, k):
    S = rng.normal(size=(n, L)).astype(np.float32)
    keep = np.argsort(-S, axis=1)[:, :k]
    M = np.zeros_like(S)
    np.put_along_axis(M, keep, 1, axis=1)
    return sp.csr_matrix(np.where(M > 0, S, 0)), keep


def test_merge_topk_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    n, La, Lb, k = 30, 6, 4, 3
    Sa, _ = _topk(rng, n, La, k)
    Sb, _ = _topk(rng, n, Lb, 2)
    Pa, Pb = Sa.copy(), Sb.copy()
    Pa.data = 1 / (1 + np.exp(-Sa.data))
    Pb.data = np.round(rng.random(Sb.nnz), 1).astype(np.float32)  # ties in probability
    Pa.data[:5] = Pb.data[:5]
    S, P = merge_topk(Sa, Pa, Sb, Pb, k)
    for i in range(n):
        pairs = []
        for M, Q, off in ((Sa, Pa, 0), (Sb, Pb, La)):
            for p in range(M.indptr[i], M.indptr[i + 1]):
                pairs.append((-float(np.float32(Q.data[p])), int(M.indices[p]) + off,
                              float(M.data[p])))
        best = sorted(pairs)[:k]
        want = sorted((c, s, -q) for q, c, s in best)
        got_cols = S.indices[S.indptr[i]:S.indptr[i + 1]].tolist()
        assert got_cols == [c for c, _, _ in want]
        np.testing.assert_array_equal(S.data[S.indptr[i]:S.indptr[i + 1]],
                                      np.float32([s for _, s, _ in want]))
        np.testing.assert_array_equal(P.data[P.indptr[i]:P.indptr[i + 1]],
                                      np.float32([q for _, _, q in want]))
    assert S.shape == (n, La + Lb) and np.array_equal(S.indptr, P.indptr)
    with pytest.raises(ValueError, match="same pairs"):
        merge_topk(Sa, Pb, Sb, Pb, k)


def test_extend_policy_gives_new_labels_the_global_rule():
    rng = np.random.default_rng(1)
    P = rng.random((80, 4))
    Y = sp.csr_matrix((rng.random((80, 4)) < P).astype(np.float32))
    plt = PerLabelThreshold(objective="micro-f1").fit(P, Y)
    ext = extend_policy(plt, 2)
    assert ext.n_labels_ == 6 and plt.n_labels_ == 4  # the fitted policy is not touched
    np.testing.assert_array_equal(ext.thresholds_[:4], plt.thresholds_)
    assert ext.thresholds_[4:].tolist() == [plt.global_threshold_] * 2
    P6 = np.hstack([P, P[:, :2]])
    sets = ext.apply(P6).toarray()
    assert np.array_equal(sets[:, 4:], (P[:, :2] >= plt.global_threshold_).astype(np.float32))
    g = GlobalThreshold(objective="micro-f1").fit(P, Y)
    assert np.array_equal(extend_policy(g, 2).apply(P6).toarray(), (P6 >= g.threshold_) * 1.0)
    comb = Combined(PerLabelThreshold(objective="macro-f1"), k=2).fit(P, Y)
    ce = extend_policy(comb, 2)
    assert ce.threshold_policy_.thresholds_.shape == (6,) and ce.apply(P6).shape == (80, 6)


def test_remap_by_name():
    Y = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0]], np.float32))
    out = remap(Y, LabelSpace(["c", "a", "x"]), LabelSpace(["a", "b", "c"]), unknown="ignore")
    assert out.toarray().tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(UnknownLabelError, match="'x'"):
        remap(Y, LabelSpace(["c", "a", "x"]), LabelSpace(["a", "b", "c"]))


# ---------------------------------------------------------------------- real encoder
def emotion_subset(split: str, n: int) -> Dataset:
    """The first n GoEmotions rows of a split holding one of 8 emotions (those 8 labels)."""
    return goemotions_subset(split, EMOTIONS, n)


def shared_cache(tmp_path_factory) -> str:
    """One embedding cache for this session's hybrid tests (both test modules embed the same
    texts once)."""
    path = tmp_path_factory.getbasetemp() / "hybrid-embedding-cache"
    path.mkdir(exist_ok=True)
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABELWISE_CACHE_HOME", shared_cache(tmp_path_factory))
        train, test = emotion_subset("train", 240), emotion_subset("test", 200)
        yield train, test


@pytest.fixture(scope="module")
def hybrid(data):
    """tf-idf + one-vs-rest trained on 7 emotions and tuned; gratitude added by its name."""
    train, _ = data
    known = train.Y[:, [EMOTIONS.index(e) for e in KNOWN]].tocsr()
    pipe = Pipeline(Tfidf(), OneVsRest(n_threads=1, random_state=0),
                    open_labels=FewShot(progress=False), cv=3, k=7)
    pipe.fit(train.X, known, labels=KNOWN)
    pipe.tune(train.X, known, objective="micro-f1")
    assert pipe.open_calibration_["n_rows"] == len(train.X)  # tune fitted it on the train rows
    pipe.add_labels([NEW], descriptions=[DESCRIPTION])
    return pipe


def _auc(pipe, test, X=None):
    P = pipe.predict_proba(test.X if X is None else X, k=len(EMOTIONS)).toarray()
    y = test.Y[:, EMOTIONS.index(NEW)].toarray().ravel()
    return roc_auc_score(y, P[:, pipe.labels_.index(NEW)]), P


def test_added_label_is_predicted_at_once_and_ranks_its_items(hybrid, data):
    pipe, (_, test) = hybrid, data
    assert list(pipe.labels_.names) == KNOWN + [NEW]
    assert pipe.labels_.description(NEW) == DESCRIPTION
    kinds = {d["label"]: (d["kind"], d["examples"]) for d in pipe.label_info()}
    assert kinds[NEW] == ("zero-shot", 0) and kinds["joy"][0] == "supervised"
    assert kinds["joy"][1] == int(data[0].Y[:, 0].sum())
    auc, P = _auc(pipe, test)
    assert auc > 0.6, auc  # measured 0.728 (0.5 is chance)
    # the new label takes part in the label sets: chosen when its probability passes the
    # tuned global threshold (per-label thresholds give unseen labels the shrinkage target)
    S, P8, sets = pipe.score_and_sets(test.X, k=8)
    j = pipe.labels_.index(NEW)
    t = pipe.decision_.global_threshold_
    assert np.array_equal(sets.toarray()[:, j], (P8.toarray()[:, j] >= t) * 1.0)
    assert sets.toarray()[:, j].sum() > 0
    items = pipe.predict_labels(["Thank you so much, I really appreciate your help!"], k=3)
    assert items[0]["candidates"][0]["label"] == NEW, items


def test_probabilities_share_one_scale(hybrid, data):
    pipe, (_, test) = hybrid, data
    cal = pipe.open_calibration_
    # the open mapping, fitted on the supervised labels' zero-shot cosines of the training
    # rows, gives those labels on *test* rows a mean probability near their observed rate
    # (open labels score uncentred cosines: see labelwise.models.hybrid.template_from)
    zs = ZeroShot(progress=False, temperature=cal["temperature"], bias=cal["bias"],
                  center_labels=False)
    zs.fit(labels=KNOWN)
    Yk = test.Y[:, [EMOTIONS.index(e) for e in KNOWN]].toarray()
    Pz = zs.predict_proba(test.X, k=len(KNOWN)).toarray()
    assert abs(Pz.mean() - Yk.mean()) < 0.03, (Pz.mean(), Yk.mean())  # measured 0.125, 0.114
    raw = ZeroShot(progress=False, center_labels=False).fit(labels=KNOWN).predict_proba(
        test.X, k=len(KNOWN))
    # the default mapping is further off (measured mean 0.079)
    assert abs(raw.toarray().mean() - Yk.mean()) > abs(Pz.mean() - Yk.mean())
    # and the supervised side's calibrated probabilities are near the same rate
    P = pipe.predict_proba(test.X, k=8).toarray()
    assert abs(P[:, :7].mean() - Yk.mean()) < 0.06, (P[:, :7].mean(), Yk.mean())  # 0.155
    # each entry: supervised = the calibrator's value, open = sigmoid((cos - bias) / T)
    part = pipe.open_labels_.part
    cos = part.decision_function(test.X[:20], k=1).toarray()[:, 0]
    want = 1 / (1 + np.exp(-(cos - cal["bias"]) / cal["temperature"]))
    np.testing.assert_allclose(P[:20, 7], want, rtol=1e-5)
    Ssup = pipe.model.decision_function(pipe.featurizer.transform(test.X[:20]), k=7)
    np.testing.assert_allclose(P[:20, :7], pipe.calibrator_.transform(Ssup).toarray(), rtol=1e-6)


def test_save_load_identical_and_learn_improves(hybrid, data, tmp_path):
    pipe, (train, test) = hybrid, data
    import json

    pipe.save(tmp_path / "h")
    doc = json.loads((tmp_path / "h" / "pipeline.json").read_text())
    assert doc["format_version"] == 2 and doc["n_labels"] == 8
    back = Pipeline.load(tmp_path / "h")
    for a, b in zip(pipe.score_and_sets(test.X, k=5), back.score_and_sets(test.X, k=5),
                    strict=True):
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)
    assert back.predict_labels(test.X[:5]) == pipe.predict_labels(test.X[:5])
    # the parameter is kept apart from the open part; a file written before params held it
    # (the part was the parameter then) loads the part and takes its encoder settings
    assert back.open_labels.get_params() == pipe.open_labels.get_params()
    assert back.open_labels_.part is not None and not hasattr(back.open_labels, "labels_")
    import shutil

    shutil.copytree(tmp_path / "h", tmp_path / "old")
    old = {**doc, "params": {k: v for k, v in doc["params"].items() if k != "open_labels"}}
    (tmp_path / "old" / "pipeline.json").write_text(json.dumps(old))
    older = Pipeline.load(tmp_path / "old")
    assert not hasattr(older.open_labels, "labels_") and older.open_labels.calibrate is False
    assert older.predict_labels(test.X[:5]) == pipe.predict_labels(test.X[:5])
    auc0, _ = _auc(back, test)
    # 8 examples of the new label (from training rows, with their other labels)
    j = EMOTIONS.index(NEW)
    rows = np.flatnonzero(train.Y[:, j].toarray().ravel())[:8]
    shots = train.subset(rows)
    with pytest.warns(UserWarning, match="supervised label.*not learned"):
        back.learn(shots)
    info = {d["label"]: d for d in back.label_info()}
    assert (info[NEW]["kind"], info[NEW]["examples"]) == ("few-shot", 8)
    auc1, _ = _auc(back, test)
    assert auc1 > auc0 + 0.05, (auc0, auc1)  # measured 0.728 -> 0.859
    back.save(tmp_path / "h")
    again = Pipeline.load(tmp_path / "h")
    A, B = back.predict_proba(test.X, k=4), again.predict_proba(test.X, k=4)
    assert np.array_equal(A.indices, B.indices) and np.array_equal(A.data, B.data)
    # retraining with data for the label makes it supervised: it leaves the open part
    again.fit(train)
    assert list(again.labels_.names) == EMOTIONS and again.n_open_labels == 0


def test_errors(hybrid, data):
    pipe, (train, _) = hybrid, data
    with pytest.raises(LabelError, match="already in the pipeline: 'gratitude'"):
        pipe.add_labels(NEW)
    with pytest.raises(LabelError, match="already in the pipeline: 'joy'"):
        pipe.add_labels(["joy"])
    with pytest.raises(UnknownLabelError, match=r"1 label\(s\) of the data are not in the "
                                                r"pipeline: 'awe'"):
        pipe.learn(train.X[:2], np.ones((2, 1)), labels=["awe"])
    numeric = Pipeline(model=OneVsRest(n_threads=1)).fit(np.eye(4), np.eye(4)[:, :2])
    with pytest.raises(LabelwiseError, match="only be added to a pipeline on texts"):
        numeric.add_labels("x")
    raw = Pipeline(Tfidf(), OneVsRest(n_threads=1), cv=3)
    known = train.Y[:, :2].tocsr()
    raw.tune(train.X, known, objective="micro-f1", calibration="none", labels=EMOTIONS[:2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(LabelwiseError, match="raw scores"):
            raw.add_labels("x")
