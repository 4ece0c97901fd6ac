"""``Tfidf``: word n-gram (and optional character n-gram) tf-idf features.

Built on scikit-learn's :class:`~sklearn.feature_extraction.text.TfidfVectorizer`. With
``char_ngram_range`` set, a second vectorizer over character n-grams within word boundaries
(``analyzer='char_wb'``) runs beside the word one; its columns follow the word columns.
Each row is L2-normalised once over all its columns (``norm='l2'``), so word and character
blocks share one scale.

``char_ngram_range='auto'`` (the default) decides from the training texts. Character
n-grams (3 to 5, within word boundaries) are added in two cases, both measured on the first
``RATE_TEXTS`` texts, whose odd-numbered texts must hold at least 2,000 word tokens (fewer
cannot estimate either figure: words only):

1. **An open vocabulary**: the language's word forms are too many for whole words to recur,
   measured as the **unseen-word rate**, the share of the word tokens of the odd-numbered
   texts that never occur in the even-numbered ones, at 0.15 or more. An inflecting language
   (Finnish titles: 0.43) is far above an English corpus of any length (cooking titles 0.052,
   GoEmotions 0.058, Reuters 0.023, Enron 0.015). Chosen on Annif's Finnish archaeology
   titles (P@1 37.5 -> 49.9 with a LabelTree); the English corpora keep words only by it.
2. **Short texts**: the median text has at most ``SHORT_TEXT_WORDS`` (20) word tokens (a
   title, a question, a comment). Such a text has few words to match, so one word form the
   training texts spelled differently ("baking" / "baked") is a large part of its evidence;
   character n-grams match the shared stem, as the snowball stemmer does for Annif. Chosen
   on cooking.stackexchange (questions' titles, median 8 words: LabelTree P@1 70.50 -> 71.67,
   P@5 30.92 -> 31.63, now above Annif's 71.47 / 30.98; ``benchmarks/serve.py``), with the
   archaeology titles (median 5; already by rule 1) as the second development corpus;
   confirmed on corpora not used to choose it, through ``labelwise train`` + ``tune``:
   GoEmotions (Reddit comments, median 12: chosen; test P@1 55.41 -> 56.85, P@3 +0.86,
   P@5 +0.44, micro-F1 +0.22) and Reuters-21578 / Enron (median 87 / 314: not chosen).
   Long texts repeat their evidence, and character n-grams cost in proportion to the
   text's length.

The figures and the choice are kept (``unseen_word_rate_``, ``median_words_`` (not saved:
None after loading), ``char_ngram_range_``); a folder saved by an earlier version loads with
the choice it recorded, so its answers do not change.

Transform (every batch size): each block's vocabulary is a
:class:`~labelwise.features.terms.TermTable` (arrays, no Python dict), and one numba kernel
counts the n-grams of the texts found in it (:mod:`labelwise.features._term_kernels`); Python only lowercases, tokenises
(scikit-learn's token pattern; ``str.split`` for the character block) and joins each text
once. The matrix is scikit-learn's, bit for bit (the same float32 operations in the same
order: ``log`` in numpy, idf product and L2 norm as scikit-learn computes them), and a test
keeps it equal; scikit-learn's vectorizers are used to fit only.

Saved form (no pickle): per block, the term table's arrays ``{block}_terms``,
``{block}_term_ptr``, ``{block}_table`` and the idf weights ``{block}_idf`` (float64, one per
column), memory-mapped at load by a server so that its workers share them; the state holds
the character n-gram choice. A folder saved before term tables (the vocabulary a JSON list
``{block}_vocabulary`` in the state) loads too: its tables are built at load, in memory.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from .._csr import trusted_csr
from ..errors import DataFormatError
from .base import Featurizer
from .terms import TermTable, code_points

__all__ = ["Tfidf", "unseen_word_rate", "word_statistics"]

#: character n-gram sizes that ``char_ngram_range='auto'`` adds (module docstring)
AUTO_CHAR_RANGE = (3, 5)
#: the unseen-word rate at and above which 'auto' adds character n-grams
OPEN_VOCABULARY_RATE = 0.15
#: the fewest held-out word tokens from which 'auto' estimates the rate (below: words only)
MIN_HELD_OUT_TOKENS = 2000
#: the rate is measured on the first this many training texts (enough for a stable rate)
RATE_TEXTS = 20000
#: texts whose median has at most this many word tokens get character n-grams too (rule 2)
SHORT_TEXT_WORDS = 20

#: scikit-learn's default ``token_pattern`` (the word block's tokens; a test pins it)
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_TOKENS = re.compile(TOKEN_PATTERN)
#: texts are counted in chunks of about this many code points (bounds the kernel's buffers)
_CHUNK_CODE_POINTS = 1 << 22


class Tfidf(Featurizer):
    """Tf-idf over word n-grams, plus character n-grams when ``char_ngram_range`` is set.

    Parameters
    ----------
    ngram_range: (min_n, max_n) word n-gram sizes.
    char_ngram_range: (min_n, max_n) character n-gram sizes, None for words only, or 'auto'
        (default): chosen by the unseen-word rate of the training texts (module docstring).
    min_df, max_df: document-frequency cut-offs (int = count, float = proportion).
    max_features: keep at most this many terms per block (most frequent first), or None.
    sublinear_tf: use 1 + log(tf) instead of tf.
    lowercase: lowercase texts before tokenising.
    norm: 'l2' to scale each row to unit length over all blocks, or None.
    """

    _persist_name = "Tfidf"

    def __init__(self, *, ngram_range: tuple[int, int] = (1, 2),
                 char_ngram_range: tuple[int, int] | str | None = "auto",
                 min_df: int | float = 1,
                 max_df: int | float = 1.0, max_features: int | None = None,
                 sublinear_tf: bool = True, lowercase: bool = True,
                 norm: str | None = "l2") -> None:
        self.ngram_range = ngram_range
        self.char_ngram_range = char_ngram_range
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf
        self.lowercase = lowercase
        self.norm = norm

    @classmethod
    def _params_from_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        p = dict(params)
        for key in ("ngram_range", "char_ngram_range"):
            if isinstance(p.get(key), list):
                p[key] = tuple(p[key])
        return p

    def _vectorizer(self, analyzer: str, ngram_range: Any,
                    vocabulary: list[str] | None = None) -> TfidfVectorizer:
        return TfidfVectorizer(
            analyzer=analyzer, ngram_range=tuple(ngram_range), min_df=self.min_df,
            max_df=self.max_df, max_features=self.max_features, sublinear_tf=self.sublinear_tf,
            lowercase=self.lowercase, norm=None, dtype=np.float32, vocabulary=vocabulary)

    def _blocks(self, char_range: Any) -> list[tuple[str, str, Any]]:
        if self.norm not in ("l2", None):
            raise ValueError(f"norm must be 'l2' or None, got {self.norm!r}")
        out = [("word", "word", self.ngram_range)]
        if char_range is not None:
            out.append(("char", "char_wb", char_range))
        return out

    def _char_range(self, texts: list[str]) -> tuple[Any, float | None]:
        """(the character n-gram range to use, the unseen-word rate when 'auto' measured it)."""
        r = self.char_ngram_range
        if isinstance(r, str):
            if r != "auto":
                raise ValueError(f"char_ngram_range must be (min_n, max_n), None or 'auto', "
                                 f"got {r!r}")
            rate, median = word_statistics(texts, lowercase=self.lowercase)
            self.median_words_ = median
            chars = rate is not None and (rate >= OPEN_VOCABULARY_RATE
                                          or median <= SHORT_TEXT_WORDS)
            return (AUTO_CHAR_RANGE if chars else None), rate
        return (None if r is None else tuple(r)), None

    def _fit(self, texts: list[str]) -> None:
        self.median_words_ = None
        char_range, rate = self._char_range(texts)
        vecs = {}
        for name, analyzer, rng in self._blocks(char_range):
            v = self._vectorizer(analyzer, rng)
            try:
                v.fit(texts)
            except ValueError as e:  # empty vocabulary after the df cut-offs
                raise DataFormatError(f"{name} n-grams: {e}", field="X") from None
            vecs[name] = v
        self.vectorizers_ = vecs
        self.char_ngram_range_ = char_range
        self.unseen_word_rate_ = rate
        self.tables_ = {name: TermTable.from_terms(v.get_feature_names_out().tolist())
                        for name, v in vecs.items()}
        self.idf_ = np.concatenate([np.asarray(v.idf_, dtype=np.float64)
                                    for v in vecs.values()])

    def __getattr__(self, name: str) -> Any:
        """``vectorizers_`` of a loaded Tfidf (its term tables, no vocabulary dict, are what
        it transforms with): scikit-learn's vectorizers rebuilt on first use, for code that
        wants them."""
        if name == "vectorizers_" and "tables_" in self.__dict__:
            vecs, offset = {}, 0
            for block, analyzer, rng in self._blocks(self.char_ngram_range_):
                table = self.tables_[block]
                v = self._vectorizer(analyzer, rng, vocabulary=table.names())
                v.idf_ = self.idf_[offset:offset + len(table)]
                offset += len(table)
                vecs[block] = v
            self.__dict__["vectorizers_"] = vecs
            return vecs
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def n_features_(self) -> int:
        self._check_fitted()
        return len(self.idf_)

    def feature_names(self) -> list[str]:
        """Column names: word terms, then character n-grams prefixed by ``char:``."""
        self._check_fitted()
        out: list[str] = []
        for name, table in self.tables_.items():
            terms = table.names()
            out.extend(terms if name == "word" else [f"char:{t}" for t in terms])
        return out

    def _transform(self, texts: list[str]) -> sp.csr_matrix:
        """Counts by the kernel, then tf-idf and the L2 norm as scikit-learn computes them
        (module docstring)."""
        from ._term_kernels import l2_rows

        parts = [self._counts(chunk) for chunk in _chunks(texts)]
        if len(parts) == 1:
            indptr, indices, counts = parts[0]
        else:
            ends = np.cumsum([p[0][-1] for p in parts])
            indptr = np.concatenate([parts[0][0]] + [p[0][1:] + e
                                                     for p, e in zip(parts[1:], ends[:-1])])
            indices = np.concatenate([p[1] for p in parts])
            counts = np.concatenate([p[2] for p in parts])
        data = counts.astype(np.float32)
        if self.sublinear_tf:
            np.log(data, out=data)
            data += 1.0
        data *= self.idf_[indices]
        if self.norm == "l2":
            l2_rows(indptr, data)
        return trusted_csr(data, indices, indptr, (len(texts), self.n_features_),
                           sorted_indices=True)

    def _counts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, indices, counts) of the known n-grams of ``texts`` (one kernel call)."""
        from ._term_kernels import count_rows

        lower, tokens = self.lowercase, _TOKENS.findall
        words: list[str] = []
        padded: list[str] = []
        char = "char" in self.tables_
        for text in texts:
            if lower:
                text = text.lower()
            words.append(" ".join(tokens(text)))
            if char:
                padded.append(" " + " ".join(text.split()) + " ")
        w = self.tables_["word"]
        wbuf, wptr = _joined(words)
        (wmin, wmax), (cmin, cmax) = self.ngram_range, self.char_ngram_range_ or (1, 1)
        if char:
            c = self.tables_["char"]
            cbuf, cptr = _joined(padded)
        else:
            c, cbuf, cptr = w, wbuf[:0], np.zeros(0, np.int64)
        return count_rows(wbuf, wptr, int(wmin), int(wmax), w.table, w.terms, w.term_ptr,
                          cbuf, cptr, int(cmin), int(cmax), c.table, c.terms, c.term_ptr,
                          len(w))

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        offset = 0
        for name, table in self.tables_.items():
            arrays.update(table.arrays(name))
            arrays[f"{name}_idf"] = self.idf_[offset:offset + len(table)]
            offset += len(table)
        state = {"char_ngram_range": (None if self.char_ngram_range_ is None
                                      else list(self.char_ngram_range_)),
                 "unseen_word_rate": self.unseen_word_rate_}
        return arrays, state

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        if "char_ngram_range" in state:  # the range the fit chose
            r = state["char_ngram_range"]
            if r is not None and not (isinstance(r, list) and len(r) == 2
                                      and all(isinstance(n, int) for n in r)):
                raise ValueError("char_ngram_range must be null or [min_n, max_n]")
            char_range = None if r is None else tuple(r)
        elif isinstance(self.char_ngram_range, str):
            raise ValueError("the state lacks the character n-gram range that 'auto' chose")
        else:  # saved before 'auto' existed: the parameter is the range
            char_range = None if self.char_ngram_range is None else tuple(self.char_ngram_range)
        tables, idfs = {}, []
        for name, _, _ in self._blocks(char_range):
            if f"{name}_vocabulary" in state:  # saved before term tables: built here
                vocab = state[f"{name}_vocabulary"]
                if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
                    raise ValueError(f"{name}_vocabulary must be a list of strings")
                table = TermTable.from_terms(vocab)
            else:
                table = TermTable.from_arrays(arrays[f"{name}_terms"],
                                              arrays[f"{name}_term_ptr"],
                                              arrays[f"{name}_table"], name=name)
            idf = np.asarray(arrays[f"{name}_idf"], dtype=np.float64)
            if idf.shape != (len(table),):
                raise ValueError(f"{name}_idf has shape {idf.shape}, expected ({len(table)},)")
            tables[name] = table
            idfs.append(idf)
        self.tables_ = tables
        self.idf_ = idfs[0] if len(idfs) == 1 else np.concatenate(idfs)
        self.char_ngram_range_ = char_range
        rate = state.get("unseen_word_rate")
        self.unseen_word_rate_ = None if rate is None else float(rate)
        self.median_words_ = None


