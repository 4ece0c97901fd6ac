"""``OneVsRest``: one L2-regularised linear classifier per label, trained by dual coordinate
descent, with weight pruning so that the model stays sparse.

For label ``j`` the model solves (liblinear's ``-s 1`` / ``-s 7`` problems)::

    min_w  0.5 |w|^2 + C sum_i loss(y_ij * w.[x_i, bias])      y_ij in {+1, -1}

with ``loss(m) = max(0, 1 - m)^2`` (``loss="squared_hinge"``) or ``log(1 + exp(-m))``
(``loss="logistic"``), by the DCD kernels of :mod:`labelwise.models._dcd`. The bias is a
constant extra feature of value ``bias`` regularised like the others, exactly as liblinear
(and scikit-learn's ``LinearSVC(intercept_scaling=bias)``) do; ``bias=0`` fits no intercept.
Labels are trained in chunks by a pool of ``n_threads`` threads calling nogil numba kernels
over one shared CSR copy of X. With at least 8 labels, whenever a block of labels fits in
memory (:func:`lockstep_width`; every MULAN set of 8 or more labels does, from yeast's 14 to
corel5k's 374), a chunk's labels are solved in lockstep
(:func:`labelwise.models._dcd.sq_hinge_block`, :func:`labelwise.models._dcd.logistic_block`):
every epoch visits the rows in one shuffled order shared by the labels, so a row is read
once per epoch for all of them and its margins and updates run over the labels with SIMD.
With the squared hinge that is 2-10x less time than label by label (yeast 35 -> 11 ms,
enron 76 -> 12 ms, bibtex 662 -> 126 ms, one thread), for the same problems solved to the
same tolerance; the label by label solver shrinks its set of rows, the block does not.
Otherwise (fewer labels, or rows and features too many for a block) each label is solved
alone, its row order seeded from ``random_state`` and the label id. Either way a label's
weights do not depend on ``n_threads`` or on which other labels share its chunk.

Dense features (at least half of X's values stored, the solver's arrays within
``NEWTON_BYTES``, and with the squared hinge fewer labels than a full lockstep block of 64:
:func:`labelwise.models._newton.uses_newton`) go instead to a primal
Newton solver in numpy (:mod:`labelwise.models._newton`): every Newton step's conjugate
gradients are matrix products over all labels at once (BLAS), and no numba kernel is
loaded, so a fresh process pays no kernel start-up. It solves the same problems (objectives
within 1.4e-3 of the DCD's at the default ``tol``, lower on most labels), about 2-4x faster on
emotions, scene and yeast, and deterministically (``random_state`` plays no part). A
label's Newton result depends, up to the matrix products' rounding, on the labels solved
beside it, so the solve is one block of all labels (``NEWTON``), also on Dask (one task: the
same model as locally). The DCD still serves sparse X, the squared hinge from 64 labels,
and an explicit ``lockstep`` choice.

Rows: with ``normalize="l2"`` (the default, as in ``LabelTree``, and the preprocessing that
Parabel, Bonsai, napkinXC and PECOS apply to their features) every row of X is scaled to unit
length at fit and at predict; on raw bag-of-words counts this matters a great deal (Bibtex
P@1 52.3 without, 64.1 with). ``normalize=None`` uses X as given. Tf-idf rows are already
unit length, so for them it changes nothing. Models saved before the parameter existed
load with ``normalize=None``, the behaviour they were trained with.

Pruning: after training, feature weights with ``|w| < prune_threshold`` are set to zero (the
bias weight is never pruned). The default 0.1 is the weight threshold of Parabel, Bonsai and
omikuji (``--linear.weight_threshold 0.1``); DiSMEC uses 0.01. ``prune_threshold=0`` keeps the
exact solution. Learned state: ``coef_`` CSR float32 (n_features, n_labels), ``intercept_``
float32 (n_labels,) = bias * bias weight, ``n_iter_`` (n_labels,) DCD epochs (Newton
steps on dense features),
``labels_without_positives_`` int64 ids (trained as all-negative problems, so their margin is
negative; a warning counts them).

Scores: ``decision_function`` returns margins ``x.w + intercept``; ``predict`` thresholds them
at 0. ``predict_proba`` applies the sigmoid: for ``loss="logistic"`` that is the model's own
probability; for ``loss="squared_hinge"`` it is only a monotone map to [0, 1], *not*
calibrated (use labelwise's calibration step for probabilities).

Memory: ``estimate_memory(X, Y)`` is checked against ``memory_limit`` before training
(``"auto"``: 80% of MemAvailable); above it :class:`~labelwise.errors.ResourceLimitError`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError, ResourceLimitError
from ..progress import progress
from . import _dcd
from ._newton import FLOAT32_TOL, NEWTON_ROW_BYTES, newton_fit, uses_newton
from ._tree_build import NUMPY_NORMALIZE_MAX, l2_normalize_rows
from .base import MultiLabelModel, as_feature_matrix
from .topk import linear_topk, map_threads, resolve_n_threads

__all__ = ["OneVsRest", "fit_linear", "fit_linear_from", "available_memory"]

LOSSES = {"squared_hinge": _dcd.LOSS_SQUARED_HINGE, "logistic": _dcd.LOSS_LOGISTIC}
LOSS_NAMES = {code: name for name, code in LOSSES.items()}
#: the block width that marks a block solved by the Newton solver (module docstring): one
#: block of all labels, on one thread or in one Dask task, since a label's Newton result
#: depends, up to rounding, on the labels solved beside it
NEWTON = -1


def available_memory() -> int:
    """Bytes of memory available now: MemAvailable from /proc/meminfo, else physical RAM."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 1 << 62


