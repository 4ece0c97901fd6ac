"""The functions that run on Dask workers. Importable without dask (a worker imports them by
name), and each one calls the very function the local path calls, so a task computes exactly
what a thread would."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..models import _tree_build
from ..models.ovr import train_label_block

__all__ = ["label_block", "split_labels", "cpu_seconds", "tree_nodes", "predict_block",
           "model_digest", "worker_model"]


def label_block(data: tuple, labels: np.ndarray, params: tuple) -> tuple:
    """One block of OneVsRest labels (``train_label_block``), against the scattered data:
    its result and the CPU seconds it took."""
    t0 = time.thread_time()
    out = train_label_block(data, labels, params)
    return out, time.thread_time() - t0


def split_labels(data: tuple, parent: Any, side: int, parts: int, node: int, path: int,
                 iters: int, seed: int) -> tuple:
    """One balanced 2-means split (``_tree_build._two_means``) of the labels ``parent[side]``
    (all labels when ``parent`` is None), meant for ``parts`` groups: ``(left, right, CPU
    seconds)``."""
    Z = data[3]
    t0 = time.thread_time()
    labels = np.arange(Z.shape[0], dtype=np.int64) if parent is None else parent[side]
    (left, _, _), (right, _, _) = _tree_build._two_means(Z, labels, parts, iters, seed, node,
                                                         path)
    return left, right, time.thread_time() - t0


def cpu_seconds(result: tuple) -> float:
    """The CPU seconds a task reported as the last item of its result."""
    return result[-1]


def tree_nodes(data: tuple, spec: Any, tree: int, nodes: list[int], label_nodes: list[int],
               parents: list, sides: list[int], cluster: bool) -> tuple:
    """``_tree_build.train_nodes`` against the scattered ``(Xn, sq_norms, Ycsc, Z)``; node
    ``label_nodes[i]`` holds the labels ``parents[i][sides[i]]`` (all labels when None).
    Returns the leaves' labels, the task results without their weights (intercepts and
    epochs), the weights already laid out node by node for those nodes (``(global node ids,
    _tree_build.layout_piece)``, so the client only concatenates them) and the CPU seconds."""
    Xn, sq, Ycsc, Z = data
    t0 = time.thread_time()
    labels = {int(v): (np.arange(Z.shape[0], dtype=np.int64) if p is None else p[s])
              for v, p, s in zip(label_nodes, parents, sides, strict=True)}
    leaves, results, done = _tree_build.train_nodes(Xn, sq, Ycsc, Z, spec, tree=tree,
                                                    nodes=nodes, labels=labels,
                                                    cluster=cluster)
    shape = spec.shape(Z.shape[0])
    piece = _tree_build.layout_piece(results, shape.node_clf_start, done,
                                     tree * int(shape.node_clf_start[-1]), Xn.shape[1])
    slim = [_tree_build.TaskResult(r.clf_start, np.zeros_like(r.counts),
                                   np.zeros(0, r.feat.dtype), np.zeros(0, r.vals.dtype),
                                   r.bias_w, r.n_iter) for r in results]
    ids = np.asarray(done, np.int64) + tree * shape.n_nodes
    return leaves, slim, (ids, piece), time.thread_time() - t0


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
