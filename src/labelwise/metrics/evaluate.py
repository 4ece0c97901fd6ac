"""``evaluate``: every metric that applies to the input, in one JSON-able report.

Report layout::

    {
      "n_samples": int, "n_labels": int,
      "input": "dense" | "topk" | "sets",
      "set_rule": "score >= 0.5" | "top-3" | "given sets",
      "propensity": {"source": "given" | "Y_train" | "Y_true", "A": .., "B": ..} | null,
      "metrics": {name: float | null, ...},
      "per_label": [{"label", "support", "precision", "recall", "f1", "ap", "auroc"}, ...],
      "notes": [str, ...]
    }

Metrics by input kind (``k`` = the ks asked for, ``p`` = each target precision):

- scores (dense or top-k): ``p@k``, ``r@k``, ``ndcg@k``, ``psp@k``, ``psndcg@k`` (when
  propensities are available), ``map``, ``micro_ap``, ``macro_auroc``, ``micro_auroc``, ``lrap``,
  ``coverage_error``, ``label_ranking_loss``, ``one_error``, ``coverage@p{p}`` and
  ``coverage@p{p}_threshold`` (top-1 mode), ``label_coverage@p{p}`` and
  ``label_coverage@p{p}_threshold`` (label-set mode), plus the set metrics below.
- all inputs: ``{micro,macro,samples,weighted}_{precision,recall,f1}``, ``hamming_loss``,
  ``subset_accuracy``, ``jaccard``, ``cp``, ``cr``, ``cf1``, ``op``, ``or``, ``of1``.

Set metrics on scores use a predicted set chosen by ``set_rule``: ``threshold=t`` gives
``score >= t``; else ``set_k=m`` gives the top m labels; else, when every (stored) score lies
in [0, 1] (probabilities), ``score >= 0.5``; otherwise the top ``min(k)`` labels. The rule is
written in the report. Undefined values (NaN: e.g. mAP without any positive label) are
written as ``null``. Propensities: an array of p_l is used as given; a preset name or an
``(A, B)`` pair is applied to ``Y_train`` when given, else to ``Y_true`` (noted: test-set
counts make PSP optimistic for labels rare in test only); ``propensity=None`` skips PSP, and
so do counts of fewer than 3 rows (with a note: the propensity model needs ``log N > 1``).

Labels matched by name: with ``score_labels`` (the names of S's columns, e.g. a model's
labels) and ``label_names`` (the names of Y_true's columns), the two are matched by name and
the report covers their union, in S's order then the data's labels that S lacks. Those
*unknown* labels are never scored or predicted: their positives count as misses (false
negatives, unretrieved in the rank metrics); labels S has but the data lacks have no
positives. The report then holds ``"unknown_labels"`` (their names) and a note counting
both kinds. ``Y_train`` and a propensity array follow ``label_names``'s order.

Cost: top-k CSR input never builds an n x L matrix; time and memory are linear in the
stored entries plus O(n_labels) (one sort of the stored scores serves micro AUROC and the
label coverage curve). Dense input works on row chunks of ``chunk_size`` rows and column
blocks of about ``256 * chunk_size`` cells for the sample- and label-wise kernels, but micro
AUROC and the label coverage curve sort all n x L cells (about 17 bytes per cell).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataFormatError
from ..labels import LabelSpace, few_names
from . import classification as C
from . import coverage as V
from . import threshold_free as T
from ._inputs import (
    DEFAULT_CHUNK,
    LabelSets,
    Prepared,
    as_scores,
    as_sets,
    as_truth,
    sets_from_ranked,
)
from .propensity import MIN_ROWS, PROPENSITY_PRESETS, propensities
from .ranking import _check_ks, _check_zero_division, _ranking

__all__ = ["evaluate", "align_by_name"]


def _clean(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def _propensity(propensity: Any, Y_train: Any, Y, notes: list[str]):
    if propensity is None:
        return None, None
    if isinstance(propensity, str | tuple | list) and not (
            isinstance(propensity, list | tuple) and len(propensity) != 2):
        if isinstance(propensity, str):
            if propensity not in PROPENSITY_PRESETS:
                raise DataFormatError(f"unknown propensity preset {propensity!r}; expected "
                                      f"one of {sorted(PROPENSITY_PRESETS)}",
                                      field="propensity")
            a, b = PROPENSITY_PRESETS[propensity]
        else:
            a, b = (float(v) for v in propensity)
        if Y_train is not None:
            Yt = as_truth(Y_train)
            if Yt.shape[1] != Y.shape[1]:
                raise DataFormatError(f"Y_train has {Yt.shape[1]} labels, Y_true has "
                                      f"{Y.shape[1]}", field="Y_train")
            src = "Y_train"
        else:
            Yt = Y
            src = "Y_true"
            notes.append("propensities computed from Y_true label counts (no Y_train given)")
        if Yt.shape[0] < MIN_ROWS:
            notes.append(f"psp@k and psndcg@k left out: propensities need at least {MIN_ROWS} "
                         f"rows of {src}, which has {Yt.shape[0]} (labelwise.metrics.propensity)")
            return None, None
        return propensities(Yt, A=a, B=b), {"source": src, "A": a, "B": b}
    return np.asarray(propensity, dtype=np.float64), {"source": "given", "A": None, "B": None}


def _set_rule(s, threshold, set_k, ks) -> tuple[dict[str, Any], str]:
    if threshold is not None and set_k is not None:
        raise DataFormatError("give threshold= or set_k=, not both", field="threshold")
    if threshold is not None:
        return {"threshold": float(threshold)}, f"score >= {float(threshold):g}"
    if set_k is not None:
        return {"k": set_k}, f"top-{set_k}"
    vals = s.dense if s.kind == "dense" else s.csr.data
    if vals.size == 0 or (vals.min() >= 0.0 and vals.max() <= 1.0):
        return {"threshold": 0.5}, "score >= 0.5"
    return {"k": min(ks)}, f"top-{min(ks)}"


def evaluate(Y_true: Any, S: Any, *, k: int | Sequence[int] = (1, 3, 5),
             threshold: float | None = None, set_k: int | None = None,
             propensity: Any = "default", Y_train: Any = None,
             label_names: Sequence[str] | None = None,
             score_labels: Sequence[str] | None = None,
             target_precision: float | Sequence[float] = 0.9,
             zero_division: float = 0.0, per_label: bool = True,
             chunk_size: int = DEFAULT_CHUNK) -> dict[str, Any]:
    """Evaluate scores or predicted sets against ``Y_true`` (module docstring).

    Parameters
    ----------
    Y_true:
        (n_samples, n_labels) 0/1, dense or sparse.
    S:
        Dense scores, top-k CSR scores, or :class:`LabelSets`.
    k:
        The cut-offs of the rank-based metrics.
    threshold, set_k:
        How scores become predicted sets for the set metrics (module docstring).
    propensity:
        Preset name (``"default"``, ``"amazon"``, ``"wikipedia"``), an ``(A, B)`` pair, an
        array of p_l, or None to skip PSP@k / PSnDCG@k.
    Y_train:
        Training labels for the propensities.
    label_names:
        Names of Y_true's columns, shown in ``per_label`` (default: the label ids as strings).
    score_labels:
        Names of S's columns when they may differ from ``label_names`` (order or set):
        matched by name over the union of both (module docstring). Default: S's columns
        are ``label_names``.
    target_precision:
        One or more target precisions for the coverage metrics.
    zero_division:
        0.0, 1.0 or NaN, for every ratio with a zero denominator.
    per_label:
        Whether to include the per-label list (n_labels entries).
    chunk_size:
        Rows per chunk for the dense-score kernels.
    """
    Y = as_truth(Y_true)
    aligned = None
    if score_labels is not None:
        Y, S, Y_train, propensity, label_names, aligned = _align(
            Y, S, Y_train, propensity, label_names, score_labels)
    n, L = Y.shape
    ks = _check_ks(k)
    z = _check_zero_division(zero_division)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise DataFormatError(f"chunk_size must be a positive integer, got {chunk_size!r}",
                              field="chunk_size")
    if label_names is not None and len(label_names) != L:
        raise DataFormatError(f"{len(label_names)} label names for {L} labels",
                              field="label_names")
    targets = [target_precision] if np.isscalar(target_precision) else list(target_precision)
    notes: list[str] = []
    metrics: dict[str, Any] = {}
    report: dict[str, Any] = {"n_samples": n, "n_labels": L}
    label_res = None
    if isinstance(S, LabelSets):
        if threshold is not None or set_k is not None:
            raise DataFormatError("threshold= and set_k= apply to scores, not to LabelSets",
                                  field="threshold")
        kind, rule = "sets", "given sets"
        P = as_sets(S, Y.shape)
        report["propensity"] = None
        notes.append("predicted sets given: rank-based and threshold-free metrics need "
                     "scores and are left out")
    else:
        s = as_scores(S, Y.shape)
        prep = Prepared(Y, s, chunk_size)
        kind = s.kind
        set_args, rule = _set_rule(s, threshold, set_k, ks)
        p_l, pinfo = _propensity(propensity, Y_train, Y, notes)
        report["propensity"] = pinfo
        metrics.update(_ranking(prep, ks, p_l, z))
        if "k" in set_args:
            P = sets_from_ranked(prep.ranked(set_args["k"])[0], L)
        else:
            P = LabelSets.from_threshold(s, set_args["threshold"]).Y
        label_res = T._label_scores(prep)
        metrics["map"] = label_res["map"]
        metrics["macro_auroc"] = label_res["macro_auroc"]
        metrics["micro_auroc"] = T._micro_auroc(prep)
        metrics["micro_ap"] = T._micro_ap(prep)
        metrics.update(T._sample_scores(prep))
        if label_res["n_labels_without_positives"]:
            notes.append(f"map, macro_auroc: {label_res['n_labels_without_positives']} labels "
                         f"without positives left out")
        undefined = label_res["n_labels_auroc_undefined"] - label_res[
            "n_labels_without_positives"]
        if undefined:
            notes.append(f"macro_auroc: {undefined} labels positive in every sample left out")
        if kind == "topk":
            notes.append("top-k scores: unretrieved labels count as tied at -inf in map, "
                         "auroc, lrap, coverage_error and label_ranking_loss")
        for t in targets:
            for mode, name in (("top1", "coverage"), ("labels", "label_coverage")):
                thr, cov, prec = V._curve(prep, mode)
                res = V._pick(thr, cov, prec, float(t), mode, n)
                metrics[f"{name}@p{float(t):g}"] = res.coverage
                metrics[f"{name}@p{float(t):g}_threshold"] = res.threshold
        notes.append(f"set metrics use predicted sets: {rule}")
    counts = C._counts_of(Y, P)
    for avg in C.AVERAGES:
        p, r, f = C._prf(counts, avg, z)
        metrics[f"{avg}_precision"], metrics[f"{avg}_recall"], metrics[f"{avg}_f1"] = p, r, f
    metrics["hamming_loss"] = C._hamming(counts)
    metrics["subset_accuracy"] = C._subset(counts)
    metrics["jaccard"] = C._jaccard(counts, "samples", z)
    metrics.update(C._tagging(counts, z))
    report["input"] = kind
    report["set_rule"] = rule
    report["metrics"] = {key: _clean(v) for key, v in metrics.items()}
    if per_label:
        report["per_label"] = _per_label(counts, label_res, label_names, z)
    if aligned is not None:
        unknown, n_absent = aligned
        report["unknown_labels"] = unknown
        if unknown:
            notes.append(f"{len(unknown)} labels of the data are not scored ({few_names(unknown)}): "
                         "their positives count as misses (never retrieved, never predicted)")
        if n_absent:
            notes.append(f"{n_absent} scored labels are not labels of the data: they have no "
                         "positives (every prediction of them is a false positive)")
    report["notes"] = notes
    return report


def _widen(S: Any, n_labels: int) -> Any:
    """Scores or LabelSets with ``n_labels`` columns, the new ones never scored nor predicted."""
    import scipy.sparse as sp

    if isinstance(S, LabelSets):
        M = S.Y
        return LabelSets(sp.csr_matrix((M.data, M.indices, M.indptr), shape=(M.shape[0], n_labels)))
    s = as_scores(S)
    if s.kind == "topk":
        M = s.csr
        return sp.csr_matrix((M.data, M.indices, M.indptr), shape=(M.shape[0], n_labels))
    # dense: every given cell stays stored (a stored 0 is still retrieved); new columns unstored
    A = s.dense
    n, w = A.shape
    indices = np.tile(np.arange(w, dtype=np.int64), n)
    indptr = np.arange(0, n * w + 1, w, dtype=np.int64)
    return sp.csr_matrix((A.ravel(), indices, indptr), shape=(n, n_labels))


def align_by_name(Y_true: Any, S: Any, *, label_names: Sequence[str],
                  score_labels: Sequence[str]) -> tuple[Any, Any, list[str], list[str]]:
    """``(Y, S, names, unknown)``: Y_true (columns ``label_names``) and S (columns
    ``score_labels``) over the union of their labels, as :func:`evaluate` matches them
    (for plots of the same data); ``unknown``: the data's labels that S lacks."""
    Y, S, _, _, names, (unknown, _) = _align(as_truth(Y_true), S, None, None, label_names,
                                             score_labels)
    return Y, S, names, unknown


