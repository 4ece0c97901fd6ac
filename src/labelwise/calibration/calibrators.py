"""Calibrators: raw scores to probabilities, fitted on cross-fitted training scores.

Every calibrator has ``fit(S, Y)``, ``transform(S)``, ``explain()``, ``to_dict()`` /
``arrays()`` / :func:`calibrator_from_dict`, ``save(dir)`` / :func:`load_calibrator`.
``S`` is dense (n_samples, n_labels) or a sparse top-k matrix (see
:mod:`labelwise.decision._entries`); ``transform`` keeps the layout: dense in, dense
float64 out; sparse in, CSR float32 out with the same stored entries.

Kinds
-----
``PlattCalibrator(per_label=False)``
    p = sigmoid(a s + b), one (a, b) for all labels (maximum likelihood, Newton).
``PlattCalibrator(per_label=True)``
    one (a_j, b_j) per label, pooled toward the shared fit (a0, b0) by a Gaussian prior:
    MAP estimates with prior precisions (lam_a, lam_b). ``prior_strength=None`` (default)
    estimates them by empirical Bayes: each label's unpooled fit and its sampling variance
    (inverse Hessian) are computed; over labels with at least ``min_positives`` positive
    and negative stored entries the between-label variance is
    ``tau^2 = max(mean((a_j - a0)^2) - mean(var_j), 1e-4)`` (the same for b), and
    ``lam = 1 / tau^2``. A label with few entries thus stays near the shared fit; one with
    many follows its own data. A float ``prior_strength`` sets ``lam_a = lam_b`` directly.
``PlattCalibrator(..., isotonic=True, centered=False)``
    the Platt map (shared or per label) followed by one shared isotonic map (centered as
    below with ``centered=True``) fitted on its
    probabilities of the fitting entries: the per-label Platt fit puts the labels on one
    probability scale, the isotonic step removes what miscalibration the sigmoid shape
    leaves (on small data the sigmoid of a linear model's margin is often too flat or too
    steep at the ends, which a per-label Platt fit cannot fix and the debiased calibration
    error shows).
``PlattCalibrator(per_label=True, context=True)``
    the per-label Platt map followed by one logistic map of each stored pair's probability
    *with its row and label* (its raw rank in the row, its strongest rival among the row's
    three top pairs, the mass those share, the label's precision among its confident
    fitting pairs and its positives: :mod:`labelwise.calibration._context`), so that pairs
    of different labels and rows are comparable; it reads a row's three top raw scores
    only, so any top-k with k >= 3 gives the same probabilities. What a precision target's
    single cut over all pairs ranks by (``tune --calibration platt-per-label+context``).
``IsotonicCalibrator(centered=False)``
    one non-decreasing step map shared by all labels (scikit-learn's IsotonicRegression,
    stored as its breakpoints and applied by linear interpolation, clipped at the ends).
    Its flat steps tie many scores at one probability, which a precision target cannot cut
    through; ``centered=True`` (centered isotonic regression, Oron & Flournoy 2017) keeps
    one breakpoint per step, at the mean score of the step, and interpolates linearly
    between them: a strictly increasing map (flat only beyond the outer breakpoints) that
    keeps the ranking of the scores.
``TemperatureCalibrator()``
    p = sigmoid(s / T), one temperature T > 0 shared by all labels (1-D Newton on 1/T).

Labels never retrieved
----------------------
Only stored entries are fitted and transformed. An unstored (not retrieved) pair of a top-k
matrix has the probability ``missing_probability_``: the share of true labels among the
unretrieved pairs of the fitting data, capped at the lowest calibrated probability of a
stored fitting entry, so it is never above a retrieved label's probability. It is reported
by ``explain()`` and used by :func:`labelwise.calibration.ece.expected_calibration_error`
(``missing=``); no decision policy ever accepts an unretrieved label. Dense scores have no
unretrieved pairs (``missing_probability_`` is then None).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np

from .. import store
from ..decision._entries import Entries, entries, hits, rebuild, truth
from ..errors import DataFormatError, NotFittedError
from ._context import FEATURES as CONTEXT_FEATURES
from ._context import FLOOR as CONTEXT_FLOOR
from ._context import TOP as CONTEXT_TOP
from ._context import context_features, fit_context, label_ceilings
from ._logistic import _sigmoid, fit_groups

__all__ = ["Calibrator", "PlattCalibrator", "IsotonicCalibrator", "TemperatureCalibrator",
           "CALIBRATORS", "calibrator_from_dict", "load_calibrator", "FORMAT"]

FORMAT = "labelwise.calibration"


class Calibrator:
    """Base class; see the module docstring."""

    kind: ClassVar[str] = ""

    def fit(self, S: Any, Y: Any) -> Calibrator:
        """Fit on scores S (n_samples, n_labels) and truth Y; returns self."""
        E = entries(S)
        Yc = truth(Y, E.shape)
        h = hits(E, Yc)
        self.n_labels_ = E.shape[1]
        self._fit(E, h)
        if E.dense:
            self.missing_probability_ = None
        else:
            n_missing = E.shape[0] * E.shape[1] - E.nnz
            pos_missing = Yc.nnz - int(h.sum())
            rate = pos_missing / n_missing if n_missing else 0.0
            floor = float(self._map_entries(E).min()) if E.nnz else rate
            self.missing_probability_ = float(min(rate, floor))
        return self

    def transform(self, S: Any) -> Any:
        """Probabilities in the layout of S (dense -> dense, sparse -> CSR float32)."""
        self._check_fitted()
        E = entries(S)
        self._check_labels(E)
        return rebuild(E, self._map_entries(E))

    predict_proba = transform

    def fit_transform(self, S: Any, Y: Any) -> Any:
        return self.fit(S, Y).transform(S)

    # -------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {"kind": self.kind, "params": self._params(), "n_labels": self.n_labels_,
                "missing_probability": self.missing_probability_, "state": self._state()}

    def arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return self._arrays()

    def save(self, directory: str | os.PathLike[str], *, name: str = "calibration") -> None:
        """Write ``name.json`` + ``name.npz`` into ``directory`` (atomically, file by file)."""
        store.save_object(directory, name, FORMAT, self.to_dict(), self.arrays())

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, name: str = "calibration") -> Calibrator:
        return load_calibrator(directory, name=name)

    def explain(self) -> dict[str, Any]:
        """The fitted map in words and numbers (JSON-able)."""
        self._check_fitted()
        out = {"kind": self.kind, "missing_probability": self.missing_probability_}
        out.update(self._explain())
        return out

    # -------------------------------------------------------------- helpers
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_labels_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(S, Y)")

    def _check_labels(self, E: Entries) -> None:
        if E.shape[1] != self.n_labels_:
            raise DataFormatError(f"scores have {E.shape[1]} labels but the calibrator was "
                                  f"fitted on {self.n_labels_}", field="S")

    def _params(self) -> dict[str, Any]:
        return {}

    def _fit(self, E: Entries, h: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def _map(self, values: np.ndarray, cols: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _map_entries(self, E: Entries) -> np.ndarray:
        """Probabilities of the entries of E (a map that reads the rows overrides this)."""
        return self._map(E.values, E.cols)

    @property
    def min_k(self) -> int:
        """The fewest top scores a row needs for its pairs' probabilities not to depend on
        how many were retrieved (1: each pair alone)."""
        return 1

    def _state(self) -> dict[str, Any]:
        return {}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _set(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        pass

    def _explain(self) -> dict[str, Any]:
        return {}


class PlattCalibrator(Calibrator):
    """Platt scaling, shared or per label with empirical-Bayes pooling (module docstring)."""

    kind = "platt"

    def __init__(self, *, per_label: bool = False, prior_strength: float | None = None,
                 min_positives: int = 10, isotonic: bool = False,
                 centered: bool = False, context: bool = False) -> None:
        self.per_label = per_label
        self.prior_strength = prior_strength
        self.min_positives = min_positives
        self.isotonic = isotonic
        self.centered = centered
        self.context = context

    def _params(self) -> dict[str, Any]:
        return {"per_label": bool(self.per_label), "prior_strength": self.prior_strength,
                "min_positives": int(self.min_positives), "isotonic": bool(self.isotonic),
                "centered": bool(self.centered), "context": bool(self.context)}

    def _fit(self, E: Entries, h: np.ndarray) -> None:
        self._fit_platt(E, h)
        self.iso_ = None
        if self.isotonic:
            self.iso_ = _fit_isotonic(self._platt(E.values, E.cols), h, bool(self.centered))
        self.context_ = self.ceiling_ = None
        if self.context:
            p = self._map(E.values, E.cols)
            self.ceiling_ = label_ceilings(p, h, E.cols, E.shape[1])
            X = self._features(E, p)
            keep = p >= CONTEXT_FLOOR
            self.context_ = fit_context(X[keep], h[keep])

    def _features(self, E: Entries, p: np.ndarray) -> np.ndarray:
        return context_features(p, E.values, E.rows, E.cols, E.indptr, self.ceiling_,
                                self.n_positives_)

    @property
    def min_k(self) -> int:
        return CONTEXT_TOP if getattr(self, "context_", None) is not None else 1

    def _map_entries(self, E: Entries) -> np.ndarray:
        p = self._map(E.values, E.cols)
        if getattr(self, "context_", None) is None:
            return p
        w = self.context_
        return _sigmoid(self._features(E, p) @ w[:-1] + w[-1])

    def _fit_platt(self, E: Entries, h: np.ndarray) -> None:
        if self.prior_strength is not None and not (float(self.prior_strength) >= 0):
            raise ValueError(f"prior_strength must be None or >= 0, got {self.prior_strength!r}")
        y = h.astype(np.float64)
        zeros = np.zeros(E.nnz, np.int64)
        a, b, _ = fit_groups(E.values, y, zeros, 1, a0=0.0, b0=0.0)
        self.shared_ = (float(a[0]), float(b[0]))
        L = E.shape[1]
        self.n_positives_ = np.bincount(E.cols, weights=y, minlength=L).astype(np.int64)
        self.n_entries_ = np.bincount(E.cols, minlength=L).astype(np.int64)
        if not self.per_label:
            self.prior_ = None
            return
        a0, b0 = self.shared_
        if self.prior_strength is None:
            lam_a, lam_b = self._empirical_bayes(E, y, a0, b0)
        else:
            lam_a = lam_b = float(self.prior_strength)
        self.prior_ = (float(lam_a), float(lam_b))
        a, b, _ = fit_groups(E.values, y, E.cols, L, a0=a0, b0=b0, lam_a=lam_a, lam_b=lam_b)
        self.a_, self.b_ = a, b

    def _empirical_bayes(self, E: Entries, y: np.ndarray, a0: float, b0: float):
        L = E.shape[1]
        n_neg = self.n_entries_ - self.n_positives_
        rich = (self.n_positives_ >= self.min_positives) & (n_neg >= self.min_positives)
        if np.count_nonzero(rich) < 3:  # too few labels to estimate a spread: pool fully
            return 1e4, 1e4
        a, b, H = fit_groups(E.values, y, E.cols, L, a0=a0, b0=b0, lam_a=1e-3, lam_b=1e-3)
        det = H[:, 0, 0] * H[:, 1, 1] - H[:, 0, 1] ** 2
        var_a = H[:, 1, 1] / det
        var_b = H[:, 0, 0] / det
        tau_a = max(float(np.mean((a[rich] - a0) ** 2) - np.mean(var_a[rich])), 1e-4)
        tau_b = max(float(np.mean((b[rich] - b0) ** 2) - np.mean(var_b[rich])), 1e-4)
        return 1.0 / tau_a, 1.0 / tau_b

    def _platt(self, values: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if self.per_label:
            return _sigmoid(self.a_[cols] * values + self.b_[cols])
        a, b = self.shared_
        return _sigmoid(a * values + b)

    def _map(self, values: np.ndarray, cols: np.ndarray) -> np.ndarray:
        z = self._platt(values, cols)
        if self.iso_ is not None:
            return np.interp(z, *self.iso_)
        return z

    def _state(self) -> dict[str, Any]:
        return {"shared": list(self.shared_),
                "prior": None if self.prior_ is None else list(self.prior_),
                "context": None if self.context_ is None else [float(v) for v in self.context_]}

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {"n_positives": self.n_positives_, "n_entries": self.n_entries_}
        if self.per_label:
            out.update(a=self.a_, b=self.b_)
        if self.iso_ is not None:
            out.update(iso_x=self.iso_[0], iso_y=self.iso_[1])
        if self.ceiling_ is not None:
            out.update(ceiling=self.ceiling_)
        return out

    def _set(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.shared_ = tuple(float(v) for v in state["shared"])
        self.prior_ = None if state["prior"] is None else tuple(state["prior"])
        self.n_positives_ = arrays["n_positives"]
        self.n_entries_ = arrays["n_entries"]
        if self.per_label:
            self.a_, self.b_ = arrays["a"], arrays["b"]
            if self.a_.shape != (self.n_labels_,) or self.b_.shape != (self.n_labels_,):
                raise DataFormatError("per-label Platt arrays do not match n_labels",
                                      field="arrays")
        self.iso_ = _check_steps(arrays["iso_x"], arrays["iso_y"]) if self.isotonic else None
        self.context_ = self.ceiling_ = None
        w = state.get("context")  # absent in files of older versions
        if self.context:
            self.ceiling_ = arrays["ceiling"]
            if self.ceiling_.shape != (self.n_labels_,):
                raise DataFormatError("context ceiling array does not match n_labels",
                                      field="arrays")
        if w is not None:
            if not self.context or len(w) != len(CONTEXT_FEATURES) + 1:
                raise DataFormatError(f"context weights: expected {len(CONTEXT_FEATURES) + 1} "
                                      f"numbers with context=True, got {w!r}", field="state")
            self.context_ = np.asarray(w, np.float64)

    def _explain(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shared": {"a": self.shared_[0], "b": self.shared_[1]},
                               "per_label": bool(self.per_label)}
        if self.per_label:
            out["prior_precision"] = {"a": self.prior_[0], "b": self.prior_[1]}
            out["labels"] = [
                {"label": j, "a": float(self.a_[j]), "b": float(self.b_[j]),
                 "positives": int(self.n_positives_[j]), "entries": int(self.n_entries_[j])}
                for j in range(self.n_labels_)]
        if self.iso_ is not None:
            out["isotonic_breakpoints"] = int(self.iso_[0].size)
        if self.context:
            out["context"] = (None if self.context_ is None else
                              dict(zip((*CONTEXT_FEATURES, "intercept"),
                                       map(float, self.context_), strict=True)))
        return out


class TemperatureCalibrator(Calibrator):
    """p = sigmoid(s / T) with one fitted temperature T (module docstring)."""

    kind = "temperature"

    def _fit(self, E: Entries, h: np.ndarray) -> None:
        s, y = E.values, h.astype(np.float64)
        beta = 1.0
        for _ in range(100):
            p = _sigmoid(beta * s)
            grad = float(np.dot(p - y, s))
            hess = float(np.dot(np.maximum(p * (1 - p), 1e-12), s * s)) + 1e-12
            new = beta - grad / hess
            if new <= 0:  # keep T positive: halve toward zero instead
                new = beta / 2
            if abs(new - beta) <= 1e-10 * (1 + abs(beta)):
                beta = new
                break
            beta = new
        self.temperature_ = float(1.0 / beta)

    def _map(self, values: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return _sigmoid(values / self.temperature_)

    def _state(self) -> dict[str, Any]:
        return {"temperature": self.temperature_}

    def _set(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.temperature_ = float(state["temperature"])

    def _explain(self) -> dict[str, Any]:
        return {"temperature": self.temperature_}


class IsotonicCalibrator(Calibrator):
    """One shared isotonic (non-decreasing) map (module docstring)."""

    kind = "isotonic"

    def __init__(self, *, centered: bool = False) -> None:
        self.centered = centered

    def _params(self) -> dict[str, Any]:
        return {"centered": bool(self.centered)}

    def _fit(self, E: Entries, h: np.ndarray) -> None:
        self.x_, self.y_ = _fit_isotonic(E.values, h, bool(self.centered))

    def _map(self, values: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return np.interp(values, self.x_, self.y_)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"x": self.x_, "y": self.y_}

    def _set(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.x_, self.y_ = _check_steps(arrays["x"], arrays["y"])

    def _explain(self) -> dict[str, Any]:
        return {"breakpoints": int(self.x_.size)}


def _fit_isotonic(x: np.ndarray, h: np.ndarray, centered: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints of the non-decreasing least-squares fit of the outcomes h on x
    (scikit-learn's IsotonicRegression, values in [0, 1]); ``centered``: one breakpoint per
    block of equal fitted values, at the mean x of the block (module docstring)."""
    from sklearn.isotonic import IsotonicRegression

    if x.size == 0:
        raise DataFormatError("no stored scores to calibrate on", field="S")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(x, h.astype(np.float64))
    if not centered:
        return (np.asarray(iso.X_thresholds_, np.float64),
                np.asarray(iso.y_thresholds_, np.float64))
    order = np.argsort(x, kind="stable")
    xs = x[order].astype(np.float64)
    fitted = np.asarray(iso.predict(xs), np.float64)
    start = np.flatnonzero(np.r_[True, fitted[1:] != fitted[:-1]])
    counts = np.diff(np.r_[start, xs.size])
    cx = np.add.reduceat(xs, start) / counts
    return cx, fitted[start]


