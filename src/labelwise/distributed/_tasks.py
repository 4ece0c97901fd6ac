"""The functions that run on Dask workers. Importable without dask (a worker imports them by
name), and each one calls the very function the local path calls, so a task computes exactly
what a thread would."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..models import _tree_build
from ..models.ovr import train_label_block

__all__ = ["label_block", "tree_group", "predict_block", "model_digest", "worker_model"]


def label_block(data: tuple, labels: np.ndarray, params: tuple) -> tuple:
    """One block of OneVsRest labels (``train_label_block``), against the scattered data."""
    return train_label_block(data, labels, params)


def tree_group(data: tuple, tasks: list, Cs: list[float], kw: dict) -> list:
    """The node tasks of one subtree (``_tree_build.run_task`` each), against the scattered
    ``(Xn, sq_norms)``."""
    Xn, sq = data
    return [_tree_build.run_task(Xn, sq, t, C=C, **kw) for t, C in zip(tasks, Cs, strict=True)]


# ------------------------------------------------------------------ prediction
def model_digest(path: str | Path) -> str:
    """sha256 of the model directory's manifest (``pipeline.json`` or ``manifest.json``),
    which itself holds the sha256 of every other file: it names the model's exact content."""
    from ..models.persist import MANIFEST
    from ..pipeline_store import PIPELINE_FILE

    root = Path(path)
    for name in (PIPELINE_FILE, MANIFEST):
        f = root / name
        if f.is_file():
            return hashlib.sha256(f.read_bytes()).hexdigest()
    from ..errors import DataFormatError

    raise DataFormatError("no such pipeline or model directory", path=str(root))


_models: dict[tuple[str, str], Any] = {}
_models_lock = threading.Lock()
#: how many times this process loaded a model (read by the tests)
loads = [0]


def worker_model(path: str, digest: str):
    """The pipeline at ``path``, loaded memory-mapped once per process and kept, keyed by
    ``(path, manifest sha256)``; refuses when the files on this machine are not that model."""
    key = (path, digest)
    with _models_lock:
        pipe = _models.get(key)
        if pipe is None:
            from ..errors import DataFormatError
            from ..pipeline import load_any

            found = model_digest(path)
            if found != digest:
                raise DataFormatError(f"the model on this worker has manifest sha256 {found}, "
                                      f"the client's has {digest}: not the same model",
                                      path=path)
            pipe = load_any(path, mmap=True)
            _models[key] = pipe
            loads[0] += 1
    return pipe


def predict_block(path: str, digest: str, X: Any, ids: list | None, start: int,
                  k: int) -> dict[str, list]:
    """Columns of one Parquet partition: the same items ``labelwise predict`` writes."""
    pipe = worker_model(path, digest)
    items = pipe.predict_labels(X, k=k)
    n = len(items)
    return {
        "id": (np.asarray(ids).tolist() if ids is not None
               else list(range(start, start + n))),
        "labels": [it["labels"] for it in items],
        "probabilities": [[it["probabilities"][lab] for lab in it["labels"]] for it in items],
        "topk_labels": [[c["label"] for c in it["candidates"]] for it in items],
        "topk_scores": [[c["score"] for c in it["candidates"]] for it in items],
        "topk_probabilities": [[c["probability"] for c in it["candidates"]] for it in items],
    }
