"""The metric registry: every metric's name, function, accepted inputs and direction.

``METRICS[name]`` is a :class:`MetricSpec`. Its ``func(Y_true, S, **params)`` returns a float;
``inputs`` says which of "dense", "topk" (scores) and "sets" (:class:`LabelSets`) it takes
(set-based metrics take scores only with ``threshold=`` or ``k=``); ``higher_is_better``
tells how to compare two values. Names ending in ``@k`` take ``k=``; names ending in ``@p``
take ``target=``; ``psp@k``/``psndcg@k`` need ``propensity=``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..errors import DataFormatError
from . import classification as C
from . import coverage as V
from . import ranking as R
from . import threshold_free as T

__all__ = ["MetricSpec", "METRICS", "get_metric", "metric_names"]

SCORES = frozenset({"dense", "topk"})
ALL = frozenset({"dense", "topk", "sets"})


@dataclass(frozen=True)
class MetricSpec:
    name: str
    func: Callable[..., Any]
    inputs: frozenset
    higher_is_better: bool
    family: str  # "ranking" | "set" | "threshold_free" | "coverage"
    description: str


def _coverage(mode: str) -> Callable[..., float]:
    def metric(Y_true: Any, S: Any, *, target: float = 0.9, **kw: Any) -> float:
        return V.coverage_at_precision(Y_true, S, target=target, mode=mode, **kw).coverage

    metric.__name__ = f"coverage_at_precision_{mode}"
    return metric


def _specs() -> list[MetricSpec]:
    out = [
        MetricSpec("p@k", R.precision_at_k, SCORES, True, "ranking", "precision at k"),
        MetricSpec("r@k", R.recall_at_k, SCORES, True, "ranking", "recall at k"),
        MetricSpec("ndcg@k", R.ndcg_at_k, SCORES, True, "ranking", "nDCG at k"),
        MetricSpec("psp@k", R.psprecision_at_k, SCORES, True, "ranking",
                   "propensity-scored precision at k (normalised)"),
        MetricSpec("psndcg@k", R.psndcg_at_k, SCORES, True, "ranking",
                   "propensity-scored nDCG at k (normalised)"),
    ]
    for avg in C.AVERAGES:
        for what, f in (("precision", C.precision_score), ("recall", C.recall_score),
                        ("f1", C.f1_score)):
            out.append(MetricSpec(f"{avg}_{what}", partial(f, average=avg), ALL, True, "set",
                                  f"{avg}-averaged {what}"))
    out += [
        MetricSpec("hamming_loss", C.hamming_loss, ALL, False, "set", "Hamming loss"),
        MetricSpec("subset_accuracy", C.subset_accuracy, ALL, True, "set",
                   "exact set match ratio"),
        MetricSpec("jaccard", partial(C.jaccard_score, average="samples"), ALL, True, "set",
                   "samples-averaged Jaccard index"),
        MetricSpec("cp", C.cp_score, ALL, True, "set", "per-class precision (mean)"),
        MetricSpec("cr", C.cr_score, ALL, True, "set", "per-class recall (mean)"),
        MetricSpec("cf1", C.cf1_score, ALL, True, "set", "2 CP CR / (CP + CR)"),
        MetricSpec("op", C.op_score, ALL, True, "set", "overall precision"),
        MetricSpec("or", C.or_score, ALL, True, "set", "overall recall"),
        MetricSpec("of1", C.of1_score, ALL, True, "set", "2 OP OR / (OP + OR)"),
        MetricSpec("map", T.mean_average_precision, SCORES, True, "threshold_free",
                   "mean over labels of average precision"),
        MetricSpec("micro_ap", T.micro_average_precision, SCORES, True, "threshold_free",
                   "average precision over pooled (sample, label) cells (AU(PRC))"),
        MetricSpec("macro_auroc", partial(T.roc_auc, average="macro"), SCORES, True,
                   "threshold_free", "mean over labels of AUROC"),
        MetricSpec("micro_auroc", partial(T.roc_auc, average="micro"), SCORES, True,
                   "threshold_free", "AUROC over pooled (sample, label) cells"),
        MetricSpec("lrap", T.label_ranking_average_precision, SCORES, True,
                   "threshold_free", "label ranking average precision"),
        MetricSpec("coverage_error", T.coverage_error, SCORES, False, "threshold_free",
                   "labels needed to cover all true labels"),
        MetricSpec("label_ranking_loss", T.label_ranking_loss, SCORES, False,
                   "threshold_free", "share of mis-ordered (true, false) pairs"),
        MetricSpec("one_error", T.one_error, SCORES, False, "threshold_free",
                   "top-ranked label is not true"),
        MetricSpec("coverage@p", _coverage("top1"), SCORES, True, "coverage",
                   "share of items whose top-1 label can be accepted at precision >= p"),
        MetricSpec("label_coverage@p", _coverage("labels"), SCORES, True, "coverage",
                   "share of items with an accepted label, pair precision >= p"),
    ]
    return out


METRICS: dict[str, MetricSpec] = {m.name: m for m in _specs()}


def metric_names() -> list[str]:
    """All registered metric names."""
    return list(METRICS)


def get_metric(name: str) -> MetricSpec:
    """The :class:`MetricSpec` of ``name``; unknown names are refused with the list."""
    try:
        return METRICS[name]
    except KeyError:
        raise DataFormatError(f"unknown metric {name!r}; known: {', '.join(METRICS)}",
                              field="metric") from None
