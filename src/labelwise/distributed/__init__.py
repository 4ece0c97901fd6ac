"""Training and batch prediction on a Dask cluster (``pip install 'labelwise[dask]'``).

The same computation as one machine, spread over ``dask.distributed`` workers, so a Dask
run gives the *same bits* as a local run:

- ``OneVsRest``: X (row-normalised, CSR) and Y's columns are scattered once to every worker
  (``client.scatter(..., broadcast=True)``); the labels are cut into blocks, one task each,
  each task calling :func:`labelwise.models.ovr.train_label_block`, the function the local
  threads call. A label's solve depends only on its column of Y, the settings and a seed
  derived from ``random_state`` and its id, never on the block it lands in; results are
  assembled in label order.
- ``LabelTree``: label representations, the k-means tree structure and the node tasks are
  built on the client (the top of the tree); the node tasks are grouped by subtree (each
  child of a root with everything below it; each root node alone), one Dask task per group,
  against the scattered X; the results are assembled into the ordinary model.
- Prediction (:func:`predict_to_parquet`): each worker loads the model directory once,
  memory-mapped, by path (the directory must be readable at the same path on every worker),
  kept in a per-process cache keyed by the manifest's sha256; tasks carry only row blocks.

Faults: a worker lost mid-fit has its tasks rerun elsewhere by Dask (X lives on every
worker); the result is the same. A lost or unreachable scheduler raises
:class:`ClusterError`; nothing is saved, since saving happens after the fit returns.

Entry points: ``fit(model, X, Y, client=client)``, the ``training_on(model, client)``
context (any ``model.fit`` inside it, e.g. a Pipeline's, runs on the cluster), and
``connect("local:N" | "tcp://host:port")``, which the CLI's ``--dask`` uses.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ClusterError, LabelwiseError, MissingDependencyError
from . import _tasks

__all__ = ["ClusterError", "DaskRunner", "connect", "fit", "training_on",
           "predict_to_parquet", "PREDICTIONS_MARKER", "import_distributed"]

#: the file that marks a folder of Parquet predictions written by labelwise
PREDICTIONS_MARKER = "_labelwise_predictions.json"


def import_distributed():
    """``dask.distributed``, or MissingDependencyError with the install hint."""
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError("dask.distributed", "dask",
                                     "running on a Dask cluster") from None
    return distributed


@contextlib.contextmanager
def cluster_errors(what: str) -> Iterator[None]:
    """Translate the ways a cluster fails into one ClusterError naming ``what``."""
    import asyncio

    d = import_distributed()
    try:
        yield
    except d.KilledWorker as e:
        raise ClusterError(f"{what}: a task kept killing Dask workers ({e})") from None
    except (OSError, TimeoutError, asyncio.CancelledError, d.CancelledError) as e:
        if isinstance(e, LabelwiseError):
            raise
        raise ClusterError(f"{what}: lost the Dask scheduler or its workers "
                           f"({type(e).__name__}: {e}); nothing was saved") from None


@contextlib.contextmanager
def connect(spec: str, *, timeout: float | str | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``"local:N"`` (a LocalCluster of N single-threaded worker
    processes, closed on exit) or a scheduler address (``"tcp://host:8786"``). ``timeout``:
    how long to try reaching the scheduler (None: Dask's ``distributed.comm.timeouts.connect``,
    e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s``)."""
    d = import_distributed()
    if spec.startswith("local:"):
        n = spec[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise ClusterError(f"--dask {spec}: expected local:N with N >= 1 workers")
        with cluster_errors(f"--dask {spec}"):
            cluster = d.LocalCluster(n_workers=int(n), threads_per_worker=1, processes=True,
                                     dashboard_address=None)
            client = d.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    if "://" not in spec:
        raise ClusterError(f"--dask {spec}: expected local:N or a scheduler address such as "
                           "tcp://host:8786")
    try:
        client = d.Client(spec, **({} if timeout is None else {"timeout": timeout}))
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"--dask {spec}: cannot reach the Dask scheduler "
                           f"({type(e).__name__}: {e})") from None
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


def _n_workers(client: Any) -> int:
    n = len(client.scheduler_info().get("workers", {}))
    if n == 0:
        client.wait_for_workers(1, timeout=60)
        n = len(client.scheduler_info().get("workers", {}))
    return max(1, n)


def subtree_groups(node_clf_start: np.ndarray, clf_child: np.ndarray,
                   roots: np.ndarray) -> np.ndarray:
    """Per node, the id of the node that heads its task group: a root heads itself alone, a
    child of a root heads the whole subtree below it. Children have higher ids than their
    parent (the layout's rule), so one pass in id order suffices."""
    n_nodes = node_clf_start.shape[0] - 1
    head = np.full(n_nodes, -1, np.int64)
    is_root = np.zeros(n_nodes, bool)
    is_root[roots] = True
    head[roots] = roots
    for v in range(n_nodes):
        kids = clf_child[node_clf_start[v]:node_clf_start[v + 1]]
        for c in kids[kids >= 0]:
            head[c] = c if is_root[v] else head[v]
    return head


