"""``AutoModel`` (``labelwise train --model auto``): the family and its settings chosen by
cross-validation on the training rows, within a time budget.

How a choice is made
--------------------
1. *Facts* of the training data (:class:`DataFacts`): rows, labels, features, stored feature
   entries, density, label cardinality and the number of distinct label sets.
2. *Candidates* from the table :data:`FAMILIES`: each :class:`Family` entry says when it
   applies (a rule on the facts, never a dataset name), which settings to try (best guess
   first) and what one fit on all rows is expected to cost, in seconds, from the facts.
   Adding a family is adding one entry. Candidates run in rounds: every family's first
   setting (cheapest first), then every family's second setting, and so on.
3. *Cross-validation*: the training rows are split once into ``cv`` folds by iterative
   stratification (:class:`labelwise.split.IterativeStratifiedKFold`); for each candidate and
   fold a fresh :class:`~labelwise.Pipeline` (its per-column scaling, or a clone of the
   featurizer for texts, and the model) is fitted on the other folds and scores the held-out
   fold. Nothing is fitted on a row it is then scored on, and the data given to ``fit`` are
   all it ever sees (there is no argument for evaluation rows).
4. *Scoring* by the objective: ``micro-f1``, ``macro-f1``, ``samples-f1`` need a decision
   rule, so per-label thresholds (:class:`labelwise.decision.PerLabelThreshold`) are tuned
   inside the folds: the held-out fold's sets come from thresholds fitted on the other folds'
   out-of-fold scores and labels (each fold model's own scores, averaged, as ``tune`` does),
   never on the held-out fold's labels. ``map`` (mean over labels of average precision) and
   ``p@1`` (precision of the top label) are read from the held-out scores directly. A
   candidate's score is the mean over folds (its per-fold scores are kept).
5. *Budget*: a candidate is started only when the time spent so far, its estimated
   cross-validation time and the estimated final refit (of the best so far or of this
   candidate, whichever costs more) fit in 90 % of the budget (:data:`PLAN_SHARE`). Estimates are the table's cost
   formulas corrected by the measured/estimated ratio: the family's own once one of its
   candidates has run, else the mean ratio of all candidates run so far. A candidate whose
   folds run over (its measured fold times say the rest would not fit) is stopped and left
   out of the choice. The first candidate always runs, so a model comes out of any budget
   (a warning says when even it is expected to exceed the budget).
6. *Blends*: when every label is scored (labels <= ``k``), the out-of-fold scores of the best
   two candidates of each family are kept, and blends are scored on them without any fit
   (:func:`blend_sets`: the best two and three candidates, the best with the best one and
   two of other families). A blend (:class:`labelwise.models.blend.Blend`) averages its
   members' probabilities, each mapped by per-label Platt scaling; for fold f that scaling is
   fitted on the other folds' rows only, then scored as in step 4. A blend replaces the best
   single candidate when its mean score is higher and its fit (estimated as its members'
   measured cross-validation seconds plus their refits, since ``Blend.fit`` calibrates its
   members by its own cross-validation) still ends within the plan; otherwise it is listed as
   ``skipped``. Scoring is timed as well: a blend is not even scored (``skipped``, "not
   scored") when its calibration and scoring, estimated from those measured so far, and the
   refit of the best so far would not end within the plan.
7. *Repeats*: one partition into folds leaves the choice noisy where rows are few and labels
   rare (macro-F1 on 333 rows and 45 labels: candidates 0.006 apart in the mean of three
   folds were 0.05 apart on a test split). While the budget allows (``repeats``, 2 by
   default), the rows are partitioned again (``random_state + 1``, ...) and the best
   :data:`KEEP_PER_FAMILY` candidates of each family, every member of a scored blend and the
   blends are scored again on the new folds (the blends on their members' new out-of-fold
   scores, as in step 6). A round runs only when the first partition's measured seconds of
   all of it and the refit of the best still end within the plan, and a round that runs over
   while running is dropped whole (``partition_notes_`` says why). The choice is then made
   among the candidates scored on every partition, by the mean over all their folds.
8. *Final model*: the best mean score wins (ties: the one run first). Its settings are fitted
   on all training rows as an ordinary :class:`~labelwise.Pipeline` (``pipeline_``, the same
   as ``Pipeline(model=Cls(**settings)).fit(X, Y)``), then calibrated (per-label Platt) and
   given per-label thresholds for the objective (micro-F1 for ``map`` and ``p@1``, which
   need no sets) fitted on the winner's out-of-fold scores of every partition (stacked: each
   row once per partition, each partition's folds kept apart), so no further model is
   trained.

The leaderboard (``leaderboard_``, in ``pipeline_.tuning_["auto"]`` and so in the saved
``pipeline.json``) lists every candidate: name, family, model class, settings, status
(``done``, ``stopped`` or ``skipped``), per-fold and mean score, the partitions they span,
seconds and estimated seconds (those scored on more partitions first). The whole ``fit`` (facts, cross-validation, final refit and tuning) is timed
against the budget; ``seconds_`` is what it took.
"""

from __future__ import annotations

import importlib
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._estimator import Estimator
from .checks import positive_int
from .dataset import Dataset, as_label_matrix
from .errors import DataFormatError, LabelwiseError, NotFittedError

__all__ = ["AutoModel", "DataFacts", "Family", "FAMILIES", "OBJECTIVES", "parse_budget",
           "candidates_for"]

#: objectives auto can choose for
OBJECTIVES = ("micro-f1", "macro-f1", "samples-f1", "map", "p@1")

#: seconds kept free for calibration, thresholds and saving after the final refit
FINISH_RESERVE_S = 1.0

#: share of the budget that candidates and the estimated final refit are planned into; the
#: remaining tenth absorbs a refit or a fold that takes longer than measured so far
PLAN_SHARE = 0.9


