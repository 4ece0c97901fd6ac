"""Training on data bigger than one machine: partitions of rows read, featurised and kept on
Dask workers; X is never gathered on one process (``pip install 'labelwise[dask]'``).

Inputs (:func:`list_partitions`): a folder or glob of Parquet files (a text column, or
numeric features turned into CSR on the worker, and a labels column:
:func:`labelwise.io.read_table`'s rules),
or XC / LIBSVM files, each one partition or cut into ``byte_ranges`` ranges of whole lines
(a line belongs to the range it begins in). Partition ``k`` is read by worker ``k mod W``
(workers in address order), as a ``dask.delayed`` task pinned there, and stays there.

Passes (:func:`open_partitions`, then :func:`fit`):

1. *Counts* (workers return counts, never rows). XC / LIBSVM: newlines, ``:`` and ``,`` of
   each range (no parsing). Text Parquet: per term, the number of documents holding it
   (and its total count when ``max_features`` is set), label names in first-seen order and
   the row count. The client adds the counts and fits the tf-idf vocabulary and idf exactly
   as scikit-learn's ``TfidfVectorizer.fit`` does on the concatenated texts (same sorted
   vocabulary, same ``min_df`` / ``max_df`` / ``max_features`` cuts, the same float32 idf).
2. *Memory check*, before any row is built: every worker's memory in use (Dask's process
   metric, after pass 1 warmed the later passes' code) + :data:`WORKER_OVERHEAD` +
   :func:`estimate_peak` of its partitions, against its Dask memory limit (or the given
   one); over it, :class:`ResourceLimitError` naming the estimate and the limit, and
   nothing is loaded or written.
3. *Load*: each worker parses (or reads and transforms with the fitted tf-idf) its
   partitions, l2-normalises the rows when the model does, and keeps them.
4. *Train*: OneVsRest's labels in blocks, LabelTree's nodes in batches, each solved by the
   distributed Newton-CG of :mod:`labelwise.distributed._newton`: per round, workers return
   loss / gradient / Hessian-vector *sums* over their rows (feature-sized), the client adds
   them in partition order and steps. LabelTree's label representations are the sums
   ``Y_k' X_k`` of every partition (label-sized), the tree is clustered on the client, and
   every node's classifiers are trained over the rows below it, wherever they live.

What moves where: to workers, the file names or byte ranges, the fitted featurizer, the
label lists of each problem and the weights ``W`` of every round; to the client, counts,
``Y_k' X_k`` (LabelTree), and per round the loss, gradient and Hessian-vector sums of the
problems (``(features + 1) x classifiers`` each). Never a row of X or Y.

Model: the solver reaches the optimum of the same primal problem as a local fit, but the
local fit is dual coordinate descent stopped at ``tol``, so the weights agree within the
solvers' tolerances, not bit for bit (``n_iter_`` counts Newton iterations here). The
result does not depend on the number of workers: sums go in partition order.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError, LabelwiseError, ResourceLimitError
from . import _newton, _rows, cluster_errors, import_distributed
from ._pinned import Pinned
from .sources import (
    _parquet_bytes,
    _xc_header,
    has_text_column,
    is_partitioned,
    list_partitions,
    tfidf_from_counts,
)

__all__ = ["list_partitions", "open_partitions", "Partitions", "estimate_peak", "fit",
           "tfidf_from_counts", "fit_pipeline", "is_partitioned", "has_text_column",
           "MAX_BLOCK_LABELS", "MAX_BATCH_LABELS", "NEWTON_EPS", "WORKER_OVERHEAD"]

#: labels per OneVsRest block (one problem of the Newton solver)
MAX_BLOCK_LABELS = 64
#: OneVsRest labels solved at once: blocks side by side, so that one Dask round trip per
#: solver step serves them all (the round trips, not the arithmetic, dominated small sets);
#: the memory estimate counts this width, and it is halved (down to one block) until the
#: estimate fits the workers
MAX_BATCH_LABELS = 512
#: a column stops when |gradient| <= NEWTON_EPS * |gradient at w = 0|
NEWTON_EPS = 1e-4
#: added to every worker's estimate: a worker's growth during training beyond the data
#: terms (code paths and buffers first used then, Dask's records of the tasks it ran);
#: measured with benchmarks/dask_partitioned.py on 2 workers: 13-14 MiB on Bibtex
#: (about 300 tasks a worker), about 27 MiB on Delicious (about 1,300 tasks a worker)
WORKER_OVERHEAD = 64 * 2**20


# ------------------------------------------------------------------ memory
def estimate_peak(stats: list[dict[str, int]], *, n_features: int, width: int,
                  threads: int = 1, copies: int = 1) -> int:
    """Estimated peak bytes of one worker holding the partitions ``stats`` (each: ``rows``,
    ``nnz`` feature entries, ``label_nnz`` label entries, ``load`` bytes of its reading).

    Per partition *held* (kept through training): X as CSR (``12 nnz + 8 rows``), its
    normalised values (``4 nnz``), Y by rows and by columns (``16 label_nnz + 16 rows``),
    the targets and curvature kept between solver rounds (``16 rows width``). Per task (``threads`` at
    once): the larger of the reading (``load``: the byte range, or 3x the uncompressed
    Parquet bytes, plus the arrays parsed from it, ``12 nnz + 16 rows + 8 label_nnz``) and a
    solver round: ``copies`` row/feature-restricted copies of the rows (``12 nnz + 8 rows``
    each: 1 for OneVsRest; for LabelTree, whose batch of nodes can hold a row once per node
    it reaches, the mean labels per row, rounded up), the targets, margins and loss weights
    (``32 rows width``), the weights, direction and sums (``24 (n_features + 1) width``).
    ``width``: labels per OneVsRest block, or the classifiers of a LabelTree node batch."""
    held = work = 0
    for s in stats:
        n, z, y = s["rows"], s["nnz"], s["label_nnz"]
        held += 16 * z + 8 * n + 16 * y + 16 * n + 16 * n * width
        rnd = copies * (12 * z + 8 * n) + 32 * n * width + 24 * (n_features + 1) * width
        work = max(work, s["load"] + 12 * z + 16 * n + 8 * y, rnd)
    return int(held + threads * work)


# ------------------------------------------------------------------ the partitions
@dataclass
class Partitions:
    """Partitions of rows placed on Dask workers (see the module docstring)."""

    client: Any
    fmt: str
    specs: list[tuple]
    workers: list[str]  # worker of partition k
    labels: list[str] = field(default_factory=list)
    n_features: int = 0
    stats: list[dict[str, int]] = field(default_factory=list)
    featurizer: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    index_base: int | None = None
    futures: list = field(default_factory=list)  # RowPart futures, once loaded
    estimate: dict[str, int] = field(default_factory=dict)  # peak bytes per worker
    label_counts: Any = None  # positives per label, once trained
    #: a test seam: every task submitted on the rows, as (function name, worker)
    tasks: list | None = None

    @property
    def n_samples(self) -> int:
        return sum(s["rows"] for s in self.stats)

    def __post_init__(self) -> None:
        #: every task on the rows goes through this one object, which can rebuild a lost
        #: worker's partitions on another worker (:mod:`._pinned`); it shares ``workers``
        self.pinned = Pinned(self.client, [], "partitioned training on Dask", self.tasks,
                             workers=self.workers)

    def rounds(self, what: str) -> Pinned:
        """``pinned`` with ``futures`` = the loaded partitions, naming ``what`` in errors."""
        self.pinned.what = what
        self.pinned.futures = self.futures
        return self.pinned

    def _submit(self, fn: Any, args_per_part: list[tuple], what: str) -> list:
        self.pinned.what = what
        return self.pinned.submit(fn, args_per_part)

    def _gather(self, futs: list, what: str) -> list:
        self.pinned.what = what
        return self.pinned.gather(futs)

    def _delayed(self, fn: Any, args_per_part: list[tuple], what: str) -> list:
        """One read per partition (the first ``len(args_per_part)`` partitions), computed on
        its own worker, kept there."""
        return self._submit(fn, args_per_part, what)

    def check_memory(self, *, width: int, memory_limit: float | None = None,
                     copies: int = 1) -> dict[str, int]:
        """Estimated peak bytes per worker: the memory the worker process uses now (its
        Dask-reported process memory: the interpreter, libraries, anything it holds), plus
        :data:`WORKER_OVERHEAD`, plus :func:`estimate_peak` of its partitions. ResourceLimitError when that exceeds
        ``memory_limit`` (bytes) or, when None, the worker's Dask memory limit (no check for
        a worker started without one)."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        out = {}
        for w in sorted(set(self.workers)):
            mine = [s for s, ww in zip(self.stats, self.workers, strict=True) if ww == w]
            me = info.get(w, {})
            threads = int(me.get("nthreads", 1) or 1)
            base = int((me.get("metrics") or {}).get("memory", 0) or 0)
            data = estimate_peak(mine, n_features=self.n_features, width=width,
                                 threads=threads, copies=copies)
            need = out[w] = base + WORKER_OVERHEAD + data
            limit = memory_limit if memory_limit is not None else me.get("memory_limit")
            if limit and need > limit:
                ks = [k for k, ww in enumerate(self.workers) if ww == w]
                raise ResourceLimitError(
                    f"partitioned training needs about {need / 2**20:.1f} MiB on worker {w} "
                    f"({base / 2**20:.1f} MiB in use now + {WORKER_OVERHEAD / 2**20:.0f} MiB "
                    f"allowance (WORKER_OVERHEAD) + {data / 2**20:.1f} MiB for partitions {ks}, "
                    "estimate_peak) but its memory limit is "
                    f"{limit / 2**20:.1f} MiB; add workers or memory, or cut the data into "
                    "more partitions")
        return out

    def load(self, normalize: str | None) -> None:
        """Pass 2: every worker builds its partitions' rows and keeps them."""
        what = "loading partitions on Dask"
        if self.fmt == "parquet":
            # the fitted featurizer (its vocabulary) goes to each worker once
            feat = None if self.featurizer is None else self.pinned.share(
                self.featurizer, always=True)
            futs = self._delayed(_rows.load_table, [
                (s[0], self.options, self.labels, feat, self.n_features)
                for s in self.specs], what)
        else:
            raw = self._delayed(_rows.load_xc, [(s,) for s in self.specs], what)
            found = self._gather(self._submit(_stats_of, [(f,) for f in raw], what), what)
            self._agree_xc(found)
            futs = self._submit(_rows.finish, [(f, self.index_base, self.n_features,
                                                len(self.labels)) for f in raw], what)
            del raw
        self.futures = self._submit(_rows.prepare, [(f, normalize) for f in futs], what)
        del futs
        for s, c in zip(self.stats, self._gather(self._submit(
                _rows.positives, [(f,) for f in self.futures], what), what), strict=True):
            s["rows"], s["nnz"] = c["rows"], c["nnz"]
            s["positives"] = c["positives"]

    def _agree_xc(self, found: list[dict]) -> None:
        """Index base, n_features and n_labels that every range agrees on."""
        under = sum(f["underflows"] for f in found)
        if under:
            warnings.warn(f"{under} nonzero values are too small for float32 and became 0.0",
                          UserWarning, stacklevel=4)
        lo = min((f["min_index"] for f in found if f["min_index"] >= 0), default=-1)
        hi = max(f["max_index"] for f in found)
        top_label = max(f["max_label"] for f in found)
        if self.fmt == "xc":
            nf = self.n_features
            if self.index_base is None:
                if lo == 0 and hi == nf:
                    raise DataFormatError(f"feature indices 0 and {nf} (= n_features) both "
                                          "appear: neither base fits", path=self.specs[0][0])
                self.index_base = 1 if hi == nf else 0
        else:
            if self.index_base is None:
                self.index_base = 0 if lo == 0 else 1
            self.n_features = hi + 1 - self.index_base if hi >= 0 else 0
            if not self.labels:
                self.labels = [str(i) for i in range(top_label + 1)]


