"""TermTable (a vocabulary in arrays, labelwise.features.terms) and the Tfidf saved forms that
use it: lookups equal a dict's, collisions never give a wrong id, tampered arrays are
refused, folders of the older form (vocabulary as a JSON list) load, mmap and pickle."""

from __future__ import annotations

import json
import mmap
import pickle

import numpy as np
import pytest

from labelwise.errors import DataFormatError
from labelwise.features import Featurizer, Tfidf, load_featurizer
from labelwise.features._term_kernels import build_table, find, term_hash
from labelwise.features.terms import TermTable, code_points

TERMS = ["cat", "dog", "the cat", " ca", "at ", "käsi", "İi", "\U0001F600x", "x\ud800", "a",
         "ab", "ba", "aa", "c", "ca"]


def _lookup(table: TermTable, token: str) -> int:
    buf = code_points(token)
    return int(find(table.table, table.terms, table.term_ptr, buf, 0, len(buf)))


def test_lookups_equal_a_dict():
    rng = np.random.default_rng(0)
    alphabet = list("abcdeäöå İ\U0001F600") + ["\ud800"]
    terms = sorted({"".join(rng.choice(alphabet, size=int(rng.integers(1, 7))))
                    for _ in range(3000)})
    table = TermTable.from_terms(terms)
    by_dict = {t: j for j, t in enumerate(terms)}
    assert len(table) == len(terms) and table.names() == terms
    probes = terms + ["".join(rng.choice(alphabet, size=int(rng.integers(1, 9))))
                      for _ in range(3000)] + ["", "zzz"]
    for token in probes:
        assert _lookup(table, token) == by_dict.get(token, -1), token


def test_a_colliding_entry_never_gives_a_wrong_id():
    """An entry with the probe's slot and fingerprint but another term's id: the code point
    comparison must reject it (the dict would not find the probe)."""
    table = TermTable.from_terms(TERMS)
    probe = code_points("zebra")
    h = int(term_hash(probe, 0, len(probe)))
    slots = np.array(table.table)
    s = h & (len(slots) - 1)
    while slots[s] != -1:
        s = (s + 1) & (len(slots) - 1)
    slots[s] = ((h >> 33) << 32) | 0  # claims "zebra" is term 0 ("cat")
    forged = TermTable.from_arrays(table.terms, table.term_ptr, slots, name="word")
    assert _lookup(forged, "zebra") == -1 and _lookup(forged, "cat") == 0


def _arrays(terms: list[str]) -> dict[str, np.ndarray]:
    return {k: np.array(a) for k, a in TermTable.from_terms(terms).arrays("word").items()}


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(word_terms=a["word_terms"].astype(np.int64)), "1-d uint32"),
    (lambda a: a.update(word_term_ptr=a["word_term_ptr"][::-1].copy()), "rise from 0"),
    (lambda a: a.update(word_term_ptr=a["word_term_ptr"] + 1), "rise from 0"),
    (lambda a: a["word_terms"].__setitem__(0, 0x110000), "not a code point"),
    (lambda a: a.update(word_table=a["word_table"][:len(TERMS)].copy()), "power-of-two size"),
    (lambda a: a.update(word_table=np.full(64, -1, np.int64)), "does not find term 0"),
    (lambda a: a["word_table"].__setitem__(np.flatnonzero(a["word_table"] != -1)[0], 99),
     "does not find term|not -1 or a term id"),
    (lambda a: a["word_table"].__setitem__(np.flatnonzero(a["word_table"] == -1)[0], 1 << 40 | 500),
     "not -1 or a term id"),
    (lambda a: a["word_table"].__setitem__(np.flatnonzero(a["word_table"] == -1)[0], -7),
     "not -1 or a term id"),
])
def test_tampered_arrays_are_refused(change, message):
    arrays = _arrays(TERMS)
    change(arrays)
    with pytest.raises(ValueError, match=message):
        TermTable.from_arrays(arrays["word_terms"], arrays["word_term_ptr"], arrays["word_table"],
                              name="word")


def test_a_repeated_term_is_refused_in_either_form():
    with pytest.raises(ValueError, match="repeats a term: 'cat'"):
        TermTable.from_terms(["cat", "dog", "cat"])
    terms = code_points("catdogcat")
    ptr = np.array([0, 3, 6, 9], np.int64)
    table = build_table(terms, ptr, 8)  # the kernel itself does not check
    with pytest.raises(ValueError, match="does not find term 2"):
        TermTable.from_arrays(terms, ptr, table, name="word")


