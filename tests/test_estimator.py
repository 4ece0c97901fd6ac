"""labelwise's own estimator base: scikit-learn's protocol without importing scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sklearn.base import clone
from sklearn.utils import get_tags

from labelwise.models import LabelTree, OneVsRest
from labelwise.pipeline import Pipeline


def test_models_import_without_sklearn():
    code = ("import sys; import labelwise.models.tree, labelwise.models.ovr, labelwise.io; "
            "bad = sorted(m for m in ('sklearn', 'pandas', 'pyarrow') if m in sys.modules); "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"importing the models pulled in {out}"


def test_params_round_trip_as_sklearn_does():
    m = OneVsRest(C=2.0, loss="logistic")
    assert m.get_params()["C"] == 2.0 and m.get_params()["loss"] == "logistic"
    c = clone(m)
    assert type(c) is OneVsRest and c is not m and c.get_params() == m.get_params()
    assert m.set_params(C=0.5) is m and m.C == 0.5
    with pytest.raises(ValueError, match="Invalid parameter 'Cee'"):
        m.set_params(Cee=1)
    assert sorted(LabelTree().get_params()) == LabelTree._get_param_names()


def test_nested_params_and_tags():
    p = Pipeline(model=OneVsRest(C=3.0))
    params = p.get_params(deep=True)
    assert params["model__C"] == 3.0 and params["model"] is p.model
    p.set_params(model__C=0.25)
    assert p.model.C == 0.25
    q = clone(p)
    assert q.model is not p.model and q.model.C == 0.25
    assert "model__C" not in p.get_params(deep=False)
    # a multi-label classifier needs Y (tests/test_sklearn_compat.py checks the other tags)
    tags = get_tags(OneVsRest())
    assert tags.target_tags.required is True and tags.classifier_tags.multi_label
    assert repr(OneVsRest(C=2.0)) == "OneVsRest(C=2.0)"
