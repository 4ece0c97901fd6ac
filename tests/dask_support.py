"""Helpers of the Dask test modules (not a test module): a LocalCluster of worker processes,
small data, and a walk over task specs for arrays."""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
import scipy.sparse as sp


def tiny_data(seed: int = 0, n: int = 240, d: int = 60, L: int = 37):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.15, format="csr", dtype=np.float32, random_state=rng)
    W = rng.standard_normal((d, L))
    S = X @ W
    Y = (S > np.quantile(S, 0.9, axis=0)).astype(np.float32)
    Y[:, -1] = 0  # one label without positives
    return X, sp.csr_matrix(Y)


@contextlib.contextmanager
def local_cluster(n_workers: int):
    """(LocalCluster, Client) of ``n_workers`` single-threaded worker processes, closed after
    (each cold worker costs seconds of imports: modules start as few as they need)."""
    import distributed

    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=logging.CRITICAL)
        client = distributed.Client(lc)
    client.wait_for_workers(n_workers)
    try:
        yield lc, client
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.close()
            lc.close()


def workers(client, k: int) -> list[str]:
    """The first ``k`` worker addresses, in address order."""
    return sorted(client.scheduler_info()["workers"])[:k]


def arrays_in(obj, found, depth=0):
    """Every ndarray / sparse matrix inside a task spec or a result (arguments, nested
    containers, dataclasses)."""
    if depth > 20:
        return
    if sp.issparse(obj) or isinstance(obj, np.ndarray):
        found.append(obj)
        return
    if isinstance(obj, dict):
        for v in obj.values():
            arrays_in(v, found, depth + 1)
        return
    if isinstance(obj, list | tuple | set):
        for v in obj:
            arrays_in(v, found, depth + 1)
        return
    if hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            arrays_in(getattr(obj, name), found, depth + 1)
        return
    for attr in ("args", "kwargs", "value", "func"):
        if hasattr(obj, attr) and not isinstance(obj, str | bytes | type):
            arrays_in(getattr(obj, attr), found, depth + 1)
