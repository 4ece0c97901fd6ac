"""labelwise.Pipeline: fit, tune (cross-fitted, leak-free), predict, save/load as one directory."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise.calibration import PlattCalibrator
from labelwise.crossfit import FoldPipeline, cross_fit_scores
from labelwise.dataset import Dataset
from labelwise.decision import GlobalThreshold, PerLabelThreshold, PrecisionTarget
from labelwise.errors import DataFormatError, LabelwiseError, NotFittedError, UnknownLabelError
from labelwise.features import Tfidf
from labelwise.models import OneVsRest
from labelwise.pipeline import Pipeline, load_any, make_policy
from labelwise.split import IterativeStratifiedKFold

NAMES = ["red", "green", "blue", "cyan", "plum"]


def _texts(n=160, seed=0):
    """Texts whose label words (with noise) make the labels learnable, but not perfectly."""
    rng = np.random.default_rng(seed)
    filler = [f"w{i}" for i in range(40)]
    texts, Y = [], []
    for _ in range(n):
        labs = sorted(rng.choice(len(NAMES), size=int(rng.integers(1, 3)), replace=False).tolist())
        toks = [NAMES[j] for j in labs if rng.random() < 0.85]
        toks += [NAMES[int(rng.integers(len(NAMES)))] for _ in range(int(rng.random() < 0.3))]
        toks += rng.choice(filler, 6).tolist()
        rng.shuffle(toks)
        texts.append(" ".join(toks))
        Y.append(labs)
    return texts, Y


def _sparse(n=150, d=30, L=4, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.3, format="csr", random_state=seed, dtype=np.float32)
    Y = sp.csr_matrix((X @ rng.normal(size=(d, L)) > 0.3).astype(np.float32))
    return X, Y


def _ovr():
    return OneVsRest(n_threads=1, random_state=0)


@pytest.fixture(scope="module")
def text_pipe():
    texts, Y = _texts()
    pipe = Pipeline(Tfidf(), _ovr()).fit(texts, Y, labels=NAMES)
    pipe.tune(texts, Y, objective="micro-f1", cv=3, k=4, select_c=False)
    return pipe, texts, Y


def _same(A, B):
    assert A.shape == B.shape
    assert np.array_equal(A.indptr, B.indptr) and np.array_equal(A.indices, B.indices)
    assert np.array_equal(A.data, B.data)


# ---------------------------------------------------------------------------- fit / predict
def test_fit_equals_featurizer_then_model():
    texts, Y = _texts()
    pipe = Pipeline(Tfidf(), _ovr()).fit(texts, Y, labels=NAMES)
    Xf = Tfidf().fit_transform(texts)
    model = _ovr().fit(Xf, Y, labels=NAMES)
    _same(pipe.decision_function(texts[:20], k=3), model.decision_function(Xf[:20], k=3))
    _same(pipe.predict_proba(texts[:20], k=3), model.predict_proba(Xf[:20], k=3))
    _same(pipe.predict(texts[:20]), model.predict(Xf[:20]))  # no policy: the model's rule
    assert pipe.labels_.names == tuple(NAMES) and not pipe.is_tuned
    ds = Dataset(texts, Y, NAMES)
    _same(Pipeline(Tfidf(), _ovr()).fit(ds).decision_function(texts, k=2),
          model.decision_function(Xf, k=2))


def test_tune_equals_manual_crossfit_calibrate_decide(text_pipe):
    pipe, texts, Y = text_pipe
    # by default a tf-idf is fitted in each fold (on the fold's training rows)
    S, folds = cross_fit_scores(FoldPipeline(Tfidf(), _ovr()), texts, Y, cv=3, k=4,
                                random_state=0, return_folds=True)
    cal = PlattCalibrator(per_label=True).fit(S, Y)
    # per-label thresholds: tuned within each fold's scores, then averaged
    pol = PerLabelThreshold(objective="micro-f1").fit(cal.transform(S), Y, folds=folds)
    assert np.array_equal(pipe.decision_.thresholds_, pol.thresholds_)
    assert pipe.calibrator_.kind == "platt" and pipe.calibrator_.per_label
    assert pipe.tuning_ == {"objective": "micro-f1", "calibration": "platt-per-label", "cv": 3,
                            "k": 4, "random_state": 0, "featurizer_in_folds": True,
                            "n_samples": 160}
    # predictions: policy on calibrated top-k (tuning k) probabilities
    Xf = pipe.featurizer.transform(texts)  # the final featurizer: fitted on all rows
    S_new = pipe.model.decision_function(Xf[:30], k=4)
    _same(pipe.predict(texts[:30]), pol.apply(cal.transform(S_new)))
    _same(pipe.predict_proba(texts[:30]), cal.transform(S_new))


def test_featurizer_in_folds_matches_a_hand_written_loop():
    # k=3 of 5 labels: the fold models' top-k scores are mostly negative and must be kept as
    # they are (they were once re-cut as if absent entries were zeros, which dropped them)
    texts, Y = _texts(n=90, seed=3)
    pipe = Pipeline(Tfidf(), _ovr(), featurizer_in_folds=True).fit(texts, Y, labels=NAMES)
    pipe.tune(texts, Y, objective="macro-f1", calibration="none", cv=3, k=3, select_c=False)
    Yc = Dataset(texts, Y, NAMES).Y
    S = sp.lil_matrix(Yc.shape, dtype=np.float32)
    folds = np.empty(90, dtype=np.int64)
    for f, (train, test) in enumerate(IterativeStratifiedKFold(n_splits=3, random_state=0).split(
            np.zeros((90, 1)), Yc)):
        folds[test] = f
        tf = Tfidf().fit([texts[i] for i in train])
        m = _ovr().fit(tf.transform([texts[i] for i in train]), Yc[train])
        S[test] = m.decision_function(tf.transform([texts[i] for i in test]), k=3)
    expect = PerLabelThreshold(objective="macro-f1").fit(sp.csr_matrix(S), Yc, folds=folds)
    assert pipe.calibrator_ is None and pipe.tuning_["featurizer_in_folds"] is True
    np.testing.assert_array_equal(pipe.decision_.thresholds_, expect.thresholds_)
    # the default (None) does the same for tf-idf; a featurizer fitted once on all rows
    # (False) gives other out-of-fold scores
    default = Pipeline(Tfidf(), _ovr()).fit(texts, Y, labels=NAMES)
    default.tune(texts, Y, objective="macro-f1", calibration="none", cv=3, k=3, select_c=False)
    np.testing.assert_array_equal(default.decision_.thresholds_, expect.thresholds_)
    other = Pipeline(Tfidf(), _ovr(), featurizer_in_folds=False).fit(texts, Y, labels=NAMES)
    other.tune(texts, Y, objective="macro-f1", calibration="none", cv=3, k=3, select_c=False)
    assert not np.array_equal(other.decision_.tuned_, pipe.decision_.tuned_)


def test_fit_with_components_tunes_them():
    X, Y = _sparse()
    pipe = Pipeline(model=_ovr(), decision=GlobalThreshold(objective="samples-f1"),
                    cv=3, k=3).fit(X, Y)
    S = cross_fit_scores(_ovr(), X, Y, cv=3, k=3, random_state=0)
    expect = GlobalThreshold(objective="samples-f1").fit(S, Y)
    assert pipe.decision_.threshold_ == expect.threshold_ and pipe.calibrator_ is None
    _same(pipe.predict(X), expect.apply(pipe.model.decision_function(X, k=3)))


def test_predict_labels_against_a_plain_loop(text_pipe):
    pipe, texts, _ = text_pipe
    items = pipe.predict_labels(texts[:25], k=2)
    Xf = pipe.featurizer.transform(texts[:25])
    S = pipe.model.decision_function(Xf, k=4)  # max(k=2, tuning k=4) labels scored
    P = pipe.calibrator_.transform(S).toarray()
    sets = pipe.decision_.apply(pipe.calibrator_.transform(S)).toarray()
    D = S.toarray()
    for i, item in enumerate(items):
        stored = [j for j in range(5) if S[i, j] != 0 or j in S.indices[S.indptr[i]:S.indptr[i + 1]]]
        ranked = sorted(stored, key=lambda j: (-D[i, j], j))[:2]
        assert [c["label"] for c in item["candidates"]] == [NAMES[j] for j in ranked]
        assert [c["score"] for c in item["candidates"]] == pytest.approx([D[i, j] for j in ranked])
        assert [c["probability"] for c in item["candidates"]] == pytest.approx([P[i, j] for j in ranked])
        chosen = [j for j in range(5) if sets[i, j]]
        assert sorted(item["labels"]) == sorted(NAMES[j] for j in chosen)
        assert item["probabilities"] == pytest.approx({NAMES[j]: P[i, j] for j in chosen})
        probs = [item["probabilities"][name] for name in item["labels"]]
        assert probs == sorted(probs, reverse=True)
    assert any(len(it["labels"]) > 1 for it in items) and json.dumps(items)


def test_precision_objective_and_explain():
    X, Y = _sparse(seed=2)
    pipe = Pipeline(model=_ovr()).fit(X, Y)
    pipe.tune(X, Y, objective="precision=0.8", calibration="isotonic", cv=3, k=4)
    assert isinstance(pipe.decision_, PrecisionTarget) and pipe.calibrator_.kind == "isotonic"
    info = pipe.explain()
    assert info["decision"]["policy"] == "precision-target" and info["model"] == "OneVsRest"
    assert pipe.tuning_["objective"] == "precision=0.8"


# ---------------------------------------------------------------------------- no leakage
def test_poisoned_evaluation_rows_cannot_change_tuned_thresholds(tmp_path):
    texts, Y = _texts(n=220, seed=5)
    train, evals = slice(0, 160), slice(160, 220)
    Ytr = Dataset(texts, Y, NAMES).Y
    Y_poison = sp.csr_matrix(1.0 - Ytr[evals].toarray())  # every evaluation label flipped

    def tuned(extra_texts=(), extra_Y=None):
        X = texts[train] + list(extra_texts)
        Yt = Ytr[train] if extra_Y is None else sp.vstack([Ytr[train], extra_Y]).tocsr()
        pipe = Pipeline(Tfidf(), _ovr()).fit(X, Yt, labels=NAMES)
        return pipe.tune(X, Yt, objective="macro-f1", cv=3, k=5)

    clean = tuned()
    before = clean.decision_.thresholds_.copy(), clean.calibrator_.arrays()
    # using the pipeline on a (poisoned) evaluation set changes nothing it has tuned
    clean.predict(texts[evals]), clean.predict_labels(texts[evals]), clean.predict_proba(texts[evals])
    clean.save(tmp_path / "p")
    again = Pipeline.load(tmp_path / "p")
    assert np.array_equal(again.decision_.thresholds_, before[0])
    for key, a in before[1].items():
        assert np.array_equal(again.calibrator_.arrays()[key], a)
    # the same training rows give the same thresholds whatever the evaluation labels are
    assert np.array_equal(tuned().decision_.thresholds_, before[0])
    # control: had the poisoned rows reached tuning, the thresholds would move
    leaked = tuned(texts[evals], Y_poison)
    assert not np.array_equal(leaked.decision_.thresholds_, before[0])


# ---------------------------------------------------------------------------- persistence
def test_text_pipeline_save_load_identical(text_pipe, tmp_path):
    pipe, texts, _ = text_pipe
    pipe.save(tmp_path / "p")
    files = sorted(p.relative_to(tmp_path / "p").as_posix() for p in (tmp_path / "p").rglob("*")
                   if p.is_file())
    assert "pipeline.json" in files and "model/manifest.json" in files
    assert "featurizer/featurizer.json" in files and "decision.npz" in files
    assert all(f.endswith((".json", ".npy", ".npz")) for f in files)  # no pickle anywhere
    doc = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert sorted(doc["files"]) == [f for f in files if f != "pipeline.json"]
    assert doc["components"]["featurizer"]["class"] == "Tfidf"
    for mmap in (False, True):
        back = Pipeline.load(tmp_path / "p", mmap=mmap)
        for k in (None, 2, 5):
            _same(back.decision_function(texts, k=k), pipe.decision_function(texts, k=k))
            _same(back.predict_proba(texts, k=k), pipe.predict_proba(texts, k=k))
        _same(back.predict(texts), pipe.predict(texts))
        assert back.predict_labels(texts, k=3) == pipe.predict_labels(texts, k=3)
        assert back.tuning_ == pipe.tuning_ and back.get_params()["k"] == pipe.k


def test_sparse_pipeline_save_load_and_overwrite(tmp_path):
    X, Y = _sparse()
    pipe = Pipeline(model=_ovr()).fit(X, Y, labels=["a", "b", "c", "d"])
    pipe.save(tmp_path / "p")
    back = load_any(tmp_path / "p")
    assert back.featurizer is None and back.decision_ is None and not back.is_tuned
    _same(back.predict(X), pipe.predict(X))
    _same(back.predict_proba(X, k=2), pipe.predict_proba(X, k=2))
    pipe.tune(X, Y, objective="samples-f1", cv=3, k=3)
    pipe.save(tmp_path / "p")  # replaces the directory whole
    back = Pipeline.load(tmp_path / "p")
    _same(back.predict(X), pipe.predict(X))
    assert back.tuning_["objective"] == "samples-f1"
    assert [p.name for p in tmp_path.iterdir()] == ["p"]  # no temporary leftovers


def test_failed_save_leaves_the_old_directory(tmp_path, monkeypatch):
    X, Y = _sparse()
    pipe = Pipeline(model=_ovr()).fit(X, Y)
    pipe.save(tmp_path / "p")
    before = (tmp_path / "p" / "pipeline.json").read_text()
    pipe.tune(X, Y, cv=3, k=2)

    def boom(*a, **k):
        raise OSError("disk full")

    import labelwise.pipeline_store

    monkeypatch.setattr(labelwise.pipeline_store, "write_object", boom)
    with pytest.raises(OSError, match="disk full"):
        pipe.save(tmp_path / "p")
    assert (tmp_path / "p" / "pipeline.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p"]


def test_tampered_or_odd_directories_are_refused(text_pipe, tmp_path):
    pipe, _, _ = text_pipe
    pipe.save(tmp_path / "p")
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "p", bad)
    with open(bad / "featurizer" / "word_idf.npy", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x01")
    with pytest.raises(DataFormatError, match=r"word_idf\.npy: sha256 mismatch"):
        Pipeline.load(bad)
    Pipeline.load(bad, verify=False)  # the check is what refused it
    doc = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    for change, match in (({"format_version": 99}, "format version 99"),
                          ({"files": {"../x": "0"}}, "bad file entry"),
                          ({"format": "other"}, "expected 'labelwise.pipeline'")):
        shutil.rmtree(bad)
        shutil.copytree(tmp_path / "p", bad)
        (bad / "pipeline.json").write_text(json.dumps({**doc, **change}))
        with pytest.raises(DataFormatError, match=match):
            Pipeline.load(bad)
    with pytest.raises(DataFormatError, match="no such pipeline"):
        load_any(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="not a labelwise pipeline or model directory"):
        load_any(tmp_path / "empty")


def test_plain_model_directory_loads_as_a_pipeline(tmp_path):
    X, Y = _sparse()
    model = _ovr().fit(X, Y)
    model.save(tmp_path / "m")
    pipe = load_any(tmp_path / "m")
    assert isinstance(pipe, Pipeline) and pipe.featurizer is None and pipe.decision_ is None
    _same(pipe.decision_function(X, k=3), model.decision_function(X, k=3))
    _same(pipe.predict(X), model.predict(X))


# ---------------------------------------------------------------------------- errors
def test_errors():
    texts, Y = _texts(n=40)
    X, Ys = _sparse()
    with pytest.raises(LabelwiseError, match="needs a model"):
        Pipeline().fit(X, Ys)
    with pytest.raises(NotFittedError, match="not fitted"):
        Pipeline(model=_ovr()).predict(X)
    with pytest.raises(DataFormatError, match="no featurizer"):
        Pipeline(model=_ovr()).fit(texts, Y)
    tp = Pipeline(Tfidf(), _ovr()).fit(texts, Y)
    with pytest.raises(DataFormatError, match="list of texts"):
        tp.predict(X)
    with pytest.raises(DataFormatError, match="objective"):
        make_policy("f2")
    with pytest.raises(DataFormatError, match="calibration"):
        tp.tune(texts, Y, calibration="sigmoid")
    with pytest.raises(UnknownLabelError, match="none of the data's 5 labels"):
        tp.tune(Dataset(texts, Y, [f"x{i}" for i in range(5)]))  # labels matched by name
    untuned = Pipeline(model=_ovr()).fit(X, Ys)
    untuned.decision = PerLabelThreshold()
    with pytest.raises(NotFittedError, match="tune"):
        untuned.predict(X)
    with pytest.raises(NotFittedError, match="tune"):
        untuned.save("never-written")


def test_a_save_replaces_only_its_own_kind(tmp_path):
    # Pipeline.save used to replace a folder holding only a saved featurizer (any labelwise
    # marker passed); now each save replaces its own kind (a pipeline also a plain model)
    from labelwise.errors import OutputExistsError

    texts, Y = _texts(n=40)
    X, Ys = _sparse()
    feat = Tfidf().fit(texts)
    feat.save(tmp_path / "f")
    before = sorted(p.name for p in (tmp_path / "f").iterdir())
    pipe = Pipeline(model=_ovr()).fit(X, Ys)
    with pytest.raises(OutputExistsError, match=r"holds a saved labelwise featurizer "
                       r"\(featurizer\.json\), not a model or pipeline; refusing"):
        pipe.save(tmp_path / "f")
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == before
    with pytest.raises(OutputExistsError, match="featurizer"):
        pipe.model.save(tmp_path / "f")
    pipe.model.save(tmp_path / "m")
    with pytest.raises(OutputExistsError, match=r"holds a saved labelwise model .*not a "
                       "featurizer"):
        feat.save(tmp_path / "m")
    pipe.save(tmp_path / "p")
    with pytest.raises(OutputExistsError, match=r"labelwise pipeline \(pipeline\.json\), not "
                       "a model;"):
        pipe.model.save(tmp_path / "p")
    pipe.save(tmp_path / "m")  # a plain model folder becomes a pipeline (labels add, learn)
    pipe.save(tmp_path / "p")
    feat.save(tmp_path / "f")
    pipe.model.save(tmp_path / "m2")
    pipe.model.save(tmp_path / "m2")
    assert Pipeline.load(tmp_path / "m").labels_ == pipe.labels_


# ------------------------------------------------------- parameters vs what tune learns
def _vars(obj):
    """An object's attributes, arrays as lists (to compare before/after)."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(obj).items()}


