"""From scores to label sets: decision policies tuned without leakage.

Policies (:mod:`.policies`): :class:`TopK`, :class:`GlobalThreshold`,
:class:`PerLabelThreshold` (micro-/macro-/samples-F1, shrinkage toward the global threshold
for rare labels), :class:`PrecisionTarget` (coverage at a precision target on calibrated
probabilities) and :class:`Combined` (threshold within top k, at least one label per row).
Fit them on cross-fitted training scores (:func:`labelwise.crossfit.cross_fit_scores`):
``fit(S, Y)`` takes no other data, so evaluation rows never tune a threshold.
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

__all__ = [
    "OBJECTIVES",
    "POLICIES",
    "Combined",
    "DecisionPolicy",
    "GlobalThreshold",
    "PerLabelThreshold",
    "PrecisionTarget",
    "TopK",
    "load_policy",
    "policy_from_dict",
]
