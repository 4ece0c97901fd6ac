"""The models a server holds: one :class:`ModelEntry` per name, swapped whole on reload.

An entry is immutable once built: the loaded pipeline (memory-mapped, so that the workers of
one server share one copy of the arrays through the page cache), its version (the sha256 of
its ``pipeline.json`` or ``manifest.json``), the facts ``GET /v1/models`` shows and its
micro-batcher. :meth:`Registry.reload` builds a new entry beside the old one (load, check,
warm) and swaps the dict slot in one assignment: a request that already holds the old entry
finishes on it, the next one gets the new entry; a version that fails to load leaves the old
entry in place and raises with the reason.

Several workers (``labelwise serve --workers N``) each hold a registry. A reload or learn
answered by one worker writes the new version to ``<state_dir>/<name>.version``; every
worker looks at that file's modification time before it answers a request for the model
(one ``stat``) and, when it changed, loads the version on disk too (:meth:`Registry.sync`),
so all workers serve the new version from their next request on.
"""

from __future__ import annotations

import datetime
import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelwise.errors import LabelwiseError

__all__ = ["ModelEntry", "Registry", "model_version", "manifest_path", "is_model_dir"]


def manifest_path(path: Path) -> Path:
    """The file whose sha256 is the version: pipeline.json, else a model's manifest.json."""
    from labelwise.models.persist import MANIFEST
    from labelwise.pipeline_store import PIPELINE_FILE

    p = path / PIPELINE_FILE
    return p if p.is_file() else path / MANIFEST


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and manifest_path(path).is_file()


