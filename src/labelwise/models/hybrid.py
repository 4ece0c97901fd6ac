"""Open labels: labels added to a trained model later, scored from their names and examples.

A *hybrid* pipeline (:class:`labelwise.pipeline.Pipeline` with open labels) holds two kinds of
labels in one label space::

    supervised  the labels its model was trained on    model -> calibrator -> probability
    open        labels added later (add_labels)         open part -> sigmoid((cos - bias) / T)

The open labels live in one :class:`~labelwise.models.fewshot.FewShot` model, the *open
part*. A label without examples is scored exactly as zero-shot (its prototype is its
name/description vector); examples added later (``learn``) move its prototype toward them
(few-shot), and nothing else is refitted. Open label ids follow the supervised ones: label
``n_supervised + j`` of the pipeline is label ``j`` of the open part.

One probability scale
---------------------
The supervised probabilities come from the pipeline's calibrator, fitted on cross-fitted
training scores. The open part maps cosines to probabilities with a temperature and bias
fitted by :func:`fit_open_calibration` on labelled rows of the *supervised* labels: the
zero-shot cosines of those rows against the supervised labels' names and descriptions, and
whether each (row, label) pair is a true label (a logistic fit,
:func:`labelwise.models.zeroshot.fit_sigmoid`). Zero-shot learns nothing from these rows, so
their cosines are as honest as those of new rows (no cross-fitting is needed), and the map
turns an open label's cosine into a probability of the same kind as the calibrated
supervised ones: the mean probability over the fitted pairs equals their positive rate.

Merging
-------
:func:`merge_topk` joins the two parts' top-k matrices (raw scores and probabilities, the open
part's columns shifted by ``n_supervised``) and keeps each row's k most probable labels (ties:
lower label id first): one ranking over all labels, by probability. The raw scores of the
kept pairs come along (margins for supervised labels, cosines for open ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import DataFormatError
from ..labels import LabelSpace
from .fewshot import FewShot
from .zeroshot import ZeroShot

__all__ = ["join_labels", "template_from", "new_part", "grow", "drop", "as_fewshot",
           "fit_open_calibration", "merge_topk", "remap"]


def join_labels(a: LabelSpace, b: LabelSpace) -> LabelSpace:
    """The labels of ``a`` then those of ``b`` (descriptions kept; ``a``'s hierarchy kept)."""
    da, db = a.descriptions, b.descriptions
    descriptions = None
    if da is not None or db is not None:
        descriptions = list(da or [None] * len(a)) + list(db or [None] * len(b))
    parents = None
    if a.is_hierarchical:
        parents = {a.name(i): a.names_of(a.parents(i)) for i in range(len(a)) if a.parents(i)}
    return LabelSpace(list(a.names) + list(b.names), descriptions=descriptions, parents=parents)


def template_from(model: Any | None) -> FewShot:
    """An unfitted FewShot with the encoder settings of ``model`` (a ZeroShot/FewShot, fitted
    or not); a default ``FewShot()`` for None. Its ``calibrate`` is off: an open part is never
    fitted, only grown and taught. Its ``center_labels`` is off: centring over a handful of
    open labels would shift their cosines by another amount than the centring over the
    supervised labels on which their temperature and bias are fitted."""
    if model is None:
        return FewShot(calibrate=False, center_labels=False)
    names = FewShot._get_param_names()
    params = {k: v for k, v in model.get_params(deep=False).items() if k in names}
    if isinstance(params.get("templates"), list):
        params["templates"] = tuple(params["templates"])
    params["calibrate"] = False
    params["center_labels"] = False
    return FewShot(**params)


def _build(template: FewShot, labels: LabelSpace, Z: np.ndarray, sums: np.ndarray,
           counts: np.ndarray, temperature: float, bias: float) -> FewShot:
    """A fitted FewShot from its parts, through the persistence hooks (as loading does)."""
    m = template_from(template)
    m.labels_ = labels
    m.n_features_in_ = int(Z.shape[1])
    m._set_state({"label_embeddings": np.ascontiguousarray(Z, dtype=np.float32),
                  "example_sums": np.asarray(sums, dtype=np.float64),
                  "example_counts": np.asarray(counts, dtype=np.int64)},
                 {"temperature": float(temperature), "bias": float(bias)})
    return m


def new_part(labels: LabelSpace, *, template: FewShot, temperature: float,
             bias: float) -> FewShot:
    """An open part holding ``labels`` (no examples yet): their name vectors are embedded now."""
    Z = template.embed_labels(labels)
    return _build(template, labels, Z, np.zeros(Z.shape), np.zeros(len(labels), np.int64),
                  temperature, bias)


def grow(part: FewShot, labels: LabelSpace) -> FewShot:
    """A new open part: ``part``'s labels (examples, mapping kept) and then ``labels``."""
    part._check_fitted()
    Z = part.embed_labels(labels)
    if Z.shape[1] != part.n_features_in_:
        raise DataFormatError(f"the encoder gives {Z.shape[1]} dimensions, the open labels "
                              f"have {part.n_features_in_}", field="encoder")
    return _build(part, join_labels(part.labels_, labels),
                  np.vstack([part.label_embeddings_, Z]),
                  np.vstack([part.example_sums_, np.zeros(Z.shape)]),
                  np.concatenate([part.example_counts_, np.zeros(len(labels), np.int64)]),
                  part.temperature_, part.bias_)


def drop(part: FewShot, names: set[str]) -> FewShot | None:
    """``part`` without the labels in ``names`` (None when none is left)."""
    keep = np.array([n not in names for n in part.labels_.names], dtype=bool)
    if keep.all():
        return part
    if not keep.any():
        return None
    idx = np.flatnonzero(keep)
    d = part.labels_.descriptions
    labels = LabelSpace([part.labels_.name(int(i)) for i in idx],
                        descriptions=None if d is None else [d[i] for i in idx])
    return _build(part, labels, part.label_embeddings_[idx], part.example_sums_[idx],
                  part.example_counts_[idx], part.temperature_, part.bias_)


def as_fewshot(model: ZeroShot) -> FewShot:
    """A fitted ZeroShot as the equal FewShot without examples (a FewShot is returned as is)."""
    if isinstance(model, FewShot):
        return model
    model._check_fitted()
    V = model.label_embeddings_
    return _build(template_from(model), model.labels_, V, np.zeros(V.shape),
                  np.zeros(V.shape[0], np.int64), model.temperature_, model.bias_)


def fit_open_calibration(template: FewShot, labels: LabelSpace, texts: list[str],
                         Y: sp.csr_matrix) -> dict[str, Any]:
    """Temperature and bias mapping zero-shot cosines to probabilities of the supervised scale.

    ``labels``: the supervised labels; ``texts``, ``Y`` (n, len(labels)): labelled rows, e.g.
    the training rows. Returns ``{"temperature", "bias", "n_rows", "n_labels",
    "n_positives"}`` (see the module docstring).
    """
    names = ZeroShot._get_param_names()
    zs = ZeroShot(**{k: v for k, v in template.get_params(deep=False).items() if k in names})
    zs.fit(labels=labels)
    E = zs.embed(texts)
    zs.fit_calibration(E, Y)
    return {"temperature": float(zs.temperature_), "bias": float(zs.bias_),
            "n_rows": int(E.shape[0]), "n_labels": len(labels), "n_positives": int(Y.nnz)}


def remap(Y: sp.csr_matrix, source: LabelSpace, target: LabelSpace, *,
          unknown: str = "error") -> sp.csr_matrix:
    """Y (n, len(source)) as columns of ``target``, matched by name. Columns of labels that
    ``target`` lacks: ``unknown="ignore"`` leaves them out, ``"error"`` raises
    (:meth:`LabelSpace.reindex` does the matching)."""
    from ..errors import UnknownLabelError

    out, missing = source.reindex(Y, target)
    if missing and unknown == "error":
        raise UnknownLabelError(f"unknown label(s): {', '.join(map(repr, missing))}")
    return sp.csr_matrix(out)


def _entries(M: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    rows = np.repeat(np.arange(M.shape[0], dtype=np.int64), np.diff(M.indptr))
    return rows, M.indices.astype(np.int64)


def merge_topk(S_a: sp.csr_matrix, P_a: sp.csr_matrix, S_b: sp.csr_matrix,
               P_b: sp.csr_matrix, k: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(S, P): the k most probable stored pairs per row of [a | b] (b's columns shifted).

    S_x and P_x hold the same pairs (raw scores, probabilities). Ties in probability go to
    the lower label id. Columns come out sorted ascending in each row (the top-k contract).
    """
    n, La = S_a.shape
    Lb = S_b.shape[1]
    if S_b.shape[0] != n:
        raise ValueError(f"{n} rows against {S_b.shape[0]}")
    for S, P in ((S_a, P_a), (S_b, P_b)):
        if S.shape != P.shape or not (np.array_equal(S.indptr, P.indptr)
                                      and np.array_equal(S.indices, P.indices)):
            raise ValueError("scores and probabilities must hold the same pairs")
    ra, ca = _entries(S_a)
    rb, cb = _entries(S_b)
    rows = np.concatenate([ra, rb])
    cols = np.concatenate([ca, cb + La])
    s = np.concatenate([S_a.data, S_b.data]).astype(np.float32)
    p = np.concatenate([P_a.data, P_b.data]).astype(np.float32)
    order = np.lexsort((cols, -p, rows))
    counts = np.bincount(rows, minlength=n)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(order.size) - start[rows[order]]
    kept = order[rank < int(k)]
    kept = kept[np.lexsort((cols[kept], rows[kept]))]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[kept], minlength=n))])
    idx = np.int32 if La + Lb < 2**31 else np.int64
    shape = (n, La + Lb)
    out = []
    for values in (s, p):
        M = sp.csr_matrix((values[kept], cols[kept].astype(idx), indptr.astype(idx)), shape=shape)
        M.has_sorted_indices = True
        out.append(M)
    return out[0], out[1]
