"""LabelForest: the flat-array traversal equals scikit-learn's predict_proba."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from conformance import small_data
from labelwise.errors import DataFormatError
from labelwise.models.forest import LabelForest


@pytest.mark.parametrize("kind", ["random", "extra"])
def test_probabilities_equal_sklearn_predict_proba(kind):
    X, Y = small_data(seed=5, n=120, d=10, n_labels=5)
    Yd = Y.toarray().astype(np.int64)
    Yd[:, 4] = 0  # a label without positives: probability 0 everywhere
    model = LabelForest(kind=kind, n_estimators=7, min_samples_leaf=2, random_state=4,
                        n_threads=2).fit(X, Yd)
    est = model.sklearn_estimator().fit(X, Yd)
    Q, _ = small_data(seed=9, n=60, d=10, n_labels=5)
    ref = np.column_stack([
        p[:, list(c).index(1)] if 1 in list(c) else np.zeros(Q.shape[0])
        for p, c in zip(est.predict_proba(Q), est.classes_)])
    for Qx in (Q, Q.toarray(), X):
        got = model.probabilities(Qx)
        want = ref if Qx is not X else np.column_stack([
            p[:, list(c).index(1)] if 1 in list(c) else np.zeros(X.shape[0])
            for p, c in zip(est.predict_proba(X), est.classes_)])
        assert np.allclose(got, want, atol=1e-12)
    assert np.all(model.probabilities(Q)[:, 4] == 0)


def test_single_label_and_dense_features():
    X, Y = small_data(seed=1, n=60, n_labels=1)
    model = LabelForest(n_estimators=5, random_state=0, n_threads=1).fit(X.toarray(), Y)
    est = model.sklearn_estimator().fit(X.toarray(), Y.toarray().ravel())
    assert np.allclose(model.probabilities(X)[:, 0], est.predict_proba(X.toarray())[:, 1])


def test_corrupt_tree_arrays_are_refused(tmp_path):
    import json

    X, Y = small_data(seed=2)
    LabelForest(n_estimators=3, random_state=0, n_threads=1).fit(X, Y).save(tmp_path / "m")
    left = np.load(tmp_path / "m" / "left.npy")
    split = np.flatnonzero(left >= 0)
    left[split[0]] = split[0]  # a loop: the node is its own child
    np.save(tmp_path / "m" / "left.npy", left)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    with pytest.raises(DataFormatError, match="do not form trees"):
        LabelForest.load(tmp_path / "m", verify=False)
    assert manifest["class"] == "LabelForest"


def test_bad_params():
    X, Y = small_data()
    with pytest.raises(ValueError, match="kind"):
        LabelForest(kind="gradient").fit(X, Y)
    with pytest.raises(ValueError, match="max_features"):
        LabelForest(max_features=0).fit(X, Y)
    assert sp.issparse(LabelForest(n_estimators=2, n_threads=1).fit(X, Y).predict(X))


@pytest.mark.parametrize("name,cls,sets", [
    ("chain", "ClassifierChain", ["inference=\"beam\""]),
    ("powerset", "LabelPowerset", ["min_count=2"]),
    ("rakel", "RAkEL", ["mode=\"overlapping\""]),
    ("mlknn", "MLkNN", ["k=5"]),
    ("forest", "LabelForest", ["n_estimators=10"]),
])
def test_cli_train_tune_evaluate_every_family(name, cls, sets, tmp_path, capsys):
    """`labelwise train --model NAME`, `tune` and `evaluate` for each label-dependence family."""
    import warnings

    from labelwise import Dataset, Pipeline
    from labelwise.cli.main import main
    from labelwise.io import write

    X, Y = small_data(seed=7, n=120, d=12, n_labels=4)
    ds = Dataset(X, Y, [f"topic {j}" for j in range(4)], ids=[f"doc{i}" for i in range(120)])
    train, test = tmp_path / "train.xc", tmp_path / "test.xc"
    write(ds.subset(np.arange(0, 90)), train)
    write(ds.subset(np.arange(90, 120)), test)
    args = ["train", str(train), "--model", name, "--threads", "1", "--seed", "2", "--quiet",
            "--out", str(tmp_path / "m")]
    for s in sets:
        args += ["--set", s]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pruning notes of min_count=2
        assert main(args) == 0
        assert main(["tune", str(tmp_path / "m"), str(train), "--quiet"]) == 0
    pipe = Pipeline.load(tmp_path / "m")
    assert type(pipe.model).__name__ == cls and pipe.is_tuned
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), str(test), "--quiet"]) == 0
    assert "micro_f1" in capsys.readouterr().out
