"""Partitioned LabelTree training (the rules are in :mod:`labelwise.distributed.federated`):
label statistics summed across partitions build the trees on the coordinator; each partition
trains every node's classifiers on its own rows; the classifiers are combined one by one."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..models import _dcd, _tree_build
from ..models.ovr import LOSSES
from ..models.topk import map_threads, resolve_n_threads
from .federated import (
    _admm,
    _check_same,
    _normalised,
    _prune,
    _run,
    _seed,
    _weighted_sum,
    combination_weights,
)

__all__ = ["fit_tree"]

WHAT = "partitioned LabelTree training on Dask"


def _label_matrix(Y: sp.spmatrix) -> sp.csc_matrix:
    Ycsc = sp.csc_matrix(Y, dtype=np.float32)
    Ycsc.sort_indices()
    return Ycsc


def _tree_stats(part: tuple, job: dict[str, Any]) -> dict[str, Any]:
    """Runs on the worker: the partition's label statistics, ``Y_k' X_k`` over its normalised
    rows (n_labels, n_features), positives per label, row and non-zero counts."""
    X, Y, names = part
    Xn = _normalised(X, job["normalize"])
    Ycsc = _label_matrix(Y)
    return {"pifa": _tree_build.pifa_rows(Xn, Ycsc, resolve_n_threads(job["n_threads"])),
            "positives": np.diff(Ycsc.indptr).astype(np.int64), "rows": int(X.shape[0]),
            "nnz": int(Xn.nnz), "labels": list(names), "n_features": int(X.shape[1])}


def _tasks(Y: sp.spmatrix, job: dict[str, Any]) -> list:
    Ycsc = _label_matrix(Y)
    tasks = []
    for t, (layout, offset) in enumerate(zip(job["layouts"], job["offsets"], strict=True)):
        tasks += _tree_build.training_tasks(Ycsc, layout, tree=t, clf_offset=offset,
                                            seed=job["seed"])
    return tasks


def _tree_counts(part: tuple, job: dict[str, Any]) -> dict[str, np.ndarray]:
    """Runs on the worker: per classifier, the partition's rows at its node and its positives."""
    _, Y, _ = part
    rows = np.zeros(job["n_clf"], np.int64)
    pos = np.zeros(job["n_clf"], np.int64)
    for t in _tasks(Y, job):
        m = t.seeds.shape[0]
        rows[t.clf_start:t.clf_start + m] = t.rows.shape[0]
        pos[t.clf_start:t.clf_start + m] = np.diff(t.tgt_indptr)
    return {"rows": rows, "positives": pos}


def _tree_train(part: tuple, job: dict[str, Any]) -> dict[str, Any]:
    """Runs on the worker: every node's classifiers on the partition's rows, at the C the
    coordinator chose per classifier; returns the pruned weights (n_classifiers,
    n_features), intercepts and epochs."""
    X, Y, _ = part
    p = job["params"]
    Xn = _normalised(X, p["normalize"])
    threads = resolve_n_threads(p["n_threads"])
    loss = LOSSES[p["loss"]]
    tasks = _tree_build.split_tasks(Xn, _tasks(Y, job), loss=loss, n_threads=threads)
    sq = _dcd.row_sq_norms(Xn.indptr, Xn.data, float(p["bias"]))
    kw = dict(loss=loss, bias=p["bias"], tol=p["tol"], max_iter=p["max_iter"],
              prune_threshold=job["prune"])
    C = job["C"]
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i].cost)
    results = map_threads(lambda i: _tree_build.run_task(Xn, sq, tasks[i],
                                                         C=C[tasks[i].clf_start], **kw),
                          order, threads)
    W, intercept, n_iter = _tree_build.assemble_weights(results, job["n_clf"], X.shape[1],
                                                        float(p["bias"]))
    return {"coef": W, "intercept": intercept, "n_iter": n_iter}


