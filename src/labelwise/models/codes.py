"""``OutputCodes``: binary output codes over the labels with loss-based decoding.

Each code bit ``b`` covers a set ``G_b`` of labels; a row's label vector y is written as the
codeword ``c(y)``, one binary classifier per bit is trained on the codewords, and a new row's
bit margins are decoded back to label sets (Ferng & Lin 2011, "Multi-label classification
with error-correcting codes"; decoding after Allwein, Schapire & Singer 2000).

Codes (``code``):

- ``"ecc"`` (the default): a systematic error-correcting code: the first L bits are the labels
  themselves, the other ``n_bits - L`` bits are parities (XOR) of ``subset_size`` random
  labels each, so a wrong label bit can be outvoted by the parities that contain it;
- ``"random"``: ``n_bits`` bits, each the OR of ``subset_size`` random labels ("does the row
  carry any of these labels"), the first ``ceil(L / subset_size)`` of them a random partition
  of the labels so that every label is covered (``subset_size`` must be below the label
  count, else no bit tells labels apart). Labels that end up in exactly the same bits are
  not told apart by the bits (only by which candidate sets hold them); more bits make that
  unlikely.

``n_bits`` defaults to ``2 L``, ``subset_size`` to 3.

Decoding is loss-based over candidate label sets: the label sets seen in training, the empty
set and every single label. With the logistic loss, a candidate's loss is
``sum_b log(1 + exp(-s_b m_b))`` (``m_b`` the bit's margin, ``s_b = +1`` when the candidate's
codeword has the bit set, else -1), so ``exp(-loss)`` is the candidate's likelihood under
independent bits, proportional to ``exp(sum_b c_b m_b)``. A label's score is its marginal
probability under these normalised weights (uniform prior over candidates): in [0, 1],
``predict`` thresholds at 0.5.

Base learners (``base``): ``"linear"`` (labelwise's logistic regression by dual coordinate
descent, all bits in one ``fit_linear`` call on ``n_threads`` threads) or any scikit-learn
classifier (cloned per bit; margins are its logits); see :mod:`labelwise.models._learners`.
Feature rows (``normalize``): as in :mod:`labelwise.models.chains`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError
from ._learners import (
    base_to_json,
    binary_proba,
    check_base,
    check_normalize,
    check_scaling,
    fit_binary,
    fit_scaling,
    scale_rows,
)
from .base import MultiLabelModel, as_feature_matrix
from .chains import check_positive_int, check_seed, check_threads, fresh_seed
from .ovr import check_number
from .topk import topk_dense

__all__ = ["OutputCodes", "code_matrix", "encode"]

CODES = ("ecc", "random")
#: rows x candidates decoded at once
_DECODE_BLOCK = 1 << 22


def code_matrix(n_labels: int, code: str, n_bits: int, subset_size: int,
                rng: np.random.Generator) -> np.ndarray:
    """The bits' label sets: bool (n_bits, n_labels) (see the module docstring)."""
    L = n_labels
    s = min(subset_size, L)
    G = np.zeros((n_bits, L), dtype=bool)
    start = 0
    if code == "ecc":
        if n_bits < L:
            raise ValueError(f"code='ecc' needs n_bits >= n_labels ({L}), got {n_bits}")
        G[np.arange(L), np.arange(L)] = True
        start = L
    else:
        if 1 < L <= subset_size:
            raise ValueError(f"code='random' with subset_size={subset_size} >= {L} labels: every "
                             "bit would be the OR of all labels and tell none apart; lower "
                             "subset_size")
        perm = rng.permutation(L)
        cover = [perm[a:a + s] for a in range(0, L, s)]
        if n_bits < len(cover):
            raise ValueError(f"code='random' needs n_bits >= ceil(n_labels / subset_size) = "
                             f"{len(cover)} to cover every label, got {n_bits}")
        for b, labels in enumerate(cover):
            G[b, labels] = True
        start = len(cover)
    for b in range(start, n_bits):
        G[b, rng.choice(L, s, replace=False)] = True
    return G


def encode(Y: np.ndarray, G: np.ndarray, code: str) -> np.ndarray:
    """Codewords (bool (n, n_bits)) of the bool label matrix Y (n, n_labels)."""
    counts = Y.astype(np.int64) @ G.T.astype(np.int64)
    return (counts % 2 == 1) if code == "ecc" else counts > 0


