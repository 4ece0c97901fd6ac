"""labelwise.auto: the budget, the leaderboard, the refit, the objective, no leakage."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from labelwise import Dataset
from labelwise.auto import FAMILIES, AutoModel, DataFacts, Family, candidates_for, parse_budget
from labelwise.cli.main import main
from labelwise.errors import DataFormatError
from labelwise.io import write
from labelwise.models.base import MultiLabelModel
from labelwise.models.ovr import OneVsRest
from labelwise.models.topk import topk_dense
from labelwise.pipeline import Pipeline
from labelwise.split import IterativeStratifiedKFold


def _learnable(n=150, d=12, L=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    W = rng.normal(size=(d, L))
    Y = (X @ W > 0.8).astype(np.float32)
    Y[np.arange(L), np.arange(L)] = 1  # every label has positives
    return X, sp.csr_matrix(Y)


def _ovr(settings):
    return Family("ovr", OneVsRest, applies=lambda f: True, settings=lambda f: settings,
                  cost=lambda f, s: 0.01)


# ---------------------------------------------------------------------- test models
class Prior(MultiLabelModel):
    """Every row scored by the labels' training frequencies (same ranking for every row)."""

    _persist_name = "TestPrior"

    def _validate_params(self):
        pass

    def _fit(self, X, Y):
        self.freq_ = np.asarray(Y.mean(axis=0)).ravel()

    def _decision_topk(self, X, k):
        return topk_dense(np.tile(self.freq_, (X.shape[0], 1)), k)


class Shifted(MultiLabelModel):
    """Label j scored by feature j (a perfect ranking per label where the label follows that
    feature) plus a large offset that grows as the label gets rarer, so the rarest label is
    every row's top label."""

    _persist_name = "TestShifted"

    def _validate_params(self):
        pass

    def _fit(self, X, Y):
        self.offset_ = 1000.0 * (1.0 - np.asarray(Y.mean(axis=0)).ravel())

    def _decision_topk(self, X, k):
        L = self.offset_.size
        return topk_dense(X[:, :L].toarray() + self.offset_, k)


class Recording(OneVsRest):
    """OneVsRest that records the row ids (column 0) it is fitted on and scores."""

    fitted: list = []
    scored: list = []

    def _fit(self, X, Y):
        Recording.fitted.append(np.rint(X[:, 0].toarray().ravel()).astype(np.int64))
        super()._fit(X, Y)

    def _decision_topk(self, X, k):
        Recording.scored.append(np.rint(X[:, 0].toarray().ravel()).astype(np.int64))
        return super()._decision_topk(X, k)


# ---------------------------------------------------------------------- tests
def test_parse_budget():
    assert parse_budget("90s") == 90 and parse_budget("10m") == 600
    assert parse_budget("1.5h") == 5400 and parse_budget(12) == 12 and parse_budget("7") == 7
    for bad in ("", "ten minutes", "0s", "-1m", True, float("nan")):
        with pytest.raises(DataFormatError, match="budget"):
            parse_budget(bad)


def test_candidate_rules_follow_the_data_not_names():
    small = DataFacts(n_samples=400, n_labels=6, n_features=72, nnz=400 * 72, n_labelsets=27,
                      cardinality=1.9)
    many = DataFacts(n_samples=5000, n_labels=400, n_features=500, nnz=40_000,
                     n_labelsets=3000, cardinality=3.5)
    fams = lambda f: {c.family.name for c in candidates_for(f)}  # noqa: E731
    # 6 labels: PLST (>= 10 labels) stays out
    assert fams(small) == {"ovr", "chain", "ecc", "powerset", "rakel", "mlknn", "forest", "clr",
                           "codes"}
    # many labels: the label tree and PLST come in; chains, ECC, the powerset (3000 sets) and
    # calibrated label ranking (<= 100 labels) go
    assert fams(many) == {"ovr", "tree", "rakel", "mlknn", "forest", "plst", "codes"}
    order = candidates_for(small)
    assert [c.rank for c in order] == sorted(c.rank for c in order)  # rounds by rank
    first = [c for c in order if c.rank == 0]
    assert [c.raw_fit_s for c in first] == sorted(c.raw_fit_s for c in first)
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)


def test_forest_settings_follow_density_and_cost_counts_the_features_tried():
    dense = DataFacts(n_samples=400, n_labels=6, n_features=100, nnz=400 * 100, n_labelsets=27,
                      cardinality=1.9)
    sparse = DataFacts(n_samples=400, n_labels=6, n_features=100, nnz=400 * 5, n_labelsets=27,
                       cardinality=1.9)
    forest = [f for f in FAMILIES if f.name == "forest"][0]
    wide = {"kind": "extra", "n_estimators": 500, "max_features": 0.3}
    assert wide in forest.settings(dense) and wide not in forest.settings(sparse)
    assert {"kind": "extra", "n_estimators": 1000} in forest.settings(sparse)
    # 30 of 100 features per split costs 3x the sqrt rule's 10, at equal trees
    narrow = {"kind": "extra", "n_estimators": 500}
    assert forest.cost(dense, wide) == pytest.approx(3.0 * forest.cost(dense, narrow))
    # rounds: the new settings come after every family's first three settings
    order = candidates_for(dense)
    assert [c.settings for c in order if c.family.name == "forest"][3:] == [
        {"kind": "extra", "n_estimators": 1000}, wide]
    first_new = min(i for i, c in enumerate(order) if c.settings.get("n_estimators") == 1000)
    assert all(c.rank >= 3 for c in order[first_new:])


