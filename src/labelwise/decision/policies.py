"""Decision policies: scores (or calibrated probabilities) to label sets.

Every policy has ``fit(S, Y)`` (tuning scores and truth: pass *cross-fitted training*
scores from :func:`labelwise.crossfit.cross_fit_scores`; ``fit`` takes nothing else, so
evaluation rows cannot reach it), ``apply(S, *, return_scores=False)``, ``explain()``,
``to_dict()`` / ``arrays()`` / :func:`policy_from_dict`, ``save(dir)`` / :func:`load_policy`.

``apply`` returns the label sets as CSR float32 0/1 (n_samples, n_labels) with int32 column
indices (int64 past 2**31 labels); with ``return_scores=True`` also a CSR of the same pairs
holding their scores. A pair is accepted when its score >= the threshold. Only stored
(retrieved) pairs of a sparse top-k matrix can be accepted; dense scores have every pair
stored. Thresholds live on the scale of the scores the policy was fitted on (fit on
calibrated probabilities, apply to calibrated probabilities).

Policies
--------
``TopK(k)``: the k highest stored scores of each row (ties: lower label id first).
``GlobalThreshold(threshold=None, objective=...)``: one threshold; None tunes it for the
objective over every candidate cut.
``PerLabelThreshold(objective=..., shrinkage=10.0)``: a threshold per label, tuned for
``"macro-f1"`` (each label's F1 maximised on its own), ``"micro-f1"`` (the exact optimum over
per-label thresholds by Dinkelbach's method: for the current value F, each label maximises
``2 tp - F m``; F is then recomputed, until it stops rising) or ``"samples-f1"`` (from the
best global threshold, rounds of best responses: each label picks its best cut holding the
others fixed; a round is kept only when it raises samples-F1, else it is retried with the
half of the labels that expected the largest gains, up to 4 halvings). Then each tuned
threshold is shrunk toward the tuned global threshold ``t_g``:
``t_j = w_j t*_j + (1 - w_j) t_g`` with ``w_j = pos_j / (pos_j + shrinkage)``, pos_j the
label's true pairs in the tuning data, so a label seen a few times keeps mostly the global
threshold. A label whose best choice is to accept nothing gets ``t*_j`` just above its top
tuning score.
``fit(S, Y, folds=f)`` (f: the fold of each row from
``cross_fit_scores(..., return_folds=True)``) tunes the thresholds on each fold's rows alone,
i.e. on the scores of one fold model, and averages them over the folds (as LibMultiLabel's
thresholding and Fan & Lin's SCut do): out-of-fold scores of different fold models are on
different scales (a fold model that saw no positive of a rare label scores it on its own
scale), and a threshold averaged over models transfers to a new model (the one refitted on
all rows) better than one tuned on their pooled scores. Within a fold, a label without
positives takes that fold's global threshold (its shrinkage weight is 0).
``PrecisionTarget(precision=0.9, mode="set")``: on calibrated probabilities. ``"set"``: the
lowest threshold at which the accepted pairs of the tuning data have precision >= target
(the largest coverage reaching the target, as
:func:`labelwise.metrics.coverage_at_precision` ``mode="labels"``); ``"pointwise"``: accept
a pair when its own probability >= target. ``confidence=c`` (mode "set" only): the cuts
are tested from the highest threshold down, each by the one-sided Clopper-Pearson lower
confidence bound of the accepted tuning pairs' precision >= target, in two fixed sequences
at level 1 - (1 - c) / 2 each (Bonferroni), each stopping at its first failure
(Learn-then-Test's fixed-sequence rule; :func:`labelwise.decision._bounds.certified_cut`):
one starts at the fewest pairs that can pass at all (no error allowed there), one at the
fewest at which a precision half-way between the target and 1 passes; the lowest cut either
passed is kept. So the certificate holds for the searched threshold: on new rows from the
same distribution the precision falls short of the target with probability at most 1 - c
(simulated in the tests; it does not cover a shift between the tuning and the new rows'
distributions, e.g. other label frequencies). Before the fixed sequence the lowest passing
cut of all was kept, which spent the 1 - c error once per cut scanned; a single sequence
from the zero-error start was ended by one wrong pair among the very top ones.
Reports ``coverage_`` (share of tuning rows with at least one accepted label),
``precision_``, ``precision_lower_bound_`` (at level c; None without ``confidence``),
``threshold_`` and, with ``confidence``, ``sequence_``: why the certificate stops where it
does (the tuning pairs, each test's level, the sequence chosen, and per sequence its start,
first cut tested, cuts passed, last pass and first failure, each as correct / pairs / lower
bound);
rows left empty are those to send to a person.
``Combined(threshold=policy, k=None, at_least_one=True)``: pairs accepted by the inner
threshold policy and within the row's top k; a row left empty gets its top-1 pair.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .. import store
from ..checks import positive_int
from ..errors import DataFormatError, NotFittedError
from ._bounds import START_SHARES, certified_cut, precision_lower_bound
from ._entries import Entries, entries, fold_ids, hits, rebuild, truth
from ._search import f1, global_path, per_group_best
from ._tuning import micro_f1_thresholds, samples_f1_thresholds

__all__ = ["DecisionPolicy", "TopK", "GlobalThreshold", "PerLabelThreshold", "PrecisionTarget",
           "Combined", "POLICIES", "OBJECTIVES", "policy_from_dict", "load_policy", "FORMAT",
           "row_ranks"]

FORMAT = "labelwise.decision"
OBJECTIVES = ("micro-f1", "macro-f1", "samples-f1")


def row_ranks(E: Entries) -> np.ndarray:
    """Rank of each entry within its row: 0 = highest score, ties by lower label id."""
    order = np.lexsort((E.cols, -E.values, E.rows))
    rank = np.empty(E.nnz, np.int64)
    rank[order] = np.arange(E.nnz) - E.indptr[E.rows[order]]
    return rank


def _check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise DataFormatError(f"objective must be one of {OBJECTIVES}, got {objective!r}",
                              field="objective")
    return objective


def _groups(E: Entries, Yc, objective: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry group ids and per-group positive counts for an F1 average."""
    if objective == "micro-f1":
        return np.zeros(E.nnz, np.int64), np.array([Yc.nnz], np.int64)
    if objective == "macro-f1":
        return E.cols, np.bincount(Yc.indices.astype(np.int64), minlength=E.shape[1])
    return E.rows, np.diff(Yc.indptr).astype(np.int64)