def _check_steps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.shape != y.shape or x.ndim != 1 or x.size == 0 or np.any(np.diff(x) < 0) \
            or np.any(np.diff(y) < 0):
        raise DataFormatError("isotonic breakpoints must be two non-decreasing arrays of "
                              "one length", field="arrays")
    return x, y


CALIBRATORS: dict[str, type[Calibrator]] = {
    "platt": PlattCalibrator, "isotonic": IsotonicCalibrator,
    "temperature": TemperatureCalibrator}


def calibrator_from_dict(d: dict[str, Any], arrays: dict[str, np.ndarray]) -> Calibrator:
    """Rebuild a fitted calibrator from ``to_dict()`` and ``arrays()``."""
    if not isinstance(d, dict) or d.get("kind") not in CALIBRATORS:
        kind = d.get("kind") if isinstance(d, dict) else None
        raise DataFormatError(f"unknown calibrator kind {kind!r}; known: "
                              f"{', '.join(sorted(CALIBRATORS))}", field="kind")
    cls = CALIBRATORS[d["kind"]]
    try:
        obj = cls(**d.get("params", {}))
        n = d["n_labels"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise DataFormatError(f"n_labels must be an int >= 0, got {n!r}", field="n_labels")
        obj.n_labels_ = n
        mp = d.get("missing_probability")
        obj.missing_probability_ = None if mp is None else float(mp)
        obj._set(d.get("state", {}), arrays)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, DataFormatError):
            raise
        raise DataFormatError(f"malformed {d['kind']} calibrator: {e!r}") from None
    return obj


def load_calibrator(directory: str | os.PathLike[str], *, name: str = "calibration",
                    verify: bool = True) -> Calibrator:
    """Read ``name.json`` + ``name.npz`` written by ``Calibrator.save``."""
    d, arrays = store.read_object(directory, name, FORMAT, verify=verify)
    return calibrator_from_dict(d, arrays)
