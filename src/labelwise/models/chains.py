"""``ClassifierChain``: classifier chains, ensembles of chains and probabilistic chains.

A chain puts the labels in an order ``o``; the classifier at position ``p`` predicts label
``o[p]`` from the features and the labels at positions ``0..p-1`` (Read et al. 2011). Its
learned conditional ``P(y_o[p] = 1 | x, y_o[0..p-1])`` factorises the joint distribution of
the label vector (probabilistic classifier chains, Dembczynski et al. 2010).

Orders (``order``): ``"given"`` (the label ids' order), ``"frequency"`` (most frequent label
first), ``"random"`` (a random order per chain), or a list of label ids (a permutation).
``n_chains > 1`` makes an ensemble (ECC): chains with their own random orders (when
``order="random"``) and, with ``bootstrap=True``, each trained on a bootstrap sample of the
rows; their label probabilities are averaged.

Inference (``inference``; ``"beam"`` by default: on the MULAN sets' official splits it gave a
tuned single chain 0.5-1.8 points more micro-F1 than greedy passes on all eight, e.g. scene
0.710 -> 0.728, yeast 0.650 -> 0.663, medical 0.729 -> 0.747, bibtex 0.444 -> 0.456):

- ``"greedy"``: one pass along the chain, each label decided at probability 0.5 and fed to
  the next classifiers; the score of a label is its conditional probability on that path.
- ``"beam"``: beam search over the chain keeping the ``beam_width`` most probable partial
  label vectors per row; a label's score is the mean, under the final beam (the beam's
  joint probabilities renormalised), of its conditional probability given each beam
  vector's labels before it: ``sum_b w_b P(y_o[p] = 1 | x, y_b,o[0..p-1])``. With
  ``beam_width >= 2**n_labels`` this is the exact marginal (summing the joint over the
  labels after position p leaves the prefix's probability), and :meth:`predict_joint`
  returns the exact joint mode (both checked against enumerating all label vectors in the
  tests). A narrow beam keeps the conditionals' scale, where the beam's hard votes would
  give every label that no kept vector carries a score of 0 (most of a rare label's rows).

Base learners (``base``): ``"linear"`` (labelwise's logistic regression by dual coordinate
descent, ``C``) or any scikit-learn classifier (cloned); see :mod:`labelwise.models._learners`.
Label features enter with value 1. Feature rows (``normalize``): ``"auto"`` (the default)
standardises the columns (mean and standard deviation of the training rows) when the
features are dense (at least 90% of the entries stored, as for the MULAN audio and image
sets) and then scales every row to unit length; ``"standard"`` always standardises (sparse
features become dense), ``"l2"`` only scales rows, None uses X as given. Models with linear learners are saved as arrays; a model with
non-linear scikit-learn learners refuses to save (no pickle).

Scores are probabilities: ``decision_function`` and ``predict_proba`` agree and ``predict``
thresholds at 0.5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .._csr import trusted_csr
from ..checks import positive_int
from ..errors import DataFormatError
from ._learners import (
    base_to_json,
    binary_proba,
    chain_row_norms,
    check_base,
    check_normalize,
    check_scaling,
    fit_binary,
    fit_chain_linear,
    fit_scaling,
    position_masks,
    scale_rows,
)
from .base import MultiLabelModel, dense_to_csr, sigmoid
from .ovr import check_number
from .topk import map_ranges, map_threads, resolve_n_threads, topk_dense

__all__ = ["ClassifierChain"]

ORDERS = ("given", "random", "frequency")
INFERENCES = ("greedy", "beam")
#: rows scored at once at predict time
_ROW_BLOCK = 2048


def check_seed(rs: Any) -> None:
    if rs is not None and (isinstance(rs, bool) or not isinstance(rs, int | np.integer)
                           or not 0 <= rs < 2**32):
        raise ValueError(f"random_state must be None or an int in [0, 2**32), got {rs!r}")


def check_positive_int(model: Any, name: str) -> None:
    positive_int(getattr(model, name), name)


def check_threads(nt: Any) -> None:
    positive_int(nt, "n_threads", allow_none=True)


def fresh_seed(random_state: int | None) -> int:
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    return int(random_state)


class ClassifierChain(MultiLabelModel):
    """Classifier chains and ensembles of them (see the module docstring).

    Parameters
    ----------
    order: "given", "random", "frequency" or a list of label ids (a permutation).
    n_chains: chains in the ensemble (>= 1); their probabilities are averaged.
    bootstrap: train each chain on a bootstrap sample of the rows (ensembles).
    inference: "beam" (the default) or "greedy".
    beam_width: partial label vectors kept per row by the beam search (>= 1).
    base: "linear" or a scikit-learn classifier.
    C: inverse regularisation of the linear base.
    normalize: "auto", "standard", "l2" or None (see the module docstring).
    n_threads: threads of the linear solver (None = all CPUs).
    random_state: seed of orders, bootstrap samples and solver shuffles.
    """

    #: the arrays it saves: name -> (dtypes, ndim), checked at load (labelwise.models.persist)
    _saved_arrays = {
        "orders": (('<i8',), 2),
        "coef_data": (('<f8',), 1),
        "coef_indices": (('<i8',), 1),
        "coef_indptr": (('<i8',), 1),
        "label_coef": (('<f8',), 3),
        "intercept": (('<f8',), 2),
        "col_mean": (('<f8',), 1),
        "col_scale": (('<f8',), 1),
    }

    _persist_name = "ClassifierChain"
    default_threshold = 0.5
    #: the numpy beam (always used for non-linear learners); tests compare it to the kernel
    _numpy_beam = False

    @property
    def select_c_default(self) -> bool:
        """``Pipeline.tune`` chooses a single chain's C (of the linear base) by cross-fitting
        unless told not to (an ensemble's search would cost ``n_chains`` fits a candidate
        and fold); a noise-sized gain keeps the C given."""
        return self.n_chains == 1 and isinstance(self.base, str) and self.base == "linear"

    def __init__(self, *, order: str | list[int] = "given", n_chains: int = 1,
                 bootstrap: bool = False, inference: str = "beam", beam_width: int = 8,
                 base: Any = "linear", C: float = 1.0, normalize: str | None = "auto",
                 n_threads: int | None = None, random_state: int | None = 0) -> None:
        self.order = order
        self.n_chains = n_chains
        self.bootstrap = bootstrap
        self.inference = inference
        self.beam_width = beam_width
        self.base = base
        self.C = C
        self.normalize = normalize
        self.n_threads = n_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    def _validate_params(self) -> None:
        o = self.order
        if isinstance(o, str):
            if o not in ORDERS:
                raise ValueError(f"order must be one of {ORDERS} or a list of label ids, "
                                 f"got {o!r}")
        elif not (isinstance(o, list | tuple) and all(
                isinstance(v, int | np.integer) and not isinstance(v, bool) for v in o)):
            raise ValueError(f"order must be one of {ORDERS} or a list of label ids, got {o!r}")
        check_positive_int(self, "n_chains")
        check_positive_int(self, "beam_width")
        if not isinstance(self.bootstrap, bool):
            raise ValueError(f"bootstrap must be True or False, got {self.bootstrap!r}")
        if self.inference not in INFERENCES:
            raise ValueError(f"inference must be one of {INFERENCES}, got {self.inference!r}")
        check_normalize(self.normalize)
        check_number(self, "C", 0.0, strict=True)
        check_base(self.base)
        check_threads(self.n_threads)
        check_seed(self.random_state)

    def _prepare_X(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return scale_rows(X, self.col_mean_, self.col_scale_, self.normalize)

    def _orders(self, Y: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray:
        L = Y.shape[1]
        if isinstance(self.order, list | tuple):
            order = np.asarray(self.order, dtype=np.int64)
            if order.shape != (L,) or not np.array_equal(np.sort(order), np.arange(L)):
                raise ValueError(f"order must be a permutation of the {L} label ids "
                                 f"0..{L - 1}, got {list(self.order)[:10]}...")
            return np.tile(order, (self.n_chains, 1))
        if self.order == "given":
            return np.tile(np.arange(L, dtype=np.int64), (self.n_chains, 1))
        if self.order == "frequency":
            freq = np.asarray(Y.sum(axis=0)).ravel()
            return np.tile(np.argsort(-freq, kind="stable").astype(np.int64),
                           (self.n_chains, 1))
        return np.stack([rng.permutation(L) for _ in range(self.n_chains)]).astype(np.int64)

    # ------------------------------------------------------------------ fit
    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        seed = fresh_seed(self.random_state)
        rng = np.random.default_rng(seed)
        self.col_mean_, self.col_scale_ = fit_scaling(X, self.normalize)
        X = self._prepare_X(X)
        n, d = X.shape
        L = Y.shape[1]
        Yd = Y.toarray() > 0
        orders = self._orders(Y, rng)
        linear = True
        wx_cols, wy, b, learners = [], np.zeros((self.n_chains, L, L)), \
            np.zeros((self.n_chains, L)), []
        for c in range(self.n_chains):
            if self.bootstrap:
                rows = rng.integers(0, n, n)
                Xc, Yc = X[rows], Yd[rows][:, orders[c]]
            else:  # every row once, in order: X itself (indexing would copy it)
                Xc, Yc = X, Yd[:, orders[c]]
            XA = sp.hstack([Xc, dense_to_csr(Yc.astype(np.float32))], format="csr")
            XA.sort_indices()
            chain = self._fit_positions(XA, Yc, d, (seed + 7919 * c) % 2**32)
            for p, got in enumerate(chain):
                if isinstance(got, tuple):
                    w, bias = got
                    wx_cols.append(w[:d])
                    wy[c, :p, p] = w[d:]
                    b[c, p] = bias
                else:
                    linear = False
                    wx_cols.append(np.zeros(d))
            learners.append(chain)
        self.orders_ = orders
        self.coef_ = sp.csr_matrix(np.stack(wx_cols, axis=1))  # (d, n_chains * L)
        self.label_coef_ = wy
        self.intercept_ = b
        self.learners_ = None if linear else learners

    def _fit_positions(self, XA: sp.csr_matrix, Yc: np.ndarray, d: int, seed: int) -> list:
        """The chain's classifiers, position p on the features ``XA[:, :d + p]`` (X and the
        true labels before p). They do not depend on each other (training conditions on the
        true labels), so with labelwise's linear base they are one Newton solve over masked
        features on dense X (:func:`~labelwise.models._learners.fit_chain_linear`), else
        trained side by side on the threads (the same problems and seeds: the same weights);
        a scikit-learn base is fitted one position after another. A sparse position is
        solved on all of XA with the labels from p on stored as zeros
        (:func:`~labelwise.models._learners.position_masks`): the slice's weights bit for
        bit, without a scipy slice per position (about a quarter of medical's fit in a fresh
        process)."""
        if self.base == "linear":  # dense features: every position in one Newton call
            batch = fit_chain_linear(XA, Yc, d, self.C)
            if batch is not None:
                return batch

        norms = chain_row_norms(XA, Yc, d) if self.base == "linear" else None
        masked = self.base == "linear" and position_masks(XA, Yc, d)

        def fit(p: int):
            if masked and masked[p]:  # XA with the labels from p on stored as 0: no slice
                Xp = trusted_csr(np.where(XA.indices >= d + p, np.float32(0), XA.data),
                                 XA.indices, XA.indptr, XA.shape, sorted_indices=True)
                w, b = fit_binary(Xp, Yc[:, p], "linear", C=self.C, seed=(seed + p) % 2**32,
                                  sq=norms[p])
                return w[:d + p], b
            return fit_binary(XA[:, :d + p], Yc[:, p], self.base, C=self.C,
                              seed=(seed + p) % 2**32, sq=None if norms is None else norms[p])

        linear = isinstance(self.base, str)
        return map_threads(fit, range(Yc.shape[1]),
                           resolve_n_threads(self.n_threads) if linear else 1)

    # ------------------------------------------------------------------ inference
    def _cond_proba(self, c: int, p: int, X: sp.csr_matrix, prefix: np.ndarray,
                    base: np.ndarray | None, acc: np.ndarray | None) -> np.ndarray:
        """P(label at position p = 1) for rows X with the labels ``prefix`` (m, p) before it.
        Linear chains use base (m,) = x.w and acc (m,) = the label features' margin."""
        learner = None if self.learners_ is None else self.learners_[c][p]
        if learner is None or isinstance(learner, tuple):
            return sigmoid(base + acc + self.intercept_[c, p])
        XA = sp.hstack([X, sp.csr_matrix(prefix.astype(np.float32))], format="csr")
        XA.sort_indices()
        return binary_proba(learner, XA)

    def _beam(self, c: int, X: sp.csr_matrix, width: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Beam search along chain c: (labels (m, B, L) bool in position order, log-probs
        (m, B), -inf for empty slots, conditionals (m, B, L): P(label at position p = 1 | x,
        the slot's labels before p))."""
        m, L = X.shape[0], len(self.labels_)
        B = width
        base = np.asarray(X @ self.coef_[:, c * L:(c + 1) * L].toarray())  # (m, L)
        if self.learners_ is None and not self._numpy_beam:
            from ._chain_kernels import beam_rows

            beams8 = np.zeros((m, B, L), dtype=np.uint8)
            logp = np.empty((m, B))
            cond = np.zeros((m, B, L))
            wy = np.ascontiguousarray(self.label_coef_[c])
            b0 = np.ascontiguousarray(self.intercept_[c])
            map_ranges(lambda a, z: beam_rows(np.ascontiguousarray(base), b0, wy, B, a, z,
                                              beams8, logp, cond),
                       np.linspace(0, m, resolve_n_threads(self.n_threads) + 1).astype(int),
                       resolve_n_threads(self.n_threads))
            return beams8.astype(bool), logp, cond
        beams = np.zeros((m, B, L), dtype=bool)
        cond = np.zeros((m, B, L))
        acc = np.zeros((m, B, L))
        logp = np.full((m, B), -np.inf)
        logp[:, 0] = 0.0
        rows = np.arange(m)[:, None]
        for p in range(L):
            live = min(B, 2 ** p)
            if self.learners_ is None or isinstance(self.learners_[c][p], tuple):
                p1 = sigmoid(base[:, p][:, None] + acc[:, :, 0] + self.intercept_[c, p])
            else:
                Xr = X[np.repeat(np.arange(m), live)]
                p1 = np.zeros((m, B))
                p1[:, :live] = self._cond_proba(
                    c, p, Xr, beams[:, :live, :p].reshape(m * live, p), None, None
                ).reshape(m, live)
            with np.errstate(divide="ignore"):
                cand = np.concatenate([logp + np.log1p(-p1), logp + np.log(p1)], axis=1)
            pick = np.argsort(-cand, axis=1, kind="stable")[:, :B]
            parent = pick % B
            bit = pick >= B
            beams = beams[rows, parent]
            beams[:, :, p] = bit
            cond = cond[rows, parent]
            cond[:, :, p] = p1[rows, parent]
            # margins the chosen labels add to the positions still ahead (p + 1 ..)
            acc = acc[:, :, 1:][rows, parent]
            acc += bit[:, :, None] * self.label_coef_[c, p, p + 1:][None, None, :]
            logp = cand[rows, pick]
        return beams, logp, cond

    def _greedy(self, c: int, X: sp.csr_matrix) -> np.ndarray:
        """Conditional probabilities (m, L) along the greedy path of chain c, label order."""
        m, L = X.shape[0], len(self.labels_)
        base = np.asarray(X @ self.coef_[:, c * L:(c + 1) * L].toarray())
        acc = np.zeros((m, L))
        path = np.zeros((m, L), dtype=bool)
        P = np.zeros((m, L))
        for p in range(L):
            p1 = self._cond_proba(c, p, X, path[:, :p], base[:, p], acc[:, p])
            y = p1 > 0.5
            path[:, p] = y
            acc += y[:, None] * self.label_coef_[c, p][None, :]
            P[:, self.orders_[c, p]] = p1
        return P

    def _marginals(self, X: sp.csr_matrix) -> np.ndarray:
        L = len(self.labels_)
        out = np.zeros((X.shape[0], L))
        for a in range(0, X.shape[0], _ROW_BLOCK):
            Xb = X[a:a + _ROW_BLOCK]
            tot = np.zeros((Xb.shape[0], L))
            for c in range(self.orders_.shape[0]):
                if self.inference == "greedy":
                    tot += self._greedy(c, Xb)
                else:
                    _, logp, cond = self._beam(c, Xb, self.beam_width)
                    w = np.exp(logp - logp.max(axis=1, keepdims=True))
                    w /= w.sum(axis=1, keepdims=True)
                    marg = np.einsum("mb,mbl->ml", w, cond)
                    tot[:, self.orders_[c]] += marg
            out[a:a + Xb.shape[0]] = tot / self.orders_.shape[0]
        return out

    def predict_marginals(self, X: Any) -> np.ndarray:
        """Every label's probability as a dense float64 (n_samples, n_labels) array."""
        from .base import as_feature_matrix

        self._check_fitted()
        Xc = self._prepare_X(as_feature_matrix(X, n_features=self.n_features_in_))
        return self._marginals(Xc)

    def predict_joint(self, X: Any, *, beam_width: int | None = None) -> sp.csr_matrix:
        """The most probable label vector of each row under the chain (beam search; exact
        when ``beam_width >= 2**n_labels``) as CSR float32 0/1. One chain only."""
        from .base import as_feature_matrix

        self._check_fitted()
        if self.orders_.shape[0] != 1:
            raise ValueError("predict_joint needs a single chain (n_chains=1): an ensemble's "
                             "chains define different joint distributions")
        width = self.beam_width if beam_width is None else int(beam_width)
        if width < 1:
            raise ValueError(f"beam_width must be >= 1, got {beam_width!r}")
        Xc = self._prepare_X(as_feature_matrix(X, n_features=self.n_features_in_))
        L = len(self.labels_)
        out = np.zeros((Xc.shape[0], L), dtype=np.float32)
        for a in range(0, Xc.shape[0], _ROW_BLOCK):
            beams, logp, _ = self._beam(0, Xc[a:a + _ROW_BLOCK], width)
            best = beams[np.arange(beams.shape[0]), np.argmax(logp, axis=1)]
            out[a:a + beams.shape[0], self.orders_[0]] = best
        return sp.csr_matrix(out)

    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        P = self._marginals(self._prepare_X(X))
        return topk_dense(P.astype(np.float32), k)

    def _to_probability(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    def _saved_params(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        params["base"] = base_to_json(self.base, self.learners_ is None)
        if isinstance(params["order"], tuple | list):
            params["order"] = [int(v) for v in params["order"]]
        return params

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        base_to_json(self.base, self.learners_ is None)  # refuses non-linear learners
        W = self.coef_
        return {"orders": np.asarray(self.orders_, np.int64),
                "coef_data": np.asarray(W.data, np.float64),
                "coef_indices": np.asarray(W.indices, np.int64),
                "coef_indptr": np.asarray(W.indptr, np.int64),
                "label_coef": np.asarray(self.label_coef_, np.float64),
                "intercept": np.asarray(self.intercept_, np.float64),
                "col_mean": self.col_mean_, "col_scale": self.col_scale_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        need = ("orders", "coef_data", "coef_indices", "coef_indptr", "label_coef", "intercept")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise DataFormatError(f"ClassifierChain model lacks arrays: {', '.join(missing)}")
        L, d = len(self.labels_), int(self.n_features_in_)
        orders = np.asarray(arrays["orders"])
        C = orders.shape[0] if orders.ndim == 2 else -1
        ip, ind = np.asarray(arrays["coef_indptr"]), np.asarray(arrays["coef_indices"])
        ok = (orders.ndim == 2 and orders.shape[1] == L
              and all(np.array_equal(np.sort(o), np.arange(L)) for o in orders)
              and arrays["label_coef"].shape == (C, L, L) and arrays["intercept"].shape == (C, L)
              and ip.shape == (d + 1,) and ind.shape == arrays["coef_data"].shape
              and int(ip[0]) == 0 and int(ip[-1]) == ind.shape[0]
              and bool(np.all(np.diff(ip) >= 0))
              and (ind.size == 0 or (ind.min() >= 0 and ind.max() < C * L)))
        if not ok:
            raise DataFormatError(f"ClassifierChain arrays do not fit {d} features x {L} labels",
                                  field="arrays")
        self.orders_ = orders
        self.coef_ = sp.csr_matrix((np.asarray(arrays["coef_data"]), ind, ip), shape=(d, C * L))
        self.label_coef_ = np.asarray(arrays["label_coef"])
        self.intercept_ = np.asarray(arrays["intercept"])
        self.learners_ = None
        self.col_mean_, self.col_scale_ = check_scaling(arrays, d, "ClassifierChain")
