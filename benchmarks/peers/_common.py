"""Shared by the peer runners of ``benchmarks/xmc.py``; runs inside each peer's virtualenv.

It needs only numpy, scipy and scikit-learn (every peer venv has them; no labelwise, whose
numpy may differ). Protocol of a runner ``python peers/<peer>.py``:

- ``--train F --test F`` XC files (header ``n_rows n_features n_labels``, 0-based ids);
  ``--out PREFIX`` where ``PREFIX.npz`` (``labels`` int64 (n_test, k), -1 where the peer
  returned fewer than k labels; ``scores`` float32 (n_test, k), best first) and
  ``PREFIX.json`` (``train_s``, ``predict_s``, ``load_s``, ``params``, ``version``) go;
  ``--threads N``, ``--k K``, ``--workdir D`` (scratch for peers that write model files),
  ``--variant NAME`` for peers with more than one setting.
- ``train_s`` covers everything from the loaded training data to a model ready to predict
  (label embeddings and clustering included); ``predict_s`` covers top-k for all test rows.
  Reading the files is timed apart (``load_s``) and counted in neither. After each phase
  the process's peak RSS so far is recorded (``maxrss_after_<phase>_mb``), and at the end
  ``vm_hwm_mb``, the whole run's peak (see ``_maxrss_mb`` for why not ``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import scipy.sparse as sp


def parse_args(variants: tuple[str, ...] = ("default",)) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--variant", default=variants[0], choices=variants)
    return ap.parse_args()


def read_header(path: str) -> tuple[int, int, int]:
    with open(path, "rb") as f:
        n, d, L = (int(t) for t in f.readline().split())
    return n, d, L


def read_xc(path: str, *, labels_as: str = "csr"):
    """``(X csr float32, Y)`` from an XC file; Y is CSR float32 or a list of int lists."""
    from sklearn.datasets import load_svmlight_file

    n, d, L = read_header(path)
    with open(path, "rb") as f:
        f.readline()
        X, y = load_svmlight_file(f, n_features=d, multilabel=True, zero_based=True,
                                  dtype=np.float32)
    if X.shape[0] != n:
        raise SystemExit(f"{path}: header says {n} rows, read {X.shape[0]}")
    lists = [[int(v) for v in row] for row in y]
    if labels_as == "list":
        return X.tocsr(), lists
    indptr = np.zeros(n + 1, np.int64)
    indptr[1:] = np.cumsum([len(r) for r in lists])
    indices = np.fromiter((v for r in lists for v in r), np.int64, count=int(indptr[-1]))
    Y = sp.csr_matrix((np.ones(indices.size, np.float32), indices, indptr), shape=(n, L))
    Y.sort_indices()
    return X.tocsr(), Y


def topk_rows(rows, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrays (n, k) from per-row lists of (label, score), sorted best first, -1 padded."""
    n = len(rows)
    labels = np.full((n, k), -1, np.int64)
    scores = np.zeros((n, k), np.float32)
    for i, row in enumerate(rows):
        row = sorted(row, key=lambda p: (-p[1], p[0]))[:k]
        for j, (lab, s) in enumerate(row):
            labels[i, j] = lab
            scores[i, j] = s
    return labels, scores


def topk_csr(S: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrays (n, k) of the k largest stored entries of each row of a CSR score matrix."""
    S = S.tocsr()
    rows = []
    for i in range(S.shape[0]):
        a, b = S.indptr[i], S.indptr[i + 1]
        rows.append(list(zip(S.indices[a:b].tolist(), S.data[a:b].tolist())))
    return topk_rows(rows, k)


def topk_dense(S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrays (n, k) of the k largest entries of each row of a dense score block, best
    first; ties broken by the smaller label id (as labelwise.metrics ranks them)."""
    n, L = S.shape
    k = min(k, L)
    part = np.argpartition(-S, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(S, part, axis=1).min(axis=1)
    rows, cols = np.nonzero(S >= kth[:, None])  # every entry tied with the k-th is a candidate
    vals = S[rows, cols]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(n))
    take = starts[:, None] + np.arange(k)[None, :]
    return cols[take].astype(np.int64), vals[take].astype(np.float32)


def _maxrss_mb() -> float:
    """This process's peak resident set so far, MB: ``VmHWM`` of ``/proc/self/status``.

    Not ``ru_maxrss``: Linux carries ``ru_maxrss`` across ``fork`` + ``exec``, so a runner
    started by ``xmc.py`` would report at least the parent's resident size at the fork
    (~280 MB, the labels and labelwise it has loaded), hiding every runner's own peak.
    ``VmHWM`` belongs to the address space the runner got at ``exec``. ``ru_maxrss`` is the
    fallback where ``/proc`` is missing.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Clock:
    """Wall-clock phases: ``with clock("train"): ...`` records ``train_s``, the process's CPU
    time in the phase (all its threads, ``train_cpu_s``: on a loaded machine the fairer
    figure, though a runtime whose idle threads spin counts the spinning) and its peak RSS
    so far, ``maxrss_after_train_mb`` (so a phase's share of the peak can be told)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def __call__(self, name: str):
        clock = self

        class _Phase:
            def __enter__(self):
                self.t0 = time.perf_counter()
                self.c0 = time.process_time()

            def __exit__(self, *exc):
                clock.times[f"{name}_s"] = time.perf_counter() - self.t0
                clock.times[f"{name}_cpu_s"] = time.process_time() - self.c0
                clock.times[f"maxrss_after_{name}_mb"] = _maxrss_mb()

        return _Phase()


def write_result(out: str, labels: np.ndarray, scores: np.ndarray, clock: Clock,
                 params: dict, version: str) -> None:
    np.savez(out + ".npz", labels=labels, scores=scores)
    tmp = out + ".json.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dict(clock.times, params=params, version=version,
                       vm_hwm_mb=_maxrss_mb()), f, indent=1)
    os.replace(tmp, out + ".json")
