"""Training and batch prediction on a Dask cluster (``pip install 'labelwise[dask]'``).

The same computation as one machine, spread over ``dask.distributed`` workers, so a Dask
run gives the *same bits* as a local run:

- ``OneVsRest``: X (row-normalised, CSR) and Y's columns are scattered once to every worker
  (``client.scatter(..., broadcast=True)``); the labels are cut into blocks, one task each,
  each task calling :func:`labelwise.models.ovr.train_label_block`, the function the local
  threads call. A label's solve depends only on its column of Y, the settings and a seed
  derived from ``random_state`` and its id, never on the block it lands in; results are
  assembled in label order.
- ``LabelTree``: the client computes the label representations and scatters ``(X, row
  norms, Y, representations)`` once (then drops its own copies); the rest runs in tasks. A tree's shape (every node's
  label count and id) follows from the label count alone (``_tree_build.tree_shape``), so a
  subtree clustered on any worker is exactly that subtree of the whole tree. The top nodes
  (:func:`top_and_heads`) are split by a cascade of 2-means tasks, one per split, and trained
  in a task each; every subtree below them is clustered, trained and laid out node by node in
  one task. The client fetches each task's result as soon as it is done (its worker then
  drops it) and, once all are in, copies the pieces one by one into the final arrays
  (``_tree_build.LayoutMerge``): it holds the model and one piece, never two copies.
- Data never passes through the scheduler: ``scatter(..., direct=True)`` sends it to one
  worker, which copies it to the others, and results come from the workers directly
  (``gather(..., direct=True)``), unless Dask's ``distributed.client.direct-to-workers``
  is set to False (a client that can reach only the scheduler).
- Prediction (:func:`predict_to_parquet`): each worker loads the model directory once,
  memory-mapped, by path (the directory must be readable at the same path on every worker),
  kept in a per-process cache keyed by the manifest's sha256; tasks carry only row blocks.

Faults: a worker lost mid-fit has its tasks rerun elsewhere by Dask (X lives on every
worker); the result is the same. (Partitioned training, whose rows live on one worker each,
reads a lost worker's partitions again elsewhere: :mod:`._pinned`.) A lost or unreachable scheduler raises
:class:`ClusterError`; nothing is saved, since saving happens after the fit returns.

Entry points: ``fit(model, X, Y, client=client)``, the ``training_on(model, client)``
context (any ``model.fit`` inside it, e.g. a Pipeline's, runs on the cluster), and
``connect("local:N" | "tcp://host:port")``, which the CLI's ``--dask`` uses.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ClusterError, LabelwiseError, MissingDependencyError
from . import _tasks

__all__ = ["ClusterError", "DaskRunner", "connect", "fit", "training_on", "expected_speedup",
           "top_and_heads",
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


class DaskRunner:
    """Runs a model's training tasks on a Dask client (see the module docstring). Models find
    it as ``model._task_runner`` (set by :func:`training_on`)."""

    def __init__(self, client: Any, *, workers: list[str] | None = None,
                 blocks_per_worker: int = 4, _after_submit: Any = None) -> None:
        self.client = client
        self.workers = None if workers is None else list(workers)
        self.blocks_per_worker = blocks_per_worker
        self._after_submit = _after_submit  # a test seam: called with the futures
        #: what the cluster did: ``tasks``, ``task_cpu_s`` (CPU seconds inside the tasks)
        self.stats: dict[str, float] = {}
        #: data goes between this client and the workers directly, never through the
        #: scheduler, unless Dask's ``distributed.client.direct-to-workers`` says False (a
        #: client that reaches only the scheduler)
        direct = getattr(client, "direct_to_workers", None)
        self.direct = True if direct is None else bool(direct)

    def _gather(self, futures: list, what: str) -> list:
        if self._after_submit is not None:
            self._after_submit(futures)
        with cluster_errors(what):
            return self.client.gather(futures, direct=self.direct)

    def _each_done(self, futures: list, what: str, take: Any) -> None:
        """``take(i, result of futures[i])`` for every future as it finishes, each result
        fetched from its worker directly; ``futures[i]`` is set to None once fetched, so
        that (holding no other reference) the worker drops the result."""
        if self._after_submit is not None:
            self._after_submit(futures)
        d = import_distributed()
        where = {f.key: i for i, f in enumerate(futures)}
        with cluster_errors(what):
            for fut in d.as_completed(futures):
                i = where[fut.key]
                futures[i] = None
                result = self.client.gather(fut, direct=self.direct)
                del fut
                take(i, result)

    def _scatter(self, data: Any, what: str) -> Any:
        """``data`` on every worker: sent to one worker, copied from worker to worker."""
        with cluster_errors(what):
            [fut] = self.client.scatter([data], broadcast=True, hash=False,
                                        workers=self.workers, direct=self.direct)
        return fut

    def _submit(self, fn: Any, *args: Any, key: str) -> Any:
        return self.client.submit(fn, *args, key=key, workers=self.workers,
                                  allow_other_workers=False)

    def _n_workers(self) -> int:
        return len(self.workers) if self.workers else _n_workers(self.client)

    def map_label_blocks(self, data: tuple, n_labels: int, params: tuple) -> list:
        """``train_label_block`` over all labels, one task per block, in label order (one
        task for a Newton block, ``params``' width ``NEWTON``: dense features, solved as the
        local path solves them)."""
        from ..models.ovr import NEWTON

        what = "training OneVsRest on Dask"
        data_f = self._scatter(data, what)
        blocks = max(1, min(n_labels, self.blocks_per_worker * self._n_workers()))
        if params[-1] == NEWTON:
            blocks = 1
        size = -(-n_labels // blocks) if n_labels else 1
        tag = uuid.uuid4().hex[:12]
        futures = [self._submit(_tasks.label_block, data_f,
                                np.arange(a, min(a + size, n_labels), dtype=np.int64),
                                params, key=f"labelwise-ovr-{tag}-{a}")
                   for a in range(0, n_labels, size)]
        done = self._gather(futures, what)
        self._count(len(done), sum(cpu for _, cpu in done))
        return [out for out, _ in done]

    def train_trees(self, data: list, spec: Any) -> tuple:
        """Build and train ``spec.n_trees`` label trees on the cluster (module docstring)
        from ``data = [Xn, row sq norms, Ycsc, Z]``, a list this method empties once the data
        is on the workers (so that the caller, holding no other reference, frees it):
        ``(node_clf_start, clf_child, tree_roots, task results, weight layout)`` of all
        trees: the results (intercepts, epochs) as ``LabelTree``'s local path returns them
        but without their weights, which come laid out node by node (the tasks lay out their
        own nodes; :func:`~labelwise.models._tree_build.merge_layouts` joins them)."""
        from ..models import _tree_build

        what = "training LabelTree on Dask"
        L = data[3].shape[0]
        shape = spec.shape(L)
        n_nodes, n_clf = shape.n_nodes, int(shape.node_clf_start[-1])
        top, heads = top_and_heads(shape, self.blocks_per_worker * self._n_workers())
        data_f = self._scatter(tuple(data), what)
        data.clear()
        tag = uuid.uuid4().hex[:12]
        train, splits, tree_of = [], [], []
        for t in range(spec.n_trees):
            seed_t = spec.seed + 7919 * t
            ref: dict[int, tuple] = {0: (None, 0)}  # node -> (split future, side): its labels

            for v in top:  # parents first: a node's labels come from its parent's splits
                kids = shape.children(v).tolist()
                groups = self._cascade(splits, data_f, f"{tag}-{t}-{v}", v, *ref[v],
                                       shape.parts(v), 1, spec.cluster_iters, seed_t)
                for c, r in zip(kids, groups, strict=True):
                    ref[c] = r
                members = [v, *kids]
                train.append(self._submit(
                    _tasks.tree_nodes, data_f, spec, t, [v], members,
                    [ref[u][0] for u in members], [ref[u][1] for u in members], False,
                    key=f"labelwise-tree-{tag}-{t}-{v}"))
                tree_of.append(t)
            for h in heads:
                train.append(self._submit(
                    _tasks.tree_nodes, data_f, spec, t, [h], [h], [ref[h][0]], [ref[h][1]],
                    True, key=f"labelwise-tree-{tag}-{t}-{h}"))
                tree_of.append(t)
        split_cpu = [self._submit(_tasks.cpu_seconds, f, key=f"{f.key}-cpu") for f in splits]
        n_splits = len(splits)
        del splits, ref
        # each task's result is fetched as soon as it is done and released on its worker
        # (which then holds only the data and the task it runs); once all are here, the
        # data is released too, and the weights are copied into the final arrays piece by
        # piece, each piece dropped once copied: the client holds the model and one piece
        done: list = [None] * len(train)

        def take(i: int, result: tuple) -> None:
            done[i] = result

        self._each_done(train, what, take)
        with cluster_errors(what):
            cpu = self.client.gather(split_cpu, direct=self.direct)
        del split_cpu, data_f
        self._count(len(train) + n_splits, sum(r[-1] for r in done) + sum(cpu))
        leaves: list[dict] = [{} for _ in range(spec.n_trees)]
        results = []
        for t, (lv, res, _, _) in zip(tree_of, done, strict=True):
            leaves[t].update(lv)
            results += res
        merge = _tree_build.LayoutMerge(spec.n_trees * n_nodes, [
            (ids, _tree_build.layout_sizes(piece)) for _, _, (ids, piece), _ in done])
        for i in range(len(done)):
            ids, piece = done[i][2]
            done[i] = None
            merge.put(ids, piece)
            del piece
        layout = merge.result()
        starts, children = [np.zeros(1, np.int64)], []
        for t in range(spec.n_trees):
            kids = _tree_build.node_children(shape, leaves[t])
            kids[kids >= 0] += t * n_nodes
            starts.append(shape.node_clf_start[1:] + t * n_clf)
            children.append(kids)
        return (np.concatenate(starts), np.concatenate(children),
                np.arange(spec.n_trees, dtype=np.int64) * n_nodes, results, layout)

    def _cascade(self, splits: list, data_f: Any, key: str, v: int, src: Any, side: int,
                 parts: int, path: int, iters: int, seed: int) -> list[tuple]:
        """Submit the 2-means splits that cut node ``v``'s labels (``src[side]``) into
        ``parts`` groups, each split a task that depends on the one before (``splits``
        collects them): the groups as ``(split future, side)``, in depth-first order."""
        if parts == 1:
            return [(src, side)]
        f = self._submit(_tasks.split_labels, data_f, src, side, parts, v, path, iters, seed,
                         key=f"labelwise-split-{key}-{path}")
        splits.append(f)
        p0 = (parts + 1) // 2
        return (self._cascade(splits, data_f, key, v, f, 0, p0, 2 * path, iters, seed)
                + self._cascade(splits, data_f, key, v, f, 1, parts - p0, 2 * path + 1, iters,
                                seed))

    def _count(self, tasks: int, cpu: float) -> None:
        self.stats["tasks"] = self.stats.get("tasks", 0) + tasks
        self.stats["task_cpu_s"] = self.stats.get("task_cpu_s", 0.0) + cpu


def top_and_heads(shape: Any, target: int) -> tuple[list[int], list[int]]:
    """How a tree is cut into Dask tasks: ``(top, heads)``. The *heads* are the nodes at the
    first depth ``d >= 1`` where there are at least ``target`` of them (or the deepest), plus
    the leaves above it; each head's subtree is clustered and trained in one task. The *top*
    nodes are the inner nodes above ``d``: each is split by a cascade of 2-means tasks and
    trained in a task of its own."""
    depth, inner = shape.depth, shape.first_child >= 0
    d = 1
    while d < int(depth.max()) and int(np.count_nonzero(depth == d)
                                       + np.count_nonzero(~inner & (depth < d))) < target:
        d += 1
    top = np.flatnonzero(inner & (depth < d)).tolist()
    heads = np.flatnonzero((depth == d) | (~inner & (depth < d))).tolist()
    return top, heads


@contextlib.contextmanager
def training_on(model: Any, client: Any, *, stats: dict | None = None,
                **runner_kw: Any) -> Iterator[Any]:
    """Inside this context, ``model.fit`` (a OneVsRest or LabelTree) trains on ``client``.

    ``stats``: a dict that is filled on exit with how the work was shared, in CPU seconds
    (which, unlike wall times, do not depend on how loaded the machine is): ``client_cpu_s``
    (this process, all its threads: preparing and scattering the data, the top of the work,
    assembling the model, and the scheduler itself when it runs in this process, as a
    LocalCluster's does), ``worker_cpu_s`` (the worker processes, all their threads),
    ``task_cpu_s`` (inside the Dask tasks, part of the workers'), ``tasks``, ``wall_s``, and
    ``serial_share`` = client / (client + workers). By Amdahl's law ``W`` workers are then
    at most ``1 / (s + (1 - s) / W)`` times as fast as one (:func:`expected_speedup`)."""
    from ..models.ovr import OneVsRest
    from ..models.tree import LabelTree

    if not isinstance(model, OneVsRest | LabelTree):
        raise ClusterError(f"{type(model).__name__} does not train on Dask (OneVsRest and "
                           "LabelTree do)")
    runner = DaskRunner(client, **runner_kw)
    model._task_runner = runner
    if stats is not None:
        before = _worker_cpu(client)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield model
    finally:
        del model._task_runner
    if stats is not None:
        client_cpu = time.process_time() - cpu
        after = _worker_cpu(client)
        worker_cpu = sum(after[w] - before[w] for w in after if w in before)
        stats.update({"tasks": 0, "task_cpu_s": 0.0}, **runner.stats, client_cpu_s=client_cpu,
                     worker_cpu_s=worker_cpu, wall_s=time.perf_counter() - wall,
                     serial_share=client_cpu / max(client_cpu + worker_cpu, 1e-12))


def _worker_cpu(client: Any) -> dict[str, float]:
    """CPU seconds each worker process has used so far (all its threads)."""
    with cluster_errors("reading the workers' CPU time"):
        return client.run(time.process_time)


def expected_speedup(serial_share: float, workers: int) -> float:
    """Amdahl's bound on the speed-up of ``workers`` workers over one, for a run whose serial
    (client) share of the CPU seconds is ``serial_share``."""
    return 1.0 / (serial_share + (1.0 - serial_share) / workers)


def fit(model: Any, X: Any, Y: Any = None, *, client: Any, stats: dict | None = None,
        **fit_kw: Any) -> Any:
    """``model.fit(X, Y, **fit_kw)`` with its training tasks on the Dask ``client``; the
    fitted model is bit-identical to a local fit with the same parameters. ``stats``: see
    :func:`training_on`."""
    with training_on(model, client, stats=stats):
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
