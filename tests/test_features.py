"""Featurizers without the sentence encoder: tf-idf, fusion, the saved form, the embedding cache."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

from labelwise import Dataset
from labelwise.errors import DataFormatError, NotFittedError
from labelwise.features import Featurizer, Fusion, Tfidf, load_featurizer
from labelwise.features.cache import EmbeddingCache, text_keys

CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "cats and dogs are pets",
    "a cat chased the dog",
    "stock markets fell sharply today",
    "the market rallied on strong earnings",
]


def _reference_tfidf(docs: list[str], vocab: list[str]) -> np.ndarray:
    """Unigram tf-idf by hand: (1 + ln tf) * (ln((1 + n) / (1 + df)) + 1), rows to unit length."""
    toks = [[w for w in d.lower().split() if len(w) >= 2] for d in docs]
    n = len(CORPUS)
    df = Counter(w for d in CORPUS for w in set(x for x in d.lower().split() if len(x) >= 2))
    out = np.zeros((len(docs), len(vocab)))
    for i, t in enumerate(toks):
        for w, c in Counter(t).items():
            if w in vocab:
                out[i, vocab.index(w)] = (1 + math.log(c)) * (math.log((1 + n) / (1 + df[w])) + 1)
        norm = np.linalg.norm(out[i])
        if norm:
            out[i] /= norm
    return out


def test_tfidf_matches_hand_computed_unigrams():
    f = Tfidf(ngram_range=(1, 1)).fit(CORPUS)
    vocab = f.feature_names()
    docs = ["the cat the cat sat", "markets and dogs", "unknown words only"]
    X = f.transform(docs)
    assert isinstance(X, sp.csr_matrix) and X.dtype == np.float32 and X.has_sorted_indices
    np.testing.assert_allclose(X.toarray(), _reference_tfidf(docs, vocab), rtol=1e-6, atol=1e-7)
    assert X[2].nnz == 0  # no known word: an all-zero row, not an error


def test_tfidf_bigrams_and_char_ngrams():
    f = Tfidf(ngram_range=(1, 2), char_ngram_range=(2, 3)).fit(CORPUS)
    names = f.feature_names()
    assert "cat sat" in names and "char: c" in names and "char:cat" in names
    X = f.transform(CORPUS)
    assert X.shape == (len(CORPUS), f.n_features_) == (6, len(names))
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(1)).A1, 1.0, rtol=1e-6)
    # character n-grams make an unseen spelling variant overlap with its neighbour
    v = f.transform(["catz"])
    assert v[:, [names.index("char:cat")]].toarray()[0, 0] > 0


@pytest.mark.parametrize("params", [
    {"ngram_range": (1, 2)},
    {"ngram_range": (1, 1), "char_ngram_range": (1, 4), "sublinear_tf": False, "norm": None},
    {"ngram_range": (1, 3), "min_df": 2, "lowercase": False},
])
def test_tfidf_save_load_identical(tmp_path, params):
    f = Tfidf(**params).fit(CORPUS)
    probe = CORPUS + ["Cat markets, DOG logs!", ""]
    f.save(tmp_path / "f")
    files = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert all(name.endswith((".npy", ".json")) for name in files), files
    saved = json.loads((tmp_path / "f" / "featurizer.json").read_text())
    assert saved["class"] == "Tfidf" and "word_vocabulary" not in saved["state"]
    assert set(saved["arrays"]) >= {"word_terms", "word_term_ptr", "word_table", "word_idf"}
    g = load_featurizer(tmp_path / "f")
    assert isinstance(g, Tfidf) and g.get_params() == f.get_params()
    A, B = f.transform(probe), g.transform(probe)
    assert (A != B).nnz == 0 and np.array_equal(A.indices, B.indices)
    h = Featurizer.from_dict(f.to_dict(), f.arrays())
    assert (h.transform(probe) != A).nnz == 0


def _sklearn_matrix(f: Tfidf, texts: list[str]) -> sp.csr_matrix:
    """The reference: scikit-learn's vectorizers of ``f`` (with their vocabulary dicts),
    their blocks side by side, float32, L2-normalised by scikit-learn, indices sorted."""
    from sklearn.preprocessing import normalize

    parts = [v.transform(texts) for v in f.vectorizers_.values()]
    X = sp.csr_matrix(parts[0] if len(parts) == 1 else sp.hstack(parts, format="csr"),
                      dtype=np.float32)
    if f.norm == "l2":
        X = normalize(X, norm="l2", copy=False)
    X.sort_indices()
    return X


def _assert_bit_identical(A: sp.csr_matrix, B: sp.csr_matrix, what: object = None) -> None:
    assert A.shape == B.shape and A.dtype == B.dtype == np.float32 and A.has_sorted_indices
    assert np.array_equal(A.indptr, B.indptr) and np.array_equal(A.indices, B.indices), what
    assert np.array_equal(A.data.view(np.int32), B.data.view(np.int32)), what


#: texts that stress the tokenisers: repeats, unknown words, empty, whitespace of every
#: kind, punctuation, case, accents, letters whose lowercase is longer (U+0130), symbols
#: outside the BMP, a lone surrogate, one-letter words
TRICKY = ["", "   ", "\t\n", "the the the the cat", "Cat markets, DOG logs!", "unknown words only",
          "a b c d e", "x", "ÄÖ å \u0130stanbul İİ", "tab\tand\u00a0nbsp\u2003em  \u3000ideo",
          "emoji \U0001F600\U0001F600 cat\U0001F600dog", "lone \ud800 surrogate", "CAT-DOG_cat's",
          "mat,mat.mat;mat", "\u1680ogham\x1cfs\x1dgs\x85nel", "käsi kädet käsien kätensä"]


@pytest.mark.parametrize("params", [
    {}, {"ngram_range": (1, 1), "char_ngram_range": (1, 4), "sublinear_tf": False, "norm": None},
    {"ngram_range": (1, 3), "char_ngram_range": (2, 3), "lowercase": False},
    {"ngram_range": (2, 3), "char_ngram_range": (3, 5)},
])
def test_tfidf_transform_is_bit_identical_to_the_vectorizers(params):
    """The term-table kernel must give scikit-learn's matrix, bit for bit, for any text and
    batch size; and must follow a refit."""
    rng = np.random.default_rng(0)
    words = " ".join(CORPUS + TRICKY).split() + ["zebra", "Cat", "DOG!", "mat,", "sat-on"]
    probes = [" ".join(rng.choice(words, size=int(rng.integers(0, 25)))) for _ in range(60)]
    probes += TRICKY
    f = Tfidf(**params).fit(CORPUS + probes[:20] + TRICKY[:8])
    for i in range(0, len(probes), 3):
        _assert_bit_identical(f.transform(probes[i:i + 3]), _sklearn_matrix(f, probes[i:i + 3]),
                              probes[i:i + 3])
    _assert_bit_identical(f.transform(probes), _sklearn_matrix(f, probes))
    f.fit(["other words entirely"])  # the term tables must follow a refit
    fast = f.transform(["other words", "the cat"])
    assert fast.shape == (2, f.n_features_) and fast[0].nnz > 0
    _assert_bit_identical(fast, _sklearn_matrix(f, ["other words", "the cat"]))


def test_tfidf_chunks_give_one_matrix(monkeypatch):
    import labelwise.features.tfidf as tfidf_module

    f = Tfidf(char_ngram_range=(2, 4)).fit(CORPUS)
    whole = f.transform(CORPUS + TRICKY)
    monkeypatch.setattr(tfidf_module, "_CHUNK_CODE_POINTS", 20)
    assert len(tfidf_module._chunks(CORPUS + TRICKY)) > 5
    _assert_bit_identical(f.transform(CORPUS + TRICKY), whole)


def test_tfidf_token_pattern_is_scikit_learns():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from labelwise.features.tfidf import TOKEN_PATTERN

    assert TfidfVectorizer().token_pattern == TOKEN_PATTERN


def test_tfidf_refit_and_clone():
    f = Tfidf(min_df=1)
    X1 = f.fit_transform(CORPUS)
    f.fit(["other words entirely"])
    assert f.n_features_ == 5  # 3 words + 2 bigrams
    X2 = f.fit(CORPUS).transform(CORPUS)
    assert (X1 != X2).nnz == 0
    c = clone(f)
    assert c.get_params() == f.get_params() and not hasattr(c, "vectorizers_")
    assert (Tfidf().fit(Dataset(CORPUS, [[0]] * 6)).transform(CORPUS) != X1).nnz == 0


def test_tfidf_bad_input():
    with pytest.raises(NotFittedError, match="not fitted"):
        Tfidf().transform(["a text"])
    with pytest.raises(DataFormatError, match=r"X\[1\]: expected a text, got int"):
        Tfidf().fit(["fine", 3])
    with pytest.raises(DataFormatError, match="single str"):
        Tfidf().fit("a single string")
    with pytest.raises(DataFormatError, match="no texts"):
        Tfidf().fit([])
    with pytest.raises(DataFormatError, match="word n-grams"):
        Tfidf().fit(["a", "b"])  # only one-letter tokens: empty vocabulary


def test_saved_form_refuses_bad_input(tmp_path):
    f = Tfidf().fit(CORPUS)
    d, arrays = f.to_dict(), f.arrays()
    with pytest.raises(DataFormatError, match="unknown featurizer class 'os.system'"):
        Featurizer.from_dict({**d, "class": "os.system"}, arrays)
    with pytest.raises(DataFormatError, match="format version 9"):
        Featurizer.from_dict({**d, "format_version": 9}, arrays)
    with pytest.raises(DataFormatError, match="unknown parameters for Tfidf: evil"):
        Featurizer.from_dict({**d, "params": {**d["params"], "evil": 1}}, arrays)
    with pytest.raises(DataFormatError, match="word_idf has shape"):
        Featurizer.from_dict(d, {**arrays, "word_idf": arrays["word_idf"][:-1]})
    with pytest.raises(DataFormatError, match="'word_table'"):  # a missing array is named
        Featurizer.from_dict(d, {k: a for k, a in arrays.items() if k != "word_table"})
    old = {**d, "state": {**d["state"], "word_vocabulary": f.feature_names()}}  # older form
    with pytest.raises(DataFormatError, match="repeats a term"):
        vocab = old["state"]["word_vocabulary"]
        Featurizer.from_dict({**old, "state": {**old["state"], "word_vocabulary": [vocab[0]] * len(vocab)}},
                             {"word_idf": arrays["word_idf"]})
    with pytest.raises(DataFormatError, match="lacks the character n-gram range"):
        Featurizer.from_dict({**d, "state": {"word_vocabulary": f.feature_names()}}, arrays)
    with pytest.raises(DataFormatError, match=r"char_ngram_range must be null or \[min_n, max_n\]"):
        Featurizer.from_dict({**d, "state": {**d["state"], "char_ngram_range": [3, "x"]}}, arrays)
    with pytest.raises(DataFormatError, match="no featurizer.json"):
        load_featurizer(tmp_path)
    f.save(tmp_path / "f")
    (tmp_path / "f" / "featurizer.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="malformed JSON"):
        load_featurizer(tmp_path / "f")


# ---------------------------------------------------------------------- fusion
def _row_norms(X) -> np.ndarray:
    X = X.toarray() if sp.issparse(X) else X
    return np.linalg.norm(X, axis=1)


def test_fusion_blocks_are_normalised_and_weighted():
    a = Tfidf(ngram_range=(1, 1), norm=None)
    b = Tfidf(ngram_range=(1, 1), char_ngram_range=(3, 3), norm=None)
    fu = Fusion([("words", a, 2.0), ("chars", b, 0.5)]).fit(CORPUS)
    X = fu.transform(CORPUS)
    na = fu.blocks_[0][1].n_features_
    assert isinstance(X, sp.csr_matrix) and X.dtype == np.float32
    assert X.shape[1] == na + fu.blocks_[1][1].n_features_
    np.testing.assert_allclose(_row_norms(X[:, :na]), 2.0, rtol=1e-6)
    np.testing.assert_allclose(_row_norms(X[:, na:]), 0.5, rtol=1e-6)
    # the blocks' own outputs, scaled: nothing else changes
    ref = fu.blocks_[0][1].transform(CORPUS).toarray()
    ref = 2.0 * ref / np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(X[:, :na].toarray(), ref, rtol=1e-6)


def test_fusion_context_is_the_group_mean():
    fu = Fusion([("w", Tfidf(ngram_range=(1, 1)))], context="w", context_weight=0.7).fit(CORPUS)
    groups = ["d1", "d1", "d2", "d1", "d3", "d3"]
    X = fu.transform(CORPUS, groups=groups).toarray()
    B = fu.blocks_[0][1].transform(CORPUS).toarray()
    nb = B.shape[1]
    np.testing.assert_allclose(X[:, :nb], B, rtol=1e-6)
    for i, g in enumerate(groups):  # slow reference: loop over the group's members
        members = [j for j, h in enumerate(groups) if h == g]
        mean = B[members].mean(axis=0)
        np.testing.assert_allclose(X[i, nb:], 0.7 * mean / np.linalg.norm(mean), rtol=1e-5,
                                   atol=1e-7)
    # an item alone in its group gets itself as context
    np.testing.assert_allclose(fu.transform(CORPUS[:1], groups=["x"]).toarray()[0, nb:],
                               0.7 * B[0], rtol=1e-6)
    with pytest.raises(DataFormatError, match="needs groups"):
        fu.transform(CORPUS)
    with pytest.raises(DataFormatError, match="one entry per text"):
        fu.transform(CORPUS, groups=groups[:2])
    with pytest.raises(DataFormatError, match="context is None"):
        Fusion([("w", Tfidf())]).fit(CORPUS).transform(CORPUS, groups=groups)


def test_fusion_save_load_and_params(tmp_path):
    fu = Fusion([("w", Tfidf(ngram_range=(1, 2)), 1.5), ("c", Tfidf(char_ngram_range=(2, 4)))],
                context="c", context_weight=0.25).fit(CORPUS)
    groups = [1, 1, 2, 2, 3, 3]
    fu.save(tmp_path / "fu")
    g = load_featurizer(tmp_path / "fu")
    assert isinstance(g, Fusion) and [n for n, _, _ in g.blocks_] == ["w", "c"]
    A, B = fu.transform(CORPUS, groups=groups), g.transform(CORPUS, groups=groups)
    assert (A != B).nnz == 0
    c = clone(fu)
    assert c.context == "c" and not hasattr(c.blocks[0][1], "vectorizers_")
    with pytest.raises(ValueError, match="context block 'x'"):
        Fusion([("w", Tfidf())], context="x").fit(CORPUS)
    with pytest.raises(ValueError, match="repeat"):
        Fusion([("w", Tfidf()), ("w", Tfidf())]).fit(CORPUS)
    with pytest.raises(ValueError, match="not a Featurizer"):
        Fusion([("w", object())]).fit(CORPUS)


# ---------------------------------------------------------------------- cache
def test_text_keys_are_sha256():
    keys = text_keys(["a", "é", ""])
    assert keys.dtype == np.uint8 and keys.shape == (3, 32)
    assert keys[1].tobytes() == hashlib.sha256("é".encode()).digest()


def test_cache_put_get_and_reopen(tmp_path):
    rng = np.random.default_rng(0)
    texts = [f"text {i}" for i in range(10)]
    vecs = rng.normal(size=(10, 8)).astype(np.float32)
    c = EmbeddingCache("ab12", root=tmp_path)
    got, hit = c.get(text_keys(texts))
    assert not hit.any()
    assert c.put(text_keys(texts[:6]), vecs[:6]) == 6
    assert c.put(text_keys(texts[4:]), vecs[4:]) == 4  # 4 and 5 are already there
    again = EmbeddingCache("ab12", root=tmp_path)  # a new process would see the same shards
    got, hit = again.get(text_keys(texts[::-1] + ["new"]))
    assert hit.tolist() == [True] * 10 + [False]
    assert np.array_equal(got[:10], vecs[::-1]) and not got[10].any()
    assert len(again) == 10
    assert len(list((tmp_path / "embeddings" / "ab12").glob("*.keys.npy"))) == 2
    assert EmbeddingCache("cd34", root=tmp_path).get(text_keys(texts))[1].sum() == 0


def test_cache_refuses_bad_shards(tmp_path):
    c = EmbeddingCache("ab12", root=tmp_path)
    c.put(text_keys(["x", "y"]), np.ones((2, 4), np.float32))
    shard = next((tmp_path / "embeddings" / "ab12").glob("*.vecs.npy"))
    np.save(shard, np.ones((3, 4), np.float32))
    with pytest.raises(DataFormatError, match="inconsistent"):
        EmbeddingCache("ab12", root=tmp_path).get(text_keys(["x"]))
    with pytest.raises(ValueError, match="hex digest"):
        EmbeddingCache("../etc", root=tmp_path)
    with pytest.raises(ValueError, match="dimension 5"):
        c.put(text_keys(["z"]), np.ones((1, 5), np.float32))


def test_cache_home_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELWISE_CACHE_HOME", str(tmp_path / "home"))
    c = EmbeddingCache("ab12")
    c.put(text_keys(["x"]), np.ones((1, 3), np.float32))
    assert (tmp_path / "home" / "embeddings" / "ab12").is_dir()


def test_unseen_word_rate_hand_values(monkeypatch):
    import labelwise.features.tfidf as tfidf_module

    monkeypatch.setattr(tfidf_module, "MIN_HELD_OUT_TOKENS", 1)
    # even texts see {cat, sat, dog}; odd texts: "cat ran" (ran unseen), "Dog dog bird" (bird)
    texts = ["cat sat", "cat ran", "the dog", "Dog dog bird"]
    assert tfidf_module.unseen_word_rate(texts) == pytest.approx(2 / 5)
    assert tfidf_module.unseen_word_rate(texts, lowercase=False) == pytest.approx(3 / 5)
    monkeypatch.setattr(tfidf_module, "MIN_HELD_OUT_TOKENS", 6)
    assert tfidf_module.unseen_word_rate(texts) is None  # 5 held-out tokens: too few
    assert tfidf_module.word_statistics(texts) == (None, None)
    monkeypatch.setattr(tfidf_module, "MIN_HELD_OUT_TOKENS", 1)
    # lengths 2, 2, 2, 3 (scikit-learn drops one-letter tokens: "a" is not a word)
    assert tfidf_module.word_statistics(texts + ["a b"]) == (pytest.approx(2 / 5), 2.0)
    assert tfidf_module.word_statistics(texts[:3] + ["x1 x2 x3 x4 x5 x6"])[1] == 2.0
    assert tfidf_module.word_statistics(["aa bb cc", "aa bb cc dd"]) == (0.25, 3.5)


def test_tfidf_auto_adds_character_ngrams_to_short_texts(tmp_path, monkeypatch):
    """Rule 2 of 'auto': texts with a median of at most SHORT_TEXT_WORDS word tokens get
    character n-grams even where their words recur; one word more and they do not; too few
    held-out tokens to measure: words only."""
    import labelwise.features.tfidf as tfidf_module

    rng = np.random.default_rng(1)
    words = [f"w{a}{b}" for a in "abcdefgh" for b in "ijklmnop"]  # 64 words, all recurring

    def corpus(n_texts, length):
        return [" ".join(rng.choice(words, size=length)) for _ in range(n_texts)]

    limit = tfidf_module.SHORT_TEXT_WORDS
    short = Tfidf().fit(corpus(300, limit))
    assert short.unseen_word_rate_ == 0.0 and short.median_words_ == limit
    assert short.char_ngram_range_ == (3, 5)
    longer = Tfidf().fit(corpus(300, limit + 1))
    assert longer.median_words_ == limit + 1 and longer.char_ngram_range_ is None
    tiny = Tfidf().fit(corpus(20, 8))  # 80 held-out tokens: no estimate
    assert tiny.unseen_word_rate_ is None and tiny.char_ngram_range_ is None
    assert Tfidf(char_ngram_range=None).fit(corpus(300, 8)).char_ngram_range_ is None
    # a folder saved before rule 2 (words only on short texts) keeps its choice and answers
    texts = corpus(600, 8)  # 2,400 held-out tokens: enough to measure
    with monkeypatch.context() as m:
        m.setattr(tfidf_module, "SHORT_TEXT_WORDS", 0)
        old = Tfidf().fit(texts)
    assert old.char_ngram_range_ is None
    old.save(tmp_path / "old")
    back = load_featurizer(tmp_path / "old")
    assert back.char_ngram_range_ is None and back.get_params()["char_ngram_range"] == "auto"
    assert back.median_words_ is None and back.unseen_word_rate_ == old.unseen_word_rate_
    assert (back.transform(texts[:50]) != old.transform(texts[:50])).nnz == 0
    assert Tfidf().fit(texts).char_ngram_range_ == (3, 5)  # a new fit follows the rule


def test_tfidf_auto_adds_character_ngrams_only_for_open_vocabularies(tmp_path):
    """'auto' keeps words only on a corpus whose held-out words recur, adds character 3- to
    5-grams where most held-out word forms are new (as in an inflecting language), saves the
    choice, and folders saved before 'auto' (the range as the parameter) still load."""
    rng = np.random.default_rng(0)
    stems = ["talo", "kirja", "kivi", "metsa", "kaupunki", "joki", "vuori", "saari"]
    endings = [f"{a}{b}" for a in "aeiouy" for b in ["", "ssa", "sta", "lla", "lle", "n", "t",
                                                      "ksi", "na", "ihin"]]
    closed = [" ".join(rng.choice(stems, size=30)) for _ in range(600)]  # long: rule 2 off
    open_ = [" ".join(s + rng.choice(endings) + str(int(rng.integers(0, 40)))
                      for s in rng.choice(stems, size=8)) for _ in range(600)]
    f = Tfidf().fit(closed)
    assert f.unseen_word_rate_ == 0.0 and f.char_ngram_range_ is None and f.median_words_ == 30
    assert all(not n.startswith("char:") for n in f.feature_names())
    g = Tfidf().fit(open_)
    assert g.unseen_word_rate_ >= 0.15 and g.char_ngram_range_ == (3, 5)
    names = g.feature_names()
    assert "char:kivi" in names and "char: ki" in names
    assert Tfidf(char_ngram_range=None).fit(open_).char_ngram_range_ is None  # the user's choice
    g.save(tmp_path / "g")
    h = load_featurizer(tmp_path / "g")
    assert h.char_ngram_range_ == (3, 5) and h.get_params()["char_ngram_range"] == "auto"
    assert (h.transform(open_[:40]) != g.transform(open_[:40])).nnz == 0
    with pytest.raises(ValueError, match="char_ngram_range must be"):
        Tfidf(char_ngram_range="sometimes").fit(open_)
    # a folder from before 'auto': params hold the range, the state has no choice recorded
    old = Tfidf(char_ngram_range=(2, 3)).fit(CORPUS)
    d = old.to_dict()
    del d["state"]["char_ngram_range"], d["state"]["unseen_word_rate"]
    back = Featurizer.from_dict(d, old.arrays())
    assert back.char_ngram_range_ == (2, 3) and (back.transform(CORPUS) != old.transform(CORPUS)).nnz == 0