def test_tune_leaves_the_parameters_and_clone_is_the_untuned_pipeline(tmp_path):
    # before: tune replaced `decision`/`calibrator` by what it tuned, so get_params() changed
    # and clone(pipe) carried the tuned thresholds
    from sklearn.base import clone

    texts, Y = _texts(n=90, seed=4)
    pipe = Pipeline(Tfidf(), _ovr()).fit(texts, Y, labels=NAMES)
    before, deep = pipe.get_params(deep=False), pipe.get_params()
    pipe.tune(texts, Y, objective="macro-f1", cv=3, k=4, select_c=False)
    assert pipe.get_params(deep=False) == before and pipe.get_params() == deep
    assert pipe.decision is None and pipe.calibrator is None
    assert isinstance(pipe.decision_, PerLabelThreshold) and pipe.decision_.objective == "macro-f1"
    assert pipe.calibrator_.kind == "platt" and pipe.calibrator_.per_label
    fresh = clone(pipe)
    assert fresh.decision is None and fresh.calibrator is None
    assert fresh.decision_ is None and fresh.calibrator_ is None and not fresh.is_tuned
    # predictions use the tuned parts
    S = pipe.model.decision_function(pipe.featurizer.transform(texts), k=4)
    _same(pipe.predict(texts), pipe.decision_.apply(pipe.calibrator_.transform(S)))
    _same(pipe.predict_proba(texts), pipe.calibrator_.transform(S))
    # saving and loading keep both: the parameters (None) and the tuned parts
    pipe.save(tmp_path / "p")
    back = Pipeline.load(tmp_path / "p")
    assert back.decision is None and back.calibrator is None
    assert np.array_equal(back.decision_.thresholds_, pipe.decision_.thresholds_)
    assert back.predict_labels(texts[:10]) == pipe.predict_labels(texts[:10])
    assert clone(back).decision_ is None


