"""A primal Newton solver for the linear problems of :mod:`labelwise.models.ovr` on dense
features, many labels at once, in numpy.

For every label ``j`` (a column of the 0/1 target matrix) it solves the problem the DCD
kernels of :mod:`labelwise.models._dcd` solve::

    min_w  0.5 |w|^2 + C_j sum_i loss(y_ij * w.[x_i, bias])      y_ij in {+1, -1}

(``loss(m) = max(0, 1 - m)^2`` or ``log(1 + exp(-m))``; the bias a constant feature,
regularised like the others), by Newton's method in the primal: each step solves the Newton
system ``(I + X' D X) p = -g`` by conjugate gradients (the generalised Hessian of the squared
hinge, ``D`` = 2C on the rows inside the margin, as in Keerthi & DeCoste's finite Newton
method; ``C s (1 - s)`` for the logistic loss), then minimises the objective along ``p``
(a one-dimensional Newton search, exact for the piecewise-quadratic squared hinge). Every
product with X is one matrix product over all labels still moving, so a small dense set's
work goes to BLAS instead of one row at a time (the DCD's coordinate steps cannot be batched
over rows), and no compiled kernel is loaded: a fresh process pays no numba start-up.

A label stops when its gradient norm is at most ``tol * 1e-2`` of its norm at ``w = 0``,
or when a step no longer moves its weights; with ``tol = 0.1`` (``OneVsRest``'s default)
its objective came out within 3e-4 of the DCD solution's on emotions and yeast and within
1.4e-3 on scene (one label; lower than the DCD's on most labels). The arrays of rows x labels and the conjugate gradients' products are
float32 while ``tol >= FLOAT32_TOL`` (half the memory traffic; the sums over rows are
accumulated in float64 and the gradient that stops a label is a float64 product), float64
for tighter tolerances. Each label's conjugate
gradients and search run on their own numbers (a label stops its CG when its own residual is
small), so a label's result does not depend on which labels share the call, up to the
rounding of the matrix products. Used by :func:`labelwise.models.ovr.fit_linear` where
:func:`uses_newton` says so.

When it serves (:func:`uses_newton`): dense X, and for the squared hinge fewer than 64
labels. Its cost grows with rows x labels in every step (margins, the loss's terms), the
DCD's with the stored values, and the DCD's squared-hinge steps are cheap once a lockstep
block fills its 64 labels' SIMD: on the FunCat sets' most frequent labels (cellcycle, 77
features; seq, 478) Newton took 0.3-0.5x the DCD's time at 14 labels, 0.7-0.9x at 32-48,
0.75-1.07x at 64 and 1.2-2.4x at 164-499. The DCD's logistic steps (an inner Newton
search each, with a logarithm) are dearer: there this solver took 0.3-0.7x the DCD's time
at every label count up to 499. Chosen on emotions, scene and yeast (6-14 labels), the
label bound read off cellcycle and seq, and checked on the other FunCat sets (README).
"""

from __future__ import annotations

import numpy as np

__all__ = ["uses_newton", "newton_fit", "DENSE_SHARE", "NEWTON_BYTES", "NEWTON_ROW_BYTES",
           "SQUARED_HINGE_LABELS", "FLOAT32_TOL"]

#: :func:`uses_newton`: the least share of stored values in X (dense features)
DENSE_SHARE = 0.5
#: :func:`uses_newton`: the most bytes the solver's dense arrays may take (X with its bias
#: column, and ``NEWTON_ROW_BYTES`` per row and label)
NEWTON_BYTES = 256 * 2**20
#: bytes per row and label the solver keeps at most at once (float32 at the default
#: tolerance): signs and margins (8), its scratch arrays (:class:`_Scratch`: the loss's two
#: terms, the margins' change, the products, 16), the search's column-ordered copies (12),
#: the float64 copy of one term for the gradient's product (8), and the copies made when
#: labels stop (at most 12 more); 64 leaves a margin (a test holds it to tracemalloc)
NEWTON_ROW_BYTES = 64
#: conjugate-gradient steps a Newton step may take, and the residual it stops at (relative
#: to the gradient's norm), as liblinear's trust-region Newton method
MAX_CG = 100
CG_REL = 0.1
#: the one-dimensional search along a Newton direction
MAX_SEARCH = 30
SEARCH_REL = 1e-2
#: the least ``tol`` solved with float32 inner arrays (a relative gradient of 1e-4)
FLOAT32_TOL = 1e-2
#: with the squared hinge, the labels from which the DCD's lockstep blocks are full (64
#: labels a block: ``labelwise.models.ovr.LOCKSTEP_MAX``) and faster than this solver
SQUARED_HINGE_LABELS = 64


