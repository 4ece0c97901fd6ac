"""``Tfidf``: word n-gram (and optional character n-gram) tf-idf features.

Built on scikit-learn's :class:`~sklearn.feature_extraction.text.TfidfVectorizer`. With
``char_ngram_range`` set, a second vectorizer over character n-grams within word boundaries
(``analyzer='char_wb'``) runs beside the word one; its columns follow the word columns.
Each row is L2-normalised once over all its columns (``norm='l2'``), so word and character
blocks share one scale.

``char_ngram_range='auto'`` (the default) decides from the training texts: character n-grams
(3 to 5) are added when the language's word forms are too many for whole words to recur,
measured as the **unseen-word rate**: the share of the word tokens of the odd-numbered texts
that never occur in the even-numbered ones. An inflecting language (Finnish titles: 0.40) is
far above an English corpus of any length (cooking titles 0.055, GoEmotions 0.056, Reuters
0.024, Enron 0.017); the rule adds character n-grams at 0.15 or more, when the odd texts hold
at least 2,000 word tokens (fewer cannot estimate a rate). Chosen on Annif's Finnish
archaeology titles (P@1 37.5 -> 49.9 with a LabelTree) and cooking.stackexchange (no
change: 0.055); the English corpora above confirm that they keep words only. The rate and
the choice are kept (``unseen_word_rate_``, ``char_ngram_range_``).

Saved form (no pickle): the state holds each block's vocabulary as a JSON list of terms in
column order; the arrays ``word_idf`` / ``char_idf`` (float64, one per column) hold the idf
weights. Loading rebuilds a ``TfidfVectorizer`` with that fixed vocabulary and sets its
``idf_``, so the reloaded transform is identical to the saved one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from ..errors import DataFormatError
from .base import Featurizer

__all__ = ["Tfidf", "unseen_word_rate"]

#: character n-gram sizes that ``char_ngram_range='auto'`` adds (module docstring)
AUTO_CHAR_RANGE = (3, 5)
#: the unseen-word rate at and above which 'auto' adds character n-grams
OPEN_VOCABULARY_RATE = 0.15
#: the fewest held-out word tokens from which 'auto' estimates the rate (below: words only)
MIN_HELD_OUT_TOKENS = 2000
#: the rate is measured on the first this many training texts (enough for a stable rate)
RATE_TEXTS = 20000

#: at most this many texts take the direct path of ``Tfidf._transform_few`` (int32 indices:
#: a vocabulary is far below 2**31 terms)
_FEW = 16


def _l2_rows(X: sp.csr_matrix) -> None:
    """Scale each row of X to unit L2 norm in place, as scikit-learn's ``normalize`` does
    (float32 squares summed in float64 from left to right, each value divided in float64)."""
    for i in range(X.shape[0]):
        a, b = X.indptr[i], X.indptr[i + 1]
        row = X.data[a:b]
        total = 0.0
        for sq in (row * row).tolist():
            total += sq
        if total != 0.0:
            row[:] = row.astype(np.float64) / math.sqrt(total)


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
            rate = unseen_word_rate(texts, lowercase=self.lowercase)
            return (AUTO_CHAR_RANGE if rate is not None and rate >= OPEN_VOCABULARY_RATE
                    else None), rate
        return (None if r is None else tuple(r)), None

    def _fit(self, texts: list[str]) -> None:
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
        self._fast = None

    @property
    def n_features_(self) -> int:
        self._check_fitted()
        return sum(len(v.vocabulary_) for v in self.vectorizers_.values())

    def feature_names(self) -> list[str]:
        """Column names: word terms, then character n-grams prefixed by ``char:``."""
        self._check_fitted()
        out: list[str] = []
        for name, v in self.vectorizers_.items():
            terms = v.get_feature_names_out().tolist()
            out.extend(terms if name == "word" else [f"char:{t}" for t in terms])
        return out

    def _transform(self, texts: list[str]) -> sp.csr_matrix:
        if len(texts) <= _FEW:
            return self._transform_few(texts)
        parts = [v.transform(texts) for v in self.vectorizers_.values()]
        X = parts[0] if len(parts) == 1 else sp.hstack(parts, format="csr")
        X = sp.csr_matrix(X, dtype=np.float32)
        if self.norm == "l2":
            X = normalize(X, norm="l2", copy=False)
        X.sort_indices()
        return X

    def _transform_few(self, texts: list[str]) -> sp.csr_matrix:
        """The same matrix as the vectorizers' path (bit for bit: the same float32 operations
        in the same order), without scikit-learn's per-call validation, which costs more than
        the work itself for one or a few texts (a served request). Kept equal by a test."""
        if getattr(self, "_fast", None) is None:
            self._fast = [(v.build_analyzer(), v.vocabulary_, np.asarray(v.idf_))
                          for v in self.vectorizers_.values()]
        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        for text in texts:
            offset = 0
            for analyze, vocab, idf in self._fast:
                counts: dict[int, int] = {}
                for term in analyze(text):
                    j = vocab.get(term)
                    if j is not None:
                        counts[j] = counts.get(j, 0) + 1
                cols = np.array(sorted(counts), dtype=np.int64)
                vals = np.array([counts[j] for j in cols.tolist()], dtype=np.float32)
                if self.sublinear_tf:
                    np.log(vals, vals)
                    vals += 1.0
                vals *= idf[cols]
                indices.append(cols + offset)
                data.append(vals)
                offset += len(vocab)
            indptr.append(indptr[-1] + sum(len(c) for c in indices[-len(self._fast):]))
        X = sp.csr_matrix((np.concatenate(data), np.concatenate(indices).astype(np.int32),
                           np.asarray(indptr, dtype=np.int32)), shape=(len(texts), self.n_features_))
        if self.norm == "l2":
            _l2_rows(X)
        return X

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, state = {}, {}
        for name, v in self.vectorizers_.items():
            state[f"{name}_vocabulary"] = v.get_feature_names_out().tolist()
            arrays[f"{name}_idf"] = np.asarray(v.idf_, dtype=np.float64)
        state["char_ngram_range"] = (None if self.char_ngram_range_ is None
                                     else list(self.char_ngram_range_))
        state["unseen_word_rate"] = self.unseen_word_rate_
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
        vecs = {}
        for name, analyzer, rng in self._blocks(char_range):
            vocab = state[f"{name}_vocabulary"]
            idf = np.asarray(arrays[f"{name}_idf"], dtype=np.float64)
            if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
                raise ValueError(f"{name}_vocabulary must be a list of strings")
            if len(set(vocab)) != len(vocab):
                raise ValueError(f"{name}_vocabulary repeats a term")
            if idf.shape != (len(vocab),):
                raise ValueError(f"{name}_idf has shape {idf.shape}, expected ({len(vocab)},)")
            v = self._vectorizer(analyzer, rng, vocabulary=vocab)
            v.idf_ = idf  # builds the inner TfidfTransformer; vocabulary_ is set from vocabulary
            vecs[name] = v
        self.vectorizers_ = vecs
        self.char_ngram_range_ = char_range
        rate = state.get("unseen_word_rate")
        self.unseen_word_rate_ = None if rate is None else float(rate)
        self._fast = None


def unseen_word_rate(texts: list[str], *, lowercase: bool = True) -> float | None:
    """The share of the word tokens of the odd-numbered texts that never occur in the
    even-numbered ones (scikit-learn's word tokens) among the first ``RATE_TEXTS`` texts, or
    None when those odd texts hold fewer than ``MIN_HELD_OUT_TOKENS`` tokens (module
    docstring)."""
    texts = texts[:RATE_TEXTS]
    analyze = TfidfVectorizer(lowercase=lowercase).build_analyzer()
    seen: set[str] = set()
    for text in texts[0::2]:
        seen.update(analyze(text))
    n = unseen = 0
    for text in texts[1::2]:
        words = analyze(text)
        n += len(words)
        unseen += sum(w not in seen for w in words)
    return unseen / n if n >= MIN_HELD_OUT_TOKENS else None