def best_global(E: Entries, h: np.ndarray, Yc, objective: str) -> tuple[float, float]:
    """(threshold, objective value) of the best single threshold."""
    g, pos = _groups(E, Yc, objective)
    thr, obj = global_path(E.values, g, h, pos)
    i = int(np.argmax(obj))
    return float(thr[i]), float(obj[i])


class DecisionPolicy:
    """Base class; see the module docstring."""

    name: ClassVar[str] = ""

    def fit(self, S: Any, Y: Any, *, folds: Any = None) -> DecisionPolicy:
        """Tune on scores S (cross-fitted training scores) and their truth Y; returns self.

        ``folds``: the cross-fitting fold of every row (``cross_fit_scores(...,
        return_folds=True)``); only :class:`PerLabelThreshold` uses it (module docstring),
        the other policies refuse it."""
        if folds is not None:
            raise DataFormatError(f"{type(self).__name__} does not take folds",
                                  field="folds")
        E = entries(S)
        Yc = truth(Y, E.shape)
        self.n_labels_ = E.shape[1]
        self._fit(E, Yc, hits(E, Yc))
        return self

    def apply(self, S: Any, *, return_scores: bool = False) -> Any:
        """Label sets (CSR float32 0/1); with ``return_scores`` also their scores (CSR)."""
        self._check_fitted()
        E = entries(S)
        if E.shape[1] != self.n_labels_:
            raise DataFormatError(f"scores have {E.shape[1]} labels but the policy was fitted "
                                  f"on {self.n_labels_}", field="S")
        keep = self._keep(E)
        sets = rebuild(E, np.ones(E.nnz), keep)
        if return_scores:
            return sets, rebuild(E, E.values, keep)
        return sets

    predict = apply

    def fit_apply(self, S: Any, Y: Any) -> Any:
        return self.fit(S, Y).apply(S)

    # -------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {"policy": self.name, "params": self._params(), "n_labels": self.n_labels_,
                "state": self._state()}

    def arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return self._arrays()

    def save(self, directory: str | os.PathLike[str], *, name: str = "decision") -> None:
        """Write ``name.json`` + ``name.npz`` into ``directory`` (atomically, file by file)."""
        store.save_object(directory, name, FORMAT, self.to_dict(), self.arrays())

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, name: str = "decision") -> DecisionPolicy:
        return load_policy(directory, name=name)

    def explain(self) -> dict[str, Any]:
        """What the policy does, with numbers (JSON-able)."""
        self._check_fitted()
        return {"policy": self.name, "params": self._params(), **self._explain()}

    # -------------------------------------------------------------- hooks
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_labels_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(S, Y)")

    def _fit(self, E: Entries, Yc, h: np.ndarray) -> None:
        pass

    def _keep(self, E: Entries) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {}

    def _state(self) -> dict[str, Any]:
        return {}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _set(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        pass

    def _explain(self) -> dict[str, Any]:
        return {}


class TopK(DecisionPolicy):
    """The k highest stored scores per row."""

    name = "top-k"

    def __init__(self, k: int = 1) -> None:
        self.k = k

    def _check(self) -> int:
        return positive_int(self.k, "k")

    def _fit(self, E, Yc, h) -> None:
        self._check()

    def _keep(self, E: Entries) -> np.ndarray:
        return row_ranks(E) < self._check()

    def _params(self) -> dict[str, Any]:
        return {"k": int(self.k)}


class GlobalThreshold(DecisionPolicy):
    """One threshold for all labels; tuned for ``objective`` when ``threshold`` is None."""

    name = "global-threshold"

    def __init__(self, threshold: float | None = None, *, objective: str = "micro-f1") -> None:
        self.threshold = threshold
        self.objective = objective

    def _fit(self, E, Yc, h) -> None:
        _check_objective(self.objective)
        if self.threshold is not None:
            t = float(self.threshold)
            if not np.isfinite(t):
                raise DataFormatError(f"threshold must be finite, got {t}", field="threshold")
            self.threshold_ = t
            self.tuned_value_ = None
            return
        self.threshold_, self.tuned_value_ = best_global(E, h, Yc, self.objective)

    def _keep(self, E: Entries) -> np.ndarray:
        return E.values >= self.threshold_

    def _params(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "objective": self.objective}

    def _state(self) -> dict[str, Any]:
        t = self.threshold_
        return {"threshold": t if np.isfinite(t) else None, "tuned_value": self.tuned_value_}

    def _set(self, state, arrays) -> None:
        t = state["threshold"]
        self.threshold_ = float("inf") if t is None else float(t)
        self.tuned_value_ = state.get("tuned_value")

    def _explain(self) -> dict[str, Any]:
        return self._state()


class PerLabelThreshold(DecisionPolicy):
    """A threshold per label, tuned for the objective and shrunk toward the global one."""

    name = "per-label-threshold"

    def __init__(self, *, objective: str = "macro-f1", shrinkage: float = 10.0,
                 max_rounds: int = 20) -> None:
        self.objective = objective
        self.shrinkage = shrinkage
        self.max_rounds = max_rounds

    def fit(self, S: Any, Y: Any, *, folds: Any = None) -> PerLabelThreshold:
        """Tune on S, Y; with ``folds`` tune within each fold and average (module doc)."""
        self.n_folds_ = None
        if folds is None:
            return super().fit(S, Y)
        E = entries(S)
        Yc = truth(Y, E.shape)
        f = fold_ids(folds, E.shape[0])
        Sc = sp.csr_matrix(S) if sp.issparse(S) else np.asarray(S)
        parts = []
        for g in np.unique(f):
            rows = np.flatnonzero(f == g)
            parts.append(PerLabelThreshold(**self._params()).fit(Sc[rows], Yc[rows]))
        self.n_labels_ = E.shape[1]
        self.n_folds_ = len(parts)
        self.thresholds_ = np.mean([p.thresholds_ for p in parts], axis=0)
        self.tuned_ = np.mean([p.tuned_ for p in parts], axis=0)
        self.global_threshold_ = float(np.mean([p.global_threshold_ for p in parts]))
        self.n_positives_ = np.bincount(Yc.indices.astype(np.int64),
                                        minlength=E.shape[1]).astype(np.int64)
        return self

    def _fit(self, E, Yc, h) -> None:
        _check_objective(self.objective)
        if not (isinstance(self.shrinkage, int | float) and self.shrinkage >= 0):
            raise DataFormatError(f"shrinkage must be a number >= 0, got {self.shrinkage!r}",
                                  field="shrinkage")
        L = E.shape[1]
        pos = np.bincount(Yc.indices.astype(np.int64), minlength=L)
        t_g, _ = best_global(E, h, Yc, self.objective)
        hw = h.astype(np.float64)
        if self.objective == "macro-f1":
            tuned, _, _ = per_group_best(E.values, E.cols, L, hw,
                                         lambda tp, m, g: f1(tp, m, pos[g]))
        elif self.objective == "micro-f1":
            tuned = micro_f1_thresholds(E, hw, pos, Yc.nnz, self.max_rounds)
        else:
            tuned, self.tuned_value_ = samples_f1_thresholds(E, hw, Yc, t_g, self.max_rounds)
        finite_g = t_g if np.isfinite(t_g) else (float(E.values.max()) if E.nnz else 0.0)
        tuned = np.where(np.isnan(tuned), finite_g, tuned)
        w = pos / (pos + float(self.shrinkage)) if self.shrinkage > 0 else (pos > 0) * 1.0
        self.tuned_ = tuned
        self.global_threshold_ = float(finite_g)
        self.thresholds_ = w * tuned + (1.0 - w) * finite_g
        self.n_positives_ = pos.astype(np.int64)

    def _keep(self, E: Entries) -> np.ndarray:
        return E.values >= self.thresholds_[E.cols]

    def _params(self) -> dict[str, Any]:
        return {"objective": self.objective, "shrinkage": float(self.shrinkage),
                "max_rounds": int(self.max_rounds)}

    def _state(self) -> dict[str, Any]:
        return {"global_threshold": self.global_threshold_,
                "n_folds": getattr(self, "n_folds_", None)}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"thresholds": self.thresholds_, "tuned": self.tuned_,
                "n_positives": self.n_positives_}

    def _set(self, state, arrays) -> None:
        self.global_threshold_ = float(state["global_threshold"])
        n_folds = state.get("n_folds")
        if n_folds is not None and (isinstance(n_folds, bool) or not isinstance(n_folds, int)
                                    or n_folds < 1):
            raise DataFormatError(f"n_folds must be None or an int >= 1, got {n_folds!r}",
                                  field="n_folds")
        self.n_folds_ = n_folds
        for key in ("thresholds", "tuned", "n_positives"):
            if arrays[key].shape != (self.n_labels_,):
                raise DataFormatError(f"array {key!r} has shape {arrays[key].shape}, expected "
                                      f"({self.n_labels_},)", field="arrays")
        self.thresholds_ = arrays["thresholds"]
        self.tuned_ = arrays["tuned"]
        self.n_positives_ = arrays["n_positives"]

    def _explain(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        return {"global_threshold": self.global_threshold_,
                "n_folds": getattr(self, "n_folds_", None), "labels": [
            {"label": j, "threshold": num(self.thresholds_[j]), "tuned": num(self.tuned_[j]),
             "positives": int(self.n_positives_[j])} for j in range(self.n_labels_)]}


class PrecisionTarget(DecisionPolicy):
    """Accept pairs at a target precision on calibrated probabilities; report coverage."""

    name = "precision-target"

    def __init__(self, precision: float = 0.9, *, mode: str = "set",
                 confidence: float | None = None) -> None:
        self.precision = precision
        self.mode = mode
        self.confidence = confidence

    def _fit(self, E, Yc, h) -> None:
        p = float(self.precision)
        if not 0.0 < p <= 1.0:
            raise DataFormatError(f"precision must be in (0, 1], got {self.precision!r}",
                                  field="precision")
        if self.mode not in ("set", "pointwise"):
            raise DataFormatError(f"mode must be 'set' or 'pointwise', got {self.mode!r}",
                                  field="mode")
        c = self.confidence
        if c is not None and (isinstance(c, bool) or not isinstance(c, int | float)
                              or not 0.0 < float(c) < 1.0):
            raise DataFormatError(f"confidence must be None or in (0, 1), got {c!r}",
                                  field="confidence")
        if c is not None and self.mode == "pointwise":
            raise DataFormatError("confidence applies to mode='set' only", field="confidence")
        if self.mode == "pointwise":
            t = p
        else:
            order = np.argsort(-E.values, kind="stable")
            v = E.values[order]
            k = np.cumsum(h[order])
            n = np.arange(1, v.size + 1)
            ends = np.flatnonzero(v != np.r_[v[1:], np.nan])  # one cut per distinct score
            if c is None:
                cut = ends[k[ends] >= p * n[ends]]
            else:
                # two fixed sequences from the highest cut down (Bonferroni), each stopping
                # at its first failure: the level holds for the cut chosen by the search
                j, js, starts, each = certified_cut(k[ends], n[ends], p, float(c))
                cut = ends[: j + 1][-1:]
                sequence = _sequence_trace(k[ends], n[ends], p, each, js, starts)
            if cut.size == 0:
                t = float("inf")
            else:
                i = int(cut[-1])
                t = float(v[i])  # the lowest accepted score: coverage_at_precision's rule
        self.threshold_ = t
        self.sequence_ = sequence if self.mode == "set" and c is not None else None
        keep = E.values >= t
        n_acc = int(keep.sum())
        k_acc = int(h[keep].sum())
        self.precision_ = float(k_acc / n_acc) if n_acc else None
        self.precision_lower_bound_ = (
            None if c is None or not n_acc
            else float(precision_lower_bound(np.array([k_acc]), np.array([n_acc]), float(c))[0]))
        covered = np.bincount(E.rows[keep], minlength=E.shape[0]) > 0
        self.coverage_ = float(covered.mean()) if E.shape[0] else 0.0
        self.n_accepted_ = n_acc

    def _keep(self, E: Entries) -> np.ndarray:
        return E.values >= self.threshold_

    def coverage(self, S: Any) -> float:
        """Share of the rows of S that get at least one label."""
        sets = self.apply(S)
        return float((np.diff(sets.indptr) > 0).mean()) if sets.shape[0] else 0.0

    def _params(self) -> dict[str, Any]:
        return {"precision": float(self.precision), "mode": self.mode,
                "confidence": None if self.confidence is None else float(self.confidence)}

    def _state(self) -> dict[str, Any]:
        t = self.threshold_
        return {"threshold": t if np.isfinite(t) else None, "coverage": self.coverage_,
                "precision": self.precision_, "n_accepted": self.n_accepted_,
                "precision_lower_bound": self.precision_lower_bound_,
                "sequence": self.sequence_}

    def _set(self, state, arrays) -> None:
        self.threshold_ = float("inf") if state["threshold"] is None else float(state["threshold"])
        self.precision_lower_bound_ = state.get("precision_lower_bound")
        self.sequence_ = state.get("sequence")  # absent in files of older versions
        self.coverage_ = float(state["coverage"])
        self.precision_ = state["precision"]
        self.n_accepted_ = int(state["n_accepted"])

    def _explain(self) -> dict[str, Any]:
        return self._state()


def _sequence_trace(k: np.ndarray, n: np.ndarray, target: float, level: float,
                    ends: list[int], starts: list[int | None]) -> dict[str, Any]:
    """Why a certificate stops where it does (``PrecisionTarget.sequence_``): the tuning
    pairs, the level of each test, the sequence chosen (the one whose last passing cut holds
    the most pairs; None when neither passed any) and, per sequence of
    :func:`labelwise.decision._bounds.certified_cut`, the share of correct pairs its start
    assumes, its start in pairs (``min_pairs``), its first cut tested, the cuts it passed,
    its last pass and its first failure (correct, pairs, lower bound; None when there is
    none)."""
    def cut(i: int) -> dict[str, Any] | None:
        if not 0 <= i < n.size:
            return None
        b = precision_lower_bound(k[i:i + 1], n[i:i + 1], level)[0]
        return {"correct": int(k[i]), "pairs": int(n[i]), "lower_bound": float(b)}

    seqs = []
    for share, j, m in zip(START_SHARES, ends, starts, strict=True):
        start = n.size if m is None else int(np.searchsorted(n, m, side="left"))
        passed = max(j - start + 1, 0)
        seqs.append({"start_share": (1.0 + target) / 2.0 if share is None else share,
                     "min_pairs": m, "first_test": cut(start), "passed": passed,
                     "last_pass": cut(j) if passed else None,
                     "first_failure": cut(start + passed)})
    best = max(ends)
    return {"pairs": int(n[-1]) if n.size else 0, "level": level,
            "chosen": ends.index(best) if best >= 0 else None, "sequences": seqs}


class Combined(DecisionPolicy):
    """Inner threshold policy, within the top k, and at least one label per row."""

    name = "combined"

    def __init__(self, threshold: DecisionPolicy | None = None, *, k: int | None = None,
                 at_least_one: bool = True) -> None:
        self.threshold = threshold
        self.k = k
        self.at_least_one = at_least_one

    def _inner(self) -> DecisionPolicy:
        return PerLabelThreshold() if self.threshold is None else self.threshold

    def _fit(self, E, Yc, h) -> None:
        positive_int(self.k, "k", allow_none=True)
        inner = self._inner()
        if isinstance(inner, Combined):
            raise DataFormatError("Combined cannot nest another Combined", field="threshold")
        inner.n_labels_ = E.shape[1]
        inner._fit(E, Yc, h)
        self.threshold_policy_ = inner

    def _keep(self, E: Entries) -> np.ndarray:
        keep = self.threshold_policy_._keep(E)
        rank = row_ranks(E) if (self.k is not None or self.at_least_one) else None
        if self.k is not None:
            keep &= rank < int(self.k)
        if self.at_least_one:
            empty = np.bincount(E.rows[keep], minlength=E.shape[0]) == 0
            keep |= (rank == 0) & empty[E.rows]
        return keep

    def _params(self) -> dict[str, Any]:
        return {"k": None if self.k is None else int(self.k),
                "at_least_one": bool(self.at_least_one)}

    def _state(self) -> dict[str, Any]:
        return {"threshold": self.threshold_policy_.to_dict()}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {f"inner__{k}": v for k, v in self.threshold_policy_.arrays().items()}

    def _set(self, state, arrays) -> None:
        inner = {k[len("inner__"):]: v for k, v in arrays.items() if k.startswith("inner__")}
        self.threshold_policy_ = policy_from_dict(state["threshold"], inner)
        self.threshold = self.threshold_policy_

    def _explain(self) -> dict[str, Any]:
        return {"threshold": self.threshold_policy_.explain()}


POLICIES: dict[str, type[DecisionPolicy]] = {
    cls.name: cls for cls in (TopK, GlobalThreshold, PerLabelThreshold, PrecisionTarget,
                              Combined)}


def policy_from_dict(d: dict[str, Any], arrays: dict[str, np.ndarray]) -> DecisionPolicy:
    """Rebuild a fitted policy from ``to_dict()`` and ``arrays()``."""
    name = d.get("policy") if isinstance(d, dict) else None
    if name not in POLICIES:
        raise DataFormatError(f"unknown decision policy {name!r}; known: "
                              f"{', '.join(sorted(POLICIES))}", field="policy")
    try:
        obj = POLICIES[name](**d.get("params", {}))
        n = d["n_labels"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise DataFormatError(f"n_labels must be an int >= 0, got {n!r}", field="n_labels")
        obj.n_labels_ = n
        obj._set(d.get("state", {}), arrays)
    except DataFormatError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise DataFormatError(f"malformed {name} policy: {e!r}") from None
    return obj


def load_policy(directory: str | os.PathLike[str], *, name: str = "decision",
                verify: bool = True) -> DecisionPolicy:
    """Read ``name.json`` + ``name.npz`` written by ``DecisionPolicy.save``."""
    d, arrays = store.read_object(directory, name, FORMAT, verify=verify)
    return policy_from_dict(d, arrays)