def _stats_of(part: Any) -> dict:
    return part.stats


def open_partitions(client: Any, target: Any, *, byte_ranges: int = 1, format: str | None = None,
                    featurizer: Any = None, options: dict[str, Any] | None = None,
                    index_base: int | None = None, workers: list[str] | None = None,
                    _tasks: list | None = None) -> Partitions:
    """Pass 1 (counts) over the partitions of ``target`` (:func:`list_partitions`); for
    texts, ``featurizer`` (an unfitted Tfidf) is fitted from the counts. Nothing is loaded
    yet: :func:`fit` checks the memory estimate, then loads and trains. ``workers``: the
    worker addresses to use (default: all, in address order)."""
    import_distributed()
    fmt, specs = list_partitions(target, byte_ranges=byte_ranges, format=format)
    with cluster_errors("opening partitions on Dask"):
        ws = sorted(client.scheduler_info(n_workers=-1)["workers"])
        if not ws:
            client.wait_for_workers(1, timeout=60)
            ws = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if workers is not None:
        ws = list(workers)
    parts = Partitions(client, fmt, specs, [ws[k % len(ws)] for k in range(len(specs))],
                       options=dict(options or {}), index_base=index_base, tasks=_tasks)
    what = "counting partitions on Dask"
    if fmt == "parquet":
        if featurizer is not None:
            # the character n-gram choice, on the first partition's worker
            first = parts._delayed(_rows.char_choice, [(specs[0][0], parts.options, featurizer)],
                                   what)
            char_range, rate = parts._gather(first, what)[0]
            counts = parts._gather(parts._delayed(_rows.text_counts, [
                (s[0], parts.options, featurizer, char_range) for s in specs], what), what)
        else:
            counts = parts._gather(parts._delayed(_rows.table_shape, [
                (s[0], parts.options) for s in specs], what), what)
            parts.n_features = max(c["n_features"] for c in counts)
        names: dict[str, None] = {}
        for c in counts:
            names.update(dict.fromkeys(c["labels"]))
            for msg in c["warnings"]:
                warnings.warn(msg, UserWarning, stacklevel=2)
        parts.labels = list(names)
        if featurizer is not None:
            tfidf_from_counts(featurizer, sum(c["rows"] for c in counts),
                              [c["blocks"] for c in counts], char_range, rate)
            parts.featurizer = featurizer
            parts.n_features = featurizer.n_features_
            nnz = [sum(sum(b[0].values()) for b in c["blocks"].values()) for c in counts]
        else:
            nnz = [c["nnz"] for c in counts]
        parts.stats = [{"rows": c["rows"], "nnz": z, "label_nnz": c["label_nnz"],
                        "load": 3 * _parquet_bytes(s[0])} for c, z, s in
                       zip(counts, nnz, specs, strict=True)]
        return parts
    if featurizer is not None:
        raise DataFormatError(f"{fmt} partitions hold features, not texts: no featurizer",
                              path=specs[0][0])
    if fmt == "xc":
        heads = {_xc_header(p) for p in dict.fromkeys(s[0] for s in specs)}
        if len({h[1:] for h in heads}) != 1:
            raise DataFormatError("the XC files' headers disagree on n_features / n_labels",
                                  path=specs[0][0])
        _, parts.n_features, n_labels = heads.pop()
    counts = parts._gather(parts._delayed(_rows.scan_xc, [(s,) for s in specs], what), what)
    if fmt == "xc":
        by_file: dict[str, int] = {}
        for s, c in zip(specs, counts, strict=True):
            by_file[s[0]] = by_file.get(s[0], 0) + c["rows"]
        for p, rows in by_file.items():
            if rows != _xc_header(p)[0]:
                raise DataFormatError(f"header says n_points {_xc_header(p)[0]} but the file "
                                      f"has {rows} rows", path=p, line=1)
    from ..io.xc import _label_space

    space, _ = _label_space(specs[0][0], None)
    if space is not None:
        parts.labels = list(space.names)
    elif fmt == "xc":
        parts.labels = [str(i) for i in range(n_labels)]
    if fmt == "libsvm":  # the width is known after parsing; bound it by the entries
        parts.n_features = 0
    parts.stats = [{"rows": c["rows"], "nnz": c["nnz"], "label_nnz": c["label_bound"],
                    "load": c["bytes"] + 16 * c["nnz"]} for c in counts]
    return parts