#: most bytes of one lockstep block of labels (its weights, dual variables and targets)
LOCKSTEP_BYTES = 64 * 2**20
#: most labels in one lockstep block
LOCKSTEP_MAX = 64
#: fewest labels for lockstep blocks, and (squared hinge) fewest in a block of its own
#: thread: a block's gain is its SIMD over labels (8 float32 weights or 4 float64 duals a
#: vector), which fewer labels leave idle, while every block still reads every row each
#: epoch and, unlike the label by label solver, never sets rows aside (scene, 6 labels:
#: 20 ms in a block, 18 ms label by label on one thread; yeast's 14 labels in two blocks of
#: 7: 15.6 ms, in one: 13.5 ms). A logistic block spends most of its time in each label's
#: own Newton steps (scalar, a logarithm each), so its labels are split over the threads
#: down to 4 a block (yeast 14.6 -> 11.8 ms, tmc2007 269 -> 174 ms against label by label
#: on 2 threads; in one block: 16.1 and 328 ms)
LOCKSTEP_MIN = 8
LOCKSTEP_THREAD_MIN = {"squared_hinge": 16, "logistic": 4}
#: bytes a lockstep block keeps per row and label: the dual variable(s) (float64; the
#: logistic loss has a pair) and the target (uint8)
LOCKSTEP_ROW_BYTES = {"squared_hinge": 9, "logistic": 17}


def row_sq_norms(X: sp.csr_matrix, bias: float) -> np.ndarray:
    """:func:`labelwise.models._dcd.row_sq_norms` (``|x_i|^2 + bias^2``, float64), in numpy
    for up to ``NUMPY_NORMALIZE_MAX`` stored values: the same numbers (each row's squares
    added in float64 in its order after ``bias^2``, by scipy's sparse product with a vector
    of ones over a one-column matrix holding ``bias^2`` and the squares), and no kernel for
    a fresh process to link (~2 ms)."""
    if X.nnz > NUMPY_NORMALIZE_MAX:
        return _dcd.row_sq_norms(X.indptr, X.data, float(bias))
    n = X.shape[0]
    squares = np.insert(np.asarray(X.data, np.float64) ** 2, X.indptr[:-1], float(bias) ** 2)
    rows = sp.csr_matrix((squares, np.zeros(squares.size, np.int32),
                          X.indptr + np.arange(n + 1)), shape=(n, 1))
    return rows @ np.ones(1)


