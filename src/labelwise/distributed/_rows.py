"""Worker-side functions of partitioned training (:mod:`labelwise.distributed.partitions`).

Every function here runs on the Dask worker that holds (or reads) one partition of rows and
returns only counts, label-sized statistics or feature-sized sums; the rows themselves stay
in the worker's memory as the result of :func:`load_partition` (a :class:`RowPart`). Like
:mod:`._tasks`, this module imports without dask, so a worker imports it by name.

Primal sums for the distributed Newton solver (:mod:`._newton`). For a problem with
training rows ``R`` (local ids into the partition), targets ``y`` (``R x m``, +1/-1) and
weights ``W`` (``F + 1 x m``: the problem's ``F`` features, then the bias weight), the margins
are ``z = X_R[:, feats] W[:F] + bias W[F]`` and, per column ``j``::

    squared hinge: loss = sum max(0, 1 - y z)^2,  dloss/dz = -2 y max(0, 1 - y z),
                   curvature 2 [y z < 1]
    logistic:      loss = sum log(1 + exp(-y z)), dloss/dz = -y sigmoid(-y z),
                   curvature sigmoid(y z) sigmoid(-y z)

:func:`eval_sums` returns ``(loss (m,), X~' dloss/dz (F+1, m))`` and keeps the curvature on
the worker (in the worker's :class:`Problem`); :func:`hv_sums` returns ``X~' (D * (X~ V))`` for a
direction ``V``. The client adds these over partitions in partition order, so the sums do
not depend on which worker holds which partition or how many workers there are.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError

__all__ = ["RowPart", "range_bytes", "scan_xc", "load_xc", "read_table_part", "char_choice",
           "text_counts",
           "load_table", "finish", "prepare", "restrict", "eval_sums", "hv_sums", "table_shape",
           "label_sums", "pifa_sums", "positives"]


def _where(spec: tuple) -> str:
    path, start, end = spec[0], spec[1], spec[2]
    return f"{path}[bytes {start}:{end}]"


# ------------------------------------------------------------------ XC / LIBSVM byte ranges
def range_bytes(path: str, start: int, end: int, header: bool) -> np.ndarray:
    """The complete lines of ``path`` that *begin* in bytes ``[start, end)`` (a line that
    starts before ``start`` belongs to the range before; the line running past ``end`` is
    read to its end), without the XC header line when ``header`` and ``start == 0``."""
    with open(path, "rb") as f:
        if f.read(2) == b"\x1f\x8b":
            raise DataFormatError("gzip files cannot be split by bytes on workers; decompress "
                                  "them, or give one uncompressed file per partition",
                                  path=str(path))
        if start == 0:
            f.seek(0)
            if header:
                f.readline()
        else:
            f.seek(start - 1)
            if f.read(1) != b"\n":
                f.readline()  # the line that began before start
        pos = f.tell()
        if pos >= end:
            return np.zeros(0, np.uint8)
        chunk = f.read(end - pos)
        if chunk and not chunk.endswith(b"\n"):
            chunk += f.readline()
    return np.frombuffer(bytearray(chunk), np.uint8)


_warm = [False]


def warm() -> None:
    """Run the later passes' functions once on a tiny input (in pass 1), so the compiled
    kernels and modules they load are part of the worker's memory in use that the memory
    check adds to the estimate for the partitions."""
    if _warm[0]:
        return
    from ..io import _xc_kernels as K

    buf = np.frombuffer(bytearray(b"0 0:1\n"), np.uint8)
    K.scan(buf, 0, buf.size)
    a = [np.zeros(2, np.int32), np.zeros(2, np.float32), np.zeros(3, np.int32),
         np.zeros(3, np.int64), np.zeros(3, np.int64)]
    K.parse_lines(buf, 0, buf.size, 1, *a[:3], a[3], a[4], np.zeros(4, np.int64),
                  np.zeros(3, np.int64))
    one = sp.csr_matrix(np.ones((2, 2), np.float32))
    part = prepare(RowPart(one, sp.csr_matrix(np.ones((2, 1), np.float32))), "l2")
    pifa_sums(part)
    for loss in (0, 1):
        probs = restrict(part, [(None, [np.array([0])])], [np.arange(2)])
        eval_sums(probs, [np.zeros((3, 1))], loss, 1.0)
        hv_sums(probs, [np.ones((3, 1))], 1.0)
    _warm[0] = True


def scan_xc(spec: tuple) -> dict[str, int]:
    """Counts of one byte range (no parsing): rows, feature entries, an upper bound on label
    entries, bytes; what the memory estimate needs before any row is built."""
    from ..io import _xc_kernels as K

    path, start, end, header = spec
    buf = range_bytes(path, start, end, header)
    _, n_nl, n_colon, n_comma = K.scan(buf, 0, buf.size)
    rows = int(n_nl) + (1 if buf.size and buf[-1] != 10 else 0)
    warm()
    return {"rows": rows, "nnz": int(n_colon), "label_bound": int(n_comma) + rows,
            "bytes": int(buf.size)}


@dataclass
class RowPart:
    """One partition of rows, held by the worker that read it."""

    X: Any  # CSR float32 (rows, n_features), or a list of texts before the transform
    Y: sp.csr_matrix | None  # (rows, n_labels) 0/1 float32
    stats: dict[str, Any] = field(default_factory=dict)
    Xn: sp.csr_matrix | None = None  # the rows as the model trains on them (normalised)
    Yc: sp.csc_matrix | None = None


def load_xc(spec: tuple) -> RowPart:
    """Parse one byte range (XC / LIBSVM rows) into raw arrays kept on this worker; ``stats``
    says what the client needs to agree on the index base and shapes."""
    from ..io import _xc_kernels as K
    from ..io.xc import _kernel_error

    path, start, end, header = spec
    buf = range_bytes(path, start, end, header)
    _, n_nl, n_colon, n_comma = K.scan(buf, 0, buf.size)
    x_ind = np.empty(n_colon, np.int32)
    x_val = np.empty(n_colon, np.float32)
    y_ind = np.empty(n_comma + n_nl + 1, np.int32)
    x_ptr = np.zeros(n_nl + 2, np.int64)
    y_ptr = np.zeros(n_nl + 2, np.int64)
    state = np.zeros(4, np.int64)
    err = np.zeros(3, np.int64)
    code = K.parse_lines(buf, 0, buf.size, 1, x_ind, x_val, x_ptr, y_ind, y_ptr, state, err)
    if code != K.OK:
        e = _kernel_error(code, err, buf, buf.size, _where(spec))
        raise DataFormatError(f"{e.reason} (line numbers count from the range's first line)",
                              path=e.path, line=e.line)
    n, nnz, nlab = (int(v) for v in state[:3])
    del buf
    raw = (x_ind[:nnz], x_val[:nnz], x_ptr[:n + 1].copy(), y_ind[:nlab], y_ptr[:n + 1].copy())
    stats = {"rows": n, "nnz": nnz, "underflows": int(state[3]),
             "min_index": int(x_ind[:nnz].min()) if nnz else -1,
             "max_index": int(x_ind[:nnz].max()) if nnz else -1,
             "max_label": int(y_ind[:nlab].max()) if nlab else -1, "where": _where(spec)}
    return RowPart(raw, None, stats)


def finish(part: RowPart, base: int, n_features: int, n_labels: int) -> RowPart:
    """Turn raw XC arrays into CSR X and Y with the shapes all partitions agree on."""
    x_ind, x_val, x_ptr, y_ind, y_ptr = part.X
    where = part.stats["where"]
    if base == 1 and x_ind.size:
        np.subtract(x_ind, 1, out=x_ind)
    if x_ind.size and (int(x_ind.min()) < 0 or int(x_ind.max()) >= n_features):
        raise DataFormatError(f"a feature index outside 0..{n_features - 1} (index base {base})",
                              path=where)
    if y_ind.size and int(y_ind.max()) >= n_labels:
        raise DataFormatError(f"label id {int(y_ind.max())} >= n_labels {n_labels}", path=where)
    n = x_ptr.shape[0] - 1
    X = sp.csr_matrix((x_val, x_ind, x_ptr), shape=(n, n_features))
    Y = sp.csr_matrix((np.ones(y_ind.size, np.float32), y_ind, y_ptr), shape=(n, n_labels))
    return RowPart(X, Y, dict(part.stats))


# ------------------------------------------------------------------ Parquet tables
def read_table_part(path: str, options: dict[str, Any], labels: list[str] | None
                    ) -> tuple[Any, list[str]]:
    """``read_table(path, format='parquet', ...)`` of one partition file, and the reader's
    warnings (blank rows skipped, ...) as messages, for the client to show."""
    import warnings

    from ..io.table import read_table

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = read_table(path, format="parquet", labels=labels, **options)
    return data, [f"{path}: {w.message}" for w in caught]


def char_choice(path: str, options: dict[str, Any], featurizer: Any) -> tuple:
    """The Tfidf's character n-gram range (a list or None) and the unseen-word rate it was
    chosen by, measured on this partition's texts (the first partition's, for
    ``char_ngram_range='auto'``: :mod:`labelwise.features.tfidf`). Only the choice returns."""
    from ..features.base import as_texts

    data, _ = read_table_part(path, options, None)
    if data.x_kind != "text":
        raise DataFormatError(f"expected a text column, found {data.x_kind} features",
                              path=path)
    rng, rate = featurizer._char_range(as_texts(data.X))
    return (None if rng is None else list(rng)), rate


def text_counts(path: str, options: dict[str, Any], featurizer: Any,
                char_range: Any = None) -> dict[str, Any]:
    """Pass 1 over one text partition: per tf-idf block (words, and characters when
    ``char_range`` is a range), the number of documents holding each term (and each term's
    total count, used when ``max_features`` is set); the label names in first-seen order; the
    row count. Counts only: the texts are dropped here."""
    from ..features.base import as_texts

    data, said = read_table_part(path, options, None)
    if data.x_kind != "text":
        raise DataFormatError(f"expected a text column, found {data.x_kind} features",
                              path=path)
    texts = as_texts(data.X)
    blocks = {}
    for name, analyzer, rng in featurizer._blocks(char_range):
        analyze = featurizer._vectorizer(analyzer, rng).build_analyzer()
        df: Counter = Counter()
        tf: Counter | None = Counter() if featurizer.max_features is not None else None
        for doc in texts:
            terms = analyze(doc)
            df.update(set(terms))
            if tf is not None:
                tf.update(terms)
        blocks[name] = (dict(df), None if tf is None else dict(tf))
    warm()
    return {"rows": len(texts), "labels": list(data.labels.names), "blocks": blocks,
            "bytes": os.path.getsize(path), "label_nnz": int(data.Y.nnz), "warnings": said}


def load_table(path: str, options: dict[str, Any], labels: list[str], featurizer: Any,
               n_features: int | None) -> RowPart:
    """Pass 2: read one Parquet partition with the agreed label order and turn it into CSR
    features here (texts through the fitted ``featurizer``; numeric features as CSR, padded
    to the agreed ``n_features``)."""
    data, _ = read_table_part(path, options, labels)  # pass 1 reported its warnings
    if featurizer is not None:
        X = featurizer.transform(data.X)
    else:
        X = sp.csr_matrix(data.X, dtype=np.float32)
        if X.shape[1] > n_features:
            raise DataFormatError(f"{X.shape[1]} feature columns, more than the {n_features} "
                                  "the partitions agreed on", path=path)
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_features))
    Y = sp.csr_matrix(data.Y, dtype=np.float32)
    return RowPart(X, Y, {"rows": X.shape[0], "nnz": int(X.nnz), "where": path})


def table_shape(path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Pass 1 over one numeric-feature partition: rows, columns, non-zero entries and label
    names."""
    data, said = read_table_part(path, options, None)
    if data.x_kind == "text":
        raise DataFormatError("expected feature columns, found texts (give a featurizer)",
                              path=path)
    warm()
    return {"rows": int(data.n_samples), "n_features": int(data.X.shape[1]),
            "nnz": int(sp.csr_matrix(data.X).nnz), "labels": list(data.labels.names),
            "bytes": os.path.getsize(path), "label_nnz": int(data.Y.nnz), "warnings": said}