def uses_newton(nnz: int, n: int, d: int, L: int, loss: str) -> bool:
    """Whether :func:`newton_fit` serves ``L`` labels over X of ``n`` rows, ``d`` features
    and ``nnz`` stored values: dense features (a share of at least ``DENSE_SHARE`` stored)
    whose arrays fit in ``NEWTON_BYTES``, and, with the squared hinge, fewer labels than a
    full lockstep block (``SQUARED_HINGE_LABELS``; module docstring)."""
    if n == 0 or d == 0 or L == 0:
        return False
    if loss == "squared_hinge" and L >= SQUARED_HINGE_LABELS:
        return False
    dense = nnz >= DENSE_SHARE * n * d
    return bool(dense and n * (12 * (d + 1) + NEWTON_ROW_BYTES * L) <= NEWTON_BYTES)


class _Scratch:
    """Rows x labels arrays reused through one solve: a view of the current number of label
    columns over one flat array per name, in C or Fortran order as asked. Every step of the
    solver works on arrays of rows x labels; allocated afresh, their pages went back to the
    system and were faulted in again on the next use (~1.6 us a 4 KiB page on a 2-core
    virtual machine): a third of yeast's powerset fit (a warm fit took 34 ms, 22 ms with
    glibc's allocator told to keep its memory)."""

    def __init__(self, n: int, L: int) -> None:
        self.n, self.L = n, L
        self._flat: dict[tuple[str, np.dtype], np.ndarray] = {}

    def get(self, name: str, k: int, dtype, order: str) -> np.ndarray:
        key = (name, np.dtype(dtype))
        flat = self._flat.get(key)
        if flat is None:
            flat = self._flat[key] = np.empty(self.n * self.L, dtype)
        return flat[:self.n * k].reshape((self.n, k), order=order)


def _order(*arrays: np.ndarray) -> str:
    """The order numpy gives an element-wise result of these arrays: Fortran when every one
    is in Fortran order only, else C (so a result written in place into scratch is laid out
    as numpy's own temporary would be, and the sums over it run in the same order)."""
    return "F" if all(a.flags.f_contiguous and not a.flags.c_contiguous
                      for a in arrays) else "C"


def _loss_terms(loss: str, S: np.ndarray, M: np.ndarray, C: np.ndarray,
                scratch: _Scratch) -> tuple[np.ndarray, np.ndarray]:
    """The loss's derivative in the margin (``R``, times C) and its curvature (``D``, times C)
    at margins ``M`` for signs ``S``; ``C`` (L,) broadcast over rows; all of one float
    dtype. ``R`` and ``D`` are the scratch arrays ``"R"`` and ``"D"``, in the order numpy
    would give ``S * M``."""
    ft = S.dtype.type
    one = ft(1.0)
    k, order = S.shape[1], _order(S, M)
    R, D = scratch.get("R", k, ft, order), scratch.get("D", k, ft, order)
    if loss == "squared_hinge":
        np.multiply(S, M, out=R)
        np.subtract(one, R, out=R)  # 1 - s m
        np.multiply(R > 0.0, ft(2.0) * C, out=D)
        np.maximum(R, ft(0.0), out=R)
        R *= S
        R *= ft(-2.0)
        R *= C
        return R, D
    # logistic: d/dm log(1 + exp(-s m)) = -s sigmoid(-s m); exp of the clip stays finite
    np.multiply(S, M, out=D)
    np.minimum(D, ft(80.0 if ft is np.float32 else 700.0), out=D)
    np.exp(D, out=D)
    D += one
    np.divide(one, D, out=D)  # sigmoid(-s m)
    np.multiply(D, C, out=R)
    np.subtract(one, D, out=D)
    D *= R  # the curvature C sigmoid (1 - sigmoid)
    R *= S
    np.negative(R, out=R)
    return R, D


