"""Confidence bounds for the precision of accepted pairs (used by
:class:`labelwise.decision.PrecisionTarget` with ``confidence=``).

The one-sided Clopper-Pearson ("exact") lower bound at level c for k successes in n trials
is the p with P(Binomial(n, p) >= k) = 1 - c, i.e. the (1 - c) quantile of
Beta(k, n - k + 1); it is 0 when k = 0. It never exceeds k / n.
"""

from __future__ import annotations

import numpy as np

__all__ = ["precision_lower_bound"]


def precision_lower_bound(k: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower bound at level ``confidence`` for k successes of n
    (0 when k = 0): the ``1 - confidence`` quantile of Beta(k, n - k + 1)."""
    from scipy.stats import beta

    k = np.asarray(k, np.float64)
    n = np.asarray(n, np.float64)
    out = np.zeros(k.shape)
    pos = k > 0
    out[pos] = beta.ppf(1.0 - confidence, k[pos], n[pos] - k[pos] + 1.0)
    return out
