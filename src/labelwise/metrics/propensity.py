"""Label propensities of Jain, Prabhu and Varma (KDD 2016) for propensity-scored metrics.

The propensity of label ``l`` is the chance that a relevant label is observed::

    p_l = 1 / (1 + C * exp(-A * log(N_l + B))),   C = (log N - 1) * (B + 1) ** A

where ``N`` is the number of training samples and ``N_l`` the training count of label ``l``.
Rare labels get small propensities, so the inverse ``1 / p_l = 1 + C (N_l + B) ** -A``
weighs them up. The paper's presets for (A, B):

=============  =====  =====
preset          A      B
=============  =====  =====
``default``     0.55   1.5
``amazon``      0.6    2.6
``wikipedia``   0.5    0.4
=============  =====  =====

These are the formulas of pyxclib (``compute_inv_propesity``) and napkinXC.

The model needs ``C > 0``, i.e. ``log N > 1``: with ``N < e`` (one or two training rows) C
is negative, the "propensities" come out above 1 (with one row even negative), and they mean
nothing. Those libraries return them anyway; here fewer than :data:`MIN_ROWS` rows are refused
with an error (``metrics.evaluate`` then leaves PSP@k out and says so in a note).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataFormatError
from ._inputs import as_truth

__all__ = ["PROPENSITY_PRESETS", "MIN_ROWS", "propensities", "inverse_propensities"]

#: fewest training rows the propensity model takes (it needs log N > 1)
MIN_ROWS = 3

PROPENSITY_PRESETS: dict[str, tuple[float, float]] = {
    "default": (0.55, 1.5),
    "amazon": (0.6, 2.6),
    "wikipedia": (0.5, 0.4),
}


def _params(preset: str | None, A: float | None, B: float | None) -> tuple[float, float]:
    if preset is not None:
        if preset not in PROPENSITY_PRESETS:
            raise DataFormatError(
                f"unknown propensity preset {preset!r}; expected one of "
                f"{sorted(PROPENSITY_PRESETS)}", field="propensity")
        a0, b0 = PROPENSITY_PRESETS[preset]
    else:
        a0, b0 = PROPENSITY_PRESETS["default"]
    a = a0 if A is None else float(A)
    b = b0 if B is None else float(B)
    if not (np.isfinite(a) and a > 0 and np.isfinite(b) and b > 0):
        raise DataFormatError(f"need A > 0 and B > 0, got A={a}, B={b}", field="propensity")
    return a, b


def inverse_propensities(Y_train: Any, preset: str | None = None, *, A: float | None = None,
                         B: float | None = None) -> np.ndarray:
    """``1 / p_l`` per label (float64, length n_labels) from training labels ``Y_train``.

    ``preset`` is one of :data:`PROPENSITY_PRESETS` (default "default"); ``A``/``B``
    override it. Labels never seen in training (``N_l = 0``) get the largest weight
    ``1 + C B ** -A``. Fewer than :data:`MIN_ROWS` rows raise DataFormatError (module
    docstring: C would be negative).
    """
    Y = as_truth(Y_train)
    N = Y.shape[0]
    if N < MIN_ROWS:
        raise DataFormatError(f"Y_train has {N} row(s); propensities need at least {MIN_ROWS}: "
                              "the model's C = (log N - 1)(B + 1)^A is negative for N < e, "
                              "which would give propensities above 1", field="Y_train")
    a, b = _params(preset, A, B)
    counts = np.bincount(Y.indices, minlength=Y.shape[1]).astype(np.float64)
    C = (np.log(N) - 1.0) * (b + 1.0) ** a
    return 1.0 + C * np.power(counts + b, -a)


def propensities(Y_train: Any, preset: str | None = None, *, A: float | None = None,
                 B: float | None = None) -> np.ndarray:
    """Propensities ``p_l`` per label (float64); see :func:`inverse_propensities`."""
    return 1.0 / inverse_propensities(Y_train, preset, A=A, B=B)