def _align(Y, S, Y_train, propensity, label_names, score_labels):
    """Y, S, Y_train, propensity and names over the union of S's and Y's labels."""
    model = LabelSpace(score_labels)
    shape = S.shape if isinstance(S, LabelSets) else (as_scores(S).n_samples, as_scores(S).n_labels)
    if shape[1] != len(model):
        raise DataFormatError(f"{len(model)} score labels for scores of {shape[1]} columns",
                              field="score_labels")
    data = model if label_names is None else LabelSpace(label_names)
    if len(data) != Y.shape[1]:
        raise DataFormatError(f"{len(data)} label names for {Y.shape[1]} labels",
                              field="label_names")
    union = model.union(data)
    Y, _ = data.reindex(Y, union)
    unknown = [name for name in data.names if name not in model]
    if Y_train is not None:
        Yt = as_truth(Y_train)
        if Yt.shape[1] != len(data):
            raise DataFormatError(f"Y_train has {Yt.shape[1]} labels, Y_true has {len(data)}",
                                  field="Y_train")
        Y_train, _ = data.reindex(Yt, union)
    pair = isinstance(propensity, list | tuple) and len(propensity) == 2
    if propensity is not None and not isinstance(propensity, str) and not pair:
        given = np.asarray(propensity, np.float64)
        if given.shape != (len(data),):
            raise DataFormatError(f"propensities have shape {given.shape}, expected "
                                  f"({len(data)},): one per label of Y_true", field="propensity")
        p = np.ones(len(union), np.float64)  # labels without positives: p is never used
        p[data.ids_in(union)] = given
        propensity = p
    if len(union) != len(model):
        S = _widen(S, len(union))
    n_absent = int(np.count_nonzero(model.ids_in(data) < 0))
    return Y, S, Y_train, propensity, list(union.names), (unknown, n_absent)


def _per_label(counts, label_res, label_names, z) -> list[dict[str, Any]]:
    p, r, f = C._prf(counts, None, z)
    L = counts.n_labels
    names = [str(i) for i in range(L)] if label_names is None else [str(x) for x in label_names]
    support = counts.true_label.astype(np.int64).tolist()
    cols = [p.tolist(), r.tolist(), f.tolist()]
    if label_res is not None:
        cols += [label_res["ap"].tolist(), label_res["auroc"].tolist()]
    else:
        cols += [[None] * L, [None] * L]
    keys = ("precision", "recall", "f1", "ap", "auroc")
    out = []
    for i in range(L):
        row: dict[str, Any] = {"label": names[i], "support": support[i]}
        for key, col in zip(keys, cols):
            v = col[i]
            row[key] = v if v is None or math.isfinite(v) else None
        out.append(row)
    return out
