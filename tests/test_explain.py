"""labelwise.explain: per-term contributions, checked against dense weight-matrix products and
against the models' own scores."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.errors import DataFormatError, LabelwiseError, UnknownLabelError
from labelwise.explain import explain_labels, explainable, label_contributions
from labelwise.features import Tfidf
from labelwise.models import LabelTree, OneVsRest
from labelwise.pipeline import Pipeline

NAMES = [f"topic{j}" for j in range(12)]


def _texts(n=240, seed=0):
    """Each label has two marker words; texts mix 1-2 labels' markers with filler words."""
    rng = np.random.default_rng(seed)
    filler = [f"w{i}" for i in range(30)]
    texts, Y = [], []
    for _ in range(n):
        labs = sorted(rng.choice(len(NAMES), size=int(rng.integers(1, 3)), replace=False).tolist())
        toks = [f"{m}{j}" for j in labs for m in ("alpha", "beta") if rng.random() < 0.8]
        toks += rng.choice(filler, 5).tolist()
        rng.shuffle(toks)
        texts.append(" ".join(toks))
        Y.append(labs)
    return texts, Y


def _dense_tree_weights(model) -> np.ndarray:
    """Reference: every tree classifier's weights as a dense (n_classifiers, n_features)
    matrix, decoded from the node-major layout by plain loops."""
    starts = model.node_clf_start_
    W = np.zeros((starts[-1], model.n_features_in_))
    for v in range(starts.shape[0] - 1):
        m = starts[v + 1] - starts[v]
        for e in range(model.node_feat_start_[v], model.node_feat_start_[v + 1]):
            f = model.feat_id_[e]
            for q in range(model.feat_ptr_[e], model.feat_ptr_[e + 1]):
                if model.node_dense_[v]:
                    assert model.feat_ptr_[e + 1] - model.feat_ptr_[e] == m
                    child = q - model.feat_ptr_[e]
                else:
                    child = model.val_child_[q - model.child_shift_[v]]
                W[starts[v] + child, f] = model.weights_[q]
    return W


def _reference(pipe, texts):
    """Dense reference: the model's rows X' (n_items, n_features), every label's weights
    (n_features, n_labels) and intercepts; label j's contributions are ``X' * W[:, j]``. The
    weights are the dense OneVsRest coefficients, or per label the mean of its leaf
    classifiers' dense rows."""
    model = pipe.model
    X = pipe.featurizer.transform(texts).toarray().astype(np.float64)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-30)
    if isinstance(model, OneVsRest):
        return X, model.coef_.toarray().astype(np.float64), model.intercept_.astype(np.float64)
    W_clf = _dense_tree_weights(model)
    W = np.zeros((X.shape[1], len(NAMES)))
    b = np.zeros(len(NAMES))
    for j in range(len(NAMES)):
        clfs = [c for c in range(W_clf.shape[0]) if model.clf_child_[c] == -(j + 1)]
        W[:, j] = W_clf[clfs].mean(axis=0)
        b[j] = np.mean(model.intercept_[clfs])
    return X, W, b


@pytest.fixture(scope="module")
def data():
    return _texts()


def _pipe(model, data):
    texts, Y = data
    return Pipeline(Tfidf(ngram_range=(1, 1)), model).fit(texts, Y, labels=NAMES)