def _node_loss_sums(Xn: sp.csr_matrix, tasks: list, Z: sp.csc_matrix, zb: np.ndarray,
                    n_clf: int, bias: float, loss: str) -> np.ndarray:
    """Per classifier, its loss summed over its node's rows (of this partition) at the
    weights ``Z`` (n_features, n_classifiers) / ``zb``."""
    out = np.zeros(n_clf, np.float64)
    for t in tasks:
        m = t.seeds.shape[0]
        if t.rows.shape[0] == 0:
            continue
        c0 = t.clf_start
        M = np.asarray((Xn[t.rows] @ Z[:, c0:c0 + m]).todense(), np.float64) \
            + bias * zb[None, c0:c0 + m]
        sign = -np.ones_like(M)
        for j in range(m):
            sign[t.tgt_indices[t.tgt_indptr[j]:t.tgt_indptr[j + 1]], j] = 1.0
        margin = sign * M
        out[c0:c0 + m] = (np.logaddexp(0.0, -margin) if loss == "logistic"
                          else np.maximum(0.0, 1.0 - margin) ** 2).sum(axis=0)
    return out


def _tree_round(part: tuple, job: dict[str, Any]) -> dict[str, Any]:
    """Runs on the worker: the loss sums at the last combination and the warm-started solve
    of every classifier on the partition's rows (rounds 2..R); weights (n_features,
    n_classifiers) and per-classifier numbers only."""
    X, Y, _ = part
    p = job["params"]
    Xn = _normalised(X, p["normalize"])
    tasks = _tasks(Y, job)
    n_clf = job["n_clf"]
    out: dict[str, Any] = {"loss_at_z": _node_loss_sums(
        Xn, tasks, sp.csc_matrix(job["z"]), job["z_bias"], n_clf, float(p["bias"]), p["loss"])}
    if job.get("C") is None:
        return out
    sq = _dcd.row_sq_norms(Xn.indptr, Xn.data, float(p["bias"]))
    centre = sp.csc_matrix(job["centre"], dtype=np.float64)
    centre.sort_indices()
    C = np.asarray(job["C"], np.float64)

    def run(t):
        c0, m = t.clf_start, t.seeds.shape[0]
        cc = centre[:, c0:c0 + m]
        counts, feat, vals, bias_w, n_iter = _dcd.train_rows_from(
            Xn.indptr, Xn.indices, Xn.data, sq, t.rows, t.tgt_indptr, t.tgt_indices, t.seeds,
            LOSSES[p["loss"]], C[c0:c0 + m], float(p["bias"]), float(p["tol"]),
            int(p["max_iter"]), float(job["prune"]), int(X.shape[1]),
            cc.indptr.astype(np.int64), cc.indices.astype(np.int64), cc.data,
            np.asarray(job["centre_bias"][c0:c0 + m], np.float64))
        return _tree_build.TaskResult(c0, counts, feat, vals, bias_w, n_iter)

    results = map_threads(run, tasks, resolve_n_threads(p["n_threads"]))
    W, intercept, n_iter = _tree_build.assemble_weights(results, n_clf, X.shape[1], 1.0)
    out.update(coef=sp.csr_matrix(W.T), bias_w=intercept.astype(np.float64), n_iter=n_iter)
    return out


