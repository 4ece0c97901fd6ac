"""``labelwise review init|ingest|status|export|learn`` end to end (in process)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("sqlalchemy", reason="the review loop needs the [review] extra (SQLAlchemy)")

from labelwise.cli.main import main  # noqa: E402
from labelwise.io import write  # noqa: E402
from review_support import TARGET, dataset, pipeline_dir  # noqa: E402


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_review_cli_round_trip(tmp_path, capsys, monkeypatch):
    import shutil

    model = tmp_path / "colors"
    shutil.copytree(pipeline_dir(), model)
    data = tmp_path / "new.jsonl"
    ds = dataset(80, 21, "n")
    write(ds, data)
    db = str(tmp_path / "r.db")
    code, out, _ = _run(capsys, "review", "init", "--db", db)
    assert code == 0 and "created" in out
    code, out, err = _run(capsys, "review", "status", "--db", str(tmp_path / "none.db"))
    assert code == 2 and "review init" in err
    code, out, _ = _run(capsys, "review", "ingest", str(model), str(data), "--db", db,
                        "--precision", str(TARGET), "--audit-rate", "0.3")
    assert code == 0 and "ingested 80 items" in out
    code, out, _ = _run(capsys, "review", "status", "--db", db, "--json")
    st = json.loads(out)
    assert st["items"] == 80 and st["reviewed"] == 0 and st["target"] == TARGET
    # people review every queued item from the truth
    from labelwise.review import open_db, queue

    truth = {i: set(ds.label_names(r)) for r, i in enumerate(ds.ids)}
    with open_db(db) as d:
        while (it := queue.lease_next(d, "ann")) is not None:
            sugg = [s["label"] for s in it["suggestions"]]
            queue.submit(d, it["id"], "ann", accepted=[s for s in sugg if s in truth[it["id"]]],
                         rejected=[s for s in sugg if s not in truth[it["id"]]],
                         added=sorted(truth[it["id"]] - set(sugg)), seconds=2.0)
    code, out, _ = _run(capsys, "review", "status", "--db", db)
    assert code == 0 and "audited precision" in out and "label" in out
    out_file = tmp_path / "out.jsonl"
    code, out, _ = _run(capsys, "review", "export", "--db", db, "--out", str(out_file))
    lines = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert code == 0 and len(lines) == 80  # every item decided: auto or reviewed
    for x in lines:
        if "ann" in x["decided"].values():
            assert set(x["labels"]) == truth[x["id"]]
        assert set(x["decided"]) == set(x["labels"])
    from labelwise.review import loop

    with open_db(db) as d:
        reviewed = loop.reviewed_rows(d)
        with_auto = loop.reviewed_rows(d, include_auto=True)
        n_auto = loop.status(d)["auto_accepted"]
    assert len(reviewed) == st["queued"] and len(with_auto) == len(reviewed) + n_auto
    assert all(set(labels) == truth[i] for i, _, labels in reviewed)
    # learn: a retrain on the training data plus the reviewed rows, saved as a new version
    from labelwise.serve.registry import model_version

    train = tmp_path / "train.jsonl"
    write(dataset(300, 1, "train"), train)
    before = model_version(model)
    from labelwise.pipeline import Pipeline, load_any

    last = load_any(model).tuning_
    tunes = []
    real_tune = Pipeline._tune

    def counted(self, *a, **kw):
        tunes.append({"cv": kw["cv"], "k": kw["k"], "select_c": kw["select_c"]})
        return real_tune(self, *a, **kw)

    monkeypatch.setattr(Pipeline, "_tune", counted)
    code, out, err = _run(capsys, "review", "learn", str(model), "--db", db, "--train",
                          str(train))
    assert code == 0 and "reviewed rows" in out, err
    assert model_version(model) != before
    # tuned once, as it was tuned before (the C search only because its last tuning ran one)
    assert "model_selection" in last
    assert tunes == [{"cv": last["cv"], "k": last["k"], "select_c": True}]
    pipe = load_any(model)
    assert pipe.decision_.precision == TARGET and pipe.decision_.confidence == 0.95
    assert pipe.tuning_["n_samples"] == 300 + len(reviewed)
    assert {k: pipe.tuning_[k] for k in ("cv", "k", "objective")} == {
        k: last[k] for k in ("cv", "k", "objective")}
    # --include-auto: the auto-accepted items are fitted on as pseudo-labels but never
    # certify: the held-out share comes from the training rows and the reviewed items only
    code, out, err = _run(capsys, "review", "learn", str(model), "--db", db, "--train",
                          str(train), "--include-auto")
    assert code == 0, err
    pipe = load_any(model)
    on = pipe.tuning_["certified_on"]
    assert pipe.tuning_["n_samples"] == 300 + len(with_auto)
    assert on["certifiable_rows"] == 300 + len(reviewed)
    assert on["fit_rows"] + on["certification_rows"] == 300 + len(with_auto)
    assert on["certification_rows"] <= -(-(300 + len(reviewed)) // last["cv"]) + 2