def test_leaderboard_budget_refit_and_save(tmp_path):
    X, Y = _learnable()
    fams = (_ovr([{"loss": "logistic", "C": 1.0}, {"loss": "squared_hinge", "C": 0.5}]),
            Family("chain", "labelwise.models.chains:ClassifierChain", applies=lambda f: True,
                   settings=lambda f: [{"order": "frequency"}], cost=lambda f, s: 0.02))
    t0 = time.perf_counter()
    auto = AutoModel(budget=60, objective="macro-f1", cv=3, families=fams, blend=False,
                     n_threads=1).fit(X, Y)  # blends: tests/test_auto_blend.py
    took = time.perf_counter() - t0
    assert took < 60 and auto.seconds_ <= took
    board = auto.leaderboard_
    assert [e["status"] for e in board] == ["done"] * 3
    means = [e["mean_score"] for e in board]
    assert means == sorted(means, reverse=True)
    assert auto.partitions_ == 2 and auto.partition_notes_ == []
    for e in board:  # every one is among its family's best two: scored on two partitions
        assert e["partitions"] == 2 and len(e["fold_scores"]) == 6
        assert e["mean_score"] == pytest.approx(np.mean(e["fold_scores"]), abs=1e-5)
        assert e["seconds"] > 0
    assert auto.chosen_ == board[0]

    # the chosen model is a plain fit of the winning settings on all rows
    cls = type(auto.pipeline_.model)
    assert cls.__name__ == board[0]["model"]
    plain = Pipeline(model=cls(**board[0]["settings"], n_threads=1, random_state=0)).fit(X, Y)
    np.testing.assert_allclose(auto.decision_function(X, k=4).toarray(),
                               plain.decision_function(X, k=4).toarray(), rtol=1e-6)
    assert auto.pipeline_.model.get_params() == plain.model.get_params()

    # saved as an ordinary pipeline, leaderboard in pipeline.json
    auto.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "pipeline.json").read_text())
    assert doc["tuning"]["auto"]["leaderboard"] == json.loads(json.dumps(board))
    assert doc["tuning"]["auto"]["chosen"] == board[0]["candidate"]
    loaded = Pipeline.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X).toarray(), auto.predict(X).toarray())


def test_budget_for_one_candidate_gives_exactly_that_one():
    X, Y = _learnable()
    fams = (_ovr([{"loss": "logistic", "C": 1.0}, {"loss": "squared_hinge", "C": 0.5},
                  {"loss": "logistic", "C": 4.0}]),)
    with pytest.warns(UserWarning, match="below the estimate"):
        auto = AutoModel(budget=0.001, cv=3, families=fams, n_threads=1).fit(X, Y)
    board = auto.leaderboard_
    assert [e["status"] for e in board] == ["done", "skipped", "skipped"]
    assert board[0]["settings"] == {"loss": "logistic", "C": 1.0}  # the first in the table
    assert all("left" in e["reason"] for e in board[1:])
    assert auto.pipeline_.model.C == 1.0 and auto.pipeline_.model.loss == "logistic"


def test_objective_changes_the_choice():
    rng = np.random.default_rng(1)
    n = 300
    X = rng.normal(size=(n, 3))
    Y = np.column_stack([rng.random(n) < 0.8, X[:, 1] > 1.0, X[:, 2] > 1.2]).astype(np.float32)
    fams = tuple(Family(name, cls, applies=lambda f: True, settings=lambda f: [{}],
                        cost=lambda f, s: 0.01) for name, cls in (("prior", Prior),
                                                                   ("shifted", Shifted)))
    chosen = {}
    for objective in ("p@1", "map"):
        auto = AutoModel(budget=60, objective=objective, scale=None, families=fams).fit(X, Y)
        chosen[objective] = auto.chosen_["candidate"]
        scores = {e["candidate"]: e["mean_score"] for e in auto.leaderboard_}
        if objective == "p@1":  # the prior's top label (0) is right on ~80% of rows
            assert scores["prior"] > 0.7 > 0.2 > scores["shifted"]
        else:  # shifted ranks labels 1 and 2 perfectly; the prior's AP is the base rate
            assert scores["shifted"] > 0.85 > 0.5 > scores["prior"]
    assert chosen == {"p@1": "prior", "map": "shifted"}