# ---------------------------------------------------------------------- facts
@dataclass(frozen=True)
class DataFacts:
    """What the candidate rules and cost formulas look at (never a dataset's name)."""

    n_samples: int
    n_labels: int
    n_features: int
    nnz: int  #: stored feature entries
    n_labelsets: int  #: distinct label sets among the rows
    cardinality: float  #: mean labels per row

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.n_samples * self.n_features)

    @property
    def dense(self) -> bool:
        return self.density >= 0.5

    @classmethod
    def of(cls, X: Any, Y: sp.csr_matrix) -> DataFacts:
        n, L = Y.shape
        nnz = int(X.nnz) if sp.issparse(X) else int(np.count_nonzero(X))
        rows = [tuple(Y.indices[Y.indptr[i]:Y.indptr[i + 1]]) for i in range(n)]
        return cls(n_samples=int(n), n_labels=int(L), n_features=int(X.shape[1]), nnz=nnz,
                   n_labelsets=len(set(rows)), cardinality=float(Y.nnz) / max(1, n))


# ---------------------------------------------------------------------- the candidate table
@dataclass(frozen=True)
class Family:
    """One entry of the candidate table.

    ``model``: the model class or ``"module:Class"``; ``applies(facts)``: whether to try it;
    ``settings(facts)``: the parameter dicts to try, best guess first; ``cost(facts,
    settings)``: estimated seconds of one fit on all rows (2 busy cores; the budget loop
    corrects it by measurement); ``rule``: the rule in words, for the docs; ``memory(facts,
    settings)``: an upper estimate of a fit's peak bytes where a family's models can outgrow
    the machine (a candidate above :data:`MEMORY_SHARE` of it is skipped), else None.
    """

    name: str
    model: Any
    applies: Callable[[DataFacts], bool]
    settings: Callable[[DataFacts], list[dict[str, Any]]]
    cost: Callable[[DataFacts, dict[str, Any]], float]
    rule: str = ""
    memory: Callable[[DataFacts, dict[str, Any]], float] | None = None

    def model_class(self) -> type:
        if isinstance(self.model, str):
            module, _, name = self.model.partition(":")
            return getattr(importlib.import_module(module), name)
        return self.model


def _linear_work(f: DataFacts) -> float:
    return float(f.nnz) * f.n_labels


def _log2n(f: DataFacts) -> float:
    return math.log2(max(2, f.n_samples))


def _forest_cost(f: DataFacts, s: dict[str, Any]) -> float:
    trees = s.get("n_estimators", 100)
    share = s.get("max_features", "sqrt")
    tried = math.sqrt(f.n_features) if share == "sqrt" else max(1.0, share * f.n_features)
    work = f.n_samples * _log2n(f) * tried * trees * (1 + f.n_labels / 40)
    # labelwise's own grower: measured/estimated was 0.08-0.29 with 8e-7 (emotions, yeast,
    # medical; 2-core machine under load 9-12), so 3e-7 still errs on the high side
    return 3e-7 * work * (0.8 if s.get("kind") == "extra" else 1.0) * (1.0 if f.dense else 0.5)


def _forest_bytes(f: DataFacts, s: dict[str, Any]) -> float:
    """A forest's peak bytes at worst: every tree's leaf probabilities (float64, labels per
    leaf), a leaf per training row (extra-trees grow to pure leaves), held twice while the
    trees are joined into the model's arrays. Corel5k (4,500 rows, 374 labels), 100
    extra-trees: 2.7e9 estimated, 2.76 GB measured peak (1.30 GiB of leaf arrays)."""
    return 2.0 * 8.0 * f.n_samples * f.n_labels * s.get("n_estimators", 100)


#: a candidate whose fit would take more than this share of the machine's memory is skipped
MEMORY_SHARE = 0.25


