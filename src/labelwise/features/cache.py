"""On-disk cache of text embeddings, keyed by model and text hash; numpy shards, no pickle.

Layout under the cache home (``$LABELWISE_CACHE_HOME``, else ``~/.cache/labelwise``)::

    embeddings/<model_key>/
        <shard>.keys.npy   uint8 (n, 32): SHA-256 of each text's UTF-8 bytes
        <shard>.vecs.npy   float32 (n, dim): the model's vectors, row i for key i

``model_key`` is a SHA-256 (hex, 32 chars kept) of whatever identifies the model's outputs
(the caller builds it: model files, sequence length). A shard is written vectors first, then
keys, each atomically; a shard counts only once its keys file exists, so a crash leaves no
half-shard. Shards are only ever added (never rewritten), so several processes may share a
cache; the same text written twice by two processes is harmless (the first one read wins).
Keys and vectors are read with ``allow_pickle=False``; a shard whose files disagree in
length or dimension is refused with a :class:`~labelwise.errors.DataFormatError`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import DataFormatError

__all__ = ["EmbeddingCache", "default_cache_home", "text_keys"]


def default_cache_home() -> Path:
    """``$LABELWISE_CACHE_HOME`` or ``~/.cache/labelwise``."""
    env = os.environ.get("LABELWISE_CACHE_HOME")
    return Path(env) if env else Path.home() / ".cache" / "labelwise"


def text_keys(texts: list[str]) -> np.ndarray:
    """uint8 (n, 32): the SHA-256 digest of each text's UTF-8 bytes."""
    out = np.empty((len(texts), 32), dtype=np.uint8)
    for i, t in enumerate(texts):
        out[i] = np.frombuffer(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest(),
                               dtype=np.uint8)
    return out


class EmbeddingCache:
    """The shards of one model under ``root/embeddings/<model_key>``.

    ``get(keys)`` returns the vectors found and a mask of hits; ``put(keys, vecs)`` adds one
    shard with the keys not already present.
    """

    def __init__(self, model_key: str, *, root: str | os.PathLike[str] | None = None) -> None:
        if not model_key or not all(c in "0123456789abcdef" for c in model_key):
            raise ValueError(f"model_key must be a hex digest, got {model_key!r}")
        base = Path(root) if root is not None else default_cache_home()
        self.dir = base / "embeddings" / model_key
        self._index: dict[bytes, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        self._seen: set[str] = set()
        self._lock = threading.RLock()  # one instance may serve several threads
        self.dim: int | None = None

    def _refresh(self) -> None:
        """Load shards written since the last look (by this or another process)."""
        if not self.dir.is_dir():
            return
        for kpath in sorted(self.dir.glob("*.keys.npy")):
            shard = kpath.name[: -len(".keys.npy")]
            if shard in self._seen or shard.startswith("."):
                continue
            vpath = self.dir / f"{shard}.vecs.npy"
            try:
                keys = np.load(kpath, allow_pickle=False)
                vecs = np.load(vpath, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise DataFormatError(f"unreadable cache shard: {e}", path=str(kpath)) from None
            if (keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != 32
                    or vecs.dtype != np.float32 or vecs.ndim != 2
                    or vecs.shape[0] != keys.shape[0]):
                raise DataFormatError(
                    f"cache shard is inconsistent (keys {keys.dtype} {keys.shape}, vectors "
                    f"{vecs.dtype} {vecs.shape}); delete {self.dir} to rebuild it",
                    path=str(kpath))
            if self.dim is None:
                self.dim = int(vecs.shape[1])
            elif vecs.shape[1] != self.dim:
                raise DataFormatError(
                    f"cache shard has dimension {vecs.shape[1]}, others have {self.dim}",
                    path=str(vpath))
            s = len(self._shards)
            self._shards.append(vecs)
            for row, key in enumerate(keys):
                self._index.setdefault(key.tobytes(), (s, row))
            self._seen.add(shard)

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._index)

    def get(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vectors float32 (n, dim) with zero rows for misses, hit mask bool (n,))."""
        with self._lock:
            return self._get(keys)

    def _get(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._refresh()
        n = keys.shape[0]
        hit = np.zeros(n, dtype=bool)
        if self.dim is None:
            return np.zeros((n, 0), dtype=np.float32), hit
        out = np.zeros((n, self.dim), dtype=np.float32)
        for i in range(n):
            loc = self._index.get(keys[i].tobytes())
            if loc is not None:
                out[i] = self._shards[loc[0]][loc[1]]
                hit[i] = True
        return out, hit

    def put(self, keys: np.ndarray, vecs: np.ndarray) -> int:
        """Add the rows whose keys are new as one shard; returns how many were added."""
        with self._lock:
            return self._put(keys, vecs)

    def _put(self, keys: np.ndarray, vecs: np.ndarray) -> int:
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != keys.shape[0]:
            raise ValueError(f"keys {keys.shape} and vectors {vecs.shape} do not match")
        self._refresh()
        if self.dim is not None and vecs.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vecs.shape[1]}, cache holds {self.dim}")
        new, seen = [], set()
        for i in range(keys.shape[0]):
            b = keys[i].tobytes()
            if b not in self._index and b not in seen:
                seen.add(b)
                new.append(i)
        if not new:
            return 0
        self.dir.mkdir(parents=True, exist_ok=True)
        shard = uuid.uuid4().hex
        rows = np.asarray(new, dtype=np.int64)
        with atomic_write(self.dir / f"{shard}.vecs.npy", "wb") as f:
            np.save(f, vecs[rows], allow_pickle=False)
        with atomic_write(self.dir / f"{shard}.keys.npy", "wb") as f:
            np.save(f, np.ascontiguousarray(keys[rows], dtype=np.uint8), allow_pickle=False)
        self._refresh()
        return len(new)