MODELS = {
    "ovr": lambda: OneVsRest(n_threads=1, random_state=0),
    "ovr-unpruned": lambda: OneVsRest(n_threads=1, random_state=0, prune_threshold=0.0),
    "tree": lambda: LabelTree(n_threads=1, branching=2, max_leaf_size=3, random_state=0),
    # pruned harder: its leaves are sparse nodes ((child, weight) pairs), the root dense
    "tree-sparse": lambda: LabelTree(n_threads=1, branching=2, max_leaf_size=6,
                                     prune_threshold=0.3, random_state=0),
    "tree3": lambda: LabelTree(n_threads=1, branching=3, max_leaf_size=2, n_trees=3,
                               prune_threshold=0.0, random_state=1),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_contributions_match_a_dense_reference(kind, data):
    texts, _ = data
    pipe = _pipe(MODELS[kind](), data)
    if kind == "tree-sparse":
        assert not pipe.model.node_dense_.all() and pipe.model.node_dense_.any()
    items = texts[:25]
    X = pipe.model._prepare_X(pipe.featurizer.transform(items))
    names = pipe.featurizer.feature_names()
    Xd, W_ref, b_ref = _reference(pipe, items)
    checked = 0
    for j in range(len(NAMES)):
        for i in range(len(items)):
            ref = Xd[i] * W_ref[:, j]
            feats, vals, W, b = label_contributions(pipe.model, X[i], [(j + 5) % 12, j])
            assert W.shape == (feats.size, 2) and np.all(np.diff(feats) > 0)
            got = np.zeros(X.shape[1])
            got[feats] = vals * W[:, 1]
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
            assert b[1] == pytest.approx(b_ref[j], rel=1e-6, abs=1e-7)
            checked += int(np.count_nonzero(ref))
    assert checked > 50  # the reference is not all zeros

    # explain_labels lists the positive contributions of the reference, best first
    out = explain_labels(pipe, items, [NAMES] * len(items), n_terms=3)
    for i, per_label in enumerate(out):
        for j, entry in enumerate(per_label):
            row = Xd[i] * W_ref[:, j]
            want = [names[f] for f in np.lexsort((np.arange(row.size), -row)) if row[f] > 0][:3]
            assert entry["label"] == NAMES[j]
            assert [t["term"] for t in entry["terms"]] == want
            for t in entry["terms"]:
                f = names.index(t["term"])
                assert t["contribution"] == pytest.approx(row[f], rel=1e-5)
                assert t["value"] * t["weight"] == pytest.approx(t["contribution"], rel=1e-6)
            assert entry["margin"] == pytest.approx(row.sum() + b_ref[j], rel=1e-5, abs=1e-6)


def test_marker_words_explain_their_label(data):
    texts, _ = data
    pipe = _pipe(MODELS["ovr"](), data)
    [[entry]] = explain_labels(pipe, ["alpha3 beta3 w1 w2"], [["topic3"]])
    assert {t["term"] for t in entry["terms"][:2]} == {"alpha3", "beta3"}


def test_ovr_margin_is_the_model_score(data):
    texts, _ = data
    pipe = _pipe(MODELS["ovr"](), data)
    items = texts[:10]
    margins = pipe.model.decision_function_dense(pipe.featurizer.transform(items))
    out = explain_labels(pipe, items, [NAMES] * len(items))
    for i, per_label in enumerate(out):
        for j, entry in enumerate(per_label):
            assert entry["margin"] == pytest.approx(float(margins[i, j]), abs=1e-5)


def test_tree_leaf_margin_is_the_model_score(data):
    """One tree whose root holds every label as a leaf child: the score of label j is
    exp(-max(0, 1 - m_j) ** hinge_power), so the margin can be read back from the score."""
    texts, _ = data
    pipe = _pipe(LabelTree(n_threads=1, max_leaf_size=len(NAMES), random_state=0), data)
    model = pipe.model
    assert model.node_clf_start_.shape[0] == 2 and np.all(model.clf_child_ < 0)
    items = texts[:10]
    S = model.decision_function(pipe.featurizer.transform(items), k=len(NAMES)).toarray()
    out = explain_labels(pipe, items, [NAMES] * len(items))
    checked = 0
    for i, per_label in enumerate(out):
        for j, entry in enumerate(per_label):
            s = S[i, j]
            if 1e-6 < s < 1 - 1e-6:
                m = 1 - (-np.log(s)) ** (1 / model.hinge_power)
                assert entry["margin"] == pytest.approx(m, abs=1e-4)
                checked += 1
            elif s >= 1 - 1e-6:
                assert entry["margin"] >= 1 - 1e-3
    assert checked > 20


def test_errors_and_non_explainable_pipelines(data):
    texts, Y = data
    pipe = _pipe(MODELS["ovr"](), data)
    with pytest.raises(UnknownLabelError, match=r"labels\[1\]: unknown label 'nope'"):
        explain_labels(pipe, ["a", "b"], [["topic1"], ["nope"]])
    with pytest.raises(DataFormatError, match="n_terms"):
        explain_labels(pipe, ["a"], [["topic1"]], n_terms=0)
    with pytest.raises(DataFormatError, match="same length"):
        explain_labels(pipe, ["a", "b"], [["topic1"]])
    assert explain_labels(pipe, [], []) == []
    X = pipe.featurizer.transform(texts)
    numeric = Pipeline(None, OneVsRest(n_threads=1)).fit(sp.csr_matrix(X), Y, labels=NAMES)
    assert explainable(pipe) and not explainable(numeric)
    with pytest.raises(LabelwiseError, match="tf-idf featurizer"):
        explain_labels(numeric, ["a"], [["topic1"]])


def test_saved_and_memory_mapped_pipeline_explains_the_same(data, tmp_path):
    texts, _ = data
    pipe = _pipe(MODELS["tree"](), data)
    pipe.save(tmp_path / "p")
    back = Pipeline.load(tmp_path / "p", mmap=True)
    items = texts[:5]
    assert explain_labels(back, items, [NAMES] * 5) == explain_labels(pipe, items, [NAMES] * 5)


def test_explain_route(data, tmp_path):
    """POST /v1/models/{name}/explain answers what explain_labels computes, and problem+json
    naming the field for what it cannot do."""
    pytest.importorskip("fastapi", reason="the route needs the [serve] extra (fastapi)")
    pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from labelwise.serve import ServeSettings, create_app

    texts, Y = data
    pipe = _pipe(MODELS["tree"](), data)
    pipe.save(tmp_path / "words")
    X = pipe.featurizer.transform(texts)
    Pipeline(None, OneVsRest(n_threads=1)).fit(sp.csr_matrix(X), Y, labels=NAMES).save(
        tmp_path / "numbers")
    settings = ServeSettings(models={"words": str(tmp_path / "words"),
                                     "numbers": str(tmp_path / "numbers")},
                             batch_wait_ms=0, max_items=3)
    with TestClient(create_app(settings, load_in_background=False)) as client:
        url = "/v1/models/words/explain"
        r = client.post(url, json={"items": [{"id": "a", "text": texts[0],
                                              "labels": ["topic2", "topic0"]},
                                             {"text": texts[1]}], "top_k": 3, "n_terms": 4})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "words" and len(body["version"]) == 64
        top3 = [c["label"] for c in pipe.predict_labels([texts[1]], k=3)[0]["candidates"]]
        want = explain_labels(pipe, texts[:2], [["topic2", "topic0"], top3], n_terms=4)
        assert body["items"][0]["id"] == "a" and body["items"][1].get("id") is None
        for got, w in zip(body["items"], want):
            assert [e["label"] for e in got["labels"]] == [e["label"] for e in w]
            for g, e in zip(got["labels"], w):
                assert [t["term"] for t in g["terms"]] == [t["term"] for t in e["terms"]]
                assert g["margin"] == pytest.approx(e["margin"])

        def problem(path, body, status, detail):
            r = client.post(path, json=body)
            assert r.status_code == status, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert detail in r.json()["detail"]

        problem(url, {"items": [{"text": "x", "labels": ["topic1", "nope"]}]}, 422,
                "items[0].labels[1]: unknown label 'nope'")
        problem(url, {"items": [{"text": "x"}] * 4}, 422, "at most 3 per request")
        problem(url, {"items": [{"text": "x"}], "n_terms": 0}, 422, "n_terms")
        problem(url, {"items": [{"text": 5}]}, 422, "items[0].text")
        problem("/v1/models/numbers/explain", {"items": [{"text": "x"}]}, 422,
                "no term explanations")
        problem("/v1/models/absent/explain", {"items": [{"text": "x"}]}, 404,
                "no model named 'absent'")