def test_given_parts_are_templates_never_fitted_in_place(tmp_path):
    from sklearn.base import clone

    from labelwise.pipeline_store import spec_of

    X, Y = _sparse(seed=3)
    policy, cal = PerLabelThreshold(objective="samples-f1", shrinkage=3.0), PlattCalibrator()
    pipe = Pipeline(model=_ovr(), decision=policy, calibrator=cal, cv=3, k=3)
    seen = _vars(policy), _vars(cal)
    pipe.fit(X, Y)  # fit tunes copies of the given parts
    assert pipe.decision is policy and pipe.calibrator is cal
    assert (_vars(policy), _vars(cal)) == seen  # unfitted, untouched
    assert pipe.decision_ is not policy and pipe.decision_.shrinkage == 3.0
    assert pipe.tuning_["objective"] == "samples-f1"
    pipe.tune(X, Y, objective="precision=0.8", cv=3, k=3, select_c=False)
    assert pipe.decision is policy and _vars(policy) == seen[0]
    assert isinstance(pipe.decision_, PrecisionTarget)
    pipe.tune(X, Y, cv=3, k=3, select_c=False)  # no objective: the parameter's again
    assert isinstance(pipe.decision_, PerLabelThreshold)
    # clone: the same settings, untuned; its fit tunes them as the original's did
    c = clone(pipe)
    assert spec_of(c.decision) == spec_of(policy) and not hasattr(c.decision, "n_labels_")
    assert np.array_equal(c.fit(X, Y).decision_.thresholds_, pipe.decision_.thresholds_)
    # save/load keeps the parameters (class and settings) and the tuned parts
    pipe.save(tmp_path / "p")
    back = Pipeline.load(tmp_path / "p")
    assert spec_of(back.decision) == spec_of(policy) and spec_of(back.calibrator) == spec_of(cal)
    assert not hasattr(back.decision, "n_labels_") and not hasattr(back.calibrator, "n_labels_")
    assert np.array_equal(back.decision_.thresholds_, pipe.decision_.thresholds_)
    _same(back.predict(X), pipe.predict(X))
    with pytest.raises(LabelwiseError, match="decision is a fitted PerLabelThreshold.*decision_"):
        Pipeline(model=_ovr(), decision=pipe.decision_).fit(X, Y)


