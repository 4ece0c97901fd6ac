"""Multi-label metrics for every field, in one call: :func:`evaluate`.

- rank-based (XMC): P@k, R@k, nDCG@k, PSP@k, PSnDCG@k (:mod:`.ranking`, :mod:`.propensity`)
- set-based: micro/macro/samples/weighted P/R/F1, Hamming loss, subset accuracy, Jaccard,
  CP/CR/CF1/OP/OR/OF1 (:mod:`.classification`)
- threshold-free: AP/mAP, macro/micro AUROC, LRAP, coverage error, label ranking loss,
  one-error (:mod:`.threshold_free`)
- coverage at a target precision and the precision-coverage curve (:mod:`.coverage`)

Inputs (:mod:`._inputs`): ``Y_true`` 0/1 dense or sparse; scores dense or top-k CSR
(unstored = not retrieved); predicted sets wrapped in :class:`LabelSets`. Rank ties are
broken by the smaller label id; threshold-free metrics treat ties as scikit-learn does.
Every metric is listed in :data:`METRICS` with its inputs and direction.
"""

from __future__ import annotations

from ._inputs import LabelSets
from .classification import (
    cf1_score,
    cp_score,
    cr_score,
    f1_score,
    hamming_loss,
    jaccard_score,
    of1_score,
    op_score,
    or_score,
    precision_recall_f1,
    precision_score,
    recall_score,
    subset_accuracy,
    tagging_scores,
)
from .coverage import CoverageResult, coverage_at_precision, precision_coverage_curve
from .evaluate import evaluate
from .propensity import PROPENSITY_PRESETS, inverse_propensities, propensities
from .ranking import (
    ndcg_at_k,
    precision_at_k,
    psndcg_at_k,
    psprecision_at_k,
    ranking_metrics,
    recall_at_k,
)
from .registry import METRICS, MetricSpec, get_metric, metric_names
from .threshold_free import (
    average_precision,
    coverage_error,
    label_ranking_average_precision,
    label_ranking_loss,
    label_scores,
    mean_average_precision,
    micro_average_precision,
    one_error,
    roc_auc,
    sample_scores,
)

__all__ = [
    "LabelSets",
    "evaluate",
    "METRICS",
    "MetricSpec",
    "get_metric",
    "metric_names",
    "PROPENSITY_PRESETS",
    "propensities",
    "inverse_propensities",
    "precision_at_k",
    "recall_at_k",
    "ndcg_at_k",
    "psprecision_at_k",
    "psndcg_at_k",
    "ranking_metrics",
    "precision_recall_f1",
    "precision_score",
    "recall_score",
    "f1_score",
    "hamming_loss",
    "subset_accuracy",
    "jaccard_score",
    "tagging_scores",
    "cp_score",
    "cr_score",
    "cf1_score",
    "op_score",
    "or_score",
    "of1_score",
    "average_precision",
    "mean_average_precision",
    "micro_average_precision",
    "roc_auc",
    "label_ranking_average_precision",
    "coverage_error",
    "label_ranking_loss",
    "one_error",
    "label_scores",
    "sample_scores",
    "CoverageResult",
    "coverage_at_precision",
    "precision_coverage_curve",
]