def fit_tree(model: Any, partitions: list, client: Any, rounds: int = 1, rho: float = 3.0,
             transfer_prune: float | None = 0.01) -> None:
    """Fit the unfitted LabelTree ``model`` on the partitions (module docstring)."""
    from ..labels import LabelSpace

    if model.label_features != "pifa":
        raise ValueError("partitioned LabelTree training builds its trees from the partitions' "
                         "label statistics: label_features must be 'pifa'")
    params = model.get_params()
    threads = resolve_n_threads(model.n_threads)
    K = len(partitions)
    stats = _run(client, partitions, _tree_stats,
                 [{"normalize": model.normalize, "n_threads": model.n_threads}] * K, WHAT)
    _check_same(stats)
    d = stats[0]["n_features"]
    P = stats[0]["pifa"]
    for s in stats[1:]:
        P = P + s["pifa"]
    Z = _tree_build.l2_normalize_rows(_tree_build.l2_normalize_rows(sp.csr_matrix(P)))
    Z.sort_indices()
    seed = _seed(model)
    layouts, offsets, starts, children, roots = [], [], [np.zeros(1, np.int64)], [], []
    n_nodes = n_clf = 0
    for t in range(model.n_trees):
        layout = _tree_build.build_tree(
            Z, branching=model.branching, max_leaf_size=model.max_leaf_size,
            cluster_iters=model.cluster_iters, seed=int(seed) + 7919 * t, n_threads=threads)
        layouts.append(layout)
        offsets.append(n_clf)
        kids = layout.clf_child.copy()
        kids[kids >= 0] += n_nodes
        roots.append(n_nodes)
        starts.append(layout.node_clf_start[1:] + n_clf)
        children.append(kids)
        n_nodes += layout.n_nodes
        n_clf += kids.shape[0]
    del Z, P
    job = {"layouts": layouts, "offsets": offsets, "seed": int(seed), "n_clf": n_clf}
    counts = _run(client, partitions, _tree_counts, [job] * K, WHAT)
    rows_k = np.stack([c["rows"] for c in counts])  # (K, n_clf): rows at the classifier's node
    pos_k = np.stack([c["positives"] for c in counts])
    n = sum(s["rows"] for s in stats)
    m = rows_k.sum(axis=0)  # the node's rows over all partitions (the rows are disjoint)
    C_root = float(model.C) * (_tree_build.row_length_scale(sum(s["nnz"] for s in stats), n)
                               if model.C_row_scaling else 1.0)
    C_node = np.array([_tree_build.node_C(C_root, n, int(mv), model.C_node_power) for mv in m])
    jobs = []
    for k in range(K):
        # partition k's share of the node problem: C_v * m_v / m_kv (exactly C_v when K = 1)
        share = np.divide(m, rows_k[k], out=np.ones(n_clf), where=rows_k[k] > 0)
        jobs.append(dict(job, params=params, C=C_node * share))
    prune = model.prune_threshold if K == 1 or rounds == 1 or transfer_prune is None \
        else transfer_prune
    for j in jobs:
        j["prune"] = prune
    res = _run(client, partitions, _tree_train, jobs, WHAT)
    a = combination_weights(pos_k, rows_k)
    W = _weighted_sum([r["coef"] for r in res], a, rows=True)
    intercept = np.sum(a * np.stack([r["intercept"] for r in res]).astype(np.float64), axis=0)
    n_iter = np.max(np.stack([r["n_iter"] for r in res]), axis=0)
    bias = float(model.bias)
    if K > 1 and rounds > 1:  # ADMM over the classifiers, as for OneVsRest's labels
        def run(round_jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for rj in round_jobs:
                rj.update(job, params=params, prune=prune)
            return _run(client, partitions, _tree_round, round_jobs, WHAT)

        bias_div = bias if bias > 0 else 1.0
        share = np.divide(rows_k, m[None, :], out=np.zeros(rows_k.shape), where=m[None, :] > 0)
        Wb = np.stack([r["intercept"].astype(np.float64) / bias_div for r in res])
        z, zb, it, F, best = _admm(run, sp.csr_matrix(W.T), intercept / bias_div,
                                   [sp.csr_matrix(r["coef"].T) for r in res], Wb, a, share,
                                   C_node, rounds, rho)
        W = sp.csr_matrix(_prune(z, model.prune_threshold).T)
        intercept = zb * bias
        n_iter = np.maximum(n_iter, it)
        model.round_objective_ = F
        model.round_chosen_ = best
    W = sp.csr_matrix(W, dtype=np.float32)
    positives = np.sum([s["positives"] for s in stats], axis=0)
    model.labels_ = LabelSpace(stats[0]["labels"])
    model.n_features_in_ = d
    model.node_clf_start_ = np.concatenate(starts).astype(np.int64)
    model.clf_child_ = np.concatenate(children).astype(np.int64)
    model.tree_roots_ = np.asarray(roots, np.int64)
    model._set_weights(W, threads)
    model.intercept_ = intercept.astype(np.float32)
    model.n_iter_ = n_iter.astype(np.int32)
    model.labels_without_positives_ = np.flatnonzero(positives == 0).astype(np.int64)