def test_refitting_a_loaded_tuned_pipeline_keeps_it_tuned(tmp_path):
    # `review learn --train` refits a loaded pipeline (fit, then tune()): it keeps its policy
    X, Y = _sparse(seed=5)
    pipe = Pipeline(model=_ovr(), cv=3, k=3).fit(X, Y)
    pipe.tune(X, Y, objective="precision=0.7", calibration="isotonic", cv=3, k=3)
    pipe.save(tmp_path / "p")
    back = Pipeline.load(tmp_path / "p")
    back.fit(X[:120], Y[:120])
    assert isinstance(back.decision_, PrecisionTarget) and back.decision_.precision == 0.7
    assert back.calibrator_.kind == "isotonic" and back.tuning_["n_samples"] == 120
    back.tune(X, Y)
    assert back.tuning_["objective"] == "precision=0.7" and back.decision is None


def test_a_pipeline_saved_before_tuned_attributes_existed_loads_both():
    # tests/data/store_v1 (labelwise b84a00d): `tune` had overwritten the parameters, so the
    # file lists the tuned parts only; they load as decision_/calibrator_ and the parameters
    # are unfitted parts of the same class and settings
    from pathlib import Path

    from labelwise.pipeline_store import spec_of

    root = Path(__file__).parent / "data" / "store_v1" / "pipeline"
    assert "decision" not in json.loads((root / "pipeline.json").read_text())["params"]
    pipe = Pipeline.load(root)
    assert isinstance(pipe.decision_, PerLabelThreshold) and pipe.decision_.n_labels_ == 3
    assert pipe.calibrator_.per_label
    assert spec_of(pipe.decision) == spec_of(pipe.decision_)
    assert spec_of(pipe.calibrator) == spec_of(pipe.calibrator_)
    assert not hasattr(pipe.decision, "n_labels_") and not hasattr(pipe.calibrator, "n_labels_")
    texts = (root.parent / "texts.txt").read_text().splitlines()
    S = pipe.model.decision_function(pipe.featurizer.transform(texts), k=3)
    _same(pipe.predict(texts), pipe.decision_.apply(pipe.calibrator_.transform(S)))