def _chunks(texts: list[str]) -> list[list[str]]:
    """``texts`` cut into runs of about ``_CHUNK_CODE_POINTS`` code points (at least one
    text each)."""
    out, start, size = [], 0, 0
    for i, text in enumerate(texts):
        size += len(text)
        if size >= _CHUNK_CODE_POINTS:
            out.append(texts[start:i + 1])
            start, size = i + 1, 0
    if start < len(texts) or not out:
        out.append(texts[start:])
    return out


def _joined(parts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The code points of the parts one after the other, and where each starts (n + 1)."""
    ends, end = [0], 0
    for p in parts:
        end += len(p)
        ends.append(end)
    return code_points("".join(parts)), np.array(ends, dtype=np.int64)


def unseen_word_rate(texts: list[str], *, lowercase: bool = True) -> float | None:
    """The share of the word tokens of the odd-numbered texts that never occur in the
    even-numbered ones (scikit-learn's word tokens) among the first ``RATE_TEXTS`` texts, or
    None when those odd texts hold fewer than ``MIN_HELD_OUT_TOKENS`` tokens (module
    docstring)."""
    return word_statistics(texts, lowercase=lowercase)[0]


def word_statistics(texts: list[str], *, lowercase: bool = True
                    ) -> tuple[float | None, float | None]:
    """(the unseen-word rate, the median number of word tokens a text) of the first
    ``RATE_TEXTS`` texts; both None when the odd-numbered texts hold fewer than
    ``MIN_HELD_OUT_TOKENS`` tokens (module docstring)."""
    texts = texts[:RATE_TEXTS]
    analyze = TfidfVectorizer(lowercase=lowercase).build_analyzer()
    lengths = np.zeros(len(texts), dtype=np.int64)
    seen: set[str] = set()
    for i in range(0, len(texts), 2):
        words = analyze(texts[i])
        lengths[i] = len(words)
        seen.update(words)
    n = unseen = 0
    for i in range(1, len(texts), 2):
        words = analyze(texts[i])
        lengths[i] = len(words)
        n += len(words)
        unseen += sum(w not in seen for w in words)
    if n < MIN_HELD_OUT_TOKENS:
        return None, None
    return unseen / n, float(np.median(lengths))
