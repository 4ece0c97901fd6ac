"""Partitioned (federated) OneVsRest training on Dask: the rows never leave their worker.

Each of K partitions of rows is read *on* its worker (:func:`load_partitions`, a task pinned
there with ``workers=[w]``) and stays there; each worker trains a ``OneVsRest`` on its own
rows (a task pinned to the same worker); only the pruned weights, intercepts, epoch counts
and per-label statistics (positives, rows) travel to the coordinator, which combines the
weights label by label::

    w_j = sum_k a_kj w_kj,   a_kj = c_kj / sum_k c_kj,   c_kj = 2 pos_kj neg_kj / (pos_kj + neg_kj)

``c_kj`` (the harmonic mean of partition k's positive and negative counts for label j, up to
a factor) is 0 where the partition saw only one side of label j (its classifier for j then
knows nothing of the boundary), and grows with both counts; a label that no partition sees
from both sides is averaged by row counts. With one partition every ``a`` is exactly 1.0,
so the combined model is bit-identical to the centralised one.

Rounds: the combination is done once. Warm-starting further local rounds from the combined
weights would need the DCD solver's dual variables, which a primal combination does not give
(the dual coordinate descent of :mod:`labelwise.models._dcd` starts from alpha = 0 and has no
primal warm start), so ``rounds`` other than 1 is refused rather than faked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError, LabelwiseError
from . import cluster_errors

__all__ = ["load_partitions", "scatter_partitions", "fit_partitioned", "combine_weights"]


def _read_partition(path: str) -> tuple[sp.csr_matrix, sp.csr_matrix, list[str]]:
    """Runs on the worker: (X, Y, label names) of one partition file."""
    from ..io import read
    from ..models.base import as_feature_matrix

    data = read(path)
    return as_feature_matrix(data.X), sp.csr_matrix(data.Y), list(data.labels.names)


def _train_partition(part: tuple, params: dict) -> dict[str, Any]:
    """Runs on the worker holding ``part``: a OneVsRest on its rows; returns only weights and
    per-label statistics."""
    import warnings

    from ..models.ovr import OneVsRest

    X, Y, names = part
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels without positives here are expected
        m = OneVsRest(**params).fit(X, Y, labels=names)
    return {"coef": m.coef_, "intercept": m.intercept_, "n_iter": m.n_iter_,
            "positives": np.diff(sp.csc_matrix(Y).indptr).astype(np.int64),
            "rows": int(X.shape[0]), "labels": names, "n_features": int(X.shape[1])}


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


def combine_weights(results: list[dict[str, Any]]) -> tuple[sp.csr_matrix, np.ndarray,
                                                              np.ndarray, np.ndarray]:
    """``(coef, intercept, n_iter, positives)`` of the label-by-label combination (see the
    module docstring) of the partitions' results."""
    pos = np.stack([r["positives"] for r in results]).astype(np.float64)  # (K, L)
    rows = np.array([r["rows"] for r in results], np.float64)
    neg = rows[:, None] - pos
    both = pos + neg
    c = np.divide(2.0 * pos * neg, both, out=np.zeros_like(pos), where=both > 0)
    blind = c.sum(axis=0) == 0
    c[:, blind] = rows[:, None]
    a = c / c.sum(axis=0)
    index_dtype = results[0]["coef"].indices.dtype
    W = None
    intercept = np.zeros(pos.shape[1], np.float64)
    for r, ak in zip(results, a, strict=True):
        part = sp.csr_matrix(r["coef"] @ sp.diags(ak))
        W = part if W is None else W + part
        intercept += ak * r["intercept"].astype(np.float64)
    W = sp.csr_matrix(W, dtype=np.float32)
    W.eliminate_zeros()
    W.sort_indices()
    W.indices = W.indices.astype(index_dtype)
    W.indptr = W.indptr.astype(index_dtype)
    n_iter = np.max(np.stack([r["n_iter"] for r in results]), axis=0).astype(np.int32)
    return W, intercept.astype(np.float32), n_iter, pos.sum(axis=0).astype(np.int64)


def fit_partitioned(model: Any, partitions: list, *, client: Any, rounds: int = 1) -> Any:
    """Fit ``model`` (an unfitted OneVsRest, whose parameters every partition uses) from
    ``partitions`` (``[(future, worker)]`` from :func:`load_partitions` or
    :func:`scatter_partitions`) without moving rows; returns the fitted model."""
    from ..labels import LabelSpace
    from ..models.ovr import OneVsRest

    if not isinstance(model, OneVsRest):
        raise LabelwiseError(f"partitioned training is for OneVsRest, not {type(model).__name__}")
    if rounds != 1:
        raise LabelwiseError("rounds: only 1 is possible; the DCD solver cannot warm-start from "
                             "combined primal weights (see labelwise.distributed.federated)")
    if not partitions:
        raise DataFormatError("no partitions to train on", field="partitions")
    model._validate_params()
    params = model.get_params()
    with cluster_errors("partitioned training on Dask"):
        futures = [client.submit(_train_partition, fut, params, workers=[w],
                                 allow_other_workers=False, pure=False)
                   for fut, w in partitions]
        results = client.gather(futures)
    names = results[0]["labels"]
    for k, r in enumerate(results[1:], 1):
        if r["labels"] != names or r["n_features"] != results[0]["n_features"]:
            raise DataFormatError(f"partition {k} has other labels or features than partition 0",
                                  field="partitions")
    W, intercept, n_iter, positives = combine_weights(results)
    model._clear_fitted()
    model.labels_ = LabelSpace(names)
    model.n_features_in_ = results[0]["n_features"]
    model.coef_ = W
    model.intercept_ = intercept
    model.n_iter_ = n_iter
    model.labels_without_positives_ = np.flatnonzero(positives == 0).astype(np.int64)
    return model
