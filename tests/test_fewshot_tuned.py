"""FineTunedFewShot on the real shipped encoder and real GoEmotions rows: it starts as the
FewShot model of its examples (same scores, before any training), then learns; saves and
reloads identically; rejects bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import goemotions_subset
from labelwise.labels import LabelSpace
from labelwise.metrics import roc_auc
from labelwise.models import FewShot, load_model, persist
from labelwise.models.neural import FineTunedFewShot

EMOTIONS = ["gratitude", "anger", "joy", "sadness"]
SEQ = 48  # tokens: every row of the subset fits, so the two encoders see the same text


@pytest.fixture(scope="module")
def shots():
    pytest.importorskip("transformers")
    return goemotions_subset("train", EMOTIONS, 32)


def _dense(S):
    return sp.csr_matrix(S).toarray()


def test_starts_exactly_as_the_fewshot_model(shots):
    # a label without examples ("sports news") starts from its name, as in FewShot
    space = LabelSpace([*EMOTIONS, "sports_news"])
    Y = sp.hstack([shots.Y, sp.csr_matrix((shots.Y.shape[0], 1))], format="csr")
    tiny = FineTunedFewShot(max_seq_length=SEQ, max_steps=1, learning_rate=1e-12,
                            head_learning_rate=1e-12, n_threads=2)
    tiny.fit(shots.X, Y, labels=space)
    fs = FewShot(max_seq_length=SEQ, cache=False).fit(shots.X, Y, labels=space)
    assert tiny.start_temperature_ == pytest.approx(fs.temperature_)
    assert tiny.start_bias_ == pytest.approx(fs.bias_)
    probe = [*shots.X[:6], "the referee ruined the match last night"]
    want = (_dense(fs.decision_function(probe, k=5)) - fs.bias_) / fs.temperature_
    got = _dense(tiny.decision_function(probe, k=5))
    np.testing.assert_allclose(got, want, atol=2e-3 / fs.temperature_)
    assert got[-1].argmax() == 4  # the label without examples, from its name
    E = tiny.embed(probe)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, rtol=1e-5)  # cosine space


def test_fine_tuning_separates_the_training_labels_better(shots):
    X, Y = shots.X, shots.Y
    start = FewShot(max_seq_length=SEQ, cache=False).fit(X, Y, labels=EMOTIONS)
    model = FineTunedFewShot(max_seq_length=SEQ, epochs=3, batch_size=8, n_threads=2)
    model.fit(X, Y, labels=EMOTIONS)
    steps = model.history_["step_loss"]
    assert model.history_["steps"] == 3 * -(-len(X) // 8) == len(steps)
    assert np.mean(steps[-4:]) < np.mean(steps[:4]), steps
    before = roc_auc(Y, start.decision_function(X, k=4), average="macro")
    after = roc_auc(Y, model.decision_function(X, k=4), average="macro")
    assert after > before, (before, after)


def test_saves_and_reloads_identically(shots, tmp_path):
    model = FineTunedFewShot(max_seq_length=16, max_steps=2, batch_size=4, n_threads=1)
    model.fit(shots.X[:12], shots.Y[:12], labels=EMOTIONS)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["arrays.safetensors",
                                                                   "manifest.json"]
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is FineTunedFewShot and loaded.get_params() == model.get_params()
    assert (loaded.start_temperature_, loaded.start_bias_) == (model.start_temperature_,
                                                               model.start_bias_)
    S, S2 = model.decision_function(shots.X, k=3), loaded.decision_function(shots.X, k=3)
    assert np.array_equal(S.indices, S2.indices) and np.array_equal(S.data, S2.data)
    assert persist.MODEL_CLASSES["FineTunedFewShot"] == (
        "labelwise.models.neural.fewshot_tuned", "FineTunedFewShot")


@pytest.mark.parametrize("params, message", [
    ({"shots_alpha": 0}, "shots_alpha"),
    ({"templates": ["no placeholder"]}, "templates"),
    ({"templates": "{label}"}, "templates"),
    ({"humanize_names": 1}, "humanize_names"),
    ({"learning_rate": -1.0}, "learning_rate"),
])
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        FineTunedFewShot(**params).fit(["a text"], np.ones((1, 1)))