def machine_memory() -> int | None:
    """The machine's physical memory in bytes (None where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _forest_settings(f: DataFacts) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"kind": "extra"}, {"kind": "random"},
                                 {"kind": "extra", "n_estimators": 300},
                                 {"kind": "extra", "n_estimators": 1000}]
    if f.dense:  # few informative dense columns: sqrt(features) per split is too few
        out.append({"kind": "extra", "n_estimators": 500, "max_features": 0.3})
    return out


#: the candidate table (module docstring); rules on the facts only
FAMILIES: tuple[Family, ...] = (
    Family("ovr", "labelwise.models.ovr:OneVsRest",
           applies=lambda f: True,
           settings=lambda f: [{"loss": "logistic", "C": 1.0}, {"loss": "squared_hinge", "C": 0.5},
                               {"loss": "logistic", "C": 4.0}, {"loss": "squared_hinge", "C": 2.0},
                               {"loss": "logistic", "C": 16.0}],
           cost=lambda f, s: 0.05 + 3e-7 * _linear_work(f) * (1 + s["C"] / 8),
           rule="always (binary relevance, C and loss tuned)"),
    Family("tree", "labelwise.models.tree:LabelTree",
           applies=lambda f: f.n_labels >= 100,
           settings=lambda f: [{}],
           cost=lambda f, s: 0.1 + 1e-7 * _linear_work(f),
           rule="labels >= 100"),
    Family("chain", "labelwise.models.chains:ClassifierChain",
           applies=lambda f: f.n_labels <= 200,
           settings=lambda f: [{"order": "frequency"}, {"order": "frequency", "C": 4.0}],
           cost=lambda f, s: 0.05 + 5e-7 * (f.nnz + f.n_samples * f.n_labels / 2) * f.n_labels,
           rule="labels <= 200"),
    Family("ecc", "labelwise.models.chains:ClassifierChain",
           applies=lambda f: f.n_labels <= 100,
           settings=lambda f: [{"order": "random", "n_chains": 10, "bootstrap": True,
                                "inference": "beam"}],
           cost=lambda f, s: 0.5 + 5.5e-6 * (f.nnz + f.n_samples * f.n_labels / 2) * f.n_labels,
           rule="labels <= 100 (10 bagged random-order chains, beam search)"),
    Family("powerset", "labelwise.models.powerset:LabelPowerset",
           applies=lambda f: f.n_labelsets <= max(64, f.n_samples // 4),
           settings=lambda f: [{}, {"C": 4.0}],
           cost=lambda f, s: 0.1 + 3e-7 * f.nnz * f.n_labelsets,
           rule="distinct label sets <= max(64, rows / 4)"),
    Family("rakel", "labelwise.models.powerset:RAkEL",
           applies=lambda f: f.n_labels >= 4,
           settings=lambda f: [{}, {"mode": "overlapping"}],
           cost=lambda f, s: 0.1 + (2.5e-6 if s.get("mode") == "overlapping" else 6e-7)
           * _linear_work(f),
           rule="labels >= 4 (disjoint k=3, then overlapping)"),
    Family("mlknn", "labelwise.models.mlknn:MLkNN",
           applies=lambda f: f.n_samples <= 50_000,
           settings=lambda f: [{"k": 10}, {"k": 20}],
           cost=lambda f, s: 0.05 + (2e-8 if f.dense else 1e-8) * 1.5 * f.n_samples * f.nnz,
           rule="rows <= 50,000 (exact neighbours)"),
    Family("forest", "labelwise.models.forest:LabelForest",
           applies=lambda f: f.n_labels <= 1000,
           settings=_forest_settings,
           cost=_forest_cost, memory=_forest_bytes,
           rule="labels <= 1000 (extra-trees, random forest: 100 trees; then 300 and 1000 "
                "extra-trees; dense features: 500 extra-trees trying 30 % of the features "
                "at each split)"),
    Family("clr", "labelwise.models.pairwise:CalibratedLabelRanking",
           applies=lambda f: f.n_labels <= 100,
           settings=lambda f: [{}, {"C": 4.0}],
           cost=lambda f, s: 0.1 + 3e-7 * f.nnz * f.n_labels * max(1.0, f.cardinality),
           rule="labels <= 100 (a classifier per label pair and per label against the "
                "virtual label)"),
    Family("plst", "labelwise.models.embedding:LabelEmbedding",
           applies=lambda f: f.n_labels >= 10,
           settings=lambda f: [{}, {"alpha": 1.0}],
           cost=lambda f, s: 0.1 + 2e-8 * f.n_samples * min(f.n_features, 5000) ** 1.5,
           rule="labels >= 10 (label-space reduction: ridge onto the top components)"),
    Family("codes", "labelwise.models.codes:OutputCodes",
           applies=lambda f: 4 <= f.n_labels <= 1000,
           settings=lambda f: [{}],
           cost=lambda f, s: 0.1 + 6e-7 * _linear_work(f),
           rule="4 <= labels <= 1000 (systematic code with parity bits, loss-based decoding)"),
)


def _short(settings: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in settings.items())


@dataclass
class _Candidate:
    family: Family
    settings: dict[str, Any]
    rank: int  #: index of the settings in the family's list
    raw_fit_s: float  #: the table's estimate of one fit on all rows
    peak_bytes: float | None = None  #: the family's upper estimate of a fit's peak memory

    @property
    def name(self) -> str:
        return self.family.name + (f"({_short(self.settings)})" if self.settings else "")


def candidates_for(facts: DataFacts, families: tuple[Family, ...] = FAMILIES) -> list[_Candidate]:
    """The candidates for the facts, in the order they are tried: rounds by rank (every
    family's first setting, then the second ...), cheapest first within a round."""
    out = []
    for fam in families:
        if not fam.applies(facts):
            continue
        for rank, settings in enumerate(fam.settings(facts)):
            out.append(_Candidate(fam, dict(settings), rank, float(fam.cost(facts, settings)),
                                  None if fam.memory is None
                                  else float(fam.memory(facts, settings))))
    return sorted(out, key=lambda c: (c.rank, c.raw_fit_s))


# ---------------------------------------------------------------------- budget and objective
def parse_budget(value: Any) -> float:
    """Seconds from ``600``, ``"600"``, ``"90s"``, ``"10m"``, ``"1.5h"`` (positive)."""
    if isinstance(value, bool):
        raise DataFormatError(f"budget must be seconds or a duration like 10m, got {value!r}",
                              field="budget")
    if isinstance(value, int | float | np.integer | np.floating):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        unit = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(text[-1:], None)
        number = text[:-1] if unit is not None else text
        try:
            seconds = float(number) * (unit or 1.0)
        except ValueError:
            raise DataFormatError(f"budget must be seconds or a duration like 90s, 10m, 1h; got "
                                  f"{value!r}", field="budget") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise DataFormatError(f"budget must be a positive duration, got {value!r}",
                              field="budget")
    return seconds


def _check_objective(objective: Any) -> str:
    if objective not in OBJECTIVES:
        raise DataFormatError(f"objective must be one of {', '.join(OBJECTIVES)}, got "
                              f"{objective!r}", field="objective")
    return objective


def _rows(X: Any, idx: np.ndarray) -> Any:
    if isinstance(X, list | tuple):
        return [X[i] for i in idx]
    return X[idx]


def fold_score(objective: str, S: sp.csr_matrix, Y: sp.csr_matrix, folds: np.ndarray,
               f: int) -> float:
    """The objective on fold ``f`` of out-of-fold scores ``S``: thresholds for the F1
    objectives tuned on the other folds only (module docstring)."""
    from .metrics import LabelSets, f1_score, mean_average_precision, precision_at_k

    test = np.flatnonzero(folds == f)
    if objective in ("map", "p@1"):
        if objective == "map":
            return float(mean_average_precision(Y[test], S[test]))
        return float(precision_at_k(Y[test], S[test], k=1))
    from .decision import PerLabelThreshold

    rest = np.flatnonzero(folds != f)
    policy = PerLabelThreshold(objective=objective).fit(S[rest], Y[rest], folds=folds[rest])
    average = objective.split("-")[0]
    return float(f1_score(Y[test], LabelSets(sp.csr_matrix(policy.apply(S[test]))),
                          average=average))


# ---------------------------------------------------------------------- the estimator
class AutoModel(Estimator):
    """Choose a model family and its settings by cross-validation within a time budget
    (module docstring), then fit the winner on all training rows.

    Parameters
    ----------
    budget: seconds, or a duration such as ``"10m"`` (the whole ``fit``).
    objective: one of :data:`OBJECTIVES`.
    cv: folds (>= 2) of the iterative-stratified cross-validation.
    k: scores kept per row (``min(k, n_labels)``), as the pipeline's ``k``.
    featurizer: for texts, a labelwise featurizer (cloned in every fold; None: tf-idf).
    scale: the pipelines' per-column scaling of numeric X (see :class:`~labelwise.Pipeline`).
    missing: the pipelines' rule for missing values (NaN) in numeric X: "median", "mean"
        or "error" (see :class:`~labelwise.Pipeline`).
    families: the candidate table (default :data:`FAMILIES`).
    blend: also try blends of the best candidates (module docstring, step 6).
    repeats: the most partitions of the rows into ``cv`` folds (module docstring, step 7):
        each one after the first scores the leading candidates again on new folds, when it is
        expected to end within the budget.
    n_threads: given to every model that has ``n_threads``.
    random_state: folds, and every model's ``random_state``.

    After ``fit``: ``pipeline_`` (the fitted, tuned pipeline), ``leaderboard_``, ``chosen_``
    (its leaderboard entry), ``facts_``, ``seconds_``, ``partitions_`` (the partitions the
    choice was made on) and ``partition_notes_`` (why a further one was not run).
    """

    def __init__(self, *, budget: Any = "10m", objective: str = "micro-f1", cv: int = 3,
                 k: int = 100, featurizer: Any = None, scale: str | None = "auto",
                 missing: str = "median", families: tuple[Family, ...] | None = None,
                 blend: bool = True, repeats: int = 2, n_threads: int | None = None,
                 random_state: int | None = 0) -> None:
        self.budget = budget
        self.objective = objective
        self.cv = cv
        self.k = k
        self.featurizer = featurizer
        self.scale = scale
        self.missing = missing
        self.families = families
        self.blend = blend
        self.repeats = repeats
        self.n_threads = n_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ helpers
    def _model(self, cand: _Candidate) -> Any:
        from .models.blend import configured

        return configured(cand.family.model_class(), cand.settings, self.n_threads,
                          self.random_state)

    def _pipeline(self, model: Any, texts: bool) -> Any:
        from sklearn.base import clone

        from .pipeline import Pipeline

        feat = None
        if texts:
            from .features import Tfidf

            feat = clone(self.featurizer) if self.featurizer is not None else Tfidf()
        return Pipeline(feat, model, k=self.k, random_state=self.random_state, scale=self.scale,
                        missing=self.missing)

    def _facts(self, X: Any, Y: sp.csr_matrix, texts: bool) -> DataFacts:
        if texts:  # the featurizer's output size drives the costs (fitted here for that only)
            X = self._pipeline(None, True).featurizer.fit_transform(X)
        return DataFacts.of(X, Y)

    def _try_blends(self, kept: list[_Kept], best: tuple, board: list[dict[str, Any]],
                    Y: sp.csr_matrix, folds: np.ndarray, cv: int, objective: str,
                    deadline: float, score_s: float) -> tuple:
        """Score the blends of :func:`blend_sets` on the kept out-of-fold scores (no fit);
        a blend that beats ``best`` and whose fit is expected to end before ``deadline``
        becomes the new best. Returns the (maybe new) best and, for every blend scored
        ``done``, ``(leaderboard row, group, model, estimated fit seconds, probabilities)``
        (a list of the probabilities per partition: each member calibrated on all rows,
        averaged) and its fold scores, for :meth:`_repeat`.

        Scoring takes time too (a Platt fit per fold and member, then the folds' scores): a
        blend is scored only when its members' calibration and its scoring (their largest
        measured times so far; at first twice ``score_s``, a candidate's scoring time) and the
        refit of the best so far still end before ``deadline``."""
        from .models.blend import Blend

        cal: dict[int, list[np.ndarray]] = {}
        cal_s: list[float] = []
        blend_s: list[float] = []
        scored: list[tuple[int, tuple[int, ...], Any, float, np.ndarray]] = []
        for group in blend_sets(kept):
            t0 = time.perf_counter()
            members = [kept[i] for i in group]
            name = "blend(" + " + ".join(m.cand.name for m in members) + ")"
            model = Blend([[m.cand.family.model_class()._persist_name, dict(m.cand.settings)]
                           for m in members], cv=cv, n_threads=self.n_threads,
                          random_state=self.random_state)
            est = float(sum(m.fit_cost_s for m in members))
            entry = {"candidate": name, "family": "blend", "model": "Blend",
                     "settings": {"members": model.members}, "status": "skipped",
                     "fold_scores": [], "mean_score": None, "seconds": 0.0,
                     "estimated_seconds": round(est, 3)}
            need = [i for i in group if i not in cal]
            guess = len(need) * max(cal_s, default=2.0 * score_s) + max(blend_s,
                                                                        default=score_s)
            if t0 + guess + best[4] + FINISH_RESERVE_S > deadline:
                entry["reason"] = (f"not scored: scoring it (estimated {guess:.1f} s) and the "
                                   f"refit would not end in time; "
                                   f"{max(0.0, deadline - t0):.1f} s left")
                board.append(entry)
                continue
            for i in need:
                tc = time.perf_counter()
                cal[i] = _fold_calibrated([kept[i]], Y, folds, cv)[0]
                cal_s.append(time.perf_counter() - tc)
            tb = time.perf_counter()
            scores = []
            for f in range(cv):
                P = np.mean([cal[i][f] for i in group], axis=0)
                scores.append(fold_score(objective, sp.csr_matrix(P), Y, folds, f))
            blend_s.append(time.perf_counter() - tb)
            mean = float(np.mean(scores))
            entry.update(status="done", fold_scores=[round(x, 6) for x in scores],
                         mean_score=round(mean, 6),
                         seconds=round(time.perf_counter() - t0, 3))
            now = time.perf_counter()
            if mean > best[0] and now + est + FINISH_RESERVE_S > deadline:
                entry.update(status="skipped", reason=f"its fit (estimated {est:.1f} s) would "
                             f"not end in time; {max(0.0, deadline - now):.1f} s left")
            board.append(entry)
            if entry["status"] == "done":
                P = np.mean([cal[i][cv] for i in group], axis=0)
                scored.append((len(board) - 1, tuple(group), model, est, [P], scores))
                if mean > best[0]:
                    best = (mean, len(board) - 1, model, [sp.csr_matrix(P)], est)
        return best, scored

    def _repeat(self, r: int, best: tuple, lead: list[_Kept], kept: list[_Kept], scored: list,
                raw: dict[int, list[float]], board: list[dict[str, Any]], run_folds: Any,
                Y: sp.csr_matrix, cv: int, objective: str, deadline: float,
                partition_folds: list[np.ndarray]) -> tuple | None:
        """Partition ``r`` (module docstring, step 7): the best :data:`KEEP_PER_FAMILY`
        candidates of each family (``lead``, their ``S`` a list of their out-of-fold scores
        per partition, ``fit_cost_s`` their estimated refit) and every member of a scored blend are
        cross-validated again on new folds, the blends are scored again on those, and the
        choice is made among them by the mean over all their folds. Returns the new best, or
        None when the round would not end before ``deadline`` (estimated from the first
        partition's measured seconds, or found while running: nothing of it is kept then)."""
        from .split import IterativeStratifiedKFold

        n, L = Y.shape
        seed = self.random_state + r if isinstance(self.random_state, int) else self.random_state
        splits = list(IterativeStratifiedKFold(n_splits=cv, random_state=seed)
                      .split(np.zeros((n, 1)), Y))
        folds = np.full(n, -1, np.int64)
        for f, (_, test) in enumerate(splits):
            folds[test] = f
        singles = {kc.index: kc for kc in lead}  # the ones that can be chosen
        members = {kept[j].index for _, group, *_ in scored for j in group}
        runs = {**{kc.index: kc for kc in kept if kc.index in members}, **singles}
        todo = sorted(runs, key=lambda i: (-float(np.mean(raw[i])), i))
        t0 = time.perf_counter()
        est = (sum(board[i]["seconds"] for i in todo)
               + sum(board[row]["seconds"] for row, *_ in scored))
        note = None
        if t0 + est + best[4] + FINISH_RESERVE_S > deadline:
            note = (f"partition {r + 1} not run: estimated {est:.1f} s + refit {best[4]:.1f} s; "
                    f"{max(0.0, deadline - t0):.1f} s left")
        new: dict[int, list[float]] = {}
        oof: dict[int, Any] = {}  # row -> this partition's out-of-fold scores (probabilities)
        dense: dict[int, np.ndarray] = {}
        took: dict[int, float] = {}
        for i in todo if note is None else []:
            tc = time.perf_counter()
            parts, _, stopped = run_folds(runs[i].cand, splits, best[4])
            if stopped is not None:
                note = f"partition {r + 1} stopped: {board[i]['candidate']} {stopped}"
                break
            S = _stack(parts, n, L)
            new[i] = [fold_score(objective, S, Y, folds, f) for f in range(cv)]
            oof[i] = S
            if i in members:
                dense[i] = S.toarray()
            took[i] = time.perf_counter() - tc
        for row, group, *_ in scored if note is None else []:
            tc = time.perf_counter()
            cal = _fold_calibrated([_Kept(kept[j].mean, kept[j].index, kept[j].cand,
                                          dense[kept[j].index], 0.0) for j in group], Y,
                                   folds, cv)
            new[row] = [fold_score(objective, sp.csr_matrix(np.mean([m[f] for m in cal],
                                                                    axis=0)), Y, folds, f)
                        for f in range(cv)]
            oof[row] = np.mean([m[cv] for m in cal], axis=0)
            took[row] = time.perf_counter() - tc
        if note is not None:
            self.partition_notes_.append(note)
            return None
        partition_folds.append(folds)
        blends = {row: (model, est_fit, Ps) for row, _, model, est_fit, Ps, _ in scored}
        for i, kc in singles.items():
            kc.S.append(oof[i])
        for row, (_, _, Ps) in blends.items():
            Ps.append(oof[row])
        for row, scores in new.items():
            raw[row] = raw[row] + scores
            board[row].update(fold_scores=[round(x, 6) for x in raw[row]],
                              mean_score=round(float(np.mean(raw[row])), 6),
                              partitions=board[row]["partitions"] + 1,
                              seconds=round(board[row]["seconds"] + took[row], 3))
        for i in sorted(set(singles) | set(blends), key=lambda i: (-float(np.mean(raw[i])), i)):
            mean = float(np.mean(raw[i]))
            if i in singles:
                kc = singles[i]
                return (mean, i, kc.cand, list(kc.S), kc.fit_cost_s)
            model, est_fit, Ps = blends[i]
            now = time.perf_counter()
            if now + est_fit + FINISH_RESERVE_S <= deadline:
                return (mean, i, model, [sp.csr_matrix(P) for P in Ps], est_fit)
            board[i].update(status="skipped", reason=f"its fit (estimated {est_fit:.1f} s) "
                            f"would not end in time; {max(0.0, deadline - now):.1f} s left")
        return best  # pragma: no cover - ``lead`` holds the best single candidate

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, Y: Any = None, *, labels: Any = None) -> AutoModel:
        start = time.perf_counter()  # before the imports below: they count against the budget
        from .checks import count_missing
        from .features.scale import MissingValuesWarning
        from .pipeline import _is_texts

        Xn = X.X if isinstance(X, Dataset) else X
        n_missing = 0 if self.missing == "error" or _is_texts(Xn) else count_missing(Xn)
        if n_missing:
            warnings.warn(f"X holds {n_missing} missing values (NaN): every candidate's "
                          f"pipeline fills them with each column's {self.missing} over its "
                          "training rows (missing='error', --missing error, refuses them)",
                          MissingValuesWarning, stacklevel=2)
        with warnings.catch_warnings():  # said once above, not again for every fold's fit
            warnings.simplefilter("ignore", MissingValuesWarning)
            return self._fit(start, X, Y, labels)

    def _fit(self, start: float, X: Any, Y: Any, labels: Any) -> AutoModel:
        from .calibration import PlattCalibrator
        from .decision import PerLabelThreshold
        from .labels import LabelSpace
        from .models.blend import Blend
        from .pipeline import _is_texts
        from .split import IterativeStratifiedKFold

        budget = parse_budget(self.budget)
        objective = _check_objective(self.objective)
        cv = positive_int(self.cv, "cv")
        if cv < 2:
            raise DataFormatError(f"cv must be >= 2, got {cv}", field="cv")
        positive_int(self.k, "k")
        positive_int(self.repeats, "repeats")
        if isinstance(X, Dataset):
            if Y is not None or labels is not None:
                raise TypeError("a Dataset carries X, Y and labels: pass no Y or labels")
            X, Y, labels = X.X, X.Y, X.labels
        if Y is None:
            raise TypeError("AutoModel.fit(X, Y) needs Y (or a labelwise.Dataset as X)")
        if labels is not None and not isinstance(labels, LabelSpace):
            labels = LabelSpace(labels)
        Yc = as_label_matrix(Y)
        n, L = Yc.shape
        n_x = X.shape[0] if hasattr(X, "shape") else len(X)
        if n_x != n:
            raise DataFormatError(f"X has {n_x} rows but Y has {n}", field="X")
        if n < cv:
            raise DataFormatError(f"cv={cv} folds need at least {cv} rows, got {n}", field="cv")
        texts = _is_texts(X)
        facts = self._facts(X, Yc, texts)
        cands = candidates_for(facts, FAMILIES if self.families is None else tuple(self.families))
        if not cands:
            raise LabelwiseError("no candidate family applies to this data (every rule of the "
                                 "candidate table said no)")
        k = min(int(self.k), L)
        folds = np.full(n, -1, np.int64)
        splits = list(IterativeStratifiedKFold(n_splits=cv, random_state=self.random_state)
                      .split(np.zeros((n, 1)), Yc))
        for f, (_, test) in enumerate(splits):
            folds[test] = f

        deadline = start + PLAN_SHARE * budget  # the rest absorbs estimates that run over
        t_setup = time.perf_counter()
        ratios: dict[str, float] = {}  # family -> measured / estimated
        board: list[dict[str, Any]] = []
        best: tuple[float, int, _Candidate, sp.csr_matrix, float] | None = None

        def ratio(c: _Candidate) -> float:
            if c.family.name in ratios:
                return ratios[c.family.name]
            return float(np.mean(list(ratios.values()))) if ratios else 1.0

        def cv_share() -> float:  # fits on (cv-1)/cv of the rows, cv times, plus scoring
            return (cv - 1) * 1.1

        def run_folds(c: _Candidate, splits_: list, refit_s: float | None) -> tuple:
            """Fit and score ``c`` fold by fold: (held-out parts, fit seconds, stop reason or
            None). With ``refit_s`` (the refit to keep time for), it stops when the measured
            folds say the rest would not end before the deadline."""
            parts: list[tuple[np.ndarray, sp.csr_matrix]] = []
            fit_s: list[float] = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # rare labels without positives in a fold
                for f, (train, test) in enumerate(splits_):
                    tf = time.perf_counter()
                    pipe = self._pipeline(self._model(c), texts)
                    pipe.fit(_rows(X, train), Yc[train], labels=labels)
                    parts.append((test, sp.csr_matrix(pipe.decision_function(_rows(X, test),
                                                                             k=k))))
                    fit_s.append(time.perf_counter() - tf)
                    left = cv - f - 1
                    now = time.perf_counter()
                    refit_guess = max(fit_s) * cv / (cv - 1)
                    if left and refit_s is not None and now + left * float(np.mean(
                            fit_s)) + max(refit_guess, refit_s) + FINISH_RESERVE_S > deadline:
                        return parts, fit_s, (f"stopped after {f + 1} of {cv} folds: the rest "
                                              "would not fit")
            return parts, fit_s, None

        # blends average calibrated probabilities of every label: only when all are scored
        blendable = self.blend and L <= k
        memory = machine_memory()
        kept: list[_Kept] = []
        lead: list[_Kept] = []  # the best of each family (CSR scores), for a repeat
        raw: dict[int, list[float]] = {}  # leaderboard row -> its unrounded fold scores
        score_s = 0.0  # the longest scoring of a candidate's folds
        for c in cands:
            est_cv = c.raw_fit_s * cv_share() * ratio(c)
            est_refit = c.raw_fit_s * ratio(c)
            reserve = max(est_refit, best[4] if best is not None else 0.0) + FINISH_RESERVE_S
            entry = {"candidate": c.name, "family": c.family.name,
                     "model": c.family.model_class().__name__, "settings": dict(c.settings),
                     "status": "skipped", "fold_scores": [], "mean_score": None,
                     "seconds": 0.0, "estimated_seconds": round(est_cv, 3)}
            if (c.peak_bytes is not None and memory is not None
                    and c.peak_bytes > MEMORY_SHARE * memory):
                entry["reason"] = (f"its fit would need up to {c.peak_bytes / 2**30:.1f} GiB, "
                                   f"more than {MEMORY_SHARE:.0%} of this machine's "
                                   f"{memory / 2**30:.1f} GiB")
                board.append(entry)
                continue
            now = time.perf_counter()
            if best is not None and now + est_cv + reserve > deadline:
                entry["reason"] = (f"estimated {est_cv:.1f} s + refit {reserve:.1f} s; "
                                   f"{max(0.0, deadline - now):.1f} s left")
                board.append(entry)
                continue
            if best is None and now + est_cv + reserve > deadline:
                warnings.warn(f"auto: budget {budget:.0f} s is below the estimate for the "
                              f"cheapest candidate {c.name} ({est_cv + reserve:.1f} s); it runs "
                              "anyway so that a model comes out", stacklevel=2)
            t0 = time.perf_counter()
            parts, fit_s, stopped = run_folds(c, splits, None if best is None else best[4])
            seconds = time.perf_counter() - t0
            entry["seconds"] = round(seconds, 3)
            done_share = len(fit_s) / cv
            ratios[c.family.name] = seconds / max(1e-9, c.raw_fit_s * cv_share() * done_share)
            if stopped is not None:
                entry.update(status="stopped", reason=stopped)
                board.append(entry)
                continue
            S = _stack(parts, n, L)
            ts = time.perf_counter()
            scores = [fold_score(objective, S, Yc, folds, f) for f in range(cv)]
            score_s = max(score_s, time.perf_counter() - ts)
            mean = float(np.mean(scores))
            entry.update(status="done", fold_scores=[round(s, 6) for s in scores],
                         mean_score=round(mean, 6), seconds=round(time.perf_counter() - t0, 3))
            board.append(entry)
            raw[len(board) - 1] = list(scores)
            refit_est = float(np.mean(fit_s)) * cv / (cv - 1)
            if best is None or mean > best[0]:
                best = (mean, len(board) - 1, c, [S], refit_est)
            if int(self.repeats) > 1:  # their out-of-fold scores, held for a repeat only
                lead = _prune_kept(lead + [_Kept(mean, len(board) - 1, c, [S], refit_est)])
            if blendable and _registered(c.family.model_class()):
                kept.append(_Kept(mean, len(board) - 1, c, S.toarray(), seconds + refit_est))
                kept = _prune_kept(kept)

        scored: list = []
        if best is not None and blendable and len(kept) >= 2:
            best, scored = self._try_blends(kept, best, board, Yc, folds, cv, objective,
                                            deadline, score_s)
            for row, *_, scores in scored:
                raw[row] = [float(x) for x in scores]
        for entry in board:
            entry["partitions"] = 1 if entry["fold_scores"] else 0
        partitions = 1
        partition_folds = [folds]
        self.partition_notes_: list[str] = []
        for r in range(1, int(self.repeats)):
            if best is None:  # pragma: no cover - the first candidate always runs to the end
                break
            outcome = self._repeat(r, best, lead, kept, scored, raw, board, run_folds, Yc,
                                   cv, objective, deadline, partition_folds)
            if outcome is None:
                break
            best = outcome
            partitions += 1

        if best is None:  # pragma: no cover - the first candidate always runs to the end
            raise LabelwiseError("auto: no candidate finished")
        mean, index, c, S_parts, _ = best  # the winner's out-of-fold scores per partition
        t_refit = time.perf_counter()
        pipe = self._pipeline(c if isinstance(c, Blend) else self._model(c), texts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.fit(X, Yc, labels=labels)
        policy_objective = objective if objective.endswith("-f1") else "micro-f1"
        pipe.calibrator_ = PlattCalibrator(per_label=True)
        used = len(S_parts)
        P = pipe.calibrator_.fit_transform(sp.vstack(S_parts, format="csr"),
                                           sp.vstack([Yc] * used, format="csr"))
        pipe.decision_ = PerLabelThreshold(objective=policy_objective).fit(
            P, sp.vstack([Yc] * used, format="csr"),
            folds=np.concatenate([partition_folds[p] + cv * p for p in range(used)]))
        self.seconds_ = time.perf_counter() - start
        phases = {"setup": round(t_setup - start, 3), "cross_validation": round(
            t_refit - t_setup, 3), "final_fit": round(time.perf_counter() - t_refit, 3)}
        ranked = sorted(range(len(board)), key=lambda i: (  # the choice comes first
            board[i]["status"] != "done", -board[i]["partitions"],
            -(board[i]["mean_score"] or 0.0), i))
        self.leaderboard_ = [board[i] for i in ranked]
        self.chosen_ = dict(board[index])
        self.facts_ = facts
        self.partitions_ = partitions
        pipe.tuning_ = {"objective": policy_objective, "calibration": "platt-per-label",
                        "cv": int(cv), "k": k, "random_state": self.random_state,
                        "featurizer_in_folds": bool(texts), "n_samples": int(n),
                        "auto": {"objective": objective, "budget_s": budget,
                                 "seconds": round(self.seconds_, 3), "phases": phases,
                                 "chosen": self.chosen_["candidate"],
                                 "partitions": partitions,
                                 "partition_notes": list(self.partition_notes_),
                                 "facts": {**facts.__dict__, "density": facts.density},
                                 "leaderboard": self.leaderboard_}}
        pipe.featurizer_in_folds = bool(texts)
        pipe.cv = int(cv)
        self.pipeline_ = pipe
        return self

    # ------------------------------------------------------------------ use
    def _check_fitted(self) -> Any:
        if not hasattr(self, "pipeline_"):
            raise NotFittedError("this AutoModel is not fitted yet: call fit(X, Y) first")
        return self.pipeline_

    def predict(self, X: Any, *, k: int | None = None) -> sp.csr_matrix:
        return self._check_fitted().predict(X, k=k)

    def predict_proba(self, X: Any, *, k: int | None = None) -> sp.csr_matrix:
        return self._check_fitted().predict_proba(X, k=k)

    def decision_function(self, X: Any, *, k: int | None = None) -> sp.csr_matrix:
        return self._check_fitted().decision_function(X, k=k)

    def save(self, path: Any) -> None:
        """Save the chosen pipeline (an ordinary pipeline directory; the leaderboard is in
        its ``pipeline.json`` under ``tuning.auto``)."""
        self._check_fitted().save(path)


@dataclass
class _Kept:
    """A finished candidate's out-of-fold scores, kept for blending."""

    mean: float
    index: int  #: its leaderboard row
    cand: _Candidate
    S: np.ndarray  #: dense out-of-fold scores (n_samples, n_labels)
    fit_cost_s: float  #: its measured cross-validation seconds + estimated refit


def _registered(cls: type) -> bool:
    """Whether a blend can rebuild (and a saved blend load) this class by its saved name."""
    from .models.persist import MODEL_CLASSES

    name = getattr(cls, "_persist_name", "")
    return name != "Blend" and MODEL_CLASSES.get(name) == (cls.__module__, cls.__name__)


#: candidates kept per family for blending
KEEP_PER_FAMILY = 2


def _prune_kept(kept: list[_Kept]) -> list[_Kept]:
    """The best :data:`KEEP_PER_FAMILY` of each family (ties: the one run first)."""
    out: list[_Kept] = []
    count: dict[str, int] = {}
    for kc in sorted(kept, key=lambda kc: (-kc.mean, kc.index)):
        name = kc.cand.family.name
        if count.get(name, 0) < KEEP_PER_FAMILY:
            out.append(kc)
            count[name] = count.get(name, 0) + 1
    return out


def blend_sets(kept: list[_Kept]) -> list[tuple[int, ...]]:
    """Which blends to score, as indices into ``kept``: the best two and three candidates,
    and the best candidate with the best of one and of two other families (distinct sets
    only, in that order)."""
    order = sorted(range(len(kept)), key=lambda i: (-kept[i].mean, kept[i].index))
    families: list[int] = []
    for i in order:
        if kept[i].cand.family.name not in {kept[j].cand.family.name for j in families}:
            families.append(i)
    out: list[tuple[int, ...]] = []
    for group in (order[:2], order[:3], families[:2], families[:3]):
        key = tuple(sorted(group))
        if len(group) >= 2 and len(set(group)) == len(group) and key not in out:
            out.append(key)
    return out


def _fold_calibrated(kept: list[_Kept], Y: sp.csr_matrix, folds: np.ndarray,
                     cv: int) -> list[list[np.ndarray]]:
    """Per kept candidate, cv + 1 probability matrices: entry f maps the out-of-fold scores
    by per-label Platt scaling fitted on the rows outside fold f (so fold f's blend score
    uses no calibration fitted on its own labels); entry cv, fitted on all rows."""
    from .calibration import PlattCalibrator

    out = []
    for kc in kept:
        per = []
        for f in range(cv + 1):
            rows = np.flatnonzero(folds != f)  # f == cv: every row
            cal = PlattCalibrator(per_label=True).fit(kc.S[rows], Y[rows])
            per.append(np.asarray(cal.transform(kc.S), np.float64))
        out.append(per)
    return out


def _stack(parts: list[tuple[np.ndarray, sp.csr_matrix]], n: int, L: int) -> sp.csr_matrix:
    """The held-out folds' top-k scores back in row order."""
    order = np.concatenate([t for t, _ in parts])
    stacked = sp.vstack([S for _, S in parts], format="csr")
    inv = np.empty(n, np.int64)
    inv[order] = np.arange(n)
    out = sp.csr_matrix(stacked[inv])
    out.sort_indices()
    if out.shape != (n, L):
        raise DataFormatError(f"out-of-fold scores have shape {out.shape}, expected {(n, L)}")
    return out


def format_leaderboard(board: list[dict[str, Any]], objective: str) -> str:
    """The leaderboard as a text table (the CLI prints it); the folds of every partition."""
    folds = [" ".join(f"{s:.3f}" for s in e["fold_scores"]) for e in board]
    width = max([26, *map(len, folds)])
    lines = [f"{'rank':>4}  {'candidate':<58} {'status':<8} {objective:>9}  {'folds':<{width}} "
             f"{'seconds':>8}"]
    for i, (e, text) in enumerate(zip(board, folds, strict=True), 1):
        score = "" if e["mean_score"] is None else f"{e['mean_score']:.4f}"
        lines.append(f"{i:>4}  {e['candidate'][:58]:<58} {e['status']:<8} {score:>9}  "
                     f"{text:<{width}} {e['seconds']:>8.1f}")
    return "\n".join(lines)
