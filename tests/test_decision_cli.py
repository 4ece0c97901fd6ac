"""``labelwise tune`` (module labelwise.cli.tune, run through its own parser)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from labelwise.calibration import load_calibrator
from labelwise.cli import tune
from labelwise.dataset import Dataset
from labelwise.decision import PerLabelThreshold, PrecisionTarget, load_policy
from labelwise.errors import LabelwiseError
from labelwise.files import sha256_file
from labelwise.io import write
from labelwise.models import OneVsRest


def _run(argv):
    p = argparse.ArgumentParser()
    tune.add_arguments(p)
    return tune.run(p.parse_args(argv))


@pytest.fixture
def model_and_data(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 8)).astype(np.float32)
    Y = (X @ rng.normal(size=(8, 3)) > 0.3).astype(np.float32)
    ds = Dataset(X, Y)
    data = tmp_path / "train.txt"
    fmt = "xc"
    write(ds, data, format=fmt)
    model = OneVsRest(random_state=0, n_threads=1).fit(ds)
    model.save(tmp_path / "model")
    return tmp_path / "model", data


def test_tune_writes_files_with_checksums(model_and_data, capsys):
    model, data = model_and_data
    assert _run([str(model), str(data), "--format", "xc", "--objective", "micro-f1", "--cv", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["objective"] == "micro-f1"
    man = json.loads((model / "decision-manifest.json").read_text())
    for name, digest in man["files"].items():
        assert sha256_file(model / name) == digest
    assert man["model_manifest_sha256"] == sha256_file(model / "manifest.json")
    pol = load_policy(model)
    assert isinstance(pol, PerLabelThreshold) and pol.objective == "micro-f1"
    assert load_calibrator(model).kind == "platt"


def test_tune_precision_target(model_and_data, capsys):
    model, data = model_and_data
    assert _run([str(model), str(data), "--format", "xc", "--objective", "precision=0.8", "--cv", "3",
                 "--calibration", "isotonic"]) == 0
    assert isinstance(load_policy(model), PrecisionTarget)
    out = json.loads(capsys.readouterr().out)
    assert "coverage" in out["decision"] and out["decision"]["sequence"]["pairs"] > 0
    assert out["certified_on"] == {"fit_rows": 100, "certification_rows": 50,
                                   "holdout": "stratified"}
    # --holdout last: the last 1/cv of the rows in the file's order certify
    assert _run([str(model), str(data), "--format", "xc", "--objective", "precision=0.8", "--cv",
                 "3", "--holdout", "last"]) == 0
    assert json.loads(capsys.readouterr().out)["certified_on"]["holdout"] == "last"


@pytest.mark.parametrize("objective", ["f2", "precision=1.5", "precision=x"])
def test_bad_objective(model_and_data, objective):
    model, data = model_and_data
    with pytest.raises(LabelwiseError, match="objective"):
        _run([str(model), str(data), "--format", "xc", "--objective", objective])
