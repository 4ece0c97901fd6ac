"""Calibrated probabilities from any model's scores, and how calibrated they are.

- :class:`PlattCalibrator` (shared, or per label with empirical-Bayes pooling toward the
  shared fit), :class:`IsotonicCalibrator`, :class:`TemperatureCalibrator`
  (:mod:`.calibrators`); all work on dense scores and on sparse top-k scores (unstored =
  not retrieved, probability ``missing_probability_``). Fit them on cross-fitted training
  scores (:func:`labelwise.crossfit.cross_fit_scores`), never on evaluation rows.
- :func:`expected_calibration_error` and :func:`reliability_diagram` (:mod:`.ece`), and two
  estimators with less finite-sample bias: :func:`debiased_calibration_error` (Kumar et al.
  2019) and :func:`ece_sweep` (Roelofs et al. 2022).
- Persistence without pickle: ``save(dir)`` / :func:`load_calibrator`,
  ``to_dict()`` + ``arrays()`` / :func:`calibrator_from_dict`.
"""

from __future__ import annotations

from .calibrators import (
    CALIBRATORS,
    Calibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    TemperatureCalibrator,
    calibrator_from_dict,
    load_calibrator,
)
from .ece import (
    ReliabilityDiagram,
    debiased_calibration_error,
    ece_sweep,
    expected_calibration_error,
    reliability_diagram,
)

__all__ = [
    "CALIBRATORS",
    "Calibrator",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "ReliabilityDiagram",
    "TemperatureCalibrator",
    "calibrator_from_dict",
    "debiased_calibration_error",
    "ece_sweep",
    "expected_calibration_error",
    "load_calibrator",
    "reliability_diagram",
]
