"""``Blend``: the mean of several fitted models' calibrated probabilities (``--model auto``
blends its best candidates when their cross-validated blend beats every single one).

How it scores
-------------
``members`` is a list of ``[class name, params]`` pairs, the class names those of
:data:`labelwise.models.persist.MODEL_CLASSES` (the same allow-list loading uses; a blend
never holds a blend). ``fit`` first fits each member ``cv`` times by iterative-stratified
cross-validation (:class:`labelwise.split.IterativeStratifiedKFold`, ``random_state``) and
maps its out-of-fold scores to probabilities by per-label Platt scaling
(:class:`labelwise.calibration.PlattCalibrator`, ``per_label=True``), then fits every member
on all rows. A row's score for label j is the mean over members of
``sigmoid(a[m, j] * s_m[j] + b[m, j])``, with ``s_m`` member m's decision score on all
labels: members whose scores live on different scales (margins, forest votes, marginals)
are averaged as probabilities. The blend's scores are probabilities (``default_threshold``
0.5).

Saved: the members' own arrays under ``m<i>_<name>``, their state in the blend's state,
and the Platt parameters ``platt_a``/``platt_b`` (members x labels). Loading builds each
member through the allow-list and runs its own array checks.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError
from .base import MultiLabelModel, sigmoid
from .chains import check_seed, check_threads
from .topk import topk_dense

__all__ = ["Blend"]

#: rows per block when members score every label
_BLOCK_ENTRIES = 1 << 22
_MEMBER_ARRAY = re.compile(r"^m(\d+)_(.+)$")
_NUMERIC = ("|b1", "|u1", "|i1", "<u2", "<i2", "<f2", "<u4", "<i4", "<f4", "<u8", "<i8", "<f8")


def _member_class(name: Any) -> type:
    from .persist import MODEL_CLASSES

    if not isinstance(name, str) or name not in MODEL_CLASSES or name == "Blend":
        raise ValueError(f"a blend member's class must be one of the saved model classes "
                         f"(not Blend), got {name!r}")
    module, attr = MODEL_CLASSES[name]
    return getattr(importlib.import_module(module), attr)



def configured(cls: type, params: dict[str, Any], n_threads: int | None,
               random_state: Any) -> Any:
    """``cls(**params)`` with ``n_threads`` set (when not None) and ``random_state`` defaulted,
    where ``cls`` takes them (a blend's members, auto's candidates)."""
    params = dict(params)
    valid = cls().get_params()
    if "n_threads" in valid and n_threads is not None:
        params["n_threads"] = n_threads
    if "random_state" in valid:
        params.setdefault("random_state", random_state)
    return cls(**params)

class Blend(MultiLabelModel):
    """The mean of ``members``' per-label-calibrated probabilities (module docstring).

    Parameters
    ----------
    members: list of ``[class name, params dict]`` (at least one).
    cv: folds (>= 2) of the cross-validation that calibrates each member.
    n_threads: given to every member that has ``n_threads`` (None: the member's own).
    random_state: the folds, and members' ``random_state`` where their params give none.
    """

    _persist_name: ClassVar[str] = "Blend"
    _saved_arrays: ClassVar[dict[str, tuple[tuple[str, ...], int | None]]] = {
        "platt_a": (("<f8",), 2),
        "platt_b": (("<f8",), 2),
        r"m\d+_\w+": (_NUMERIC, None),  # each member's own arrays, checked by its class
    }
    default_threshold: ClassVar[float] = 0.5

    def __init__(self, members: list[Any] | None = None, *, cv: int = 3,
                 n_threads: int | None = None, random_state: int | None = 0) -> None:
        self.members = members
        self.cv = cv
        self.n_threads = n_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    def _validate_params(self) -> None:
        if not isinstance(self.members, list | tuple) or not self.members:
            raise ValueError(f"members must be a non-empty list of [class name, params], got "
                             f"{self.members!r}")
        for i, m in enumerate(self.members):
            if not (isinstance(m, list | tuple) and len(m) == 2 and isinstance(m[1], dict)):
                raise ValueError(f"members[{i}] must be [class name, params dict], got {m!r}")
            _member_class(m[0])
        if isinstance(self.cv, bool) or not isinstance(self.cv, int | np.integer) or self.cv < 2:
            raise ValueError(f"cv must be an int >= 2, got {self.cv!r}")
        check_threads(self.n_threads)
        check_seed(self.random_state)

    def _member(self, i: int) -> MultiLabelModel:
        name, params = self.members[i]
        return configured(_member_class(name), params, self.n_threads, self.random_state)

    # ------------------------------------------------------------------ fit
    def _fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
        from ..calibration import PlattCalibrator
        from ..split import IterativeStratifiedKFold

        n, L = Y.shape
        if n < self.cv:
            raise DataFormatError(f"cv={self.cv} folds need at least {self.cv} rows, got {n}",
                                  field="cv")
        splits = list(IterativeStratifiedKFold(n_splits=int(self.cv),
                                               random_state=self.random_state)
                      .split(np.zeros((n, 1)), Y))
        a = np.empty((len(self.members), L))
        b = np.empty((len(self.members), L))
        fitted = []
        for i in range(len(self.members)):
            S = np.zeros((n, L), np.float64)
            for train, test in splits:
                S[test] = self._member_scores(self._member(i).fit(X[train], Y[train]), X[test])
            cal = PlattCalibrator(per_label=True).fit(S, Y)  # dense: zeros are scores
            a[i], b[i] = cal.a_, cal.b_
            model = self._member(i).fit(X, Y)
            model.labels_ = self.labels_
            fitted.append(model)
        self.members_ = fitted
        self.platt_a_, self.platt_b_ = a, b

    @staticmethod
    def _member_scores(model: MultiLabelModel, X: sp.csr_matrix) -> np.ndarray:
        L = model.n_labels_
        return model.decision_function(X, k=L).toarray().astype(np.float64)

    # ------------------------------------------------------------------ scoring
    def predict_members(self, X: Any) -> np.ndarray:
        """Each member's calibrated probabilities: dense (members, n_samples, n_labels)."""
        self._check_fitted()
        from .base import as_feature_matrix

        X = as_feature_matrix(X, n_features=self.n_features_in_)
        return np.stack([sigmoid(self.platt_a_[i] * self._member_scores(m, X) + self.platt_b_[i])
                         for i, m in enumerate(self.members_)])

    def _decision_topk(self, X: sp.csr_matrix, k: int) -> sp.csr_matrix:
        L = self.n_labels_
        block = max(1, _BLOCK_ENTRIES // max(1, L * len(self.members_)))
        parts = []
        for s in range(0, X.shape[0], block):
            Xb = X[s:s + block]
            P = np.zeros((Xb.shape[0], L))
            for i, m in enumerate(self.members_):
                P += sigmoid(self.platt_a_[i] * self._member_scores(m, Xb) + self.platt_b_[i])
            parts.append(topk_dense((P / len(self.members_)).astype(np.float32), k))
        return sp.vstack(parts, format="csr") if parts else topk_dense(
            np.zeros((0, L), np.float32), k)

    def _to_probability(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {"platt_a": np.asarray(self.platt_a_, np.float64),
                                         "platt_b": np.asarray(self.platt_b_, np.float64)}
        states = []
        for i, m in enumerate(self.members_):
            sub, state = m._get_state()
            for key, arr in sub.items():
                arrays[f"m{i}_{key}"] = arr
            states.append(state)
        return arrays, {"members": states}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        from .persist import check_saved_arrays

        n_m, L = len(self.members), len(self.labels_)
        states = state.get("members") if isinstance(state, dict) else None
        if not isinstance(states, list) or len(states) != n_m:
            raise DataFormatError(f"Blend state must list {n_m} member states", field="state")
        for key in ("platt_a", "platt_b"):
            if key not in arrays or arrays[key].shape != (n_m, L):
                raise DataFormatError(f"Blend array {key!r} must be {n_m} x {L}", field="arrays")
        sub: list[dict[str, np.ndarray]] = [{} for _ in range(n_m)]
        for key, arr in arrays.items():
            hit = _MEMBER_ARRAY.match(key)
            if hit is None:
                continue
            i = int(hit.group(1))
            if i >= n_m:
                raise DataFormatError(f"array {key!r} names member {i}; the blend has {n_m}",
                                      field="arrays")
            sub[i][hit.group(2)] = arr
        members = []
        for i in range(n_m):
            model = self._member(i)
            check_saved_arrays(type(model), sub[i], where=f"Blend member {i}")
            model.labels_ = self.labels_
            model.n_features_in_ = self.n_features_in_
            model._set_state(sub[i], states[i])
            members.append(model)
        self.members_ = members
        self.platt_a_, self.platt_b_ = arrays["platt_a"], arrays["platt_b"]