# ------------------------------------------------------------------ training state
def prepare(part: RowPart, normalize: str | None) -> RowPart:
    """The rows as the model trains on them (l2-normalised when asked) and Y by columns;
    the raw X is dropped (the client never needs it again)."""
    from ..models._tree_build import l2_normalize_rows

    X = sp.csr_matrix(part.X)
    X.sort_indices()
    Xn = l2_normalize_rows(X) if normalize == "l2" else X
    Yc = sp.csc_matrix(part.Y)
    Yc.sort_indices()
    return RowPart(None, part.Y, dict(part.stats), Xn, Yc)


def positives(part: RowPart) -> dict[str, Any]:
    """Per-label positive counts and the stored entries of the training rows."""
    return {"positives": np.diff(part.Yc.indptr).astype(np.int64),
            "rows": int(part.Xn.shape[0]), "nnz": int(part.Xn.nnz)}


def pifa_sums(part: RowPart) -> sp.csr_matrix:
    """``Y_k' X_k`` (n_labels, n_features) of this partition: label-sized sums, no rows."""
    from ..models._tree_build import pifa_rows

    return pifa_rows(part.Xn, part.Yc, 1)


def _rows_of(part: RowPart, labels: np.ndarray | None) -> np.ndarray:
    if labels is None:
        return np.arange(part.Xn.shape[0], dtype=np.int64)
    Yc = part.Yc
    if labels.size == 0:
        return np.zeros(0, np.int64)
    return np.unique(np.concatenate([Yc.indices[Yc.indptr[lab]:Yc.indptr[lab + 1]]
                                     for lab in labels])).astype(np.int64)