def model_version(path: Path) -> str:
    return hashlib.sha256(manifest_path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class ModelEntry:
    """One loaded version of one model (never changed after it is built)."""

    name: str
    path: Path
    pipe: Any
    version: str
    load_seconds: float
    loaded_at: str
    n_features: int | None
    label_names_lower: tuple[str, ...] = field(repr=False)
    batcher: Any = field(default=None, repr=False, compare=False)
    #: facts computed once on demand (label_info for the labels route)
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def input_kind(self) -> str:
        return "text" if self.pipe.is_text else "features"

    @property
    def fills_missing(self) -> bool:
        """Whether the model fills missing values (its scaler's training rows held some)."""
        scaler = getattr(self.pipe, "scaler_", None)
        return getattr(scaler, "missing_", "error") != "error"

    def info(self) -> dict[str, Any]:
        pipe = self.pipe
        decision = None
        if pipe.decision_ is not None:
            decision = {k: v for k, v in pipe.decision_.explain().items() if k != "labels"}
            decision = _jsonable(decision)
        return {"name": self.name, "version": self.version,
                "family": type(pipe.model).__name__,
                "featurizer": None if pipe.featurizer is None else type(pipe.featurizer).__name__,
                "input": self.input_kind, "n_features": self.n_features,
                "fills_missing": self.fills_missing,
                "n_labels": len(pipe.labels_), "n_open_labels": pipe.n_open_labels,
                "calibrated": pipe.calibrator_ is not None,
                "policy": decision, "tuning": _jsonable(getattr(pipe, "tuning_", None)),
                "loaded_at": self.loaded_at, "load_seconds": round(self.load_seconds, 4)}

    def thresholds(self) -> Any:
        """Per label threshold of the tuned policy (array), one number, or None."""
        pipe = self.pipe
        if pipe.decision_ is None:
            return None
        try:
            policy = pipe._policy()
        except LabelwiseError:
            policy = pipe.decision_
        inner = getattr(policy, "threshold_policy_", policy)
        t = getattr(inner, "thresholds_", None)
        if t is not None:
            return t
        t = getattr(inner, "threshold_", None)
        return None if t is None else float(t)


def _jsonable(obj: Any) -> Any:
    import json
    import math

    import numpy as np

    def fix(o: Any) -> Any:
        if isinstance(o, dict):
            return {str(k): fix(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [fix(v) for v in o]
        if isinstance(o, np.ndarray):
            return fix(o.tolist())
        if isinstance(o, np.generic):
            o = o.item()
        if isinstance(o, float) and not math.isfinite(o):
            return None
        return o

    out = fix(obj)
    json.dumps(out)
    return out


def load_entry(name: str, path: Path, *, warm: bool = True) -> ModelEntry:
    """Load (memory-mapped), check and warm one model directory."""
    from labelwise.pipeline import load_any

    t0 = time.perf_counter()
    version = model_version(path)
    pipe = load_any(path, mmap=True)
    if version != model_version(path):  # rewritten while we read it: read the new one
        version = model_version(path)
        pipe = load_any(path, mmap=True)
    n_features = None if pipe.is_text else int(pipe.model.n_features_in_)
    if warm:
        warm_up(pipe, n_features)
    seconds = time.perf_counter() - t0
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    lower = tuple(n.lower() for n in pipe.labels_.names)
    return ModelEntry(name=name, path=path, pipe=pipe, version=version, load_seconds=seconds,
                      loaded_at=now, n_features=n_features, label_names_lower=lower)


def warm_up(pipe: Any, n_features: int | None) -> None:
    """One prediction on a dummy item, so the first request does not pay for compiling (or
    loading from numba's cache) the kernels."""
    import numpy as np
    import scipy.sparse as sp

    if n_features is None:
        X: Any = ["warm up"]
    else:
        X = sp.csr_matrix((np.ones(1, np.float32), np.zeros(1, np.int64), np.array([0, 1])),
                          shape=(1, n_features))
    pipe.predict_labels(X, k=1)


class Registry:
    """name -> current :class:`ModelEntry`; loads, reloads and reports readiness."""

    def __init__(self, paths: dict[str, Path], *, state_dir: str | None = None) -> None:
        self.paths = dict(paths)
        self.state_dir = None if state_dir is None else Path(state_dir)
        self._seen: dict[str, int] = {}
        self._entries: dict[str, ModelEntry] = {}
        self._failures: dict[str, str] = {}
        self._locks = {name: threading.RLock() for name in self.paths}
        self.on_swap: Any = None  # callback(old_entry | None, new_entry)

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    def get(self, name: str) -> ModelEntry | None:
        return self._entries.get(name)

    def entries(self) -> list[ModelEntry]:
        return [e for e in (self._entries.get(n) for n in self.paths) if e is not None]

    @property
    def ready(self) -> bool:
        return len(self._entries) == len(self.paths)

    def status(self) -> str:
        waiting = [n for n in self.paths if n not in self._entries]
        parts = []
        for n in waiting:
            why = self._failures.get(n)
            parts.append(f"{n}: failed to load: {why}" if why else f"{n}: loading")
        return "; ".join(parts)

    def load_all(self) -> None:
        """Load every model not loaded yet (start-up); failures are kept for /health/ready."""
        from .errors import log, scrub

        for name, path in self.paths.items():
            if name in self._entries:
                continue
            try:
                self._install(load_entry(name, path))
                log.info("model %s loaded (version %s)", name, self._entries[name].version[:12])
            except Exception as e:  # noqa: BLE001 - reported by /health/ready and the log
                self._failures[name] = scrub(str(e)) or type(e).__name__
                log.error("model %s failed to load: %s", name, e)

    def reload(self, name: str) -> tuple[ModelEntry | None, ModelEntry]:
        """Load the version on disk beside the current one and swap; (old, new).

        Raises (LabelwiseError, OSError, ...) when it fails to load: the old entry stays."""
        with self._locks[name]:
            old = self._entries.get(name)
            new = load_entry(name, self.paths[name])
            self._install(new)
            self._announce(new)
            return old, new

    def _version_file(self, name: str) -> Path | None:
        return None if self.state_dir is None else self.state_dir / f"{name}.version"

    def _announce(self, entry: ModelEntry) -> None:
        """Tell the other workers (state_dir) which version this one now serves."""
        f = self._version_file(entry.name)
        if f is None:
            return
        from labelwise.atomic import atomic_write

        with atomic_write(f, "w", encoding="utf-8") as out:
            out.write(entry.version + "\n")
        self._seen[entry.name] = f.stat().st_mtime_ns

    def stale(self, name: str) -> bool:
        """Whether another worker announced a new version since this one last looked."""
        f = self._version_file(name)
        if f is None:
            return False
        try:
            mtime = f.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        return self._seen.get(name) != mtime

    def sync(self, name: str) -> None:
        """Load the version another worker announced (when this worker serves another one);
        a failure keeps the served version (logged)."""
        from .errors import log

        f = self._version_file(name)
        with self._locks[name]:
            try:
                mtime = f.stat().st_mtime_ns
                wanted = f.read_text(encoding="utf-8").strip()
            except OSError:
                return
            if self._seen.get(name) == mtime:
                return
            entry = self._entries.get(name)
            try:
                if entry is None or entry.version != wanted:
                    self._install(load_entry(name, self.paths[name]))
            except Exception as e:  # noqa: BLE001 - the served version stays
                log.error("model %s: the version another worker loaded failed to load "
                          "here: %s", name, e)
            # only now: a request that finds the file seen meets the new entry
            self._seen[name] = mtime

    def _install(self, entry: ModelEntry) -> None:
        old = self._entries.get(entry.name)
        if self.on_swap is not None:
            entry = self.on_swap(old, entry)
        self._entries[entry.name] = entry
        self._failures.pop(entry.name, None)
        if old is not None and old.batcher is not None:
            old.batcher.close()

    def lock(self, name: str) -> threading.RLock:
        return self._locks[name]
