"""Partitioned (federated) training on Dask: the rows never leave their worker.

Each of K partitions of rows is read *on* its worker (:func:`load_partitions`, a task pinned
there with ``workers=[w]``) and stays there. Every task of :func:`fit_partitioned` is pinned to
a partition's worker and gets that partition as a Dask future; what travels between the
coordinator (this process) and the workers is weights, per-label counts and per-label loss
sums, never a row.

OneVsRest
---------
Label ``j``'s centralised problem is ``F_j(w) = 0.5 |w|^2 + C sum_k L_kj(w)`` (``L_kj``: the
loss summed over partition k's rows). It is split as ``F_j = sum_k f_kj`` with
``f_kj(w) = r_k/2 |w|^2 + C L_kj(w)``, ``r_k = n_k / n`` the partition's share of the rows, so
partition k's own problem is the ordinary one at ``C / r_k`` (a partition solving at C alone
regularises 1/r_k times too much: its margins, and the average of them, shrink; that is what
sank macro-F1 at threshold 0 in the first version).

Round 1: each partition solves its problem from zero; the coordinator combines label by label::

    z_j = sum_k a_kj w_kj,   a_kj = c_kj / sum_k c_kj,   c_kj = 2 pos_kj neg_kj / (pos_kj + neg_kj)

``c_kj`` (the harmonic mean of partition k's positive and negative counts for label j, up to
a factor) is 0 where the partition saw only one side of label j, and grows with both counts; a
label that no partition sees from both sides is averaged by row counts.

Rounds 2..R are consensus ADMM (Boyd et al. 2011, section 7.1) on ``sum_k f_kj`` started from
that combination, with a per-partition penalty ``rho_kj = rho * b_kj``, ``b_kj = (a_kj +
r_k) / 2`` (the label-aware weight, kept above 0 for every partition that has rows, so each
partition's loss stays in the consensus)::

    w_kj <- argmin f_kj(w) + rho_kj/2 |w - z_j + u_kj|^2        (on partition k's worker)
    z_j  <- sum_k rho_kj (w_kj + u_kj) / sum_k rho_kj             (coordinator)
    u_kj <- u_kj + w_kj - z_j                                     (coordinator; u starts at 0)

The local step is a proximal problem: ``0.5 |w - s (z_j - u_kj)|^2 + C / (r_k + rho_kj)
L_kj(w)`` with ``s = rho_kj / (r_k + rho_kj)``, which the dual coordinate descent solver
solves exactly when started at ``w = s (z_j - u_kj)`` (:func:`labelwise.models._dcd.
train_chunk_from`): a primal warm start needs no dual variables for that problem. ADMM
converges to the centralised optimum for any positive penalties; round 2's local problem
(u = 0) is FedProx's, centred on the last combination. Every task also returns its
partition's loss sums at the combination it was sent, so the coordinator knows the exact
centralised objective ``F_j(z_j)`` of every round's combination (one round late; a last
evaluation task scores the final one) and keeps, label by label, the round with the lowest
objective: rounds never make a label's objective worse than round 1's. The history is
``model.round_objective_`` (rounds, n_labels), the chosen round per label ``round_chosen_``. Between rounds the weights
travel pruned at ``transfer_prune`` (smaller than the model's ``prune_threshold``); the
chosen combination is pruned at ``prune_threshold`` at the end.

One partition: every share and weight is exactly 1.0 and the first round is the centralised
fit, bit for bit; that model is the fixed point of the rounds (the consensus of one partition
is its own solution of the whole problem), so further rounds are not run.

LabelTree
---------
Each partition sends its label statistics (the sums of its positive rows' normalised features
per label, ``Y_k' X_k``, its row and non-zero counts); the coordinator adds them and builds
the trees exactly as :class:`~labelwise.models.LabelTree` does from ``Y' X``. Each partition
then counts its rows at every node (the node row counts add up across partitions, since the
rows are disjoint), and trains every node's classifiers on its own rows at ``C_v m_v /
m_kv`` (``C_v`` the centralised node C, ``m_v`` the node's rows, ``m_kv`` the partition's:
the same split of the node problem as above). The coordinator combines the classifiers one by
one with the weights above (positives and negatives of the classifier at its node). Rounds
2..R run the same ADMM over the classifiers (each a binary problem over its node's rows, at
``C_v``; :func:`labelwise.models._dcd.train_rows_from` solves the proximal step), with the
same per-classifier objective bookkeeping (``round_objective_`` (rounds, n_classifiers)). One
partition gives the centralised tree bit for bit, for any number of rounds.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError, LabelwiseError, ResourceLimitError
from . import cluster_errors

__all__ = ["load_partitions", "scatter_partitions", "fit_partitioned", "combine_weights",
           "combination_weights"]


# ---------------------------------------------------------------------- placing the rows
def _read_partition(path: str) -> tuple[sp.csr_matrix, sp.csr_matrix, list[str]]:
    """Runs on the worker: (X, Y, label names) of one partition file."""
    from ..io import read
    from ..models.base import as_feature_matrix

    data = read(path)
    return as_feature_matrix(data.X), sp.csr_matrix(data.Y), list(data.labels.names)


def load_partitions(client: Any, paths: list[str], workers: list[str] | None = None) -> list:
    """Read partition file ``paths[k]`` on worker ``workers[k]`` (round robin over the
    cluster's workers by default); returns ``[(future, worker)]``. The rows never pass
    through the client."""
    if workers is None:
        workers = sorted(client.scheduler_info()["workers"])
    out = []
    with cluster_errors("reading partitions on Dask"):
        for k, path in enumerate(paths):
            w = workers[k % len(workers)]
            fut = client.submit(_read_partition, str(path), workers=[w],
                                allow_other_workers=False, pure=False)
            out.append((fut, w))
    return out


def scatter_partitions(client: Any, parts: list[tuple], workers: list[str] | None = None) -> list:
    """Place in-memory partitions ``(X, Y, label names)`` once, partition k on worker k (for
    data already in this process); returns ``[(future, worker)]``."""
    if workers is None:
        workers = sorted(client.scheduler_info()["workers"])
    out = []
    with cluster_errors("placing partitions on Dask"):
        for k, part in enumerate(parts):
            w = workers[k % len(workers)]
            [fut] = client.scatter([tuple(part)], workers=[w], hash=False)
            out.append((fut, w))
    return out


# ---------------------------------------------------------------------- combination
def combination_weights(pos: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a`` (K, L) of the label-by-label combination (module docstring) from the positives
    ``pos`` (K, L) and the rows ``rows`` (K,) (or (K, L): rows per partition and label, as at
    a tree node) of each partition. Every column sums to 1; with K = 1 every ``a`` is 1.0."""
    pos = np.asarray(pos, np.float64)
    rows = np.broadcast_to(np.asarray(rows, np.float64).reshape(pos.shape[0], -1), pos.shape)
    neg = rows - pos
    both = pos + neg
    c = np.divide(2.0 * pos * neg, both, out=np.zeros_like(pos), where=both > 0)
    blind = c.sum(axis=0) == 0
    c[:, blind] = rows[:, blind]
    empty = c.sum(axis=0) == 0  # no partition has a row (a tree node nobody reaches)
    c[:, empty] = 1.0
    return c / c.sum(axis=0)


def _weighted_sum(mats: list[sp.spmatrix], a: np.ndarray, *, rows: bool = False) -> sp.csr_matrix:
    """``sum_k mats[k] @ diag(a[k])`` (float64 CSR, sorted, no stored zeros); ``a`` (K, L)
    scales column j of every ``mats[k]`` (n, L); with ``rows``, row j (``diag(a[k]) @
    mats[k]``)."""
    out = None
    for M, ak in zip(mats, a, strict=True):
        M = sp.csr_matrix(M, dtype=np.float64, copy=True)
        M.data *= np.repeat(ak, np.diff(M.indptr)) if rows else ak[M.indices]
        out = M if out is None else out + M
    out.eliminate_zeros()
    out.sort_indices()
    return out


def combine_weights(results: list[dict[str, Any]]) -> tuple[sp.csr_matrix, np.ndarray,
                                                              np.ndarray, np.ndarray]:
    """``(coef, intercept, n_iter, positives)`` of the label-by-label combination (see the
    module docstring) of the partitions' results (``coef`` (n_features, n_labels),
    ``intercept``, ``n_iter``, ``positives``, ``rows`` each)."""
    pos = np.stack([r["positives"] for r in results]).astype(np.float64)  # (K, L)
    rows = np.array([r["rows"] for r in results], np.float64)
    a = combination_weights(pos, rows)
    index_dtype = results[0]["coef"].indices.dtype
    W = sp.csr_matrix(_weighted_sum([r["coef"] for r in results], a), dtype=np.float32)
    W.indices = W.indices.astype(index_dtype)
    W.indptr = W.indptr.astype(index_dtype)
    intercept = np.sum(a * np.stack([r["intercept"] for r in results]).astype(np.float64), 0)
    n_iter = np.max(np.stack([r["n_iter"] for r in results]), axis=0).astype(np.int32)
    return W, intercept.astype(np.float32), n_iter, pos.sum(axis=0).astype(np.int64)


def _prune(W: sp.csr_matrix, threshold: float) -> sp.csr_matrix:
    W = sp.csr_matrix(W, copy=True)
    W.data[np.abs(W.data) < threshold] = 0.0
    W.eliminate_zeros()
    return W


# ---------------------------------------------------------------------- worker side (OVR)
def _normalised(X: sp.csr_matrix, normalize: str | None) -> sp.csr_matrix:
    from ..models._tree_build import l2_normalize_rows

    return l2_normalize_rows(X) if normalize == "l2" else X


def loss_sums(X: sp.csr_matrix, Y: sp.spmatrix, Z: sp.spmatrix, z_bias: np.ndarray, *,
              bias: float, loss: str, block_bytes: int = 2**25) -> np.ndarray:
    """Per label j, ``sum_i loss(y_ij (x_i.Z[:, j] + bias z_bias[j]))`` (float64 (n_labels,))
    over the rows of X (already normalised as the model does) and Y; ``loss`` as OneVsRest."""
    n, L = Y.shape
    Zc = sp.csc_matrix(Z, dtype=np.float64)
    Yc = sp.csc_matrix(Y)
    out = np.zeros(L, np.float64)
    step = max(1, int(block_bytes // max(1, 8 * n)))
    for a in range(0, L, step):
        b = min(L, a + step)
        M = np.asarray((X @ Zc[:, a:b]).todense(), np.float64) + bias * z_bias[None, a:b]
        sign = 2.0 * Yc[:, a:b].toarray() - 1.0
        m = sign * M
        if loss == "logistic":
            out[a:b] = np.logaddexp(0.0, -m).sum(axis=0)
        else:
            out[a:b] = (np.maximum(0.0, 1.0 - m) ** 2).sum(axis=0)
    return out


def _ovr_stats(part: tuple) -> dict[str, Any]:
    """Runs on the worker: the partition's per-label positives, rows, labels, features."""
    X, Y, names = part
    return {"positives": np.diff(sp.csc_matrix(Y).indptr).astype(np.int64),
            "rows": int(X.shape[0]), "labels": list(names), "n_features": int(X.shape[1])}


def _ovr_round(part: tuple, job: dict[str, Any]) -> dict[str, Any]:
    """Runs on the worker holding ``part``: the loss sums at the last combination (when sent)
    and the warm-started local solve; returns only weights and per-label numbers."""
    from ..models.ovr import OneVsRest, fit_linear_from

    X, Y, _ = part
    p = job["params"]
    Xn = _normalised(X, p["normalize"])
    out: dict[str, Any] = {}
    if job.get("z") is not None:
        out["loss_at_z"] = loss_sums(Xn, Y, job["z"], job["z_bias"], bias=p["bias"],
                                     loss=p["loss"])
    if job.get("C") is None:  # evaluation only
        return out
    local = OneVsRest(**p)
    limit = local._memory_limit_bytes()
    if limit is not None:
        need = local.estimate_memory(X, Y)
        if need > limit:
            raise ResourceLimitError(f"partition training needs about {need / 2**20:.1f} MiB "
                                     f"but memory_limit is {limit / 2**20:.1f} MiB")
    L = Y.shape[1]
    centre = job.get("centre")
    if centre is None:
        centre, centre_bias = sp.csr_matrix((X.shape[1], L)), np.zeros(L)
    else:
        centre_bias = job["centre_bias"]
    coef, intercept, n_iter = fit_linear_from(
        Xn, Y, centre, centre_bias, job["C"], loss=p["loss"], bias=p["bias"], tol=p["tol"],
        max_iter=p["max_iter"], prune_threshold=job["prune"], n_threads=p["n_threads"],
        seed=job["seed"])
    out.update(coef=coef, intercept=intercept, n_iter=n_iter)
    return out


# ---------------------------------------------------------------------- coordinator (OVR)
def _run(client: Any, partitions: list, fn: Any, jobs: list, what: str) -> list:
    """``fn(partition k, jobs[k])`` on partition k's worker, for every k. A job (weights and
    numbers) travels inside its task's spec, where a scheduler plugin can inspect it."""
    with cluster_errors(what):
        futures = [client.submit(fn, fut, *([] if job is None else [job]), workers=[w],
                                 allow_other_workers=False, pure=False)
                   for (fut, w), job in zip(partitions, jobs, strict=True)]
        return client.gather(futures)


def _check_same(results: list[dict[str, Any]]) -> None:
    for k, r in enumerate(results[1:], 1):
        if r["labels"] != results[0]["labels"] or r["n_features"] != results[0]["n_features"]:
            raise DataFormatError(f"partition {k} has other labels or features than partition 0",
                                  field="partitions")


def _seed(model: Any) -> int:
    seed = model.random_state
    return int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else int(seed)


def _fit_ovr(model: Any, partitions: list, client: Any, rounds: int, rho: float,
             transfer_prune: float | None) -> None:
    from ..labels import LabelSpace

    params = model.get_params()
    stats = _run(client, partitions, _ovr_stats, [None] * len(partitions),
                 "partitioned training on Dask")
    _check_same(stats)
    K, L, d = len(stats), len(stats[0]["labels"]), stats[0]["n_features"]
    pos = np.stack([s["positives"] for s in stats]).astype(np.float64)
    rows = np.array([s["rows"] for s in stats], np.float64)
    share = rows / rows.sum()  # r_k; 1.0 exactly when K == 1
    a = combination_weights(pos, rows)
    seed = _seed(model)
    C = float(model.C)
    bias = float(model.bias)
    prune = model.prune_threshold if K == 1 or transfer_prune is None else transfer_prune
    jobs = [{"params": params, "seed": seed, "prune": prune, "C": np.full(L, C / share[k])}
            for k in range(K)]
    res = _run(client, partitions, _ovr_round, jobs, "partitioned training on Dask")
    positives = pos.sum(axis=0).astype(np.int64)
    model.labels_ = LabelSpace(stats[0]["labels"])
    model.n_features_in_ = d
    model.labels_without_positives_ = np.flatnonzero(positives == 0).astype(np.int64)
    if K == 1:  # the centralised fit itself (module docstring)
        model.coef_, model.intercept_, model.n_iter_ = (res[0]["coef"], res[0]["intercept"],
                                                        res[0]["n_iter"])
        return
    index_dtype = res[0]["coef"].indices.dtype
    bias_div = bias if bias > 0 else 1.0
    W = [r["coef"] for r in res]
    Wb = np.stack([r["intercept"].astype(np.float64) / bias_div for r in res])  # (K, L)
    n_iter = np.max(np.stack([r["n_iter"] for r in res]), axis=0)
    z = _weighted_sum(W, a)
    zb = np.sum(a * Wb, axis=0)
    if rounds > 1:
        def run(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for job in jobs:
                job.update(params=params, seed=seed, prune=prune)
            res = _run(client, partitions, _ovr_round, jobs, "partitioned training on Dask")
            for r in res:
                if "intercept" in r:
                    r["bias_w"] = r["intercept"].astype(np.float64) / bias_div
            return res

        shares = np.broadcast_to(share[:, None], a.shape)
        z, zb, it, F, best = _admm(run, z, zb, W, Wb, a, shares, np.full(L, C), rounds, rho)
        n_iter = np.maximum(n_iter, it)
        model.round_objective_ = F
        model.round_chosen_ = best
    coef = sp.csr_matrix(_prune(z, model.prune_threshold), dtype=np.float32)
    coef.indices = coef.indices.astype(index_dtype)
    coef.indptr = coef.indptr.astype(index_dtype)
    model.coef_ = coef
    model.intercept_ = (zb * bias).astype(np.float32)
    model.n_iter_ = n_iter.astype(np.int32)


def _admm(run: Any, z: sp.csr_matrix, zb: np.ndarray, W: list, Wb: np.ndarray, a: np.ndarray,
          share: np.ndarray, C: np.ndarray, rounds: int, rho: float) -> tuple:
    """Rounds 2..``rounds`` of consensus ADMM (module docstring) over P binary problems (the
    columns), from round 1's combination ``z`` (n_features, P) / ``zb`` (P,) and local
    solutions ``W`` (K of them) / ``Wb`` (K, P); ``a`` (K, P) the combination weights,
    ``share`` (K, P) the regulariser shares, ``C`` (P,) the centralised problems' C.
    ``run(jobs)`` runs one job per partition on its worker and returns, per partition,
    ``loss_at_z`` (when the job has ``z``) and, when the job has ``C``, the warm-started local
    solution ``coef`` (n_features, P), ``bias_w`` and ``n_iter``. Returns ``(z, zb, n_iter,
    F, best)``: each problem's lowest-objective combination, the most epochs, the objective of
    every round's combination (rounds, P) and the round chosen per problem."""
    K, P = a.shape
    d = z.shape[0]
    rho_k = rho * 0.5 * (a + share)  # 0 only where the partition has no rows and no weight
    on = rho_k > 0
    s = np.divide(rho_k, share + rho_k, out=np.zeros_like(rho_k), where=on)
    Ck = np.divide(C[None, :], share + rho_k, out=np.broadcast_to(C, (K, P)).copy(), where=on)
    mix = rho_k / rho_k.sum(axis=0)
    U = [sp.csr_matrix((d, P), dtype=np.float64) for _ in range(K)]
    Ub = np.zeros((K, P))
    history, objectives = [(z, zb)], []
    n_iter = np.zeros(P, np.int64)
    for _ in range(rounds - 1):
        res = run([{"C": Ck[k], "centre": _weighted_sum([z - U[k]], s[k:k + 1]),
                    "centre_bias": s[k] * (zb - Ub[k]), "z": z, "z_bias": zb}
                   for k in range(K)])
        objectives.append(_objective(z, zb, res, C))
        W = [r["coef"] for r in res]
        Wb = np.stack([r["bias_w"] for r in res])
        n_iter = np.maximum(n_iter, np.max(np.stack([r["n_iter"] for r in res]), axis=0))
        z = _weighted_sum([W[k] + U[k] for k in range(K)], mix)
        zb = np.sum(mix * (Wb + Ub), axis=0)
        U = [_weighted_sum([U[k] + W[k] - z], on[k:k + 1].astype(np.float64))
             for k in range(K)]
        Ub = (Ub + Wb - zb[None, :]) * on
        history.append((z, zb))
    objectives.append(_objective(z, zb, run([{"z": z, "z_bias": zb} for _ in range(K)]), C))
    F = np.stack(objectives)  # (rounds, P)
    best = np.argmin(F, axis=0)  # the first of equal objectives
    masks = np.stack([(best == r).astype(np.float64) for r in range(len(history))])
    z = _weighted_sum([h[0] for h in history], masks)
    zb = np.sum(masks * np.stack([h[1] for h in history]), axis=0)
    return z, zb, n_iter, F, best.astype(np.int64)


def _objective(z: sp.csr_matrix, zb: np.ndarray, res: list[dict[str, Any]],
               C: np.ndarray) -> np.ndarray:
    """``F_j(z_j) = 0.5 |z_j|^2 + C_j sum_k L_kj(z_j)`` per problem from the partitions' loss
    sums."""
    sq = np.asarray(z.multiply(z).sum(axis=0)).ravel() + zb * zb
    return 0.5 * sq + C * np.sum([r["loss_at_z"] for r in res], axis=0)


# ---------------------------------------------------------------------- entry point
def fit_partitioned(model: Any, partitions: list, *, client: Any, rounds: int = 8,
                    rho: float = 3.0, transfer_prune: float | None = 0.01) -> Any:
    """Fit ``model`` (an unfitted OneVsRest or LabelTree, whose parameters every partition
    uses) from ``partitions`` (``[(future, worker)]`` from :func:`load_partitions` or
    :func:`scatter_partitions`) without moving rows; returns the fitted model.

    ``rounds``: training rounds (>= 1; the rounds after the first are ADMM steps
    warm-started from the last combination; see the module docstring). 8 by default: with 5
    partitions, IID or label-skewed, 8 rounds brought P@1, P@5 and macro-F1 within 0.8 points
    of the centralised model on Bibtex, Delicious and cooking (one round: up to 3.7 P@1 and
    7.9 macro-F1 away; ``benchmarks/dask_scale.py federated``). ``rho`` (> 0): the
    ADMM penalty; ``transfer_prune``: the weight threshold of the weights sent between
    rounds (None: the model's ``prune_threshold``)."""
    from ..models.ovr import OneVsRest
    from ..models.tree import LabelTree

    if not isinstance(model, OneVsRest | LabelTree):
        raise LabelwiseError(f"partitioned training is for OneVsRest and LabelTree, not "
                             f"{type(model).__name__}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    if isinstance(rho, bool) or not isinstance(rho, int | float) or not rho > 0 \
            or not np.isfinite(rho):
        raise ValueError(f"rho must be a finite number > 0, got {rho!r}")
    if transfer_prune is not None and (isinstance(transfer_prune, bool)
                                       or not isinstance(transfer_prune, int | float)
                                       or not 0 <= transfer_prune < np.inf):
        raise ValueError(f"transfer_prune must be None or a number >= 0, got "
                         f"{transfer_prune!r}")
    if not partitions:
        raise DataFormatError("no partitions to train on", field="partitions")
    model._validate_params()
    model._clear_fitted()
    try:
        if isinstance(model, OneVsRest):
            _fit_ovr(model, partitions, client, rounds, float(rho), transfer_prune)
        else:
            from ._federated_tree import fit_tree

            fit_tree(model, partitions, client, rounds, float(rho), transfer_prune)
    except BaseException:
        model._clear_fitted()
        raise
    empty = model.labels_without_positives_.size
    if empty:
        warnings.warn(f"{empty} of {len(model.labels_)} labels have no positive training "
                      "example in any partition; they are trained as all-negative (see "
                      "labels_without_positives_)", UserWarning, stacklevel=2)
    return model