def test_open_labels_parameter_is_kept_and_old_files_load_it(tmp_path):
    # the open_labels parameter (encoder settings of labels added later) is saved in params;
    # older files held it as the open_labels component
    from labelwise.models.fewshot import FewShot

    X, Y = _sparse()
    pipe = Pipeline(model=_ovr(), open_labels=FewShot(progress=False, temperature=0.07)).fit(X, Y)
    pipe.save(tmp_path / "p")
    doc = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert doc["format_version"] == 2 and doc["params"]["open_labels"]["temperature"] == 0.07
    back = Pipeline.load(tmp_path / "p")
    assert back.open_labels.get_params() == pipe.open_labels.get_params()
    old = {**doc, "params": {k: v for k, v in doc["params"].items()
                             if k not in ("open_labels", "decision", "calibrator")}}
    (tmp_path / "p" / "pipeline.json").write_text(json.dumps(old))
    back = Pipeline.load(tmp_path / "p")
    assert back.open_labels.get_params() == pipe.open_labels.get_params()
    assert back.n_open_labels == 0 and back.open_calibration_ is None


def test_every_edge_reads_the_tuned_policy_not_the_parameter(tmp_path, capsys):
    # the parameter says GlobalThreshold; tune(objective="precision=0.8") tunes a
    # PrecisionTarget into decision_: evaluate, serve and the review queue use that one
    from labelwise.cli.main import main
    from labelwise.io import write

    texts, Y = _texts(n=120, seed=6)
    ds = Dataset(texts, Y, NAMES)
    pipe = Pipeline(Tfidf(), _ovr(), decision=GlobalThreshold(objective="samples-f1"),
                    calibrator=PlattCalibrator(per_label=True), cv=3, k=5).fit(ds)
    pipe.tune(ds, objective="precision=0.8", select_c=False)
    assert isinstance(pipe.decision, GlobalThreshold) and not hasattr(pipe.decision, "n_labels_")
    pipe.save(tmp_path / "m")
    write(ds, tmp_path / "d.jsonl")
    assert main(["evaluate", str(tmp_path / "m"), str(tmp_path / "d.jsonl"), "--quiet",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["set_rule"] == "decision policy precision-target"
    pytest.importorskip("fastapi")
    from labelwise.serve.registry import load_entry

    info = load_entry("m", tmp_path / "m", warm=False).info()
    assert info["policy"]["policy"] == "precision-target" and info["calibrated"] is True
    pytest.importorskip("sqlalchemy")
    from labelwise.review.loop import _certified

    back = Pipeline.load(tmp_path / "m")
    assert _certified(back, 0.8) == back.decision_.threshold_


def test_open_labels_and_the_store_do_not_import_the_pipeline():
    # the pipeline owns an OpenLabels (composition); before, Pipeline inherited
    # OpenLabelsMixin, whose module imported labelwise.pipeline (an import circle)
    import ast
    from pathlib import Path

    import labelwise
    from labelwise._estimator import Estimator
    from labelwise.pipeline_open import OpenLabels

    assert Pipeline.__mro__ == (Pipeline, Estimator, object)
    root = Path(labelwise.__file__).parent
    for name in ("pipeline_open.py", "pipeline_store.py"):
        for node in ast.walk(ast.parse((root / name).read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.module not in ("pipeline", "labelwise.pipeline"), (name, node.lineno)
    X, Y = _sparse()
    pipe = Pipeline(model=_ovr()).fit(X, Y)
    assert "open_labels_" not in vars(pipe) and pipe.n_open_labels == 0
    assert pipe.open_calibration_ is None and pipe.label_info()[0]["kind"] == "supervised"
    assert isinstance(pipe.open_labels_, OpenLabels) and pipe.open_labels_.part is None


def test_precision_target_is_certified_on_rows_the_final_pipeline_never_saw():
    """precision=P: one stratified 1/cv share of the rows is held out; featurizer, model and
    calibrator are fitted on the rest, and the certificate is the one the held-out rows' scores
    of that final pipeline give (the old rule certified on cross-fitted scores instead)."""
    rng = np.random.default_rng(3)
    names = ["red", "green", "blue", "plum"]
    texts, Y = [], []
    for i in range(360):
        labs = sorted(rng.choice(4, size=int(rng.integers(1, 3)), replace=False).tolist())
        words = [names[j] for j in labs if rng.random() < 0.8] + [f"w{int(rng.integers(30))}"
                                                                  for _ in range(4)]
        texts.append(" ".join(words) + f" only{i}")  # a word of this row alone
        Y.append(labs)
    data = Dataset(texts, Y, names)
    pipe = Pipeline(Tfidf(), OneVsRest(n_threads=1, random_state=0), random_state=0)
    pipe.fit(data).tune(data, objective="precision=0.9", cv=3, k=4)
    fit_idx, cert_idx = next(IterativeStratifiedKFold(n_splits=3, random_state=0).split(
        np.zeros((360, 1)), data.Y))
    assert pipe.tuning_["certified_on"] == {"fit_rows": fit_idx.size,
                                            "certification_rows": cert_idx.size,
                                            "holdout": "stratified"}
    vocab = set(pipe.featurizer.feature_names())
    assert all(f"only{i}" not in vocab for i in cert_idx.tolist())  # fitted without them
    assert all(f"only{i}" in vocab for i in fit_idx.tolist()[:20])
    P = pipe.predict_proba([texts[i] for i in cert_idx], k=4)
    want = PrecisionTarget(0.9, confidence=0.95).fit(P, data.Y[cert_idx])
    got = pipe.decision_
    assert got.threshold_ == want.threshold_ and got.precision_ == want.precision_
    assert got.precision_lower_bound_ == want.precision_lower_bound_ >= 0.9
    small = data.subset(np.arange(5))
    tiny = Pipeline(Tfidf(), OneVsRest(n_threads=1))
    with pytest.warns(UserWarning, match="no positive"):
        tiny.fit(small)
    with pytest.raises(DataFormatError, match="certifies on held-out rows"):
        tiny.tune(small, objective="precision=0.9", cv=3)


def _colour_rows(n: int, *, seed: int):
    """n texts of 1-2 colour labels (each named in the text with probability 0.8), four noise
    words and a word unique to the row (``only{i}``, to see which rows a vocabulary saw)."""
    rng = np.random.default_rng(seed)
    names = ["red", "green", "blue", "plum"]
    texts, Y = [], []
    for i in range(n):
        labs = sorted(rng.choice(4, size=int(rng.integers(1, 3)), replace=False).tolist())
        words = [names[j] for j in labs if rng.random() < 0.8] + [f"w{int(rng.integers(30))}"
                                                                  for _ in range(4)]
        texts.append(" ".join(words) + f" only{i}")
        Y.append(labs)
    return texts, Dataset(texts, Y, names)


def test_precision_target_certified_on_the_last_rows():
    """holdout="last": the last 1/cv of the rows in the data's order certify (data in time
    order); the pipeline is fitted on the first rows only, the certificate is the last rows'
    one, a refit or a later tune keeps the choice, and an unknown choice names the field."""
    texts, data = _colour_rows(300, seed=4)
    pipe = Pipeline(Tfidf(), OneVsRest(n_threads=1, random_state=0), random_state=0)
    pipe.fit(data).tune(data, objective="precision=0.9", cv=3, k=4, holdout="last")
    assert pipe.tuning_["certified_on"] == {"fit_rows": 200, "certification_rows": 100,
                                            "holdout": "last"}
    vocab = set(pipe.featurizer.feature_names())
    assert {f"only{i}" for i in range(200)} <= vocab
    assert not {f"only{i}" for i in range(200, 300)} & vocab
    P = pipe.predict_proba(texts[200:], k=4)
    want = PrecisionTarget(0.9, confidence=0.95).fit(P, data.Y[200:])
    got = pipe.decision_
    assert got.threshold_ == want.threshold_ and got.precision_ == want.precision_
    assert got.n_accepted_ == want.n_accepted_
    pipe.fit(data)  # a refit re-tunes with the same held-out share
    assert pipe.tuning_["certified_on"]["holdout"] == "last"
    pipe.tune(data, objective="precision=0.9", cv=3, k=4)
    assert pipe.tuning_["certified_on"]["holdout"] == "last"
    with pytest.raises(DataFormatError, match="holdout: expected one of stratified, last"):
        pipe.tune(data, objective="precision=0.9", holdout="newest")


def test_precision_target_certified_on_the_allowed_rows_only():
    """certify_rows: rows that must not certify (a model's own pseudo-labels) are fitted on
    and never held out; the certificate is the allowed held-out rows' one (last 1/cv of the
    allowed rows, or a stratified share of them); a bad mask names the field."""
    texts, data = _colour_rows(360, seed=5)
    allowed = np.ones(360, bool)
    allowed[1::3] = False  # 120 rows of pseudo-labels among the 360, to the end
    pipe = Pipeline(Tfidf(), OneVsRest(n_threads=1, random_state=0), random_state=0)
    pipe.fit(data).tune(data, objective="precision=0.9", cv=3, k=4, holdout="last",
                        certify_rows=allowed)
    cert = np.flatnonzero(allowed)[160:]  # the last 80 of the 240 allowed rows
    assert pipe.tuning_["certified_on"] == {"fit_rows": 280, "certification_rows": 80,
                                            "holdout": "last", "certifiable_rows": 240}
    vocab = set(pipe.featurizer.feature_names())
    assert not {f"only{i}" for i in cert} & vocab
    assert {f"only{i}" for i in np.setdiff1d(np.arange(360), cert)} <= vocab
    want = PrecisionTarget(0.9, confidence=0.95).fit(
        pipe.predict_proba([texts[i] for i in cert], k=4), data.Y[cert])
    got = pipe.decision_
    assert got.threshold_ == want.threshold_ and got.n_accepted_ == want.n_accepted_
    pipe.tune(data, objective="precision=0.9", cv=3, k=4, holdout="stratified",
              certify_rows=allowed)
    vocab = set(pipe.featurizer.feature_names())
    held = {i for i in range(360) if f"only{i}" not in vocab}
    assert len(held) == pipe.tuning_["certified_on"]["certification_rows"] >= 70
    assert held <= set(np.flatnonzero(allowed).tolist())
    with pytest.raises(DataFormatError, match="certify_rows: expected a boolean array of 360"):
        pipe.tune(data, objective="precision=0.9", cv=3, certify_rows=allowed[:10])
    with pytest.raises(DataFormatError, match="needs at least 6 rows that may certify"):
        pipe.tune(data, objective="precision=0.9", cv=3, certify_rows=np.arange(360) < 5)
