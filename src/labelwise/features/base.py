"""The featurizer contract: texts in, a feature matrix out, saved without pickle.

A featurizer is a scikit-learn estimator (``__init__`` only stores keyword arguments, learned
state ends in ``_``, ``get_params``/``clone`` round-trip) with:

``fit(X, y=None)`` / ``transform(X)`` / ``fit_transform(X, y=None)``
    ``X`` is a list of texts (a :class:`~labelwise.Dataset` with text ``X`` is accepted too).
    ``transform`` returns X (n_samples, n_features) as CSR float32 (tf-idf) or a dense
    C-contiguous float32 array (embeddings). Fitting again starts from scratch.
``to_dict()`` / ``arrays()`` / ``Featurizer.from_dict(d, arrays)``
    The saved form: ``to_dict()`` is JSON-able::

        {"format": "labelwise.featurizer", "format_version": 1,
         "class": "Tfidf",            # a name in FEATURIZER_CLASSES, never an import path
         "params": {...},             # get_params(deep=False), JSON values only
         "state": {...}}              # learned JSON-able facts (vocabulary, dimension, ...)

    and ``arrays()`` maps plain identifiers to numeric numpy arrays (idf weights, ...).
    A pipeline stores both inside its own directory; :meth:`Featurizer.save` /
    :func:`load_featurizer` do the same for a featurizer alone (``featurizer.json`` plus one
    ``.npy`` per array, written atomically, read with ``allow_pickle=False``).

Subclasses implement ``_fit(texts)``, ``_transform(texts)``, ``_get_state()`` returning
``(arrays, state)`` and ``_set_state(arrays, state)``, and set ``_persist_name`` (their name
in :data:`FEATURIZER_CLASSES`). Using a featurizer before ``fit`` raises
:class:`~labelwise.errors.NotFittedError`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._estimator import Estimator
from ..atomic import FEATURIZER_MARKERS, atomic_directory
from ..dataset import Dataset
from ..errors import DataFormatError, NotFittedError
from ..store import (
    FolderWriter,
    check_finite,
    check_folder,
    check_listed,
    read_json,
    read_npy,
    reading,
    verify_files,
    writing,
)

__all__ = ["Featurizer", "FEATURIZER_CLASSES", "as_texts", "load_featurizer", "write_featurizer"]

FORMAT = "labelwise.featurizer"
FORMAT_VERSION = 1
_FILE = "featurizer.json"
_ARRAY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")

#: The only classes ``from_dict`` will build: registry name -> (module, attribute).
FEATURIZER_CLASSES: dict[str, tuple[str, str]] = {
    "Tfidf": ("labelwise.features.tfidf", "Tfidf"),
    "SentenceEmbeddings": ("labelwise.features.embeddings", "SentenceEmbeddings"),
    "Fusion": ("labelwise.features.fusion", "Fusion"),
    "Scale": ("labelwise.features.scale", "Scale"),
}


def as_texts(X: Any, *, field: str = "X") -> list[str]:
    """X as a list of str: a list/tuple of texts or a Dataset holding texts; else DataFormatError."""
    if isinstance(X, Dataset):
        X = X.X
    if isinstance(X, str):
        raise DataFormatError("expected a list of texts, got a single str", field=field)
    if isinstance(X, np.ndarray) and X.dtype.kind in "US":
        X = X.tolist()
    if not isinstance(X, list | tuple):
        raise DataFormatError(f"expected a list of texts, got {type(X).__name__}", field=field)
    for i, x in enumerate(X):
        if not isinstance(x, str):
            raise DataFormatError(f"expected a text, got {type(x).__name__}", field=f"{field}[{i}]")
    return list(X)


class Featurizer(Estimator):
    """Base class of labelwise featurizers; see the module docstring for the contract."""

    _persist_name: ClassVar[str] = ""

    def fit(self, X: Any, y: Any = None):
        texts = as_texts(X)
        if not texts:
            raise DataFormatError("no texts to fit on", field="X")
        self._clear_fitted()
        try:
            self._fit(texts)
        except BaseException:
            self._clear_fitted()
            raise
        self.fitted_ = True
        return self

    def transform(self, X: Any):
        self._check_fitted()
        return self._transform(as_texts(X))

    def fit_transform(self, X: Any, y: Any = None, **kwargs: Any):
        return self.fit(X, y).transform(X, **kwargs)

    def _clear_fitted(self) -> None:
        for name in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, name)

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            name = type(self).__name__
            raise NotFittedError(f"this {name} is not fitted yet: call fit(texts) first")

    # ------------------------------------------------------------------ saved form
    def to_dict(self) -> dict[str, Any]:
        """The JSON-able part of the saved form (see the module docstring)."""
        self._check_fitted()
        name = type(self)._persist_name
        if FEATURIZER_CLASSES.get(name) != (type(self).__module__, type(self).__name__):
            raise TypeError(f"{type(self).__name__} is not registered in FEATURIZER_CLASSES")
        _, state = self._get_state()
        d = {"format": FORMAT, "format_version": FORMAT_VERSION, "class": name,
             "params": self._json_params(), "state": state}
        try:
            return json.loads(json.dumps(d, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise TypeError(f"featurizer params/state must be plain JSON values: {e}") from None

    def _json_params(self) -> dict[str, Any]:
        """The parameters as saved (``get_params(deep=False)`` unless a subclass nests)."""
        return self.get_params(deep=False)

    def arrays(self) -> dict[str, np.ndarray]:
        """The numeric arrays of the saved form, by plain identifier."""
        self._check_fitted()
        arrays, _ = self._get_state()
        for key, a in arrays.items():
            if not _ARRAY_NAME.match(key):
                raise ValueError(f"array name {key!r} is not a plain identifier")
            if np.asarray(a).dtype.hasobject:
                raise TypeError(f"array {key!r} holds Python objects")
        return arrays

    @staticmethod
    def from_dict(d: Any, arrays: dict[str, np.ndarray] | None = None,
                  *, where: str = "featurizer") -> Featurizer:
        """Rebuild a featurizer from ``to_dict()`` and ``arrays()`` output (no code is run)."""
        if not isinstance(d, dict):
            raise DataFormatError("expected a JSON object", path=where)
        if d.get("format") != FORMAT:
            raise DataFormatError(f"expected {FORMAT!r}, got {d.get('format')!r}",
                                  path=where, field="format")
        if d.get("format_version") != FORMAT_VERSION:
            raise DataFormatError(
                f"format version {d.get('format_version')!r} is not supported "
                f"(this labelwise reads {FORMAT_VERSION})", path=where, field="format_version")
        name = d.get("class")
        if name not in FEATURIZER_CLASSES:
            raise DataFormatError(
                f"unknown featurizer class {name!r}; known: {', '.join(sorted(FEATURIZER_CLASSES))}",
                path=where, field="class")
        params, state = d.get("params"), d.get("state")
        if not isinstance(params, dict) or not isinstance(state, dict):
            raise DataFormatError("params and state must be JSON objects", path=where)
        module, attr = FEATURIZER_CLASSES[name]
        cls = getattr(importlib.import_module(module), attr)
        unknown = sorted(set(params) - set(cls._get_param_names()))
        if unknown:
            raise DataFormatError(f"unknown parameters for {attr}: {', '.join(unknown)}",
                                  path=where, field="params")
        try:
            obj = cls(**cls._params_from_json(params))
        except DataFormatError as e:
            raise DataFormatError(e.reason, path=where, field=e.field) from None
        try:
            obj._set_state(dict(arrays or {}), state)
        except (KeyError, ValueError, TypeError) as e:
            raise DataFormatError(f"bad {attr} state: {e}", path=where, field="state") from None
        obj.fitted_ = True
        return obj

    @classmethod
    def _params_from_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Undo JSON's tuple -> list change where a parameter needs a tuple."""
        return dict(params)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``featurizer.json`` plus one ``.npy`` per array to the directory ``path``
        (atomically; the JSON lists every file's sha256, checked by :func:`load_featurizer`)."""
        self.to_dict()  # raises before any disk work
        with atomic_directory(path, markers=FEATURIZER_MARKERS) as tmp:
            write_featurizer(self, FolderWriter(tmp))

    # ------------------------------------------------------------------ subclass hooks
    def _fit(self, texts: list[str]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _transform(self, texts: list[str]):  # pragma: no cover
        raise NotImplementedError

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def _set_state(self, arrays: dict[str, np.ndarray],
                   state: dict[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError


def write_featurizer(feat: Featurizer, out: FolderWriter) -> None:
    """``feat``'s saved form into ``out``'s folder (labelwise.store): one ``.npy`` per array
    and ``featurizer.json`` = ``to_dict()`` + ``arrays`` (name -> file, dtype, shape) +
    ``files`` (name -> sha256). An encoder folder of the user's own is copied inside."""
    with writing(out):
        d = feat.to_dict()
    entries = {key: out.array(f"{key}.npy", a, key=key) for key, a in feat.arrays().items()}
    files = dict(out.own_files())
    out.json(_FILE, {**d, "arrays": entries, "files": files}, indent=None)


def load_featurizer(path: str | os.PathLike[str], *, verify: bool = True,
                    mmap: bool = False) -> Featurizer:
    """Read a directory written by :meth:`Featurizer.save` (or by an older labelwise, whose
    ``featurizer.json`` lists array names without checksums). The folder must hold exactly
    the files it lists, none of them a symbolic link. ``mmap``: map the arrays read-only
    (processes serving the same folder share one copy)."""
    root = Path(path)
    fpath = root / _FILE
    if not root.is_dir() or not (fpath.is_file() or fpath.is_symlink()):
        raise DataFormatError("not a labelwise featurizer directory (no featurizer.json)",
                              path=str(root))
    on_disk = check_folder(root)
    d = read_json(fpath)
    names = d.pop("arrays", [])
    files = d.pop("files", None)
    if isinstance(names, list):  # written before labelwise.store: no checksums to verify
        if files is not None:
            raise DataFormatError("expected no files with a list of arrays", path=str(fpath),
                                  field="files")
        for key in names:
            if not isinstance(key, str) or not _ARRAY_NAME.match(key):
                raise DataFormatError(f"bad array name {key!r}", path=str(fpath),
                                      field="arrays")
        entries = {key: {"file": f"{key}.npy"} for key in names}
        listed = [f"{key}.npy" for key in names]
    elif isinstance(names, dict):
        verify_files(root, files, listed_in=_FILE, verify=verify, where=str(fpath))
        entries, listed = names, list(files)
    else:
        raise DataFormatError("expected an object of arrays", path=str(fpath), field="arrays")
    check_listed(root, on_disk, [_FILE, *listed], listed_in=_FILE)
    arrays = {}
    for key, entry in entries.items():
        fname = entry.get("file") if isinstance(entry, dict) else None
        if not _ARRAY_NAME.match(str(key)) or fname not in listed:
            raise DataFormatError(f"bad array entry {key!r}", path=str(fpath), field="arrays")
        a = read_npy(root / fname, mmap=mmap)
        if "dtype" in entry and (a.dtype.str != entry["dtype"]
                                 or list(a.shape) != entry.get("shape")):
            raise DataFormatError(f"array {key!r} is {a.dtype.str} {list(a.shape)}, "
                                  f"{_FILE} says {entry['dtype']} {entry.get('shape')}",
                                  path=str(fpath), field="arrays")
        check_finite(a, name=key, where=str(root / fname))
        arrays[key] = a
    with reading(root, str(fpath)):
        return Featurizer.from_dict(d, arrays, where=str(fpath))