class OutputCodes(MultiLabelModel):
    """Output codes over the labels, decoded by loss (see the module docstring).

    Parameters
    ----------
    code: "ecc" (labels plus random parities) or "random" (ORs of random labels).
    n_bits: code length (None = 2 n_labels).
    subset_size: labels per parity / OR bit (>= 1; 3 was a little better than 2 on MULAN
        scene and yeast).
    base: "linear" or a scikit-learn classifier.
    C: inverse regularisation of the linear base (> 0).
    normalize: "auto", "standard", "l2" or None (see labelwise.models.chains).
    n_threads: threads of the linear solver (None = all CPUs).
    random_state: seed of the code and of the solver's row shuffles.
    """

    #: the arrays it saves: name -> (dtypes, ndim), checked at load (labelwise.models.persist)
    _saved_arrays = {
        "code_indptr": (('<i8',), 1),
        "code_labels": (('<i8',), 1),
        "cand_indptr": (('<i8',), 1),
        "cand_labels": (('<i8',), 1),
        "coef_data": (('<f4',), 1),
        "coef_indices": (('<i8',), 1),
        "coef_indptr": (('<i8',), 1),
        "intercept": (('<f8',), 1),
        "col_mean": (('<f8',), 1),
        "col_scale": (('<f8',), 1),
    }

    _persist_name = "OutputCodes"
    default_threshold = 0.5

    def __init__(self, *, code: str = "ecc", n_bits: int | None = None, subset_size: int = 3,
                 base: Any = "linear", C: float = 1.0, normalize: str | None = "auto",
                 n_threads: int | None = None, random_state: int | None = 0) -> None:
        self.code = code
        self.n_bits = n_bits
        self.subset_size = subset_size
        self.base = base
        self.C = C
        self.normalize = normalize
        self.n_threads = n_threads
        self.random_state = random_state

    def _validate_params(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"code must be one of {CODES}, got {self.code!r}")
        if self.n_bits is not None:
            check_positive_int(self, "n_bits")
        check_positive_int(self, "subset_size")
        check_base(self.base)
        check_number(self, "C", 0.0, strict=True)
        check_normalize(self.normalize)
        check_threads(self.n_threads)
        check_seed(self.random_state)

    def _prepare_X(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return scale_rows(X, self.col_mean_, self.col_scale_, self.normalize)

    # ------------------------------------------------------------------ fit
    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        n, L = Y.shape
        seed = fresh_seed(self.random_state)
        rng = np.random.default_rng(seed)
        N = 2 * L if self.n_bits is None else int(self.n_bits)
        G = code_matrix(L, self.code, N, int(self.subset_size), rng)
        Yd = Y.toarray() > 0
        cands = np.unique(np.vstack([Yd, np.zeros((1, L), bool), np.eye(L, dtype=bool)]), axis=0)
        self.col_mean_, self.col_scale_ = fit_scaling(X, self.normalize)
        X = self._prepare_X(X)
        B = encode(Yd, G, self.code)
        if self.base == "linear":
            from .ovr import fit_linear
            from .pairwise import _warn_capped

            coef, intercept, n_iter = fit_linear(X, sp.csr_matrix(B.astype(np.float32)),
                                                 loss="logistic", C=self.C, bias=1.0, tol=0.1,
                                                 max_iter=1000, prune_threshold=0.0,
                                                 n_threads=self.n_threads, seed=seed)
            _warn_capped(np.asarray(n_iter), 1000, "code bits")
            self._set_linear(sp.csr_matrix(coef), np.asarray(intercept, np.float64))
        else:
            learners = [fit_binary(X, B[:, b], self.base, C=self.C,
                                   seed=(seed + 7919 * b) % 2**32)
                        for b in range(N)]
            if all(isinstance(t, tuple) for t in learners):
                self._set_linear(sp.csr_matrix(np.stack([w for w, _ in learners], axis=1)),
                                 np.asarray([b for _, b in learners], np.float64))
            else:
                self.learners_ = learners
        self._set_code(G, cands)

    def _set_linear(self, W: sp.csr_matrix, intercept: np.ndarray, *,
                    canonical: bool = True) -> None:
        if canonical:  # at fit (a loaded model, maybe read-only, is saved canonical)
            W = sp.csr_matrix(W, dtype=np.float32)
            W.eliminate_zeros()
            W.sort_indices()
        self.coef_, self.intercept_, self.learners_ = W, intercept, None

    def _set_code(self, G: np.ndarray, cands: np.ndarray) -> None:
        self.code_ = G
        self.candidates_ = cands
        self._cand_codes = sp.csr_matrix(encode(cands, G, self.code).astype(np.float64))
        self._cand_labels_T = sp.csr_matrix(cands.T.astype(np.float64))

    # ------------------------------------------------------------------ scoring
    def bit_margins(self, X: Any) -> np.ndarray:
        """The bits' margins (logits): dense float64 (n_samples, n_bits)."""
        self._check_fitted()
        return self._margins(self._prepare_X(as_feature_matrix(X, n_features=self.n_features_in_)))

    def _margins(self, X: sp.csr_matrix) -> np.ndarray:
        if self.learners_ is None:
            return np.asarray((X @ self.coef_).toarray(), np.float64) + self.intercept_[None, :]
        out = np.empty((X.shape[0], len(self.learners_)))
        for b, t in enumerate(self.learners_):
            if isinstance(t, tuple):
                out[:, b] = np.asarray(X @ t[0], dtype=np.float64).ravel() + t[1]
            else:
                p = np.clip(binary_proba(t, X), 1e-12, 1 - 1e-12)
                out[:, b] = np.log(p) - np.log1p(-p)
        return out

    def _marginals(self, X: sp.csr_matrix) -> np.ndarray:
        n_cand = self.candidates_.shape[0]
        block = max(1, _DECODE_BLOCK // n_cand)
        out = np.empty((X.shape[0], self.candidates_.shape[1]))
        for a in range(0, X.shape[0], block):
            m = self._margins(X[a:a + block])
            # minus the loss, up to a per-row constant; sparse on the left: scipy's loops,
            # so a row's sums never depend on its block
            ll = np.asarray(self._cand_codes @ m.T).T
            ll -= ll.max(axis=1, keepdims=True)
            w = np.exp(ll)
            w /= w.sum(axis=1, keepdims=True)
            out[a:a + block] = np.asarray(self._cand_labels_T @ w.T).T
        return out

    def predict_marginals(self, X: Any) -> np.ndarray:
        """Every label's decoded marginal: dense float64 (n_samples, n_labels)."""
        self._check_fitted()
        return self._marginals(self._prepare_X(as_feature_matrix(X,
                                                                 n_features=self.n_features_in_)))

    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        return topk_dense(self._marginals(self._prepare_X(X)).astype(np.float32), k)

    def _to_probability(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    def _saved_params(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        params["base"] = base_to_json(self.base, self.learners_ is None)
        return params

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        base_to_json(self.base, self.learners_ is None)
        G = sp.csr_matrix(self.code_)
        Cd = sp.csr_matrix(self.candidates_)
        W = self.coef_
        return {"code_indptr": G.indptr.astype(np.int64), "code_labels": G.indices.astype(np.int64),
                "cand_indptr": Cd.indptr.astype(np.int64),
                "cand_labels": Cd.indices.astype(np.int64),
                "coef_data": np.asarray(W.data, np.float32),
                "coef_indices": W.indices.astype(np.int64),
                "coef_indptr": W.indptr.astype(np.int64),
                "intercept": np.asarray(self.intercept_, np.float64),
                "col_mean": self.col_mean_, "col_scale": self.col_scale_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        need = ("code_indptr", "code_labels", "cand_indptr", "cand_labels", "coef_data",
                "coef_indices", "coef_indptr", "intercept")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise DataFormatError(f"OutputCodes model lacks arrays: {', '.join(missing)}")
        a = {k: np.asarray(arrays[k]) for k in need}
        L, d = len(self.labels_), int(self.n_features_in_)
        N = a["intercept"].size

        def csr_ok(indptr, indices, width):
            return (indptr.size >= 2 and int(indptr[0]) == 0 and int(indptr[-1]) == indices.size
                    and bool(np.all(np.diff(indptr) >= 0))
                    and (indices.size == 0 or (int(indices.min()) >= 0
                                               and int(indices.max()) < width)))

        ok = (N >= 1 and a["code_indptr"].shape == (N + 1,)
              and csr_ok(a["code_indptr"], a["code_labels"], L)
              and csr_ok(a["cand_indptr"], a["cand_labels"], L)
              and a["coef_indptr"].shape == (d + 1,)
              and a["coef_data"].shape == a["coef_indices"].shape
              and csr_ok(a["coef_indptr"], a["coef_indices"], N))
        if not ok:
            raise DataFormatError(f"OutputCodes arrays do not fit {d} features x {L} labels",
                                  field="arrays")

        def dense(indptr, indices, width):
            return sp.csr_matrix((np.ones(indices.size), indices, indptr),
                                 shape=(indptr.size - 1, width)).toarray() > 0

        self.col_mean_, self.col_scale_ = check_scaling(arrays, d, "OutputCodes")
        self._set_linear(sp.csr_matrix((a["coef_data"], a["coef_indices"], a["coef_indptr"]),
                                       shape=(d, N)), a["intercept"], canonical=False)
        self._set_code(dense(a["code_indptr"], a["code_labels"], L),
                       dense(a["cand_indptr"], a["cand_labels"], L))