def lockstep_width(loss: str, n: int, d: int, L: int) -> int:
    """Labels per lockstep block for ``L`` labels over ``n`` rows and ``d`` features, or 0 to
    solve label by label: at least ``LOCKSTEP_MIN`` labels, and only when a block of 8
    labels fits in ``LOCKSTEP_BYTES`` (a label's float32 weight column and
    ``LOCKSTEP_ROW_BYTES`` per row)."""
    if L < LOCKSTEP_MIN:
        return 0
    per_label = 4 * (d + 1) + LOCKSTEP_ROW_BYTES[loss] * n
    width = min(LOCKSTEP_MAX, L, LOCKSTEP_BYTES // per_label)
    return int(width) if width >= LOCKSTEP_MIN else 0


def _pieces(labels: np.ndarray, width: int, threads: int, loss: str) -> list[np.ndarray]:
    """``labels`` cut into contiguous pieces: label by label (``width`` 0) of at most 64,
    about four a thread; in lockstep of at most ``width``, one a thread while each keeps
    ``LOCKSTEP_THREAD_MIN[loss]`` labels, and a multiple of the threads when more."""
    L = labels.shape[0]
    if not width:
        chunk = int(max(1, min(64, -(-L // (4 * threads)))))
        return [labels[a:a + chunk] for a in range(0, L, chunk)]
    count = max(1, min(threads, L // LOCKSTEP_THREAD_MIN[loss]), -(-L // width))
    if count > threads:  # as many pieces on every thread (yeast's 164 label sets: 4 of 41,
        count = -(-count // threads) * threads  # not 64 + 64 + 36 on two threads)
    return [piece for piece in np.array_split(labels, count) if piece.size]


def fit_linear(X: sp.csr_matrix, Y: sp.csr_matrix, *, loss: str = "squared_hinge",
               C: float = 1.0, bias: float = 1.0, tol: float = 0.1, max_iter: int = 1000,
               prune_threshold: float = 0.1, n_threads: int | None = None,
               seed: int = 0, runner: Any = None,
               lockstep: bool | None = None) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Train one binary linear classifier per column of Y; the engine behind OneVsRest.

    X: canonical CSR float32 (n_samples, n_features) (see ``as_feature_matrix``); Y: CSR 0/1
    (n_samples, n_labels). Returns ``(coef, intercept, n_iter)``: coef CSR float32
    (n_features, n_labels) after pruning, intercept float32 (n_labels,), n_iter int32.
    Reusable by other families (a label tree trains its nodes with it). ``runner``: an
    object whose ``map_label_blocks(data, n_labels, params)`` returns the results of
    ``train_label_block`` over all labels in label order (``labelwise.distributed``).
    ``lockstep``: solve the labels in lockstep blocks (module docstring); None chooses by
    :func:`lockstep_width`, after sending dense features to the Newton solver (``NEWTON``:
    all labels in one block, one thread or one Dask task); True or False keeps the DCD.
    """
    n, d = X.shape
    L = Y.shape[1]
    Yc = sp.csc_matrix(Y)
    Yc.sort_indices()
    y_indptr = Yc.indptr.astype(np.int64)
    y_indices = Yc.indices.astype(np.int64)
    threads = resolve_n_threads(n_threads)
    if lockstep is None and uses_newton(X.nnz, n, d, L, loss):
        width, sq = NEWTON, None
        label_chunks = [np.arange(L, dtype=np.int64)]
    else:
        width = _lockstep(lockstep, loss, n, d, L)
        sq = row_sq_norms(X, bias)
        label_chunks = _pieces(np.arange(L, dtype=np.int64), width, threads, loss)
    params = (LOSSES[loss], float(C), float(bias), float(tol), int(max_iter),
              float(prune_threshold), int(seed), int(d), int(width))
    if runner is not None:  # another engine (labelwise.distributed) runs the same blocks
        results = runner.map_label_blocks((X, sq, y_indptr, y_indices), L, params)
        return assemble_label_blocks(results, L, d, bias)

    bar = progress(L, "training labels", unit="label")

    def run(labels: np.ndarray):
        out = train_label_block((X, sq, y_indptr, y_indices), labels, params)
        bar.update(len(labels))
        return out

    with bar:
        results = map_threads(run, label_chunks, threads)
    return assemble_label_blocks(results, L, d, bias)


def newton_weights(X: sp.csr_matrix | np.ndarray, Y: np.ndarray, *, loss: str,
                   C: float | np.ndarray, bias: float, tol: float, max_iter: int,
                   mask: np.ndarray | None = None, centre: np.ndarray | None = None,
                   centre_bias: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The labels ``Y`` (bool (n, L)) solved by the primal Newton solver of
    :mod:`labelwise.models._newton` over X (CSR or dense, (n, d)) with a constant ``bias``
    feature: ``(W float32 (d, L), bias weights float64 (L,), n_iter int32 (L,) Newton
    steps)``, the unpruned weights of the DCD path. ``C``: one value or one per label.
    ``mask`` (bool (d, L)): the features each label may use (the bias always). ``centre``
    (dense (d, L)) and ``centre_bias`` (L,): the warm start's proximal problem."""
    n, d = X.shape
    L = Y.shape[1]
    Xd = np.empty((n, d + 1 if bias else d))
    Xd[:, :d] = X.toarray() if sp.issparse(X) else X
    if bias:
        Xd[:, d] = bias
        if mask is not None:
            mask = np.vstack([mask, np.ones((1, L), bool)])
        if centre is not None:
            centre = np.vstack([centre, np.asarray(centre_bias, np.float64)[None, :]])
    Cs = np.broadcast_to(np.asarray(C, np.float64), (L,))
    W, n_iter = newton_fit(Xd, Y, Cs, loss, float(tol), int(max_iter), mask, centre)
    return W[:d].astype(np.float32), W[d] if bias else np.zeros(L), n_iter.astype(np.int32)


def newton_block(X: sp.csr_matrix, y_indptr: np.ndarray, y_indices: np.ndarray,
                 labels: np.ndarray, *, loss: str, C: float | np.ndarray, bias: float,
                 tol: float, max_iter: int, prune_threshold: float,
                 centre: np.ndarray | None = None, centre_bias: np.ndarray | None = None
                 ) -> tuple:
    """The labels ``labels`` (ids into the CSC label matrix ``y_indptr/y_indices``) by
    :func:`newton_weights`, in :func:`labelwise.models._dcd.train_chunk`'s layout and
    pruned as it prunes (float32 weights, zeros and ``|w| < prune_threshold`` dropped, the
    bias weight kept): what ``train_label_block`` returns for a ``NEWTON`` block."""
    n = X.shape[0]
    Y = np.zeros((n, labels.shape[0]), bool)
    for j, lab in enumerate(labels):
        Y[y_indices[y_indptr[lab]:y_indptr[lab + 1]], j] = True
    w, bias_w, n_iter = newton_weights(X, Y, loss=loss, C=C, bias=bias, tol=tol,
                                       max_iter=max_iter, centre=centre,
                                       centre_bias=centre_bias)
    w[np.abs(w) < prune_threshold] = 0.0
    kept = sp.csc_matrix(w)
    kept.sort_indices()
    return (np.diff(kept.indptr).astype(np.int64), kept.indices.astype(np.int32),
            kept.data.astype(np.float32), bias_w, n_iter)


def train_label_block(data: tuple, labels: np.ndarray, params: tuple) -> tuple:
    """Train the labels ``labels`` (int64 ids) of ``fit_linear``; ``data`` is ``(X, sq_norms,
    y_indptr, y_indices)``, ``params`` the solver settings (the last: the lockstep width, 0
    for label by label). Each label's solve depends only on its own column of Y, the settings
    and its seed (label by label: derived from its id; in lockstep: the row order every
    block shares), so any split of the labels into blocks (threads here, tasks on a Dask
    cluster) gives the same weights."""
    X, sq, y_indptr, y_indices = data
    labels = np.asarray(labels, np.int64)
    loss, C, bias, tol, max_iter, prune, seed, d, width = params
    if width == NEWTON:
        return newton_block(X, y_indptr, y_indices, labels, loss=LOSS_NAMES[loss], C=C,
                            bias=bias, tol=tol, max_iter=max_iter, prune_threshold=prune)
    if not width:
        return _dcd.train_chunk(X.indptr, X.indices, X.data, sq, y_indptr, y_indices, labels,
                                loss, C, bias, tol, max_iter, prune, seed, d)
    none = np.zeros(0, np.int64)
    return _join([_dcd.train_chunk_lockstep(X.indptr, X.indices, X.data, sq, y_indptr,
                                            y_indices, piece, loss, np.full(piece.size, C),
                                            bias, tol, max_iter, prune, seed, d, none, none,
                                            np.zeros(0), np.zeros(0))
                  for piece in np.array_split(labels, max(1, -(-labels.size // width)))])


def _lockstep(lockstep: bool | None, loss: str, n: int, d: int, L: int) -> int:
    """The lockstep width ``fit_linear`` uses (0: label by label)."""
    if lockstep is None:
        return lockstep_width(loss, n, d, L)
    return max(1, min(LOCKSTEP_MAX, L)) if lockstep else 0


def _join(results: list[tuple]) -> tuple:
    """One ``train_chunk`` result from the results of consecutive pieces of its labels."""
    if len(results) == 1:
        return results[0]
    return tuple(np.concatenate(parts) for parts in zip(*results, strict=True))


def fit_linear_from(X: sp.csr_matrix, Y: sp.csr_matrix, centre: sp.spmatrix,
                    centre_bias: np.ndarray, C: np.ndarray, *, loss: str = "squared_hinge",
                    bias: float = 1.0, tol: float = 0.1, max_iter: int = 1000,
                    prune_threshold: float = 0.1, n_threads: int | None = None,
                    seed: int = 0,
                    lockstep: bool | None = None) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """:func:`fit_linear` warm-started: label ``j`` solves ``min_w 0.5 |w - c_j|^2 + C[j] sum_i
    loss(y_ij w.[x_i, bias])`` from ``w = c_j`` (the proximal problem of
    :func:`labelwise.models._dcd.train_chunk_from`), ``c_j`` being column ``j`` of ``centre``
    (n_features, n_labels) with bias weight ``centre_bias[j]``, and ``C`` one value per label.
    Returns ``(coef, intercept, n_iter)`` as fit_linear does. With a zero centre and every
    ``C[j]`` equal to fit_linear's C it gives fit_linear's result (the same solver and
    ``lockstep`` choice, made by the same rules; on dense features the Newton solver, started
    from the centre)."""
    n, d = X.shape
    L = Y.shape[1]
    Yc = sp.csc_matrix(Y)
    Yc.sort_indices()
    y_indptr = Yc.indptr.astype(np.int64)
    y_indices = Yc.indices.astype(np.int64)
    Cc = sp.csc_matrix(centre, dtype=np.float64)
    Cc.sort_indices()
    if Cc.shape != (d, L) or np.shape(centre_bias) != (L,) or np.shape(C) != (L,):
        raise ValueError(f"centre must be ({d}, {L}), centre_bias and C ({L},)")
    Cs = np.asarray(C, np.float64)
    if lockstep is None and uses_newton(X.nnz, n, d, L, loss):
        block = newton_block(X, y_indptr, y_indices, np.arange(L, dtype=np.int64), loss=loss,
                             C=Cs, bias=bias, tol=tol, max_iter=max_iter,
                             prune_threshold=prune_threshold, centre=Cc.toarray(),
                             centre_bias=centre_bias)
        return assemble_label_blocks([block], L, d, bias)
    c_args = (Cc.indptr.astype(np.int64), Cc.indices.astype(np.int64), Cc.data,
              np.asarray(centre_bias, np.float64))
    sq = row_sq_norms(X, bias)
    threads = resolve_n_threads(n_threads)
    width = _lockstep(lockstep, loss, n, d, L)
    label_chunks = _pieces(np.arange(L, dtype=np.int64), width, threads, loss)

    def run(labels: np.ndarray):
        if width:
            return _dcd.train_chunk_lockstep(X.indptr, X.indices, X.data, sq, y_indptr,
                                             y_indices, labels, LOSSES[loss], Cs[labels],
                                             float(bias),
                                             float(tol), int(max_iter),
                                             float(prune_threshold), int(seed), int(d),
                                             *c_args)
        return _dcd.train_chunk_from(X.indptr, X.indices, X.data, sq, y_indptr, y_indices,
                                     labels, LOSSES[loss], Cs, float(bias), float(tol),
                                     int(max_iter), float(prune_threshold), int(seed), int(d),
                                     *c_args)

    return assemble_label_blocks(map_threads(run, label_chunks, threads), L, d, bias)


def assemble_label_blocks(results: list, L: int, d: int,
                          bias: float) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """``(coef, intercept, n_iter)`` from ``train_label_block`` results in label order."""
    counts = np.concatenate([r[0] for r in results]) if results else np.zeros(0, np.int64)
    indptr = np.zeros(L + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    feat = np.concatenate([r[1] for r in results])
    vals = np.concatenate([r[2] for r in results])
    bias_w = np.concatenate([r[3] for r in results])
    n_iter = np.concatenate([r[4] for r in results]).astype(np.int32)
    W = sp.csc_matrix((vals, feat, indptr), shape=(d, L))
    coef = sp.csr_matrix(W.tocsr())
    coef.sort_indices()
    intercept = (bias_w * bias).astype(np.float32)
    return coef, intercept, n_iter


def check_number(model: Any, name: str, low: float, *, strict: bool) -> None:
    """Raise ValueError unless parameter ``name`` of ``model`` is a finite int or float
    above ``low`` (``strict``) or at least ``low``."""
    v = getattr(model, name)
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) \
            or (v <= low if strict else v < low):
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {rel} {low}, got {v!r}")


def check_linear_params(model: Any) -> None:
    """Raise ValueError for a bad parameter shared by the linear families (OneVsRest and the
    label tree's node classifiers): loss, C, bias, tol, prune_threshold, normalize,
    n_threads, random_state, memory_limit."""
    if model.loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {model.loss!r}")
    if model.normalize not in ("l2", None):
        raise ValueError(f"normalize must be 'l2' or None, got {model.normalize!r}")
    for name, strict in (("C", True), ("bias", False), ("tol", True),
                         ("prune_threshold", False)):
        check_number(model, name, 0.0, strict=strict)
    nt = model.n_threads
    if nt is not None and (isinstance(nt, bool) or not isinstance(nt, int) or nt < 1):
        raise ValueError(f"n_threads must be None or a positive int, got {nt!r}")
    rs = model.random_state
    if rs is not None and (isinstance(rs, bool) or not isinstance(rs, int | np.integer)
                           or not 0 <= rs < 2**32):
        raise ValueError(f"random_state must be None or an int in [0, 2**32), got {rs!r}")
    ml = model.memory_limit
    if not (ml is None or ml == "auto" or (isinstance(ml, int | float)
                                           and not isinstance(ml, bool) and ml > 0)):
        raise ValueError(f"memory_limit must be 'auto', None or a positive number of bytes, "
                         f"got {ml!r}")


def memory_limit_bytes(memory_limit: int | float | str | None) -> float | None:
    """The byte limit of a ``memory_limit`` parameter: None, 80% of available memory for
    'auto', else the number itself."""
    if memory_limit is None:
        return None
    if memory_limit == "auto":
        return 0.8 * available_memory()
    return float(memory_limit)


class OneVsRest(MultiLabelModel):
    """One-vs-rest L2-regularised linear classifiers (see the module docstring).

    Parameters
    ----------
    loss: "squared_hinge" (L2-loss SVM, liblinear -s 1) or "logistic" (liblinear -s 7).
    C: inverse regularisation strength (> 0); the default 0.5 is LabelTree's (on unit rows
        it beat 1.0 on Bibtex, Delicious and cooking).
    bias: value of the constant bias feature (>= 0; 0 = no intercept).
    tol: DCD stopping tolerance; 0.1 is liblinear's default for its dual solvers.
    max_iter: cap on DCD epochs per label (liblinear's default 1000); a warning counts the
        labels that reach it.
    prune_threshold: feature weights with smaller magnitude are dropped (>= 0).
    normalize: "l2" (row-normalise X, at fit and predict) or None.
    n_threads: worker threads (None = all CPUs this process may use).
    memory_limit: bytes, "auto" (80% of available memory) or None (no check).
    random_state: int seed for the per-label row shuffles (None = a fresh seed each fit).
    """

    _persist_name = "OneVsRest"
    #: the arrays a saved OneVsRest holds: name -> (dtypes, ndim) (checked on load)
    _saved_arrays = {"coef_data": (("<f4",), 1), "coef_indices": (("<i4", "<i8"), 1),
                     "coef_indptr": (("<i4", "<i8"), 1), "intercept": (("<f4",), 1),
                     "n_iter": (("<i4",), 1), "labels_without_positives": (("<i8",), 1)}
    #: manifests written before ``normalize`` existed describe unnormalised models
    _params_absent_from_old_files = {"normalize": None}

    def __init__(self, *, loss: str = "squared_hinge", C: float = 0.5, bias: float = 1.0,
                 tol: float = 0.1, max_iter: int = 1000, prune_threshold: float = 0.1,
                 normalize: str | None = "l2", n_threads: int | None = None,
                 memory_limit: int | str | None = "auto",
                 random_state: int | None = 0) -> None:
        self.loss = loss
        self.C = C
        self.bias = bias
        self.tol = tol
        self.max_iter = max_iter
        self.prune_threshold = prune_threshold
        self.normalize = normalize
        self.n_threads = n_threads
        self.memory_limit = memory_limit
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    def _validate_params(self) -> None:
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) \
                or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive int, got {self.max_iter!r}")
        check_linear_params(self)

    def _memory_limit_bytes(self) -> float | None:
        return memory_limit_bytes(self.memory_limit)

    def estimate_memory(self, X: Any, Y: Any) -> int:
        """Estimated peak bytes that ``fit(X, Y)`` allocates beyond its inputs.

        Counts the CSR float32 copy of X (when X is not already one), the label matrix in
        CSC form, per-thread DCD buffers (dense w, targets, duals, order; for a lockstep
        block its weight matrix, duals and targets, :func:`lockstep_width`) or, on dense
        features, the Newton solver's arrays (X densified twice, ``NEWTON_ROW_BYTES`` per
        row and label, twice that below its float32 tolerance), and the learned
        weights counted *unpruned* (every feature that occurs in X, for every label) times
        three (chunk buffers, their concatenation, the CSR conversion). Pruning usually makes
        the real model far smaller, so this errs on the high side.
        """
        n, d = X.shape
        L = Y.shape[1]
        nnz_x = X.nnz if sp.issparse(X) else int(np.count_nonzero(X))
        x_is_ready = sp.issparse(X) and X.format == "csr" and X.dtype == np.float32
        x_copy = 0 if x_is_ready else nnz_x * 8 + (n + 1) * 8
        if self.normalize == "l2":  # the normalised values (indices shared)
            x_copy += nnz_x * 4 + n * 8
        nnz_y = Y.nnz if sp.issparse(Y) else int(np.count_nonzero(Y))
        y_bytes = 2 * (nnz_y * 12 + (L + 1) * 8 + (n + 1) * 8)
        duals = 24 if self.loss == "logistic" else 8
        threads = resolve_n_threads(self.n_threads)
        per_thread = (d + 1) * 8 + n * (8 + 8 + duals)
        width = lockstep_width(self.loss, n, d, L)
        if width:  # the block's W, duals and targets, its row order and per-label buffers
            per_thread = (width * (4 * (d + 1) + LOCKSTEP_ROW_BYTES[self.loss] * n + 96)
                          + n * 16 + (d + 1) * 16)
        if uses_newton(nnz_x, n, d, L, self.loss):  # one solve: X dense (float64 and
            # float32), its rows x labels arrays float64 below FLOAT32_TOL (twice the bytes)
            wide = 1 if float(self.tol) >= FLOAT32_TOL else 2
            threads, per_thread = 1, n * (d + 1) * 12 + wide * NEWTON_ROW_BYTES * n * L
        if sp.issparse(X):  # the features that occur: marked, not sorted
            used = np.zeros(d, bool)
            used[X.tocsr().indices] = True
            d_used = int(np.count_nonzero(used))
        else:
            d_used = int(np.count_nonzero(np.any(np.asarray(X) != 0, axis=0)))
        weights = 3 * L * d_used * 8 + L * 24
        return int(x_copy + y_bytes + n * 8 + threads * per_thread + weights)

    # ------------------------------------------------------------------ fit / predict
    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        limit = self._memory_limit_bytes()
        if limit is not None:
            need = self.estimate_memory(X, Y)
            if need > limit:
                raise ResourceLimitError(
                    f"training needs about {need / 2**20:.1f} MiB (estimate_memory) but "
                    f"memory_limit is {limit / 2**20:.1f} MiB; raise memory_limit, use fewer "
                    "threads or a label tree")
        seed = self.random_state
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        positives = np.diff(sp.csc_matrix(Y).indptr)
        empty = np.flatnonzero(positives == 0).astype(np.int64)
        if empty.size:
            warnings.warn(
                f"{empty.size} of {Y.shape[1]} labels have no positive training example; "
                "they are trained as all-negative (see labels_without_positives_)",
                UserWarning, stacklevel=3)
        coef, intercept, n_iter = fit_linear(
            self._prepare_X(X), Y, loss=self.loss, C=self.C, bias=self.bias, tol=self.tol,
            max_iter=self.max_iter, prune_threshold=self.prune_threshold,
            n_threads=self.n_threads, seed=int(seed),
            runner=getattr(self, "_task_runner", None))
        capped = int(np.count_nonzero(n_iter >= self.max_iter))
        if capped:
            from sklearn.exceptions import ConvergenceWarning  # imported only when warning

            warnings.warn(
                f"{capped} of {Y.shape[1]} labels reached max_iter={self.max_iter} before the "
                f"DCD tolerance {self.tol}; raise max_iter or tol", ConvergenceWarning,
                stacklevel=3)
        self.coef_ = coef
        self.intercept_ = intercept
        self.n_iter_ = n_iter
        self.labels_without_positives_ = empty

    def _prepare_X(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return l2_normalize_rows(X) if self.normalize == "l2" else X

    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        return linear_topk(self._prepare_X(X), self.coef_, self.intercept_, k,
                           n_threads=self.n_threads)

    def decision_function_dense(self, X: Any) -> np.ndarray:
        """All margins as a dense float32 (n_samples, n_labels) array (small label sets)."""
        self._check_fitted()
        Xc = self._prepare_X(as_feature_matrix(X, n_features=self.n_features_in_))
        return np.asarray(Xc @ self.coef_ + self.intercept_[None, :], dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        W = self.coef_
        arrays = {
            "coef_data": np.asarray(W.data, dtype=np.float32),
            "coef_indices": np.asarray(W.indices),
            "coef_indptr": np.asarray(W.indptr, dtype=np.int64),
            "intercept": np.asarray(self.intercept_, dtype=np.float32),
            "n_iter": np.asarray(self.n_iter_, dtype=np.int32),
            "labels_without_positives": np.asarray(self.labels_without_positives_,
                                                   dtype=np.int64),
        }
        return arrays, {}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        need = ("coef_data", "coef_indices", "coef_indptr", "intercept", "n_iter",
                "labels_without_positives")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise DataFormatError(f"OneVsRest model lacks arrays: {', '.join(missing)}")
        L, d = len(self.labels_), int(self.n_features_in_)
        data, indices, indptr = (arrays["coef_data"], arrays["coef_indices"],
                                 arrays["coef_indptr"])
        if indices.dtype not in (np.int32, np.int64) or indptr.dtype not in (np.int32, np.int64):
            raise DataFormatError("OneVsRest weight indices must be int32 or int64",
                                  field="arrays")
        ok = (indptr.shape == (d + 1,) and indices.shape == data.shape
              and arrays["intercept"].shape == (L,) and arrays["n_iter"].shape == (L,)
              and int(indptr[0]) == 0 and int(indptr[-1]) == data.shape[0]
              and bool(np.all(np.diff(indptr) >= 0))
              and (indices.size == 0 or (int(indices.min()) >= 0 and int(indices.max()) < L)))
        if not ok:
            raise DataFormatError(
                f"OneVsRest arrays do not fit {d} features x {L} labels", field="arrays")
        W = sp.csr_matrix((d, L), dtype=np.float32)
        # one index dtype for both (scipy's rule); indptr is small, so it is the one cast
        W.data, W.indices = np.asarray(data), np.asarray(indices)
        W.indptr = np.asarray(indptr).astype(indices.dtype, copy=False)
        self.coef_ = W
        self.intercept_ = np.asarray(arrays["intercept"])
        self.n_iter_ = np.asarray(arrays["n_iter"])
        self.labels_without_positives_ = np.asarray(arrays["labels_without_positives"])
