"""Featurizers: texts in, feature matrices out (:mod:`labelwise.features.base` is the contract).

- :class:`Tfidf`: word (and optional character) n-gram tf-idf on scikit-learn, CSR float32.
- :class:`SentenceEmbeddings`: sentence-transformers vectors (extra ``[text]``), dense
  float32 of unit length, with an on-disk cache (:mod:`labelwise.features.cache`).
- :class:`Scale`: per-column scaling of numeric features (standard or max-abs, chosen by the
  data's kind), fitted on the training rows.
- :class:`Fusion`: several featurizers side by side, per-block normalised and weighted,
  optionally with the mean of an item's group (context).

Every featurizer saves as JSON plus numeric arrays (``to_dict``/``arrays``/``from_dict``,
``save``/:func:`load_featurizer`); nothing is pickled.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import FEATURIZER_CLASSES, Featurizer, load_featurizer

if TYPE_CHECKING:
    from .embeddings import SentenceEmbeddings
    from .fusion import Fusion
    from .scale import Scale
    from .tfidf import Tfidf

__all__ = [
    "FEATURIZER_CLASSES",
    "Featurizer",
    "Fusion",
    "Scale",
    "SentenceEmbeddings",
    "Tfidf",
    "load_featurizer",
]

#: featurizers imported on first use: Tfidf and Fusion import scikit-learn (about 1 s of
#: start-up, most of a small fit), which a pipeline that only scales numbers never needs
_LAZY = {"SentenceEmbeddings": ".embeddings", "Fusion": ".fusion", "Scale": ".scale",
         "Tfidf": ".tfidf"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
