"""``LabelPowerset`` (with pruning of rare label sets) and ``RAkEL`` (random k-labelsets).

Label powerset turns multi-label learning into one multi-class problem whose classes are the
label sets seen in training. A label's score is its marginal probability under the class
distribution: ``P(label j) = sum over classes c containing j of P(c | x)``.

Pruning (Read 2008, "pruned problem transformation"): label sets seen fewer than
``min_count`` times are not classes; each row carrying one is replaced by up to
``max_subsets`` rows carrying its largest frequent subsets (frequent: seen at least
``min_count`` times; ties by frequency, then by the sets' order). A row whose set has no
frequent subset (not even the empty set) is dropped; a warning counts replaced and dropped
rows. ``min_count=1`` keeps every set.

RAkEL (Tsoumakas et al. 2011) trains a label powerset on each of several k-labelsets:

- ``mode="disjoint"`` (RAkELd): a random partition of the labels into ``ceil(L / k)`` sets
  of k labels, the last one holding the ``L mod k`` left over when k does not divide L;
- ``mode="overlapping"`` (RAkELo): ``n_models`` distinct k-labelsets (default
  ``min(2 L, C(L, k))``), the first ``ceil(L / k)`` of them covering every label (a random
  partition, the last set topped up with other random labels), the rest drawn at random
  without repetition (by enumerating the unused sets when there are at most 100,000 of them,
  else by rejection with a bounded number of draws), so it always terminates.

A label's score is the average of its marginal probabilities over the labelsets containing
it (soft votes). With ``k >= n_labels`` RAkEL is one label powerset.

Feature rows (``normalize``): as in :mod:`labelwise.models.chains` ("auto" standardises
dense features' columns, then every row is scaled to unit length).

Base learners (``base``): ``"linear"`` (one logistic regression per class by labelwise's
DCD solver, class probabilities the normalised sigmoids) or any scikit-learn classifier
(linear ones saved as arrays, with probabilities the softmax of their margins, which is
``predict_proba`` for ``LogisticRegression``; others are used live and refuse to save).
Scores are probabilities (``predict`` thresholds at 0.5).
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError
from ._learners import (
    base_to_json,
    check_base,
    check_normalize,
    check_scaling,
    fit_multiclass,
    fit_multiclass_many,
    fit_scaling,
    multiclass_proba,
    scale_rows,
)
from .base import MultiLabelModel, as_feature_matrix
from .chains import check_positive_int, check_seed, check_threads, fresh_seed
from .ovr import check_number, row_sq_norms
from .topk import map_threads, resolve_n_threads, topk_dense

__all__ = ["LabelPowerset", "RAkEL", "rakel_labelsets", "prune_label_sets"]

_KINDS = ("const", "sigmoid", "softmax")
_ROW_BLOCK = 2048
#: RAkELo enumerates the unused k-labelsets when there are at most this many
_ENUMERATE_MAX = 100_000


def prune_label_sets(Ysub: np.ndarray, min_count: int, max_subsets: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Pruned problem transformation of a bool label matrix Ysub (n, s).

    Returns ``(classes, rows, class_of_row, n_replaced, n_dropped)``: classes (C, s) bool
    (the frequent label sets, sorted), and the training rows as indices into Ysub with their
    class ids (a replaced row appears once per subset it got)."""
    sets, inverse, counts = np.unique(Ysub, axis=0, return_inverse=True, return_counts=True)
    inverse = np.asarray(inverse).ravel()
    frequent = counts >= min_count
    if not frequent.any():
        raise ValueError(f"no label set is seen min_count={min_count} times; lower min_count")
    new_id = np.cumsum(frequent) - 1
    classes = sets[frequent]
    rows, cls = [], []
    keep = frequent[inverse]
    rows.append(np.flatnonzero(keep))
    cls.append(new_id[inverse[keep]])
    n_replaced = n_dropped = 0
    if not keep.all():
        sizes = classes.sum(axis=1)
        freq_counts = counts[frequent]
        replacement: dict[int, np.ndarray] = {}
        for s in np.flatnonzero(~frequent):
            target = sets[s]
            inside = np.flatnonzero(~(classes & ~target).any(axis=1))  # subsets of target
            rank = np.lexsort((inside, -freq_counts[inside], -sizes[inside]))
            replacement[int(s)] = inside[rank[:max_subsets]]
        rare_rows = np.flatnonzero(~keep)
        for i in rare_rows:
            sub = replacement[int(inverse[i])]
            if sub.size == 0:
                n_dropped += 1
                continue
            n_replaced += 1
            rows.append(np.full(sub.size, i))
            cls.append(sub)
    return (classes, np.concatenate(rows).astype(np.int64),
            np.concatenate(cls).astype(np.int64), n_replaced, n_dropped)