# ------------------------------------------------------------------ training
def fit(model: Any, parts: Partitions, *, memory_limit: float | None = None,
        eps: float = NEWTON_EPS, max_newton: int = 100) -> Any:
    """Fit ``model`` (OneVsRest or LabelTree) on ``parts`` without gathering X: checks the
    per-worker memory estimate first (ResourceLimitError, nothing loaded), then loads the
    rows on their workers and trains (module docstring). Returns the fitted model."""
    from ..labels import LabelSpace
    from ..models.ovr import LOSSES, OneVsRest
    from ..models.tree import LabelTree

    if not isinstance(model, OneVsRest | LabelTree):
        raise LabelwiseError(f"{type(model).__name__} does not train on partitions "
                             "(OneVsRest and LabelTree do)")
    model._validate_params()
    if isinstance(model, LabelTree) and model.label_features == "given":
        raise LabelwiseError("label_features='given' is not available on partitions")
    L = len(parts.labels) or MAX_BLOCK_LABELS  # LIBSVM without names: known after parsing
    tree = isinstance(model, LabelTree)
    width = (max(model.branching, min(model.max_leaf_size, L)) if tree
             else min(L, MAX_BATCH_LABELS))
    rows = max(1, parts.n_samples)
    copies = -(-sum(s["label_nnz"] for s in parts.stats) // rows) if tree else 1
    n_features = parts.n_features
    if parts.fmt == "libsvm":  # not known before parsing: bounded by the entries
        parts.n_features = sum(s["nnz"] for s in parts.stats) + 1
    # OneVsRest: the widest batch of blocks (MAX_BATCH_LABELS, halved down to one block)
    # whose estimate fits every worker; refused only when one block at a time does not fit
    widths = [width] if tree else sorted({min(L, w) for w in _halvings(MAX_BATCH_LABELS)},
                                         reverse=True)
    try:
        for i, w in enumerate(widths):
            try:
                parts.estimate = parts.check_memory(width=max(1, w), memory_limit=memory_limit,
                                                    copies=max(1, copies))
            except ResourceLimitError:
                if i + 1 == len(widths):
                    raise
                continue
            batch_labels = w
            break
    finally:
        parts.n_features = n_features
    parts.load(model.normalize)
    L = len(parts.labels)
    if L == 0:
        raise DataFormatError("Y has no label columns", field="Y")
    positives = np.sum([s["positives"] for s in parts.stats], axis=0)
    n = parts.n_samples
    if n == 0:
        raise DataFormatError("no training rows", field="X")
    empty = np.flatnonzero(positives == 0).astype(np.int64)
    if empty.size:
        warnings.warn(f"{empty.size} of {L} labels have no positive training example; they "
                      "are trained as all-negative (see labels_without_positives_)",
                      UserWarning, stacklevel=2)
    rnd = parts.rounds(f"training {type(model).__name__} on partitions")
    kw = dict(loss=LOSSES[model.loss], bias=float(model.bias), eps=float(eps),
              max_iter=int(max_newton))
    model._clear_fitted()
    model.labels_ = LabelSpace(parts.labels)
    model.n_features_in_ = int(parts.n_features)
    try:
        if isinstance(model, OneVsRest):
            _fit_ovr(model, rnd, L, kw, batch_labels)
        else:
            _fit_tree(model, rnd, parts, positives, kw)
    except BaseException:
        model._clear_fitted()  # never a half-fitted model
        raise
    model.labels_without_positives_ = empty
    parts.label_counts = positives.astype(np.int64)
    return model


def _pruned(feats: np.ndarray, W: np.ndarray, prune: float) -> list[tuple[np.ndarray,
                                                                           np.ndarray]]:
    """Per column: (global feature ids, float32 weights) kept after pruning."""
    out = []
    for j in range(W.shape[1]):
        w = W[:-1, j]
        keep = (w != 0.0) & (np.abs(w) >= prune)
        out.append((feats[keep].astype(np.int32), w[keep].astype(np.float32)))
    return out


def _halvings(n: int) -> list[int]:
    """``n``, ``n / 2``, ... down to one OneVsRest block (``MAX_BLOCK_LABELS``)."""
    out = [max(n, MAX_BLOCK_LABELS)]
    while out[-1] > MAX_BLOCK_LABELS:
        out.append(max(MAX_BLOCK_LABELS, out[-1] // 2))
    return out


def _fit_ovr(model: Any, rnd: Any, L: int, kw: dict, batch_labels: int) -> None:
    d = int(model.n_features_in_)
    feat_cols, val_cols = [], []
    bias_w = np.zeros(L)
    n_iter = np.zeros(L, np.int32)
    blocks = [list(range(a, min(a + MAX_BLOCK_LABELS, L))) for a in range(0, L, MAX_BLOCK_LABELS)]
    per = max(1, batch_labels // MAX_BLOCK_LABELS)
    for i in range(0, len(blocks), per):
        # several blocks solved side by side: one Dask round serves them all (each block's
        # arithmetic is its own, so the weights are those of one block at a time)
        batch = blocks[i:i + per]
        problems = [(None, [np.array([j], np.int64) for j in block]) for block in batch]
        feats, Ws, its, _ = _newton.solve(rnd, problems, [float(model.C)] * len(batch), **kw)
        for block, f_b, W, it in zip(batch, feats, Ws, its, strict=True):
            for f, v in _pruned(f_b, W, model.prune_threshold):
                feat_cols.append(f)
                val_cols.append(v)
            bias_w[block[0]:block[-1] + 1] = W[-1]
            n_iter[block[0]:block[-1] + 1] = it
    counts = np.array([f.shape[0] for f in feat_cols], np.int64)
    indptr = np.zeros(L + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    Wc = sp.csc_matrix((np.concatenate(val_cols), np.concatenate(feat_cols), indptr),
                       shape=(d, L))
    coef = sp.csr_matrix(Wc.tocsr())
    coef.sort_indices()
    model.coef_ = coef
    model.intercept_ = (bias_w * model.bias).astype(np.float32)
    model.n_iter_ = n_iter


def _fit_tree(model: Any, rnd: Any, parts: Partitions, positives: np.ndarray,
              kw: dict) -> None:
    from ..models import _tree_build

    what = "label representations on Dask"
    seed = model.random_state
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    sums = parts._gather(parts._submit(_rows.pifa_sums, [(f,) for f in parts.futures], what),
                         what)
    P = sums[0]
    for s in sums[1:]:
        P = P + s
    del sums
    # as label_representations: the PIFA rows normalised, then the (one) block again
    Z = _tree_build.l2_normalize_rows(_tree_build.l2_normalize_rows(
        sp.csr_matrix(P, dtype=np.float32)))
    Z.sort_indices()
    del P
    starts, children, roots, problems = [np.zeros(1, np.int64)], [], [], []
    n_nodes = n_clf = 0
    layouts = []
    for t in range(model.n_trees):
        layout = _tree_build.build_tree(
            Z, branching=model.branching, max_leaf_size=model.max_leaf_size,
            cluster_iters=model.cluster_iters, seed=int(seed) + 7919 * t)
        layouts.append((layout, n_clf))
        kids = layout.clf_child.copy()
        kids[kids >= 0] += n_nodes
        roots.append(n_nodes)
        starts.append(layout.node_clf_start[1:] + n_clf)
        children.append(kids)
        n_nodes += layout.n_nodes
        n_clf += kids.shape[0]
    del Z
    n = parts.n_samples
    nnz = sum(s["nnz"] for s in parts.stats)
    C_root = float(model.C)
    if model.C_row_scaling:
        C_root *= float(min(_tree_build.ROW_SCALE_MAX,
                            max(1.0, (nnz / n / _tree_build.ROW_REF) ** _tree_build.ROW_POWER)))
    for layout, offset in layouts:
        for v in range(layout.n_nodes):
            a, b = int(layout.node_clf_start[v]), int(layout.node_clf_start[v + 1])
            targets = [layout.node_labels[c] if c >= 0 else np.array([-c - 1], np.int64)
                       for c in layout.clf_child[a:b]]
            problems.append((offset + a, (None if v == 0 else layout.node_labels[v], targets)))
    # node rows: the union of its labels' positives (counted per partition by the solver)
    d = int(parts.n_features)
    W_rows, W_cols, W_vals = [], [], []
    bias_w = np.zeros(n_clf)
    n_iter = np.zeros(n_clf, np.int32)
    batch: list = []
    cost = 0
    budget = max(model.branching, min(model.max_leaf_size, len(parts.labels)))
    for i, pr in enumerate(problems):
        batch.append(pr)
        cost += len(pr[1][1])
        if cost < budget and i + 1 < len(problems):
            continue
        specs = [p for _, p in batch]
        feats, Ws, its, _ = _newton.solve(  # a node's C depends on its row count
            rnd, specs, lambda r: _tree_build.node_C(C_root, n, r, model.C_node_power), **kw)
        for (start, _), f, W, it in zip(batch, feats, Ws, its, strict=True):
            m = W.shape[1]
            for j, (fj, vj) in enumerate(_pruned(f, W, model.prune_threshold)):
                W_rows.append(np.full(fj.shape[0], start + j, np.int64))
                W_cols.append(fj)
                W_vals.append(vj)
            bias_w[start:start + m] = W[-1]
            n_iter[start:start + m] = it
        batch, cost = [], 0
    Wm = sp.csr_matrix((np.concatenate(W_vals), (np.concatenate(W_rows),
                                                 np.concatenate(W_cols))), shape=(n_clf, d))
    Wm.sort_indices()
    model.node_clf_start_ = np.concatenate(starts).astype(np.int64)
    model.clf_child_ = np.concatenate(children).astype(np.int64)
    model.tree_roots_ = np.asarray(roots, np.int64)
    model._set_weights(Wm, 1)
    model.intercept_ = (bias_w * model.bias).astype(np.float32)
    model.n_iter_ = n_iter


# ------------------------------------------------------------------ command line
def fit_pipeline(model: Any, target: str, *, client: Any, featurizer: Any = None,
                 byte_ranges: int = 1, format: str | None = None,
                 options: dict[str, Any] | None = None, memory_limit: float | None = None,
                 random_state: int | None = 0) -> tuple[Any, Partitions]:
    """``(pipeline, partitions)``: a fitted :class:`~labelwise.pipeline.Pipeline` from partitions (what ``labelwise
    train DIR_OR_GLOB --dask ...`` runs): the tf-idf from counts when the partitions hold
    texts (``featurizer``, fitted here), the model by :func:`fit`; numeric partitions are
    used as given (no per-column scaling)."""
    from ..pipeline import Pipeline

    fmt, specs = list_partitions(target, byte_ranges=byte_ranges, format=format)
    text = fmt == "parquet" and has_text_column(specs[0][0], options or {})
    parts = open_partitions(client, target, byte_ranges=byte_ranges, format=format,
                            featurizer=featurizer if text else None, options=options)
    fit(model, parts, memory_limit=memory_limit)
    pipe = Pipeline(featurizer if text else None, model, random_state=random_state,
                    scale=None)
    pipe.label_counts_ = parts.label_counts
    return pipe, parts