CORPUS = ["Kivikautinen asuinpaikka löytyi Vantaalta", "the cat sat on the mat",
          "Pronssikautiset röykkiöt ja kivikautiset asuinpaikat", "a dog and a cat",
          "käsi kädet käsien", "emoji \U0001F600 cat"]
PROBES = CORPUS + ["", "Kivikautisia KÄSIÄ", "unknown words only", "lone \ud800 x"]


def _mapped(a) -> bool:
    while a is not None and not isinstance(a, np.memmap | mmap.mmap):
        a = getattr(a, "base", None)
    return a is not None


def _write_older_form(f: Tfidf, folder) -> None:
    """A featurizer folder as labelwise wrote it before term tables (and before checksums):
    the vocabulary a JSON list in the state, the idf weights the only arrays."""
    folder.mkdir()
    d = f.to_dict()
    offset, names = 0, []
    for block, table in f.tables_.items():
        d["state"][f"{block}_vocabulary"] = table.names()
        np.save(folder / f"{block}_idf.npy", f.idf_[offset:offset + len(table)])
        offset += len(table)
        names.append(f"{block}_idf")
    d["arrays"] = names
    (folder / "featurizer.json").write_text(json.dumps(d))


@pytest.mark.parametrize("params", [{"char_ngram_range": None}, {"char_ngram_range": (2, 4)}])
def test_older_folders_mmap_and_pickle_give_the_same_matrix(tmp_path, params):
    f = Tfidf(**params).fit(CORPUS)
    want = f.transform(PROBES)
    _write_older_form(f, tmp_path / "old")
    f.save(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "featurizer.json").read_text())
    assert not any(k.endswith("_vocabulary") for k in saved["state"])
    for g in (load_featurizer(tmp_path / "old"), load_featurizer(tmp_path / "new"),
              load_featurizer(tmp_path / "new", mmap=True),
              pickle.loads(pickle.dumps(load_featurizer(tmp_path / "new", mmap=True)))):
        assert g.feature_names() == f.feature_names()
        X = g.transform(PROBES)
        assert (X != want).nnz == 0 and np.array_equal(X.indices, want.indices)
        assert np.array_equal(X.data.view(np.int32), want.data.view(np.int32))
    mapped = load_featurizer(tmp_path / "new", mmap=True)
    assert all(_mapped(t.table) and _mapped(t.terms) for t in mapped.tables_.values())
    assert "vectorizers_" not in vars(mapped)  # no vocabulary dict unless asked for
    assert mapped.vectorizers_["word"].vocabulary_ == f.vectorizers_["word"].vocabulary_
    assert np.array_equal(mapped.vectorizers_["word"].idf_, f.vectorizers_["word"].idf_)


def test_a_repeated_term_in_saved_arrays_is_a_data_format_error():
    f = Tfidf(char_ngram_range=None).fit(CORPUS)
    d, arrays = f.to_dict(), dict(f.arrays())
    terms = code_points("catdogcat")
    ptr = np.array([0, 3, 6, 9], np.int64)
    arrays.update(word_terms=terms, word_term_ptr=ptr, word_table=build_table(terms, ptr, 8),
                  word_idf=np.ones(3))
    with pytest.raises(DataFormatError, match="word_table does not find term 2"):
        Featurizer.from_dict(d, arrays)


@pytest.mark.datasets
@pytest.mark.parametrize("name", ["annif-archaeology-fi", "cooking-stackexchange"])
def test_real_text_matches_the_vocabulary_dict_path(monkeypatch, name):
    """Finnish titles and English questions' titles (character 3-5-grams chosen by 'auto':
    an open vocabulary, short texts): the term tables' matrix is scikit-learn's (vocabulary
    dicts), bit for bit, one text at a time and in batches."""
    import labelwise.datasets as lds
    from conftest import shared_dataset_dir
    from labelwise.datasets import registry
    from test_features import _assert_bit_identical, _sklearn_matrix

    monkeypatch.setenv("LABELWISE_DATASETS_MIRROR",
                       str(shared_dataset_dir(registry.get(name).folder).parent))
    texts = list(lds.load(name, split="all").X)
    f = Tfidf().fit(texts[:3000])
    assert f.char_ngram_range_ == (3, 5)
    assert (f.unseen_word_rate_ >= 0.15) == name.startswith("annif") and f.median_words_ <= 10
    probe = texts[3000:4000]
    _assert_bit_identical(f.transform(probe), _sklearn_matrix(f, probe))
    for text in probe[:50]:
        _assert_bit_identical(f.transform([text]), _sklearn_matrix(f, [text]), text)