def rakel_labelsets(n_labels: int, k: int, mode: str, n_models: int | None,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """The k-labelsets of RAkEL (see the module docstring), each sorted int64."""
    L = n_labels
    k = min(k, L)
    perm = rng.permutation(L)
    cover = [np.sort(perm[a:a + k]) for a in range(0, L, k)]
    if mode == "disjoint":
        return [c.astype(np.int64) for c in cover]
    total = math.comb(L, k)
    m = min(2 * L, total) if n_models is None else int(n_models)
    if m > total:
        raise ValueError(f"n_models={m} is more than the {total} distinct {k}-labelsets of "
                         f"{L} labels")
    if m < len(cover):
        raise ValueError(f"n_models={m} cannot cover {L} labels with {k}-labelsets (needs at "
                         f"least {len(cover)})")
    last = cover[-1]
    if last.size < k:
        others = np.setdiff1d(np.arange(L), last)
        cover[-1] = np.sort(np.concatenate([last, rng.choice(others, k - last.size,
                                                               replace=False)]))
    chosen = [tuple(int(v) for v in c) for c in cover]
    seen = set(chosen)
    need = m - len(chosen)
    if need > 0:
        if total - len(seen) <= _ENUMERATE_MAX:
            rest = [c for c in itertools.combinations(range(L), k) if c not in seen]
            pick = rng.choice(len(rest), need, replace=False)
            chosen += [rest[i] for i in sorted(pick)]
        else:
            draws = 0
            while need > 0:
                draws += 1
                if draws > 1000 * m:  # pragma: no cover - needs m close to a huge total
                    raise RuntimeError("RAkELo could not draw distinct labelsets")
                c = tuple(int(v) for v in np.sort(rng.choice(L, k, replace=False)))
                if c not in seen:
                    seen.add(c)
                    chosen.append(c)
                    need -= 1
    return [np.asarray(c, dtype=np.int64) for c in chosen]


class _PowersetFamily(MultiLabelModel):
    """Shared fit, scoring and persistence of LabelPowerset and RAkEL."""

    #: the arrays it saves: name -> (dtypes, ndim), checked at load (labelwise.models.persist)
    _saved_arrays = {
        "set_ptr": (('<i8',), 1),
        "set_labels": (('<i8',), 1),
        "class_ptr": (('<i8',), 1),
        "kinds": (('<i8',), 1),
        "class_indptr": (('<i8',), 1),
        "class_positions": (('<i8',), 1),
        "coef_indices": (('<i8',), 1),
        "coef_indptr": (('<i8',), 1),
        "coef_data": (('<f8',), 1),
        "intercept": (('<f8',), 1),
        "col_mean": (('<f8',), 1),
        "col_scale": (('<f8',), 1),
    }

    default_threshold = 0.5

    def _check_common(self) -> None:
        check_positive_int(self, "min_count")
        check_positive_int(self, "max_subsets")
        check_normalize(self.normalize)
        check_number(self, "C", 0.0, strict=True)
        check_base(self.base)
        check_threads(self.n_threads)
        check_seed(self.random_state)

    def _labelsets(self, L: int, rng: np.random.Generator) -> list[np.ndarray]:
        return [np.arange(L, dtype=np.int64)]

    def _prepare_X(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return scale_rows(X, self.col_mean_, self.col_scale_, self.normalize)

    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        seed = fresh_seed(self.random_state)
        rng = np.random.default_rng(seed)
        self.col_mean_, self.col_scale_ = fit_scaling(X, self.normalize)
        X = self._prepare_X(X)
        Yd = Y.toarray() > 0
        sets = self._labelsets(Yd.shape[1], rng)
        problems, replaced, dropped = [], 0, 0
        for labelset in sets:
            classes, rows, cls, n_rep, n_drop = prune_label_sets(
                Yd[:, labelset], self.min_count, self.max_subsets)
            replaced += n_rep
            dropped += n_drop
            problems.append((labelset, classes, rows, cls))
        threads = resolve_n_threads(self.n_threads)

        full = [rows.shape[0] == X.shape[0] and (rows == np.arange(rows.shape[0])).all()
                for _, _, rows, _ in problems]  # a problem on every row, in order
        sq = None

        def fit(t: int, n_threads: int | None) -> tuple:
            labelset, classes, rows, cls = problems[t]
            kind, learner = fit_multiclass(X if full[t] else X[rows], cls, classes.shape[0],
                                           self.base, C=self.C,
                                           seed=(seed + 7919 * t) % 2**32, n_threads=n_threads,
                                           sq=sq if full[t] else None)
            return labelset, classes, kind, learner

        everyone = all(full)
        many = None
        if self.base == "linear" and everyone:  # dense features: one Newton call for all
            many = fit_multiclass_many(X, [(cls, classes.shape[0])
                                           for _, classes, _, cls in problems], self.C)
        if many is None and self.base == "linear" and any(full):  # rows' norms once (DCD)
            sq = row_sq_norms(X, 1.0)
        if many is not None:
            parts = [(labelset, classes, kind, learner)
                     for (labelset, classes, _, _), (kind, learner) in zip(problems, many,
                                                                           strict=True)]
        elif isinstance(self.base, str) and threads > 1 and len(problems) > 1:
            # RAkEL's labelsets are independent problems: side by side on the threads, one
            # thread each (a classifier does not depend on its threads: the same weights)
            parts = map_threads(lambda t: fit(t, 1), range(len(problems)), threads)
        else:
            parts = [fit(t, self.n_threads) for t in range(len(problems))]
        if replaced or dropped:
            warnings.warn(f"pruning (min_count={self.min_count}): {replaced} rows with rare "
                          f"label sets replaced by frequent subsets, {dropped} dropped (no "
                          "frequent subset)", UserWarning, stacklevel=3)
        self.parts_ = parts

    def predict_marginals(self, X: Any) -> np.ndarray:
        """Every label's score as a dense float64 (n_samples, n_labels) array."""
        self._check_fitted()
        return self._marginals(self._prepare_X(
            as_feature_matrix(X, n_features=self.n_features_in_)))

    def _marginals(self, X: sp.csr_matrix) -> np.ndarray:
        L = len(self.labels_)
        tot = np.zeros((X.shape[0], L))
        votes = np.zeros(L)
        for labelset, classes, kind, learner in self.parts_:
            P = multiclass_proba(kind, learner, X, classes.shape[0])
            tot[:, labelset] += P @ classes.astype(np.float64)
            votes[labelset] += 1
        return tot / np.maximum(votes, 1)[None, :]

    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        X = self._prepare_X(X)
        parts = [topk_dense(self._marginals(X[a:a + _ROW_BLOCK]).astype(np.float32), k)
                 for a in range(0, X.shape[0], _ROW_BLOCK)]
        return sp.csr_matrix(sp.vstack(parts, format="csr"))

    def _to_probability(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    def _linear(self) -> bool:
        return all(kind in _KINDS for _, _, kind, _ in self.parts_)

    def _saved_params(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        params["base"] = base_to_json(self.base, self._linear())
        return params

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        base_to_json(self.base, self._linear())
        d = int(self.n_features_in_)
        set_ptr, class_ptr, kinds, set_labels, class_rows, Ws, bs = [0], [0], [], [], [], [], []
        width = max(labelset.size for labelset, _, _, _ in self.parts_)
        for labelset, classes, kind, learner in self.parts_:
            set_labels.append(labelset)
            set_ptr.append(set_ptr[-1] + labelset.size)
            padded = np.zeros((classes.shape[0], width), dtype=np.float32)
            padded[:, :labelset.size] = classes
            class_rows.append(sp.csr_matrix(padded))
            class_ptr.append(class_ptr[-1] + classes.shape[0])
            kinds.append(_KINDS.index(kind))
            if kind == "const":
                Ws.append(np.zeros((d, 1)))
                bs.append(np.zeros(1))
            else:
                Ws.append(learner[0])
                bs.append(learner[1])
        W = sp.csr_matrix(np.hstack(Ws))
        # label sets: CSR over the labelset's positions (class c holds positions indices[..])
        Cm = sp.csr_matrix(sp.vstack(class_rows, format="csr"))
        return {"set_ptr": np.asarray(set_ptr, np.int64),
                "set_labels": np.concatenate(set_labels).astype(np.int64),
                "class_ptr": np.asarray(class_ptr, np.int64),
                "kinds": np.asarray(kinds, np.int64),
                "class_indptr": np.asarray(Cm.indptr, np.int64),
                "class_positions": np.asarray(Cm.indices, np.int64),
                "coef_data": np.asarray(W.data, np.float64),
                "coef_indices": np.asarray(W.indices, np.int64),
                "coef_indptr": np.asarray(W.indptr, np.int64),
                "intercept": np.concatenate(bs).astype(np.float64),
                "col_mean": self.col_mean_, "col_scale": self.col_scale_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        name = type(self).__name__
        need = ("set_ptr", "set_labels", "class_ptr", "kinds", "class_indptr",
                "class_positions", "coef_data", "coef_indices", "coef_indptr", "intercept")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise DataFormatError(f"{name} model lacks arrays: {', '.join(missing)}")
        a = {k: np.asarray(arrays[k]) for k in need}
        L, d = len(self.labels_), int(self.n_features_in_)
        sp_, cp = a["set_ptr"], a["class_ptr"]
        T = sp_.size - 1
        n_classes = int(cp[-1]) if cp.size else -1
        ok = (T >= 1 and cp.shape == (T + 1,) and a["kinds"].shape == (T,)
              and int(sp_[0]) == 0 and int(sp_[-1]) == a["set_labels"].size
              and bool(np.all(np.diff(sp_) > 0)) and int(cp[0]) == 0
              and bool(np.all(np.diff(cp) > 0))
              and a["set_labels"].size and int(a["set_labels"].min()) >= 0
              and int(a["set_labels"].max()) < L
              and bool(np.all((a["kinds"] >= 0) & (a["kinds"] < len(_KINDS))))
              and a["class_indptr"].shape == (n_classes + 1,)
              and int(a["class_indptr"][-1]) == a["class_positions"].size
              and a["intercept"].shape == (n_classes,)
              and a["coef_indptr"].shape == (d + 1,)
              and a["coef_indices"].shape == a["coef_data"].shape
              and int(a["coef_indptr"][-1]) == a["coef_data"].size)
        if not ok:
            raise DataFormatError(f"{name} arrays do not fit {d} features x {L} labels",
                                  field="arrays")
        n_cols = a["intercept"].size
        W = sp.csr_matrix((a["coef_data"], a["coef_indices"], a["coef_indptr"]),
                          shape=(d, n_cols)).toarray()
        Cm = sp.csr_matrix((np.ones(a["class_positions"].size), a["class_positions"],
                            a["class_indptr"]), shape=(n_classes, int(np.max(np.diff(sp_)))))
        parts, col = [], 0
        for t in range(T):
            labelset = a["set_labels"][sp_[t]:sp_[t + 1]]
            classes = Cm[cp[t]:cp[t + 1]].toarray()[:, :labelset.size] > 0
            kind = _KINDS[int(a["kinds"][t])]
            width = 1 if kind == "const" else classes.shape[0]
            learner = None if kind == "const" else (W[:, col:col + width],
                                                    a["intercept"][col:col + width])
            col += width
            parts.append((labelset, classes, kind, learner))
        self.parts_ = parts
        self.col_mean_, self.col_scale_ = check_scaling(arrays, d, name)


class LabelPowerset(_PowersetFamily):
    """Label powerset with pruning of rare label sets (see the module docstring).

    Parameters
    ----------
    min_count: label sets seen fewer times are pruned (1 = keep all).
    max_subsets: frequent subsets that replace a pruned set (Read's b).
    base, C, normalize, n_threads, random_state: as for
        :class:`~labelwise.models.chains.ClassifierChain`.
    """

    _persist_name = "LabelPowerset"

    @property
    def select_c_default(self) -> bool:
        """``Pipeline.tune`` chooses C (of the linear base) by cross-fitting unless told not
        to; a noise-sized gain keeps the C given. Tuned micro / macro-F1 on the MULAN splits,
        C=1 -> the chosen C: medical .737 / .266 -> .785 / .322 and enron .610 / .151 ->
        .605 / .173 (the sets it was chosen on); emotions, scene and yeast keep C=1; corel5k
        .299 / .042 -> .307 / .053, bibtex .392 / .214 -> .464 / .317 (confirm)."""
        return isinstance(self.base, str) and self.base == "linear"

    def __init__(self, *, min_count: int = 1, max_subsets: int = 2, base: Any = "linear",
                 C: float = 1.0, normalize: str | None = "auto", n_threads: int | None = None,
                 random_state: int | None = 0) -> None:
        self.min_count = min_count
        self.max_subsets = max_subsets
        self.base = base
        self.C = C
        self.normalize = normalize
        self.n_threads = n_threads
        self.random_state = random_state

    def _validate_params(self) -> None:
        self._check_common()


class RAkEL(_PowersetFamily):
    """Random k-labelsets, disjoint or overlapping (see the module docstring).

    Parameters
    ----------
    k: labels per labelset (>= 1).
    mode: "disjoint" (RAkELd) or "overlapping" (RAkELo).
    n_models: labelsets of RAkELo (None = min(2 L, C(L, k))); ignored by RAkELd.
    min_count, max_subsets: pruning of each labelset's powerset (see LabelPowerset).
    base, C, normalize, n_threads, random_state: as for LabelPowerset.
    """

    _persist_name = "RAkEL"

    @property
    def select_c_default(self) -> bool:
        """``Pipeline.tune`` chooses C (of the linear base) by cross-fitting unless told not
        to; a noise-sized gain keeps the C given (MULAN medical: tuned micro-F1 0.747 at
        C=1, 0.793 with the chosen C; emotions, yeast, scene, enron keep C=1)."""
        return isinstance(self.base, str) and self.base == "linear"

    def __init__(self, *, k: int = 3, mode: str = "disjoint", n_models: int | None = None,
                 min_count: int = 1, max_subsets: int = 2, base: Any = "linear",
                 C: float = 1.0, normalize: str | None = "auto", n_threads: int | None = None,
                 random_state: int | None = 0) -> None:
        self.k = k
        self.mode = mode
        self.n_models = n_models
        self.min_count = min_count
        self.max_subsets = max_subsets
        self.base = base
        self.C = C
        self.normalize = normalize
        self.n_threads = n_threads
        self.random_state = random_state

    def _validate_params(self) -> None:
        check_positive_int(self, "k")
        if self.mode not in ("disjoint", "overlapping"):
            raise ValueError(f"mode must be 'disjoint' or 'overlapping', got {self.mode!r}")
        if self.n_models is not None:
            check_positive_int(self, "n_models")
        self._check_common()

    def _labelsets(self, L: int, rng: np.random.Generator) -> list[np.ndarray]:
        return rakel_labelsets(L, self.k, self.mode, self.n_models, rng)