def label_sums(part: RowPart, problems: list[tuple]) -> list[tuple[int, np.ndarray]]:
    """Per problem ``(row_labels, targets)``: this partition's training row count and the
    features those rows use (ascending): what the client needs to size each problem."""
    out = []
    for row_labels, _targets in problems:
        rows = _rows_of(part, row_labels)
        sub = part.Xn[rows]
        out.append((int(rows.shape[0]), np.unique(sub.indices).astype(np.int64)))
    return out


@dataclass
class Problem:
    """One problem's rows on this worker: ``X`` (rows x F, local feature ids), targets, and
    the curvature at the weights last evaluated (kept here for the CG rounds)."""

    X: sp.csr_matrix
    y: np.ndarray  # (rows, m) float64 +1/-1
    D: np.ndarray | None = None


def restrict(part: RowPart, problems: list[tuple], feats: list[np.ndarray]) -> list[Problem]:
    """The rows, local feature columns and targets of each problem, kept on this worker for
    the solver's rounds. ``problems[p] = (row_labels | None, [labels of classifier j])``.
    Problems over all rows with the same features (OneVsRest's blocks) share one X."""
    out: list[Problem] = []
    every: list[tuple[np.ndarray, sp.csr_matrix]] = []  # problems over all rows: one X
    for (row_labels, targets), f in zip(problems, feats, strict=True):
        rows = _rows_of(part, row_labels)
        same = [Xs for g, Xs in every if row_labels is None and np.array_equal(g, f)]
        if same:
            Xs = same[0]
        else:
            sub = part.Xn[rows]
            loc = np.searchsorted(f, sub.indices)
            Xs = sp.csr_matrix((sub.data, loc.astype(np.int32), sub.indptr),
                               shape=(rows.shape[0], f.shape[0]))
            if row_labels is None:
                every.append((f, Xs))
        y = -np.ones((rows.shape[0], len(targets)), np.float64)
        for j, labs in enumerate(targets):
            pos = _rows_of(part, np.asarray(labs, np.int64))
            y[np.searchsorted(rows, pos), j] = 1.0
        out.append(Problem(Xs, y))
    return out