class DaskRunner:
    """Runs a model's training tasks on a Dask client (see the module docstring). Models find
    it as ``model._task_runner`` (set by :func:`training_on`)."""

    def __init__(self, client: Any, *, workers: list[str] | None = None,
                 blocks_per_worker: int = 4, _after_submit: Any = None) -> None:
        self.client = client
        self.workers = None if workers is None else list(workers)
        self.blocks_per_worker = blocks_per_worker
        self._after_submit = _after_submit  # a test seam: called with the futures

    def _gather(self, futures: list, what: str) -> list:
        if self._after_submit is not None:
            self._after_submit(futures)
        with cluster_errors(what):
            return self.client.gather(futures)

    def _scatter(self, data: Any, what: str) -> Any:
        with cluster_errors(what):
            [fut] = self.client.scatter([data], broadcast=True, hash=False,
                                        workers=self.workers)
        return fut

    def _submit(self, fn: Any, *args: Any, key: str) -> Any:
        return self.client.submit(fn, *args, key=key, workers=self.workers,
                                  allow_other_workers=False)

    def _n_workers(self) -> int:
        return len(self.workers) if self.workers else _n_workers(self.client)

    def map_label_blocks(self, data: tuple, n_labels: int, params: tuple) -> list:
        """``train_label_block`` over all labels, one task per block, in label order."""
        what = "training OneVsRest on Dask"
        data_f = self._scatter(data, what)
        blocks = max(1, min(n_labels, self.blocks_per_worker * self._n_workers()))
        size = -(-n_labels // blocks) if n_labels else 1
        tag = uuid.uuid4().hex[:12]
        futures = [self._submit(_tasks.label_block, data_f,
                                np.arange(a, min(a + size, n_labels), dtype=np.int64),
                                params, key=f"labelwise-ovr-{tag}-{a}")
                   for a in range(0, n_labels, size)]
        return self._gather(futures, what)

    def map_tree_tasks(self, Xn: Any, sq: np.ndarray, tasks: list, Cs: list[float],
                       kw: dict, node_clf_start: np.ndarray, clf_child: np.ndarray,
                       roots: np.ndarray) -> list:
        """``_tree_build.run_task`` for every node task, one Dask task per subtree."""
        what = "training LabelTree on Dask"
        head = subtree_groups(node_clf_start, clf_child, roots)
        groups: dict[int, list[int]] = {}
        for i, t in enumerate(tasks):
            groups.setdefault(int(head[int(roots[t.tree]) + t.node]), []).append(i)
        data_f = self._scatter((Xn, sq), what)
        tag = uuid.uuid4().hex[:12]
        futures = [self._submit(_tasks.tree_group, data_f, [tasks[i] for i in members],
                                [Cs[i] for i in members], kw, key=f"labelwise-tree-{tag}-{g}")
                   for g, members in groups.items()]
        return [r for group in self._gather(futures, what) for r in group]


@contextlib.contextmanager
def training_on(model: Any, client: Any, **runner_kw: Any) -> Iterator[Any]:
    """Inside this context, ``model.fit`` (a OneVsRest or LabelTree) trains on ``client``."""
    from ..models.ovr import OneVsRest
    from ..models.tree import LabelTree

    if not isinstance(model, OneVsRest | LabelTree):
        raise ClusterError(f"{type(model).__name__} does not train on Dask (OneVsRest and "
                           "LabelTree do)")
    model._task_runner = DaskRunner(client, **runner_kw)
    try:
        yield model
    finally:
        del model._task_runner


def fit(model: Any, X: Any, Y: Any = None, *, client: Any, **fit_kw: Any) -> Any:
    """``model.fit(X, Y, **fit_kw)`` with its training tasks on the Dask ``client``; the
    fitted model is bit-identical to a local fit with the same parameters."""
    with training_on(model, client):
        return model.fit(X, Y, **fit_kw)


def predict_to_parquet(model_dir: str | Path, X: Any, out_dir: str | Path, *, client: Any,
                       ids: Any = None, k: int = 5, partitions: int | None = None) -> int:
    """Label ``X`` (rows or texts) with the model directory ``model_dir`` on the cluster and
    write ``out_dir/part-NNNNN.parquet`` (columns ``id``, ``labels``, ``probabilities`` (of
    the chosen labels, in their order), ``topk_labels``, ``topk_scores``,
    ``topk_probabilities``) plus :data:`PREDICTIONS_MARKER`; the folder appears whole or not
    at all. Returns the number of items."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..atomic import atomic_directory

    path = str(Path(model_dir).resolve())
    digest = _tasks.model_digest(path)
    n = len(X) if isinstance(X, list) else X.shape[0]
    if partitions is None:
        partitions = 2 * _n_workers(client)
    partitions = max(1, min(int(partitions), n)) if n else 1
    size = -(-n // partitions) if n else 1
    what = "predicting on Dask"
    futures = []
    with cluster_errors(what):
        for a in range(0, max(n, 1), size):
            b = min(n, a + size)
            futures.append(client.submit(
                _tasks.predict_block, path, digest, X[a:b],
                None if ids is None else list(np.asarray(ids[a:b]).tolist()), a, int(k),
                pure=False))
    lists = {name: pa.list_(t) for name, t in (
        ("labels", pa.string()), ("probabilities", pa.float64()), ("topk_labels", pa.string()),
        ("topk_scores", pa.float64()), ("topk_probabilities", pa.float64()))}
    with atomic_directory(out_dir, markers=(PREDICTIONS_MARKER,)) as tmp:
        for i, fut in enumerate(futures):
            with cluster_errors(what):
                cols = fut.result()
            table = pa.table({"id": cols["id"],
                              **{name: pa.array(cols[name], type=t)
                                 for name, t in lists.items()}})
            pq.write_table(table, Path(tmp) / f"part-{i:05d}.parquet")
        (Path(tmp) / PREDICTIONS_MARKER).write_text(json.dumps(
            {"model": path, "model_sha256": digest, "items": n, "k": int(k),
             "partitions": len(futures)}, indent=1) + "\n", encoding="utf-8")
    return n