def newton_fit(X: np.ndarray, Y: np.ndarray, C: np.ndarray, loss: str, tol: float,
               max_iter: int, mask: np.ndarray | None = None,
               centre: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Solve every column of ``Y`` (bool (n, L)) over dense ``X`` (float64 (n, d), the bias
    column included), ``C`` float64 (L,). Returns ``(W float64 (d, L), n_iter int64 (L,))``:
    the weights and the Newton steps each label took (at most ``max_iter``). ``mask`` (bool
    (d, L)): label ``j`` uses only the features where ``mask[:, j]`` is True (its other
    weights stay 0: the problem on those features alone, as a classifier chain's positions
    need). ``centre`` (float64 (d, L)): solve ``0.5 |w - c_j|^2 + C_j sum loss`` from ``w =
    c_j`` instead (the warm start of :func:`labelwise.models.ovr.fit_linear_from`); the
    gradient that stops a label is then relative to its norm at the centre."""
    n, d = X.shape
    L = Y.shape[1]
    ft = np.float32 if tol >= FLOAT32_TOL else np.float64
    Xf = X.astype(ft, copy=False)
    W = np.zeros((d, L))
    n_iter = np.zeros(L, np.int64)
    live = np.arange(L)  # the labels still moving; the arrays below hold their columns
    Cw = np.zeros((d, L)) if centre is None else np.array(centre, np.float64)
    Wl = Cw.copy()
    S = np.where(Y, ft(1.0), ft(-1.0))
    M = np.zeros((n, L), ft) if centre is None else (X @ Cw).astype(ft)  # X W
    Cl = C.astype(ft)
    Ml = None if mask is None else mask.astype(np.float64)
    scratch = _Scratch(n, L)
    g0 = None
    for _ in range(max_iter):
        k = live.size
        R, D = _loss_terms(loss, S, M, Cl, scratch)
        if R.dtype != np.float64:
            R64 = scratch.get("R64", k, np.float64, _order(R))
            np.copyto(R64, R)
            R = R64
        G = (Wl - Cw) + X.T @ R
        if Ml is not None:
            G *= Ml
        norm = np.sqrt(np.einsum("ij,ij->j", G, G))
        if g0 is None:
            g0 = norm
        keep = norm > 1e-2 * tol * g0
        if not keep.all():
            W[:, live[~keep]] = Wl[:, ~keep]
            live, g0, Cl, Wl, Cw, S, M, Ml, G, D = _columns(keep, live, g0, Cl, Wl, Cw, S, M,
                                                            Ml, G, D)
            if live.size == 0:
                break
        k = live.size
        P = _newton_direction(Xf, G, D, Ml, scratch)
        Z = np.matmul(Xf, P.astype(ft), out=scratch.get("Z", k, ft, "C"))
        t = _search(loss, Wl - Cw, P, M, Z, S, Cl, scratch)
        step = t * P
        Wl += step
        Z *= t.astype(ft)
        M += Z
        n_iter[live] += 1
        moved = np.abs(step).max(axis=0) > 1e-15 * np.abs(Wl).max(axis=0)
        if not moved.all():  # at the solution as far as this precision goes
            W[:, live[~moved]] = Wl[:, ~moved]
            live, g0, Cl, Wl, Cw, S, M, Ml = _columns(moved, live, g0, Cl, Wl, Cw, S, M, Ml)
            if live.size == 0:
                break
    W[:, live] = Wl
    return W, n_iter


def _columns(sel: np.ndarray, *arrays: np.ndarray | None) -> list[np.ndarray | None]:
    """The label columns ``sel`` (bool) of each array (per label: its last axis; None stays
    None): what :func:`newton_fit` keeps of its state when labels stop."""
    return [None if a is None else a[..., sel] for a in arrays]


def _newton_direction(X: np.ndarray, G: np.ndarray, D: np.ndarray,
                      mask: np.ndarray | None, scratch: _Scratch) -> np.ndarray:
    """``(I + X' diag(D_j) X)^-1 (-G_j)`` for every column ``j``, by conjugate gradients, each
    column stopping when its residual is ``CG_REL`` of its gradient's norm; with ``mask``
    (0/1 (d, L)) on the masked coordinates only (``G`` is masked already). The products
    with X in X's dtype."""
    P = np.zeros_like(G)
    R = -G
    Q = R.copy()
    rr = np.einsum("ij,ij->j", R, R)
    stop = CG_REL * CG_REL * rr
    on = np.arange(G.shape[1])
    for _ in range(MAX_CG):
        Qo = Q[:, on]
        XQ = np.matmul(X, Qo.astype(X.dtype, copy=False),
                       out=scratch.get("XQ", on.size, X.dtype, "C"))
        XQ *= D if on.size == D.shape[1] else D[:, on]
        H = Qo + X.T @ XQ
        if mask is not None:
            H *= mask[:, on]
        a = rr[on] / np.einsum("ij,ij->j", Qo, H)
        P[:, on] += a * Qo
        Ro = R[:, on] - a * H
        R[:, on] = Ro
        rr_new = np.einsum("ij,ij->j", Ro, Ro)
        Q[:, on] = Ro + (rr_new / rr[on]) * Qo
        rr[on] = rr_new
        on = on[rr_new > stop[on]]
        if on.size == 0:
            break
    return P


def _search(loss: str, W: np.ndarray, P: np.ndarray, M: np.ndarray, Z: np.ndarray,
            S: np.ndarray, C: np.ndarray, scratch: _Scratch) -> np.ndarray:
    """The step ``t`` (L,) minimising each column's objective along ``W + t P`` (``W``: the
    weights less their centre; margins ``M + t Z``, in the inner dtype): one-dimensional
    Newton steps from ``t = 1``, kept positive, until a step changes ``t`` by less than
    ``SEARCH_REL`` of it."""
    ft = M.dtype.type
    wp = np.einsum("ij,ij->j", W, P)
    pp = np.einsum("ij,ij->j", P, P)
    t = np.ones(W.shape[1])
    on = np.arange(W.shape[1])
    # the columns still searching, in Fortran order (each column's sums below run down
    # contiguous memory), copied again only when one stops
    k = on.size
    So, Mo, Zo = (scratch.get(name, k, ft, "F") for name in ("sS", "sM", "sZ"))
    np.copyto(So, S)
    np.copyto(Mo, M)
    np.copyto(Zo, Z)
    Co = C
    for _ in range(MAX_SEARCH):
        # newton_fit's loss terms and the direction's products are done with: their arrays
        Mt = np.multiply(Zo, t[on].astype(ft), out=scratch.get("XQ", on.size, ft, "F"))
        Mt += Mo
        R, D = _loss_terms(loss, So, Mt, Co, scratch)
        d1 = wp[on] + t[on] * pp[on] + np.einsum("ij,ij->j", R, Zo, dtype=np.float64)
        D *= Zo
        d2 = pp[on] + np.einsum("ij,ij->j", D, Zo, dtype=np.float64)
        new = t[on] - d1 / d2
        new = np.where(new > 0.0, new, 0.5 * t[on])
        moving = np.abs(new - t[on]) > SEARCH_REL * new
        t[on] = new
        if not moving.all():
            on = on[moving]
            if on.size == 0:
                break
            So, Mo, Zo, Co = So[:, moving], Mo[:, moving], Zo[:, moving], Co[moving]
    return t