def test_cross_validation_never_sees_held_out_rows():
    X, Y = _learnable(n=120)
    ids = np.arange(120)
    X = np.column_stack([ids, X]).astype(np.float32)  # column 0: the row id
    train = ids[:90]  # rows 90.. are the user's held-out rows: never given to auto
    Recording.fitted.clear()
    Recording.scored.clear()
    fams = (Family("rec", Recording, applies=lambda f: True,
                   settings=lambda f: [{"C": 1.0}, {"C": 2.0}], cost=lambda f, s: 0.01),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        AutoModel(budget=60, cv=3, scale=None, families=fams, n_threads=1).fit(X[train],
                                                                              Y[train])
    # two partitions (random_state 0, then 1): 2 candidates x 3 folds each, then the final fit
    assert len(Recording.fitted) == 2 * 2 * 3 + 1
    for p in range(2):
        splits = list(IterativeStratifiedKFold(n_splits=3, random_state=p).split(
            np.zeros((90, 1)), Y[train]))
        for c in range(2):
            for f, (tr, te) in enumerate(splits):
                at = 6 * p + 3 * c + f
                seen = Recording.fitted[at]
                np.testing.assert_array_equal(np.sort(seen), np.sort(tr))
                assert not set(seen) & set(te)  # no fold model is fitted on its held-out rows
                np.testing.assert_array_equal(np.sort(Recording.scored[at]), np.sort(te))
    np.testing.assert_array_equal(np.sort(Recording.fitted[-1]), train)
    assert max(int(a.max()) for a in Recording.fitted + Recording.scored) < 90


def test_cli_train_auto(tmp_path, capsys):
    X, Y = _learnable(n=120, d=8)
    ds = Dataset(sp.csr_matrix(X), Y, [f"label {j}" for j in range(4)])
    write(ds, tmp_path / "train.xc")
    t0 = time.perf_counter()
    assert main(["train", str(tmp_path / "train.xc"), "--model", "auto", "--budget", "60s",
                 "--objective", "macro-f1", "--threads", "1", "--out", str(tmp_path / "m"),
                 "--quiet"]) == 0
    assert time.perf_counter() - t0 < 60
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "m" / "pipeline.json").read_text())["tuning"]["auto"]
    assert doc["objective"] == "macro-f1" and doc["budget_s"] < 60
    assert f"chose {doc['chosen']} (macro-f1" in out
    for e in doc["leaderboard"]:
        assert e["candidate"][:58] in out
    pipe = Pipeline.load(tmp_path / "m")
    assert list(pipe.labels_.names) == [f"label {j}" for j in range(4)]
    assert main(["train", str(tmp_path / "train.xc"), "--model", "auto", "--set", "C=1",
                 "--out", str(tmp_path / "m2")]) == 2
    assert "--model auto chooses the settings itself" in capsys.readouterr().err


def test_a_forest_that_would_outgrow_the_machine_is_skipped(monkeypatch):
    """A forest's leaf probabilities grow with rows x labels x trees: the forest family's
    memory estimate (2 x 8 bytes x rows x labels x trees) skips a candidate above a quarter
    of the machine's memory, with the reason on the leaderboard; the rest still run."""
    import labelwise.auto as auto_mod

    facts = DataFacts(n_samples=4500, n_labels=374, n_features=499, nnz=4500 * 9,
                      n_labelsets=3000, cardinality=3.5)
    forest = [f for f in FAMILIES if f.name == "forest"][0]
    assert forest.memory(facts, {"kind": "extra"}) == 2 * 8 * 4500 * 374 * 100
    assert forest.memory(facts, {"kind": "extra", "n_estimators": 1000}) == 2 * 8 * 4500 * 374 * 1000
    X, Y = _learnable()
    f = DataFacts.of(X, Y)
    small, big = {"kind": "extra", "n_estimators": 10}, {"kind": "extra", "n_estimators": 1000}
    fams = (_ovr([{"loss": "logistic", "C": 1.0}]),
            Family("forest", "labelwise.models.forest:LabelForest", applies=lambda f: True,
                   settings=lambda f: [small, big], cost=lambda f, s: 0.02,
                   memory=forest.memory))
    # a machine with memory for the 10-tree forest but not for the 1000-tree one
    limit = 4.0 * forest.memory(f, {"kind": "extra", "n_estimators": 100})
    monkeypatch.setattr(auto_mod, "machine_memory", lambda: int(limit))
    auto = AutoModel(budget=60, cv=3, families=fams, blend=False, n_threads=1).fit(X, Y)
    board = {e["candidate"]: e for e in auto.leaderboard_}
    assert board["forest(kind=extra,n_estimators=10)"]["status"] == "done"
    skipped = board["forest(kind=extra,n_estimators=1000)"]
    assert skipped["status"] == "skipped" and "of this machine's" in skipped["reason"]
    assert board["ovr(loss=logistic,C=1.0)"]["status"] == "done"
    monkeypatch.setattr(auto_mod, "machine_memory", lambda: None)  # not known: all run
    auto = AutoModel(budget=60, cv=3, families=fams, blend=False, n_threads=1).fit(X, Y)
    assert all(e["status"] == "done" for e in auto.leaderboard_)
