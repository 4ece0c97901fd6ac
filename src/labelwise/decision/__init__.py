"""From scores to label sets: decision policies tuned without leakage.

Policies (:mod:`.policies`): :class:`TopK`, :class:`GlobalThreshold`,
:class:`PerLabelThreshold` (micro-/macro-/samples-F1, shrinkage toward the global threshold
for rare labels), :class:`PrecisionTarget` (coverage at a precision target on calibrated
probabilities) and :class:`Combined` (threshold within top k, at least one label per row).
Fit them on cross-fitted training scores (:func:`labelwise.crossfit.cross_fit_scores`):
``fit(S, Y)`` takes no other data, so evaluation rows never tune a threshold.
Policy settings (shrinkage, scale) are chosen by :func:`select_policy` /
:func:`cross_validated_score` on the same tuning scores (:mod:`.selection`).
Searches are vectorised sorts over the stored entries (:mod:`._search`), O(nnz log nnz).
"""

from __future__ import annotations

from .policies import (
    OBJECTIVES,
    POLICIES,
    Combined,
    DecisionPolicy,
    GlobalThreshold,
    PerLabelThreshold,
    PrecisionTarget,
    TopK,
    load_policy,
    policy_from_dict,
)
from .selection import clone_policy, cross_validated_score, select_policy

__all__ = [
    "OBJECTIVES",
    "POLICIES",
    "Combined",
    "DecisionPolicy",
    "GlobalThreshold",
    "PerLabelThreshold",
    "PrecisionTarget",
    "TopK",
    "clone_policy",
    "cross_validated_score",
    "load_policy",
    "policy_from_dict",
    "select_policy",
]