def _margins(P: Problem, W: np.ndarray, bias: float) -> np.ndarray:
    return np.asarray(P.X @ W[:-1]) + bias * W[-1][None, :]


def _xt(P: Problem, A: np.ndarray, bias: float) -> np.ndarray:
    """``X~' A`` with the bias row last, (F + 1, m)."""
    out = np.empty((P.X.shape[1] + 1, A.shape[1]), np.float64)
    out[:-1] = np.asarray(P.X.T @ A)
    out[-1] = bias * A.sum(axis=0)
    return out


def eval_sums(probs: list[Problem], Ws: list[np.ndarray], loss: int, bias: float
              ) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Loss sums and gradient sums of each problem at ``Ws``; the curvature stays here, in
    the worker's Problem (the client's line search ends on the weights it accepts, so the
    CG rounds that follow use the curvature at the accepted weights)."""
    out = []
    for P, W in zip(probs, Ws, strict=True):
        P.D = None
        if W is None:  # problem already solved: nothing to do
            out.append(None)
            continue
        yz = P.y * _margins(P, W, bias)
        if loss == 0:
            slack = np.maximum(0.0, 1.0 - yz)
            value = np.sum(slack * slack, axis=0)
            dz = -2.0 * P.y * slack
            P.D = 2.0 * (yz < 1.0)
        else:
            value = np.sum(np.logaddexp(0.0, -yz), axis=0)
            s = 0.5 * (1.0 + np.tanh(-0.5 * yz))  # sigmoid(-yz), overflow-free
            dz = -P.y * s
            P.D = s * (1.0 - s)
        out.append((value, _xt(P, dz, bias)))
    return out


def hv_sums(probs: list[Problem], Vs: list[np.ndarray], bias: float) -> list:
    """``X~' (D * (X~ V))`` per problem (None where ``V`` is None)."""
    out = []
    for P, V in zip(probs, Vs, strict=True):
        out.append(None if V is None else _xt(P, P.D * _margins(P, V, bias), bias))
    return out
