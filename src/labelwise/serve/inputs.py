"""Requests to the model's input, decision policies to pipeline views, and the model call.

The model call is :meth:`labelwise.pipeline.Pipeline.predict_labels`, the one
``labelwise predict`` makes, so an item gets the same fields and values either way. A policy
other than ``"tuned"`` runs on a shallow copy of the pipeline whose ``decision`` is that
policy (the loaded pipeline is never changed):

- ``"top_k"``: the item's ``top_k`` candidates are its labels;
- ``{"threshold": t}``: a candidate is chosen when its probability >= t (calibrated when the
  pipeline has a calibrator, else the model's link, the probabilities the answer shows);
- ``{"precision": p}``: a candidate is chosen when its calibrated probability >= p (pointwise;
  refused for a pipeline without a calibrator, whose probabilities promise no precision).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import Problem
from .schemas import Item

__all__ = ["items_to_input", "policy_key", "predict_items", "check_policy"]


def items_to_input(items: list[Item], *, text: bool, n_features: int | None,
                   fills_missing: bool = False) -> Any:
    """A list of texts (text models) or one CSR (n_items, n_features) (numeric models; a
    null value is a stored NaN, accepted only when the model fills missing values)."""
    for i, item in enumerate(items):
        given = [k for k in ("text", "features", "vector") if getattr(item, k) is not None]
        if len(given) != 1:
            what = "none" if not given else " and ".join(given)
            raise Problem(422, f"items[{i}]: give exactly one of text, features, vector "
                               f"(got {what})")
        if text and given[0] != "text":
            raise Problem(422, f"items[{i}].{given[0]}: this model takes text "
                               f"({{\"text\": ...}}), not {given[0]}")
        if not text and given[0] == "text":
            raise Problem(422, f"items[{i}].text: this model takes numeric features "
                               f"({{\"features\": {{\"indices\", \"values\"}}}} or "
                               f"{{\"vector\": [{n_features} numbers]}}), not text")
    if text:
        texts = [item.text for item in items]
        for i, t in enumerate(texts):
            if not t.strip():
                raise Problem(422, f"items[{i}].text: empty text")
        return texts
    return _features(items, int(n_features), fills_missing)


def _features(items: list[Item], n_features: int, fills_missing: bool) -> sp.csr_matrix:
    indptr = [0]
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for i, item in enumerate(items):
        if item.features is not None:
            idx = np.asarray(item.features.indices, dtype=np.int64)
            v = np.asarray(item.features.values, dtype=np.float64)  # null: NaN
            where = f"items[{i}].features"
            if idx.size != v.size:
                raise Problem(422, f"{where}: {idx.size} indices but {v.size} values")
            bad = np.flatnonzero(idx >= n_features)
            if bad.size:
                j = int(bad[0])
                raise Problem(422, f"{where}.indices[{j}]: {int(idx[j])} >= n_features "
                                   f"{n_features}")
            if idx.size > 1:
                order = np.argsort(idx, kind="stable")
                dup = np.flatnonzero(np.diff(idx[order]) == 0)
                if dup.size:
                    j = int(order[dup[0] + 1])
                    raise Problem(422, f"{where}.indices[{j}]: feature {int(idx[j])} given "
                                       "twice")
        else:
            dense = np.asarray(item.vector, dtype=np.float64)  # null: NaN
            if dense.size != n_features:
                raise Problem(422, f"items[{i}].vector: {dense.size} numbers, the model takes "
                                   f"n_features {n_features}")
            idx = np.flatnonzero(dense).astype(np.int64)
            v = dense[idx]
        missing = np.flatnonzero(np.isnan(v))
        if missing.size and not fills_missing:
            j = int(missing[0])
            field = (f"items[{i}].features.values[{j}]" if item.features is not None
                     else f"items[{i}].vector[{int(idx[j])}]")
            raise Problem(422, f"{field}: null (a missing value): this model's training rows "
                               "held no missing values, so it has none to fill in")
        with np.errstate(over="ignore"):
            v32 = v.astype(np.float32)
        over = np.flatnonzero(np.isinf(v32))
        if over.size:
            j = int(over[0])
            field = (f"items[{i}].features.values[{j}]" if item.features is not None
                     else f"items[{i}].vector[{int(idx[j])}]")
            raise Problem(422, f"{field}: {float(v[j])!r} is out of float32 range")
        cols.append(idx)
        vals.append(v32)
        indptr.append(indptr[-1] + idx.size)
    X = sp.csr_matrix((np.concatenate(vals) if vals else np.zeros(0, np.float32),
                       np.concatenate(cols) if cols else np.zeros(0, np.int64),
                       np.asarray(indptr, dtype=np.int64)), shape=(len(items), n_features))
    X.sort_indices()
    return X


def policy_key(policy: Any) -> Any:
    """A hashable key of a request's policy: "tuned", "top_k", ("threshold", t) or
    ("precision", p)."""
    if isinstance(policy, str):
        return policy
    if hasattr(policy, "threshold"):
        return ("threshold", float(policy.threshold))
    return ("precision", float(policy.precision))


def policy_json(key: Any) -> Any:
    return key if isinstance(key, str) else {key[0]: key[1]}


def check_policy(pipe: Any, key: Any) -> None:
    if isinstance(key, tuple) and key[0] == "precision" and pipe.calibrator_ is None:
        raise Problem(422, "policy.precision: this model's probabilities are not calibrated "
                           "(tune it with labelwise tune); use {\"threshold\": t} instead")


class _ModelLink:
    """A stand-in calibrator: the model's own link (what the pipeline shows without one), so
    that a threshold policy works on the probabilities the answer shows."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.n_labels_ = len(model.labels_)

    def transform(self, S: sp.csr_matrix) -> sp.csr_matrix:
        P = S.copy()
        P.data = np.asarray(self.model._to_probability(P.data), dtype=np.float32)
        return P


def _view(pipe: Any, key: Any) -> Any:
    from labelwise.decision import GlobalThreshold, PrecisionTarget

    if isinstance(key, str):
        return pipe
    kind, value = key
    n = len(pipe.model.labels_)
    if kind == "threshold":
        policy: Any = GlobalThreshold(threshold=value)
        policy.threshold_, policy.tuned_value_ = value, None
    else:
        policy = PrecisionTarget(value, mode="pointwise")
        policy.threshold_ = value
    policy.n_labels_ = n
    view = copy.copy(pipe)
    view.decision_ = policy
    if view.calibrator_ is None:
        view.calibrator_ = _ModelLink(pipe.model)
    return view


def predict_items(pipe: Any, X: Any, k: int, key: Any) -> list[dict[str, Any]]:
    """Pipeline.predict_labels under the request's policy (module docstring)."""
    out = _view(pipe, key).predict_labels(X, k=k)
    if key == "top_k":
        for item in out:
            cands = sorted(item["candidates"], key=lambda c: -c["probability"])
            item["labels"] = [c["label"] for c in cands]
            item["probabilities"] = {c["label"]: c["probability"] for c in cands}
    return out


def n_items(X: Any) -> int:
    return len(X) if isinstance(X, list) else X.shape[0]


def concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], list):
        return [t for p in parts for t in p]
    return sp.csr_matrix(sp.vstack(parts, format="csr"))
